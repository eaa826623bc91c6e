import { createRoute, z } from '@hono/zod-openapi';
import type { NodeView } from '../../controller/node-registry';
import { keys, type VmRecord } from '../../controller/records';
import { NfError } from '../../errors';
import type { NodeInfo } from '../../node/types';
import { createLogger } from '../../util/log';
import type { ApiContext } from '../context';
import { errors, json, metricsBody } from '../openapi';
import { newRouter } from '../router';
import { MetricsQuery, MetricsSchema, NodePatch, NodeSchema } from '../schemas';

const log = createLogger('nodes-api');
const NameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' } }) });

export function nodeRoutes(ctx: ApiContext) {
  const r = newRouter();

  /** Record + health + live facts (when the host answers within a second). */
  async function views(): Promise<z.infer<typeof NodeSchema>[]> {
    const vms = (await ctx.store.list<VmRecord>(keys.vms)).map((v) => v.value);
    const nodes = await ctx.registry.views(vms);
    return Promise.all(
      nodes.map(async (n) => {
        let live: NodeInfo | undefined;
        if (n.status !== 'not-ready' && ctx.node.reachable(n.name)) {
          live = await Promise.race([
            ctx.node
              .on(n.name)
              .info()
              .catch(() => undefined),
            new Promise<undefined>((res) => setTimeout(res, 1000)),
          ]);
        }
        return {
          ...nodeBody(n, live, vms),
          connected: ctx.node.reachable(n.name),
        };
      }),
    );
  }

  async function viewOf(name: string): Promise<z.infer<typeof NodeSchema>> {
    const v = (await views()).find((n) => n.name === name);
    if (!v) throw new NfError('not_found', `no host named "${name}" in the cluster`);
    return v;
  }

  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Nodes'],
      summary: 'List hosts: state (ready, not-ready, maintenance), last heartbeat, capacity and allocation',
      responses: { 200: json(z.array(NodeSchema), 'Hosts'), ...errors },
    }),
    async (c) => c.json(await views(), 200),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{name}',
      tags: ['Nodes'],
      summary: 'One host',
      request: { params: NameParam },
      responses: { 200: json(NodeSchema, 'Host'), ...errors },
    }),
    async (c) => {
      return c.json(await viewOf(c.req.valid('param').name), 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'patch',
      path: '/{name}',
      tags: ['Nodes'],
      summary:
        'Maintenance mode on or off: no new VMs are placed on a host in maintenance, and entering it live-migrates its VMs away (a task, evacuationTask in the answer)',
      request: {
        params: NameParam,
        body: { content: { 'application/json': { schema: NodePatch } }, required: true },
      },
      responses: { 200: json(NodeSchema, 'Host'), ...errors },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      const { maintenance } = c.req.valid('json');
      await ctx.tasks.run(
        maintenance ? 'node.maintenance.enter' : 'node.maintenance.exit',
        name,
        c.get('user'),
        () => ctx.registry.setMaintenance(name, maintenance),
      );
      // Entering maintenance empties the host (a task); leaving it moves nothing back (DRS may).
      const evacuation = maintenance ? await ctx.migrations.evacuate(name, c.get('user')) : undefined;
      return c.json(
        { ...(await viewOf(name)), ...(evacuation ? { evacuationTask: evacuation.id } : {}) },
        200,
      );
    },
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}',
      tags: ['Nodes'],
      summary:
        'Remove a host from the cluster (and its etcd member). Refused while VMs are placed on it unless force=true',
      request: {
        params: NameParam,
        query: z.strictObject({ force: z.enum(['true', 'false']).optional() }),
      },
      responses: { 204: { description: 'Removed' }, ...errors },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      const force = c.req.valid('query').force === 'true';
      await ctx.tasks.run('node.remove', name, c.get('user'), async () => {
        const rec = await ctx.registry.find(name);
        if (name === ctx.node.localName)
          throw new NfError(
            'invalid_state',
            `host ${name} serves this request; remove it through another controller`,
          );
        const held = (await ctx.store.list<VmRecord>(keys.vms)).filter((v) => v.value.node === name);
        if (held.length > 0 && !force)
          throw new NfError(
            'in_use',
            `host ${name} holds ${held.length} VM(s) (${held
              .slice(0, 5)
              .map((v) => v.value.name)
              .join(
                ', ',
              )}${held.length > 5 ? ', ...' : ''}); move or delete them first, or remove with force=true (their disks stay on that host)`,
          );
        if (rec.value.etcd) {
          if (!ctx.cluster) throw new NfError('invalid_state', 'no cluster here');
          await ctx.cluster.membership.remove(rec.value.etcd.peerUrl, name);
        }
        await ctx.store.txn({ delete: [rec.key, keys.nodeHealth(name)] });
        ctx.node.remove(name);
        log.info('host removed from the cluster', { node: name, force, vms: held.length });
      });
      return c.body(null, 204);
    },
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{name}/metrics',
      tags: ['Nodes'],
      summary: "The host's CPU % and memory over the last hour or day (kept by the host, relayed)",
      request: { params: NameParam, query: MetricsQuery },
      responses: { 200: json(MetricsSchema, 'Points, oldest first'), ...errors },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      if (name !== ctx.node.localName) await ctx.registry.find(name);
      const { range } = c.req.valid('query');
      const points = await ctx.node.on(name).hostMetrics(range === '1h' ? 'fine' : 'coarse');
      return c.json(metricsBody(range, ctx.metricsIntervalSec, points), 200);
    },
  );
  return r;
}

function nodeBody(
  n: NodeView,
  live: NodeInfo | undefined,
  vms: VmRecord[],
): Omit<z.infer<typeof NodeSchema>, 'connected'> {
  const mine = vms.filter((v) => v.node === n.name);
  const running = mine.filter((v) => v.power !== 'stopped').length;
  const body: Omit<z.infer<typeof NodeSchema>, 'connected'> = {
    name: n.name,
    state: n.status,
    role: n.role,
    leader: n.leader,
    lastHeartbeat: n.lastHeartbeat,
    addresses: n.addresses,
    joinedAt: n.joinedAt,
    cpus: live?.cpus ?? n.capacity?.cpus ?? 0,
    cpuModel: live?.cpuModel ?? n.capacity?.cpuModel ?? '',
    cpuLevels: live?.cpuLevels ?? n.capacity?.cpuLevels ?? [],
    memoryTotalBytes: live?.memoryTotalBytes ?? n.capacity?.memoryBytes ?? 0,
    memoryAvailableBytes: live?.memoryAvailableBytes ?? n.memoryAvailableBytes,
    accelerator: live?.accelerator ?? (n.capacity?.accelerator as 'kvm' | 'tcg' | undefined) ?? null,
    vms: { total: mine.length, running },
    allocation: n.allocation,
    allocatedMemoryMiB: Math.round(n.allocation.memoryBytes / 1024 ** 2),
    pools: live?.pools ?? n.pools,
  };
  if (live) {
    body.acceleratorReason = live.acceleratorReason;
    body.qemuVersion = live.qemuVersion;
    body.kernel = live.kernel;
    body.uptimeSec = live.uptimeSec;
    body.loadAvg = live.loadAvg;
    if (live.watchdog) body.watchdog = live.watchdog;
  }
  if (n.etcd) body.etcd = n.etcd;
  return body;
}
