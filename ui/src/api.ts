import type { HostHaState } from '../../src/controller/ha/manager';
import type { HaPolicy, HaSettings } from '../../src/controller/ha/policy';
import type { HaProtection, HaStatus, RecoveryRecord, VmHaView } from '../../src/controller/ha/views';

export type { HaPolicy, HaProtection, HaSettings, HaStatus, HostHaState };

export type VmState =
  | 'pending'
  | 'stopped'
  | 'starting'
  | 'running'
  | 'stopping'
  | 'paused'
  | 'error'
  | 'unknown';

export interface Placement {
  node?: string;
  affinityGroup?: string;
  antiAffinityGroup?: string;
}

/** How a disk is attached: virtio-blk (default), virtio-scsi, sata (AHCI), ide (machine pc only). */
export type DiskBus = 'virtio-blk' | 'virtio-scsi' | 'sata' | 'ide';
/** A NIC's emulated model: virtio (default); the others for guests without VirtIO drivers. */
export type NicModel = 'virtio' | 'e1000e' | 'rtl8139' | 'vmxnet3';
/** QEMU's cache mode of a disk: writeback (default, the host page cache), none (O_DIRECT), ... */
export type DiskCache = 'none' | 'writeback' | 'writethrough' | 'directsync' | 'unsafe';
/** How QEMU submits a file-backed disk's I/O: threads (default), native (needs cache none/directsync), io_uring. */
export type DiskAio = 'threads' | 'native' | 'io_uring';
export type VideoModel = 'std' | 'virtio' | 'qxl' | 'cirrus' | 'none';
export type Firmware = 'bios' | 'uefi';
export type MachineType = 'q35' | 'pc';

/** The VM's CPU: a model (host, an x86-64-vN level or a QEMU model) and its topology. */
export interface VmCpu {
  model: string;
  sockets: number;
  cores: number;
  threads: number;
  /** Flags forced on (true) or off (false) on top of the model. */
  flags?: Record<string, boolean>;
}

/**
 * Autostart: when the VM's host comes back from a restart or a planned shutdown, the VM (if it ran) is
 * started again; lower order first, the next VM of the host delaySec seconds later.
 */
export interface OnBoot {
  enabled: boolean;
  /** 0-1000, default 0. */
  order: number;
  /** 0-600, default 0. */
  delaySec: number;
}

/** cloud-init settings as sent (POST /vms, PATCH /vms/{id} replaces them as a whole). */
export interface CloudInitInput {
  hostname?: string;
  /** OpenSSH public keys, one line each. */
  sshKeys?: string[];
  /** Plain text; the server keeps a hash only and never shows it. */
  password?: string;
  /** A whole document ("#cloud-config" or "#!"), not together with sshKeys or password. */
  userData?: string;
  networkConfig?: string;
}

/** vm.cloudInit: what the API shows of the settings (no password, no user-data text). */
export interface CloudInitView {
  hostname?: string;
  sshKeys?: string[];
  passwordSet: boolean;
  userData: boolean;
  networkConfig: boolean;
}

/** PATCH /vms/{id}: any subset; hardware waits in pendingChanges while the VM runs. */
export interface EditVmBody {
  name?: string;
  description?: string;
  /** Replaces the VM's tags ([] removes them). */
  tags?: string[];
  vcpus?: number;
  memoryMiB?: number;
  machine?: MachineType;
  firmware?: Firmware;
  /** Chosen when UEFI is first given to a VM (the API refuses a change on a UEFI VM). */
  secureBoot?: boolean;
  tpm?: boolean;
  /** Replaces the CPU settings as a whole; cores left out take what the vCPUs leave. */
  cpu?: Partial<VmCpu>;
  video?: VideoModel;
  tablet?: boolean;
  /** At once; {enabled: false} turns autostart off. */
  onBoot?: OnBoot | { enabled: false };
  /** Replaces the cloud-init settings as a whole (null removes them); the guest sees it at its next start. */
  cloudInit?: CloudInitInput | null;
  /** vCPUs can be hot-added up to this many. */
  maxVcpus?: number;
  /** Memory can be hot-added (128 MiB steps) up to this many MiB; a cold change. */
  maxMemoryMiB?: number;
  /** Devices the firmware tries, in order; null: boot decides. */
  bootOrder?: string[] | null;
}

/** vm.pendingChanges: what an edit of the running VM changed (cpu as it was sent, maybe without cores). */
export interface PendingChanges {
  vcpus?: number;
  memoryMiB?: number;
  machine?: string;
  boot?: Record<string, unknown>;
  firmware?: Firmware;
  secureBoot?: boolean;
  efiVars?: { pool: string; volume: string };
  tpm?: boolean;
  cpu?: Partial<VmCpu>;
  video?: VideoModel;
  tablet?: boolean;
  maxVcpus?: number;
  maxMemoryMiB?: number;
  [other: string]: unknown;
}

/** POST /vms: the fields the UI sends (the API fills the rest with its defaults). */
export interface CreateVmBody {
  name: string;
  vcpus: number;
  memoryMiB: number;
  disks: {
    sizeGiB?: number;
    image?: string;
    pool?: string;
    bus?: DiskBus;
    cache?: DiskCache;
    aio?: DiskAio;
  }[];
  /** ip: a fixed address, on an overlay network only (OVN's DHCP hands out that one). */
  networks: { network: string; mac?: string; model?: NicModel; ip?: string }[];
  boot: { cdrom: string } | { disk: number };
  /** Labels (lowercase) that group VMs: backup jobs select VMs by tag. */
  tags?: string[];
  start?: boolean;
  placement?: Placement;
  ha?: { enabled: boolean };
  machine?: MachineType;
  firmware?: Firmware;
  /** Needs firmware uefi and machine q35. */
  secureBoot?: boolean;
  tpm?: boolean;
  cpu?: Partial<VmCpu>;
  video?: VideoModel;
  tablet?: boolean;
  onBoot?: OnBoot;
  cloudInit?: CloudInitInput;
  maxVcpus?: number;
  maxMemoryMiB?: number;
  /** A media drive (cd1), empty or with an ISO image (name or id). */
  media?: { image?: string };
}

/** A disk's per-second I/O limits: totals, or reads and writes apart (bps in bytes/s). */
export interface DiskLimits {
  iops?: number;
  iopsRead?: number;
  iopsWrite?: number;
  bps?: number;
  bpsRead?: number;
  bpsWrite?: number;
}

export interface Vm {
  id: string;
  name: string;
  state: VmState;
  /** Why the VM is in error, pending (no host fits) or unknown (host unreachable). */
  reason?: string;
  /** Something of the running VM is broken that needs an admin (its TPM emulator died): an alarm. */
  warning?: string;
  /** The VM's host; '' while pending. */
  node: string;
  placement?: Placement;
  vcpus: number;
  memoryMiB: number;
  disks: {
    id: string;
    pool: string;
    volume: string;
    sizeBytes: number;
    image?: string;
    cloneOf?: { vm: string; disk: string };
    /** Absent: virtio-blk. */
    bus?: DiskBus;
    /** The hot-plug slot it went into (added while the VM ran). */
    slot?: string;
    /** Per-second I/O limits (bps in bytes/s); absent: none. */
    limits?: DiskLimits;
    /** Absent: writeback. */
    cache?: DiskCache;
    /** Absent: threads. */
    aio?: DiskAio;
  }[];
  /** A template: never powered on; linked clones are made from it. */
  template?: boolean;
  /** Absent on a NIC: virtio. */
  networks: {
    id: string;
    network: string;
    mac: string;
    model?: NicModel;
    /** A fixed address on an overlay network (absent: OVN picks one). */
    ip?: string;
    slot?: string;
    /** The cable is pulled (PATCH /vms/{id}/networks/{nic} {link}). */
    linkDown?: boolean;
  }[];
  /** vCPUs can be hot-added up to this many. */
  maxVcpus?: number;
  /** Memory can be hot-added (whole 128 MiB steps) up to this many MiB while the VM runs. */
  maxMemoryMiB?: number;
  /** The media drive (cd1): the id of the ISO image in it, or empty; absent: no drive. */
  media?: { image?: string };
  /** Devices the firmware tries, in order (disk0, cd0, cd1, net0…); absent: boot decides. */
  bootOrder?: string[];
  /** A hot-plug of a disk or NIC under way. */
  hotplug?: { op: 'add' | 'remove'; kind: 'disk' | 'nic'; id: string; at: string };
  description?: string;
  /** Labels that group VMs (backup jobs select VMs by tag); sorted, unique; absent: none. */
  tags?: string[];
  /**
   * Hardware changes made while the VM ran (PATCH), applied at its next cold start (a stop and a start;
   * a guest reboot is not one): the edited fields only, e.g. {memoryMiB: 320}.
   */
  pendingChanges?: PendingChanges;
  /** q35 or pc. */
  machine: string;
  firmware: Firmware;
  secureBoot: boolean;
  /** UEFI: the volume holding the VM's variable store. */
  efiVars?: { pool: string; volume: string };
  /** A TPM 2.0. */
  tpm: boolean;
  cpu: VmCpu;
  video: VideoModel;
  /** A USB tablet (the console pointer follows the mouse exactly). */
  tablet: boolean;
  /** Autostart at host boot; absent: off. */
  onBoot?: OnBoot;
  /** cloud-init (NoCloud seed made at every start); absent: none. */
  cloudInit?: CloudInitView;
  snapshots: { name: string; vmState: string; createdAt?: string; quiesced?: boolean }[];
  agent: { enabled: boolean; status: string; version?: string; flavour?: string };
  boot: Record<string, unknown>;
  startedAt?: string;
  /** Set while a live migration of the VM is under way; the server refuses every action then (409). */
  migration?: VmMigration;
  /** High availability (GET/PUT /vms/{id}/ha shows the protection too). */
  ha?: HaPolicy;
  /** Ownership epoch: raised each time HA hands the VM to another host. */
  epoch?: number;
}

/** GET/PUT /vms/{id}/ha. */
export type VmHa = VmHaView;

/** A VM HA does not restart, and why. */
export type HaUnprotectedVm = HaStatus['unprotectedVms'][number];

/** One host failure and what HA did about it (times ISO). */
export type HaRecovery = RecoveryRecord;

/** A VM's live migration under way: its task, the hosts, the local disks being copied. */
export interface VmMigration {
  taskId: string;
  source: string;
  target: string;
  localDisks: string[];
  startedAt: string;
}

export interface Task {
  id: string;
  type: string;
  target: string;
  user?: string;
  status: 'running' | 'ok' | 'error';
  progress: number;
  error?: { code: string; message: string };
  startedAt?: string;
  endedAt?: string;
  /** The task can be stopped (POST /tasks/{id}/cancel): running migrations. */
  cancellable?: boolean;
  /** A cancel was asked for; the task ends when the work has been undone. */
  cancelRequested?: boolean;
  /** What the running task is doing; by type (vm.migrate: MigrationDetails). */
  details?: Record<string, unknown>;
  /** What the finished task did; by type (vm.migrate: MigrationResult). */
  result?: Record<string, unknown>;
}

export type MigrationPhase = 'preparing' | 'disks' | 'memory' | 'switching' | 'cleanup';

/** A running vm.migrate task's details: QEMU's figures for the RAM pass and the disk mirror. */
export interface MigrationDetails {
  source: string;
  target: string;
  /** Why the scheduler chose the target (a migration without a host named). */
  why?: string;
  phase: MigrationPhase;
  ram?: {
    transferredBytes: number;
    remainingBytes: number;
    totalBytes: number;
    dirtyRateBytesPerSec: number;
    iteration: number;
    expectedDowntimeMs: number;
    mbps: number;
  };
  disks?: { doneBytes: number; totalBytes: number };
}

/** A finished vm.migrate task's result. */
export interface MigrationResult {
  target: string;
  /** QEMU's measure of the guest's pause at the switch-over. */
  downtimeMs: number;
  totalMs: number;
  setupMs?: number;
  transferredBytes?: number;
}

/** A node.evacuate task's details (the task of entering maintenance): what moved, stayed, is moving. */
export interface EvacuationDetails {
  phase: 'planning' | 'migrating' | 'done';
  /** The VMs on the host when the evacuation began (absent while planning). */
  total?: number;
  moved: { vm: string; to: string }[];
  stayed: { vm: string; reason: string }[];
  /** Names of the VMs being migrated now. */
  moving: string[];
}

/** A finished node.evacuate task's result. */
export interface EvacuationResult {
  moved: number;
  stayed: number;
}

export type HostState = 'ready' | 'not-ready' | 'maintenance';

/** GET /nodes: a host's record, health and (when it answers) live facts. */
export interface HostNode {
  name: string;
  state: HostState;
  role: 'controller' | 'worker';
  leader: boolean;
  lastHeartbeat: string | null;
  /** This controller's gRPC connection to the host is up (always true for itself). */
  connected?: boolean;
  addresses: string[];
  joinedAt?: string;
  cpus: number;
  cpuModel: string;
  memoryTotalBytes: number;
  memoryAvailableBytes: number | null;
  accelerator: 'kvm' | 'tcg' | null;
  acceleratorReason?: string;
  qemuVersion?: string;
  kernel?: string;
  uptimeSec?: number;
  loadAvg?: number[];
  /** The watchdog serve feeds, armed while HA VMs (poweroff/shutdown on isolation) run here. */
  watchdog?: { device: string; armed: boolean };
  vms: { total: number; running: number };
  /** What the VMs placed on the host reserve. */
  /** vcpus and memoryBytes: what powered-on VMs hold (a stopped VM holds none). */
  allocation: { vms: number; poweredOn: number; vcpus: number; memoryBytes: number };
  allocatedMemoryMiB: number;
  pools: { name: string; type: string; totalBytes: number; freeBytes: number }[];
  etcd?: { memberId: string; learner: boolean; peerUrl: string; clientUrl: string };
  /** Only in the answer to entering maintenance: the node.evacuate task that empties the host. */
  evacuationTask?: string;
}

export interface Policy {
  strategy: 'spread' | 'pack';
  memoryOvercommit: number;
  vcpuOvercommit: number;
  /** The CPU model of new VMs that name none: auto (default), host, an x86-64-vN level or a QEMU model. */
  defaultCpuModel: string;
}

export type DrsMode = 'off' | 'manual' | 'automatic';

/** A host as DRS sees it: what its VMs use. */
export interface DrsHostLoad {
  node: string;
  /** CPU the VMs' QEMU processes use over the host's CPUs (0..1, above 1 when overloaded). */
  cpuLoad: number;
  /** Memory of the powered-on VMs over the host's (0..1). */
  memoryLoad: number;
  vms: number;
}

export interface DrsRecommendation {
  id: string;
  /** The VM's id. */
  vm: string;
  vmName: string;
  from: string;
  to: string;
  /** Why the move is recommended, in a sentence. */
  reason: string;
  createdAt: string;
}

export interface DrsHistoryEntry {
  id: string;
  at: string;
  vm: string;
  vmName: string;
  from: string;
  to: string;
  reason: string;
  /** Made by DRS in automatic mode (false: applied by an administrator). */
  automatic: boolean;
  /** The vm.migrate task. */
  taskId?: string;
  status: 'started' | 'ok' | 'error';
  error?: string;
}

/** GET/PUT /drs, POST /drs/run. */
export interface DrsStatus {
  mode: DrsMode;
  /** 1 (conservative) .. 5 (aggressive). */
  threshold: number;
  intervalSec: number;
  lastRunAt?: string;
  hosts: DrsHostLoad[];
  recommendations: DrsRecommendation[];
  /** Newest first. */
  history: DrsHistoryEntry[];
}

export interface ClusterInfo {
  name: string;
  mode: 'single-host' | 'cluster';
  leader: string | null;
  caFingerprint: string | null;
  policy: Policy;
  /** The default CPU model: as set, what new VMs without a CPU model get now, and why (a sentence). */
  cpu: { defaultModel: string; model: string; why: string };
  etcdMembers: { id: string; name: string; learner: boolean; peerUrls: string[] }[];
}

export interface JoinToken {
  id: string;
  /** Only in the answer to create. */
  token?: string;
  expiresAt: string;
  createdAt: string;
  createdBy: string;
  description?: string;
  /** What the joining host becomes. */
  role: 'controller' | 'worker';
  status: 'valid' | 'used' | 'expired';
  usedAt?: string;
  usedBy?: string;
}

/** GET /images: an ISO or a disk image in a pool. */
export interface Image {
  id: string;
  name: string;
  kind: 'iso' | 'disk';
  format: 'iso' | 'qcow2' | 'raw';
  pool: string;
  sizeBytes: number;
  /** The disk's size as the guest sees it (a qcow2 file is smaller). */
  virtualSizeBytes: number;
  /** The host whose pool holds it (not for a shared pool). */
  node?: string;
  /** In a shared pool: every host clones VM disks from it; it pins no VM to a host. */
  shared?: boolean;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** validation_failed: one entry per field ({path: 'policy.memoryOvercommit', message}). */
    readonly details?: { path?: string; message: string }[],
  ) {
    super(message);
  }
}

let onUnauthenticated: () => void = () => {};
/** The store logs the UI out when a session expires (any 401 outside /auth/login). */
export function setUnauthenticatedHandler(fn: () => void): void {
  onUnauthenticated = fn;
}

/** Calls the REST API with the session cookie; throws ApiError carrying the API's message. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  return (await apiFull<T>(method, path, body)).data;
}

/**
 * api() with extra request headers (If-Match) and the answer's ETag: an edit dialog reads the VM with
 * its ETag and sends it back, so a change made meanwhile is refused (412) instead of overwritten.
 */
export async function apiFull<T>(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ data: T; etag?: string }> {
  const res = await fetch(`/api/v1${path}`, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw refusal(path, res.status, res.statusText, text);
  const type = res.headers.get('content-type') ?? '';
  const data = (type.includes('json') ? JSON.parse(text) : text) as T;
  return { data, etag: res.headers.get('etag') ?? undefined };
}

/** The API's error body as an ApiError; a 401 outside the login logs the UI out. */
function refusal(path: string, status: number, statusText: string, text: string): ApiError {
  let code = 'error';
  let message = `${status} ${statusText}`;
  let details: ApiError['details'];
  try {
    const e = JSON.parse(text).error;
    code = e.code;
    message = e.message;
    if (Array.isArray(e.details)) details = e.details;
  } catch {}
  if (status === 401 && path !== '/auth/login' && path !== '/auth/whoami') onUnauthenticated();
  return new ApiError(status, code, message, details);
}

/**
 * POSTs a file as the raw body (application/octet-stream), as the upload routes take it (POST
 * /imports/files?filename=); `onProgress` gets the bytes sent so far. XMLHttpRequest, since fetch tells
 * nothing of an upload's progress. An abort of `signal` stops the upload (the server drops the part).
 */
export function uploadFile<T>(
  path: string,
  file: Blob,
  onProgress?: (sent: number, total: number) => void,
  signal?: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1${path}`);
    xhr.withCredentials = true;
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      if (xhr.status < 200 || xhr.status >= 300)
        return reject(refusal(path, xhr.status, xhr.statusText, xhr.responseText));
      try {
        resolve(JSON.parse(xhr.responseText) as T);
      } catch {
        reject(new ApiError(xhr.status, 'error', 'the upload got an answer that is not JSON'));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, 'error', 'the upload failed: the connection broke'));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'the upload was cancelled'));
    if (signal?.aborted) return reject(new ApiError(0, 'aborted', 'the upload was cancelled'));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

export { bytes as fmtBytes } from '../../src/util/format';
