/**
 * The HA runner on the leader: every second it observes the hosts (health leases, probes of the silent
 * ones) and the VMs, hands them to the HaManager, and carries out what it decides: storage fencing of a
 * failed host (its RBD clients blocklisted and their locks removed, from this controller's host), then
 * each HA VM handed to a surviving host (a new ownership epoch; the reconciler starts it there), each as
 * a task, with the recovery timeline saved in etcd so the next leader carries it on.
 */
import { RemoteNode } from '../../cluster/grpc/remote-node';
import { NfError } from '../../errors';
import type { Store } from '../../store/store';
import { createLogger } from '../../util/log';
import { admissionBump, admissionTickets, failoverHosts, failoverVm } from '../admission';
import type { NodeRegistry } from '../node-registry';
import type { NodeRouter } from '../node-router';
import { loadClusterState, toSched } from '../placement';
import type { Reconciler } from '../reconciler';
import { type ImageRecord, keys, type NodeRecord, type VmRecord } from '../records';
import type { TaskLog } from '../tasks';
import { failoverCheck } from './failover';
import {
  type HaAction,
  HaManager,
  type HaVm,
  type HostHaState,
  type HostSeen,
  type Recovery,
} from './manager';
import { VmMonitor } from './monitor';
import {
  DEFAULT_HA_POLICY,
  DEFAULT_HA_SETTINGS,
  DETECTION_MAX_SEC,
  DETECTION_MIN_SEC,
  type HaPolicy,
  type HaSettings,
  MONITORING_MAX_SEC,
  MONITORING_MIN_SEC,
  selfFenceMs,
} from './policy';
import { NO_OTHER_HOST, protection } from './protection';
import type { HaStatus, RecoveryRecord, VmHaView } from './views';

const log = createLogger('ha');

export interface HaDeps {
  store: Store;
  router: NodeRouter;
  registry: NodeRegistry;
  tasks: TaskLog;
  reconciler: Reconciler;
  /** Blocklists a failed host's clients (its addresses) on volumes of a shared pool, from this host. */
  fenceRbd(pool: string, volumes: string[], ips: string[]): Promise<string[]>;
  /** Whether this controller leads now (a tick of a former leader does nothing). */
  isLeader(): boolean;
}

/** How long the leader keeps trying to stop the stale copies of a host that came back. */
const REAP_FOR_MS = 180_000;

/** Heartbeats this late (3 missed) make the leader probe the host. */
const OVERDUE_MS = 3000;

/** Recoveries kept in etcd (the newest). */
const KEEP_RECOVERIES = 50;

export class HaService {
  private manager?: HaManager;
  private timer?: Timer;
  private ticking = false;
  private cached: HaSettings = { ...DEFAULT_HA_SETTINGS };
  /** Recovery id → task id of each VM restart, and the resolver of its task. */
  private readonly tasksOf = new Map<string, string>();
  private readonly waiters = new Map<string, (r: { ok: boolean; message: string }) => void>();
  private readonly monitor = new VmMonitor();
  /** Leadership runs (start/stop), so a start that read while leadership was lost gives up. */
  private runs = 0;
  private restarts: Promise<unknown> = Promise.resolve();

  constructor(private readonly d: HaDeps) {}

  async settings(): Promise<HaSettings> {
    const saved = (await this.d.store.get<Partial<HaSettings>>(keys.haSettings))?.value;
    this.cached = { ...DEFAULT_HA_SETTINGS, ...saved };
    return { ...this.cached };
  }

  async setSettings(patch: Partial<HaSettings>): Promise<HaSettings> {
    const cur = await this.settings();
    const next: HaSettings = {
      ...cur,
      ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)),
    };
    seconds('detectionSec', next.detectionSec, DETECTION_MIN_SEC, DETECTION_MAX_SEC);
    seconds('monitoringTimeoutSec', next.monitoringTimeoutSec, MONITORING_MIN_SEC, MONITORING_MAX_SEC);
    if (!Number.isInteger(next.tolerateHostFailures) || next.tolerateHostFailures < 0)
      throw new NfError('validation_failed', 'tolerateHostFailures must be a whole number, 0 or more');
    await this.d.store.txn({ put: [{ key: keys.haSettings, value: next }] });
    this.cached = next;
    this.manager?.setDetection(next.detectionSec * 1000);
    log.info('HA settings changed', { ...next });
    return next;
  }

  /** The self-fence window hosts are told with each acknowledged heartbeat. */
  selfFenceMs(): number {
    return selfFenceMs(this.cached);
  }

  /** Health leases last the detection time. */
  detectionSec(): number {
    return this.cached.detectionSec;
  }

  /** On becoming the leader: a new manager that carries on the recoveries an earlier leader left. */
  async start(): Promise<void> {
    if (this.timer) return;
    const run = ++this.runs;
    // The grace of a new leader counts from here, before the reads below.
    const since = performance.now();
    await this.settings().catch(() => {});
    const open = (await this.records().catch(() => [])).filter((r) => r.status !== 'done');
    // Leadership lost (stop()) or a later start while reading: this run is over.
    if (run !== this.runs || this.timer) return;
    this.begin(since, open);
  }

  private begin(since: number, open: RecoveryRecord[]): void {
    const m = new HaManager(this.cached.detectionSec * 1000, since, () => crypto.randomUUID());
    m.load(open.map((r) => fromRecord(r)));
    for (const r of open) for (const v of r.vms) if (v.taskId) this.tasksOf.set(`${r.id}:${v.id}`, v.taskId);
    this.manager = m;
    if (open.length)
      log.info('carrying on HA recoveries of an earlier leader', { hosts: open.map((r) => r.host) });
    this.timer = setInterval(() => void this.tick(), 1000);
  }

  stop(): void {
    this.runs++;
    clearInterval(this.timer);
    this.timer = undefined;
    this.manager = undefined;
  }

  /** The reconciler leaves alone a VM whose failed host HA is recovering (it moves it elsewhere). */
  holds(vm: VmRecord): boolean {
    return !!vm.node && !!this.manager?.recovering(vm.node);
  }

  async records(): Promise<RecoveryRecord[]> {
    return (await this.d.store.list<RecoveryRecord>(keys.haRecoveries))
      .map((r) => r.value)
      .sort((a, b) => (a.detectedAt < b.detectedAt ? 1 : -1));
  }

  async status(): Promise<HaStatus> {
    const [settings, nodes, vms, images, recoveries] = await Promise.all([
      this.settings(),
      this.d.registry.list().then((l) => l.map((n) => n.value)),
      this.d.store.list<VmRecord>(keys.vms).then((l) => l.map((v) => v.value)),
      this.d.store.list<ImageRecord>(keys.images).then((l) => l.map((i) => i.value)),
      this.records(),
    ]);
    const unprotectedVms: HaStatus['unprotectedVms'] = [];
    let protectedVms = 0;
    for (const vm of vms) {
      const p = protection(vm, nodes, images);
      if (p.state === 'protected') protectedVms++;
      else if (p.state === 'unprotected')
        unprotectedVms.push({ id: vm.id, name: vm.name, reason: p.reason! });
    }
    return {
      settings,
      hosts: nodes.map((n) => ({ name: n.name, state: this.manager?.hostState(n.name) ?? 'online' })),
      admission: admissionCheck(settings, nodes, vms),
      protectedVms,
      unprotectedVms,
      recoveries,
    };
  }

  /** A VM's HA policy and protection (GET /vms/{id}/ha). */
  async vmHa(vm: VmRecord): Promise<VmHaView> {
    const [nodes, images] = await Promise.all([
      this.d.registry.list().then((l) => l.map((n) => n.value)),
      this.d.store.list<ImageRecord>(keys.images).then((l) => l.map((i) => i.value)),
    ]);
    const view: VmHaView = {
      policy: { ...DEFAULT_HA_POLICY, ...vm.ha },
      protection: protection(vm, nodes, images),
    };
    // what VM monitoring knows lives on the leader
    if (vm.ha?.monitoring && this.manager) view.monitoring = this.monitor.view(vm.id, Date.now());
    return view;
  }

  /**
   * Changes a VM's HA policy (PUT /vms/{id}/ha) with compare-and-swap, and tells its host at once when it
   * runs (the isolation response applies from now, not from the next start).
   */
  async setVmHa(id: string, patch: Partial<HaPolicy>): Promise<VmHaView> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.d.store.get<VmRecord>(keys.vm(id));
      if (!cur) throw new NfError('not_found', `no VM ${id}`);
      if (cur.value.template) throw new NfError('invalid_state', 'a template never runs: HA does not apply');
      const next = structuredClone(cur.value);
      next.ha = HaService.policy(cur.value.ha, patch);
      next.updatedAt = new Date().toISOString();
      try {
        await this.d.store.txn({
          when: [{ key: cur.key, revision: cur.revision }],
          put: [{ key: cur.key, value: next }],
        });
      } catch (err) {
        if (NfError.isCode(err, 'conflict') && attempt < 5) continue;
        throw err;
      }
      const out = await this.vmHa(next);
      if (next.node && this.d.router.hasProcess(id)) {
        // the same rule as at start (VmService.runSpec)
        await this.d.router
          .setIsolation(id, out.protection.state === 'protected' ? next.ha.isolationResponse : undefined)
          .catch((err: Error) =>
            log.warn('the host did not take the new isolation response (it applies at the next start)', {
              vm: next.name,
              err: err.message,
            }),
          );
      }
      log.info('VM HA policy changed', { vm: next.name, ...next.ha });
      return out;
    }
  }

  /** Sets a VM's HA policy (PUT /vms/{id}/ha). */
  static policy(cur: HaPolicy | undefined, patch: Partial<HaPolicy>): HaPolicy {
    const next: HaPolicy = {
      ...DEFAULT_HA_POLICY,
      ...cur,
      ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)),
    };
    if (!Number.isInteger(next.restartOrder) || next.restartOrder < 0 || next.restartOrder > 1000)
      throw new NfError('validation_failed', 'ha.restartOrder must be a whole number from 0 to 1000');
    return next;
  }

  private async tick(): Promise<void> {
    const m = this.manager;
    if (!m || this.ticking || !this.d.isLeader()) return;
    this.ticking = true;
    try {
      await this.settings();
      const [nodes, health, vms] = await Promise.all([
        this.d.registry.list().then((l) => l.map((n) => n.value)),
        this.d.registry.health(),
        this.d.store.list<VmRecord>(keys.vms).then((l) => l.map((v) => v.value)),
      ]);
      const hosts: HostSeen[] = await Promise.all(
        nodes.map(async (n): Promise<HostSeen> => {
          const h = health.get(n.name);
          // Heartbeats arrive (the last within 3 s): nothing to ask.
          if (h && Date.now() - Date.parse(h.at) < OVERDUE_MS) return { name: n.name, leased: true };
          // The second path: the host's node service, asked directly with a short deadline. Asked as soon
          // as heartbeats are overdue, not only once the lease expired: an answered probe is contact for
          // the host's self-fence, which would otherwise fire before the lease runs out.
          const probeOk = await this.d.router
            .on(n.name)
            .probe()
            .then(
              () => true,
              () => false,
            );
          return { name: n.name, leased: !!h, probeOk };
        }),
      );
      // Protection matters for the VMs of hosts that went silent (a recovery lists them): the images are
      // read, and the VMs judged, only then, not every second for every VM.
      const silent = new Set(hosts.filter((h) => h.probeOk !== undefined).map((h) => h.name));
      const images = silent.size
        ? (await this.d.store.list<ImageRecord>(keys.images)).map((i) => i.value)
        : [];
      const seen: HaVm[] = vms
        .filter((v) => v.node && !v.template)
        .map((v) => {
          this.d.router.locate(v.id, v.node);
          const s = this.d.router.vmStatus(v.id);
          const x: HaVm = {
            id: v.id,
            name: v.name,
            node: v.node,
            poweredOn: v.power !== 'stopped',
            running: s.state === 'running' || s.state === 'paused',
          };
          if (v.ha) x.ha = v.ha;
          if (silent.has(v.node)) {
            const p = protection(v, nodes, images);
            if (p.state === 'unprotected' && p.reason !== NO_OTHER_HOST) x.unprotected = p.reason;
          }
          if (v.migration) x.unprotected = `a migration to ${v.migration.target} was under way`;
          return x;
        });
      await this.apply(m, m.tick(performance.now(), hosts, seen));
      await this.monitorVms(vms, new Set(hosts.filter((h) => h.leased).map((h) => h.name)));
    } catch (err) {
      log.warn('HA pass failed', { err: (err as Error).message });
    } finally {
      this.ticking = false;
    }
  }

  private async apply(m: HaManager, actions: HaAction[]): Promise<void> {
    for (const a of actions) {
      if (a.kind === 'save') await this.save(a.recovery);
      else if (a.kind === 'fence') {
        log.warn('fencing the storage of a failed host before restarting its HA VMs', { host: a.host });
        const t0 = performance.now();
        void this.fence(a.host, a.vms).then(
          (detail) => {
            log.warn('storage of the failed host fenced', {
              host: a.host,
              ms: Math.round(performance.now() - t0),
              detail,
            });
            return this.apply(m, m.fenced(performance.now(), a.recovery, { ok: true, detail }));
          },
          (err: Error) => {
            log.error('fencing failed; HA VMs stay down until it succeeds', {
              host: a.host,
              err: err.message,
            });
            return this.apply(m, m.fenced(performance.now(), a.recovery, { ok: false, error: err.message }));
          },
        );
      } else if (a.kind === 'reap') {
        void this.reap(a.host, a.vms);
      } else if (a.kind === 'restart') {
        // One at a time: restarts to the same host would otherwise conflict on its admission key.
        this.restarts = this.restarts
          .then(() => this.restart(a.recovery, a.vm, a.host))
          .then((result) => this.apply(m, m.restarted(performance.now(), a.recovery, a.vm, result)))
          .catch((err: Error) => log.warn('HA restart step failed', { err: err.message }));
      }
    }
  }

  /**
   * VM monitoring: each monitored HA VM on a live host is judged every second; a hung guest (its agent
   * silent for the timeout after it had answered, and no disk I/O meanwhile) is reset, as a task.
   */
  private async monitorVms(vms: VmRecord[], live: Set<string>): Promise<void> {
    const watched = vms.filter(
      (v) => v.ha?.enabled && v.ha.monitoring && v.power === 'running' && !v.migration && live.has(v.node),
    );
    this.monitor.forget(new Set(watched.map((v) => v.id)));
    const timeoutMs = this.cached.monitoringTimeoutSec * 1000;
    for (const vm of watched) {
      const s = this.d.router.vmStatus(vm.id);
      const running = s.state === 'running';
      const verdict = this.monitor.judge(vm.id, { running, agent: s.agent?.status }, Date.now(), timeoutMs);
      if (verdict.kind === 'limit') {
        log.warn('VM monitoring: the guest looks hung but was reset too often', {
          vm: vm.name,
          why: verdict.message,
        });
        continue;
      }
      if (verdict.kind !== 'check-io') continue;
      const points = await Promise.resolve(this.d.router.vmMetrics(vm.id, 'fine')).catch(() => []);
      const io = points.map((p) => ({
        t: p.t,
        diskReadBps: p.diskReadBps ?? null,
        diskWriteBps: p.diskWriteBps ?? null,
      }));
      if (!VmMonitor.idle(io, verdict.sinceMs)) {
        this.monitor.busy(vm.id, Date.now());
        continue;
      }
      this.monitor.reset(vm.id, Date.now());
      const why = `its guest agent has not answered for ${this.cached.monitoringTimeoutSec} s and its disks saw no I/O`;
      log.warn('VM monitoring resets a hung guest', { vm: vm.name, node: vm.node, why });
      await this.d.tasks
        .start('vm.ha-reset', vm.name, 'ha', () => this.d.router.resetVm(vm.id), {
          details: { why, node: vm.node },
        })
        .catch((err: Error) =>
          log.warn('VM monitoring could not reset a guest', { vm: vm.name, err: err.message }),
        );
    }
  }

  /** Stops the stale copies a failed host that answers again still runs of VMs HA moved away. */
  private async reap(host: string, vmIds: string[]): Promise<void> {
    // The host's lease comes back with its first heartbeat; the leader's connection to its node service
    // and the host's re-attach of its QEMUs may take a little longer: try until it is done (3 min).
    const deadline = Date.now() + REAP_FOR_MS;
    let left = [...vmIds];
    for (let attempt = 0; left.length > 0; attempt++) {
      const next: string[] = [];
      for (const id of left) {
        const vm = (await this.d.store.get<VmRecord>(keys.vm(id)).catch(() => undefined))?.value;
        if (!vm || vm.node === host) continue;
        try {
          const n = this.d.router.on(host);
          await n.stopVm(id, { force: true });
          const still = n instanceof RemoteNode ? await n.fetchHasProcess(id) : n.hasProcess(id);
          if (still) throw new NfError('unavailable', 'its QEMU is still there');
          log.info('no stale copy left on a host that came back', { vm: vm.name, host, now: vm.node });
        } catch (err) {
          next.push(id);
          if (Date.now() >= deadline)
            log.error('cannot stop a stale copy on a host that came back; stop it by hand', {
              vm: vm.name,
              host,
              err: (err as Error).message,
            });
        }
      }
      if (Date.now() >= deadline || this.manager === undefined) return;
      left = next;
      if (left.length) await Bun.sleep(Math.min(5000, 500 * 2 ** attempt));
    }
  }

  /** Storage fencing: the failed host's RBD clients of these VMs' disks are blocklisted, locks removed. */
  private async fence(host: string, vmIds: string[]): Promise<string> {
    const rec = await this.d.registry.find(host);
    const ips = rec.value.addresses;
    const byPool = new Map<string, string[]>();
    for (const id of vmIds) {
      const vm = (await this.d.store.get<VmRecord>(keys.vm(id)))?.value;
      for (const disk of vm?.disks ?? [])
        byPool.set(disk.pool, [...(byPool.get(disk.pool) ?? []), disk.volume]);
    }
    const lines: string[] = [];
    for (const [pool, volumes] of byPool) lines.push(...(await this.d.fenceRbd(pool, volumes, ips)));
    return lines.length
      ? lines.join('; ')
      : `no client of host ${host} had these disks open (its QEMUs were gone); nothing to blocklist`;
  }

  /** Hands a VM of a failed host to the surviving host with most room; the reconciler starts it there. */
  private async restart(
    recovery: string,
    vmId: string,
    failed: string,
  ): Promise<{ ok: true; target: string } | { ok: false; error: string; gone?: boolean }> {
    try {
      const cur = await this.d.store.get<VmRecord>(keys.vm(vmId));
      if (!cur) return { ok: false, error: 'deleted meanwhile', gone: true };
      const vm = cur.value;
      if (vm.node !== failed) return { ok: false, error: `now on host ${vm.node}`, gone: true };
      if (vm.power === 'stopped') return { ok: false, error: 'stopped meanwhile', gone: true };
      // the tickets before the VMs: a power-on committed after this read fails our write (admissionBump)
      const tickets = await admissionTickets(this.d.store);
      const vms = await this.d.store.list<VmRecord>(keys.vms);
      const { state, imageNode } = await loadClusterState(
        this.d.store,
        this.d.router,
        this.d.registry,
        vms,
        vm.id,
      );
      const sched = toSched(vm, imageNode, { pins: false });
      const health = await this.d.registry.health();
      const candidates = (await this.d.registry.list())
        .map((n) => n.value)
        .filter((n) => n.name !== failed && !n.maintenance && health.has(n.name));
      let best: { node: string; score: number } | undefined;
      const why: string[] = [];
      for (const n of candidates) {
        const p = state.place({ ...sched, node: n.name });
        if (p.ok && (!best || p.score > best.score)) best = { node: n.name, score: p.score };
        else if (!p.ok) why.push(`${n.name}: ${p.reason}`);
      }
      if (!best)
        return {
          ok: false,
          error: `no surviving host can run it${why.length ? ` (${why.join('; ')})` : ' (no other host is up)'}`,
        };
      const bump = admissionBump(best.node, tickets.get(best.node));
      const next: VmRecord = structuredClone(vm);
      next.node = best.node;
      next.epoch = Number(cur.revision);
      next.generation++;
      delete next.runningGeneration;
      delete next.lastError;
      next.updatedAt = new Date().toISOString();
      await this.d.store.txn({
        when: [{ key: cur.key, revision: cur.revision }, bump.when],
        put: [{ key: cur.key, value: next }, bump.put],
      });
      this.d.router.locate(vm.id, best.node);
      this.d.reconciler.wake();
      log.warn('HA restarts a VM of a failed host', {
        vm: vm.name,
        from: failed,
        to: best.node,
        memoryMiB: vm.memoryMiB,
        epoch: next.epoch,
      });
      await this.openTask(recovery, vm, failed, best.node);
      return { ok: true, target: best.node };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  /** The restart's task: it ends when the manager sees the VM run on its new host (or gives it up). */
  private async openTask(recovery: string, vm: VmRecord, from: string, to: string): Promise<void> {
    const t = await this.d.tasks
      .start(
        'vm.ha-restart',
        vm.name,
        'ha',
        () =>
          new Promise<unknown>((resolve, reject) => {
            this.waiters.set(`${recovery}:${vm.id}`, (r) =>
              r.ok ? resolve({ from, to }) : reject(new NfError('unavailable', r.message)),
            );
          }),
        { details: { from, to } },
      )
      .catch(() => undefined);
    if (t) this.tasksOf.set(`${recovery}:${vm.id}`, t.id);
  }

  private async save(r: Recovery): Promise<void> {
    const rec = toRecord(r, (vmId) => this.tasksOf.get(`${r.id}:${vmId}`));
    // End the tasks of restarts that ended.
    for (const v of r.vms) {
      const key = `${r.id}:${v.id}`;
      const done = v.state === 'running' || v.state === 'gone' || v.state === 'failed';
      if (!done) continue;
      const ok = v.state === 'running';
      const msg = ok ? `running on ${v.target}` : (v.error ?? v.state);
      const w = this.waiters.get(key);
      if (w) {
        this.waiters.delete(key);
        w({ ok, message: msg });
      } else {
        const taskId = this.tasksOf.get(key);
        if (taskId) void this.d.tasks.settle(taskId, ok, msg).catch(() => {});
      }
      this.tasksOf.delete(key);
    }
    try {
      await this.d.store.txn({ put: [{ key: keys.haRecovery(r.id), value: rec }] });
    } catch (err) {
      log.warn('cannot save the HA recovery', { host: r.host, err: (err as Error).message });
    }
    if (r.status === 'done') {
      log.info('HA recovery done', { host: r.host, durationSec: rec.durationSec });
      void this.trim();
    }
  }

  private async trim(): Promise<void> {
    const all = await this.records().catch(() => []);
    const old = all.slice(KEEP_RECOVERIES);
    if (old.length) await this.d.store.txn({ delete: old.map((r) => keys.haRecovery(r.id)) }).catch(() => {});
  }
}

function seconds(field: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max)
    throw new NfError(
      'validation_failed',
      `${field} must be a whole number of seconds from ${min} to ${max}`,
    );
}

/** ms of performance.now() to an ISO time, and back (a record read by another leader). */
function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(Date.now() - (performance.now() - ms)).toISOString();
}
function mono(t: string | undefined): number | undefined {
  return t === undefined ? undefined : performance.now() - (Date.now() - Date.parse(t));
}

function toRecord(r: Recovery, taskOf: (vmId: string) => string | undefined): RecoveryRecord {
  const rec: RecoveryRecord = {
    ...structuredClone(r),
    detectedAt: iso(r.detectedAt)!,
    fencedAt: iso(r.fencedAt),
    returnedAt: iso(r.returnedAt),
    endedAt: iso(r.endedAt),
    vms: r.vms.map((v) => {
      const { retryAt: _, ...rest } = v;
      return { ...rest, restartedAt: iso(v.restartedAt), runningAt: iso(v.runningAt), taskId: taskOf(v.id) };
    }),
  };
  if (r.endedAt !== undefined) rec.durationSec = Math.round((r.endedAt - r.detectedAt) / 100) / 10;
  return JSON.parse(JSON.stringify(rec)) as RecoveryRecord; // drops the undefined fields
}

function fromRecord(rec: RecoveryRecord): Recovery {
  const { durationSec: _, ...r } = rec;
  const out: Recovery = {
    ...structuredClone(r),
    detectedAt: mono(r.detectedAt)!,
    vms: r.vms.map((v) => {
      const { taskId: _t, ...rest } = v;
      const x: Recovery['vms'][number] = {
        ...rest,
        restartedAt: mono(v.restartedAt),
        runningAt: mono(v.runningAt),
      };
      // A restart in flight when the earlier leader died is judged again.
      if (x.state === 'restarting') x.state = 'waiting';
      return JSON.parse(JSON.stringify(x)) as Recovery['vms'][number];
    }),
  } as Recovery;
  if (r.fencedAt) out.fencedAt = mono(r.fencedAt);
  else delete out.fencedAt;
  if (r.returnedAt) out.returnedAt = mono(r.returnedAt);
  else delete out.returnedAt;
  if (r.endedAt) out.endedAt = mono(r.endedAt);
  else delete out.endedAt;
  return out;
}

/** GET /ha's admission line: failoverCheck over the powered-on VMs and the hosts outside maintenance. */
export function admissionCheck(
  s: HaSettings,
  nodes: NodeRecord[],
  vms: VmRecord[],
): { ok: boolean; message: string } {
  const on = vms.filter((v) => v.node && v.power !== 'stopped' && !v.template);
  const c = failoverCheck(s.tolerateHostFailures, failoverHosts(nodes), on.map(failoverVm));
  return { ok: c.ok, message: c.message };
}
