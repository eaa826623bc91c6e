import { NfError } from '../errors';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';
import { TOLERANCE } from './drs-policy';
import type { Migrations } from './migration';
import type { NodeRegistry } from './node-registry';
import type { NodeRouter } from './node-router';
import { isPoweredOn, keys, PREFIX, type TaskRecord, type VmRecord } from './records';
import { TaskLog } from './tasks';

const log = createLogger('drs');

export type DrsMode = 'off' | 'manual' | 'automatic';

export interface DrsPolicy {
  mode: DrsMode;
  /** 1 (conservative) .. 5 (aggressive): how uneven hosts may be before a move is worth it. */
  threshold: number;
}

export const DEFAULT_DRS: DrsPolicy = { mode: 'automatic', threshold: 3 };

/** A VM moves at most once in this long (ms). */
export const MOVE_COOLDOWN_MS = 30 * 60_000;

export interface HostLoad {
  node: string;
  /** CPU the VMs' QEMU processes use, in host CPUs (0..1+). */
  cpuLoad: number;
  /** Memory of the powered-on VMs over the host's (0..1). */
  memoryLoad: number;
  vms: number;
}

export interface Recommendation {
  id: string;
  vm: string;
  vmName: string;
  from: string;
  to: string;
  reason: string;
  createdAt: string;
}

export interface DrsHistoryEntry extends Omit<Recommendation, 'createdAt'> {
  at: string;
  automatic: boolean;
  taskId?: string;
  status: 'started' | 'ok' | 'error';
  error?: string;
}

export interface DrsStatus extends DrsPolicy {
  intervalSec: number;
  lastRunAt?: string;
  hosts: HostLoad[];
  recommendations: Recommendation[];
  history: DrsHistoryEntry[];
}

const drsKeys = {
  policy: `${PREFIX}drs/policy`,
  state: `${PREFIX}drs/state`,
  history: (id: string) => `${PREFIX}drs/history/${id}`,
  histories: `${PREFIX}drs/history/`,
};

/** What a VM uses of its host, for the balance. */
interface VmLoad {
  vm: VmRecord;
  /** Host CPUs it keeps busy (its QEMU's CPU use). */
  cores: number;
}

/** The pure part: from loads, the one move that evens the busiest and the idlest hosts most. */
export function chooseMove(
  hosts: { node: string; cpus: number; load: number }[],
  vmsOn: (node: string) => VmLoad[],
  tolerance: number,
  feasible: (vm: VmRecord, to: string) => boolean,
): { vm: VmRecord; from: string; to: string; before: [number, number]; after: [number, number] } | undefined {
  if (hosts.length < 2) return undefined;
  const sorted = [...hosts].sort((a, b) => b.load - a.load);
  const busy = sorted[0]!;
  const gap = busy.load - sorted.at(-1)!.load;
  if (gap <= tolerance) return undefined;
  let best: ReturnType<typeof chooseMove>;
  let bestGap = gap;
  for (const target of sorted.slice(1).reverse()) {
    if (busy.load - target.load <= tolerance) continue;
    for (const { vm, cores } of vmsOn(busy.node)) {
      if (cores <= 0) continue;
      const from = busy.load - cores / busy.cpus;
      const to = target.load + cores / target.cpus;
      const after = Math.abs(from - to);
      if (after >= bestGap - 0.01) continue; // not worth a move
      if (!feasible(vm, target.node)) continue;
      bestGap = after;
      best = { vm, from: busy.node, to: target.node, before: [busy.load, target.load], after: [from, to] };
    }
  }
  return best;
}

/**
 * DRS: the leader scores hosts from what their VMs use (every intervalSec), recommends the move that
 * evens the busiest and the idlest host when they are further apart than the threshold tolerates, and in
 * automatic mode makes it (a live migration). Pinning, affinity, anti-affinity and every migration check
 * hold (the move must pass them); a VM moves at most once in 30 minutes. Every recommendation and move
 * says why; the history is kept in etcd.
 */
export class Drs {
  private timer?: Timer;
  private running = false;

  constructor(
    private readonly store: Store,
    private readonly router: NodeRouter,
    private readonly registry: NodeRegistry,
    private readonly migrations: Migrations,
    private readonly tasks: TaskLog,
    readonly intervalSec = Number(process.env.NEUROFLOW_DRS_INTERVAL_SEC ?? 60),
  ) {}

  /** On the leader (an interval of 0 runs passes only when asked: POST /drs/run). */
  start(): void {
    if (this.timer || !(this.intervalSec > 0)) return;
    this.timer = setInterval(
      () => void this.pass().catch((err) => log.warn('DRS pass failed', { err: (err as Error).message })),
      this.intervalSec * 1000,
    );
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async policy(): Promise<DrsPolicy> {
    return { ...DEFAULT_DRS, ...(await this.store.get<Partial<DrsPolicy>>(drsKeys.policy))?.value };
  }

  async setPolicy(p: Partial<DrsPolicy>): Promise<DrsStatus> {
    const next = {
      ...(await this.policy()),
      ...Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)),
    };
    await this.store.txn({ put: [{ key: drsKeys.policy, value: next }] });
    log.info('DRS policy', { ...next });
    if (next.mode === 'off')
      await this.store.txn({
        put: [
          {
            key: drsKeys.state,
            value: { lastRunAt: new Date().toISOString(), hosts: [], recommendations: [] },
          },
        ],
      });
    return this.status();
  }

  async status(): Promise<DrsStatus> {
    const [policy, state, history] = await Promise.all([
      this.policy(),
      this.store.get<{ lastRunAt?: string; hosts: HostLoad[]; recommendations: Recommendation[] }>(
        drsKeys.state,
      ),
      this.history(),
    ]);
    return {
      ...policy,
      intervalSec: this.intervalSec,
      ...(state?.value.lastRunAt ? { lastRunAt: state.value.lastRunAt } : {}),
      hosts: state?.value.hosts ?? [],
      recommendations: state?.value.recommendations ?? [],
      history,
    };
  }

  private async history(limit = 50): Promise<DrsHistoryEntry[]> {
    const all = await this.store.list<DrsHistoryEntry>(drsKeys.histories);
    return all
      .map((h) => h.value)
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .slice(0, limit);
  }

  /** One pass: loads, at most one recommendation, applied in automatic mode. */
  async pass(): Promise<DrsStatus> {
    if (this.running) return this.status();
    this.running = true;
    try {
      await this.settleHistory();
      const policy = await this.policy();
      const { hosts, loads } = await this.measure();
      let recommendations: Recommendation[] = [];
      if (policy.mode !== 'off') {
        const history = await this.history(500);
        const recent = new Set(
          history
            .filter((h) => Date.now() - Date.parse(h.at) < MOVE_COOLDOWN_MS && h.status !== 'error')
            .map((h) => h.vm),
        );
        // the cheap rules first; the full migration check (it reads the cluster) only for the move
        // chosen, and again without it when it is refused
        const refused = new Set<string>();
        let move: ReturnType<typeof chooseMove>;
        for (;;) {
          move = chooseMove(
            hosts.map((h) => ({ node: h.node, cpus: h.cpus, load: h.cpuLoad })),
            (node) => loads.get(node) ?? [],
            TOLERANCE[policy.threshold] ?? 0.2,
            (vm, to) => !recent.has(vm.id) && !refused.has(`${vm.id}>${to}`),
          );
          if (!move) break;
          const ok = await this.migrations.check(move.vm.id, move.to).then(
            () => true,
            () => false,
          );
          if (ok) break;
          refused.add(`${move.vm.id}>${move.to}`);
        }
        if (move) {
          const pct = (x: number) => `${Math.round(x * 100)}%`;
          const cores = (loads.get(move.from) ?? []).find((l) => l.vm.id === move.vm.id)?.cores ?? 0;
          recommendations = [
            {
              id: TaskLog.newId(),
              vm: move.vm.id,
              vmName: move.vm.name,
              from: move.from,
              to: move.to,
              reason: `${move.from} is at ${pct(move.before[0])} load from its VMs and ${move.to} at ${pct(move.before[1])} (threshold ${policy.threshold} tolerates ${Math.round((TOLERANCE[policy.threshold] ?? 0.2) * 100)} points): moving ${move.vm.name} (${cores.toFixed(2)} CPU) evens them to ${pct(move.after[0])} and ${pct(move.after[1])}`,
              createdAt: new Date().toISOString(),
            },
          ];
        }
      }
      await this.store.txn({
        put: [
          {
            key: drsKeys.state,
            value: {
              lastRunAt: new Date().toISOString(),
              hosts: hosts.map((h) => ({
                node: h.node,
                cpuLoad: h.cpuLoad,
                memoryLoad: h.memoryLoad,
                vms: h.vms,
              })),
              recommendations,
            },
          },
        ],
      });
      if (policy.mode === 'automatic')
        for (const r of recommendations)
          await this.apply(r, true).catch((err) =>
            log.warn('DRS move refused', { vm: r.vmName, err: (err as Error).message }),
          );
      return this.status();
    } finally {
      this.running = false;
    }
  }

  /** Applies a recommendation of the last pass (manual mode: the admin's click). */
  async applyRecommendation(id: string, user: string): Promise<TaskRecord> {
    const state = (await this.store.get<{ recommendations: Recommendation[] }>(drsKeys.state))?.value;
    const r = state?.recommendations.find((x) => x.id === id);
    if (!r)
      throw new NfError(
        'not_found',
        `no current DRS recommendation ${id} (a newer pass may have replaced it)`,
      );
    return this.apply(r, false, user);
  }

  private async apply(r: Recommendation, automatic: boolean, user = 'drs'): Promise<TaskRecord> {
    const task = await this.migrations.migrate(r.vm, { node: r.to }, user);
    const entry: DrsHistoryEntry = {
      id: r.id,
      at: new Date().toISOString(),
      vm: r.vm,
      vmName: r.vmName,
      from: r.from,
      to: r.to,
      reason: r.reason,
      automatic,
      taskId: task.id,
      status: 'started',
    };
    await this.store.txn({ put: [{ key: drsKeys.history(r.id), value: entry }] });
    log.info('DRS moves a VM', { vm: r.vmName, from: r.from, to: r.to, automatic, why: r.reason });
    // the recommendation is taken
    const cur = await this.store.get<{ recommendations: Recommendation[] }>(drsKeys.state);
    if (cur)
      await this.store.txn({
        put: [
          {
            key: drsKeys.state,
            value: { ...cur.value, recommendations: cur.value.recommendations.filter((x) => x.id !== r.id) },
          },
        ],
      });
    return task;
  }

  /** History entries of moves under way get their outcome; old entries go (the newest 200 stay). */
  private async settleHistory(): Promise<void> {
    const all = await this.store.list<DrsHistoryEntry>(drsKeys.histories);
    for (const h of all) {
      if (h.value.status !== 'started' || !h.value.taskId) continue;
      const t = await this.tasks.get(h.value.taskId);
      if (!t || t.status === 'running') continue;
      const next: DrsHistoryEntry = { ...h.value, status: t.status };
      if (t.error) next.error = t.error.message;
      await this.store.txn({ put: [{ key: h.key, value: next }] });
    }
    if (all.length > 200) {
      const old = all.sort((a, b) => (a.key < b.key ? -1 : 1)).slice(0, all.length - 200);
      await this.store.txn({ delete: old.map((o) => o.key) });
    }
  }

  /** Every ready host's load from its powered-on VMs (their QEMU's CPU use over the last minute). */
  private async measure(): Promise<{ hosts: (HostLoad & { cpus: number })[]; loads: Map<string, VmLoad[]> }> {
    const [nodes, vms] = await Promise.all([
      this.registry.schedNodes([], (n) => this.router.reachable(n)),
      this.store.list<VmRecord>(keys.vms),
    ]);
    const hosts: (HostLoad & { cpus: number })[] = [];
    const loads = new Map<string, VmLoad[]>();
    for (const n of nodes) {
      if (!n.ready || n.maintenance) continue;
      const mine = vms
        .map((v) => v.value)
        .filter((v) => v.node === n.name && isPoweredOn(v, (id) => this.router.hasProcess(id)));
      const list: VmLoad[] = [];
      for (const vm of mine) {
        if (vm.migration || vm.template) continue;
        const points = await Promise.resolve(this.router.on(n.name).vmMetrics(vm.id, 'fine')).catch(() => []);
        const cpu = points
          .filter((p) => Date.now() - p.t < 70_000)
          .map((p) => p.cpuPercent)
          .filter((x): x is number => typeof x === 'number');
        const pct = cpu.length ? cpu.reduce((a, b) => a + b, 0) / cpu.length : 0;
        list.push({ vm, cores: (pct / 100) * vm.vcpus });
      }
      // a VM pinned here is not a candidate, but its load counts
      loads.set(
        n.name,
        list.filter((l) => l.vm.placement?.node !== n.name),
      );
      const cpus = Math.max(1, n.cpus);
      hosts.push({
        node: n.name,
        cpus,
        cpuLoad: list.reduce((a, l) => a + l.cores, 0) / cpus,
        memoryLoad: mine.reduce((a, v) => a + v.memoryMiB * 1024 ** 2, 0) / Math.max(1, n.memoryBytes),
        vms: mine.length,
      });
    }
    return { hosts, loads };
  }
}
