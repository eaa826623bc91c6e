import { NfError, toNfError } from '../errors';
import type { LocalDiskRef, NodeApi } from '../node/types';
import type { Store, Versioned } from '../store/store';
import { bytes } from '../util/format';
import { createLogger } from '../util/log';
import { DEFAULT_POLICY, type MigrationPolicy, type MigrationProgress } from '../vmm/migration';
import { CPU_LEVELS } from '../vmm/types';
import type { NodeRegistry } from './node-registry';
import type { NodeRouter } from './node-router';
import { loadClusterState, toSched } from './placement';
import {
  type ImageRecord,
  isoImagesOf,
  keys,
  type NodeRecord,
  type PoolRecord,
  type TaskRecord,
  type VmRecord,
} from './records';
import { type TaskControl, TaskLog } from './tasks';
import type { VmService } from './vms';

const log = createLogger('migration');

export interface MigrateOptions {
  node?: string;
  maxBandwidthMiBps?: number;
  policy?: Partial<Omit<MigrationPolicy, 'maxBandwidthMiBps'>>;
}

interface Plan {
  /** Set once the VM is claimed for the task. */
  taskId?: string;
  vm: VmRecord;
  source: string;
  target: string;
  /** Why the scheduler chose the target (when the caller did not). */
  why?: string;
  localDisks: LocalDiskRef[];
  policy: MigrationPolicy;
}

/**
 * Live migration of a running VM to another host (vMotion), as a task: checks first (nothing moves when
 * one fails), then the target prepares (a paused QEMU waiting for the stream; new volumes for local
 * disks), the source copies local disks and memory over TLS, and once QEMU completed the guest runs on
 * the target and the record follows. A failure or cancel before that leaves the guest running on the
 * source and removes what the target made. The record carries the migration while it runs, so the
 * reconciler leaves the VM alone and a new leader can finish or undo it (resolve()).
 */
export class Migrations {
  /** VMs whose migration this controller drives now (resolve() leaves them alone). */
  private readonly active = new Set<string>();
  private timer?: Timer;

  constructor(
    private readonly store: Store,
    private readonly vms: VmService,
    private readonly router: NodeRouter,
    private readonly registry: NodeRegistry,
    private readonly tasks: TaskLog,
  ) {}

  /** On the leader: every few seconds, migrations left behind by a controller that died are settled. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.resolveAll(), 5000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Checks everything, claims the VM and starts the task (202); the task does the rest. */
  async migrate(ref: string, opts: MigrateOptions, user: string): Promise<TaskRecord> {
    const cur = await this.vms.find(ref);
    const plan = await this.plan(cur.value, opts);
    const taskId = TaskLog.newId();
    plan.taskId = taskId;
    await this.claim(cur, plan, taskId);
    this.active.add(plan.vm.id);
    try {
      return await this.tasks.start(
        'vm.migrate',
        plan.vm.name,
        user,
        (progress, ctl) => this.run(plan, progress, ctl),
        {
          id: taskId,
          cancellable: true,
          details: {
            source: plan.source,
            target: plan.target,
            phase: 'preparing',
            ...(plan.why ? { why: plan.why } : {}),
          },
        },
      );
    } catch (err) {
      this.active.delete(plan.vm.id);
      await this.release(plan.vm.id, taskId);
      throw err;
    }
  }

  /**
   * Empties a host that entered maintenance mode, as a task (`node.evacuate`): running and paused VMs
   * are live-migrated away a few at a time (smallest first, the scheduler picks each target); stopped VMs
   * whose disks are all shared are re-homed; what cannot move is reported with why. The task fails
   * (listing them) when any VM stays; it stops starting new moves when cancelled or when the host leaves
   * maintenance mode.
   */
  async evacuate(node: string, user: string, parallel = 2): Promise<TaskRecord> {
    const running = (await this.tasks.list(100)).find(
      (t) => t.type === 'node.evacuate' && t.target === node && t.status === 'running',
    );
    if (running) return running;
    return this.tasks.start(
      'node.evacuate',
      node,
      user,
      (progress, ctl) => this.runEvacuation(node, user, parallel, progress, ctl),
      {
        cancellable: true,
        details: { phase: 'planning', moved: [], stayed: [], moving: [] },
      },
    );
  }

  private async runEvacuation(
    node: string,
    user: string,
    parallel: number,
    progress: (p: number) => void,
    ctl: TaskControl,
  ): Promise<void> {
    let stopAsked: string | undefined;
    ctl.onCancel((reason) => {
      stopAsked ??= reason;
    });
    const shared = new Set((await this.store.list<PoolRecord>(keys.pools)).map((p) => p.value.name));
    const vms = (await this.store.list<VmRecord>(keys.vms))
      .map((v) => v.value)
      .filter((v) => v.node === node);
    const moved: { vm: string; to: string }[] = [];
    const stayed: { vm: string; reason: string }[] = [];
    const live: VmRecord[] = [];
    for (const vm of vms) {
      const st = this.router.vmStatus(vm.id);
      const up = st.state === 'running' || st.state === 'paused' || this.router.hasProcess(vm.id);
      if (vm.placement?.node === node)
        stayed.push({ vm: vm.name, reason: `pinned to ${node} (placement.node)` });
      else if (up) live.push(vm);
      else if (vm.disks.every((d) => shared.has(d.pool))) {
        const to = await this.rehome(vm).catch((err: Error) => {
          stayed.push({ vm: vm.name, reason: err.message });
          return undefined;
        });
        if (to) moved.push({ vm: vm.name, to });
      } else
        stayed.push({
          vm: vm.name,
          reason:
            'stopped, with disks on this host’s local pool (start it and migrate it, or move its disks to a shared pool)',
        });
    }
    // smallest first: most VMs leave soonest
    live.sort((a, b) => a.memoryMiB - b.memoryMiB || a.name.localeCompare(b.name));
    const total = vms.length;
    const report = (moving: string[]) => {
      ctl.details({ phase: 'migrating', moved, stayed, moving, total });
      progress(total ? (moved.length + stayed.length) / total : 1);
    };
    report([]);
    const queue = [...live];
    const moving = new Set<string>();
    const one = async (vm: VmRecord) => {
      moving.add(vm.name);
      report([...moving]);
      try {
        const task = await this.migrate(vm.id, {}, user);
        const done = await this.waitTask(task.id, () => stopAsked);
        if (done.status === 'ok') moved.push({ vm: vm.name, to: String(done.result?.target ?? '') });
        else stayed.push({ vm: vm.name, reason: done.error?.message ?? 'the migration failed' });
      } catch (err) {
        stayed.push({ vm: vm.name, reason: (err as Error).message });
      } finally {
        moving.delete(vm.name);
        report([...moving]);
      }
    };
    const worker = async () => {
      for (;;) {
        if (!stopAsked && (await ctl.cancelRequested())) stopAsked = 'cancelled by an administrator';
        const rec = stopAsked ? undefined : (await this.store.get<NodeRecord>(keys.node(node)))?.value;
        if (!stopAsked && !rec?.maintenance) stopAsked = `host ${node} left maintenance mode`;
        const vm = queue.shift();
        if (!vm) return;
        if (stopAsked) {
          stayed.push({ vm: vm.name, reason: `not moved: ${stopAsked}` });
          continue;
        }
        await one(vm);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
    ctl.details({ phase: 'done', moved, stayed, moving: [], total });
    ctl.result({ moved: moved.length, stayed: stayed.length });
    if (stopAsked && stopAsked.startsWith('cancelled'))
      throw new NfError('cancelled', `evacuation of ${node} ${stopAsked}; ${moved.length} VM(s) moved`);
    if (stayed.length > 0)
      throw new NfError(
        'invalid_state',
        `${stayed.length} VM(s) stay on ${node}: ${stayed.map((x) => `${x.vm} (${x.reason})`).join('; ')}`,
        { moved, stayed },
      );
  }

  /** A stopped VM on shared disks gets another host (the scheduler's choice, define mode). */
  private async rehome(vm: VmRecord): Promise<string> {
    const vmsList = await this.store.list<VmRecord>(keys.vms);
    const { state, imageNode } = await loadClusterState(
      this.store,
      this.router,
      this.registry,
      vmsList,
      vm.id,
    );
    const sched = toSched(vm, imageNode, { pins: false });
    const nodes = (await this.registry.list())
      .map((n) => n.value)
      .filter((n) => n.name !== vm.node && !n.maintenance);
    let best: { node: string; score: number } | undefined;
    for (const n of nodes) {
      const p = state.place({ ...sched, node: n.name }, { mode: 'define' });
      if (p.ok && (!best || p.score > best.score)) best = { node: n.name, score: p.score };
    }
    if (!best) throw new NfError('insufficient_capacity', 'stopped; no other host can hold it');
    const cur = await this.vms.find(vm.id);
    if (cur.value.node !== vm.node || cur.value.migration || cur.value.power !== 'stopped')
      throw new NfError('conflict', 'changed meanwhile');
    await this.store.txn({
      when: [{ key: cur.key, revision: cur.revision }],
      put: [{ key: cur.key, value: { ...cur.value, node: best.node, updatedAt: new Date().toISOString() } }],
    });
    this.router.locate(vm.id, best.node);
    return best.node;
  }

  /** Waits for a task to end; asks it to cancel once `stop` says so. */
  private async waitTask(id: string, stop: () => string | undefined): Promise<TaskRecord> {
    let asked = false;
    for (;;) {
      const t = await this.tasks.get(id);
      if (!t) throw new NfError('internal', `task ${id} vanished`);
      if (t.status !== 'running') return t;
      if (stop() && !asked) {
        asked = true;
        await this.tasks.cancel(id, 'evacuation').catch(() => {});
      }
      await Bun.sleep(250);
    }
  }

  /** Whether the VM could move to the host now (every check of migrate, nothing started). */
  async check(ref: string, node: string): Promise<void> {
    await this.plan((await this.vms.find(ref)).value, { node });
  }

  /** Every check before anything moves; a refusal names what failed. */
  private async plan(vm: VmRecord, opts: MigrateOptions): Promise<Plan> {
    if (vm.template)
      throw new NfError('invalid_state', `VM "${vm.name}" is a template; templates do not run`);
    if (vm.migration)
      throw new NfError(
        'invalid_state',
        `VM "${vm.name}" is being migrated already (task ${vm.migration.taskId})`,
      );
    const source = vm.node;
    if (!source) throw new NfError('invalid_state', `VM "${vm.name}" has no host yet`);
    const st = this.router.vmStatus(vm.id);
    if (vm.power === 'stopped' || (st.state !== 'running' && st.state !== 'paused'))
      throw new NfError(
        'invalid_state',
        `VM "${vm.name}" is not running (${st.state}); a stopped VM is moved by starting it elsewhere`,
      );
    if (st.migration)
      throw new NfError(
        'invalid_state',
        `VM "${vm.name}" is part of a migration on host ${source} (${st.migration})`,
      );
    if (!this.router.reachable(source))
      throw new NfError('unavailable', `host ${source} of VM "${vm.name}" is not reachable`);
    if (opts.node === source)
      throw new NfError('validation_failed', `VM "${vm.name}" already runs on host ${source}`);
    if (vm.placement?.node === source)
      throw new NfError('invalid_state', `VM "${vm.name}" is pinned to host ${source} (placement.node)`);
    const sharedPools = new Set((await this.store.list<PoolRecord>(keys.pools)).map((p) => p.value.name));
    const local = vm.disks.filter((d) => !sharedPools.has(d.pool));
    if (local.length > 0 && opts.policy?.postcopy)
      throw new NfError(
        'validation_failed',
        `VM "${vm.name}" has disks on a local pool: post-copy needs every disk on shared storage (the disks must be in step before the guest runs on the target)`,
      );
    if (local.length > 0 && vm.snapshots.length > 0)
      throw new NfError(
        'invalid_state',
        `VM "${vm.name}" has snapshots (${vm.snapshots.map((s) => s.name).join(', ')}) on local disks; they cannot move with them: delete them first or move the disks to a shared pool`,
      );
    if (vm.efiVars && !sharedPools.has(vm.efiVars.pool))
      throw new NfError(
        'invalid_state',
        `VM "${vm.name}" keeps its UEFI variables on pool ${vm.efiVars.pool} of host ${source}; live migration moves them only on a shared pool so far`,
      );
    if (vm.tpm)
      throw new NfError(
        'invalid_state',
        `VM "${vm.name}" has a TPM, whose state live migration does not carry yet`,
      );
    for (const iso of isoImagesOf(vm)) {
      const image = (await this.store.get<ImageRecord>(keys.image(iso)))?.value;
      if (image && !image.shared)
        throw new NfError(
          'invalid_state',
          `VM "${vm.name}" has ISO "${image.name}" in a CD-ROM drive, on host ${image.node ?? source}'s local pool; copy it to a shared pool first (or eject it)`,
        );
    }

    const nodes = new Map((await this.registry.list()).map((n) => [n.value.name, n.value]));
    const srcNode = nodes.get(source);
    const vmsList = await this.store.list<VmRecord>(keys.vms);
    const { state, imageNode } = await loadClusterState(
      this.store,
      this.router,
      this.registry,
      vmsList,
      vm.id,
    );
    const sched = toSched(vm, imageNode, { pins: false });
    const candidates = opts.node ? [opts.node] : [...nodes.keys()].filter((n) => n !== source).sort();
    if (opts.node && !nodes.has(opts.node)) throw new NfError('not_found', `no host named "${opts.node}"`);
    const refusals: string[] = [];
    let best: { node: string; score: number } | undefined;
    for (const name of candidates) {
      const why = this.incompatible(vm, srcNode, nodes.get(name)!, local);
      if (why) {
        refusals.push(`${name}: ${why}`);
        continue;
      }
      const p = state.place({ ...sched, node: name });
      if (!p.ok) {
        refusals.push(`${name}: ${p.reason.replace(/^[^:]*: 1 host: /, '')}`);
        continue;
      }
      if (!best || p.score > best.score) best = { node: name, score: p.score };
    }
    if (!best) {
      const code = opts.node ? 'invalid_state' : 'insufficient_capacity';
      throw new NfError(
        code,
        opts.node
          ? `VM "${vm.name}" cannot move to host ${refusals[0]}`
          : `no host can take VM "${vm.name}": ${refusals.join('; ') || 'the cluster has no other host'}`,
        { refusals },
      );
    }
    const policy: MigrationPolicy = {
      ...DEFAULT_POLICY,
      ...Object.fromEntries(Object.entries(opts.policy ?? {}).filter(([, v]) => v !== undefined)),
      maxBandwidthMiBps: opts.maxBandwidthMiBps ?? 0,
    };
    const plan: Plan = {
      vm,
      source,
      target: best.node,
      localDisks: local.map((d) => ({ id: d.id, pool: d.pool, volume: d.volume, sizeBytes: d.sizeBytes })),
      policy,
    };
    if (!opts.node)
      plan.why = `the scheduler chose ${best.node}: it passes every check and has the most room left${refusals.length ? ` (not: ${refusals.join('; ')})` : ''}`;
    return plan;
  }

  /** What makes a host unable to receive the VM from its source, beyond the scheduler's filters. */
  private incompatible(
    vm: VmRecord,
    src: NodeRecord | undefined,
    dst: NodeRecord,
    local: VmRecord['disks'],
  ): string | undefined {
    if (dst.maintenance) return 'in maintenance';
    if (!this.router.reachable(dst.name) || !dst.info) return 'not reachable';
    if (!src?.info) return undefined;
    if (dst.info.accelerator !== src.info.accelerator)
      return `accelerator ${dst.info.accelerator}, the VM runs under ${src.info.accelerator}`;
    const model = vm.cpu?.model ?? 'host';
    if (CPU_LEVELS.includes(model)) {
      // a portable level: any host that runs it, whatever its CPU
      if (dst.info.cpuLevels && !dst.info.cpuLevels.includes(model))
        return `cannot run the VM's CPU level ${model} (it runs ${dst.info.cpuLevels.join(', ') || 'none of the x86-64 levels'})`;
    } else if (src.info.accelerator === 'kvm' && dst.info.cpuModel !== src.info.cpuModel)
      return `CPU model "${dst.info.cpuModel}" differs from the source's "${src.info.cpuModel}" (the VM ${model === 'host' ? 'sees the host CPU' : `has CPU model ${model}`}; a portable level such as x86-64-v2 moves between different CPUs)`;
    if (dst.info.qemuVersion !== src.info.qemuVersion)
      return `QEMU ${dst.info.qemuVersion}, the source runs ${src.info.qemuVersion} (the machine type must match)`;
    for (const pool of new Set(vm.disks.map((d) => d.pool)))
      if (!dst.info.pools.some((p) => p.name === pool)) return `does not reach pool ${pool}`;
    const need = local.reduce((a, d) => a + d.sizeBytes, 0);
    const free = dst.info.pools.find((p) => p.name === 'local')?.freeBytes ?? 0;
    if (need > 0 && need > free)
      return `local disks need ${bytes(need)}, its local pool has ${bytes(free)} free`;
    return undefined;
  }

  private async claim(cur: Versioned<VmRecord>, plan: Plan, taskId: string): Promise<void> {
    const next: VmRecord = {
      ...cur.value,
      migration: {
        taskId,
        source: plan.source,
        target: plan.target,
        localDisks: plan.localDisks.map((d) => d.id),
        startedAt: new Date().toISOString(),
      },
      updatedAt: new Date().toISOString(),
    };
    try {
      await this.store.txn({
        when: [{ key: cur.key, revision: cur.revision }],
        put: [{ key: cur.key, value: next }],
      });
    } catch (err) {
      if (NfError.isCode(err, 'conflict'))
        throw new NfError('conflict', `VM "${plan.vm.name}" changed meanwhile; try again`);
      throw err;
    }
  }

  /** Ends the VM's migration in its record; `moved` when the guest now runs on the target. */
  private async release(
    vmId: string,
    taskId: string,
    moved?: { node: string; localDisks: string[] },
  ): Promise<void> {
    const cur = await this.store.get<VmRecord>(keys.vm(vmId));
    if (!cur) return;
    let node: string | undefined;
    await this.vms.reconciler.update(cur, (v) => {
      if (v.migration?.taskId !== taskId) return false; // settled already
      delete v.migration;
      if (moved) {
        v.node = moved.node;
        // local disks are full copies on the target: no image or template under them any more
        for (const d of v.disks)
          if (moved.localDisks.includes(d.id)) {
            delete d.image;
            delete d.cloneOf;
          }
      }
      node = v.node;
      return true;
    });
    if (node !== undefined) this.router.locate(vmId, node);
  }

  private async run(plan: Plan, progress: (p: number) => void, ctl: TaskControl): Promise<void> {
    const { vm, source, target } = plan;
    const src = this.router.on(source);
    const dst = this.router.on(target);
    const taskId = plan.taskId ?? '';
    const diskVolumes = plan.localDisks.map((d) => ({ pool: d.pool, volume: d.volume }));
    let cancelReason: string | undefined;
    const cancel = (reason: string) => {
      cancelReason ??= reason;
      void src.cancelMigration(vm.id, reason).catch(() => {});
    };
    ctl.onCancel(cancel);
    // a cancel asked on another controller, or the target going away, stops the copy
    const watch = setInterval(() => {
      ctl.details({}); // a heartbeat: the leader leaves a migration alone while its task is alive
      if (!this.router.reachable(target)) cancel(`host ${target} went away during the migration`);
      void ctl.cancelRequested().then((asked) => asked && cancel('cancelled by an administrator'));
    }, 1000);
    const t0 = Date.now();
    let completed = false;
    /** The target was told to run the guest and did not answer: only the leader's resolve() may decide. */
    let inDoubt = false;
    try {
      try {
        const spec = await this.vms.runSpec(vm);
        // NICs on overlay networks: their ports bound on both hosts, the target's once the guest is there
        await this.vms.bindPorts(vm, [source, target], true);
        const endpoint = await dst.prepareIncoming({
          spec,
          localDisks: plan.localDisks,
          policy: plan.policy,
        });
        if (cancelReason) throw new NfError('cancelled', cancelReason);
        // The source says "switching" the moment the target holds everything: tell the target to run
        // at once (the guest's pause ends there), while the source finishes its figures.
        let handover: Promise<unknown> | undefined;
        let switchAt = 0;
        let runningAt = 0;
        const result = await src.migrateOut(
          {
            vmId: vm.id,
            target: endpoint,
            targetName: target,
            policy: plan.policy,
            localDisks: plan.localDisks.map((d) => d.id),
          },
          (p) => {
            if (p.phase === 'switching' && !handover) {
              switchAt = Date.now();
              handover = dst.finishIncoming(vm.id).then((st) => {
                runningAt = Date.now();
                return st;
              });
              handover.catch(() => {}); // judged below
            }
            this.report(p, plan, progress, ctl);
          },
        );
        completed = true;
        clearInterval(watch);
        ctl.details({ phase: 'switching' });
        // The source holds the guest paused; the target has its whole state: run it there.
        try {
          await (handover ?? dst.finishIncoming(vm.id));
        } catch (err) {
          const code = toNfError(err).code;
          if (code === 'unavailable' || code === 'timeout') {
            // No answer: the target may run the guest already (a lost reply). Resuming the source could
            // run it twice, so it stays paused there; the leader settles it once the target answers.
            inDoubt = true;
            log.error('the target did not answer when told to run the VM; it stays paused on the source', {
              vm: vm.name,
              target,
              err: (err as Error).message,
            });
            throw new NfError(
              'unavailable',
              `host ${target} did not answer when told to run VM "${vm.name}" (${(err as Error).message}); the VM stays paused on ${source} until ${target} answers, so that it never runs twice`,
            );
          }
          // The target said no: the source still has the guest, intact; it runs on there.
          log.error('the target did not take over; resuming on the source', {
            vm: vm.name,
            target,
            err: (err as Error).message,
          });
          await src.resumeMigrated(vm.id);
          throw new NfError(
            'unavailable',
            `host ${target} did not take the VM over (${(err as Error).message}); it runs on ${source} again`,
          );
        }
        await this.release(vm.id, taskId, { node: target, localDisks: plan.localDisks.map((d) => d.id) });
        await this.vms
          .bindPorts(vm, [target], false)
          .catch((e) =>
            log.warn("the VM's ports stay bound on both hosts", { vm: vm.name, err: (e as Error).message }),
          );
        ctl.details({ phase: 'cleanup' });
        ctl.result({
          target,
          downtimeMs: result.downtimeMs,
          totalMs: Date.now() - t0,
          qemuTotalMs: result.totalMs,
          setupMs: result.setupMs,
          transferredBytes: result.transferredBytes,
          postcopy: result.postcopy,
          ...(runningAt && switchAt ? { handoverMs: runningAt - switchAt } : {}),
          ...(result.diskCopyMs !== undefined
            ? { diskCopyMs: result.diskCopyMs, diskBytes: result.diskBytes }
            : {}),
        });
        log.info('VM migrated', {
          vm: vm.name,
          from: source,
          to: target,
          downtimeMs: result.downtimeMs,
          totalMs: Date.now() - t0,
          // from the source's "switching" to the target running, as this controller saw it
          handoverMs: runningAt && switchAt ? runningAt - switchAt : undefined,
        });
        await this.cleanSource(vm.id, source, diskVolumes);
      } catch (err) {
        let targetSaid: string | undefined;
        if (!inDoubt && (!completed || !(await this.runsOn(target, vm.id)))) {
          targetSaid = await dst.abortIncoming(vm.id, diskVolumes).then(
            (r) => r.reason,
            (e) => {
              log.warn(
                'the target keeps leftovers of an abandoned migration (its daemon removes them when it restarts)',
                { vm: vm.name, target, err: (e as Error).message },
              );
              return undefined;
            },
          );
          await this.release(vm.id, taskId);
          await this.vms.bindPorts(vm, [source], false).catch(() => {});
        }
        const e = toNfError(err);
        if (cancelReason && (e.code === 'cancelled' || e.code === 'unavailable'))
          throw new NfError('cancelled', `${cancelReason}; VM "${vm.name}" runs on ${source}`);
        // The source sees only its end of the stream ("Cannot write to TLS channel"); the target's QEMU
        // usually says why it hung up.
        if (targetSaid)
          throw new NfError(e.code, `${e.message}; the target's QEMU on ${target} said: ${targetSaid}`);
        throw err;
      }
    } finally {
      clearInterval(watch);
      this.active.delete(vm.id);
    }
  }

  private report(p: MigrationProgress, plan: Plan, progress: (p: number) => void, ctl: TaskControl): void {
    const hasDisks = plan.localDisks.length > 0;
    if (p.phase === 'disks' && p.disks) {
      ctl.details({ phase: 'disks', disks: p.disks });
      progress((p.disks.totalBytes ? p.disks.doneBytes / p.disks.totalBytes : 0) * 0.5);
    } else if (p.phase === 'memory' && p.ram) {
      ctl.details({ phase: 'memory', ram: p.ram });
      const sent = p.ram.transferredBytes;
      const frac = sent + p.ram.remainingBytes > 0 ? sent / (sent + p.ram.remainingBytes) : 0;
      progress(hasDisks ? 0.5 + frac * 0.45 : frac * 0.95);
    } else if (p.phase === 'switching') ctl.details({ phase: 'switching' });
  }

  /** The guest runs (not waiting for a migration) on this host. */
  private async runsOn(node: string, vmId: string): Promise<boolean> {
    const n = this.router.get(node);
    if (!n || !this.router.reachable(node)) return false;
    const s = n.vmStatus(vmId);
    return s.state === 'running' && !s.migration;
  }

  /** The source's QEMU (paused, its state sent) ends; its local volumes go once the record names the target's. */
  private async cleanSource(vmId: string, source: string, volumes: { pool: string; volume: string }[]) {
    const src: NodeApi = this.router.on(source);
    try {
      await src.stopVm(vmId, { force: true });
      for (const v of volumes) await src.deleteVolume(v.pool, v.volume);
      await src.forgetVm(vmId);
    } catch (err) {
      log.error('the source of a migration keeps leftovers', {
        vm: vmId,
        source,
        err: (err as Error).message,
      });
    }
  }

  /** Settles every migration whose controller is gone (on the leader). */
  async resolveAll(): Promise<void> {
    let vms: Versioned<VmRecord>[];
    try {
      vms = await this.store.list<VmRecord>(keys.vms);
    } catch {
      return;
    }
    for (const v of vms)
      if (v.value.migration && !this.active.has(v.value.id))
        await this.resolve(v.value).catch((err) =>
          log.warn('cannot settle a migration yet', { vm: v.value.name, err: (err as Error).message }),
        );
  }

  /**
   * A migration whose controller died: both hosts say where the guest is. Target runs it → the record
   * follows; target has the whole state and the source sent it → run it there; otherwise the source
   * keeps (or gets back) the guest and the target's part goes. Waits while a host is unreachable.
   */
  async resolve(vm: VmRecord): Promise<void> {
    const m = vm.migration;
    if (!m) return;
    // the task may still run on a live controller (it saves itself every second): leave it alone then
    const task = await this.tasks.get(m.taskId);
    const seen = Date.parse(task?.updatedAt ?? task?.startedAt ?? m.startedAt);
    if (task?.status === 'running' && Date.now() - seen < 20_000) return;
    if (!this.router.reachable(m.source) || !this.router.reachable(m.target)) return;
    const src = this.router.on(m.source);
    const dst = this.router.on(m.target);
    const s = src.vmStatus(vm.id);
    const t = dst.vmStatus(vm.id);
    const settle = (ok: boolean, message: string) =>
      task?.status === 'running' ? this.tasks.settle(m.taskId, ok, message) : Promise.resolve();
    const volumes = vm.disks
      .filter((d) => m.localDisks.includes(d.id))
      .map((d) => ({ pool: d.pool, volume: d.volume }));
    const runsThere = await this.runsOn(m.target, vm.id);
    if (runsThere || (s.migration === 'migrated' && t.migration === 'received')) {
      // the target has the guest's newest state: it runs there (told now if it waits), the record follows
      if (!runsThere) await dst.finishIncoming(vm.id);
      await this.release(vm.id, m.taskId, { node: m.target, localDisks: m.localDisks });
      await this.vms.bindPorts(vm, [m.target], false).catch(() => {});
      await this.cleanSource(vm.id, m.source, volumes);
      await settle(true, `its controller went away; the VM runs on ${m.target}`);
      log.warn('a migration left by a controller was finished: the VM runs on its target', { vm: vm.name });
      return;
    }
    if (s.migration === 'outgoing') await src.cancelMigration(vm.id, 'its controller went away');
    await dst.abortIncoming(vm.id, volumes);
    if (s.migration === 'migrated') await src.resumeMigrated(vm.id);
    await this.release(vm.id, m.taskId);
    await this.vms.bindPorts(vm, [m.source], false).catch(() => {});
    await settle(false, `its controller went away; the migration was undone and the VM runs on ${m.source}`);
    log.warn('a migration left by a controller was undone: the VM stays on its source', { vm: vm.name });
  }
}
