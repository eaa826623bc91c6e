import { NfError } from '../errors';
import type { StopOptions } from '../node/types';
import type { Versioned } from '../store/store';
import { createLogger } from '../util/log';
import type { Admission } from './admission';
import {
  keys,
  type NodeRecord,
  notMigrating,
  type PowerState,
  type SnapshotRecord,
  type VmRecord,
} from './records';
import type { VmService, VmView } from './vms';

const log = createLogger('vm-actions');

/**
 * How many parents a template's disk may stand on (an image, other templates' disks); a VM past it is
 * flattened when it becomes a template, so no clone hangs more than MAX_TEMPLATE_DEPTH + 1 deep.
 */
export const MAX_TEMPLATE_DEPTH = 2;

/**
 * Power actions and snapshots. Each changes desired state with compare-and-swap, then runs the per-VM
 * reconcile pass at once (under the VM's lock) so the caller gets the outcome, not a promise of one.
 */
export class VmActions {
  constructor(
    private readonly vms: VmService,
    /** Power-ons need room on the host (absent: no admission control, for tests of other actions). */
    private readonly admission?: Admission,
  ) {}

  private get reconciler() {
    return this.vms.reconciler;
  }

  private get node() {
    return this.vms.node;
  }

  start(ref: string): Promise<VmView> {
    return this.act(ref, async (cur) => {
      this.notTemplate(cur.value, 'start');
      if (!cur.value.node)
        throw new NfError(
          'invalid_state',
          `VM "${cur.value.name}" has no host yet: ${cur.value.pending?.reason ?? 'waiting for the scheduler'}`,
        );
      const state = this.node.vmStatus(cur.value.id).state;
      if (state === 'running')
        throw new NfError('invalid_state', `VM "${cur.value.name}" is already running`);
      if (state === 'paused')
        throw new NfError('invalid_state', `VM "${cur.value.name}" is paused; resume it instead`);
      if (this.node.hasProcess(cur.value.id)) {
        throw new NfError(
          'invalid_state',
          `VM "${cur.value.name}" still has a QEMU process that does not answer; force-stop it first`,
        );
      }
      await this.setPower(cur, 'running', { admit: true });
      await this.reconciler.reconcile(cur.value.id);
    });
  }

  stop(ref: string, opts: StopOptions): Promise<VmView> {
    return this.act(ref, async (cur) => {
      const state = this.node.vmStatus(cur.value.id).state;
      const up = state === 'running' || state === 'paused';
      if (!up && !cur.value.lastError && cur.value.power === 'stopped') {
        throw new NfError('invalid_state', `VM "${cur.value.name}" is already stopped`);
      }
      await this.setPower(cur, 'stopped');
      await this.reconciler.reconcile(cur.value.id, opts);
    });
  }

  pause(ref: string): Promise<VmView> {
    return this.act(ref, async (cur) => {
      this.require(cur.value, 'running', 'pause');
      await this.setPower(cur, 'paused');
      await this.reconciler.reconcile(cur.value.id);
    });
  }

  resume(ref: string): Promise<VmView> {
    return this.act(ref, async (cur) => {
      this.require(cur.value, 'paused', 'resume');
      await this.setPower(cur, 'running');
      await this.reconciler.reconcile(cur.value.id);
    });
  }

  /** Hard reset, like pressing the reset button. */
  reset(ref: string): Promise<VmView> {
    return this.act(ref, async (cur) => {
      this.require(cur.value, 'running', 'reset');
      await this.node.resetVm(cur.value.id);
    });
  }

  /**
   * Reboot as Proxmox does it: a clean guest shutdown (forced after the timeout), then a fresh QEMU
   * process, so hardware changes take effect.
   */
  reboot(ref: string, opts: StopOptions): Promise<VmView> {
    return this.act(ref, async (cur) => {
      this.require(cur.value, 'running', 'reboot');
      await this.node.stopVm(cur.value.id, opts);
      // A new request to run: the start goes through the reconciler, so a failure is recorded on the VM.
      await this.setPower(await this.vms.find(cur.value.id), 'running');
      await this.reconciler.reconcile(cur.value.id);
    });
  }

  /**
   * Turns a stopped VM into a template, as vSphere does: it is never powered on again, its disks stay as
   * they are, and linked clones are made from them (VmService.clone).
   */
  toTemplate(ref: string): Promise<VmView> {
    return this.act(ref, async (cur) => {
      const vm = cur.value;
      if (vm.template) throw new NfError('invalid_state', `VM "${vm.name}" is a template already`);
      if (!vm.node)
        throw new NfError('invalid_state', `VM "${vm.name}" has no host yet; its disks do not exist`);
      if (vm.disks.length === 0)
        throw new NfError('invalid_state', `VM "${vm.name}" has no disks to clone from`);
      const state = this.node.vmStatus(vm.id).state;
      if (vm.power !== 'stopped' || this.node.hasProcess(vm.id))
        throw new NfError(
          'invalid_state',
          `VM "${vm.name}" is ${state}; stop it before making it a template`,
        );
      // Clones of clones make ever longer chains that every read may walk: past the cap, this VM's
      // disks are made independent first (their clones then start a new chain).
      const deep = new Set<string>();
      for (const d of vm.disks) if ((await this.vms.cloneDepth(d)) >= MAX_TEMPLATE_DEPTH) deep.add(d.id);
      if (deep.size > 0) {
        log.info('flattening disks before they become a template (clone chain too deep)', {
          vm: vm.id,
          disks: [...deep],
        });
        await this.vms.flattenDisks(cur, (d) => deep.has(d.id));
      }
      await this.reconciler.update(await this.vms.find(vm.id), (v) => {
        if (v.power !== 'stopped') return false;
        v.template = true;
        return true;
      });
    });
  }

  snapshotCreate(ref: string, name: string, description?: string): Promise<VmView> {
    return this.act(ref, async (cur) => {
      const vm = cur.value;
      this.notTemplate(vm, 'snapshot');
      if (vm.snapshots.some((s) => s.name === name)) {
        throw new NfError('already_exists', `VM "${vm.name}" already has a snapshot named "${name}"`);
      }
      if (vm.disks.length === 0)
        throw new NfError('invalid_state', `VM "${vm.name}" has no disks to snapshot`);
      const state = this.node.vmStatus(vm.id).state;
      const vmState: PowerState = state === 'running' ? 'running' : state === 'paused' ? 'paused' : 'stopped';
      // Quiesce: with a guest agent, file systems are frozen around the snapshot so it is consistent.
      const quiesced =
        vmState === 'running' &&
        this.node.vmStatus(vm.id).agent?.status === 'connected' &&
        (await this.freeze(vm.id));
      try {
        await this.node.snapshotVm(vm.id, name, vm.disks);
      } finally {
        if (quiesced) await this.thaw(vm.id);
      }
      const snap: SnapshotRecord = { name, createdAt: new Date().toISOString(), vmState, quiesced };
      if (description !== undefined) snap.description = description;
      try {
        await this.vms.store.txn({
          when: [{ key: cur.key, revision: cur.revision }],
          put: [
            { key: cur.key, value: { ...vm, snapshots: [...vm.snapshots, snap], updatedAt: snap.createdAt } },
          ],
        });
      } catch (err) {
        await this.node.deleteVmSnapshot(vm.id, name, vm.disks).catch(() => {});
        throw err;
      }
    });
  }

  snapshotDelete(ref: string, name: string): Promise<VmView> {
    return this.act(ref, async (cur) => {
      const vm = cur.value;
      this.notTemplate(vm, 'delete a snapshot of');
      this.snapshot(vm, name);
      await this.node.deleteVmSnapshot(vm.id, name, vm.disks);
      await this.vms.store.txn({
        when: [{ key: cur.key, revision: cur.revision }],
        put: [
          {
            key: cur.key,
            value: {
              ...vm,
              snapshots: vm.snapshots.filter((s) => s.name !== name),
              updatedAt: new Date().toISOString(),
            },
          },
        ],
      });
    });
  }

  /** Puts every disk back to the snapshot. The VM must be stopped: its disks are then not in use. */
  snapshotRevert(ref: string, name: string): Promise<VmView> {
    return this.act(ref, async (cur) => {
      const vm = cur.value;
      this.notTemplate(vm, 'revert');
      this.snapshot(vm, name);
      const state = this.node.vmStatus(vm.id).state;
      if (state === 'running' || state === 'paused') {
        throw new NfError(
          'invalid_state',
          `VM "${vm.name}" is ${state}; stop it before reverting to snapshot "${name}"`,
        );
      }
      await this.node.revertVmSnapshot(vm.id, name, vm.disks);
    });
  }

  /**
   * Grows a disk to sizeBytes: live through QEMU while the VM runs or is paused (the guest sees the new
   * size at once), in the pool otherwise. Shrinking is refused; the record follows the disk.
   */
  diskResize(ref: string, diskId: string, sizeBytes: number): Promise<VmView> {
    return this.act(ref, async (cur) => {
      const vm = cur.value;
      this.notTemplate(vm, 'resize a disk of');
      const disk = vm.disks.find((d) => d.id === diskId);
      if (!disk)
        throw new NfError(
          'not_found',
          `VM "${vm.name}" has no disk ${diskId} (it has ${vm.disks.map((d) => d.id).join(', ') || 'none'})`,
        );
      if (sizeBytes < disk.sizeBytes)
        throw new NfError(
          'validation_failed',
          `disk ${diskId} of VM "${vm.name}" is ${disk.sizeBytes} bytes; it can grow, not shrink (asked ${sizeBytes})`,
        );
      if (sizeBytes === disk.sizeBytes) return;
      if (!vm.node)
        throw new NfError('invalid_state', `VM "${vm.name}" has no host yet; its disks do not exist`);
      const state = this.node.vmStatus(vm.id).state;
      const live = state === 'running' || state === 'paused';
      await this.node.resizeVolume(
        disk.pool,
        disk.volume,
        sizeBytes,
        live ? { id: vm.id, disk: diskId } : undefined,
      );
      await this.reconciler.update(cur, (v) => {
        const d = v.disks.find((x) => x.id === diskId);
        if (!d || d.sizeBytes >= sizeBytes) return false;
        d.sizeBytes = sizeBytes;
        return true;
      });
    });
  }

  /** VMs with a disk move running from this controller. */
  private readonly moves = new Set<string>();

  /**
   * Checks a disk move and says how it will run; nothing changes. Refused: a template, an unknown disk or
   * pool, the disk's own pool, a VM without a host, a VM with snapshots (they cannot move), a pool the
   * VM's host does not reach, a pool with less free space than the disk, a move already running.
   */
  async diskMoveCheck(ref: string, diskId: string, pool: string): Promise<{ vm: VmRecord; live: boolean }> {
    const vm = (await this.vms.find(ref)).value;
    this.notTemplate(vm, 'move a disk of');
    notMigrating(vm);
    const disk = vm.disks.find((d) => d.id === diskId);
    if (!disk)
      throw new NfError(
        'not_found',
        `VM "${vm.name}" has no disk ${diskId} (it has ${vm.disks.map((d) => d.id).join(', ') || 'none'})`,
      );
    if (disk.pool === pool)
      throw new NfError('validation_failed', `disk ${diskId} is already in pool ${pool}`);
    if (!vm.node)
      throw new NfError('invalid_state', `VM "${vm.name}" has no host yet; its disks do not exist`);
    if (vm.snapshots.length > 0)
      throw new NfError(
        'invalid_state',
        `VM "${vm.name}" has snapshots (${vm.snapshots.map((x) => x.name).join(', ')}); they cannot move with a disk: delete them first`,
      );
    if (this.moves.has(vm.id))
      throw new NfError('conflict', `a disk of VM "${vm.name}" is being moved already`);
    const host = (await this.vms.store.get<NodeRecord>(keys.node(vm.node)))?.value;
    const known = await this.vms.store.get(keys.pool(pool));
    const reached = host?.info?.pools.find((p) => p.name === pool);
    if (!known && pool !== 'local') throw new NfError('not_found', `no storage pool named "${pool}"`);
    if (!reached)
      throw new NfError(
        'validation_failed',
        `host ${vm.node} of VM "${vm.name}" does not reach pool ${pool}`,
      );
    if (reached.totalBytes > 0 && disk.sizeBytes > reached.freeBytes)
      throw new NfError(
        'insufficient_resources',
        `disk ${diskId} (${(disk.sizeBytes / 1024 ** 3).toFixed(1)} GiB) is larger than the free space of pool ${pool} (${(reached.freeBytes / 1024 ** 3).toFixed(1)} GiB)`,
      );
    const state = this.node.vmStatus(vm.id).state;
    return { vm, live: state === 'running' || state === 'paused' };
  }

  /**
   * Moves a disk to another pool of the VM's host, as a full copy (a linked clone becomes independent).
   * While the VM runs QEMU mirrors it and the guest keeps writing (a stop meanwhile ends the move, and
   * the VM stays on the source); a stopped VM's disk is copied under the VM's lock, so it cannot start
   * meanwhile. The record then names the new pool and the old volume is deleted.
   */
  async diskMove(ref: string, diskId: string, pool: string, progress: (p: number) => void): Promise<VmView> {
    const { vm, live } = await this.diskMoveCheck(ref, diskId, pool);
    const disk = vm.disks.find((d) => d.id === diskId)!;
    this.moves.add(vm.id);
    try {
      const move = () =>
        this.node.moveDisk(
          {
            vmId: vm.id,
            diskId,
            from: { pool: disk.pool, volume: disk.volume },
            to: { pool, volume: disk.volume },
          },
          (done, total) => progress(total > 0 ? (done / total) * 0.99 : 0),
        );
      const commit = async () => {
        const cur = await this.vms.find(vm.id);
        let changed = false;
        await this.reconciler.update(cur, (v) => {
          const d = v.disks.find((x) => x.id === diskId);
          if (!d || d.pool !== disk.pool) return false;
          d.pool = pool;
          delete d.image;
          delete d.cloneOf;
          changed = true;
          return true;
        });
        if (!changed) throw new NfError('conflict', `the record of VM "${vm.name}" changed during the move`);
      };
      if (live) {
        await move();
        await this.reconciler.lock.run(vm.id, commit);
      } else {
        await this.reconciler.lock.run(vm.id, async () => {
          const state = this.node.vmStatus(vm.id).state;
          if (state === 'running' || state === 'paused')
            throw new NfError('invalid_state', `VM "${vm.name}" was started meanwhile; move the disk again`);
          await move();
          await commit();
        });
      }
      // The record names the new volume: the old one can go.
      await this.node
        .on(vm.node)
        .deleteVolume(disk.pool, disk.volume)
        .catch((err) =>
          log.error('the moved disk’s old volume could not be deleted', {
            vm: vm.id,
            pool: disk.pool,
            volume: disk.volume,
            err: (err as Error).message,
          }),
        );
      log.info('disk moved', { vm: vm.id, disk: diskId, from: disk.pool, to: pool, live });
    } finally {
      this.moves.delete(vm.id);
    }
    return this.vms.get(vm.id);
  }

  private async freeze(id: string): Promise<boolean> {
    try {
      await this.node.guestCommand(id, 'guest-fsfreeze-freeze', undefined, { timeoutMs: 60_000 });
      return true;
    } catch (err) {
      log.warn('could not freeze guest file systems; the snapshot is crash-consistent only', {
        id,
        err: (err as Error).message,
      });
      // A freeze that timed out may still complete in the guest: thaw to be sure (harmless if not frozen).
      if (NfError.isCode(err, 'timeout') || NfError.isCode(err, 'unavailable')) {
        await this.node
          .guestCommand(id, 'guest-fsfreeze-thaw', undefined, { timeoutMs: 60_000 })
          .catch(() => {});
      }
      return false;
    }
  }

  /** A guest left frozen hangs every writer in it: insist. */
  private async thaw(id: string): Promise<void> {
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        await this.node.guestCommand(id, 'guest-fsfreeze-thaw', undefined, { timeoutMs: 30_000 });
        return;
      } catch (err) {
        log.error('guest thaw failed', { id, attempt, err: (err as Error).message });
      }
    }
    throw new NfError(
      'guest_error',
      `the guest's file systems may still be frozen: thaw failed 5 times; run POST /api/v1/vms/${id}/guest/fsthaw`,
    );
  }

  private snapshot(vm: VmRecord, name: string): SnapshotRecord {
    const snap = vm.snapshots.find((s) => s.name === name);
    if (!snap) throw new NfError('not_found', `VM "${vm.name}" has no snapshot named "${name}"`);
    return snap;
  }

  /** Templates are never powered on and their disks never change: clones hang off them. */
  private notTemplate(vm: VmRecord, action: string): void {
    if (vm.template)
      throw new NfError(
        'invalid_state',
        `cannot ${action} "${vm.name}": it is a template; clone it (POST /api/v1/vms/${vm.id}/clone)`,
      );
  }

  private require(vm: VmRecord, state: 'running' | 'paused', action: string): void {
    const actual = this.node.vmStatus(vm.id).state;
    if (actual !== state)
      throw new NfError('invalid_state', `cannot ${action} VM "${vm.name}": it is ${actual}, not ${state}`);
  }

  /** Changes desired power; a power-on from `stopped` with `admit` goes through admission control. */
  private async setPower(
    cur: Versioned<VmRecord>,
    power: PowerState,
    opts: { admit?: boolean } = {},
  ): Promise<void> {
    const next: VmRecord = {
      ...cur.value,
      power,
      generation: cur.value.generation + 1,
      updatedAt: new Date().toISOString(),
    };
    delete next.lastError;
    if (opts.admit && this.admission && cur.value.power === 'stopped') {
      const written = await this.admission.powerOn(cur, next);
      if (written.node !== cur.value.node)
        log.info('VM powered on another host: its own had no room', {
          vm: cur.value.name,
          from: cur.value.node,
          to: written.node,
        });
      return;
    }
    await this.vms.store.txn({
      when: [{ key: cur.key, revision: cur.revision }],
      put: [{ key: cur.key, value: next }],
    });
  }

  private async act(ref: string, fn: (cur: Versioned<VmRecord>) => Promise<void>): Promise<VmView> {
    const first = await this.vms.find(ref);
    await this.reconciler.lock.run(first.value.id, async () => {
      const cur = await this.vms.find(first.value.id);
      notMigrating(cur.value);
      await fn(cur);
    });
    return this.vms.get(first.value.id);
  }
}
