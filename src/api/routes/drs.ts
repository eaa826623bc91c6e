import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { TaskSchema } from '../schemas';

const HostLoad = z.object({
  node: z.string(),
  cpuLoad: z.number().openapi({ description: "CPU its VMs' QEMU processes use, over its CPUs (0..1+)" }),
  memoryLoad: z
    .number()
    .openapi({ description: "Powered-on VMs' memory over the memory the host gives VMs (0..1)" }),
  vms: z.number().int(),
});

const Recommendation = z.object({
  id: z.string(),
  vm: z.string(),
  vmName: z.string(),
  from: z.string(),
  to: z.string(),
  reason: z.string().openapi({ description: 'Why this move, in one sentence' }),
  createdAt: z.string(),
});

export const DrsSchema = z
  .object({
    mode: z.enum(['off', 'manual', 'automatic']),
    threshold: z.number().int().min(1).max(5),
    intervalSec: z
      .number()
      .openapi({ description: 'How often the leader scores the hosts (0: only when asked)' }),
    lastRunAt: z.string().optional(),
    hosts: z.array(HostLoad),
    recommendations: z.array(Recommendation),
    history: z.array(
      Recommendation.omit({ createdAt: true }).extend({
        at: z.string(),
        automatic: z.boolean(),
        taskId: z.string().optional(),
        status: z.enum(['started', 'ok', 'error']),
        error: z.string().optional(),
      }),
    ),
  })
  .openapi('Drs');

const DrsPut = z
  .strictObject({
    mode: z.enum(['off', 'manual', 'automatic']).optional(),
    threshold: z.number().int().min(1).max(5).optional().openapi({
      description: '1 conservative .. 5 aggressive (tolerated load gap 40, 30, 20, 15, 10 points)',
    }),
  })
  .openapi('DrsPolicy');

/** DRS: host loads, recommendations, history; mode and threshold (src/controller/drs.ts). */
export function drsRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['DRS'],
      summary: 'DRS mode and threshold, host loads of the last pass, recommendations and history',
      responses: { 200: json(DrsSchema, 'DRS'), ...errors },
    }),
    async (c) => c.json(await ctx.drs.status(), 200),
  );
  r.openapi(
    createRoute({
      method: 'put',
      path: '/',
      tags: ['DRS'],
      summary: 'Set the DRS mode (off, manual, automatic) and threshold (1-5)',
      request: { body: { content: { 'application/json': { schema: DrsPut } }, required: true } },
      responses: { 200: json(DrsSchema, 'DRS'), ...errors },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const s = await ctx.tasks.run('drs.policy', 'cluster', c.get('user'), () => ctx.drs.setPolicy(body));
      return c.json(s, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/run',
      tags: ['DRS'],
      summary: 'Score the hosts now (in automatic mode the recommended move is made)',
      responses: { 200: json(DrsSchema, 'DRS after the pass'), ...errors },
    }),
    async (c) => c.json(await ctx.drs.pass(), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/recommendations/{id}/apply',
      tags: ['DRS'],
      summary: 'Make a recommended move (a live migration task)',
      request: { params: z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) }) },
      responses: { 202: json(TaskSchema, 'The migration task'), ...errors },
    }),
    async (c) => c.json(await ctx.drs.applyRecommendation(c.req.valid('param').id, c.get('user')), 202),
  );
  return r;
}
