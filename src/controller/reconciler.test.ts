import { describe, expect, it } from 'vitest';
import { NfError } from '../errors';
import type { NodeApi, NodeInfo, StopOptions, VmStatus } from '../node/types';
import { MemoryStore } from '../store/memory-store';
import { waitFor } from '../util/wait';
import type { RuntimeState, VmRunSpec } from '../vmm/types';
import { NodeRouter } from './node-router';
import { Reconciler } from './reconciler';
import { keys, type VmRecord } from './records';
import { type MigrationVerbs, noMigration } from './test-cluster';

/** A node that only keeps states, and records what it was asked to do. */
interface FakeNode extends MigrationVerbs {}
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the migration verbs come from noMigration
class FakeNode implements NodeApi {
  states = new Map<string, VmStatus>();
  calls: string[] = [];
  failStart?: NfError;
  private listeners = new Set<(s: VmStatus) => void>();

  set(id: string, state: RuntimeState, reason?: string): void {
    const s: VmStatus = { id, state, updatedAt: new Date().toISOString() };
    if (reason) s.reason = reason;
    this.states.set(id, s);
    for (const l of this.listeners) l(s);
  }
  async info(): Promise<NodeInfo> {
    throw new Error('unused');
  }
  vmStatus(id: string): VmStatus {
    return this.states.get(id) ?? { id, state: 'stopped', updatedAt: '' };
  }
  async startVm(spec: VmRunSpec): Promise<VmStatus> {
    this.calls.push(`start ${spec.id}`);
    if (this.failStart) throw this.failStart;
    this.set(spec.id, 'running');
    return this.vmStatus(spec.id);
  }
  async stopVm(id: string, opts?: StopOptions): Promise<VmStatus> {
    this.calls.push(`stop ${id} force=${opts?.force ?? false}`);
    this.set(id, 'stopped');
    return this.vmStatus(id);
  }
  async pauseVm(id: string): Promise<VmStatus> {
    this.calls.push(`pause ${id}`);
    this.set(id, 'paused');
    return this.vmStatus(id);
  }
  async resumeVm(id: string): Promise<VmStatus> {
    this.calls.push(`resume ${id}`);
    this.set(id, 'running');
    return this.vmStatus(id);
  }
  async resetVm(id: string): Promise<VmStatus> {
    return this.vmStatus(id);
  }
  async snapshotVm(): Promise<void> {}
  async deleteVmSnapshot(): Promise<void> {}
  async revertVmSnapshot(): Promise<void> {}
  async consoleLog(): Promise<string> {
    return '';
  }
  async forgetVm(): Promise<void> {}
  async probe(): Promise<{ cutOff: boolean }> {
    return { cutOff: false };
  }
  async setIsolation(): Promise<void> {}
  vmMetrics(): [] {
    return [];
  }
  hostMetrics(): [] {
    return [];
  }
  async guestCommand<T>(): Promise<T> {
    throw new NfError('unavailable', 'no agent in the fake');
  }
  async openConsole(): Promise<never> {
    throw new NfError('not_implemented', 'no console in the fake');
  }
  async createVolume(): Promise<void> {}
  async deleteVolume(): Promise<void> {}
  async configurePools(): Promise<void> {}
  async cephApply(): Promise<{ daemons: [] }> {
    return { daemons: [] };
  }
  async cephDaemons(): Promise<{ daemons: [] }> {
    return { daemons: [] };
  }
  async moveDisk(): Promise<void> {}
  async backupVm(): Promise<never> {
    throw new Error('not in this fake');
  }
  async restoreVolume(): Promise<never> {
    throw new Error('not in this fake');
  }
  async flattenVolume(): Promise<void> {}
  async copyImage(): Promise<number> {
    return 0;
  }
  async resizeVolume(): Promise<void> {}
  async listVolumes(): Promise<[]> {
    return [];
  }
  async deleteImageFile(): Promise<void> {}
  hasProcess(id: string): boolean {
    const s = this.vmStatus(id).state;
    return s === 'running' || s === 'paused';
  }
  onStatus(l: (s: VmStatus) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
Object.assign(FakeNode.prototype, noMigration);

const ID = '00000000-0000-4000-8000-000000000001';

function record(power: VmRecord['power'], extra: Partial<VmRecord> = {}): VmRecord {
  return {
    id: ID,
    name: 'vm1',
    node: 'n1',
    vcpus: 1,
    memoryMiB: 64,
    machine: 'q35',
    disks: [],
    networks: [],
    boot: { disk: 0 },
    snapshots: [],
    power,
    generation: 2,
    createdAt: '',
    updatedAt: '',
    ...extra,
  };
}

async function setup(power: VmRecord['power'], extra: Partial<VmRecord> = {}) {
  const store = new MemoryStore();
  const node = new FakeNode();
  await store.txn({ put: [{ key: keys.vm(ID), value: record(power, extra) }] });
  const spec = async (vm: VmRecord): Promise<VmRunSpec> => ({
    id: vm.id,
    name: vm.name,
    vcpus: 1,
    memoryMiB: 64,
    machine: 'q35',
    disks: [],
    nics: [],
    boot: { kind: 'disk', index: 0 },
    agent: false,
  });
  const rec = new Reconciler(store, new NodeRouter('n1', node), spec, 60_000);
  const read = async () => (await store.get<VmRecord>(keys.vm(ID)))!.value;
  return { store, node, rec, read };
}

describe('Reconciler', () => {
  it('starts a VM that should run and remembers the generation it reached', async () => {
    const { node, rec, read } = await setup('running');
    await rec.reconcile(ID);
    expect(node.calls).toEqual([`start ${ID}`]);
    expect((await read()).runningGeneration).toBe(2);
    await rec.reconcile(ID); // converged: nothing more to do
    expect(node.calls).toHaveLength(1);
  });

  it('folds pending hardware changes into the record before a cold start, and starts with them', async () => {
    const { store, node, read } = await setup('running', {
      memoryMiB: 64,
      pendingChanges: { memoryMiB: 128, tpm: true },
    });
    const specs: VmRecord[] = [];
    const spy = new Reconciler(
      store,
      new NodeRouter('n1', node),
      async (vm) => {
        specs.push(vm);
        return {
          id: vm.id,
          name: vm.name,
          vcpus: 1,
          memoryMiB: vm.memoryMiB,
          machine: 'q35',
          disks: [],
          nics: [],
          boot: { kind: 'disk', index: 0 },
          agent: false,
        };
      },
      60_000,
    );
    await spy.reconcile(ID);
    expect(specs[0]).toMatchObject({ memoryMiB: 128, tpm: true });
    expect(specs[0]!.pendingChanges).toBeUndefined();
    const vm = await read();
    expect(vm).toMatchObject({ memoryMiB: 128, tpm: true, runningGeneration: 2 });
    expect(vm.pendingChanges).toBeUndefined();
  });

  it('records a failed start as the VM error and does not retry it', async () => {
    const { node, rec, read } = await setup('running');
    node.failStart = new NfError('hypervisor_error', 'QEMU failed: Image is not in qcow2 format');
    await expect(rec.reconcile(ID)).rejects.toMatchObject({ code: 'hypervisor_error' });
    const vm = await read();
    expect(vm.power).toBe('stopped');
    expect(vm.lastError?.message).toMatch(/qcow2/);
    await rec.reconcile(ID);
    expect(node.calls).toHaveLength(1);
  });

  it('retries a start that failed because something was unavailable', async () => {
    const { node, rec, read } = await setup('running');
    node.failStart = new NfError('unavailable', 'monitor gone');
    await expect(rec.reconcile(ID)).rejects.toMatchObject({ code: 'unavailable' });
    expect((await read()).power).toBe('running');
    node.failStart = undefined;
    await rec.reconcile(ID);
    expect(node.vmStatus(ID).state).toBe('running');
  });

  it('accepts a guest that powered itself off instead of restarting it', async () => {
    const { node, rec, read } = await setup('running', { runningGeneration: 2 });
    node.set(ID, 'stopped');
    await rec.reconcile(ID);
    const vm = await read();
    expect(vm.power).toBe('stopped');
    expect(vm.lastError).toBeUndefined();
    expect(node.calls).toEqual([]);
  });

  it('after a pause and resume, still accepts a guest poweroff instead of restarting it', async () => {
    const { node, rec, store, read } = await setup('running');
    await rec.reconcile(ID);
    // pause, then resume: each bumps the generation, as the API's actions do
    for (const power of ['paused', 'running'] as const) {
      const cur = (await store.get<VmRecord>(keys.vm(ID)))!;
      await store.txn({
        put: [{ key: cur.key, value: { ...cur.value, power, generation: cur.value.generation + 1 } }],
      });
      await rec.reconcile(ID);
    }
    node.set(ID, 'stopped');
    await rec.reconcile(ID);
    expect((await read()).power).toBe('stopped');
    expect(node.calls).toEqual([`start ${ID}`, `pause ${ID}`, `resume ${ID}`]);
  });

  it('leaves a guest paused by QEMU itself (disk error) for the admin', async () => {
    const { node, rec } = await setup('running', { runningGeneration: 2 });
    node.set(ID, 'paused', 'paused by QEMU: I/O error on disk0 (no space left on the host)');
    await rec.reconcile(ID);
    expect(node.calls).toEqual([]);
  });

  it('keeps the reason when QEMU died', async () => {
    const { node, rec, read } = await setup('running', { runningGeneration: 2 });
    node.set(ID, 'error', 'terminating on signal 15');
    await rec.reconcile(ID);
    expect((await read()).lastError?.message).toBe('terminating on signal 15');
    expect(node.calls).toEqual([]);
  });

  it('stops, pauses and resumes to match the desired state', async () => {
    const { node, rec, store } = await setup('stopped');
    node.set(ID, 'running');
    await rec.reconcile(ID, { force: true });
    expect(node.calls).toEqual([`stop ${ID} force=true`]);

    node.set(ID, 'running');
    const cur = (await store.get<VmRecord>(keys.vm(ID)))!;
    await store.txn({ put: [{ key: cur.key, value: { ...cur.value, power: 'paused' } }] });
    await rec.reconcile(ID);
    expect(node.vmStatus(ID).state).toBe('paused');
    await store.txn({
      put: [{ key: cur.key, value: { ...cur.value, power: 'running', runningGeneration: 2 } }],
    });
    await rec.reconcile(ID);
    expect(node.calls.slice(1)).toEqual([`pause ${ID}`, `resume ${ID}`]);
  });

  it('is woken by a change in the store and converges in the background', async () => {
    const { node, rec, store } = await setup('stopped');
    await rec.start();
    try {
      const cur = (await store.get<VmRecord>(keys.vm(ID)))!;
      await store.txn({ put: [{ key: cur.key, value: { ...cur.value, power: 'running', generation: 3 } }] });
      await waitFor(() => node.vmStatus(ID).state === 'running', {
        timeoutMs: 2000,
        what: 'the VM to be started',
      });
    } finally {
      await rec.stop();
    }
  });

  it('backs off while the store is down and recovers', async () => {
    const { node, rec, store } = await setup('running');
    store.down = true;
    await rec.start();
    try {
      expect(node.calls).toEqual([]);
      store.down = false;
      rec.wake();
      await waitFor(() => node.vmStatus(ID).state === 'running', {
        timeoutMs: 2000,
        what: 'the VM to be started',
      });
    } finally {
      await rec.stop();
    }
  });
});
