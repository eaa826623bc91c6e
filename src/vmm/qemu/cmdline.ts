import { join } from 'node:path';
import { NfError } from '../../errors';
import type { Accelerator, VmRunSpec } from '../types';

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
  vnc: string;
  qga: string;
}

export function runPaths(runDir: string): RunPaths {
  return {
    runDir,
    qmp: join(runDir, 'qmp.sock'),
    serial: join(runDir, 'serial.sock'),
    consoleLog: join(runDir, 'console.log'),
    pidfile: join(runDir, 'qemu.pid'),
    vnc: join(runDir, 'vnc.sock'),
    qga: join(runDir, 'qga.sock'),
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
  host: { accel: Accelerator; binary: string },
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

  // Machine and CPU.
  add('-machine', { type: spec.machine, accel: host.accel });
  add('-cpu', host.accel === 'kvm' ? 'host' : 'max');
  add('-smp', { cpus: spec.vcpus });
  add('-m', { size: `${spec.memoryMiB}M` });

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
  add('-device', { json: { driver: 'VGA', id: 'video0' } });
  add('-vnc', `unix:${paths.vnc}`);

  // Disks: the storage driver's nodes, or one file + format node; the device refers to the top node.
  spec.disks.forEach((disk, index) => {
    if (disk.blockdev) for (const node of disk.blockdev) add('-blockdev', { json: node });
    else {
      add('-blockdev', {
        json: {
          driver: 'file',
          filename: disk.path,
          'node-name': `${disk.id}-file`,
          'read-only': disk.readOnly ?? false,
          'auto-read-only': true,
          discard: 'unmap',
        },
      });
      add('-blockdev', {
        json: {
          driver: disk.format,
          file: `${disk.id}-file`,
          'node-name': disk.id,
          'read-only': disk.readOnly ?? false,
          discard: 'unmap',
        },
      });
    }
    const dev: Record<string, unknown> = { driver: 'virtio-blk-pci', drive: disk.id, id: `${disk.id}-dev` };
    if (spec.boot.kind === 'disk' && spec.boot.index === index) dev.bootindex = 1;
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
    if (spec.boot.kind === 'cdrom') dev.bootindex = 0;
    add('-device', { json: dev });
  }

  for (const nic of spec.nics) {
    // nat: QEMU listens, the node connects and hands the connection to passt (src/network/nat.ts)
    add('-netdev', {
      json: {
        type: 'stream',
        id: nic.id,
        server: true,
        addr: { type: 'unix', path: nicSocketPath(paths, nic.id) },
      },
    });
    add('-device', { json: { driver: 'virtio-net-pci', netdev: nic.id, mac: nic.mac, id: `${nic.id}-dev` } });
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
