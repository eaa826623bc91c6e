import { createRoute, z } from '@hono/zod-openapi';
import { NfError } from '../../errors';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { TaskSchema } from '../schemas';

export function taskRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Tasks'],
      summary: 'Recent tasks, newest first',
      request: { query: z.strictObject({ limit: z.coerce.number().int().min(1).max(500).optional() }) },
      responses: { 200: json(z.array(TaskSchema), 'Tasks'), ...errors },
    }),
    async (c) => c.json(await ctx.tasks.list(c.req.valid('query').limit ?? 100), 200),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Tasks'],
      summary: 'One task',
      request: { params: z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) }) },
      responses: { 200: json(TaskSchema, 'Task'), ...errors },
    }),
    async (c) => {
      const t = await ctx.tasks.get(c.req.valid('param').id);
      if (!t) throw new NfError('not_found', 'no such task');
      return c.json(t, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/cancel',
      tags: ['Tasks'],
      summary: 'Cancel a running task that allows it (a migration: the VM keeps running on its source)',
      request: { params: z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) }) },
      responses: { 202: json(TaskSchema, 'The task, with cancelRequested'), ...errors },
    }),
    async (c) => c.json(await ctx.tasks.cancel(c.req.valid('param').id, c.get('user')), 202),
  );
  return r;
}
