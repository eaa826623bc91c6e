import type { CreateVmBody, DiskBus, Firmware, MachineType, NicModel, VideoModel, Vm, VmCpu } from './api';

/** The choices of the create dialog, with the API's labels; the first of each list is the API's default. */
export const MACHINES: [MachineType, string][] = [
  ['q35', 'q35 (PCIe, default)'],
  ['pc', 'pc (i440FX, legacy)'],
];
export const FIRMWARES: [Firmware, string][] = [
  ['bios', 'BIOS (SeaBIOS)'],
  ['uefi', 'UEFI (OVMF)'],
];
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
  nicModel: NicModel;
}

export const DEFAULT_HARDWARE: HardwareForm = {
  machine: 'q35',
  firmware: 'bios',
  secureBoot: false,
  tpm: false,
  cpuModel: 'host',
  sockets: '',
  video: 'std',
  tablet: true,
  diskBus: 'virtio-blk',
  nicModel: 'virtio',
};

/**
 * The fields of POST /vms for `h` that differ from the API's defaults (Secure Boot only where it is
 * available; the bus and model go on each disk and NIC by the caller). Sockets that do not divide the
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
  if (h.cpuModel !== DEFAULT_HARDWARE.cpuModel) cpu.model = h.cpuModel;
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
