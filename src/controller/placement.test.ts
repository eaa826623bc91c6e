import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NfError } from '../errors';
import type { ConsoleStream, NodeApi, NodeInfo, VmStatus } from '../node/types';
import { DirPool } from '../storage/dir-pool';
import { imageInfo } from '../storage/qemu-img';
import { MemoryStore } from '../store/memory-store';
import type { TxnOps } from '../store/store';
import { setLogLevel } from '../util/log';
import { waitFor } from '../util/wait';
import type { VmRunSpec } from '../vmm/types';
import { HOST_RESERVE_BYTES, NodeRegistry } from './node-registry';
import { NodeRouter } from './node-router';
import { Placement } from './placement';
import {
  type DiskRecord,
  type ImageRecord,
  keys,
  type NetworkRecord,
  type NodeHealthRecord,
  type NodeRecord,
  type VmRecord,
} from './records';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** A host that records the volume calls it gets; `failCreate` makes createVolume fail for one volume. */
class FakeNode implements NodeApi {
  calls: string[] = [];
  volumes = new Set<string>();
  failCreate?: { volume: string; error: Error };
  /** Runs inside createVolume, before it returns (to change the store meanwhile). */
  onCreate?: (volume: string) => Promise<void>;
  /** A real pool behind createVolume/deleteVolume (all volumes in it, whatever pool is named). */
  pool?: DirPool;
  /** Makes deleteVolume fail (the host did not answer). */
  failDelete?: Error;

  constructor(readonly name: string) {}

  async info(): Promise<NodeInfo> {
    throw new Error('unused');
  }
  vmStatus(id: string): VmStatus {
    return { id, state: 'stopped', updatedAt: '' };
  }
  async startVm(spec: VmRunSpec): Promise<VmStatus> {
    return this.vmStatus(spec.id);
  }
  async stopVm(id: string): Promise<VmStatus> {
    return this.vmStatus(id);
  }
  async pauseVm(id: string): Promise<VmStatus> {
    return this.vmStatus(id);
  }
  async resumeVm(id: string): Promise<VmStatus> {
    return this.vmStatus(id);
  }
  async resetVm(id: string): Promise<VmStatus> {
    return this.vmStatus(id);
  }
  async snapshotVm(): Promise<void> {}
  async deleteVmSnapshot(): Promise<void> {}
  async revertVmSnapshot(): Promise<void> {}
  /** Says which host answered, so a test sees where the router sent a VM call. */
  async consoleLog(id: string): Promise<string> {
    return `${id}@${this.name}`;
  }
  async forgetVm(): Promise<void> {}
  vmMetrics(): [] {
    return [];
  }
  hostMetrics(): [] {
    return [];
  }
  async guestCommand<T>(): Promise<T> {
    throw new NfError('unavailable', 'no agent in the fake');
  }
  async openConsole(): Promise<ConsoleStream> {
    throw new NfError('unavailable', 'no console in the fake');
  }
  async createVolume(
    pool: string,
    volume: string,
    sizeBytes: number,
    backing?: { file: string; format: 'qcow2' | 'raw' },
  ): Promise<void> {
    this.calls.push(
      `create ${pool}/${volume} ${sizeBytes}${backing ? ` backing=${backing.file}:${backing.format}` : ''}`,
    );
    if (this.failCreate?.volume === volume) throw this.failCreate.error;
    await this.onCreate?.(volume);
    // as Node.createVolume does
    if (this.pool)
      await this.pool.createDisk(
        volume,
        sizeBytes,
        backing ? { path: this.pool.imagePath(backing.file), format: backing.format } : undefined,
      );
    this.volumes.add(`${pool}/${volume}`);
  }
  async deleteVolume(pool: string, volume: string): Promise<void> {
    this.calls.push(`delete ${pool}/${volume}`);
    if (this.failDelete) throw this.failDelete;
    await this.pool?.deleteDisk(volume);
    this.volumes.delete(`${pool}/${volume}`);
  }
  async deleteImageFile(): Promise<void> {}
  hasProcess(): boolean {
    return false;
  }
  onStatus(): () => void {
    return () => {};
  }
}

/** A MemoryStore whose transactions a test can count and make fail. */
class TestStore extends MemoryStore {
  txns = 0;
  /**
   * Decides the fate of each transaction: 'conflict' fails it unapplied, 'lost' applies it and then
   * throws as if the reply had been lost; undefined lets it run.
   */
  onTxn?: (ops: TxnOps) => 'conflict' | 'lost' | undefined;

  override async txn(ops: TxnOps, conflictMessage?: string): Promise<void> {
    this.txns++;
    const fate = this.onTxn?.(ops);
    if (fate === 'conflict') throw new NfError('conflict', 'the record was changed by someone else; retry');
    await super.txn(ops, conflictMessage);
    if (fate === 'lost') throw new NfError('unavailable', 'etcd is unreachable: reply lost');
  }
}

/** A transaction that writes a host into a VM record (the bind, not markPending). */
function bindsHost(ops: TxnOps): boolean {
  return (ops.put ?? []).some((p) => p.key.startsWith(keys.vms) && (p.value as VmRecord).node !== '');
}

interface HostSpec {
  name: string;
  /** Memory usable for VMs (HOST_RESERVE_BYTES is added to make the record's total). */
  usableBytes?: number;
  cpus?: number;
  maintenance?: boolean;
  ready?: boolean;
  pools?: string[];
}

function nodeRecord(h: HostSpec): NodeRecord {
  return {
    name: h.name,
    role: 'worker',
    addresses: ['192.0.2.1'],
    maintenance: h.maintenance ?? false,
    joinedAt: '2024-01-01T00:00:00.000Z',
    info: {
      cpus: h.cpus ?? 8,
      cpuModel: 'Test CPU',
      memoryTotalBytes: (h.usableBytes ?? 16 * GiB) + HOST_RESERVE_BYTES,
      accelerator: 'kvm',
      pools: (h.pools ?? ['default']).map((name) => ({
        name,
        type: 'dir',
        totalBytes: 100 * GiB,
        freeBytes: 50 * GiB,
      })),
      qemuVersion: '9.0.0',
    },
  };
}

function vmId(n: number): string {
  return `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
}

/** A pending VM; createdAt follows n so that lower numbers are older. */
function vmRecord(n: number, extra: Partial<VmRecord> = {}): VmRecord {
  const at = new Date(Date.UTC(2024, 0, 1) + n * 1000).toISOString();
  return {
    id: vmId(n),
    name: `vm${n}`,
    node: '',
    vcpus: 1,
    memoryMiB: 512,
    machine: 'q35',
    disks: [],
    networks: [{ id: 'nic0', network: 'default', mac: '52:54:00:00:00:01' }],
    boot: { disk: 0 },
    snapshots: [],
    power: 'stopped',
    generation: 1,
    createdAt: at,
    updatedAt: at,
    ...extra,
  };
}

function disk(n: number, extra: Partial<DiskRecord> = {}): DiskRecord {
  return { id: `disk${n}`, pool: 'default', volume: `vol-${n}`, sizeBytes: (n + 1) * GiB, ...extra };
}

function imageRecord(id: string, node: string | undefined, extra: Partial<ImageRecord> = {}): ImageRecord {
  const img: ImageRecord = {
    id,
    name: `image-${id}`,
    kind: 'disk',
    format: 'qcow2',
    pool: 'default',
    file: `${id}.qcow2`,
    sizeBytes: GiB,
    virtualSizeBytes: 10 * GiB,
    sha256: '0'.repeat(64),
    createdAt: '2024-01-01T00:00:00.000Z',
  };
  if (node !== undefined) img.node = node;
  return { ...img, ...extra };
}

async function setup(hosts: HostSpec[], vms: VmRecord[] = []) {
  const store = new TestStore();
  const nodes = new Map(hosts.map((h) => [h.name, new FakeNode(h.name)]));
  const first = hosts[0]!.name;
  const router = new NodeRouter(first, nodes.get(first)!);
  for (const [name, n] of nodes) if (name !== first) router.add(name, n);
  const put: { key: string; value: unknown }[] = [
    { key: keys.network('default'), value: { name: 'default', type: 'nat' } satisfies NetworkRecord },
  ];
  for (const h of hosts) {
    put.push({ key: keys.node(h.name), value: nodeRecord(h) });
    if (h.ready !== false) put.push({ key: keys.nodeHealth(h.name), value: health() });
  }
  for (const v of vms) put.push({ key: keys.vm(v.id), value: v });
  await store.txn({ put });
  store.txns = 0;
  const registry = new NodeRegistry(store, async () => first);
  const placement = new Placement(store, router, registry);
  const read = async (id: string) => (await store.get<VmRecord>(keys.vm(id)))!.value;
  const put1 = (key: string, value: unknown) => store.txn({ put: [{ key, value }] });
  return { store, nodes, router, registry, placement, read, put: put1 };
}

function health(): NodeHealthRecord {
  return { at: new Date().toISOString(), memoryAvailableBytes: 8 * GiB, vmsRunning: 0 };
}

beforeAll(() => setLogLevel('error'));
afterAll(() => setLogLevel('info'));

describe('Placement', () => {
  it('places pending diskless VMs, spread over the hosts, and clears their pending reason', async () => {
    const vms = [1, 2, 3, 4].map((n) =>
      vmRecord(n, { pending: { reason: 'no host fits (earlier)', at: '2024-01-01T00:00:00.000Z' } }),
    );
    const { placement, read, router, nodes } = await setup([{ name: 'a' }, { name: 'b' }], vms);
    expect(await placement.pass()).toBe(4);
    const placed = await Promise.all(vms.map((v) => read(v.id)));
    for (const v of placed) {
      expect(['a', 'b']).toContain(v.node);
      expect(v.pending).toBeUndefined();
      // the router now sends this VM's calls to its host
      expect(await router.consoleLog(v.id)).toBe(`${v.id}@${v.node}`);
    }
    expect(placed.filter((v) => v.node === 'a')).toHaveLength(2);
    expect(placed.filter((v) => v.node === 'b')).toHaveLength(2);
    // diskless: nothing was created on any host
    for (const n of nodes.values()) expect(n.calls).toEqual([]);
    expect(placement.stats).toEqual({ passes: 1, placed: 4 });
    // nothing left to place: a second pass is a no-op
    expect(await placement.pass()).toBe(0);
    expect(placement.stats.passes).toBe(1);
  });

  it('keeps the rest of the record intact when placing', async () => {
    const vm = vmRecord(1, { description: 'keep me', power: 'running', generation: 7 });
    const { placement, read } = await setup([{ name: 'a' }], [vm]);
    await placement.pass();
    const { node, updatedAt, ...rest } = await read(vm.id);
    const { node: _n, updatedAt: _u, ...before } = vm;
    expect(node).toBe('a');
    expect(rest).toEqual(before);
    expect(updatedAt >= vm.updatedAt).toBe(true);
  });

  it('creates a VM’s disks on the chosen host, then names that host in the record', async () => {
    const vm = vmRecord(1, { disks: [disk(0), disk(1, { pool: 'fast' })] });
    const { placement, read, nodes, store } = await setup(
      [
        { name: 'a', pools: ['default'] },
        { name: 'b', pools: ['default', 'fast'] },
      ],
      [vm],
    );
    const seen: string[] = [];
    nodes.get('b')!.onCreate = async () => {
      // the record does not name the host before its disks exist
      seen.push((await store.get<VmRecord>(keys.vm(vm.id)))!.value.node);
    };
    expect(await placement.pass()).toBe(1);
    expect(nodes.get('a')!.calls).toEqual([]);
    expect(nodes.get('b')!.calls).toEqual([`create default/vol-0 ${GiB}`, `create fast/vol-1 ${2 * GiB}`]);
    expect(seen).toEqual(['', '']);
    const rec = await read(vm.id);
    expect(rec.node).toBe('b');
    expect(rec.pending).toBeUndefined();
  });

  it('clones a disk from its image (backing file and format) on the image’s host', async () => {
    const vm = vmRecord(1, {
      disks: [disk(0, { image: 'img-q' }), disk(1, { image: 'img-r' }), disk(2)],
    });
    const { placement, read, nodes, put } = await setup([{ name: 'a' }, { name: 'b' }], [vm]);
    await put(keys.image('img-q'), imageRecord('img-q', 'b'));
    await put(keys.image('img-r'), imageRecord('img-r', 'b', { format: 'raw', file: 'img-r.raw' }));
    expect(await placement.pass()).toBe(1);
    // spread would break the tie towards "a": the images pin the VM to "b"
    expect(nodes.get('a')!.calls).toEqual([]);
    expect(nodes.get('b')!.calls).toEqual([
      `create default/vol-0 ${GiB} backing=img-q.qcow2:qcow2`,
      `create default/vol-1 ${2 * GiB} backing=img-r.raw:raw`,
      `create default/vol-2 ${3 * GiB}`,
    ]);
    expect((await read(vm.id)).node).toBe('b');
  });

  it('pins a VM booting from an ISO image to the host holding the ISO', async () => {
    const vm = vmRecord(1, { boot: { cdrom: { image: 'iso1' } } });
    const { placement, read, put } = await setup([{ name: 'a' }, { name: 'b' }], [vm]);
    await put(keys.image('iso1'), imageRecord('iso1', 'b', { kind: 'iso', format: 'iso', file: 'x.iso' }));
    expect(await placement.pass()).toBe(1);
    expect((await read(vm.id)).node).toBe('b');
  });

  it('leaves the VM pending, naming the host and the error, and deletes the disks it created', async () => {
    const vm = vmRecord(1, { disks: [disk(0), disk(1), disk(2)] });
    const { placement, read, nodes, router } = await setup([{ name: 'a' }], [vm]);
    const a = nodes.get('a')!;
    a.failCreate = { volume: 'vol-1', error: new NfError('insufficient_resources', 'pool default is full') };
    expect(await placement.pass()).toBe(0);
    expect(a.calls).toEqual([
      `create default/vol-0 ${GiB}`,
      `create default/vol-1 ${2 * GiB}`,
      'delete default/vol-0',
    ]);
    expect(a.volumes.size).toBe(0);
    const rec = await read(vm.id);
    expect(rec.node).toBe('');
    expect(rec.pending?.reason).toContain('host a');
    expect(rec.pending?.reason).toContain('pool default is full');
    expect(placement.stats.placed).toBe(0);
    // the router does not think the VM is anywhere
    await expect(Promise.resolve().then(() => router.consoleLog(vm.id))).rejects.toMatchObject({
      code: 'invalid_state',
    });

    // once the host can create volumes again, the next pass places the VM
    a.failCreate = undefined;
    a.calls = [];
    expect(await placement.pass()).toBe(1);
    expect(a.calls).toEqual([
      `create default/vol-0 ${GiB}`,
      `create default/vol-1 ${2 * GiB}`,
      `create default/vol-2 ${3 * GiB}`,
    ]);
    const placed = await read(vm.id);
    expect(placed.node).toBe('a');
    expect(placed.pending).toBeUndefined();
  });

  it('leaves the VM pending when a disk’s image record is gone', async () => {
    const vm = vmRecord(1, { disks: [disk(0), disk(1, { image: 'deleted' })] });
    const { placement, read, nodes } = await setup([{ name: 'a' }], [vm]);
    expect(await placement.pass()).toBe(0);
    expect(nodes.get('a')!.calls).toEqual([`create default/vol-0 ${GiB}`, 'delete default/vol-0']);
    const rec = await read(vm.id);
    expect(rec.node).toBe('');
    expect(rec.pending?.reason).toMatch(/host a .*image deleted of disk disk1 is gone/);
  });

  it('deletes the disks it created when the record changed meanwhile, and keeps the other change', async () => {
    const vm = vmRecord(1, { disks: [disk(0), disk(1)] });
    const { placement, read, nodes, store } = await setup([{ name: 'a' }], [vm]);
    const a = nodes.get('a')!;
    let bumped = false;
    a.onCreate = async () => {
      if (bumped) return;
      bumped = true;
      // someone edits the VM while its disks are being created
      const cur = (await store.get<VmRecord>(keys.vm(vm.id)))!;
      await store.txn({ put: [{ key: cur.key, value: { ...cur.value, description: 'edited meanwhile' } }] });
    };
    expect(await placement.pass()).toBe(0);
    expect(a.calls).toEqual([
      `create default/vol-0 ${GiB}`,
      `create default/vol-1 ${2 * GiB}`,
      'delete default/vol-0',
      'delete default/vol-1',
    ]);
    expect(a.volumes.size).toBe(0);
    let rec = await read(vm.id);
    expect(rec.node).toBe('');
    expect(rec.description).toBe('edited meanwhile');
    expect(rec.disks).toEqual(vm.disks);

    // the next pass sees the new record and places it
    expect(await placement.pass()).toBe(1);
    rec = await read(vm.id);
    expect(rec.node).toBe('a');
    expect(rec.description).toBe('edited meanwhile');
    expect(a.volumes).toEqual(new Set(['default/vol-0', 'default/vol-1']));
  });

  it('deletes the created disks when the bind loses a compare-and-swap, then places the VM later', async () => {
    const vm = vmRecord(1, { disks: [disk(0)] });
    const { placement, read, nodes, store } = await setup([{ name: 'a' }], [vm]);
    let conflicts = 1;
    store.onTxn = (ops) => (bindsHost(ops) && conflicts-- > 0 ? 'conflict' : undefined);
    expect(await placement.pass()).toBe(0);
    const a = nodes.get('a')!;
    expect(a.calls).toEqual([`create default/vol-0 ${GiB}`, 'delete default/vol-0']);
    let rec = await read(vm.id);
    expect(rec.node).toBe('');
    expect(rec.pending?.reason).toContain('host a');
    expect(await placement.pass()).toBe(1);
    rec = await read(vm.id);
    expect(rec.node).toBe('a');
    expect(rec.pending).toBeUndefined();
    expect(a.volumes).toEqual(new Set(['default/vol-0']));
  });

  it('converges when the cleanup after a lost compare-and-swap failed too (a real pool keeps the volume)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nf-placement-test-'));
    try {
      const vm = vmRecord(1, {
        disks: [disk(0, { volume: `vm-${vmId(1)}-disk0.qcow2`, sizeBytes: 64 * MiB })],
      });
      const { placement, read, nodes, store } = await setup([{ name: 'a' }], [vm]);
      const a = nodes.get('a')!;
      const pool = new DirPool('default', dir);
      pool.init();
      a.pool = pool;
      a.failDelete = new NfError('unavailable', 'host a did not answer');
      let conflicts = 1;
      store.onTxn = (ops) => (bindsHost(ops) && conflicts-- > 0 ? 'conflict' : undefined);
      expect(await placement.pass()).toBe(0);
      const file = pool.diskPath(vm.disks[0]!.volume);
      expect(existsSync(file)).toBe(true); // the leftover
      expect((await read(vm.id)).node).toBe('');

      // The next pass creates the same volume again: accepted as it is, and the VM is placed.
      expect(await placement.pass()).toBe(1);
      const rec = await read(vm.id);
      expect(rec.node).toBe('a');
      expect(rec.pending).toBeUndefined();
      expect((await imageInfo(file)).virtualSize).toBe(64 * MiB);

      // A leftover that is not what the VM asks for (here: another size) is refused and kept.
      const other = vmRecord(2, {
        disks: [disk(0, { volume: `vm-${vmId(2)}-disk0.qcow2`, sizeBytes: 64 * MiB })],
      });
      await pool.createDisk(other.disks[0]!.volume, 32 * MiB);
      await store.txn({ put: [{ key: keys.vm(other.id), value: other }] });
      expect(await placement.pass()).toBe(0);
      const pending = await read(other.id);
      expect(pending.node).toBe('');
      expect(pending.pending?.reason).toContain(
        'already exists in pool default and is not the one asked for',
      );
      expect((await imageInfo(pool.diskPath(other.disks[0]!.volume))).virtualSize).toBe(32 * MiB);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps the disks when the bind committed but its reply was lost', async () => {
    const vm = vmRecord(1, { disks: [disk(0)] });
    const { placement, read, nodes, store } = await setup([{ name: 'a' }], [vm]);
    let lost = 1;
    store.onTxn = (ops) => (bindsHost(ops) && lost-- > 0 ? 'lost' : undefined);
    expect(await placement.pass()).toBe(1);
    const a = nodes.get('a')!;
    expect(a.calls).toEqual([`create default/vol-0 ${GiB}`]);
    expect(a.volumes).toEqual(new Set(['default/vol-0']));
    const rec = await read(vm.id);
    expect(rec.node).toBe('a');
    expect(rec.pending).toBeUndefined();
  });

  it('falls back to one write per VM when a batched record changed, placing the others', async () => {
    const vms = [1, 2, 3].map((n) => vmRecord(n));
    const { placement, read, store } = await setup([{ name: 'a' }, { name: 'b' }], vms);
    let bumped = false;
    store.onTxn = (ops) => {
      if (bumped || !bindsHost(ops)) return undefined;
      bumped = true;
      // vm2 is edited between the pass's list and its batched write
      void MemoryStore.prototype.txn.call(store, {
        put: [{ key: keys.vm(vms[1]!.id), value: { ...vms[1]!, description: 'edited' } }],
      });
      return undefined;
    };
    expect(await placement.pass()).toBe(2);
    const [r1, r2, r3] = await Promise.all(vms.map((v) => read(v.id)));
    expect(r1!.node).not.toBe('');
    expect(r3!.node).not.toBe('');
    expect(r2!.node).toBe('');
    expect(r2!.description).toBe('edited');
    store.onTxn = undefined;
    expect(await placement.pass()).toBe(1);
    const again = await read(vms[1]!.id);
    expect(again.node).not.toBe('');
    expect(again.description).toBe('edited');
  });

  it('places every VM of a batch whose write conflicted once without any real change', async () => {
    const vms = [1, 2, 3].map((n) => vmRecord(n));
    const { placement, read, store } = await setup([{ name: 'a' }], vms);
    let conflicts = 1;
    store.onTxn = (ops) => (bindsHost(ops) && conflicts-- > 0 ? 'conflict' : undefined);
    expect(await placement.pass()).toBe(3);
    for (const v of vms) expect((await read(v.id)).node).toBe('a');
  });

  it('explains why no host fits, and places the VM once a host is ready', async () => {
    const vm = vmRecord(1);
    const { placement, read, store, put } = await setup(
      [
        { name: 'a', ready: false },
        { name: 'b', maintenance: true },
        { name: 'c', ready: false },
      ],
      [vm],
    );
    expect(await placement.pass()).toBe(0);
    const rec = await read(vm.id);
    expect(rec.node).toBe('');
    expect(rec.pending?.reason).toBe(
      'no host fits VM "vm1" (1 vCPU, 512 MiB): 3 hosts: 2 not ready, 1 in maintenance',
    );
    expect(rec.pending?.at).toBeTruthy();

    // the same reason again: the record is not rewritten
    const rev = (await store.get(keys.vm(vm.id)))!.revision;
    expect(await placement.pass()).toBe(0);
    expect((await store.get(keys.vm(vm.id)))!.revision).toBe(rev);

    await put(keys.nodeHealth('c'), health());
    expect(await placement.pass()).toBe(1);
    const placed = await read(vm.id);
    expect(placed.node).toBe('c');
    expect(placed.pending).toBeUndefined();
  });

  it('treats a host without capacity facts (no info yet) as not ready', async () => {
    const vm = vmRecord(1);
    const { placement, read, put } = await setup([{ name: 'a' }], [vm]);
    const { info: _info, ...bare } = nodeRecord({ name: 'a' });
    await put(keys.node('a'), bare);
    expect(await placement.pass()).toBe(0);
    expect((await read(vm.id)).pending?.reason).toMatch(/1 host: 1 not ready$/);
  });

  it('says so when every host is in maintenance, or lacks the memory', async () => {
    const small = vmRecord(1);
    const big = vmRecord(2, { memoryMiB: 4096 });
    const { placement, read, put } = await setup(
      [
        { name: 'a', usableBytes: GiB },
        { name: 'b', usableBytes: 2 * GiB },
      ],
      [small, big],
    );
    expect(await placement.pass()).toBe(1);
    expect((await read(small.id)).node).toBe('b');
    expect((await read(big.id)).pending?.reason).toBe(
      'no host fits VM "vm2" (1 vCPU, 4096 MiB): 2 hosts: 2 insufficient memory',
    );

    const late = vmRecord(3);
    await put(keys.vm(late.id), late);
    for (const name of ['a', 'b'])
      await put(keys.node(name), { ...nodeRecord({ name, usableBytes: 2 * GiB }), maintenance: true });
    expect(await placement.pass()).toBe(0);
    expect((await read(late.id)).pending?.reason).toBe(
      'no host fits VM "vm3" (1 vCPU, 512 MiB): 2 hosts: 2 in maintenance',
    );
  });

  it('says so when there are no hosts at all', async () => {
    const vm = vmRecord(1);
    const { placement, read, store } = await setup([{ name: 'a' }], [vm]);
    await store.txn({ delete: [keys.node('a'), keys.nodeHealth('a')] });
    expect(await placement.pass()).toBe(0);
    expect((await read(vm.id)).pending?.reason).toBe(
      'no host fits VM "vm1" (1 vCPU, 512 MiB): no hosts in the cluster',
    );
  });

  it('honours a pinned host, and explains a pin to a host that cannot take the VM', async () => {
    const pinned = vmRecord(1, { placement: { node: 'b' } });
    const nowhere = vmRecord(2, { placement: { node: 'zz' } });
    const busy = vmRecord(3, { placement: { node: 'c' } });
    const { placement, read } = await setup(
      [{ name: 'a' }, { name: 'b' }, { name: 'c', maintenance: true }],
      [pinned, nowhere, busy],
    );
    expect(await placement.pass()).toBe(1);
    expect((await read(pinned.id)).node).toBe('b');
    expect((await read(nowhere.id)).pending?.reason).toBe(
      'no host fits VM "vm2" (1 vCPU, 512 MiB): 3 hosts: 3 not the pinned host "zz" (no such host)',
    );
    expect((await read(busy.id)).pending?.reason).toBe(
      'no host fits VM "vm3" (1 vCPU, 512 MiB): 3 hosts: 2 not the pinned host "c", 1 in maintenance',
    );
  });

  it('keeps a VM pending when its images, or its image and its pinned host, are on different hosts', async () => {
    const twoImages = vmRecord(1, { disks: [disk(0, { image: 'on-a' }), disk(1, { image: 'on-b' })] });
    const pinElsewhere = vmRecord(2, {
      placement: { node: 'a' },
      disks: [disk(2, { image: 'on-b' })],
    });
    const ok = vmRecord(3, { disks: [disk(3, { image: 'on-b' })] });
    const { placement, read, nodes, put } = await setup(
      [{ name: 'a' }, { name: 'b' }],
      [twoImages, pinElsewhere, ok],
    );
    await put(keys.image('on-a'), imageRecord('on-a', 'a'));
    await put(keys.image('on-b'), imageRecord('on-b', 'b'));
    expect(await placement.pass()).toBe(1);
    const r1 = await read(twoImages.id);
    expect(r1.node).toBe('');
    expect(r1.pending?.reason).toBe(
      'VM "vm1" needs images or a host on different hosts (a, b); images live in one host\'s pool',
    );
    const r2 = await read(pinElsewhere.id);
    expect(r2.node).toBe('');
    expect(r2.pending?.reason).toMatch(/VM "vm2" needs images or a host on different hosts \(a, b\)/);
    // no disk was created for the VMs that cannot be placed
    expect(nodes.get('a')!.calls).toEqual([]);
    expect(nodes.get('b')!.calls).toEqual([`create default/vol-3 ${4 * GiB} backing=on-b.qcow2:qcow2`]);
    expect((await read(ok.id)).node).toBe('b');
  });

  it('follows the cluster policy: pack fills the fullest host, spread the emptiest', async () => {
    // one VM is already on "b": spread prefers "a", pack prefers "b"
    const existing = vmRecord(0, { node: 'b' });
    const vms = [1, 2, 3].map((n) => vmRecord(n));
    const packed = await setup([{ name: 'a' }, { name: 'b' }], [existing, ...vms]);
    await packed.put(keys.policy, { strategy: 'pack' });
    expect(await packed.placement.pass()).toBe(3);
    for (const v of vms) expect((await packed.read(v.id)).node).toBe('b');

    const spread = await setup([{ name: 'a' }, { name: 'b' }], [existing, ...vms]);
    expect(await spread.placement.pass()).toBe(3);
    const nodes = await Promise.all(vms.map(async (v) => (await spread.read(v.id)).node));
    // vm1 to the empty host, vm2 to the tie broken by name, vm3 to the emptier one
    expect(nodes).toEqual(['a', 'a', 'b']);
  });

  it('lets memory overcommit from the policy fit more VMs', async () => {
    const vms = [1, 2, 3].map((n) => vmRecord(n));
    const { placement, read, put } = await setup([{ name: 'a', usableBytes: GiB }], vms);
    expect(await placement.pass()).toBe(2);
    expect((await read(vms[2]!.id)).pending?.reason).toMatch(/1 insufficient memory/);
    await put(keys.policy, { memoryOvercommit: 2 });
    expect(await placement.pass()).toBe(1);
    expect((await read(vms[2]!.id)).node).toBe('a');
  });

  it('reserves every placed VM’s memory, running or not, after the host reserve', async () => {
    // 1 GiB usable per host: HOST_RESERVE_BYTES comes off memoryTotalBytes
    const hosts = [
      { name: 'a', usableBytes: GiB },
      { name: 'b', usableBytes: GiB },
    ];
    const vms = [1, 2, 3, 4, 5].map((n) => vmRecord(n));
    const { placement, read } = await setup(hosts, vms);
    expect(await placement.pass()).toBe(4);
    const recs = await Promise.all(vms.map((v) => read(v.id)));
    expect(recs.filter((v) => v.node === 'a')).toHaveLength(2);
    expect(recs.filter((v) => v.node === 'b')).toHaveLength(2);
    // the youngest VM is the one left over
    expect(recs[4]!.node).toBe('');
    expect(recs[4]!.pending?.reason).toBe(
      'no host fits VM "vm5" (1 vCPU, 512 MiB): 2 hosts: 2 insufficient memory',
    );
    // a later pass does not place it either: the placed (stopped) VMs still hold their memory
    expect(await placement.pass()).toBe(0);
  });

  it('reserves the capacity of VMs with disks placed earlier in the same pass', async () => {
    const vms = [1, 2, 3].map((n) => vmRecord(n, { disks: [disk(n)] }));
    const { placement, read, nodes } = await setup([{ name: 'a', usableBytes: GiB }], vms);
    expect(await placement.pass()).toBe(2);
    expect((await read(vms[2]!.id)).pending?.reason).toMatch(/1 host: 1 insufficient memory$/);
    // nothing was created for the VM that did not fit
    expect(nodes.get('a')!.calls).toEqual([
      `create default/vol-1 ${2 * GiB}`,
      `create default/vol-2 ${3 * GiB}`,
    ]);
  });

  it('counts VMs placed earlier against their host, and places the oldest pending VM first', async () => {
    const existing = vmRecord(0, { node: 'a', memoryMiB: 512, power: 'stopped' });
    // vm3 is the oldest of the pending ones even though vm2 is listed first
    const young = vmRecord(2, { createdAt: '2025-01-01T00:00:00.000Z' });
    const old = vmRecord(3);
    const { placement, read } = await setup([{ name: 'a', usableBytes: GiB }], [existing, young, old]);
    expect(await placement.pass()).toBe(1);
    expect((await read(old.id)).node).toBe('a');
    expect((await read(young.id)).node).toBe('');
    expect((await read(existing.id)).node).toBe('a');
  });

  it('reserves vCPUs too (4 per host CPU by default)', async () => {
    const vms = [1, 2, 3, 4, 5].map((n) => vmRecord(n, { vcpus: 2, memoryMiB: 64 }));
    const { placement, read } = await setup([{ name: 'a', cpus: 2 }], vms);
    expect(await placement.pass()).toBe(4);
    expect((await read(vms[4]!.id)).pending?.reason).toBe(
      'no host fits VM "vm5" (2 vCPU, 64 MiB): 1 host: 1 insufficient vCPUs',
    );
  });

  it('places 120 diskless VMs in one pass, in batched transactions', async () => {
    const vms = Array.from({ length: 120 }, (_, i) => vmRecord(i + 1, { memoryMiB: 64 }));
    const hosts = ['a', 'b', 'c'].map((name) => ({ name, cpus: 64 }));
    const { placement, store } = await setup(hosts, vms);
    expect(await placement.pass()).toBe(120);
    const recs = await store.list<VmRecord>(keys.vms);
    expect(recs).toHaveLength(120);
    const per = new Map<string, number>();
    for (const r of recs) {
      expect(r.value.node).not.toBe('');
      per.set(r.value.node, (per.get(r.value.node) ?? 0) + 1);
    }
    expect(per).toEqual(
      new Map([
        ['a', 40],
        ['b', 40],
        ['c', 40],
      ]),
    );
    // 50 VMs per transaction (a compare and a put each: within etcd's 128 operations)
    expect(store.txns).toBe(3);
    expect(placement.stats).toEqual({ passes: 1, placed: 120 });
  });

  it('places VMs in the background once started, as records and hosts change', async () => {
    const { placement, read, put } = await setup([{ name: 'a', ready: false }]);
    await placement.start();
    try {
      const vm = vmRecord(1);
      await put(keys.vm(vm.id), vm);
      await waitFor(async () => (await read(vm.id)).pending, { timeoutMs: 2000, what: 'a pending reason' });
      expect((await read(vm.id)).node).toBe('');
      await put(keys.nodeHealth('a'), health());
      await waitFor(async () => (await read(vm.id)).node === 'a', {
        timeoutMs: 2000,
        what: 'the VM to be placed on a',
      });
    } finally {
      await placement.stop();
    }
  });
});
