import type {
  CreateVmBody,
  DiskAio,
  DiskBus,
  DiskCache,
  DiskLimits,
  EditVmBody,
  Firmware,
  MachineType,
  NicModel,
  PendingChanges,
  VideoModel,
  Vm,
  VmCpu,
} from './api';

/** The choices of the create dialog, with the API's labels; the first of each list is the API's default. */
export const MACHINES: [MachineType, string][] = [
  ['q35', 'q35 (PCIe, default)'],
  ['pc', 'pc (i440FX, legacy)'],
];
export const FIRMWARES: [Firmware, string][] = [
  ['bios', 'BIOS (SeaBIOS)'],
  ['uefi', 'UEFI (OVMF)'],
];
/** The create dialog adds a first choice, '' (the cluster's default model). */
export const CPU_MODELS: [string, string][] = [
  ['host', 'host (fastest)'],
  ['x86-64-v2', 'x86-64-v2 (portable)'],
  ['x86-64-v3', 'x86-64-v3 (AVX2)'],
  ['x86-64-v4', 'x86-64-v4 (AVX-512)'],
];
export const VIDEOS: [VideoModel, string][] = [
  ['std', 'Standard VGA'],
  ['virtio', 'VirtIO GPU'],
  ['qxl', 'QXL'],
  ['cirrus', 'Cirrus'],
  ['none', 'None (serial console only)'],
];
export const DISK_BUSES: [DiskBus, string][] = [
  ['virtio-blk', 'VirtIO block'],
  ['virtio-scsi', 'VirtIO SCSI'],
  ['sata', 'SATA (AHCI)'],
  ['ide', 'IDE'],
];
export const DISK_CACHES: [DiskCache, string][] = [
  ['writeback', 'writeback (page cache)'],
  ['none', 'none (O_DIRECT)'],
  ['writethrough', 'writethrough'],
  ['directsync', 'directsync'],
  ['unsafe', 'unsafe (no flushes)'],
];
export const DISK_AIOS: [DiskAio, string][] = [
  ['threads', 'threads'],
  ['native', 'native (Linux AIO)'],
  ['io_uring', 'io_uring'],
];
export const NIC_MODELS: [NicModel, string][] = [
  ['virtio', 'VirtIO'],
  ['e1000e', 'Intel e1000e'],
  ['rtl8139', 'Realtek RTL8139'],
  ['vmxnet3', 'VMware vmxnet3'],
];

const label = <T extends string>(list: [T, string][], v: string | undefined, fallback: T): string =>
  list.find(([k]) => k === (v ?? fallback))?.[1] ?? v ?? fallback;

export const diskBusLabel = (bus?: string) => label(DISK_BUSES, bus, 'virtio-blk');
export const nicModelLabel = (model?: string) => label(NIC_MODELS, model, 'virtio');
export const videoLabel = (video?: string) => label(VIDEOS, video, 'std');

/** Secure Boot needs UEFI on q35 (the Secure Boot OVMF build needs SMM, which pc lacks). */
export function secureBootAvailable(firmware: Firmware, machine: MachineType): boolean {
  return firmware === 'uefi' && machine === 'q35';
}

/** IDE exists on the pc machine only. */
export function diskBusAvailable(bus: DiskBus, machine: MachineType): boolean {
  return bus !== 'ide' || machine === 'pc';
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** "2 sockets × 1 core × 1 thread". */
export function cpuTopology(cpu: Pick<VmCpu, 'sockets' | 'cores' | 'threads'>): string {
  return `${plural(cpu.sockets, 'socket')} × ${plural(cpu.cores, 'core')} × ${plural(cpu.threads, 'thread')}`;
}

/**
 * The topology the API makes of `vcpus` on `sockets` (cores take what is left, one thread each), or why
 * it cannot: '' while sockets is empty.
 */
export function socketsHint(vcpus: number, sockets: string): { ok: boolean; text: string } {
  if (!sockets.trim()) return { ok: true, text: '' };
  const n = Number(sockets);
  if (!Number.isInteger(n) || n < 1) return { ok: false, text: 'a whole number of sockets, 1 or more' };
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus % n !== 0)
    return { ok: false, text: `${plural(vcpus, 'vCPU')} cannot be split into ${plural(n, 'socket')}` };
  return { ok: true, text: cpuTopology({ sockets: n, cores: vcpus / n, threads: 1 }) };
}

/** The cluster's default CPU model: auto, then the models of a VM. */
export const DEFAULT_CPU_MODELS: [string, string][] = [
  ['auto', 'auto (chosen from the hosts)'],
  ...CPU_MODELS,
];

/** The choices of the default CPU model, with `current` too when it is another (a QEMU model set through the API). */
export function cpuModelChoices(current: string): [string, string][] {
  return DEFAULT_CPU_MODELS.some(([m]) => m === current)
    ? DEFAULT_CPU_MODELS
    : [...DEFAULT_CPU_MODELS, [current, current]];
}

/** The first choice of the create dialog's CPU models: "Cluster default (x86-64-v3)" (the model unknown: without it). */
export function clusterCpuLabel(model: string | undefined): string {
  return model ? `Cluster default (${model})` : 'Cluster default';
}

/** "x86-64-v2, 2 sockets × 1 core × 1 thread, +avx2 -pcid". */
export function cpuLine(cpu: VmCpu): string {
  const flags = Object.entries(cpu.flags ?? {}).map(([f, on]) => `${on ? '+' : '-'}${f}`);
  return [cpu.model, cpuTopology(cpu), flags.join(' ')].filter(Boolean).join(', ');
}

/** "UEFI, Secure Boot", "UEFI" or "BIOS". */
export function firmwareLine(vm: Pick<Vm, 'firmware' | 'secureBoot'>): string {
  if (vm.firmware !== 'uefi') return 'BIOS';
  return vm.secureBoot ? 'UEFI, Secure Boot' : 'UEFI';
}

/** The dialog's Hardware section. */
export interface HardwareForm {
  machine: MachineType;
  firmware: Firmware;
  secureBoot: boolean;
  tpm: boolean;
  cpuModel: string;
  /** '' or a positive integer as typed. */
  sockets: string;
  video: VideoModel;
  tablet: boolean;
  diskBus: DiskBus;
  diskCache: DiskCache;
  diskAio: DiskAio;
  nicModel: NicModel;
}

export const DEFAULT_HARDWARE: HardwareForm = {
  machine: 'q35',
  firmware: 'bios',
  secureBoot: false,
  tpm: false,
  // the cluster's default model (GET /cluster cpu.model)
  cpuModel: '',
  sockets: '',
  video: 'std',
  tablet: true,
  diskBus: 'virtio-blk',
  diskCache: 'writeback',
  diskAio: 'threads',
  nicModel: 'virtio',
};

/**
 * The fields of POST /vms for `h` that differ from the API's defaults (Secure Boot only where it is
 * available; the bus, cache, AIO and model go on each disk and NIC by the caller; no CPU model: the
 * cluster's default). Sockets that do not divide the
 * vCPUs are sent anyway: the API's validation message says why.
 */
export function hardwareBody(
  h: HardwareForm,
): Pick<CreateVmBody, 'machine' | 'firmware' | 'secureBoot' | 'tpm' | 'cpu' | 'video' | 'tablet'> {
  const body: ReturnType<typeof hardwareBody> = {};
  if (h.machine !== DEFAULT_HARDWARE.machine) body.machine = h.machine;
  if (h.firmware !== DEFAULT_HARDWARE.firmware) body.firmware = h.firmware;
  if (h.secureBoot && secureBootAvailable(h.firmware, h.machine)) body.secureBoot = true;
  if (h.tpm) body.tpm = true;
  const cpu: Partial<VmCpu> = {};
  if (h.cpuModel) cpu.model = h.cpuModel;
  if (h.sockets.trim()) cpu.sockets = Number(h.sockets);
  if (Object.keys(cpu).length) body.cpu = cpu;
  if (h.video !== DEFAULT_HARDWARE.video) body.video = h.video;
  if (!h.tablet) body.tablet = false;
  return body;
}

/** A change of machine or firmware drops what the new combination cannot have (Secure Boot, IDE). */
export function fitHardware(h: HardwareForm): HardwareForm {
  return {
    ...h,
    secureBoot: h.secureBoot && secureBootAvailable(h.firmware, h.machine),
    diskBus: diskBusAvailable(h.diskBus, h.machine) ? h.diskBus : DEFAULT_HARDWARE.diskBus,
  };
}

/** The hardware a VM gets at its next cold start: what it has, with the pending changes on top. */
export interface NextHardware {
  vcpus: number;
  memoryMiB: number;
  machine: MachineType;
  firmware: Firmware;
  secureBoot: boolean;
  tpm: boolean;
  cpu: { model: string; sockets: number; threads: number; flags?: Record<string, boolean> };
  video: VideoModel;
  tablet: boolean;
  maxVcpus?: number;
  maxMemoryMiB?: number;
  /** Empty: no explicit order. */
  bootOrder: string[];
}

export function nextHardware(vm: Vm): NextHardware {
  const p = vm.pendingChanges ?? {};
  // A pending cpu is as it was sent (parts left out are the API's defaults), not merged with the VM's.
  const cpu = p.cpu
    ? {
        model: p.cpu.model ?? 'host',
        sockets: p.cpu.sockets ?? 1,
        threads: p.cpu.threads ?? 1,
        flags: p.cpu.flags,
      }
    : {
        model: vm.cpu?.model ?? 'host',
        sockets: vm.cpu?.sockets ?? 1,
        threads: vm.cpu?.threads ?? 1,
        flags: vm.cpu?.flags,
      };
  return {
    vcpus: p.vcpus ?? vm.vcpus,
    memoryMiB: p.memoryMiB ?? vm.memoryMiB,
    machine: ((p.machine ?? vm.machine) === 'pc' ? 'pc' : 'q35') as MachineType,
    firmware: p.firmware ?? vm.firmware ?? 'bios',
    secureBoot: p.secureBoot ?? vm.secureBoot ?? false,
    tpm: p.tpm ?? vm.tpm ?? false,
    cpu,
    video: p.video ?? vm.video ?? 'std',
    tablet: p.tablet ?? vm.tablet ?? false,
    maxVcpus: p.maxVcpus ?? vm.maxVcpus,
    maxMemoryMiB: p.maxMemoryMiB ?? vm.maxMemoryMiB,
    // a pending [] clears the order
    bootOrder: (p.bootOrder as string[] | undefined) ?? vm.bootOrder ?? [],
  };
}

/** The edit dialog's fields, numbers as typed. */
export interface EditForm {
  name: string;
  description: string;
  vcpus: string;
  memoryMiB: string;
  cpuModel: string;
  /** '' (1) or a positive integer as typed. */
  sockets: string;
  video: VideoModel;
  tablet: boolean;
  tpm: boolean;
  firmware: Firmware;
  secureBoot: boolean;
}

/** The dialog filled from the VM as it will be at its next cold start (pending changes included). */
export function editForm(vm: Vm): EditForm {
  const h = nextHardware(vm);
  return {
    name: vm.name,
    description: vm.description ?? '',
    vcpus: String(h.vcpus),
    memoryMiB: String(h.memoryMiB),
    cpuModel: h.cpu.model,
    sockets: String(h.cpu.sockets),
    video: h.video,
    tablet: h.tablet,
    tpm: h.tpm,
    firmware: h.firmware,
    secureBoot: h.secureBoot,
  };
}

/**
 * Secure Boot is chosen when a VM first gets UEFI (its variable store is made with or without the keys,
 * and the API refuses a change later): a VM without a UEFI store switched to UEFI, on q35.
 */
export function secureBootEditable(vm: Vm, f: Pick<EditForm, 'firmware'>): boolean {
  return !vm.efiVars && secureBootAvailable(f.firmware, nextHardware(vm).machine);
}

/** What is wrong with the numbers as typed ('' when they will do); the API checks the rest. */
export function editProblem(f: EditForm): string {
  if (!f.name.trim()) return 'The VM needs a name.';
  const whole = (s: string) => /^\d+$/.test(s.trim()) && Number(s) >= 1;
  if (!whole(f.vcpus)) return 'vCPUs: a whole number, 1 or more.';
  if (!whole(f.memoryMiB)) return 'Memory: a whole number of MiB.';
  if (f.sockets.trim() && !whole(f.sockets)) return 'Sockets: a whole number, 1 or more (or empty: 1).';
  return '';
}

/**
 * PATCH /vms/{id}: the fields of `f` that differ from the VM at its next cold start (so an edit of a
 * running VM adds to its pending changes). The CPU goes as a whole (the API replaces it): model, sockets,
 * the VM's threads and flags; cores are left to the API (what the vCPUs leave).
 */
export function editBody(vm: Vm, f: EditForm): EditVmBody {
  const h = nextHardware(vm);
  const body: EditVmBody = {};
  if (f.name.trim() !== vm.name) body.name = f.name.trim();
  if (f.description !== (vm.description ?? '')) body.description = f.description;
  if (Number(f.vcpus) !== h.vcpus) body.vcpus = Number(f.vcpus);
  if (Number(f.memoryMiB) !== h.memoryMiB) body.memoryMiB = Number(f.memoryMiB);
  const sockets = f.sockets.trim() ? Number(f.sockets) : 1;
  if (f.cpuModel !== h.cpu.model || sockets !== h.cpu.sockets) {
    const cpu: Partial<VmCpu> = { model: f.cpuModel };
    if (f.sockets.trim()) cpu.sockets = sockets;
    if (h.cpu.threads > 1) cpu.threads = h.cpu.threads;
    if (h.cpu.flags && Object.keys(h.cpu.flags).length) cpu.flags = h.cpu.flags;
    body.cpu = cpu;
  }
  if (f.video !== h.video) body.video = f.video;
  if (f.tablet !== h.tablet) body.tablet = f.tablet;
  if (f.tpm !== h.tpm) body.tpm = f.tpm;
  if (f.firmware !== h.firmware) body.firmware = f.firmware;
  if (secureBootEditable(vm, f) && f.secureBoot !== h.secureBoot) body.secureBoot = f.secureBoot;
  return body;
}

const onOff = (b: unknown) => (b ? 'on' : 'off');

/** "x86-64-v2, 2 sockets" (a pending CPU names only the parts it was given). */
function pendingCpu(cpu: Partial<VmCpu>): string {
  const topology = [
    cpu.sockets !== undefined && plural(cpu.sockets, 'socket'),
    cpu.cores !== undefined && plural(cpu.cores, 'core'),
    cpu.threads !== undefined && plural(cpu.threads, 'thread'),
  ].filter(Boolean);
  const flags = Object.entries(cpu.flags ?? {}).map(([f, on]) => `${on ? '+' : '-'}${f}`);
  return [cpu.model ?? 'host', topology.join(' × '), flags.join(' ')].filter(Boolean).join(', ');
}

function pendingBoot(boot: Record<string, unknown>): string {
  if ('disk' in boot) return `boot from disk ${boot.disk}`;
  if ('cdrom' in boot) return `boot from the CD-ROM ${boot.cdrom}`;
  if ('kernel' in boot) return 'boot a kernel';
  return `boot ${Object.keys(boot).join(', ')}`;
}

const PENDING_ORDER = [
  'memoryMiB',
  'vcpus',
  'cpu',
  'machine',
  'firmware',
  'secureBoot',
  'tpm',
  'video',
  'tablet',
  'maxVcpus',
  'maxMemoryMiB',
  'boot',
  'bootOrder',
] as const;

/**
 * vm.pendingChanges in words, e.g. ["memory 320 MiB", "vCPUs 1", "CPU x86-64-v2, 2 sockets"]; the UEFI
 * variable store that comes with a switch to UEFI is not named.
 */
export function pendingItems(p: PendingChanges | undefined): string[] {
  if (!p) return [];
  const out: string[] = [];
  for (const k of PENDING_ORDER) {
    if (!(k in p) || p[k] === undefined) continue;
    const v = p[k];
    if (k === 'memoryMiB') out.push(`memory ${v} MiB`);
    else if (k === 'vcpus') out.push(`vCPUs ${v}`);
    else if (k === 'cpu') out.push(`CPU ${pendingCpu(v as Partial<VmCpu>)}`);
    else if (k === 'machine') out.push(`machine ${v}`);
    else if (k === 'firmware') out.push(`firmware ${v === 'uefi' ? 'UEFI' : 'BIOS'}`);
    else if (k === 'secureBoot') out.push(`Secure Boot ${onOff(v)}`);
    else if (k === 'tpm') out.push(`TPM 2.0 ${onOff(v)}`);
    else if (k === 'video') out.push(`video ${videoLabel(v as string)}`);
    else if (k === 'tablet') out.push(`USB tablet ${onOff(v)}`);
    else if (k === 'boot') out.push(pendingBoot(v as Record<string, unknown>));
    else if (k === 'maxVcpus') out.push(`max vCPUs ${v}`);
    else if (k === 'maxMemoryMiB') out.push(`max memory ${v} MiB`);
    else if (k === 'bootOrder') {
      const order = v as string[] | null;
      out.push(order?.length ? `boot order ${bootOrderLine(order)}` : 'no boot order');
    }
  }
  for (const [k, v] of Object.entries(p))
    if (!(PENDING_ORDER as readonly string[]).includes(k) && k !== 'efiVars' && v !== undefined)
      out.push(`${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  return out;
}

/** "Pending until the next stop and start: memory 320 MiB, vCPUs 1", or '' with nothing pending. */
export function pendingLine(p: PendingChanges | undefined): string {
  const items = pendingItems(p);
  return items.length ? `Pending until the next stop and start: ${items.join(', ')}` : '';
}

/** A running VM takes memory in whole blocks of this many MiB (what a Linux guest onlines at a time). */
export const MEMORY_BLOCK_MIB = 128;

/** What is wrong with a memory maximum as typed ('' when it will do: empty, or whole MiB from the memory up). */
export function maxMemoryProblem(max: string, memoryMiB: number): string {
  if (!max.trim()) return '';
  if (!/^\d+$/.test(max.trim()) || Number(max) < memoryMiB)
    return `Max memory: a whole number of MiB, at least the memory (${memoryMiB} MiB), or empty.`;
  return '';
}

/**
 * The edit dialog's word beside Memory on how it grows while the VM runs ('' without a maximum): a
 * stopped VM, from the maximum typed; a running one, from the maximum it runs with (a new one pending
 * stops the hot-add until the next cold start).
 */
export function memoryHint(
  vm: Pick<Vm, 'state' | 'memoryMiB' | 'maxMemoryMiB' | 'pendingChanges'>,
  max: string,
): string {
  if (vm.state === 'stopped') {
    const n = Number(max);
    return max.trim() && Number.isInteger(n) && n > 0
      ? `With a maximum, memory grows while the VM runs, in ${MEMORY_BLOCK_MIB} MiB steps up to ${n} MiB.`
      : '';
  }
  const live = vm.maxMemoryMiB;
  if (!live) return '';
  const pending = vm.pendingChanges?.maxMemoryMiB;
  if (pending !== undefined && pending !== live)
    return `A new maximum (${pending} MiB) waits for the next stop and start; so does any memory change until then.`;
  if (live <= vm.memoryMiB) return `The VM has its maximum memory (${live} MiB).`;
  return `Memory grows at once in whole ${MEMORY_BLOCK_MIB} MiB steps from ${vm.memoryMiB} MiB up to the maximum, ${live} MiB; less, or other sizes, wait for the next stop and start.`;
}

/** What an edit gave a running VM at once (hot-add): "memory 384 MiB, 2 vCPUs", or ''. */
export function hotAddedLine(
  before: Pick<Vm, 'vcpus' | 'memoryMiB'>,
  after: Pick<Vm, 'vcpus' | 'memoryMiB'>,
): string {
  return [
    after.memoryMiB > before.memoryMiB && `memory ${after.memoryMiB} MiB`,
    after.vcpus > before.vcpus && plural(after.vcpus, 'vCPU'),
  ]
    .filter(Boolean)
    .join(', ');
}

type DiskIo = { cache?: DiskCache; aio?: DiskAio };

/** "cache none, aio native": the cache mode always (absent: writeback), the AIO engine when set. */
export function diskIoLine(d: DiskIo): string {
  return [`cache ${d.cache ?? 'writeback'}`, d.aio && `aio ${d.aio}`].filter(Boolean).join(', ');
}

/** A new disk's {cache, aio} (create, Add disk): what differs from the API's defaults. */
export function diskIoBody(cache: DiskCache, aio: DiskAio): DiskIo {
  return {
    ...(cache !== DEFAULT_HARDWARE.diskCache ? { cache } : {}),
    ...(aio !== DEFAULT_HARDWARE.diskAio ? { aio } : {}),
  };
}

/** PATCH /vms/{id}/disks/{disk}: the cache mode and AIO engine chosen that differ from the disk's. */
export function diskIoChange(d: DiskIo, cache: DiskCache, aio: DiskAio): DiskIo {
  return {
    ...(cache !== (d.cache ?? DEFAULT_HARDWARE.diskCache) ? { cache } : {}),
    ...(aio !== (d.aio ?? DEFAULT_HARDWARE.diskAio) ? { aio } : {}),
  };
}

/** Native AIO works on O_DIRECT files only: a warning beside the choice ('' when it fits); the API refuses it. */
export function aioHint(cache: DiskCache, aio: DiskAio): string {
  return aio === 'native' && cache !== 'none' && cache !== 'directsync'
    ? 'aio native needs cache none or directsync'
    : '';
}

/** The Limits… dialog: totals as typed ('' = no limit); MB/s is 10^6 bytes per second. */
export interface LimitsForm {
  iops: string;
  mbps: string;
}

const MB = 1_000_000;

/** The dialog filled from a disk's limits (totals; reads and writes apart are not shown there). */
export function limitsForm(l: DiskLimits | undefined): LimitsForm {
  return { iops: l?.iops ? String(l.iops) : '', mbps: l?.bps ? String(l.bps / MB) : '' };
}

/** What is wrong with the limits as typed ('' when they will do). */
export function limitsProblem(f: LimitsForm): string {
  if (f.iops.trim() && !/^\d+$/.test(f.iops.trim())) return 'IOPS: a whole number (empty: no limit).';
  const mbps = Number(f.mbps);
  if (f.mbps.trim() && (!Number.isFinite(mbps) || mbps < 0)) return 'MB/s: a number (empty: no limit).';
  return '';
}

/**
 * PATCH /vms/{id}/disks/{disk}: {limits} with the totals typed (bps in bytes/s); empty fields (or 0) are
 * left out, so {limits: {}} takes every limit off.
 */
export function limitsBody(f: LimitsForm): { limits: DiskLimits } {
  const limits: DiskLimits = {};
  const iops = Number(f.iops.trim());
  if (f.iops.trim() && iops > 0) limits.iops = iops;
  const bps = Math.round(Number(f.mbps.trim()) * MB);
  if (f.mbps.trim() && bps > 0) limits.bps = bps;
  return { limits };
}

const mbps = (bps: number) => `${Number((bps / MB).toFixed(2))} MB/s`;

/** "100 IOPS, 10 MB/s", "read 50 IOPS, write 20 IOPS", or '' without limits. */
export function limitsLine(l: DiskLimits | undefined): string {
  if (!l) return '';
  const parts: string[] = [];
  if (l.iops) parts.push(`${l.iops} IOPS`);
  if (l.iopsRead) parts.push(`read ${l.iopsRead} IOPS`);
  if (l.iopsWrite) parts.push(`write ${l.iopsWrite} IOPS`);
  if (l.bps) parts.push(mbps(l.bps));
  if (l.bpsRead) parts.push(`read ${mbps(l.bpsRead)}`);
  if (l.bpsWrite) parts.push(`write ${mbps(l.bpsWrite)}`);
  return parts.join(', ');
}

/** The devices of a VM the firmware can boot from, by id: its disks, the boot CD-ROM, the media drive, NICs. */
export function bootDevices(vm: Pick<Vm, 'disks' | 'networks' | 'boot' | 'media'>): string[] {
  const out = vm.disks.map((d) => d.id);
  if (vm.boot && 'cdrom' in vm.boot) out.push('cd0');
  if (vm.media) out.push('cd1');
  for (const n of vm.networks) out.push(n.id);
  return out;
}

/** One row of the boot order list: a device and whether the firmware tries it. */
export interface BootEntry {
  id: string;
  on: boolean;
}

/** The list to edit: the order set first (checked), then the VM's other devices (unchecked). */
export function bootEntries(order: string[] | undefined, devices: string[]): BootEntry[] {
  const set = order ?? [];
  return [
    ...set.map((id) => ({ id, on: true })),
    ...devices.filter((id) => !set.includes(id)).map((id) => ({ id, on: false })),
  ];
}

/** The entry at `i` moved up (-1) or down (+1); the list as it was at either end. */
export function moveEntry(list: BootEntry[], i: number, by: -1 | 1): BootEntry[] {
  const j = i + by;
  if (i < 0 || i >= list.length || j < 0 || j >= list.length) return list;
  const out = [...list];
  [out[i], out[j]] = [out[j]!, out[i]!];
  return out;
}

/** The checked devices in order; null when none is (boot decides). */
export function bootOrderOf(list: BootEntry[]): string[] | null {
  const ids = list.filter((e) => e.on).map((e) => e.id);
  return ids.length ? ids : null;
}

/** "cd1, disk0, net0" names for the Hardware card. */
export function bootOrderLine(order: string[] | undefined): string {
  return order?.length ? order.join(' → ') : '';
}

/** {bootOrder} when `next` differs from the VM's order (null clears it), else nothing. */
export function bootOrderBody(
  cur: string[] | undefined,
  next: string[] | null,
): { bootOrder?: string[] | null } {
  const a = cur?.length ? cur : null;
  if (a === null && next === null) return {};
  if (a && next && a.length === next.length && a.every((x, i) => x === next[i])) return {};
  return { bootOrder: next };
}
