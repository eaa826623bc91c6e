import { describe, expect, it } from 'vitest';
import type { VmStatus } from '../node/types';
import { autostartQueues } from './autostart';
import type { VmRecord } from './records';

const vm = (name: string, node: string, extra: Partial<VmRecord> = {}): VmRecord => ({
  id: name,
  name,
  node,
  vcpus: 1,
  memoryMiB: 64,
  machine: 'q35',
  disks: [],
  networks: [],
  boot: { disk: 0 },
  snapshots: [],
  power: 'running',
  generation: 3,
  runningGeneration: 3,
  onBoot: { enabled: true, order: 0, delaySec: 0 },
  createdAt: '',
  updatedAt: '',
  ...extra,
});

describe('autostart queues', () => {
  const down: VmStatus = { id: '', state: 'stopped', hostDown: true, updatedAt: '' };
  it('holds the onBoot VMs that went down with their host, per host, by order then name', () => {
    const vms = [
      vm('web', 'h1', { onBoot: { enabled: true, order: 2, delaySec: 0 } }),
      vm('db', 'h1', { onBoot: { enabled: true, order: 1, delaySec: 30 } }),
      vm('app', 'h1', { onBoot: { enabled: true, order: 2, delaySec: 0 } }),
      vm('other-host', 'h2'),
      vm('no-onboot', 'h1', { onBoot: undefined }),
      vm('was-stopped', 'h1', { power: 'stopped' }),
      vm('guest-poweroff', 'h1'),
      vm('started-since', 'h1', { generation: 4 }),
    ];
    const status = (id: string): VmStatus =>
      id === 'guest-poweroff' ? { id, state: 'stopped', updatedAt: '' } : { ...down, id };
    const q = autostartQueues(vms, status);
    expect(q.get('h1')?.map((v) => v.name)).toEqual(['db', 'app', 'web']);
    expect(q.get('h2')?.map((v) => v.name)).toEqual(['other-host']);
  });
});
