import { describe, expect, it } from 'vitest';
import { specFromPb, specToPb } from '../cluster/grpc/convert';
import type { VmRunSpec } from '../vmm/types';
import { checkHardware, cpuTopology, type HardwareChoice } from './hardware';

const ok: HardwareChoice = {
  machine: 'q35',
  vcpus: 4,
  memoryMiB: 1024,
  maxMemoryMiB: 4096,
  firmware: 'uefi',
  secureBoot: true,
  tpm: true,
  diskBuses: [undefined, 'sata', 'virtio-scsi'],
  cdrom: true,
};

describe('VM hardware rules', () => {
  it('accepts what QEMU can build', () => {
    expect(() => checkHardware(ok)).not.toThrow();
    expect(() =>
      checkHardware({ ...ok, machine: 'pc', secureBoot: false, diskBuses: ['ide', 'ide', 'ide'] }),
    ).not.toThrow();
  });

  it.each([
    [{ firmware: 'bios' as const }, /needs firmware "uefi"/],
    [{ machine: 'pc' as const }, /needs machine "q35"/],
    [{ diskBuses: ['ide' as const] }, /needs machine "pc"/],
    [{ diskBuses: Array(6).fill('sata') }, /6 SATA disks: machine q35 has 5/],
    [
      { machine: 'pc' as const, secureBoot: false, diskBuses: Array(4).fill('ide') },
      /4 IDE disks and 1 CD-ROM/,
    ],
    [{ cpu: { model: 'host', sockets: 3 } }, /does not make the VM's 4 vCPUs/],
    [{ memoryMiB: 8192 }, /memoryMiB \(8192\) is above maxMemoryMiB \(4096\)/],
  ])('refuses %j', (change, message) => {
    expect(() => checkHardware({ ...ok, ...change })).toThrow(message);
  });

  it('fills the topology: cores take what sockets and threads leave', () => {
    expect(cpuTopology(8, { model: 'host', sockets: 2 })).toEqual({ sockets: 2, cores: 4, threads: 1 });
    expect(cpuTopology(8, { model: 'host', sockets: 2, threads: 2 })).toEqual({
      sockets: 2,
      cores: 2,
      threads: 2,
    });
    expect(cpuTopology(3, { model: 'host' })).toEqual({ sockets: 1, cores: 3, threads: 1 });
    expect(() => cpuTopology(4, { model: 'host', sockets: 2, cores: 1 })).toThrow(/topology/);
  });

  it('carries every hardware field to the node over gRPC and back', () => {
    const spec: VmRunSpec = {
      id: 'v1',
      name: 'vm',
      vcpus: 2,
      memoryMiB: 256,
      machine: 'q35',
      disks: [{ id: 'disk0', path: '', pool: 'local', volume: 'v.qcow2', format: 'qcow2', bus: 'sata' }],
      nics: [{ id: 'net0', network: 'default', type: 'nat', mac: '52:54:00:00:00:01', model: 'e1000e' }],
      boot: { kind: 'disk', index: 0 },
      agent: true,
      cpu: { model: 'x86-64-v3', sockets: 2, flags: { pcid: false, avx2: true } },
      firmware: { type: 'uefi', secureBoot: true, vars: { pool: 'ceph', volume: 'vm-v1-efivars.qcow2' } },
      tpm: true,
      video: 'virtio',
      tablet: true,
      maxMemoryMiB: 1024,
      memoryDimmsMiB: [128, 256],
    };
    expect(specFromPb(specToPb(spec))).toEqual(spec);
    const plain: VmRunSpec = { ...spec, disks: [], nics: [] };
    for (const k of ['cpu', 'firmware', 'tpm', 'video', 'tablet', 'maxMemoryMiB', 'memoryDimmsMiB'] as const)
      delete plain[k];
    expect(specFromPb(specToPb(plain))).toEqual(plain);
  });
});
