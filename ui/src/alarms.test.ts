import { describe, expect, it } from 'vitest';
import { alarms } from './alarms';
import type { HostNode, Vm } from './api';

const node = (over: Partial<HostNode> = {}) =>
  ({
    name: 'h1',
    memoryTotalBytes: 100,
    memoryAvailableBytes: 50,
    accelerator: 'kvm',
    acceleratorReason: '',
    ...over,
  }) as HostNode;
const vm = (over: Partial<Vm>) => ({ id: 'x', name: 'web', state: 'running', ...over }) as Vm;

describe('dashboard alarms', () => {
  it('reports VMs in error and VMs QEMU paused, with their reasons', () => {
    const a = alarms(
      [
        vm({ state: 'error', reason: 'terminating on signal 15' }),
        vm({ name: 'db', state: 'paused', reason: 'paused by QEMU: I/O error' }),
        vm({ name: 'ok' }),
      ],
      [node()],
    );
    expect(a.map((x) => x.text)).toEqual([
      'VM web is in error: terminating on signal 15',
      'VM db: paused by QEMU: I/O error',
    ]);
    expect(a.every((x) => x.level === 'critical')).toBe(true);
  });

  it('warns about host memory pressure and TCG, and is quiet otherwise', () => {
    expect(alarms([vm({ state: 'paused' })], [node()])).toEqual([]);
    const a = alarms(
      [],
      [node({ memoryAvailableBytes: 5, accelerator: 'tcg', acceleratorReason: 'no /dev/kvm' })],
    );
    expect(a.map((x) => x.text)).toEqual([
      'Host h1: memory 95 % used',
      'Host h1 runs VMs without KVM (TCG): no /dev/kvm',
    ]);
  });
});
