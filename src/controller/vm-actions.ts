import { NfError } from '../errors';
import type { StopOptions } from '../node/types';
import type { Versioned } from '../store/store';
import { createLogger } from '../util/log';
import type { Admission } from './admission';
import type { PowerState, SnapshotRecord, VmRecord } from './records';
import type { VmService, VmView } from './vms';

const log = createLogger('vm-actions');

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
      await this.reconciler.update(cur, (v) => {
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
    await this.reconciler.lock.run(first.value.id, async () => fn(await this.vms.find(first.value.id)));
    return this.vms.get(first.value.id);
  }
}
