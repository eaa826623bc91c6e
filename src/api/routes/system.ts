import { createRoute, z } from '@hono/zod-openapi';
import { requireToken } from '../auth';
import type { ApiContext } from '../context';
import { registry, renderMetrics } from '../metrics';
import { newRouter } from '../router';

export function systemRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/health',
      summary: 'Liveness and etcd reachability (no token needed)',
      security: [],
      responses: {
        200: {
          description: 'healthy',
          content: {
            'application/json': {
              schema: z.object({ status: z.string(), etcd: z.boolean(), version: z.string() }),
            },
          },
        },
      },
    }),
    async (c) => c.json({ status: 'ok', etcd: await ctx.store.ping(), version: ctx.version }, 200),
  );
  r.get('/metrics', requireToken(ctx.adminTokenHash), async (c) => {
    c.header('content-type', registry.contentType);
    return c.body(await renderMetrics(ctx));
  });
  return r;
}
