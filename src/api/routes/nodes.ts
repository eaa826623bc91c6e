import { createRoute, z } from '@hono/zod-openapi';
import { NfError } from '../../errors';
import type { ApiContext } from '../context';
import { errors, json, metricsBody } from '../openapi';
import { newRouter } from '../router';
import { MetricsQuery, MetricsSchema, NodeSchema } from '../schemas';

export function nodeRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Nodes'],
      summary: 'List hosts',
      responses: { 200: json(z.array(NodeSchema), 'Hosts'), ...errors },
    }),
    async (c) => {
      const info = await ctx.node.info();
      const vms = await ctx.vms.list();
      const up = vms.filter((v) => v.state === 'running' || v.state === 'paused' || v.state === 'stopping');
      return c.json(
        [
          {
            ...info,
            state: 'ready' as const,
            vms: { total: vms.length, running: up.length },
            allocatedMemoryMiB: up.reduce((sum, v) => sum + v.memoryMiB, 0),
          },
        ],
        200,
      );
    },
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{name}/metrics',
      tags: ['Nodes'],
      summary: "The host's CPU % and memory over the last hour or day",
      request: {
        params: z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' } }) }),
        query: MetricsQuery,
      },
      responses: { 200: json(MetricsSchema, 'Points, oldest first'), ...errors },
    }),
    async (c) => {
      const info = await ctx.node.info();
      if (c.req.valid('param').name !== info.name)
        throw new NfError('not_found', `no host named "${c.req.valid('param').name}"`);
      const { range } = c.req.valid('query');
      return c.json(
        metricsBody(range, ctx.metricsIntervalSec, ctx.node.hostMetrics(range === '1h' ? 'fine' : 'coarse')),
        200,
      );
    },
  );
  return r;
}
