/**
 * The controller side of the cluster: a NodeApi whose node runs on another host, reached over the
 * gRPC `Node` service with mutual TLS. The synchronous part of NodeApi (vmStatus, hasProcess,
 * onStatus) is answered from a cache fed by a WatchStatus stream that is kept open and reopened.
 */

import {
  type CallOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  connectivityState,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import type { BackupProgress, RestoreVolumeRequest, VmBackupRequest } from '../../backup/node-backup';
import type { BackupManifest } from '../../backup/repository';
import type { CephApplyRequest, CephHostState } from '../../ceph/host';
import { NfError } from '../../errors';
import type { Point } from '../../node/series';
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
} from '../../node/types';
import type { VolumeInfo } from '../../storage/driver';
import type { SharedPoolConfig } from '../../storage/shared-pools';
import { createLogger } from '../../util/log';
import type { IncomingEndpoint, MigrationProgress, MigrationResult } from '../../vmm/migration';
import type { IsolationResponse, TuneDevice, VmRunSpec } from '../../vmm/types';
import * as pb from '../gen/neuroflow/v1/node';
import {
  cephApplyToPb,
  cephStateFromPb,
  diskToPb,
  endpointFromPb,
  endpointToPb,
  limitsToPb,
  nicToPb,
  nodeInfoFromPb,
  pointFromPb,
  policyToPb,
  progressFromPb,
  resultFromPb,
  specToPb,
  stopOptionsToPb,
  vmStatusFromPb,
} from './convert';
import { fromGrpcError } from './errors';
import { clientChannelOptions, clientCredentials, type TlsPems } from './tls';

const log = createLogger('remote-node');

export interface RemoteNodeOptions {
  /** Deadline of a call without a longer one of its own (30 s). */
  callTimeoutMs?: number;
  /** First and longest wait before reopening the status stream (250 ms, 5 s). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

type Disk = { id: string; pool: string; volume: string };

/** Time a call gets on top of the node's own timeout for the work. */
const MARGIN_MS = 15_000;
/** Node.stopVm's grace period without timeoutMs, and its wait for QEMU after SIGKILL. */
const STOP_GRACE_MS = 60_000;
const KILL_WAIT_MS = 30_000;
const GUEST_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 120_000;
const SNAPSHOT_TIMEOUT_MS = 180_000;

interface Cached {
  status: VmStatus;
  hasProcess: boolean;
}

/** A gRPC client of one node's `Node` service, usable where the controller expects a NodeApi. */
export class RemoteNode implements NodeApi {
  private readonly client: pb.NodeClient;
  private readonly cache = new Map<string, Cached>();
  private readonly listeners = new Set<(s: VmStatus) => void>();
  private readonly connectionListeners = new Set<(connected: boolean) => void>();
  private readonly callTimeoutMs: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private stream?: ClientReadableStream<pb.StatusUpdate>;
  private retry?: ReturnType<typeof setTimeout>;
  private backoffMs: number;
  private isConnected = false;
  private closed = false;

  /**
   * @param name the node's name, for messages
   * @param address host:port of its Node service
   * @param tls this controller's certificate (OU=controller), key and the cluster CA
   * @param expectedServerName the name the node's certificate must carry (default: `name`)
   */
  constructor(
    readonly name: string,
    readonly address: string,
    tls: TlsPems,
    expectedServerName: string = name,
    opts: RemoteNodeOptions = {},
  ) {
    this.callTimeoutMs = opts.callTimeoutMs ?? 30_000;
    this.reconnectMinMs = opts.reconnectMinMs ?? 250;
    this.reconnectMaxMs = opts.reconnectMaxMs ?? 5_000;
    this.backoffMs = this.reconnectMinMs;
    this.client = new pb.NodeClient(
      address,
      clientCredentials(tls, expectedServerName),
      clientChannelOptions(expectedServerName),
    );
    this.watch();
  }

  /** True while the status stream is open and its first snapshot has arrived: the cache is live. */
  get connected(): boolean {
    return this.isConnected;
  }

  /** Called with the new value whenever `connected` changes. Returns the unsubscribe function. */
  onConnectionChange(listener: (connected: boolean) => void): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  /** Resolves true once connected (at once if it is), false after timeoutMs. */
  waitConnected(timeoutMs: number): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        resolve(this.connected);
      }, timeoutMs);
      const off = this.onConnectionChange((c) => {
        if (!c) return;
        clearTimeout(timer);
        off();
        resolve(true);
      });
    });
  }

  /** Closes the stream and the channel; later calls fail with 'unavailable'. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    const stream = this.stream;
    this.stream = undefined;
    stream?.cancel();
    this.setConnected(false);
    this.client.close();
  }

  async info(): Promise<NodeInfo> {
    return nodeInfoFromPb(await this.call('Info', this.client.info, {}));
  }

  /** The last status the node reported (a VM it never mentioned is 'stopped'). */
  vmStatus(id: string): VmStatus {
    return this.cache.get(id)?.status ?? { id, state: 'stopped', updatedAt: new Date().toISOString() };
  }

  /** Whether the node had a QEMU process for the VM when it last reported the VM's status. */
  hasProcess(id: string): boolean {
    return this.cache.get(id)?.hasProcess ?? false;
  }

  onStatus(listener: (status: VmStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async startVm(spec: VmRunSpec): Promise<VmStatus> {
    return this.apply(
      await this.call('StartVm', this.client.startVm, { spec: specToPb(spec) }, START_TIMEOUT_MS),
    );
  }

  async stopVm(id: string, opts?: StopOptions): Promise<VmStatus> {
    const grace = opts?.force ? 0 : (opts?.timeoutMs ?? STOP_GRACE_MS);
    const req = { id, options: stopOptionsToPb(opts) };
    return this.apply(await this.call('StopVm', this.client.stopVm, req, grace + KILL_WAIT_MS + MARGIN_MS));
  }

  async pauseVm(id: string): Promise<VmStatus> {
    return this.apply(await this.call('PauseVm', this.client.pauseVm, { id }));
  }

  async resumeVm(id: string): Promise<VmStatus> {
    return this.apply(await this.call('ResumeVm', this.client.resumeVm, { id }));
  }

  async resetVm(id: string): Promise<VmStatus> {
    return this.apply(await this.call('ResetVm', this.client.resetVm, { id }));
  }

  async snapshotVm(id: string, name: string, disks: Disk[]): Promise<void> {
    await this.call('SnapshotVm', this.client.snapshotVm, { id, name, disks }, SNAPSHOT_TIMEOUT_MS);
  }

  async deleteVmSnapshot(id: string, name: string, disks: Disk[]): Promise<void> {
    await this.call(
      'DeleteVmSnapshot',
      this.client.deleteVmSnapshot,
      { id, name, disks },
      SNAPSHOT_TIMEOUT_MS,
    );
  }

  async revertVmSnapshot(id: string, name: string, disks: Disk[]): Promise<void> {
    await this.call(
      'RevertVmSnapshot',
      this.client.revertVmSnapshot,
      { id, name, disks },
      SNAPSHOT_TIMEOUT_MS,
    );
  }

  async consoleLog(id: string, maxBytes?: number): Promise<string> {
    return (await this.call('ConsoleLog', this.client.consoleLog, { id, maxBytes })).text;
  }

  async vmMetrics(id: string, range: 'fine' | 'coarse'): Promise<Point[]> {
    return (await this.call('VmMetrics', this.client.vmMetrics, { id, range })).points.map(pointFromPb);
  }

  async hostMetrics(range: 'fine' | 'coarse'): Promise<Point[]> {
    return (await this.call('HostMetrics', this.client.hostMetrics, { range })).points.map(pointFromPb);
  }

  async guestCommand<T>(
    id: string,
    command: string,
    args?: Record<string, unknown>,
    opts?: { timeoutMs?: number; noReply?: boolean },
  ): Promise<T> {
    const req: pb.GuestCommandRequest = { id, command };
    if (args !== undefined) req.argsJson = JSON.stringify(args);
    if (opts?.timeoutMs !== undefined) req.timeoutMs = opts.timeoutMs;
    if (opts?.noReply !== undefined) req.noReply = opts.noReply;
    const timeout = (opts?.timeoutMs ?? GUEST_TIMEOUT_MS) + MARGIN_MS;
    const res = await this.call('GuestCommand', this.client.guestCommand, req, timeout);
    return (res.resultJson === undefined ? undefined : JSON.parse(res.resultJson)) as T;
  }

  async createVolume(
    pool: string,
    volume: string,
    sizeBytes: number,
    backing?: VolumeBacking,
  ): Promise<void> {
    const req: pb.CreateVolumeRequest = { pool, volume, sizeBytes };
    if (backing)
      req.backing = {
        file: backing.file,
        format: backing.format,
        volume: backing.volume ?? false,
        ...(backing.snapshot ? { snapshot: backing.snapshot } : {}),
      };
    await this.call('CreateVolume', this.client.createVolume, req);
  }

  async resizeVolume(
    pool: string,
    volume: string,
    sizeBytes: number,
    vm?: { id: string; disk: string },
  ): Promise<void> {
    const req: pb.ResizeVolumeRequest = { pool, volume, sizeBytes };
    if (vm) {
      req.vmId = vm.id;
      req.diskId = vm.disk;
    }
    await this.call('ResizeVolume', this.client.resizeVolume, req);
  }

  async flattenVolume(pool: string, volume: string): Promise<void> {
    // copies the parent's data in: minutes for a large disk
    await this.call('FlattenVolume', this.client.flattenVolume, { pool, volume }, 3_600_000);
  }

  async deleteVolume(pool: string, volume: string): Promise<void> {
    await this.call('DeleteVolume', this.client.deleteVolume, { pool, volume });
  }

  async copyImage(
    src: { pool: string; file: string; format: 'qcow2' | 'raw' },
    dst: { pool: string; volume: string },
  ): Promise<number> {
    const r = await this.call('CopyImage', this.client.copyImage, {
      srcPool: src.pool,
      srcFile: src.file,
      srcFormat: src.format,
      dstPool: dst.pool,
      dstVolume: dst.volume,
    });
    return Number(r.sizeBytes);
  }

  async listVolumes(pool: string): Promise<VolumeInfo[]> {
    const r = await this.call('ListVolumes', this.client.listVolumes, { pool });
    return r.volumes.map((v) => {
      const out: VolumeInfo = {
        name: v.name,
        virtualBytes: Number(v.virtualBytes),
        allocatedBytes: Number(v.allocatedBytes),
        snapshots: v.snapshots,
      };
      if (v.parent !== undefined) out.parent = v.parent;
      return out;
    });
  }

  async configurePools(pools: SharedPoolConfig[]): Promise<void> {
    await this.call('ConfigurePools', this.client.configurePools, { pools });
  }

  async moveDisk(req: MoveDiskRequest, onProgress?: (done: number, total: number) => void): Promise<void> {
    // A copy of a large disk takes hours; the host ends the stream when it is done.
    await this.streamed(
      'MoveDisk',
      24 * 3600_000,
      (md, opts) =>
        this.client.moveDisk(
          {
            vmId: req.vmId,
            diskId: req.diskId,
            fromPool: req.from.pool,
            fromVolume: req.from.volume,
            toPool: req.to.pool,
            toVolume: req.to.volume,
          },
          md,
          opts,
        ),
      (m: pb.MoveDiskProgress) => onProgress?.(Number(m.doneBytes), Number(m.totalBytes)),
    );
  }

  async backupVm(req: VmBackupRequest, onProgress?: (p: BackupProgress) => void): Promise<BackupManifest> {
    const { key, ...rest } = req;
    let manifest: BackupManifest | undefined;
    // reading a large disk takes hours; the host ends the stream with the manifest
    await this.streamed(
      'BackupVm',
      24 * 3600_000,
      (md, opts) =>
        this.client.backupVm({ requestJson: JSON.stringify(rest), ...(key ? { key } : {}) }, md, opts),
      (m: pb.BackupVmUpdate) => {
        if (m.manifestJson) manifest = JSON.parse(m.manifestJson) as BackupManifest;
        else
          onProgress?.({
            phase: m.phase as BackupProgress['phase'],
            doneBytes: Number(m.doneBytes),
            totalBytes: Number(m.totalBytes),
            ...(m.disk ? { disk: m.disk } : {}),
          });
      },
    );
    if (!manifest)
      throw new NfError('unavailable', `node ${this.name} ended the backup without its manifest`);
    return manifest;
  }

  async restoreVolume(
    req: RestoreVolumeRequest,
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ writtenBytes: number }> {
    const { key, ...rest } = req;
    let written: number | undefined;
    await this.streamed(
      'RestoreVolume',
      24 * 3600_000,
      (md, opts) =>
        this.client.restoreVolume({ requestJson: JSON.stringify(rest), ...(key ? { key } : {}) }, md, opts),
      (m: pb.RestoreVolumeUpdate) => {
        if (m.writtenBytes !== undefined) written = Number(m.writtenBytes);
        else onProgress?.(Number(m.doneBytes), Number(m.totalBytes));
      },
    );
    if (written === undefined)
      throw new NfError('unavailable', `node ${this.name} ended the restore without its result`);
    return { writtenBytes: written };
  }

  async cephApply(req: CephApplyRequest): Promise<CephHostState> {
    // An OSD's mkfs writes its whole metadata: give it minutes, like the host does.
    const r = await this.call('CephApply', this.client.cephApply, cephApplyToPb(req), 300_000);
    return cephStateFromPb(r);
  }

  async cephDaemons(): Promise<CephHostState> {
    return cephStateFromPb(await this.call('CephDaemons', this.client.cephDaemons, {}));
  }

  async deleteImageFile(pool: string, file: string): Promise<void> {
    await this.call('DeleteImageFile', this.client.deleteImageFile, { pool, file });
  }

  async prepareIncoming(req: IncomingRequest): Promise<IncomingEndpoint> {
    const r = await this.call(
      'PrepareIncoming',
      this.client.prepareIncoming,
      { spec: specToPb(req.spec), localDisks: req.localDisks, policy: policyToPb(req.policy) },
      START_TIMEOUT_MS,
    );
    return endpointFromPb(r);
  }

  async migrateOut(
    req: OutgoingMigration,
    onProgress?: (p: MigrationProgress) => void,
  ): Promise<MigrationResult> {
    let result: MigrationResult | undefined;
    // the host ends the stream with the result (the policy's time limit bounds it)
    await this.streamed(
      'MigrateOut',
      (req.policy.timeLimitSec + 600) * 1000,
      (md, opts) =>
        this.client.migrateOut(
          {
            vmId: req.vmId,
            target: endpointToPb(req.target),
            targetName: req.targetName,
            policy: policyToPb(req.policy),
            localDisks: req.localDisks,
          },
          md,
          opts,
        ),
      (m: pb.MigrateOutUpdate) => {
        if (m.kind?.$case === 'progress') onProgress?.(progressFromPb(m.kind.value));
        else if (m.kind?.$case === 'result') result = resultFromPb(m.kind.value);
      },
    );
    if (!result) throw new NfError('unavailable', `node ${this.name} ended the migration without a result`);
    return result;
  }

  /** A server-streaming call: every message to `onData`, resolved at the end, the error mapped. */
  private streamed<Res>(
    what: string,
    deadlineMs: number,
    open: (md: Metadata, opts: { deadline: number }) => ClientReadableStream<Res>,
    onData: (m: Res) => void,
  ): Promise<void> {
    if (this.closed)
      return Promise.reject(new NfError('unavailable', `the connection to node ${this.name} is closed`));
    return new Promise((resolve, reject) => {
      const stream = open(new Metadata(), { deadline: Date.now() + deadlineMs });
      stream.on('data', onData);
      stream.on('error', (err: ServiceError) => {
        const ready = this.client.getChannel().getConnectivityState(false) === connectivityState.READY;
        reject(fromGrpcError(err, `node ${this.name} (${this.address})`, what, ready));
      });
      stream.on('end', () => resolve());
    });
  }

  async cancelMigration(vmId: string, reason?: string): Promise<void> {
    await this.call('CancelMigration', this.client.cancelMigration, reason ? { vmId, reason } : { vmId });
  }

  async finishIncoming(vmId: string): Promise<VmStatus> {
    return this.apply(await this.call('FinishIncoming', this.client.finishIncoming, { id: vmId }));
  }

  async abortIncoming(
    vmId: string,
    localDisks: { pool: string; volume: string }[],
  ): Promise<{ reason?: string }> {
    const r = await this.call(
      'AbortIncoming',
      this.client.abortIncoming,
      { vmId, volumes: localDisks },
      START_TIMEOUT_MS,
    );
    return r.reason ? { reason: r.reason } : {};
  }

  async resumeMigrated(vmId: string): Promise<VmStatus> {
    return this.apply(await this.call('ResumeMigrated', this.client.resumeMigrated, { id: vmId }));
  }

  /** A short deadline: a host that does not answer within it counts as silent on this path. */
  probe(timeoutMs = 1500): Promise<{ cutOff: boolean }> {
    return this.call('Probe', this.client.probe, {}, timeoutMs);
  }

  async plugDevice(id: string, device: PlugDevice): Promise<void> {
    await this.call('PlugDevice', this.client.plugDevice, {
      id,
      device:
        'disk' in device
          ? { $case: 'disk', value: diskToPb(device.disk) }
          : { $case: 'nic', value: nicToPb(device.nic) },
    });
  }

  async unplugDevice(id: string, device: { disk: string } | { nic: string }): Promise<void> {
    await this.call('UnplugDevice', this.client.unplugDevice, {
      id,
      device: 'disk' in device ? { $case: 'disk', value: device.disk } : { $case: 'nic', value: device.nic },
    });
  }

  async tuneDevice(id: string, change: TuneDevice): Promise<void> {
    await this.call('TuneDevice', this.client.tuneDevice, {
      id,
      device:
        'disk' in change
          ? { $case: 'disk', value: { disk: change.disk, limits: limitsToPb(change.limits) } }
          : { $case: 'nic', value: { nic: change.nic, up: change.linkUp } },
    });
  }

  async changeMedia(id: string, iso: { pool: string; file: string } | undefined): Promise<void> {
    await this.call('ChangeMedia', this.client.changeMedia, { id, ...(iso ? { iso } : {}) });
  }

  async addVcpus(id: string, count: number): Promise<void> {
    await this.call('AddVcpus', this.client.addVcpus, { id, count });
  }

  async addMemory(id: string, memoryMiB: number): Promise<void> {
    await this.call('AddMemory', this.client.addMemory, { id, memoryMib: memoryMiB });
  }

  async vmDevices(id: string): Promise<{ disks: string[]; nics: string[] }> {
    const r = await this.call('VmDevices', this.client.vmDevices, { id });
    return { disks: [...r.disks], nics: [...r.nics] };
  }

  async setIsolation(id: string, response: IsolationResponse | undefined): Promise<void> {
    await this.call('SetIsolation', this.client.setIsolation, { id, isolationResponse: response ?? '' });
  }

  async forgetVm(id: string): Promise<void> {
    await this.call('ForgetVm', this.client.forgetVm, { id });
    this.cache.delete(id);
  }

  openConsole(id: string): Promise<ConsoleStream> {
    if (this.closed) {
      return Promise.reject(new NfError('unavailable', `the connection to node ${this.name} is closed`));
    }
    const call = this.client.console();
    const closers: ((error?: string) => void)[] = [];
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      for (const c of closers) c(error);
    };
    call.on('error', (err: ServiceError) =>
      finish(fromGrpcError(err, `node ${this.name}`, 'Console').message),
    );
    call.on('end', () => finish());
    call.write({ vmId: id, data: Buffer.alloc(0) });
    return Promise.resolve({
      write: (d) => {
        if (!done) call.write({ vmId: '', data: Buffer.from(d) });
      },
      onData: (l) => void call.on('data', (m: pb.ConsoleData) => l(m.data)),
      onClose: (l) => void closers.push(l),
      close: () => {
        if (!done) call.cancel();
        finish();
      },
    });
  }

  /** Asks the node now, unlike hasProcess() which answers from the cache. */
  async fetchHasProcess(id: string): Promise<boolean> {
    return (await this.call('HasProcess', this.client.hasProcess, { id })).hasProcess;
  }

  private call<Req, Res>(
    what: string,
    fn: Unary<Req, Res>,
    req: Req,
    timeoutMs = this.callTimeoutMs,
  ): Promise<Res> {
    if (this.closed) {
      return Promise.reject(new NfError('unavailable', `the connection to node ${this.name} is closed`));
    }
    return new Promise((resolve, reject) => {
      fn.call(this.client, req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (!err) return resolve(res);
        const ready = this.client.getChannel().getConnectivityState(false) === connectivityState.READY;
        reject(fromGrpcError(err, `node ${this.name} (${this.address})`, what, ready));
      });
    });
  }

  /** Takes a status the node sent into the cache, telling listeners when it changed. */
  private apply(s: pb.VmStatus): VmStatus {
    const status = vmStatusFromPb(s);
    const cur = this.cache.get(status.id);
    if (cur && cur.status.updatedAt > status.updatedAt) return status; // an answer older than the stream
    this.cache.set(status.id, { status, hasProcess: s.hasProcess });
    if (cur && cur.hasProcess === s.hasProcess && JSON.stringify(cur.status) === JSON.stringify(status)) {
      return status;
    }
    for (const l of this.listeners) {
      try {
        l(status);
      } catch (err) {
        log.warn('status listener failed', { node: this.name, err });
      }
    }
    return status;
  }

  private onUpdate(u: pb.StatusUpdate): void {
    if (u.snapshot) {
      const ids = new Set(u.vms.map((v) => v.id));
      for (const id of this.cache.keys()) if (!ids.has(id)) this.cache.delete(id);
    }
    for (const v of u.vms) this.apply(v);
    if (u.snapshot) {
      this.backoffMs = this.reconnectMinMs;
      this.setConnected(true);
    }
  }

  private watch(): void {
    if (this.closed) return;
    const stream = this.client.watchStatus({});
    this.stream = stream;
    stream.on('data', (u: pb.StatusUpdate) => {
      try {
        this.onUpdate(u);
      } catch (err) {
        log.warn('bad status update', { node: this.name, err });
      }
    });
    stream.on('error', () => {}); // 'status' follows every end, error or not
    stream.on('status', (s: { code: number; details: string }) => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      if (this.isConnected)
        log.warn('status stream ended', { node: this.name, code: s.code, details: s.details });
      this.setConnected(false);
      this.retry = setTimeout(() => this.watch(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, this.reconnectMaxMs);
    });
  }

  private setConnected(connected: boolean): void {
    if (this.isConnected === connected) return;
    this.isConnected = connected;
    for (const l of this.connectionListeners) l(connected);
  }
}
