import type { BackupProgress, RestoreVolumeRequest, VmBackupRequest } from '../backup/node-backup';
import type { BackupManifest } from '../backup/repository';
import type { CephApplyRequest, CephHostState } from '../ceph/host';
import { NfError } from '../errors';
import type { Point } from '../node/series';
import type {
  ConsoleStream,
  IncomingRequest,
  MoveDiskRequest,
  NodeApi,
  NodeInfo,
  OutgoingMigration,
  PlugDevice,
  StopOptions,
  VmStatus,
  VolumeBacking,
} from '../node/types';
import type { VolumeInfo } from '../storage/driver';
import type { SharedPoolConfig } from '../storage/shared-pools';
import type { IncomingEndpoint, MigrationProgress, MigrationResult } from '../vmm/migration';
import type { IsolationResponse, TuneDevice, VmRunSpec } from '../vmm/types';

/** A node the router can reach: the local one in process, others over gRPC. */
export interface RoutedNode extends NodeApi {
  /** False while a remote node cannot be reached (its VMs then show `unknown`). */
  readonly connected?: boolean;
  /** Waits (bounded) for the connection; true once connected. */
  waitConnected?(timeoutMs: number): Promise<boolean>;
  close?(): void;
}

type Disks = { id: string; pool: string; volume: string }[];

/**
 * The controller's view of every node as one NodeApi: a call about a VM goes to the host its record names.
 * Locations are learnt from the VM records the controller reads (`locate`), so the reconciler, actions and
 * guest calls need not know whether the VM runs here or on another host.
 */
export class NodeRouter implements NodeApi {
  private readonly nodes = new Map<string, RoutedNode>();
  private readonly unsubscribe = new Map<string, () => void>();
  private readonly where = new Map<string, string>();
  private readonly listeners = new Set<(s: VmStatus) => void>();

  constructor(
    readonly localName: string,
    readonly local: NodeApi,
  ) {
    this.add(localName, local);
  }

  add(name: string, api: RoutedNode): void {
    if (this.nodes.get(name) === api) return;
    this.remove(name);
    this.nodes.set(name, api);
    this.unsubscribe.set(
      name,
      api.onStatus((s) => {
        if (this.where.get(s.id) !== name) return; // a stale report from a host the VM left
        for (const l of this.listeners) l(s);
      }),
    );
  }

  remove(name: string): void {
    if (name === this.localName) return;
    this.unsubscribe.get(name)?.();
    this.unsubscribe.delete(name);
    this.nodes.get(name)?.close?.();
    this.nodes.delete(name);
  }

  names(): string[] {
    return [...this.nodes.keys()];
  }

  get(name: string): RoutedNode | undefined {
    return this.nodes.get(name);
  }

  has(name: string): boolean {
    return this.nodes.has(name);
  }

  /** False when the host is unknown here or its connection is down. */
  reachable(name: string): boolean {
    const n = this.nodes.get(name);
    return !!n && n.connected !== false;
  }

  /** Gives a host a few seconds to (re)connect before an action needs it; false if it stays away. */
  async reach(name: string, timeoutMs = 5000): Promise<boolean> {
    const n = this.nodes.get(name);
    if (!n) return false;
    if (n.connected !== false) return true;
    return (await n.waitConnected?.(timeoutMs)) ?? false;
  }

  /** The NodeApi of one host. */
  on(name: string): NodeApi {
    if (!name) throw new NfError('invalid_state', 'the VM is not placed on a host yet (pending)');
    const n = this.nodes.get(name);
    if (!n) throw new NfError('unavailable', `host ${name} is not known to this controller`);
    return n;
  }

  /** Records which host a VM's record names ('' while it is pending). */
  locate(id: string, node: string): void {
    if (node) this.where.set(id, node);
    else this.where.delete(id);
  }

  forget(id: string): void {
    this.where.delete(id);
  }

  private vm(id: string): NodeApi {
    const node = this.where.get(id);
    if (!node) throw new NfError('invalid_state', 'the VM is not placed on a host yet (pending)');
    return this.on(node);
  }

  // --- NodeApi: host-level calls answer for the local host; VM calls follow the VM. ---

  info(): Promise<NodeInfo> {
    return this.local.info();
  }

  vmStatus(id: string): VmStatus {
    const node = this.where.get(id);
    const n = node ? this.nodes.get(node) : undefined;
    if (!n) return { id, state: 'stopped', updatedAt: new Date(0).toISOString() };
    return n.vmStatus(id);
  }

  async startVm(spec: VmRunSpec): Promise<VmStatus> {
    return this.vm(spec.id).startVm(spec);
  }

  async stopVm(id: string, opts?: StopOptions): Promise<VmStatus> {
    return this.vm(id).stopVm(id, opts);
  }

  async pauseVm(id: string): Promise<VmStatus> {
    return this.vm(id).pauseVm(id);
  }

  async resumeVm(id: string): Promise<VmStatus> {
    return this.vm(id).resumeVm(id);
  }

  async resetVm(id: string): Promise<VmStatus> {
    return this.vm(id).resetVm(id);
  }

  async snapshotVm(id: string, name: string, disks: Disks): Promise<void> {
    return this.vm(id).snapshotVm(id, name, disks);
  }

  async deleteVmSnapshot(id: string, name: string, disks: Disks): Promise<void> {
    return this.vm(id).deleteVmSnapshot(id, name, disks);
  }

  async revertVmSnapshot(id: string, name: string, disks: Disks): Promise<void> {
    return this.vm(id).revertVmSnapshot(id, name, disks);
  }

  async consoleLog(id: string, maxBytes?: number): Promise<string> {
    return this.vm(id).consoleLog(id, maxBytes);
  }

  vmMetrics(id: string, range: 'fine' | 'coarse') {
    const node = this.where.get(id);
    const n = node ? this.nodes.get(node) : undefined;
    return n ? n.vmMetrics(id, range) : ([] as Point[]);
  }

  hostMetrics(range: 'fine' | 'coarse') {
    return this.local.hostMetrics(range);
  }

  async guestCommand<T>(
    id: string,
    command: string,
    args?: Record<string, unknown>,
    opts?: { timeoutMs?: number; noReply?: boolean },
  ): Promise<T> {
    return this.vm(id).guestCommand<T>(id, command, args, opts);
  }

  async openConsole(id: string): Promise<ConsoleStream> {
    return this.vm(id).openConsole(id);
  }

  createVolume(pool: string, volume: string, sizeBytes: number, backing?: VolumeBacking): Promise<void> {
    return this.local.createVolume(pool, volume, sizeBytes, backing);
  }

  deleteVolume(pool: string, volume: string): Promise<void> {
    return this.local.deleteVolume(pool, volume);
  }

  flattenVolume(pool: string, volume: string): Promise<void> {
    return this.local.flattenVolume(pool, volume);
  }

  /** Grows a VM's disk on the VM's host (through its QEMU when it runs). */
  resizeVolume(
    pool: string,
    volume: string,
    sizeBytes: number,
    vm?: { id: string; disk: string },
  ): Promise<void> {
    return vm
      ? this.vm(vm.id).resizeVolume(pool, volume, sizeBytes, vm)
      : this.local.resizeVolume(pool, volume, sizeBytes);
  }

  deleteImageFile(pool: string, file: string): Promise<void> {
    return this.local.deleteImageFile(pool, file);
  }

  /** Copies an image of this host into a shared pool (use on(name) for another host). */
  copyImage(
    src: { pool: string; file: string; format: 'qcow2' | 'raw' },
    dst: { pool: string; volume: string },
  ): Promise<number> {
    return this.local.copyImage(src, dst);
  }

  /** Volumes of a pool of this host (use on(name) for another host). */
  listVolumes(pool: string): Promise<VolumeInfo[]> {
    return this.local.listVolumes(pool);
  }

  /** This host's shared pools (use on(name) for another host). */
  configurePools(pools: SharedPoolConfig[]): Promise<void> {
    return this.local.configurePools(pools);
  }

  /** Moves a disk on the VM's host. */
  // Migration: the source's verbs follow the VM; the target's need the host named (on(target)).
  prepareIncoming(_req: IncomingRequest): Promise<IncomingEndpoint> {
    return Promise.reject(new NfError('internal', 'prepareIncoming goes to the target host: use on(target)'));
  }

  migrateOut(req: OutgoingMigration, onProgress?: (p: MigrationProgress) => void): Promise<MigrationResult> {
    return this.vm(req.vmId).migrateOut(req, onProgress);
  }

  cancelMigration(vmId: string, reason?: string): Promise<void> {
    return this.vm(vmId).cancelMigration(vmId, reason);
  }

  finishIncoming(vmId: string): Promise<VmStatus> {
    return this.vm(vmId).finishIncoming(vmId);
  }

  abortIncoming(vmId: string, localDisks: { pool: string; volume: string }[]): Promise<{ reason?: string }> {
    return this.vm(vmId).abortIncoming(vmId, localDisks);
  }

  resumeMigrated(vmId: string): Promise<VmStatus> {
    return this.vm(vmId).resumeMigrated(vmId);
  }

  moveDisk(req: MoveDiskRequest, onProgress?: (done: number, total: number) => void): Promise<void> {
    return this.vm(req.vmId).moveDisk(req, onProgress);
  }

  backupVm(req: VmBackupRequest, onProgress?: (p: BackupProgress) => void): Promise<BackupManifest> {
    return this.vm(req.vm.id).backupVm(req, onProgress);
  }

  /** On this host; another host's pools are reached with on(name). */
  restoreVolume(
    req: RestoreVolumeRequest,
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ writtenBytes: number }> {
    return this.local.restoreVolume(req, onProgress);
  }

  /** This host's Ceph part (use on(name) for another host). */
  cephApply(req: CephApplyRequest): Promise<CephHostState> {
    return this.local.cephApply(req);
  }

  cephDaemons(): Promise<CephHostState> {
    return this.local.cephDaemons();
  }

  hasProcess(id: string): boolean {
    const node = this.where.get(id);
    const n = node ? this.nodes.get(node) : undefined;
    return n ? n.hasProcess(id) : false;
  }

  /** Probes the local host (HA probes a given host with on(name).probe()). */
  probe(): Promise<{ cutOff: boolean }> {
    return this.on(this.localName).probe();
  }

  setIsolation(id: string, response: IsolationResponse | undefined): Promise<void> {
    return this.vm(id).setIsolation(id, response);
  }

  plugDevice(id: string, device: PlugDevice): Promise<void> {
    return this.vm(id).plugDevice(id, device);
  }

  unplugDevice(id: string, device: { disk: string } | { nic: string }): Promise<void> {
    return this.vm(id).unplugDevice(id, device);
  }

  tuneDevice(id: string, change: TuneDevice): Promise<void> {
    return this.vm(id).tuneDevice(id, change);
  }

  changeMedia(id: string, iso: { pool: string; file: string } | undefined): Promise<void> {
    return this.vm(id).changeMedia(id, iso);
  }

  addVcpus(id: string, count: number): Promise<void> {
    return this.vm(id).addVcpus(id, count);
  }

  addMemory(id: string, memoryMiB: number): Promise<void> {
    return this.vm(id).addMemory(id, memoryMiB);
  }

  vmDevices(id: string): Promise<{ disks: string[]; nics: string[] }> {
    return this.vm(id).vmDevices(id);
  }

  forgetVm(id: string): Promise<void> {
    const node = this.where.get(id);
    const n = node ? this.nodes.get(node) : undefined;
    return n ? n.forgetVm(id) : Promise.resolve();
  }

  onStatus(listener: (status: VmStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
