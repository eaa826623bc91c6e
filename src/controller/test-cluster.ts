/**
 * A cluster for controller unit tests: hosts as fake NodeApis behind a real NodeRouter, their records and
 * health in a MemoryStore, VM records, and the leader's Placement over them.
 */
import { NfError } from '../errors';
import type { ConsoleStream, NodeApi, NodeInfo, VmStatus } from '../node/types';
import type { DirPool } from '../storage/dir-pool';
import { MemoryStore } from '../store/memory-store';
import type { TxnOps } from '../store/store';
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

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

/** A host that records the volume calls it gets; `failCreate` makes createVolume fail for one volume. */
export interface FakeNode extends MigrationVerbs {}
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the migration verbs come from noMigration
export class FakeNode implements NodeApi {
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
  async configurePools(): Promise<void> {}
  async copyImage(): Promise<number> {
    return 0;
  }
  async resizeVolume(): Promise<void> {}
  async listVolumes(): Promise<[]> {
    return [];
  }
  async deleteImageFile(): Promise<void> {}
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
  /** VMs with a QEMU process on this host (none unless a test says so). */
  processes = new Set<string>();
  hasProcess(id: string): boolean {
    return this.processes.has(id);
  }
  onStatus(): () => void {
    return () => {};
  }
}

/** A MemoryStore whose transactions a test can count and make fail. */
export class TestStore extends MemoryStore {
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
export function bindsHost(ops: TxnOps): boolean {
  return (ops.put ?? []).some((p) => p.key.startsWith(keys.vms) && (p.value as VmRecord).node !== '');
}

export interface HostSpec {
  name: string;
  /** Memory usable for VMs (HOST_RESERVE_BYTES is added to make the record's total). */
  usableBytes?: number;
  cpus?: number;
  maintenance?: boolean;
  ready?: boolean;
  pools?: string[];
  /** Pools of a shared type (rbd): every host reaches their volumes. */
  sharedPools?: string[];
}

export function nodeRecord(h: HostSpec): NodeRecord {
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
      pools: [
        ...(h.pools ?? ['default']).map((name) => ({ name, type: 'dir' })),
        ...(h.sharedPools ?? []).map((name) => ({ name, type: 'rbd' })),
      ].map((p) => ({ ...p, totalBytes: 100 * GiB, freeBytes: 50 * GiB })),
      qemuVersion: '9.0.0',
    },
  };
}

export function vmId(n: number): string {
  return `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
}

/** A pending VM; createdAt follows n so that lower numbers are older. */
export function vmRecord(n: number, extra: Partial<VmRecord> = {}): VmRecord {
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

export function disk(n: number, extra: Partial<DiskRecord> = {}): DiskRecord {
  return { id: `disk${n}`, pool: 'default', volume: `vol-${n}`, sizeBytes: (n + 1) * GiB, ...extra };
}

export function imageRecord(
  id: string,
  node: string | undefined,
  extra: Partial<ImageRecord> = {},
): ImageRecord {
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

export async function setup(hosts: HostSpec[], vms: VmRecord[] = []) {
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

export function health(): NodeHealthRecord {
  return { at: new Date().toISOString(), memoryAvailableBytes: 8 * GiB, vmsRunning: 0 };
}

/** NodeApi's migration and hot-plug verbs for test fakes that take no part in them (they refuse). */
export type MigrationVerbs = Pick<
  NodeApi,
  | 'prepareIncoming'
  | 'migrateOut'
  | 'cancelMigration'
  | 'finishIncoming'
  | 'abortIncoming'
  | 'resumeMigrated'
  | 'plugDevice'
  | 'unplugDevice'
  | 'vmDevices'
  | 'addVcpus'
  | 'addMemory'
  | 'changeMedia'
  | 'tuneDevice'
>;
const refuse = () => Promise.reject(new NfError('not_implemented', 'this fake host does not do that'));
export const noMigration: MigrationVerbs = {
  prepareIncoming: refuse,
  migrateOut: refuse,
  cancelMigration: refuse,
  finishIncoming: refuse,
  abortIncoming: refuse,
  resumeMigrated: refuse,
  plugDevice: refuse,
  unplugDevice: refuse,
  vmDevices: refuse,
  addVcpus: refuse,
  addMemory: refuse,
  changeMedia: refuse,
  tuneDevice: refuse,
};
Object.assign(FakeNode.prototype, noMigration);
