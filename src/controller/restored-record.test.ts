import { describe, expect, it } from 'vitest';
import type { VmRecord } from './records';
import { restoredRecord } from './vms';

const source = {
  id: 'src-id',
  name: 'web1',
  node: 'h1',
  vcpus: 2,
  memoryMiB: 1024,
  machine: 'q35',
  firmware: 'uefi',
  efiVars: { pool: 'local', volume: 'vm-src-id-efivars.qcow2' },
  disks: [{ id: 'disk0', pool: 'local', volume: 'vm-src-id-disk0.qcow2', sizeBytes: 1 << 30 }],
  networks: [{ id: 'net0', network: 'default', mac: '52:54:00:12:34:56' }],
  boot: {},
  snapshots: [{ name: 's1' }],
  power: 'running',
  generation: 7,
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
} as unknown as VmRecord;

describe('restoredRecord', () => {
  it("names every volume after the new VM, its UEFI variable store too (never the source's)", () => {
    const r = restoredRecord(source, 'new-id', { name: 'web1-restored' }, undefined);
    expect(r).toMatchObject({ id: 'new-id', name: 'web1-restored', power: 'stopped', snapshots: [] });
    expect(r.disks.map((d) => d.volume)).toEqual(['vm-new-id-disk0.qcow2']);
    expect(r.efiVars).toEqual({ pool: 'local', volume: 'vm-new-id-efivars.qcow2' });
    expect(r.networks[0]!.mac).not.toBe('52:54:00:12:34:56');
  });

  it('puts the disks and the variable store into the pool asked for', () => {
    const r = restoredRecord(source, 'new-id', { name: 'x' }, 'ceph');
    expect(r.disks.map((d) => d.pool)).toEqual(['ceph']);
    expect(r.efiVars?.pool).toBe('ceph');
  });
});
