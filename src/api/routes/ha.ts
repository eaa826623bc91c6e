import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { HaPolicyInput, HaPolicySchema, IdParam } from '../schemas';

const HaSettingsSchema = z
  .object({
    detectionSec: z.number().int().openapi({
      description:
        'Seconds of silence (no heartbeat, no answer to a probe) before a host is declared failed; hosts fence themselves a second before',
    }),
    tolerateHostFailures: z.number().int().openapi({
      description: 'Admission control: host failures the powered-on VMs should survive (0: off)',
    }),
    monitoringTimeoutSec: z.number().int().openapi({
      description: 'VM monitoring: agent silence with no disk I/O before a monitored VM is reset',
    }),
  })
  .openapi('HaSettings');

const HaSettingsPut = z
  .strictObject({
    detectionSec: z.number().int().min(6).max(120).optional(),
    tolerateHostFailures: z.number().int().min(0).max(16).optional(),
    monitoringTimeoutSec: z.number().int().min(20).max(3600).optional(),
  })
  .openapi('HaSettingsInput');

const RecoverySchema = z
  .object({
    id: z.string(),
    host: z.string(),
    status: z.enum(['fencing', 'restarting', 'done']),
    reason: z.string().openapi({ description: 'Why the host was declared failed' }),
    detectedAt: z.string(),
    fencedAt: z.string().optional(),
    fence: z.string().optional().openapi({ description: 'What storage fencing did' }),
    fenceAttempts: z.number(),
    fenceError: z.string().optional(),
    returnedAt: z.string().optional().openapi({ description: 'When the host answered again' }),
    endedAt: z.string().optional(),
    durationSec: z.number().optional().openapi({ description: 'Detection to the last VM running again' }),
    vms: z.array(
      z.object({
        id: z.string(),
        name: z.string(),
        priority: z.enum(['high', 'medium', 'low']),
        restartOrder: z.number(),
        state: z.enum(['waiting', 'restarting', 'starting', 'running', 'failed', 'gone']),
        target: z.string().optional(),
        restartedAt: z.string().optional(),
        runningAt: z.string().optional(),
        error: z.string().optional(),
        attempts: z.number(),
        taskId: z.string().optional(),
      }),
    ),
    unprotected: z.array(z.object({ id: z.string(), name: z.string(), reason: z.string() })),
  })
  .openapi('HaRecovery');

const HaStatusSchema = z
  .object({
    settings: HaSettingsSchema,
    hosts: z.array(
      z.object({
        name: z.string(),
        state: z.enum(['online', 'suspect', 'degraded', 'failed']).openapi({
          description:
            'online: heartbeats arrive; degraded: heartbeats stopped but the host answers probes (not failed); suspect: silent, within the detection time; failed: declared failed',
        }),
      }),
    ),
    admission: z.object({ ok: z.boolean(), message: z.string() }),
    protectedVms: z.number(),
    unprotectedVms: z.array(z.object({ id: z.string(), name: z.string(), reason: z.string() })),
    recoveries: z
      .array(RecoverySchema)
      .openapi({ description: 'Host failures, newest first: the timelines' }),
  })
  .openapi('HaStatus');

const VmHaSchema = z
  .object({
    policy: HaPolicySchema,
    protection: z.object({
      state: z.enum(['protected', 'unprotected', 'disabled']),
      reason: z.string().optional(),
    }),
    monitoring: z
      .object({
        agentSilentForSec: z.number().optional(),
        lastIoCheck: z.object({ at: z.string(), diskIdle: z.boolean() }).optional(),
        resetsLastHour: z.number(),
      })
      .optional()
      .openapi({
        description:
          "VM monitoring's view of a monitored guest (answered by the leader): how long its agent has been silent, the last look at its disks' I/O, resets in the last hour",
      }),
  })
  .openapi('VmHa');

/** High availability: cluster settings, host states, recovery timelines (src/controller/ha/). */
export function haRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['HA'],
      summary: 'HA settings, host states, admission control, protected VMs and the recovery timelines',
      responses: { 200: json(HaStatusSchema, 'HA'), ...errors },
    }),
    async (c) => c.json(await ctx.ha.status(), 200),
  );
  r.openapi(
    createRoute({
      method: 'put',
      path: '/',
      tags: ['HA'],
      summary: 'Set the detection time, the host failures to tolerate and the VM monitoring timeout',
      request: { body: { content: { 'application/json': { schema: HaSettingsPut } }, required: true } },
      responses: { 200: json(HaStatusSchema, 'HA'), ...errors },
    }),
    async (c) => {
      const body = c.req.valid('json');
      await ctx.tasks.run('ha.settings', 'cluster', c.get('user'), () => ctx.ha.setSettings(body));
      return c.json(await ctx.ha.status(), 200);
    },
  );
  return r;
}

/** A VM's HA policy and protection. */
export function vmHaRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/ha',
      tags: ['VMs'],
      summary: "A VM's HA policy and whether HA can restart it elsewhere (and why not)",
      request: { params: IdParam },
      responses: { 200: json(VmHaSchema, 'HA of the VM'), ...errors },
    }),
    async (c) => {
      const vm = await ctx.vms.find(c.req.valid('param').id);
      return c.json(await ctx.ha.vmHa(vm.value), 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'put',
      path: '/{id}/ha',
      tags: ['VMs'],
      summary:
        "Change a VM's HA policy (fields left out keep their value); a running VM's host applies it at once",
      request: {
        params: IdParam,
        body: { content: { 'application/json': { schema: HaPolicyInput } }, required: true },
      },
      responses: { 200: json(VmHaSchema, 'HA of the VM'), ...errors },
    }),
    async (c) => {
      const vm = await ctx.vms.find(c.req.valid('param').id);
      const body = c.req.valid('json');
      const out = await ctx.tasks.run('vm.ha', vm.value.name, c.get('user'), () =>
        ctx.ha.setVmHa(vm.value.id, body),
      );
      return c.json(out, 200);
    },
  );
  return r;
}
