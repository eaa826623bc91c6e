import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';

const Health = z.object({
  status: z.enum(['HEALTH_OK', 'HEALTH_WARN', 'HEALTH_ERR']),
  checks: z.array(z.object({ name: z.string(), severity: z.string(), summary: z.string() })),
  mons: z.object({ total: z.number(), inQuorum: z.array(z.string()) }),
  osds: z.object({ total: z.number(), up: z.number(), in: z.number() }),
  pgs: z.object({ total: z.number(), byState: z.record(z.string(), z.number()) }),
});

export const CephStatusSchema = z
  .object({
    configured: z.boolean(),
    health: Health.optional(),
    daemons: z.array(z.object({ entity: z.string(), pid: z.number().optional(), restarts: z.number() })),
    pool: z
      .object({ name: z.string(), size: z.number(), minSize: z.number(), warning: z.string().optional() })
      .optional()
      .openapi({ description: 'The RBD pool of the integrated cluster: replicas, and what they risk here' }),
  })
  .openapi('CephStatus');

export const CephBootstrapBody = z
  .strictObject({
    monitorAddress: z
      .string()
      .regex(/^[0-9a-fA-F.:]+$/)
      .optional()
      .openapi({ description: "The monitor's IP (default: the host's management address)" }),
    size: z.number().int().min(1).max(10).default(3).openapi({ description: 'Copies of every block' }),
    minSize: z.number().int().min(1).max(10).default(2).openapi({ description: 'Copies needed for I/O' }),
  })
  .openapi('CephBootstrap');

export const CephOsdBody = z
  .strictObject({
    node: z.string().min(1).openapi({ description: 'The host with the disk' }),
    device: z
      .string()
      .regex(/^\/[^\0]*$/)
      .max(4096)
      .openapi({
        description: 'A whole block device without data (/dev/sdb), or a file under an allowed host path',
      }),
    sizeGiB: z
      .number()
      .int()
      .min(1)
      .max(65_536)
      .optional()
      .openapi({ description: 'For a file that does not exist yet' }),
  })
  .openapi('CephOsd');

/** The integrated Ceph cluster: status, bootstrap, OSDs. */
export function cephRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Ceph'],
      summary: 'Integrated Ceph: health, monitors, OSDs up/in, PG states, this host’s daemons',
      responses: { 200: json(CephStatusSchema, 'Status'), ...errors },
    }),
    async (c) => c.json(await ctx.ceph.status(), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Ceph'],
      summary: 'Set up Ceph on this host: monitor, manager, the RBD pool and the shared storage pool "ceph"',
      request: { body: { content: { 'application/json': { schema: CephBootstrapBody } }, required: true } },
      responses: { 201: json(CephStatusSchema, 'Status'), ...errors },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const s = await ctx.tasks.run('ceph.bootstrap', 'ceph', c.get('user'), () => ctx.ceph.bootstrap(b));
      return c.json(s, 201);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/osds',
      tags: ['Ceph'],
      summary: 'Make an OSD on a disk of a host (everything on the disk is lost)',
      request: { body: { content: { 'application/json': { schema: CephOsdBody } }, required: true } },
      responses: { 201: json(CephStatusSchema, 'Status'), ...errors },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const s = await ctx.tasks.run('ceph.osd.create', `${b.node}:${b.device}`, c.get('user'), () =>
        ctx.ceph.addOsd(b),
      );
      return c.json(s, 201);
    },
  );
  return r;
}
