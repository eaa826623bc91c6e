import { createRoute } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { IdParam, MigrateBody, TaskSchema } from '../schemas';

/** Live migration of a running VM to another host (src/controller/migration.ts). */
export function vmMigrateRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/migrate',
      tags: ['VMs'],
      summary:
        'Live-migrate a running VM to another host (RAM and device state; local disks are mirrored over NBD), over TLS; a task with progress, cancellable',
      request: {
        params: IdParam,
        body: { content: { 'application/json': { schema: MigrateBody } }, required: true },
      },
      responses: {
        202: json(
          TaskSchema,
          'The migration runs as this task (GET /api/v1/tasks/{id}; cancel: POST /api/v1/tasks/{id}/cancel)',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const task = await ctx.migrations.migrate(id, c.req.valid('json'), c.get('user'));
      return c.json(task, 202);
    },
  );
  return r;
}
