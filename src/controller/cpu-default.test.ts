import { describe, expect, it } from 'vitest';
import { checkCpuDefault, clusterCpuModel } from './cpu-default';
import type { NodeRecord } from './records';

function host(name: string, info: Partial<NonNullable<NodeRecord['info']>> = {}): NodeRecord {
  return {
    name,
    role: 'worker',
    addresses: [],
    maintenance: false,
    joinedAt: '2026-01-01T00:00:00.000Z',
    info: {
      cpus: 8,
      cpuModel: 'Intel Xeon Gold 6230',
      memoryTotalBytes: 64 * 1024 ** 3,
      accelerator: 'kvm',
      pools: [],
      qemuVersion: '7.2.0',
      cpuLevels: ['x86-64-v2', 'x86-64-v3', 'x86-64-v4'],
      ...info,
    },
  };
}

describe('the cluster default CPU model', () => {
  it('auto: the host CPU while every host has the same one', () => {
    expect(clusterCpuModel(undefined, [host('a')])).toMatchObject({ defaultModel: 'auto', model: 'host' });
    expect(clusterCpuModel('auto', [host('a'), host('b')]).model).toBe('host');
    // under TCG the same QEMU is the same CPU, whatever the host's
    const tcg = { accelerator: 'tcg' as const, cpuModel: 'x' };
    expect(clusterCpuModel('auto', [host('a', tcg), host('b', { ...tcg, cpuModel: 'y' })]).model).toBe(
      'host',
    );
  });

  it('auto: the highest level every host runs once the hosts differ', () => {
    const mixed = [
      host('a'),
      host('b', { cpuModel: 'AMD EPYC 7543', cpuLevels: ['x86-64-v2', 'x86-64-v3'] }),
    ];
    const d = clusterCpuModel('auto', mixed);
    expect(d.model).toBe('x86-64-v3');
    expect(d.why).toMatch(/highest level every one of the 2 hosts runs/);
    const old = host('c', { cpuModel: 'Core 2', cpuLevels: [] });
    expect(clusterCpuModel('auto', [...mixed, old]).model).toBe('qemu64');
    // a host that has not reported yet does not count
    expect(clusterCpuModel('auto', [host('a'), { ...host('d'), info: undefined }]).model).toBe('host');
  });

  it('refuses a setting that is no model name, or a level that does not exist', () => {
    for (const m of ['a,b', 'x86-64-v5', '']) expect(() => checkCpuDefault(m)).toThrow(/defaultCpuModel/);
    for (const m of ['auto', 'host', 'x86-64-v3', 'EPYC-v3']) expect(() => checkCpuDefault(m)).not.toThrow();
  });

  it('a set model is taken as it is, with the hosts that cannot run it named', () => {
    const d = clusterCpuModel('x86-64-v4', [host('a'), host('b', { cpuLevels: ['x86-64-v2'] })]);
    expect(d).toMatchObject({ defaultModel: 'x86-64-v4', model: 'x86-64-v4' });
    expect(d.why).toMatch(/b cannot run x86-64-v4/);
    expect(clusterCpuModel('EPYC-v3', [host('a')]).why).toBe('set by an administrator');
  });
});
