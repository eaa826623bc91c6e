import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { NodeSchema } from '../schemas';

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
  return r;
}
