import { describe, expect, it } from 'vitest';
import { NfError } from '../errors';
import type { ConsoleStream, NodeInfo, StopOptions, VmStatus } from '../node/types';
import type { RuntimeState, VmRunSpec } from '../vmm/types';
import { NodeRouter, type RoutedNode } from './node-router';
import { type MigrationVerbs, noMigration } from './test-cluster';

/** A node that records every call it gets, prefixed with its name. */
interface FakeNode extends MigrationVerbs {}
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the migration verbs come from noMigration
class FakeNode implements RoutedNode {
  calls: string[] = [];
  states = new Map<string, VmStatus>();
  connected?: boolean;
  closed = 0;
  private listeners = new Set<(s: VmStatus) => void>();

  constructor(readonly name: string) {}

  /** Sets a VM's state here and reports it, as a node does. */
  set(id: string, state: RuntimeState): void {
    const s: VmStatus = { id, state, updatedAt: new Date().toISOString() };
    this.states.set(id, s);
    for (const l of this.listeners) l(s);
  }
  listenerCount(): number {
    return this.listeners.size;
  }
  close(): void {
    this.closed++;
  }
  private call(what: string): void {
    this.calls.push(what);
  }
  async info(): Promise<NodeInfo> {
    this.call('info');
    return { name: this.name } as NodeInfo;
  }
  vmStatus(id: string): VmStatus {
    return this.states.get(id) ?? { id, state: 'stopped', updatedAt: `from ${this.name}` };
  }
  async startVm(spec: VmRunSpec): Promise<VmStatus> {
    this.call(`start ${spec.id}`);
    this.set(spec.id, 'running');
    return this.vmStatus(spec.id);
  }
  async stopVm(id: string, opts?: StopOptions): Promise<VmStatus> {
    this.call(`stop ${id} ${JSON.stringify(opts ?? {})}`);
    this.set(id, 'stopped');
    return this.vmStatus(id);
  }
  async pauseVm(id: string): Promise<VmStatus> {
    this.call(`pause ${id}`);
    return this.vmStatus(id);
  }
  async resumeVm(id: string): Promise<VmStatus> {
    this.call(`resume ${id}`);
    return this.vmStatus(id);
  }
  async resetVm(id: string): Promise<VmStatus> {
    this.call(`reset ${id}`);
    return this.vmStatus(id);
  }
  async snapshotVm(id: string, name: string, disks: { id: string }[]): Promise<void> {
    this.call(`snapshot ${id} ${name} ${disks.map((d) => d.id).join(',')}`);
  }
  async deleteVmSnapshot(id: string, name: string): Promise<void> {
    this.call(`delete-snapshot ${id} ${name}`);
  }
  async revertVmSnapshot(id: string, name: string): Promise<void> {
    this.call(`revert ${id} ${name}`);
  }
  async consoleLog(id: string, maxBytes?: number): Promise<string> {
    this.call(`console ${id} ${maxBytes}`);
    return `console of ${id} on ${this.name}`;
  }
  async forgetVm(id: string): Promise<void> {
    this.call(`forget ${id}`);
  }
  async probe(): Promise<{ cutOff: boolean }> {
    return { cutOff: false };
  }
  async setIsolation(): Promise<void> {}
  vmMetrics(id: string, range: 'fine' | 'coarse') {
    this.call(`vm-metrics ${id} ${range}`);
    return [{ t: 1, cpu: this.name.length }];
  }
  hostMetrics(range: 'fine' | 'coarse') {
    this.call(`host-metrics ${range}`);
    return [];
  }
  async guestCommand<T>(id: string, command: string, args?: Record<string, unknown>): Promise<T> {
    this.call(`guest ${id} ${command} ${JSON.stringify(args ?? {})}`);
    return { host: this.name } as T;
  }
  async openConsole(id: string): Promise<ConsoleStream> {
    this.call(`open-console ${id}`);
    const host = this.name;
    return {
      write: () => {},
      onData: (l) => l(new TextEncoder().encode(host)),
      onClose: () => {},
      close: () => {},
    };
  }
  async createVolume(pool: string, volume: string, sizeBytes: number): Promise<void> {
    this.call(`create-volume ${pool}/${volume} ${sizeBytes}`);
  }
  async deleteVolume(pool: string, volume: string): Promise<void> {
    this.call(`delete-volume ${pool}/${volume}`);
  }
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
  async deleteImageFile(pool: string, file: string): Promise<void> {
    this.call(`delete-image ${pool}/${file}`);
  }
  hasProcess(id: string): boolean {
    this.call(`has-process ${id}`);
    return this.states.get(id)?.state === 'running';
  }
  onStatus(l: (s: VmStatus) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
Object.assign(FakeNode.prototype, noMigration);

const VM = '00000000-0000-4000-8000-000000000001';
const OTHER = '00000000-0000-4000-8000-000000000002';

function spec(id: string): VmRunSpec {
  return {
    id,
    name: 'vm',
    vcpus: 1,
    memoryMiB: 64,
    machine: 'q35',
    disks: [],
    nics: [],
    boot: { kind: 'disk', index: 0 },
    agent: false,
  };
}

function setup() {
  const local = new FakeNode('local');
  const b = new FakeNode('b');
  const c = new FakeNode('c');
  const router = new NodeRouter('local', local);
  router.add('b', b);
  router.add('c', c);
  return { router, local, b, c };
}

/** The call's outcome as a promise, whether it throws at once or rejects. */
function attempt<T>(fn: () => T | Promise<T>): Promise<T> {
  return Promise.resolve().then(fn);
}

describe('NodeRouter', () => {
  it('knows the local node and the nodes added to it', () => {
    const { router, local, b } = setup();
    expect(router.names().sort()).toEqual(['b', 'c', 'local']);
    expect(router.localName).toBe('local');
    expect(router.get('local')).toBe(local);
    expect(router.get('b')).toBe(b);
    expect(router.has('c')).toBe(true);
    expect(router.has('d')).toBe(false);
    expect(router.on('b')).toBe(b);
  });

  it('sends every VM call to the host the VM is located on', async () => {
    const { router, local, b, c } = setup();
    router.locate(VM, 'b');
    const disks = [{ id: 'd0', pool: 'default', volume: 'v0' }];
    await router.startVm(spec(VM));
    await router.stopVm(VM, { force: true, timeoutMs: 5 });
    await router.pauseVm(VM);
    await router.resumeVm(VM);
    await router.resetVm(VM);
    await router.snapshotVm(VM, 's1', disks);
    await router.deleteVmSnapshot(VM, 's1', disks);
    await router.revertVmSnapshot(VM, 's1', disks);
    expect(await router.consoleLog(VM, 100)).toBe(`console of ${VM} on b`);
    expect(await router.guestCommand(VM, 'guest-ping', { x: 1 })).toEqual({ host: 'b' });
    expect(await router.vmMetrics(VM, 'coarse')).toEqual([{ t: 1, cpu: 1 }]);
    expect(router.hasProcess(VM)).toBe(false);
    const stream = await router.openConsole(VM);
    let from = '';
    stream.onData((d) => {
      from = new TextDecoder().decode(d);
    });
    expect(from).toBe('b');
    await router.forgetVm(VM);
    expect(b.calls).toEqual([
      `start ${VM}`,
      `stop ${VM} {"force":true,"timeoutMs":5}`,
      `pause ${VM}`,
      `resume ${VM}`,
      `reset ${VM}`,
      `snapshot ${VM} s1 d0`,
      `delete-snapshot ${VM} s1`,
      `revert ${VM} s1`,
      `console ${VM} 100`,
      `guest ${VM} guest-ping {"x":1}`,
      `vm-metrics ${VM} coarse`,
      `has-process ${VM}`,
      `open-console ${VM}`,
      `forget ${VM}`,
    ]);
    expect(local.calls).toEqual([]);
    expect(c.calls).toEqual([]);
  });

  it('answers host-level calls from the local node', async () => {
    const { router, local, b } = setup();
    router.locate(VM, 'b');
    expect((await router.info()).name).toBe('local');
    await router.hostMetrics('fine');
    await router.createVolume('default', 'v1', 1024);
    await router.deleteVolume('default', 'v1');
    await router.deleteImageFile('default', 'img.qcow2');
    expect(local.calls).toEqual([
      'info',
      'host-metrics fine',
      'create-volume default/v1 1024',
      'delete-volume default/v1',
      'delete-image default/img.qcow2',
    ]);
    expect(b.calls).toEqual([]);
  });

  it('follows a VM that moves, and forgets it', async () => {
    const { router, b, c } = setup();
    router.locate(VM, 'b');
    b.set(VM, 'running');
    expect(router.vmStatus(VM).state).toBe('running');
    router.locate(VM, 'c');
    expect(router.vmStatus(VM).updatedAt).toBe('from c');
    await router.pauseVm(VM);
    expect(c.calls).toEqual([`pause ${VM}`]);
    expect(b.calls).toEqual([]);

    router.forget(VM);
    await expect(attempt(() => router.pauseVm(VM))).rejects.toMatchObject({ code: 'invalid_state' });
    // locating at '' (pending again) forgets too
    router.locate(OTHER, 'b');
    router.locate(OTHER, '');
    await expect(attempt(() => router.resumeVm(OTHER))).rejects.toMatchObject({ code: 'invalid_state' });
  });

  it('reports an unplaced VM as stopped without asking any node', async () => {
    const { router, local, b } = setup();
    local.set(VM, 'running'); // even a VM of that id on the local node is not asked about
    const s = router.vmStatus(VM);
    expect(s).toEqual({ id: VM, state: 'stopped', updatedAt: new Date(0).toISOString() });
    expect(router.hasProcess(VM)).toBe(false);
    expect(await router.vmMetrics(VM, 'fine')).toEqual([]);
    await router.forgetVm(VM);
    expect(local.calls).toEqual([]);
    expect(b.calls).toEqual([]);
  });

  it('refuses VM calls for a pending VM with invalid_state', async () => {
    const { router, local } = setup();
    const calls: (() => unknown)[] = [
      () => router.startVm(spec(VM)),
      () => router.stopVm(VM),
      () => router.pauseVm(VM),
      () => router.resumeVm(VM),
      () => router.resetVm(VM),
      () => router.snapshotVm(VM, 's', []),
      () => router.deleteVmSnapshot(VM, 's', []),
      () => router.revertVmSnapshot(VM, 's', []),
      () => router.consoleLog(VM),
      () => router.guestCommand(VM, 'guest-ping'),
      () => router.openConsole(VM),
    ];
    for (const call of calls) {
      const err = await attempt(call).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NfError);
      expect(err).toMatchObject({ code: 'invalid_state', message: expect.stringMatching(/pending/) });
    }
    expect(local.calls).toEqual([]);
    expect(() => router.on('')).toThrow(NfError);
    expect(() => router.on('')).toThrow(/pending/);
  });

  it('says a host it does not know is unavailable', async () => {
    const { router } = setup();
    router.locate(VM, 'gone');
    const err = await attempt(() => router.startVm(spec(VM))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NfError);
    expect(err).toMatchObject({ code: 'unavailable', message: expect.stringContaining('gone') });
    expect(() => router.on('gone')).toThrow(expect.objectContaining({ code: 'unavailable' }));
    // status-like calls do not throw for it
    expect(router.vmStatus(VM).state).toBe('stopped');
    expect(router.hasProcess(VM)).toBe(false);
    expect(await router.vmMetrics(VM, 'fine')).toEqual([]);
    await router.forgetVm(VM);
  });

  it('reports a node reachable unless it is unknown or its connection is down', () => {
    const { router, b, c } = setup();
    expect(router.reachable('local')).toBe(true);
    expect(router.reachable('b')).toBe(true); // connected not set: reachable
    b.connected = false;
    expect(router.reachable('b')).toBe(false);
    b.connected = true;
    expect(router.reachable('b')).toBe(true);
    c.connected = false;
    expect(router.reachable('c')).toBe(false);
    expect(router.reachable('nowhere')).toBe(false);
    expect(router.reachable('')).toBe(false);
  });

  it('forwards a status only from the host the VM is located on', () => {
    const { router, local, b, c } = setup();
    const seen: string[] = [];
    const off = router.onStatus((s) => seen.push(`${s.id} ${s.state}`));
    b.set(VM, 'running'); // not located yet: dropped
    router.locate(VM, 'b');
    b.set(VM, 'paused');
    c.set(VM, 'running'); // a stale report from another host: dropped
    local.set(VM, 'error');
    router.locate(VM, 'c');
    b.set(VM, 'stopped'); // the host it left: dropped
    c.set(VM, 'running');
    router.locate(OTHER, 'local');
    local.set(OTHER, 'running');
    expect(seen).toEqual([`${VM} paused`, `${VM} running`, `${OTHER} running`]);

    off();
    c.set(VM, 'stopped');
    expect(seen).toHaveLength(3);
  });

  it('forwards statuses to every listener', () => {
    const { router, b } = setup();
    const one: VmStatus[] = [];
    const two: VmStatus[] = [];
    router.onStatus((s) => one.push(s));
    router.onStatus((s) => two.push(s));
    router.locate(VM, 'b');
    b.set(VM, 'running');
    expect(one.map((s) => s.state)).toEqual(['running']);
    expect(two).toEqual(one);
  });

  it('removes a node: closes it, stops listening to it, forgets it', async () => {
    const { router, b } = setup();
    const seen: VmStatus[] = [];
    router.onStatus((s) => seen.push(s));
    router.locate(VM, 'b');
    expect(b.listenerCount()).toBe(1);
    router.remove('b');
    expect(b.closed).toBe(1);
    expect(b.listenerCount()).toBe(0);
    expect(router.has('b')).toBe(false);
    expect(router.names().sort()).toEqual(['c', 'local']);
    expect(router.reachable('b')).toBe(false);
    b.set(VM, 'running');
    expect(seen).toEqual([]);
    // the VM still names the host: calls now say it is unavailable
    await expect(attempt(() => router.stopVm(VM))).rejects.toMatchObject({ code: 'unavailable' });
    // removing again, or a node never added, is harmless
    router.remove('b');
    router.remove('nowhere');
    expect(b.closed).toBe(1);
  });

  it('never removes the local node', async () => {
    const { router, local } = setup();
    local.close = () => {
      throw new Error('the local node must not be closed');
    };
    router.remove('local');
    expect(router.has('local')).toBe(true);
    expect(router.get('local')).toBe(local);
    expect(router.reachable('local')).toBe(true);
    expect(local.listenerCount()).toBe(1);
    const seen: VmStatus[] = [];
    router.onStatus((s) => seen.push(s));
    router.locate(VM, 'local');
    local.set(VM, 'running');
    expect(seen).toHaveLength(1);
    await router.stopVm(VM);
    expect(local.calls).toEqual([`stop ${VM} {}`]);
  });

  it('replaces a node re-added under the same name, closing the old connection', () => {
    const { router, b } = setup();
    const b2 = new FakeNode('b');
    router.add('b', b); // the same object again: nothing changes
    expect(b.closed).toBe(0);
    expect(b.listenerCount()).toBe(1);
    router.add('b', b2);
    expect(b.closed).toBe(1);
    expect(b.listenerCount()).toBe(0);
    expect(b2.listenerCount()).toBe(1);
    expect(router.get('b')).toBe(b2);
    const seen: VmStatus[] = [];
    router.onStatus((s) => seen.push(s));
    router.locate(VM, 'b');
    b.set(VM, 'running'); // the old connection: dropped
    b2.set(VM, 'paused');
    expect(seen.map((s) => s.state)).toEqual(['paused']);
  });
});
