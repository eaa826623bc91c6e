import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { CreatePoolBody, PoolSchema, VolumeSchema } from '../schemas';

const TAG = ['Storage'];
const NameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' } }) });
const VolumesQuery = z.object({
  node: z.string().optional().openapi({ description: 'For a `dir` pool: the host whose pool to list' }),
});

export function poolRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: TAG,
      summary: 'List storage pools: type, capabilities, capacity, the hosts that reach each',
      responses: { 200: json(z.array(PoolSchema), 'Pools'), ...errors },
    }),
    async (c) => c.json(await ctx.pools.list(), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: TAG,
      summary:
        'Add an existing Ceph RBD pool (monitors, user and key are tried first; nothing is stored on failure)',
      request: { body: { content: { 'application/json': { schema: CreatePoolBody } }, required: true } },
      responses: { 201: json(PoolSchema, 'The pool'), ...errors },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const pool = await ctx.tasks.run('pool.create', b.name, c.get('user'), () =>
        ctx.pools.create(b, c.get('user')),
      );
      return c.json(pool, 201);
    },
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{name}',
      tags: TAG,
      summary: 'One storage pool',
      request: { params: NameParam },
      responses: { 200: json(PoolSchema, 'Pool'), ...errors },
    }),
    async (c) => c.json(await ctx.pools.get(c.req.valid('param').name), 200),
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}',
      tags: TAG,
      summary:
        'Remove a shared pool from NeuroFlow (refused while VMs or volumes use it; Ceph keeps the pool)',
      request: { params: NameParam },
      responses: { 204: { description: 'Removed' }, ...errors },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      await ctx.tasks.run('pool.delete', name, c.get('user'), () => ctx.pools.delete(name));
      return c.body(null, 204);
    },
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{name}/volumes',
      tags: TAG,
      summary: 'The volumes of a pool: virtual and allocated size, parent image, snapshots',
      request: { params: NameParam, query: VolumesQuery },
      responses: { 200: json(z.array(VolumeSchema), 'Volumes'), ...errors },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      return c.json(await ctx.pools.volumes(name, c.req.valid('query').node), 200);
    },
  );
  return r;
}
