import type { BackupProgress, RestoreVolumeRequest, VmBackupRequest } from '../backup/node-backup';
import type { BackupManifest } from '../backup/repository';
import type { CephApplyRequest, CephHostState } from '../ceph/host';
import type { VolumeInfo } from '../storage/driver';
import type { SharedPoolConfig } from '../storage/shared-pools';
import type {
  IncomingEndpoint,
  MigrationPolicy,
  MigrationProgress,
  MigrationResult,
  MigrationRole,
  OutgoingRequest,
} from '../vmm/migration';
import type {
  Accelerator,
  DiskRun,
  IsolationResponse,
  NicRun,
  RuntimeState,
  TuneDevice,
  VmRunSpec,
} from '../vmm/types';
import type { AgentState } from './agent';
import type { Point } from './series';

export interface NodeInfo {
  name: string;
  cpus: number;
  cpuModel: string;
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
  accelerator: Accelerator;
  acceleratorReason: string;
  qemuVersion: string;
  /** The portable CPU levels (x86-64-v2..v4) QEMU gives guests here under its accelerator. */
  cpuLevels: string[];
  kernel: string;
  uptimeSec: number;
  loadAvg: number[];
  pools: { name: string; type: string; totalBytes: number; freeBytes: number }[];
  /** The watchdog serve feeds while HA VMs run here (absent: none given), and whether it is armed now. */
  watchdog?: { device: string; armed: boolean };
}

export interface VmStatus {
  id: string;
  /** The guest agent while the VM runs. */
  agent?: AgentState;
  state: RuntimeState;
  pid?: number;
  startedAt?: string;
  /** Why the VM is in `error`: QEMU's own words when it has any. */
  reason?: string;
  /** A migration this host's QEMU is part of (MigrationRole). */
  migration?: MigrationRole;
  /** Stopped by the host's HA isolation response (it lost the cluster), not by the guest. */
  fenced?: boolean;
  /** Went down with its host (a restart, or stop-vms at a planned shutdown), not by the guest. */
  hostDown?: boolean;
  /** Something of a running VM is broken that the admin must see (its TPM emulator died). */
  warning?: string;
  updatedAt: string;
}

/** A VM's disk on a host's local pool, made anew on the target of a migration. */
export interface LocalDiskRef {
  id: string;
  pool: string;
  volume: string;
  sizeBytes: number;
}

/** The target's part of a migration (NodeApi.prepareIncoming). */
export interface IncomingRequest {
  spec: VmRunSpec;
  /** Disks on local pools: new empty volumes made here and exported over NBD to the source's mirror. */
  localDisks: LocalDiskRef[];
  policy: MigrationPolicy;
}

/** The source's part of a migration (NodeApi.migrateOut). */
export interface OutgoingMigration extends OutgoingRequest {
  vmId: string;
  /** Ids of the disks to mirror to the target's NBD exports (its local disks). */
  localDisks: string[];
}

export interface StopOptions {
  force?: boolean;
  /** How long the guest gets to shut down after the ACPI power button, before the plug is pulled. */
  timeoutMs?: number;
}

/** A byte stream to a running VM's VNC server (RFB), wherever the VM runs. */
export interface ConsoleStream {
  write(data: Uint8Array): void;
  onData(listener: (data: Uint8Array) => void): void;
  /** Called once when the stream ends, from either side; `error` when it broke. */
  onClose(listener: (error?: string) => void): void;
  close(): void;
}

/**
 * What the controller may ask of a node. On one host the controller calls this directly; in a cluster
 * the gRPC service implements the same interface on the wire.
 */
/** What a new volume is a linked clone of: an image file of the pool, or (`volume`) a volume (a template's disk). */
export interface VolumeBacking {
  file: string;
  format: 'qcow2' | 'raw';
  volume?: boolean;
  /** With volume: a full copy of the volume as it was at this snapshot (StorageDriver CloneSource). */
  snapshot?: string;
}

/** A VM's disk from one pool of its host to another (NodeApi.moveDisk). */
export interface MoveDiskRequest {
  vmId: string;
  diskId: string;
  from: { pool: string; volume: string };
  to: { pool: string; volume: string };
}

export interface NodeApi {
  info(): Promise<NodeInfo>;
  vmStatus(id: string): VmStatus;
  startVm(spec: VmRunSpec): Promise<VmStatus>;
  stopVm(id: string, opts?: StopOptions): Promise<VmStatus>;
  pauseVm(id: string): Promise<VmStatus>;
  resumeVm(id: string): Promise<VmStatus>;
  resetVm(id: string): Promise<VmStatus>;
  snapshotVm(id: string, name: string, disks: { id: string; pool: string; volume: string }[]): Promise<void>;
  deleteVmSnapshot(
    id: string,
    name: string,
    disks: { id: string; pool: string; volume: string }[],
  ): Promise<void>;
  revertVmSnapshot(
    id: string,
    name: string,
    disks: { id: string; pool: string; volume: string }[],
  ): Promise<void>;
  consoleLog(id: string, maxBytes?: number): Promise<string>;
  /** Monitoring points of a VM: the last hour at full resolution ('fine') or a day of averages. */
  vmMetrics(id: string, range: 'fine' | 'coarse'): Point[] | Promise<Point[]>;
  hostMetrics(range: 'fine' | 'coarse'): Point[] | Promise<Point[]>;
  /** Runs a guest agent command in the VM (the agent must be connected). */
  guestCommand<T>(
    id: string,
    command: string,
    args?: Record<string, unknown>,
    opts?: { timeoutMs?: number; noReply?: boolean },
  ): Promise<T>;
  /** Opens the VM's VNC console (the VM must be running). */
  openConsole(id: string): Promise<ConsoleStream>;
  /**
   * Hot-plug into a running VM: a disk (its pool volume opened here) or a NIC (its network too). The
   * host's copy of the VM's spec follows, so a new daemon knows the device.
   */
  plugDevice(id: string, device: PlugDevice): Promise<void>;
  /** Hot-unplug: the guest releases the device, QEMU removes it, its backend is closed. */
  unplugDevice(id: string, device: { disk: string } | { nic: string }): Promise<void>;
  /** A running VM's disk I/O limits or NIC link; the host's spec follows. */
  tuneDevice(id: string, change: TuneDevice): Promise<void>;
  /** Puts an ISO of one of the host's pools into a running VM's media drive, or ejects (iso absent). */
  changeMedia(id: string, iso: { pool: string; file: string } | undefined): Promise<void>;
  /** Hot-adds vCPUs to a running VM until it has `count` (up to its maxVcpus); the host's spec follows. */
  addVcpus(id: string, count: number): Promise<void>;
  /** Hot-adds memory (one DIMM) to a running VM until it has `memoryMiB` (up to its maxMemoryMiB). */
  addMemory(id: string, memoryMiB: number): Promise<void>;
  /** The disks and NICs a running VM's QEMU has now (their ids). */
  vmDevices(id: string): Promise<{ disks: string[]; nics: string[] }>;
  /**
   * Creates a thin qcow2 volume in one of the node's pools, optionally cloned from an image file there.
   * Idempotent: a volume that already exists as this call would make it (qcow2, same virtual size, same
   * backing file and format or none) is accepted as is, so placement retries converge after a failed
   * cleanup; any other existing file under that name is refused with `already_exists`, never replaced.
   * Volume names carry their VM's id (`vm-<uuid>-disk<n>.qcow2`), so the same name is the same VM's disk.
   */
  createVolume(pool: string, volume: string, sizeBytes: number, backing?: VolumeBacking): Promise<void>;
  /**
   * Grows a volume: through the VM's QEMU while vmId runs here (the guest sees the new size at once),
   * else in the pool. Shrinking is refused (`validation_failed`).
   */
  resizeVolume(
    pool: string,
    volume: string,
    sizeBytes: number,
    vm?: { id: string; disk: string },
  ): Promise<void>;
  /** Deletes a volume; a volume already gone is not an error. */
  deleteVolume(pool: string, volume: string): Promise<void>;
  /** Makes a linked clone independent of its parent (no VM may be using it). */
  flattenVolume(pool: string, volume: string): Promise<void>;
  /**
   * The cluster-wide pools this host must reach (the whole list: pools not in it are closed). The host
   * writes their ceph.conf and keyring (0600) and reports them in info() from then on.
   */
  configurePools(pools: SharedPoolConfig[]): Promise<void>;
  /** The volumes of one of the host's pools, with their sizes, parent image and snapshots. */
  listVolumes(pool: string): Promise<VolumeInfo[]>;
  /**
   * Copies an image file of one of the host's dir pools into a shared pool as a raw volume (the image a
   * linked clone hangs off); returns its virtual size. The target must not exist.
   */
  copyImage(
    src: { pool: string; file: string; format: 'qcow2' | 'raw' },
    dst: { pool: string; volume: string },
  ): Promise<number>;
  /** Deletes an image file from one of the node's pools. */
  deleteImageFile(pool: string, file: string): Promise<void>;
  /**
   * Integrated Ceph on this host: writes the cluster's config and the keys given, and makes the daemon
   * asked for (monitor, manager or OSD; the host checks the device). Applying again only starts.
   */
  cephApply(req: CephApplyRequest): Promise<CephHostState>;
  /**
   * Copies a VM's disk into another pool of this host: mirrored live while the VM runs (the guest then
   * uses the copy), copied offline otherwise. Progress in bytes; the source stays for the caller.
   */
  moveDisk(req: MoveDiskRequest, onProgress?: (done: number, total: number) => void): Promise<void>;
  /**
   * Backs a VM of this host up into a repository directory this host reaches (its own, or shared storage
   * mounted at the same path): see src/backup/node-backup.ts. Phases go to onProgress as they happen
   * (`captured` ends the instant of a running VM).
   */
  backupVm(req: VmBackupRequest, onProgress?: (p: BackupProgress) => void): Promise<BackupManifest>;
  /** Makes a volume in a pool of this host and writes a backed-up disk into it (deleted on failure). */
  restoreVolume(
    req: RestoreVolumeRequest,
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ writtenBytes: number }>;
  /**
   * Target of a migration: makes the local disks' new volumes, starts the VM's QEMU waiting (paused)
   * for the stream and returns where it listens (TLS with the host certificates only).
   */
  prepareIncoming(req: IncomingRequest): Promise<IncomingEndpoint>;
  /**
   * Source of a migration: copies local disks and then memory to the target; resolves with QEMU's
   * figures once the guest's state is all there (the guest is paused here, `migrated`). On a failure or
   * a cancel the guest runs on here.
   */
  migrateOut(req: OutgoingMigration, onProgress?: (p: MigrationProgress) => void): Promise<MigrationResult>;
  /** Stops the VM's outgoing migration (its migrateOut fails with `cancelled`). */
  cancelMigration(vmId: string, reason?: string): Promise<void>;
  /** Target, after the source completed: the guest runs here now. */
  finishIncoming(vmId: string): Promise<VmStatus>;
  /**
   * Target, when a migration is abandoned: ends the waiting QEMU (never a guest that runs) and deletes
   * the volumes made for it. Nothing there is not an error.
   */
  /** Ends a waiting migration target; returns what its QEMU said (its last stderr lines), if anything. */
  abortIncoming(vmId: string, localDisks: { pool: string; volume: string }[]): Promise<{ reason?: string }>;
  /** Source, when the target never ran the guest after a completed migration: it runs here again. */
  resumeMigrated(vmId: string): Promise<VmStatus>;
  /** This host's Ceph daemons and the cluster it belongs to. */
  cephDaemons(): Promise<CephHostState>;
  /** True while a QEMU process of this VM exists (managed, or alive but unreachable). */
  hasProcess(id: string): boolean;
  /** Forgets a stopped VM's run directory (on VM delete). */
  forgetVm(id: string): Promise<void>;
  /**
   * HA: the leader's direct check of a host whose heartbeats stopped; answering also counts as contact
   * for the host's self-fence. `cutOff`: the host had lost the cluster and isolated its HA VMs.
   */
  probe(): Promise<{ cutOff: boolean }>;
  /** A running VM's HA isolation response changed (undefined: not an HA VM any more). */
  setIsolation(id: string, response: IsolationResponse | undefined): Promise<void>;
  onStatus(listener: (status: VmStatus) => void): () => void;
}

/** A device to hot-plug: a disk (pool + volume; the node opens it) or a NIC. */
export type PlugDevice = { disk: DiskRun } | { nic: NicRun };
