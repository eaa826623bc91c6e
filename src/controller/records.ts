import { NfError } from '../errors';
import type { CpuRun, DiskAio, DiskBus, DiskCache, IoLimits, NicModel, VideoModel } from '../vmm/types';
import type { CloudInitRecord } from './cloud-init';
import type { HaPolicy } from './ha/policy';
/** What the controller keeps in etcd. Keys live under one versioned prefix. */

export const PREFIX = '/neuroflow/v1/';
export const keys = {
  vm: (id: string) => `${PREFIX}vms/${id}`,
  vms: `${PREFIX}vms/`,
  vmName: (name: string) => `${PREFIX}names/vms/${name}`,
  image: (id: string) => `${PREFIX}images/${id}`,
  images: `${PREFIX}images/`,
  imageName: (name: string) => `${PREFIX}names/images/${name}`,
  task: (id: string) => `${PREFIX}tasks/${id}`,
  tasks: `${PREFIX}tasks/`,
  /** A cancel asked for a running task (apart from the task, which its runner keeps rewriting). */
  taskCancel: (id: string) => `${PREFIX}task-cancel/${id}`,
  network: (name: string) => `${PREFIX}networks/${name}`,
  networks: `${PREFIX}networks/`,
  /** Where OVN's central part (databases, ovn-northd) runs: { node, address }. */
  ovnCentral: `${PREFIX}ovn/central`,
  /** Browser sessions, by the SHA-256 of the session id (src/api/sessions.ts): every controller honours them. */
  session: (hash: string) => `${PREFIX}sessions/${hash}`,
  sessions: `${PREFIX}sessions/`,
  /** Console tickets, by the SHA-256 of the ticket (src/api/console.ts): single use on any controller. */
  consoleTicket: (hash: string) => `${PREFIX}console-tickets/${hash}`,
  consoleTickets: `${PREFIX}console-tickets/`,
  router: (name: string) => `${PREFIX}routers/${name}`,
  routers: `${PREFIX}routers/`,
  securityGroup: (name: string) => `${PREFIX}security-groups/${name}`,
  securityGroups: `${PREFIX}security-groups/`,
  node: (name: string) => `${PREFIX}nodes/${name}`,
  nodes: `${PREFIX}nodes/`,
  /** Written by the leader on each heartbeat, attached to a lease: gone when the node goes quiet. */
  nodeHealth: (name: string) => `${PREFIX}node-health/${name}`,
  nodeHealths: `${PREFIX}node-health/`,
  joinToken: (id: string) => `${PREFIX}join-tokens/${id}`,
  joinTokens: `${PREFIX}join-tokens/`,
  cluster: `${PREFIX}cluster`,
  /** Placement policy of the cluster (SchedPolicy); absent: defaults. */
  policy: `${PREFIX}policy`,
  leader: `${PREFIX}leader`,
  pool: (name: string) => `${PREFIX}pools/${name}`,
  pools: `${PREFIX}pools/`,
  /** Bumped by every power-on admitted on the host, so concurrent admissions conflict (Admission). */
  admission: (node: string) => `${PREFIX}admission/${node}`,
  /** The integrated Ceph cluster (CephRecord) and its keys (CephSecretsRecord, never in API answers). */
  ceph: `${PREFIX}ceph/cluster`,
  cephSecrets: `${PREFIX}ceph/secrets`,
  /** HA: the cluster's settings (HaSettings) and one record per host failure (RecoveryRecord). */
  haSettings: `${PREFIX}ha/settings`,
  haRecovery: (id: string) => `${PREFIX}ha/recoveries/${id}`,
  haRecoveries: `${PREFIX}ha/recoveries/`,
  /** Backup repositories (RepositoryRecord): a directory on a host. */
  backupRepo: (name: string) => `${PREFIX}backup/repositories/${name}`,
  backupRepos: `${PREFIX}backup/repositories/`,
  /** Scheduled backup jobs (BackupJobRecord) and what their last run did (BackupJobState). */
  backupJob: (name: string) => `${PREFIX}backup/jobs/${name}`,
  backupJobs: `${PREFIX}backup/jobs/`,
  backupJobState: (name: string) => `${PREFIX}backup/job-state/${name}`,
};

export type PowerState = 'running' | 'stopped' | 'paused';

export interface DiskRecord {
  id: string;
  pool: string;
  volume: string;
  sizeBytes: number;
  /** The image this disk was cloned from (its backing file); the image cannot be deleted meanwhile. */
  image?: string;
  /** A linked clone of a template's disk; the template cannot be deleted meanwhile. */
  cloneOf?: { vm: string; disk: string };
  /** Absent: virtio-blk. */
  bus?: DiskBus;
  /** The hot-plug slot (PCIe root port) it went into while the VM ran; it stays there. */
  slot?: string;
  /** Per-second I/O limits QEMU enforces. */
  limits?: IoLimits;
  /** QEMU's cache mode; absent: writeback. */
  cache?: DiskCache;
  /** The AIO engine of a file-backed disk; absent: threads. */
  aio?: DiskAio;
}

export interface NicRecord {
  id: string;
  network: string;
  mac: string;
  /** A fixed address on an overlay network (else OVN picks one). */
  ip?: string;
  /** Absent: virtio. */
  model?: NicModel;
  /** The hot-plug slot (PCIe root port) it went into while the VM ran; it stays there. */
  slot?: string;
  /** The cable is pulled (the guest sees no carrier). */
  linkDown?: boolean;
}

export type BootRecord =
  | { kernel: string; initrd?: string; cmdline?: string }
  | { cdrom: { image: string } | { path: string } }
  | { disk: number };

export interface SnapshotRecord {
  name: string;
  description?: string;
  createdAt: string;
  vmState: PowerState;
  /** File systems were frozen by the guest agent while it was taken. */
  quiesced?: boolean;
}

/** Where a VM may run, as the administrator asked. */
export interface PlacementRecord {
  /** Run on this host only. */
  node?: string;
  /** VMs sharing this name run on the same host. */
  affinityGroup?: string;
  /** VMs sharing this name run on different hosts. */
  antiAffinityGroup?: string;
}

export interface VmRecord {
  id: string;
  name: string;
  /** The host the scheduler placed the VM on; '' while it is pending (its disks do not exist yet). */
  node: string;
  placement?: PlacementRecord;
  /** Why the scheduler could not place it yet. */
  pending?: { reason: string; at: string };
  vcpus: number;
  memoryMiB: number;
  machine: 'q35' | 'pc';
  description?: string;
  /** Labels that group VMs (backup jobs select by them); sorted, unique. */
  tags?: string[];
  disks: DiskRecord[];
  networks: NicRecord[];
  boot: BootRecord;
  /** The guest agent channel (absent in records from before it existed: on). */
  agent?: boolean;
  /** Absent: the host's best model (host under KVM, max under TCG), one socket. */
  cpu?: CpuRun;
  /** vCPUs can be hot-added up to this many while the VM runs; absent: no hot-add. */
  maxVcpus?: number;
  /** Memory can be hot-added (DIMMs) up to this many MiB while the VM runs; absent: no hot-add. */
  maxMemoryMiB?: number;
  /**
   * The DIMMs (MiB each) hot-added into the QEMU that runs now, part of memoryMiB: a migration target
   * starts with them; the next cold start folds them into the base memory.
   */
  memoryDimmsMiB?: number[];
  /** Absent: bios. */
  firmware?: 'bios' | 'uefi';
  /** UEFI Secure Boot (Microsoft's keys enrolled); only with firmware uefi on q35. */
  secureBoot?: boolean;
  /** UEFI: the VM's variable store, a volume beside its first disk (made from OVMF's template at first start). */
  efiVars?: { pool: string; volume: string };
  /** A TPM 2.0 (swtpm) whose state the VM's host keeps. */
  tpm?: boolean;
  /** Absent: std. */
  video?: VideoModel;
  /** A USB tablet (absent in records from before it existed: none). */
  tablet?: boolean;
  /**
   * Autostart: when its host comes back (a restart, or stop-vms at a planned shutdown) and the VM ran,
   * it starts again, by `order` (lower first) among its host's VMs, the next one `delaySec` after it.
   */
  onBoot?: OnBoot;
  /** Devices the firmware tries, in order (disk0, cd0 = the boot CD-ROM, cd1 = the media drive, net0). */
  bootOrder?: string[];
  /**
   * A removable CD-ROM drive beside the boot one (drivers, installers): its ISO image, or empty. Media
   * change while the VM runs (POST /vms/{id}/media).
   */
  media?: { image?: string };
  /** cloud-init NoCloud settings (the password as a hash only); the seed is made at every start. */
  cloudInit?: CloudInitRecord;
  /** Hardware changed while the VM ran: folded into the record at its next cold start (reconciler). */
  pendingChanges?: PendingChanges;
  /** Empty PCIe root ports (q35) for hot-plug; absent in VMs made before hot-plug: none. */
  hotplugSlots?: number;
  /**
   * A hot-plug under way (written before QEMU is asked, cleared after): a controller that died in
   * between finds it and makes the record match what QEMU has (src/controller/vm-devices.ts).
   */
  hotplug?: { op: 'add' | 'remove'; kind: 'disk' | 'nic'; id: string; at: string };
  snapshots: SnapshotRecord[];
  /** A template: never powered on; linked clones are made from its disks (POST /vms/{id}/clone). */
  template?: boolean;
  /** Desired power state; the reconciler makes the node match it. */
  power: PowerState;
  /** Bumped on every change of `power`, so a failed attempt is tied to the request that caused it. */
  generation: number;
  /** The generation at which the node last reached `power: running`; a later stop of the guest is its own. */
  runningGeneration?: number;
  /**
   * A live migration under way (src/controller/migration.ts): the reconciler leaves the VM alone and
   * actions are refused until it ends; after a controller failover the leader finishes or undoes it
   * from what the two hosts report.
   */
  migration?: {
    taskId: string;
    source: string;
    target: string;
    /** Disks on the source's local pool, copied to new volumes on the target. */
    localDisks: string[];
    startedAt: string;
  };
  /** Why the last start failed or the VM died; shown as state `error` until the next start or stop. */
  lastError?: { message: string; at: string };
  /** High availability: restarted on another host when its host fails (src/controller/ha/). */
  ha?: HaPolicy;
  /**
   * Ownership epoch: the record's etcd revision when it was last handed to a host (an HA restart, a
   * migration). Every start carries it; a host refuses a start older than one it was handed.
   */
  epoch?: number;
  createdAt: string;
  updatedAt: string;
}

/** The ISO images a VM uses: its boot CD-ROM's and its media drive's. */
export function isoImagesOf(vm: VmRecord): string[] {
  const out: string[] = [];
  if ('cdrom' in vm.boot && 'image' in vm.boot.cdrom) out.push(vm.boot.cdrom.image);
  if (vm.media?.image) out.push(vm.media.image);
  return out;
}

/** Refuses an action on a VM while a live migration decides where it runs. */
export function notMigrating(vm: VmRecord): void {
  const m = vm.migration;
  if (m)
    throw new NfError(
      'invalid_state',
      `VM "${vm.name}" is being migrated from ${m.source} to ${m.target} (task ${m.taskId}); wait for it or cancel it`,
    );
}

/**
 * A VM holds CPU and memory while it is powered on: asked to run or be paused, or with a QEMU process
 * still alive (a stop in progress). A stopped VM costs only its disks.
 */
export function isPoweredOn(vm: VmRecord, hasProcess?: (id: string) => boolean): boolean {
  return vm.power !== 'stopped' || (!!vm.node && !!hasProcess?.(vm.id));
}

export interface OnBoot {
  enabled: boolean;
  order: number;
  delaySec: number;
}

/** The hardware fields an edit of a running VM keeps for its next cold start. */
export const COLD_FIELDS = [
  'vcpus',
  'maxVcpus',
  'memoryMiB',
  'maxMemoryMiB',
  'machine',
  'boot',
  'firmware',
  'secureBoot',
  'efiVars',
  'tpm',
  'cpu',
  'video',
  'tablet',
  'bootOrder',
] as const;
export type PendingChanges = Partial<Pick<VmRecord, (typeof COLD_FIELDS)[number]>>;

export interface ImageRecord {
  id: string;
  name: string;
  kind: 'iso' | 'disk';
  format: 'iso' | 'qcow2' | 'raw';
  pool: string;
  /** The host whose pool holds the file (absent in records from before clusters: the first host). */
  node?: string;
  /** In a shared pool (an RBD image every host reaches): it pins no VM to a host. */
  shared?: boolean;
  file: string;
  sizeBytes: number;
  virtualSizeBytes: number;
  sha256: string;
  createdAt: string;
  source?: string;
}

/**
 * A cluster-wide storage pool (each host's `local` dir pool has no record). The key is a secret: it is
 * handed to the hosts over mTLS and never shown by the API.
 */
export interface PoolRecord {
  name: string;
  type: 'rbd';
  rbd: { pool: string; monitors: string[]; user: string; key: string };
  description?: string;
  createdAt: string;
  createdBy: string;
}

export interface NetworkRecord {
  name: string;
  /**
   * nat: outbound NAT through passt (the built-in "default"); overlay: an OVN logical switch across the
   * hosts (Geneve); provider: an OVN logical switch on a physical network of the hosts (localnet), VLAN
   * tagged or not.
   */
  type: 'nat' | 'overlay' | 'provider';
  /** overlay/provider: its IPv4 subnet (CIDR), gateway (a router's address), DNS servers DHCP hands out, MTU. */
  subnet?: string;
  gateway?: string;
  dns?: string[];
  mtu?: number;
  /** provider: the hosts' physical network it is on (serve --provider-network NAME=IFACE), its VLAN. */
  physicalNetwork?: string;
  vlan?: number;
  /** Whether OVN answers DHCP on it (overlay: always; provider: when asked, else the network's own does). */
  dhcp?: boolean;
  createdAt?: string;
}

/** An OVN logical router between networks, with a way out (uplink) and floating addresses. */
export interface RouterRecord {
  name: string;
  /** The overlay networks it joins: its port on each has the network's gateway address. */
  networks: string[];
  /** Its port on a provider network (its own address there), the default route out, SNAT of the inside. */
  uplink?: { network: string; ip: string; snat: boolean };
  routes: { destination: string; nexthop: string }[];
  /** Addresses of the uplink network that reach a VM's NIC (DNAT, and SNAT of what the NIC sends out). */
  floatingIps: { ip: string; vmId: string; nic: string }[];
  createdAt: string;
}

export interface SecurityRule {
  /** in: to the group's NICs; out: from them. */
  direction: 'in' | 'out';
  protocol: 'any' | 'tcp' | 'udp' | 'icmp';
  /** tcp/udp: a port or a range "8000-8080"; absent: every port. */
  ports?: string;
  /** The other side: a CIDR, or the NICs of a group (one of them; neither: anywhere). */
  remote?: string;
  remoteGroup?: string;
  /** Default allow; deny matters in an admin group (above every tenant rule). */
  action?: 'allow' | 'deny';
  /** Log the flows it matches (rate limited) in the host's ovn-controller log. */
  log?: boolean;
}

/**
 * A stateful firewall on the NICs of the VMs carrying one of its tags: what a member may receive and
 * send (anything else is dropped; replies to allowed flows pass).
 */
export interface SecurityGroupRecord {
  name: string;
  description?: string;
  tags: string[];
  /** An admin group's rules come before every other group's (their deny wins over a tenant's allow). */
  admin?: boolean;
  rules: SecurityRule[];
  createdAt: string;
}

export interface TaskRecord {
  id: string;
  type: string;
  target: string;
  user: string;
  status: 'running' | 'ok' | 'error';
  progress: number;
  error?: { code: string; message: string };
  startedAt: string;
  /** When its runner last saved it (a running task not saved for long lost its controller). */
  updatedAt?: string;
  endedAt?: string;
  /** The daemon running it ("<host>/<process>"): a task of an earlier daemon of the host is ended at start. */
  runner?: string;
  /** POST /tasks/{id}/cancel may stop it while it runs. */
  cancellable?: boolean;
  cancelRequested?: boolean;
  /** What the task is doing now (a migration: phase, RAM and disk figures). */
  details?: Record<string, unknown>;
  /** What it measured when it ended well (a migration: downtime, total time). */
  result?: Record<string, unknown>;
}

export type NodeRole = 'controller' | 'worker';

export interface NodeRecord {
  name: string;
  role: NodeRole;
  /** host:port of its HTTPS API (controllers), and of its gRPC node service. */
  apiAddress?: string;
  grpcAddress?: string;
  /** Management IP addresses (also in its certificate). */
  addresses: string[];
  /** No new VMs are placed on it. */
  maintenance: boolean;
  joinedAt: string;
  /** Capacity and facts from its last heartbeat that changed them. */
  info?: {
    cpus: number;
    cpuModel: string;
    memoryTotalBytes: number;
    accelerator: 'kvm' | 'tcg';
    pools: { name: string; type: string; totalBytes: number; freeBytes: number }[];
    qemuVersion: string;
    /** The portable CPU levels it runs (absent: a host from before they were reported). */
    cpuLevels?: string[];
  };
  etcd?: { memberId: string; learner: boolean; peerUrl: string; clientUrl: string };
}

export interface NodeHealthRecord {
  at: string;
  memoryAvailableBytes: number;
  vmsRunning: number;
}

export interface JoinTokenRecord {
  id: string;
  secretHash: string;
  expiresAt: string;
  createdAt: string;
  createdBy: string;
  description?: string;
  /** What the joining host becomes, as the admin chose (absent in tokens of older versions: worker). */
  role?: NodeRole;
  /** Set when a host used it: the token cannot be used again. */
  usedAt?: string;
  usedBy?: string;
}

export interface ClusterRecord {
  name: string;
  createdAt: string;
  caFingerprint: string;
  caCertPem: string;
  /** sha256 of the admin token and the root password's scrypt hash, so every controller accepts them. */
  adminTokenHash: string;
  rootPassword: { salt: string; hash: string };
}

/** The integrated Ceph cluster: who runs which daemon, and the config every host's ceph.conf shares. */
export interface CephRecord {
  fsid: string;
  state: 'bootstrapping' | 'ready';
  /** Monitors by host name (each also runs a manager), with the address they listen on. */
  mons: { name: string; ip: string }[];
  osds: { id: number; node: string; device: string }[];
  poolSize: number;
  poolMinSize: number;
  failureDomain: 'host' | 'osd';
  osdMemoryTargetBytes: number;
  monDataAvailWarn?: number;
  createdAt: string;
  createdBy?: string;
}

/** The cluster's own cephx keys: controllers run `ceph` as client.admin, hosts make OSDs with bootstrap-osd. */
export interface CephSecretsRecord {
  mon: string;
  admin: string;
  bootstrapOsd: string;
}
