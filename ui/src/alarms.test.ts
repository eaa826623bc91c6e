import { describe, expect, it } from 'vitest';
import { alarms } from './alarms';
import type { HostNode, Vm } from './api';

const node = (over: Partial<HostNode> = {}) =>
  ({
    name: 'h1',
    state: 'ready',
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

  it('raises a critical alarm for a host that is not ready, without memory or TCG noise from it', () => {
    const a = alarms(
      [],
      [
        node({ name: 'h1' }),
        node({
          name: 'h2',
          state: 'not-ready',
          lastHeartbeat: null,
          memoryAvailableBytes: null,
          accelerator: 'tcg',
        }),
        node({ name: 'h3', state: 'maintenance' }),
      ],
    );
    expect(a).toEqual([
      { level: 'critical', text: 'Host h2 is not ready: no heartbeat', href: '#/hosts/h2' },
    ]);
  });

  it('does not read a missing memory figure as full memory', () => {
    expect(alarms([], [node({ memoryAvailableBytes: null })])).toEqual([]);
  });

  it('reports unknown VMs (critical) and pending VMs (warning) with their reasons', () => {
    const a = alarms(
      [
        vm({
          id: 'p',
          name: 'db',
          state: 'pending',
          reason: 'no host fits VM "db": 1 host: 1 in maintenance',
        }),
        vm({ id: 'u', name: 'web', state: 'unknown', reason: 'host h2 is not reachable' }),
        vm({ id: 'w', name: 'new', state: 'pending' }),
      ],
      [node()],
    );
    expect(a).toEqual([
      { level: 'critical', text: 'VM web is unknown: host h2 is not reachable', href: '#/vms/u' },
      {
        level: 'warning',
        text: 'VM db is pending: no host fits VM "db": 1 host: 1 in maintenance',
        href: '#/vms/p',
      },
      { level: 'warning', text: 'VM new is pending: waiting for a host', href: '#/vms/w' },
    ]);
  });

  it('sums up many pending VMs in one line after the first five', () => {
    const many = Array.from({ length: 12 }, (_, i) =>
      vm({ id: `v${i}`, name: `vm${i}`, state: 'pending', reason: 'no host fits' }),
    );
    const a = alarms(many, [node()]);
    expect(a).toHaveLength(6);
    expect(a[5]).toEqual({ level: 'warning', text: '7 more VMs pending (no host fits)', href: '#/vms' });
  });

  it("warns about a running VM's warning (its TPM emulator died), linking to the VM, five at most", () => {
    const tpm =
      "the VM's TPM emulator (swtpm) exited: the guest's TPM no longer answers (BitLocker, measured boot); stop and start the VM to give it its TPM again (the TPM's state is kept)";
    const a = alarms(
      [vm({ id: 'w', name: 'win11', warning: tpm }), vm({ id: 'q', name: 'quiet' })],
      [node()],
    );
    expect(a).toEqual([{ level: 'warning', text: `VM win11: ${tpm}`, href: '#/vms/w' }]);

    const many = Array.from({ length: 8 }, (_, i) =>
      vm({ id: `v${i}`, name: `vm${i}`, warning: 'swtpm exited' }),
    );
    const b = alarms(many, [node()]);
    expect(b.map((x) => x.text)).toEqual([
      ...[0, 1, 2, 3, 4].map((i) => `VM vm${i}: swtpm exited`),
      '3 more VMs with a warning',
    ]);
    expect(b.every((x) => x.level === 'warning')).toBe(true);
    expect(b[5]!.href).toBe('#/vms');
  });
});
