import { describe, expect, it } from 'vitest';
import { NfError } from '../errors';
import type { VmStatus } from '../node/types';
import { waitFor } from '../util/wait';
import type { MigrationResult } from '../vmm/migration';
import type { VmRunSpec } from '../vmm/types';
import { Migrations } from './migration';
import { Reconciler } from './reconciler';
import { keys, type TaskRecord, type VmRecord } from './records';
import { TaskLog } from './tasks';
import { setup, vmId, vmRecord } from './test-cluster';
import type { VmService } from './vms';

/** Two fake hosts; VM 1 runs on `a` and migrates to `b`, whose answer to "run it now" is `finish`. */
async function lab(finish: () => Promise<VmStatus>) {
  const vm = vmRecord(1, { node: 'a', power: 'running', boot: { kernel: '/k' } });
  const { store, nodes, router, registry } = await setup([{ name: 'a' }, { name: 'b' }], [vm]);
  router.locate(vm.id, 'a');
  const a = nodes.get('a')!;
  const b = nodes.get('b')!;
  const calls: string[] = [];
  const status = new Map<string, VmStatus>([
    ['a', { id: vm.id, state: 'running', updatedAt: '' }],
    ['b', { id: vm.id, state: 'stopped', updatedAt: '' }],
  ]);
  a.vmStatus = () => status.get('a')!;
  b.vmStatus = () => status.get('b')!;
  a.migrateOut = async (_req, onProgress) => {
    calls.push('a.migrateOut');
    status.set('a', { id: vm.id, state: 'paused', migration: 'migrated', updatedAt: '' });
    onProgress?.({ phase: 'switching' });
    return {
      downtimeMs: 5,
      totalMs: 100,
      setupMs: 1,
      transferredBytes: 1,
      postcopy: false,
    } as MigrationResult;
  };
  a.resumeMigrated = async () => {
    calls.push('a.resumeMigrated');
    return status.get('a')!;
  };
  b.prepareIncoming = async () => {
    calls.push('b.prepareIncoming');
    status.set('b', { id: vm.id, state: 'paused', migration: 'incoming', updatedAt: '' });
    return { address: '192.0.2.2', port: 4000 };
  };
  b.finishIncoming = async () => {
    calls.push('b.finishIncoming');
    return finish();
  };
  b.abortIncoming = async () => {
    calls.push('b.abortIncoming');
    return {};
  };
  const tasks = new TaskLog(store);
  const vms = {
    find: async (ref: string) => (await store.get<VmRecord>(keys.vm(ref)))!,
    runSpec: async () => ({}),
    bindPorts: async () => {},
    reconciler: new Reconciler(store, router, async () => ({}) as VmRunSpec),
  } as unknown as VmService;
  const migrations = new Migrations(store, vms, router, registry, tasks);
  const record = async () => (await store.get<VmRecord>(keys.vm(vm.id)))!.value;
  const ended = (id: string) =>
    waitFor(
      async () => {
        const t = await tasks.get(id);
        return t && t.status !== 'running' ? t : undefined;
      },
      { timeoutMs: 5000, what: 'the task to end' },
    ) as Promise<TaskRecord>;
  return { migrations, calls, status, record, ended, a };
}

describe('migration switch-over', () => {
  it('keeps the guest paused on the source when the target does not answer "run" (it may run already)', async () => {
    const l = await lab(() => Promise.reject(new NfError('unavailable', 'connection reset')));
    const t = await l.migrations.migrate(vmId(1), { node: 'b' }, 'me');
    const done = await l.ended(t.id);
    expect(done.error?.message).toMatch(/stays paused on a until b answers/);
    expect(l.calls).not.toContain('a.resumeMigrated');
    expect(l.calls).not.toContain('b.abortIncoming');
    expect((await l.record()).migration?.target).toBe('b'); // the leader decides, from both hosts
    // b answers again: it runs the guest (the reply was lost), so the record follows it.
    l.status.set('b', { id: vmId(1), state: 'running', updatedAt: '' });
    await l.migrations.resolve(await l.record());
    const rec = await l.record();
    expect([rec.node, rec.migration]).toEqual(['b', undefined]);
    expect(l.calls).not.toContain('a.resumeMigrated');
  });

  it('resumes the source when the doubtful target comes back without the guest', async () => {
    const l = await lab(() => Promise.reject(new NfError('timeout', 'no answer')));
    const t = await l.migrations.migrate(vmId(1), { node: 'b' }, 'me');
    await l.ended(t.id);
    l.status.set('b', { id: vmId(1), state: 'stopped', updatedAt: '' }); // its daemon dropped the half
    await l.migrations.resolve(await l.record());
    expect(l.calls).toContain('a.resumeMigrated');
    const rec = await l.record();
    expect([rec.node, rec.migration]).toEqual(['a', undefined]);
  });

  it('resumes the source at once when the target says no', async () => {
    const l = await lab(() =>
      Promise.reject(new NfError('invalid_state', 'has not received its whole state')),
    );
    const t = await l.migrations.migrate(vmId(1), { node: 'b' }, 'me');
    const done = await l.ended(t.id);
    expect(done.error?.message).toMatch(/runs on a again/);
    expect(l.calls).toEqual(expect.arrayContaining(['a.resumeMigrated', 'b.abortIncoming']));
    const rec = await l.record();
    expect([rec.node, rec.migration]).toEqual(['a', undefined]);
  });
});
