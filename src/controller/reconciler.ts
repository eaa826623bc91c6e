import { NfError, toNfError } from '../errors';
import type { StopOptions, VmStatus } from '../node/types';
import type { Store, Versioned } from '../store/store';
import { KeyedLock } from '../util/lock';
import { createLogger } from '../util/log';
import type { VmRunSpec } from '../vmm/types';
import { autostartQueues } from './autostart';
import type { NodeRouter } from './node-router';
import { keys, notMigrating, type VmRecord } from './records';
import { settleHotplug } from './vm-devices';

const log = createLogger('reconciler');

export type Transition = 'starting' | 'stopping';

/**
 * Level-triggered: a watch event, a node status change or a timer only wakes the loop; each pass reads
 * every VM's desired state and the node's actual state and fixes the difference. The API's actions run
 * the same per-VM pass right away, under the same per-VM lock, so they can return the outcome.
 */
export class Reconciler {
  readonly lock = new KeyedLock();
  private readonly transitions = new Map<string, Transition>();
  private readonly backoff = new Map<string, { until: number; delayMs: number }>();
  /** Per host: when its next onBoot VM may start (the previous one's delay). */
  private readonly autostartAt = new Map<string, number>();
  private timer?: Timer;
  private cancelWatch?: () => Promise<void>;
  private unsubscribe?: () => void;
  private pending = false;
  private running = false;
  private stopped = false;
  /** VMs another part of the leader decides about for now (HA moving them off a failed host). */
  hold?: (vm: VmRecord) => boolean;

  constructor(
    private readonly store: Store,
    private readonly node: NodeRouter,
    private readonly runSpec: (vm: VmRecord) => Promise<VmRunSpec>,
    private readonly resyncMs = 10_000,
  ) {}

  /** Starts the loop (on the leader; an API action still reconciles its own VM on any controller). */
  async start(): Promise<void> {
    if (this.timer && !this.stopped) return;
    this.stopped = false;
    this.cancelWatch = await this.store.watchPrefix(keys.vms, () => this.wake());
    this.unsubscribe = this.node.onStatus(() => this.wake());
    this.timer = setInterval(() => this.wake(), this.resyncMs);
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    await this.cancelWatch?.().catch(() => {});
  }

  transition(id: string): Transition | undefined {
    return this.transitions.get(id);
  }

  wake(): void {
    if (this.stopped) return;
    this.pending = true;
    if (!this.running) void this.loop();
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.pending && !this.stopped) {
        this.pending = false;
        let vms: Versioned<VmRecord>[];
        try {
          vms = await this.store.list<VmRecord>(keys.vms);
        } catch (err) {
          log.warn('cannot list VMs; will retry', { err: (err as Error).message });
          return; // the resync timer wakes us again
        }
        for (const vm of vms) this.node.locate(vm.value.id, vm.value.node);
        // a VM whose start keeps failing (backing off) or that HA holds gives way to the next one
        const now = Date.now();
        const autostart = autostartQueues(
          vms
            .map((v) => v.value)
            .filter((v) => (this.backoff.get(v.id)?.until ?? 0) <= now && !this.hold?.(v)),
          (id) => this.node.vmStatus(id),
        );
        for (const vm of vms) {
          // Pending VMs wait for the scheduler; VMs of an unreachable host wait for it (never elsewhere).
          if (!vm.value.node || !this.node.reachable(vm.value.node)) continue;
          // A migration decides where the guest runs until it ends (src/controller/migration.ts).
          if (vm.value.migration) continue;
          if (this.hold?.(vm.value)) continue;
          const b = this.backoff.get(vm.value.id);
          if (b && b.until > Date.now()) continue;
          if (this.lock.busy(vm.value.id)) continue; // an API action is on it
          // onBoot VMs of a host that came back start one by one, in order, with their delays
          const queue = autostart.get(vm.value.node);
          const queued = !!queue?.some((q) => q.id === vm.value.id);
          if (
            queued &&
            (queue![0]!.id !== vm.value.id || (this.autostartAt.get(vm.value.node) ?? 0) > Date.now())
          )
            continue;
          try {
            if (queued)
              log.info('autostart: the host came back', { vm: vm.value.name, order: vm.value.onBoot?.order });
            await this.lock.run(vm.value.id, () => this.reconcile(vm.value.id));
            this.backoff.delete(vm.value.id);
            if (queued) this.autostarted(vm.value);
          } catch (err) {
            const delayMs = Math.min(60_000, (b?.delayMs ?? 500) * 2);
            this.backoff.set(vm.value.id, { until: Date.now() + delayMs, delayMs });
            log.warn('reconcile failed', {
              id: vm.value.id,
              err: (err as Error).message,
              retryInMs: delayMs,
            });
          }
        }
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * One pass for one VM; call under `lock`. Returns the node status afterwards. Start failures are
   * recorded on the VM (state error) instead of being retried forever.
   */
  async reconcile(id: string, stopOpts: StopOptions = {}): Promise<VmStatus | undefined> {
    const cur = await this.store.get<VmRecord>(keys.vm(id));
    if (!cur) return undefined;
    const vm = cur.value;
    this.node.locate(id, vm.node);
    notMigrating(vm);
    if (vm.hotplug && vm.node && this.node.reachable(vm.node)) {
      // a hot-plug its controller did not finish (it died): the record follows what QEMU has
      const settled = await settleHotplug(this.store, this.node, cur).then(
        () => true,
        (err: Error) => {
          log.warn('cannot settle a hot-plug yet', { vm: id, err: err.message });
          return false;
        },
      );
      if (settled) return this.reconcile(id, stopOpts);
    }
    if (!vm.node) {
      if (vm.power !== 'stopped')
        throw new NfError(
          'invalid_state',
          `VM "${vm.name}" has no host yet: ${vm.pending?.reason ?? 'pending'}`,
        );
      return undefined;
    }
    if (!this.node.reachable(vm.node))
      throw new NfError(
        'unavailable',
        `host ${vm.node} of VM "${vm.name}" is not reachable; try again later`,
      );
    let status = this.node.vmStatus(id);
    // A live process counts as up whatever its label says: never start a second QEMU next to it.
    const up = status.state === 'running' || status.state === 'paused' || this.node.hasProcess(id);

    if (vm.power === 'stopped' && up) {
      status = await this.during(id, 'stopping', () => this.node.stopVm(id, stopOpts));
    } else if (vm.power !== 'stopped' && !up) {
      // Stopped by its host's HA isolation response (the host lost the cluster and is back, and HA did
      // not move the VM): it is started again below, not taken as the guest's own power-off.
      // A VM that went down with its host starts again when it is marked onBoot (autostart, in order).
      const autostart = status.hostDown && vm.onBoot?.enabled;
      if (vm.runningGeneration === vm.generation && !status.fenced && !autostart) {
        // We had it up for this request and now it is down: the guest powered off or QEMU died.
        await this.update(cur, (v) => {
          if (v.generation !== vm.generation) return false;
          v.power = 'stopped';
          v.generation++;
          if (status.state === 'error')
            v.lastError = { message: status.reason ?? 'QEMU exited unexpectedly', at: status.updatedAt };
          return true;
        });
        return status;
      }
      try {
        // a cold start: hardware changed while the VM ran takes effect now
        const toStart = vm.pendingChanges || vm.memoryDimmsMiB ? await this.foldPending(cur) : vm;
        status = await this.during(id, 'starting', async () =>
          this.node.startVm(await this.runSpec(toStart)),
        );
        if (vm.power === 'paused') status = await this.node.pauseVm(id);
      } catch (err) {
        const e = toNfError(err);
        // Latch the failure only when the start surely failed: not when the host was unreachable or the
        // call timed out (QEMU may be up), nor when a QEMU already runs (another controller started it).
        // Nor when the host refused a stale ownership epoch (the VM was handed on meanwhile).
        if (!['unavailable', 'timeout', 'invalid_state', 'conflict'].includes(e.code)) {
          await this.update(cur, (v) => {
            if (v.generation !== vm.generation) return false; // a newer request decides now
            v.power = 'stopped';
            v.generation++;
            v.lastError = { message: e.message, at: new Date().toISOString() };
            return true;
          });
        }
        throw err;
      }
    } else if (vm.power === 'paused' && status.state === 'running') {
      status = await this.node.pauseVm(id);
    } else if (vm.power === 'running' && status.state === 'paused' && !status.reason) {
      // A pause QEMU made itself (disk error) carries a reason and waits for the admin.
      status = await this.node.resumeVm(id);
    }

    // Remember that this request's state was reached, so a later stop of the guest is seen as its own.
    const reached = status.state === 'running' || status.state === 'paused';
    if (vm.power !== 'stopped' && reached && (vm.runningGeneration !== vm.generation || vm.lastError)) {
      await this.update(cur, (v) => {
        if (v.generation !== vm.generation) return false;
        v.runningGeneration = v.generation;
        delete v.lastError;
        return true;
      });
    }
    return status;
  }

  /** The next onBoot VM of the host may start once this one's delay has passed (woken then). */
  private autostarted(vm: VmRecord): void {
    const delayMs = (vm.onBoot?.delaySec ?? 0) * 1000;
    this.autostartAt.set(vm.node, Date.now() + delayMs);
    if (delayMs > 0) setTimeout(() => this.wake(), delayMs + 20).unref?.();
    else this.wake();
  }

  /** Moves a VM's pending hardware changes into its record (before a cold start) and returns it. */
  private async foldPending(cur: Versioned<VmRecord>): Promise<VmRecord> {
    await this.update(cur, (v) => {
      if (!v.pendingChanges && !v.memoryDimmsMiB) return false;
      Object.assign(v, v.pendingChanges);
      delete v.pendingChanges;
      delete v.memoryDimmsMiB; // a new QEMU has its hot-added memory as base memory
      return true;
    });
    const now = await this.store.get<VmRecord>(cur.key);
    if (!now) throw new NfError('not_found', `VM ${cur.value.id} was deleted`);
    log.info('pending hardware changes applied', { vm: cur.value.id });
    return now.value;
  }

  private async during<T>(id: string, t: Transition, fn: () => Promise<T>): Promise<T> {
    this.transitions.set(id, t);
    try {
      return await fn();
    } finally {
      this.transitions.delete(id);
    }
  }

  /**
   * Compare-and-swap update that re-reads and retries when someone else wrote in between. `change`
   * returns false when the re-read record no longer calls for the change.
   */
  async update(cur: Versioned<VmRecord>, change: (v: VmRecord) => boolean): Promise<void> {
    let rec: Versioned<VmRecord> | undefined = cur;
    for (let attempt = 0; attempt < 5 && rec; attempt++) {
      const next = structuredClone(rec.value);
      if (!change(next)) return;
      next.updatedAt = new Date().toISOString();
      try {
        await this.store.txn({
          when: [{ key: rec.key, revision: rec.revision }],
          put: [{ key: rec.key, value: next }],
        });
        return;
      } catch (err) {
        if (!NfError.isCode(err, 'conflict')) throw err;
        rec = await this.store.get<VmRecord>(rec.key);
      }
    }
  }
}
