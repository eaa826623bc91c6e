import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { VmRunSpec } from '../types';
import { buildQemuConfig, renderArgv, runPaths } from './cmdline';

const paths = runPaths('/run/nf/vms/11111111-2222-3333-4444-555555555555');
const host = { accel: 'tcg' as const, binary: 'qemu-system-x86_64' };

const base: VmRunSpec = {
  id: '11111111-2222-3333-4444-555555555555',
  name: 'web,1',
  vcpus: 2,
  memoryMiB: 512,
  machine: 'q35',
  disks: [
    { id: 'disk0', path: '/pool/disks/vm-1-disk0.qcow2', format: 'qcow2' },
    { id: 'disk1', path: '/pool/disks/vm-1-disk1.qcow2', format: 'qcow2' },
  ],
  nics: [{ id: 'net0', network: 'default', type: 'nat', mac: '52:54:00:aa:bb:cc' }],
  boot: {
    kind: 'kernel',
    kernel: '/boot/vmlinux',
    initrd: '/boot/initrd.img',
    cmdline: 'console=ttyS0 quiet',
  },
  agent: true,
};

const cases: Record<string, VmRunSpec> = {
  'kernel-two-disks': base,
  'cdrom-pc': {
    ...base,
    machine: 'pc',
    disks: [base.disks[0]!],
    cdrom: { path: '/pool/images/x.iso' },
    boot: { kind: 'cdrom' },
  },
  'disk-boot-kvm': { ...base, nics: [], boot: { kind: 'disk', index: 1 }, agent: false },
  'cdrom-rbd': {
    ...base,
    disks: [],
    cdrom: {
      path: '',
      pool: 'ceph',
      file: 'img-1',
      blockdev: [
        {
          driver: 'rbd',
          pool: 'rbd',
          image: 'img-1',
          conf: '/d/ceph.conf',
          user: 'nf',
          'node-name': 'cd0',
          'read-only': true,
        },
      ],
    },
    boot: { kind: 'cdrom' },
  },
  'uefi-secureboot-tpm': {
    ...base,
    firmware: {
      type: 'uefi',
      secureBoot: true,
      vars: {
        pool: 'local',
        volume: 'vm-1-efivars.qcow2',
        blockdev: [
          { driver: 'file', filename: '/pool/disks/vm-1-efivars.qcow2', 'node-name': 'efivars-vol-file' },
          { driver: 'qcow2', file: 'efivars-vol-file', 'node-name': 'efivars-vol' },
        ],
      },
    },
    tpm: true,
    cpu: { model: 'x86-64-v3', sockets: 2, cores: 2, threads: 1, flags: { pcid: false } },
    maxVcpus: 4,
    memoryMiB: 768,
    maxMemoryMiB: 2048,
    memoryDimmsMiB: [256],
    hotplugSlots: 2,
    cloudInit: { metaData: 'instance-id: "1"\n', userData: '#cloud-config\n' },
    video: 'virtio',
    tablet: true,
  },
  'devices-pc': {
    ...base,
    machine: 'pc',
    disks: [
      { ...base.disks[0]!, bus: 'ide', cache: 'directsync', aio: 'native' },
      { ...base.disks[1]!, bus: 'sata', cache: 'unsafe', aio: 'io_uring' },
      { id: 'disk2', path: '/pool/disks/vm-1-disk2.qcow2', format: 'qcow2', bus: 'virtio-scsi' },
    ],
    cdrom: { path: '/pool/images/x.iso' },
    nics: [
      { ...base.nics[0]!, model: 'e1000e' },
      { id: 'net1', network: 'default', type: 'nat', mac: '52:54:00:aa:bb:cd', model: 'vmxnet3' },
    ],
    boot: { kind: 'disk', index: 0 },
    cpu: { model: 'EPYC-v3', cores: 2 },
    video: 'none',
  },
};

/** Golden files pin the exact argv; regenerate with UPDATE_GOLDEN=1 after an intended change. */
describe('QEMU command line', () => {
  for (const [name, spec] of Object.entries(cases)) {
    it(`renders ${name}`, () => {
      const argv = renderArgv(
        buildQemuConfig(spec, paths, name.includes('kvm') ? { ...host, accel: 'kvm' } : host),
      );
      const file = join(import.meta.dirname, 'testdata', `${name}.golden`);
      const text = `${argv.join('\n')}\n`;
      if (process.env.UPDATE_GOLDEN || !existsSync(file)) writeFileSync(file, text);
      expect(text).toBe(readFileSync(file, 'utf8'));
    });
  }

  it('escapes commas in key=value options and never uses a shell', () => {
    const argv = renderArgv(buildQemuConfig(base, paths, host));
    expect(argv[argv.indexOf('-name') + 1]).toBe('guest=web,,1,debug-threads=on');
  });

  it('refuses a kernel or initrd path with a comma (a multiboot module separator)', () => {
    const bad = { ...base, boot: { kind: 'kernel' as const, kernel: '/boot/vmlinux', initrd: '/boot/a,b' } };
    expect(() => buildQemuConfig(bad, paths, host)).toThrow(/comma/);
  });

  it('refuses a CPU model or flag that would add options of its own', () => {
    for (const cpu of [{ model: 'max,kvm=off' }, { model: 'host', flags: { 'avx,enforce=off': true } }])
      expect(() => buildQemuConfig({ ...base, cpu }, paths, host)).toThrow(/not a valid name/);
  });

  it('gives the portable CPU levels as flags on qemu64, enforced', () => {
    const argv = renderArgv(buildQemuConfig({ ...base, cpu: { model: 'x86-64-v2' } }, paths, host));
    expect(argv[argv.indexOf('-cpu') + 1]).toBe(
      'qemu64,+cx16,+lahf_lm,+popcnt,+pni,+sse4.1,+sse4.2,+ssse3,enforce',
    );
    const tcgHost = renderArgv(buildQemuConfig({ ...base, cpu: { model: 'host' } }, paths, host));
    expect(tcgHost[tcgHost.indexOf('-cpu') + 1]).toBe('max'); // TCG has no host CPU to pass through
  });

  it('starts paused so the monitor is connected before the guest runs', () => {
    expect(renderArgv(buildQemuConfig(base, paths, host))).toContain('-S');
  });

  it('keeps management channels on unix sockets in the run dir', () => {
    const argv = renderArgv(buildQemuConfig(base, paths, host)).join(' ');
    expect(argv).toContain(`path=${paths.qmp}`);
    expect(argv).toContain(`-vnc unix:${paths.vnc}`);
    expect(argv).not.toMatch(/tcp:|0\.0\.0\.0/);
  });
});
