import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { NfError } from '../../errors';
import { withDiskIo } from '../../storage/blockdev';
import {
  type Accelerator,
  type DiskRun,
  MEMORY_SLOTS,
  type MediaRun,
  type NicModel,
  type NicRun,
  type VideoModel,
  type VmRunSpec,
} from '../types';
import { cpuArg, OVMF_VARS_BYTES, ovmfFiles } from './firmware';

/**
 * The QEMU command line as data: a list of options, each a flag and an optional value (a string, a
 * key=value map, or a JSON object for -blockdev/-device). Rendering to argv happens in one place, so
 * quoting rules live here and the golden tests pin the exact result.
 */

export type OptionValue =
  | string
  | Record<string, string | number | boolean>
  | { json: Record<string, unknown> };
export interface QemuOption {
  flag: string;
  value?: OptionValue;
}

export interface QemuConfig {
  binary: string;
  options: QemuOption[];
}

export interface RunPaths {
  runDir: string;
  qmp: string;
  serial: string;
  consoleLog: string;
  pidfile: string;
  /** QEMU's stderr: its last lines say why it stopped. */
  qemuLog: string;
  vnc: string;
  qga: string;
  /** The cloud-init seed ISO, made at every start. */
  seedIso: string;
  /** swtpm's control socket, its state directory (kept while the VM exists) and its pidfile and log. */
  tpmSocket: string;
  tpmState: string;
  tpmPidfile: string;
  tpmLog: string;
}

export function runPaths(runDir: string): RunPaths {
  return {
    runDir,
    qmp: join(runDir, 'qmp.sock'),
    serial: join(runDir, 'serial.sock'),
    consoleLog: join(runDir, 'console.log'),
    pidfile: join(runDir, 'qemu.pid'),
    qemuLog: join(runDir, 'qemu.log'),
    vnc: join(runDir, 'vnc.sock'),
    qga: join(runDir, 'qga.sock'),
    seedIso: join(runDir, 'cidata.iso'),
    tpmSocket: join(runDir, 'swtpm.sock'),
    tpmState: join(runDir, 'tpm'),
    tpmPidfile: join(runDir, 'swtpm.pid'),
    tpmLog: join(runDir, 'swtpm.log'),
  };
}

/** The unix socket QEMU listens on for a NIC's network backend (nat: passt is handed the connection). */
export function nicSocketPath(paths: RunPaths, nicId: string): string {
  return join(paths.runDir, `net-${nicId}.sock`);
}

/** QEMU's key=value lists escape a comma by doubling it. */
function escapeComma(v: string): string {
  return v.replaceAll(',', ',,');
}

function renderValue(value: OptionValue): string {
  if (typeof value === 'string') return value;
  if ('json' in value && typeof value.json === 'object') return JSON.stringify(value.json);
  return Object.entries(value as Record<string, string | number | boolean>)
    .map(([k, v]) => (k === '' ? escapeComma(String(v)) : `${k}=${escapeComma(String(v))}`))
    .join(',');
}

export function renderArgv(config: QemuConfig): string[] {
  const argv = [config.binary];
  for (const opt of config.options) {
    argv.push(opt.flag);
    if (opt.value !== undefined) argv.push(renderValue(opt.value));
  }
  return argv;
}

export function buildQemuConfig(
  spec: VmRunSpec,
  paths: RunPaths,
  host: { accel: Accelerator; binary: string; ovmfDir?: string },
): QemuConfig {
  const o: QemuOption[] = [];
  const add = (flag: string, value?: OptionValue) => o.push(value === undefined ? { flag } : { flag, value });

  // Identity and process behaviour.
  add('-name', { guest: spec.name, 'debug-threads': 'on' });
  add('-uuid', spec.id);
  add('-nodefaults');
  add('-no-user-config');
  add('-S'); // start paused: the driver connects QMP first, then lets the CPU run
  add('-pidfile', paths.pidfile);
  add('-msg', { timestamp: 'on' });
  // seccomp: a guest that takes QEMU over cannot run a program, raise its privileges, change scheduling
  // or resource limits, nor use obsolete system calls (libvirt's default set)
  add('-sandbox', {
    '': 'on',
    obsolete: 'deny',
    elevateprivileges: 'deny',
    spawn: 'deny',
    resourcecontrol: 'deny',
  });

  // Machine, firmware and CPU.
  const machine: Record<string, string> = { type: spec.machine, accel: host.accel };
  if (spec.firmware) {
    // pflash0: OVMF's code, read-only, shared by every VM; pflash1: this VM's variable store
    machine.pflash0 = 'fw-code';
    machine.pflash1 = 'efivars';
    if (spec.firmware.secureBoot) machine.smm = 'on'; // the Secure Boot build keeps its variables in SMM
  }
  add('-machine', machine);
  if (spec.firmware) {
    const fw = ovmfFiles(spec.firmware.secureBoot, host.ovmfDir);
    add('-blockdev', {
      json: { driver: 'file', filename: fw.code, 'node-name': 'fw-code-file', 'read-only': true },
    });
    add('-blockdev', {
      json: { driver: 'raw', file: 'fw-code-file', 'node-name': 'fw-code', 'read-only': true },
    });
    const vars = spec.firmware.vars;
    if (vars.blockdev) for (const node of vars.blockdev) add('-blockdev', { json: node });
    else
      add('-blockdev', {
        json: { driver: 'file', filename: vars.volume, 'node-name': 'efivars-vol', 'read-only': false },
      });
    // the flash must be exactly the template's size, whatever the pool rounds a volume up to
    add('-blockdev', {
      json: { driver: 'raw', file: 'efivars-vol', 'node-name': 'efivars', size: OVMF_VARS_BYTES },
    });
    if (spec.firmware.secureBoot) add('-global', { driver: 'cfi.pflash01', property: 'secure', value: 'on' });
  }
  // an explicit boot order is the whole list: the firmware tries nothing else
  if (spec.bootOrder?.length) add('-boot', { strict: 'on' });
  add('-cpu', cpuArg(spec.cpu, host.accel));
  const smp: Record<string, number> = { cpus: spec.vcpus };
  if (spec.maxVcpus && spec.maxVcpus > spec.vcpus) smp.maxcpus = spec.maxVcpus;
  if (spec.cpu?.sockets) smp.sockets = spec.cpu.sockets;
  if (spec.cpu?.cores) smp.cores = spec.cpu.cores;
  if (spec.cpu?.threads) smp.threads = spec.cpu.threads;
  add('-smp', smp);
  // Memory: the base, and room for DIMMs up to the maximum (ACPI memory hot-plug; the guest onlines them)
  const dimms = spec.memoryDimmsMiB ?? [];
  const baseMiB = spec.memoryMiB - dimms.reduce((a, b) => a + b, 0);
  const mem: Record<string, string | number> = { size: `${baseMiB}M` };
  if (spec.maxMemoryMiB && spec.maxMemoryMiB > spec.memoryMiB)
    Object.assign(mem, { slots: MEMORY_SLOTS, maxmem: `${spec.maxMemoryMiB}M` });
  add('-m', mem);
  dimms.forEach((mib, i) => {
    add('-object', { json: { 'qom-type': 'memory-backend-ram', id: `dimm${i}-mem`, size: mib * 1024 ** 2 } });
    add('-device', { json: { driver: 'pc-dimm', id: `dimm${i}`, memdev: `dimm${i}-mem` } });
  });

  // Management channels: all on unix sockets inside the run dir, never on the network.
  add('-chardev', { '': 'socket', id: 'qmp', path: paths.qmp, server: 'on', wait: 'off' });
  add('-mon', { chardev: 'qmp', mode: 'control' });
  add('-chardev', {
    '': 'socket',
    id: 'serial0',
    path: paths.serial,
    server: 'on',
    wait: 'off',
    logfile: paths.consoleLog,
    logappend: 'on',
  });
  add('-serial', 'chardev:serial0');
  add('-display', 'none');
  const video = VIDEO_DEVICES[spec.video ?? 'std'];
  if (video) add('-device', { json: { driver: video, id: 'video0' } });
  add('-vnc', `unix:${paths.vnc}`);
  if (spec.tablet) {
    add('-device', { json: { driver: 'qemu-xhci', id: 'xhci0' } });
    add('-device', { json: { driver: 'usb-tablet', id: 'tablet0', bus: 'xhci0.0' } });
  }
  if (spec.tpm) {
    // swtpm (started by the driver before QEMU) emulates the chip; QEMU speaks to it on this socket
    add('-chardev', { '': 'socket', id: 'tpm0-chr', path: paths.tpmSocket });
    add('-tpmdev', { '': 'emulator', id: 'tpm0', chardev: 'tpm0-chr' });
    add('-device', { json: { driver: 'tpm-crb', tpmdev: 'tpm0', id: 'tpm0-dev' } });
  }

  // Hot-plug slots: empty PCIe root ports (q35 cannot hot-plug onto its root bus).
  for (let i = 0; spec.machine === 'q35' && i < (spec.hotplugSlots ?? 0); i++)
    add('-device', { json: { driver: 'pcie-root-port', id: `hp${i}`, chassis: i + 1, slot: i + 1 } });

  // Controllers the disks need: one virtio-scsi, an AHCI on the pc machine (q35 has one built in).
  const buses = diskBuses(spec);
  if (spec.disks.some((d) => d.bus === 'virtio-scsi'))
    add('-device', { json: { driver: 'virtio-scsi-pci', id: 'scsi0' } });
  if (buses.ahci === 'ahci0' && spec.disks.some((d) => d.bus === 'sata'))
    add('-device', { json: { driver: 'ich9-ahci', id: 'ahci0' } });

  // Disks: the storage driver's nodes, or one file + format node; the device refers to the top node.
  spec.disks.forEach((disk, index) => {
    const nodes =
      disk.blockdev ??
      withDiskIo(
        [
          {
            driver: 'file',
            filename: disk.path,
            'node-name': `${disk.id}-file`,
            'read-only': disk.readOnly ?? false,
            'auto-read-only': true,
            discard: 'unmap',
          },
          {
            driver: disk.format,
            file: `${disk.id}-file`,
            'node-name': disk.id,
            'read-only': disk.readOnly ?? false,
            discard: 'unmap',
          },
        ],
        disk,
      );
    for (const node of nodes) add('-blockdev', { json: node });
    const dev = diskDevice(disk, buses);
    if (disk.slot && hasSlot(spec, disk.slot)) dev.bus = disk.slot;
    if (spec.bootOrder) setBootIndex(dev, spec, disk.id);
    else if (spec.boot.kind === 'disk' && spec.boot.index === index) dev.bootindex = 1;
    add('-device', { json: dev });
  });

  if (spec.cdrom?.blockdev) {
    // an ISO in a shared pool: the driver's read-only nodes, the last named cd0
    for (const node of spec.cdrom.blockdev) add('-blockdev', { json: node });
  } else if (spec.cdrom) {
    add('-blockdev', {
      json: { driver: 'file', filename: spec.cdrom.path, 'node-name': 'cd0-file', 'read-only': true },
    });
    add('-blockdev', { json: { driver: 'raw', file: 'cd0-file', 'node-name': 'cd0', 'read-only': true } });
  }
  if (spec.cdrom) {
    const dev: Record<string, unknown> = { driver: 'ide-cd', drive: 'cd0', id: 'cd0-dev' };
    if (spec.machine === 'q35') dev.bus = 'ide.0';
    else if (buses.ideUsed > 0) dev.bus = `ide.${Math.floor(buses.ideUsed / 2)}`;
    if (spec.bootOrder) setBootIndex(dev, spec, 'cd0');
    else if (spec.boot.kind === 'cdrom') dev.bootindex = 0;
    add('-device', { json: dev });
  }

  if (spec.media) {
    // the removable media drive; its medium's nodes are named so a change can tell them apart
    const iso = spec.media.iso;
    if (iso) for (const node of mediaNodes(iso, 'cd1')) add('-blockdev', { json: node });
    const dev: Record<string, unknown> = { driver: 'ide-cd', id: 'cd1-dev' };
    if (iso) dev.drive = 'cd1';
    setBootIndex(dev, spec, 'cd1');
    if (spec.machine === 'q35') dev.bus = `ide.${q35MediaPort(spec)}`;
    add('-device', { json: dev });
  }

  if (spec.cloudInit) {
    // the NoCloud seed as a second CD-ROM: q35's last AHCI port (kept free), the next IDE unit on pc
    add('-blockdev', {
      json: { driver: 'file', filename: paths.seedIso, 'node-name': 'ci0-file', 'read-only': true },
    });
    add('-blockdev', { json: { driver: 'raw', file: 'ci0-file', 'node-name': 'ci0', 'read-only': true } });
    const dev: Record<string, unknown> = { driver: 'ide-cd', drive: 'ci0', id: 'ci0-dev' };
    if (spec.machine === 'q35') dev.bus = `ide.${Q35_SEED_PORT}`;
    add('-device', { json: dev });
  }

  for (const nic of spec.nics) {
    // nat: QEMU listens, the node connects and hands the connection to passt (src/network/nat.ts);
    // ovn: the tap the node put on the integration bridge (src/network/ovn/host.ts)
    add('-netdev', { json: nic.type === 'ovn' ? tapBackend(spec.id, nic.id) : nicBackend(paths, nic.id) });
    const nicDev = nicDevice(hasSlot(spec, nic.slot) ? nic : { ...nic, slot: undefined });
    setBootIndex(nicDev, spec, nic.id); // PXE (iPXE's option ROM)
    add('-device', { json: nicDev });
  }

  if (spec.agent) {
    // The guest agent channel: QEMU's standard port name, so agent-rs and stock qemu-ga both find it.
    add('-device', { json: { driver: 'virtio-serial-pci', id: 'vserial0' } });
    add('-chardev', { '': 'socket', id: 'qga0', path: paths.qga, server: 'on', wait: 'off' });
    add('-device', {
      json: {
        driver: 'virtserialport',
        bus: 'vserial0.0',
        chardev: 'qga0',
        name: 'org.qemu.guest_agent.0',
        id: 'qga0-port',
      },
    });
  }

  if (spec.boot.kind === 'kernel') {
    // QEMU splits -initrd on commas for multiboot kernels: a path with one is refused (the API does too)
    for (const p of [spec.boot.kernel, spec.boot.initrd ?? ''])
      if (p.includes(','))
        throw new NfError(
          'validation_failed',
          `boot path ${p} contains a comma, which QEMU reads as a separator`,
        );
    add('-kernel', spec.boot.kernel);
    if (spec.boot.initrd) add('-initrd', spec.boot.initrd);
    if (spec.boot.cmdline) add('-append', spec.boot.cmdline);
  }

  return { binary: host.binary, options: o };
}

/** The hot-plug slot exists in this VM (a machine changed to pc, or fewer slots: the device goes on its bus). */
function hasSlot(spec: VmRunSpec, slot: string | undefined): boolean {
  const n = Number(slot?.slice(2));
  return !!slot && spec.machine === 'q35' && Number.isInteger(n) && n < (spec.hotplugSlots ?? 0);
}

/** A device's place in the VM's boot order, when it has one. */
function setBootIndex(dev: Record<string, unknown>, spec: VmRunSpec, id: string): void {
  const at = spec.bootOrder?.indexOf(id) ?? -1;
  if (at >= 0) dev.bootindex = at;
}

/** q35's AHCI port the cloud-init seed takes (the last; SATA disks take 1 to 4 then). */
export const Q35_SEED_PORT = 5;

/** q35's AHCI port of the media drive: the one before the seed's, or the last. */
export function q35MediaPort(spec: Pick<VmRunSpec, 'cloudInit'>): number {
  return spec.cloudInit ? Q35_SEED_PORT - 1 : Q35_SEED_PORT;
}

/**
 * The -blockdev nodes of an ISO for a CD-ROM drive: a shared pool's (named by the node when it resolved
 * them), or a file and its raw node, the last (the medium) named `name`.
 */
export function mediaNodes(iso: MediaRun, name: string): Record<string, unknown>[] {
  if (iso.blockdev) return iso.blockdev;
  return [
    { driver: 'file', filename: iso.path, 'node-name': `${name}-file`, 'read-only': true },
    { driver: 'raw', file: `${name}-file`, 'node-name': name, 'read-only': true },
  ];
}

const NIC_DEVICES: Record<NicModel, string> = {
  virtio: 'virtio-net-pci',
  e1000e: 'e1000e',
  rtl8139: 'rtl8139',
  vmxnet3: 'vmxnet3',
};

const VIDEO_DEVICES: Record<VideoModel, string | undefined> = {
  std: 'VGA',
  virtio: 'virtio-vga',
  qxl: 'qxl-vga',
  cirrus: 'cirrus-vga',
  none: undefined,
};

interface DiskBuses {
  /** The AHCI controller SATA disks hang on: q35's own (ide.N) or one we add on pc (ahci0.N). */
  ahci: 'ide' | 'ahci0';
  /** Ports in use: q35's port 0 is the CD-ROM's, so SATA disks start at 1. */
  sataNext: number;
  /** pc: IDE units taken by IDE disks (two per bus); the CD-ROM goes after them. */
  ideUsed: number;
}

function diskBuses(spec: VmRunSpec): DiskBuses {
  return {
    ahci: spec.machine === 'q35' ? 'ide' : 'ahci0',
    sataNext: spec.machine === 'q35' ? 1 : 0,
    ideUsed: 0,
  };
}

/** A NIC's backend: a unix socket QEMU listens on, which the node hands to passt. */
export function nicBackend(paths: RunPaths, nicId: string): Record<string, unknown> {
  return {
    type: 'stream',
    id: nicId,
    server: true,
    addr: { type: 'unix', path: nicSocketPath(paths, nicId) },
  };
}

/** A NIC's tap device on the host (15 characters at most): named after the VM and the NIC. */
export function tapName(vmId: string, nicId: string): string {
  return `nf${createHash('sha256').update(`${vmId}/${nicId}`).digest('hex').slice(0, 12)}`;
}

/** An OVN NIC's backend: the existing tap (made and plugged by the node), no scripts. */
export function tapBackend(vmId: string, nicId: string): Record<string, unknown> {
  return { type: 'tap', id: nicId, ifname: tapName(vmId, nicId), script: 'no', downscript: 'no' };
}

/** A NIC's -device (or device_add) arguments. */
export function nicDevice(nic: NicRun): Record<string, unknown> {
  const dev: Record<string, unknown> = {
    driver: NIC_DEVICES[nic.model ?? 'virtio'],
    netdev: nic.id,
    mac: nic.mac,
    id: `${nic.id}-dev`,
  };
  if (nic.slot) dev.bus = nic.slot;
  // OVS's userspace datapath does not complete the checksums a virtio NIC leaves to the host
  if (nic.type === 'ovn' && (nic.model ?? 'virtio') === 'virtio') {
    dev.csum = false;
    dev.guest_csum = false;
  }
  return dev;
}

/** The device a disk hot-plugged into a running VM gets: virtio-blk, or scsi-hd on its controller. */
export function hotplugDiskDevice(disk: DiskRun): Record<string, unknown> {
  const dev = diskDevice(disk, { ahci: 'ide', sataNext: 0, ideUsed: 0 });
  if (disk.slot && dev.driver === 'virtio-blk-pci') dev.bus = disk.slot;
  return dev;
}

/** The -device of a disk on its bus; SATA ports and IDE units are given in disk order. */
function diskDevice(disk: DiskRun, buses: DiskBuses): Record<string, unknown> {
  const dev = busDevice(disk, buses);
  // writethrough and directsync: the guest sees a disk without a volatile write cache
  if (disk.cache === 'writethrough' || disk.cache === 'directsync') dev['write-cache'] = 'off';
  return dev;
}

function busDevice(disk: DiskRun, buses: DiskBuses): Record<string, unknown> {
  const id = `${disk.id}-dev`;
  switch (disk.bus ?? 'virtio-blk') {
    case 'virtio-blk':
      return { driver: 'virtio-blk-pci', drive: disk.id, id };
    case 'virtio-scsi':
      return { driver: 'scsi-hd', bus: 'scsi0.0', drive: disk.id, id };
    case 'sata':
      return { driver: 'ide-hd', bus: `${buses.ahci}.${buses.sataNext++}`, drive: disk.id, id };
    case 'ide': {
      const unit = buses.ideUsed++;
      return { driver: 'ide-hd', bus: `ide.${Math.floor(unit / 2)}`, unit: unit % 2, drive: disk.id, id };
    }
  }
}
