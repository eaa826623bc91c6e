import { NfError } from '../errors';
import type { CpuRun, DiskAio, DiskBus, DiskCache, DiskRun } from '../vmm/types';
import type { DiskRecord, VmRecord } from './records';

/**
 * The rules a VM's virtual hardware must follow, checked before anything is written (create now, edits
 * later): each refusal names the field and what would work instead.
 */
export interface HardwareChoice {
  machine: 'q35' | 'pc';
  vcpus: number;
  /** The most vCPUs hot-add may reach; the CPU topology describes this many. */
  maxVcpus?: number;
  memoryMiB: number;
  /** The most memory hot-add may reach (MiB). */
  maxMemoryMiB?: number;
  firmware: 'bios' | 'uefi';
  secureBoot: boolean;
  tpm: boolean;
  cpu?: CpuRun;
  diskBuses: (DiskBus | undefined)[];
  cdrom: boolean;
  /** A cloud-init seed CD-ROM: it takes q35's last SATA port, or an IDE unit on pc. */
  cloudInit?: boolean;
  /** A media drive (a removable CD-ROM): one more port or unit. */
  media?: boolean;
  /** Devices to boot from, in order; each must be one of the VM's. */
  bootOrder?: string[];
  /** The VM's device ids (disks and NICs), for bootOrder. */
  deviceIds?: string[];
}

/** Memory hot-add goes in whole blocks of this many MiB: a Linux guest onlines memory 128 MiB at a time. */
export const MEMORY_BLOCK_MIB = 128;

/** q35's AHCI has six ports; the CD-ROM takes port 0. */
const Q35_SATA_PORTS = 5;
/** pc: an AHCI controller of our own, six ports. */
const PC_SATA_PORTS = 6;
/** pc: two IDE buses of two units, shared with the CD-ROM. */
const PC_IDE_UNITS = 4;

export function checkHardware(h: HardwareChoice): void {
  const bad = (msg: string) => new NfError('validation_failed', msg);
  if (h.secureBoot && h.firmware !== 'uefi')
    throw bad('secureBoot needs firmware "uefi" (BIOS has no Secure Boot)');
  if (h.secureBoot && h.machine !== 'q35')
    throw bad('secureBoot needs machine "q35" (its firmware keeps the keys in SMM, which pc lacks)');
  if (h.bootOrder) {
    const known = new Set([...(h.deviceIds ?? []), ...(h.cdrom ? ['cd0'] : []), ...(h.media ? ['cd1'] : [])]);
    const unknown = h.bootOrder.filter((d) => !known.has(d));
    if (unknown.length > 0)
      throw bad(
        `bootOrder names ${unknown.join(', ')}, which the VM does not have (it has ${[...known].join(', ') || 'no devices'})`,
      );
    if (new Set(h.bootOrder).size !== h.bootOrder.length) throw bad('bootOrder names a device twice');
  }
  if (h.maxVcpus !== undefined && h.maxVcpus < h.vcpus)
    throw bad(`maxVcpus (${h.maxVcpus}) must be at least vcpus (${h.vcpus})`);
  if (h.cpu) cpuTopology(h.maxVcpus ?? h.vcpus, h.cpu);
  if (h.maxMemoryMiB !== undefined && h.maxMemoryMiB < h.memoryMiB)
    throw bad(
      `memoryMiB (${h.memoryMiB}) is above maxMemoryMiB (${h.maxMemoryMiB}); raise the maximum (a cold change) or ask for less`,
    );
  const sata = h.diskBuses.filter((b) => b === 'sata').length;
  const ide = h.diskBuses.filter((b) => b === 'ide').length;
  if (h.machine === 'q35' && ide > 0)
    throw bad('disk bus "ide" needs machine "pc"; q35 has no IDE controller: use "sata" (AHCI) instead');
  const extraCds = (h.cloudInit ? 1 : 0) + (h.media ? 1 : 0);
  const sataPorts = h.machine === 'q35' ? Q35_SATA_PORTS - extraCds : PC_SATA_PORTS;
  if (sata > sataPorts)
    throw bad(
      `${sata} SATA disks: machine ${h.machine} has ${sataPorts} SATA ports for disks${extraCds ? ' (the media drive and the cloud-init seed take one each)' : ''}`,
    );
  const cds = (h.cdrom ? 1 : 0) + (h.machine === 'pc' ? extraCds : 0);
  if (ide + cds > PC_IDE_UNITS)
    throw bad(
      `${ide} IDE disks and ${cds} CD-ROM(s): machine pc has ${PC_IDE_UNITS} IDE units; use "sata" or "virtio-blk" for the rest`,
    );
}

/**
 * A disk's cache mode and AIO engine: native AIO needs O_DIRECT (cache none or directsync), and only a
 * file has an AIO engine (an RBD disk does its I/O through librbd).
 */
export function checkDiskIo(disk: string, io: { cache?: DiskCache; aio?: DiskAio }, shared: boolean): void {
  if (io.aio === 'native' && io.cache !== 'none' && io.cache !== 'directsync')
    throw new NfError(
      'validation_failed',
      `${disk}: aio "native" needs cache "none" or "directsync" (Linux native AIO works on O_DIRECT files); use aio "io_uring" or "threads" with cache ${io.cache ?? 'writeback'}`,
    );
  if (io.aio && shared)
    throw new NfError(
      'validation_failed',
      `${disk}: aio applies to disks in file pools; an RBD disk does its I/O through librbd (leave aio out)`,
    );
}

/** What a node needs of a disk record to open it (the node resolves the pool volume). */
export function diskRun(d: DiskRecord): DiskRun {
  return {
    id: d.id,
    path: '',
    pool: d.pool,
    volume: d.volume,
    format: 'qcow2',
    ...(d.bus ? { bus: d.bus } : {}),
    ...(d.slot ? { slot: d.slot } : {}),
    ...(d.limits ? { limits: d.limits } : {}),
    ...(d.cache ? { cache: d.cache } : {}),
    ...(d.aio ? { aio: d.aio } : {}),
  };
}

/** The hardware of a VM record as checkHardware takes it. */
export function hardwareOf(vm: VmRecord): HardwareChoice {
  return {
    machine: vm.machine,
    vcpus: vm.vcpus,
    maxVcpus: vm.maxVcpus,
    memoryMiB: vm.memoryMiB,
    maxMemoryMiB: vm.maxMemoryMiB,
    firmware: vm.firmware ?? 'bios',
    secureBoot: vm.secureBoot ?? false,
    tpm: vm.tpm ?? false,
    cpu: vm.cpu,
    diskBuses: vm.disks.map((d) => d.bus),
    cdrom: 'cdrom' in vm.boot,
    cloudInit: !!vm.cloudInit,
    media: !!vm.media,
    bootOrder: vm.bootOrder,
    deviceIds: [...vm.disks.map((d) => d.id), ...vm.networks.map((n) => n.id)],
  };
}

/**
 * sockets × cores × threads must be the vCPU count; a missing part is 1, except cores, which takes what
 * is left.
 */
export function cpuTopology(vcpus: number, cpu: CpuRun): { sockets: number; cores: number; threads: number } {
  const sockets = cpu.sockets ?? 1;
  const threads = cpu.threads ?? 1;
  const cores = cpu.cores ?? vcpus / (sockets * threads);
  if (!Number.isInteger(cores) || sockets * cores * threads !== vcpus)
    throw new NfError(
      'validation_failed',
      `cpu topology: ${sockets} socket(s) × ${cpu.cores ?? '?'} core(s) × ${threads} thread(s) does not make the VM's ${vcpus} vCPUs (its maximum, with hot-add)`,
    );
  return { sockets, cores, threads };
}

/** The hardware part of a VM's API view: defaults spelled out for records written before the fields. */
export function hardwareView(vm: VmRecord): {
  firmware: 'bios' | 'uefi';
  secureBoot: boolean;
  tpm: boolean;
  video: NonNullable<VmRecord['video']>;
  tablet: boolean;
  cpu: CpuRun & { sockets: number; cores: number; threads: number };
} {
  const cpu = vm.cpu ?? { model: 'host' };
  return {
    firmware: vm.firmware ?? 'bios',
    secureBoot: vm.secureBoot ?? false,
    tpm: vm.tpm ?? false,
    video: vm.video ?? 'std',
    tablet: vm.tablet ?? false,
    cpu: { ...cpu, ...cpuTopology(vm.maxVcpus ?? vm.vcpus, cpu) },
  };
}
