import { describe, expect, it } from 'vitest';
import type { HostNode, Task } from './api';
import {
  evacuationDetails,
  evacuationOf,
  evacuationOutcome,
  evacuationProgress,
  migrating,
  migrationBanner,
  migrationDetails,
  migrationOutcome,
  migrationProgress,
  migrationTargets,
  migrationTask,
} from './migration';

const MiB = 1024 * 1024;
const host = (name: string, over: Partial<HostNode> = {}) =>
  ({ name, state: 'ready', connected: true, ...over }) as HostNode;
const task = (over: Partial<Task>) =>
  ({ id: 't1', type: 'vm.migrate', target: 'vm-1', status: 'running', progress: 0.4, ...over }) as Task;

describe('migration target choices', () => {
  it('offers the scheduler first, then the other connected hosts; maintenance listed but disabled', () => {
    const nodes = [
      host('h3', { state: 'maintenance' }),
      host('h1'),
      host('h2'),
      host('h4', { connected: false }),
      host('h5', { state: 'not-ready' }),
    ];
    expect(migrationTargets(nodes, { node: 'h1' })).toEqual([
      { value: '', label: 'Automatic (scheduler picks)', disabled: false },
      { value: 'h2', label: 'h2', disabled: false },
      { value: 'h3', label: 'h3 (maintenance)', disabled: true },
      { value: 'h5', label: 'h5 (not ready)', disabled: true },
    ]);
  });
});

describe('migration figures', () => {
  it('reads the details of vm.migrate tasks only', () => {
    const details = { source: 'h1', target: 'h2', phase: 'memory' };
    expect(migrationDetails(task({ details }))).toEqual(details);
    expect(migrationDetails(task({ type: 'vm.disk.move', details }))).toBeUndefined();
  });

  it('shows the phase, RAM figures and disk copy in one line', () => {
    const line = migrationProgress({
      source: 'h1',
      target: 'h2',
      phase: 'memory',
      ram: {
        transferredBytes: 512 * MiB,
        remainingBytes: 1024 * MiB,
        totalBytes: 2048 * MiB,
        dirtyRateBytesPerSec: 12 * MiB,
        iteration: 3,
        expectedDowntimeMs: 40.4,
        mbps: 900,
      },
      disks: { doneBytes: 1024 * MiB, totalBytes: 10240 * MiB },
    });
    expect(line).toBe(
      'memory · RAM 512.0 MiB of 2.0 GiB, 1.0 GiB left, dirty 12.0 MiB/s, iteration 3, expected downtime 40 ms · disks 1.0 GiB of 10.0 GiB',
    );
    expect(migrationProgress({ source: 'h1', target: 'h2', phase: 'preparing' })).toBe('preparing');
  });

  it('sums a finished migration up as downtime and total time', () => {
    expect(migrationOutcome({ target: 'h2', downtimeMs: 12, totalMs: 8420 })).toBe(
      'downtime 12 ms, total 8.4 s',
    );
  });

  it('knows when a VM is being migrated, by id or name', () => {
    const vm = { id: 'vm-1', name: 'web1' };
    expect(migrating([task({})], vm)).toBe(true);
    expect(migrating([task({ target: 'web1' })], vm)).toBe(true);
    expect(migrating([task({ status: 'ok' })], vm)).toBe(false);
    expect(migrating([task({ type: 'vm.start' })], vm)).toBe(false);
  });

  const m = {
    taskId: 't1',
    source: 'h1',
    target: 'h2',
    localDisks: ['vda'],
    startedAt: new Date(2024, 0, 2, 9, 5, 3).toISOString(),
  };

  it('knows a VM is being migrated from its own migration field, without the task', () => {
    expect(migrating([], { id: 'vm-1', name: 'web1', migration: m })).toBe(true);
    expect(migrationTask([task({ id: 't0' }), task({})], m)?.id).toBe('t1');
    expect(migrationTask([task({})], undefined)).toBeUndefined();
  });

  it('says where from, where to and since when; phase and percentage while the task runs', () => {
    expect(migrationBanner(m)).toBe('Migrating from h1 to h2 since 09:05:03');
    const running = task({ progress: 0.416, details: { source: 'h1', target: 'h2', phase: 'memory' } });
    expect(migrationBanner(m, running)).toBe('Migrating from h1 to h2 since 09:05:03 · memory · 42%');
    expect(migrationBanner(m, { ...running, status: 'ok' })).toBe('Migrating from h1 to h2 since 09:05:03');
  });
});

describe('host evacuation', () => {
  const evac = (over: Partial<Task>) => task({ type: 'node.evacuate', target: 'h2', ...over });

  it('reads the details of node.evacuate tasks only', () => {
    const details = { phase: 'migrating', total: 3, moved: [], stayed: [], moving: ['web1'] };
    expect(evacuationDetails(evac({ details }))).toEqual(details);
    expect(evacuationDetails(task({ details }))).toBeUndefined();
  });

  it('shows moved of total and the VMs moving', () => {
    expect(
      evacuationProgress({
        phase: 'migrating',
        total: 3,
        moved: [
          { vm: 'a', to: 'h1' },
          { vm: 'b', to: 'h1' },
        ],
        stayed: [],
        moving: ['web1', 'web2'],
      }),
    ).toBe('2/3 moved · moving web1, web2');
    expect(evacuationProgress({ phase: 'planning', moved: [], stayed: [], moving: [] })).toBe('planning');
    expect(
      evacuationProgress({
        phase: 'migrating',
        moved: [],
        stayed: [{ vm: 'db1', reason: 'pinned' }],
        moving: [],
      }),
    ).toBe('0/? moved');
  });

  it('sums a finished evacuation up', () => {
    expect(evacuationOutcome({ moved: 3, stayed: 1 })).toBe('3 moved, 1 stayed');
  });

  it('finds the running evacuation of a host', () => {
    const t = evac({});
    expect(evacuationOf([task({}), t], 'h2')).toBe(t);
    expect(evacuationOf([evac({ status: 'ok' })], 'h2')).toBeUndefined();
    expect(evacuationOf([t], 'h1')).toBeUndefined();
  });
});
