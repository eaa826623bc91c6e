import type {
  IncomingEndpoint,
  MigrationProgress,
  MigrationResult,
  MigrationRole,
  OutgoingRequest,
} from './migration';

/**
 * The boundary between the node and a hypervisor: the verbs a VMM really has, nothing more.
 * QEMU is the only driver today; Cloud Hypervisor would be a second implementation.
 */

export type Accelerator = 'kvm' | 'tcg';

/**
 * The portable x86-64 CPU levels (psABI microarchitecture levels): a VM with one moves between every
 * host that runs it, whatever CPU the host has.
 */
export const CPU_LEVELS: readonly string[] = ['x86-64-v2', 'x86-64-v3', 'x86-64-v4'];

/** DIMM slots of a VM with memory hot-add: one per hot-add until its next cold start. */
export const MEMORY_SLOTS = 16;

export interface DiskRun {
  /** Stable id inside the VM ("disk0"), also the QEMU node name. */
  id: string;
  /** A host path; a controller sends pool + volume instead and the node resolves the path in its pool. */
  path: string;
  pool?: string;
  volume?: string;
  format: 'qcow2' | 'raw';
  readOnly?: boolean;
  /**
   * How QEMU opens it, from the pool's storage driver (node-side): -blockdev nodes, the last named `id`.
   * Without it, `path` is opened as a file of `format`.
   */
  blockdev?: Record<string, unknown>[];
  /** The controller it hangs on (absent: virtio-blk). */
  bus?: DiskBus;
  /** The hot-plug slot (a PCIe root port, "hp0") it was plugged into while the VM ran. */
  slot?: string;
  /** I/O limits QEMU enforces (its throttling); absent: none. */
  limits?: IoLimits;
  /** The host page cache and flushes (QEMU's cache modes); absent: writeback. */
  cache?: DiskCache;
  /** How QEMU does a file's I/O; absent: threads. */
  aio?: DiskAio;
}

/**
 * QEMU's cache modes: none (O_DIRECT, the guest's flushes honoured: the safe default of Proxmox),
 * writeback (the host page cache), writethrough and directsync (every write flushed), unsafe (flushes
 * ignored: for scratch disks only).
 */
export const DISK_CACHE_MODES = ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'] as const;
export type DiskCache = (typeof DISK_CACHE_MODES)[number];
/** I/O submission of a file-backed disk: a thread pool, Linux native AIO (needs O_DIRECT), or io_uring. */
export const DISK_AIO_MODES = ['threads', 'native', 'io_uring'] as const;
export type DiskAio = (typeof DISK_AIO_MODES)[number];

/** Per-second I/O limits of a disk: totals, or reads and writes apart (not both); 0 or absent: none. */
export interface IoLimits {
  iops?: number;
  iopsRead?: number;
  iopsWrite?: number;
  bps?: number;
  bpsRead?: number;
  bpsWrite?: number;
}

/** How a disk reaches the guest: paravirtual (virtio-blk, virtio-scsi) or emulated for guests without drivers. */
export type DiskBus = 'virtio-blk' | 'virtio-scsi' | 'sata' | 'ide';
/** The NIC the guest sees: virtio, or an emulated Intel, Realtek or VMware one (guests without VirtIO drivers). */
export type NicModel = 'virtio' | 'e1000e' | 'rtl8139' | 'vmxnet3';
export type VideoModel = 'std' | 'virtio' | 'qxl' | 'cirrus' | 'none';

/** The guest's CPU: a model (host, max, x86-64-v2..v4 or a QEMU named model), its topology and flags. */
export interface CpuRun {
  model: string;
  sockets?: number;
  cores?: number;
  threads?: number;
  /** CPU flags forced on (true) or off (false) on top of the model, by QEMU's names ("avx2", "pcid"). */
  flags?: Record<string, boolean>;
}

/** UEFI firmware (OVMF) with the VM's own variable store (a pool volume, like a disk). */
export interface FirmwareRun {
  type: 'uefi';
  secureBoot: boolean;
  /** The variable store: a pool volume the node creates from OVMF's template on the first start. */
  vars: { pool: string; volume: string; blockdev?: Record<string, unknown>[] };
}

export interface NicRun {
  id: string;
  network: string;
  /**
   * nat = outbound NAT through passt, no access to the host (src/network/nat.ts); ovn = a tap on the
   * host's OVN integration bridge bound to the logical port `port` (src/network/ovn/).
   */
  type: 'nat' | 'ovn';
  /** ovn: the logical switch port this NIC is. */
  port?: string;
  /** ovn: the address of OVN's central part (its databases); empty or absent: this host. */
  central?: string;
  mac: string;
  /** Absent: virtio. */
  model?: NicModel;
  /** The hot-plug slot (a PCIe root port, "hp0") it was plugged into while the VM ran. */
  slot?: string;
  /** The cable is pulled: the guest sees no carrier. */
  linkDown?: boolean;
}

export type BootRun =
  | { kind: 'kernel'; kernel: string; initrd?: string; cmdline?: string }
  | { kind: 'cdrom' }
  | { kind: 'disk'; index: number };

/**
 * HA: what a host that lost the cluster does with a VM before the others restart it (poweroff kills
 * QEMU, shutdown asks the guest, leave keeps it: storage fencing alone stops its writes).
 */
export type IsolationResponse = 'poweroff' | 'shutdown' | 'leave';

/** Everything a node needs to run a VM, fully resolved to host paths. */
export interface VmRunSpec {
  id: string;
  name: string;
  vcpus: number;
  memoryMiB: number;
  machine: 'q35' | 'pc';
  disks: DiskRun[];
  /** A host path, or an image file in one of the node's pools (the node resolves it). */
  /** The CD-ROM: a host file, an image file of a dir pool, or (`blockdev`, node-side) a shared pool's volume. */
  cdrom?: { path: string; pool?: string; file?: string; blockdev?: Record<string, unknown>[] };
  nics: NicRun[];
  boot: BootRun;
  /** Give the guest the virtio-serial port org.qemu.guest_agent.0 for a guest agent. */
  agent: boolean;
  /** Its ownership epoch (an etcd revision): a node refuses a start older than one it was handed. */
  epoch?: number;
  /** HA: what the host does with it when the host loses the cluster (absent: not an HA VM). */
  isolationResponse?: IsolationResponse;
  /** Absent: the host's best (host under KVM, max under TCG), one socket. */
  cpu?: CpuRun;
  /** Absent: BIOS (SeaBIOS). */
  firmware?: FirmwareRun;
  /** A TPM 2.0 (swtpm, CRB interface) whose state lives in the run dir on the host. */
  tpm?: boolean;
  /** Absent: std (VGA). */
  video?: VideoModel;
  /** A USB tablet (absolute pointer: the console's mouse follows the cursor). */
  tablet?: boolean;
  /** Empty PCIe root ports (q35) that disks and NICs can be hot-plugged into: hp0, hp1, … */
  hotplugSlots?: number;
  /** Devices the firmware tries, in order (disk0, cd0, cd1, net0, …); absent: `boot` decides. */
  bootOrder?: string[];
  /** A removable CD-ROM drive (cd1) with an ISO in it, or empty. */
  media?: { iso?: MediaRun };
  /** vCPUs can be hot-added up to this many (QEMU's maxcpus); absent: no hot-add. */
  maxVcpus?: number;
  /** Memory can be hot-added (DIMMs) up to this many MiB (QEMU's maxmem); absent: no hot-add. */
  maxMemoryMiB?: number;
  /**
   * DIMMs hot-added while the VM ran, in MiB, in order; part of memoryMiB. A migration target starts
   * with them as DIMMs too (QEMU needs the same memory layout); a cold start folds them into the base.
   */
  memoryDimmsMiB?: number[];
  /** cloud-init NoCloud: the node makes a seed ISO ("cidata") of these and attaches it as a CD-ROM. */
  cloudInit?: CloudInitRun;
}

/** An ISO image of one of the host's pools, for a CD-ROM drive; the node fills in how to open it. */
export interface MediaRun {
  pool: string;
  file: string;
  /** A file of a dir pool. */
  path?: string;
  /** A shared pool's volume: its -blockdev nodes, the last one the medium. */
  blockdev?: Record<string, unknown>[];
}

export type TuneDevice = { disk: string; limits: IoLimits } | { nic: string; linkUp: boolean };

export interface CloudInitRun {
  metaData: string;
  userData: string;
  networkConfig?: string;
}

export type RuntimeState = 'running' | 'paused' | 'stopped' | 'error';

export interface ExitInfo {
  /** True when the guest or we shut it down; false when QEMU died on its own. */
  clean: boolean;
  reason?: string;
}

/** A live VM process. */
export interface VmInstance {
  readonly id: string;
  readonly pid: number;
  readonly startedAt: string;
  /** The VM's TPM emulator runs (for a VM with a TPM). */
  tpmAlive(): boolean;
  state(): Promise<RuntimeState>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** ACPI power button: the guest decides. */
  powerdown(): Promise<void>;
  /** Hard reset of the virtual machine. */
  reset(): Promise<void>;
  /** Ends the process now (pulling the plug). */
  kill(): Promise<void>;
  snapshotDisks(name: string, diskIds: string[]): Promise<void>;
  /** Bytes read and written by all disks since the process started. */
  blockStats(): Promise<{ rd: number; wr: number }>;
  deleteDiskSnapshots(name: string, diskIds: string[]): Promise<void>;
  /** Grows a disk while the guest runs (QMP block_resize on its top node); the guest sees the new size. */
  resizeDisk(diskId: string, sizeBytes: number): Promise<void>;
  /**
   * Moves a disk while the guest runs: opens the target nodes, mirrors everything (the guest keeps
   * writing), switches the device to the target when both are in step, and closes the old volume. On a
   * failure the target is closed again and the guest stays on the source.
   */
  mirrorDisk(
    diskId: string,
    target: Record<string, unknown>[],
    onProgress: (done: number, total: number) => void,
  ): Promise<void>;
  /** Backup: exports the disks as they are at this instant over NBD (see QemuInstance). */
  startBackupExport(opts: { socket: string; disks: BackupExportDisk[] }): Promise<void>;
  endBackupExport(disks: BackupExportDisk[], ok: boolean): Promise<void>;
  diskBitmaps(diskId: string): Promise<{ name: string; usable: boolean; persistent: boolean }[]>;
  removeDiskBitmap(diskId: string, name: string): Promise<void>;
  /** Where the process stands with a migration (from QEMU's run state). */
  migrationRole(): Promise<MigrationRole | undefined>;
  /** Target side: listen for the stream (and export local disks' new volumes over NBD), TLS only. */
  listenIncoming(opts: {
    address: string;
    tlsDir: string;
    multifd: boolean;
    postcopy: boolean;
    nbd?: { port: number; disks: string[] };
  }): Promise<IncomingEndpoint>;
  /** Target side, once the source completed: the guest runs here. */
  finishIncoming(): Promise<void>;
  /** Source side: copy local disks, then RAM and device state; the guest ends paused here. */
  migrateOut(
    req: OutgoingRequest & { tlsDir: string; localDisks: string[] },
    onProgress: (p: MigrationProgress) => void,
  ): Promise<MigrationResult>;
  cancelMigration(reason?: string): void;
  /** Removes what an earlier migration left (its daemon died mid-way); the guest goes on. */
  cleanupMigration(): Promise<void>;
  /** Source side: the guest runs here again after a completed migration its target never ran. */
  resumeAfterMigration(): Promise<void>;
  /** Hot-plug: opens the disk's nodes and adds its device (into `disk.slot`); undone on a failure. */
  plugDisk(disk: DiskRun): Promise<void>;
  /** Hot-unplug: asks the guest to let the device go, waits until QEMU removed it, closes the nodes. */
  unplugDisk(diskId: string): Promise<void>;
  /** Hot-plug of a NIC: its backend, its device, and its network (passt for nat). */
  plugNic(nic: NicRun): Promise<void>;
  unplugNic(nicId: string): Promise<void>;
  /** Sets a disk's I/O limits, or a NIC's link (carrier), while the VM runs. */
  tune(change: TuneDevice): Promise<void>;
  /** Changes the medium in the media drive (cd1): opens the ISO's nodes, swaps, closes the old ones. */
  changeMedia(iso: MediaRun | undefined): Promise<void>;
  /** Hot-adds vCPUs until the guest has `count` (never removes any); returns how many it has now. */
  addVcpus(count: number): Promise<number>;
  /** Hot-adds one DIMM so the guest has `memoryMiB` in all; returns the MiB it has (base + DIMMs). */
  addMemory(memoryMiB: number): Promise<number>;
  /** The disk and NIC devices the VM has now (their ids), as QEMU says. */
  devices(): Promise<{ disks: string[]; nics: string[] }>;
  /** Resolves once the process is gone. */
  readonly exited: Promise<ExitInfo>;
  /** Called when the guest opens or closes a virtio-serial port (the agent starting or going away). */
  onChannelChange(listener: (port: string, open: boolean) => void): void;
  /** Called when QEMU itself pauses or resumes the guest (e.g. a disk I/O error stops it). */
  onRuntimeChange(listener: (state: RuntimeState, reason?: string) => void): void;
  /** Drops the monitor connection but leaves the process running (daemon shutdown). */
  detach(): void;
}

export interface VmmDriver {
  readonly name: string;
  /**
   * Starts a process for the spec in runDir; resolves once the guest CPU runs, or (`incoming`) once
   * the process waits, paused, for a migration stream.
   */
  start(spec: VmRunSpec, runDir: string, opts?: { incoming?: boolean }): Promise<VmInstance>;
  /** Finds a process started earlier (by a previous daemon) from runDir; undefined if none is alive. */
  attach(runDir: string, id: string): Promise<VmInstance | undefined>;
  /** Frees what a VM's start took on the host beside its process (its NICs' tap devices) once it ended. */
  release?(spec: VmRunSpec): Promise<void>;
}

/** A disk in a backup's point-in-time export. */
export interface BackupExportDisk {
  id: string;
  /** A new empty qcow2 file of the disk's size: old data the guest overwrites during the backup. */
  scratch: string;
  /** A persistent bitmap to start now (qcow2 disks): the next backup's base. */
  newBitmap?: string;
  /** The bitmap of changes since the base backup: exported as qemu:dirty-bitmap:bk-since-<disk>. */
  baseBitmap?: string;
}
