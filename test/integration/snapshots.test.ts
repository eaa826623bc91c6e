import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../harness/daemon';
import { BOOTED } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm, vmAction } from '../harness/vms';

/** Writes a marker into the first sector of the raw disk and syncs it. */
const write = (marker: string) =>
  `echo ${marker} | dd of=/dev/vda bs=512 count=1 conv=sync 2>/dev/null; sync`;
const read = 'dd if=/dev/vda bs=512 count=1 2>/dev/null | head -n1';

describe('snapshots keep the disk state exactly', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  async function boot(id: string, nth = 1): Promise<void> {
    await waitConsole(d.api, id, new RegExp(Array(nth).fill(BOOTED).join('[\\s\\S]*')));
  }

  it('snapshots a running VM, then reverts the stopped VM to it', async () => {
    const vm = await createVm(d.api, kernelVm('snap1', { start: true }));
    await boot(vm.id);
    await guestRun(d.api, d.dataDir, vm.id, write('MARKER-BEFORE'));
    expect((await guestRun(d.api, d.dataDir, vm.id, read)).trim()).toBe('MARKER-BEFORE');

    await d.api.request('POST', '/api/v1/vms/snap1/snapshots', {
      name: 'live',
      description: 'while running',
    });
    const snaps = await d.api.request<{ name: string; vmState: string }[]>(
      'GET',
      '/api/v1/vms/snap1/snapshots',
    );
    expect(snaps).toEqual([expect.objectContaining({ name: 'live', vmState: 'running' })]);

    await guestRun(d.api, d.dataDir, vm.id, write('MARKER-AFTER'));
    // Revert needs the disks free.
    await expect(d.api.request('POST', '/api/v1/vms/snap1/snapshots/live/revert')).rejects.toMatchObject({
      code: 'invalid_state',
    });
    await vmAction(d.api, 'snap1', 'stop', '?force=true');
    await d.api.request('POST', '/api/v1/vms/snap1/snapshots/live/revert');

    await vmAction(d.api, 'snap1', 'start');
    await boot(vm.id, 2);
    expect((await guestRun(d.api, d.dataDir, vm.id, read)).trim()).toBe('MARKER-BEFORE');
    await vmAction(d.api, 'snap1', 'stop', '?force=true');
  });

  it('snapshots a stopped VM, refuses duplicates and unknown names, deletes', async () => {
    const vm = await createVm(d.api, kernelVm('snap2', { start: true }));
    await boot(vm.id);
    await guestRun(d.api, d.dataDir, vm.id, write('OFFLINE-ONE'));
    await vmAction(d.api, 'snap2', 'stop', '?force=true');

    await d.api.request('POST', '/api/v1/vms/snap2/snapshots', { name: 'cold' });
    expect((await getVm(d.api, 'snap2')).snapshots).toEqual([
      expect.objectContaining({ name: 'cold', vmState: 'stopped' }),
    ]);
    await expect(
      d.api.request('POST', '/api/v1/vms/snap2/snapshots', { name: 'cold' }),
    ).rejects.toMatchObject({ code: 'already_exists' });
    // qemu-img matches a snapshot id before a name: numeric names could select another snapshot.
    await expect(d.api.request('POST', '/api/v1/vms/snap2/snapshots', { name: '1' })).rejects.toMatchObject({
      code: 'validation_failed',
    });
    await expect(d.api.request('POST', '/api/v1/vms/snap2/snapshots/nope/revert')).rejects.toMatchObject({
      code: 'not_found',
    });

    await vmAction(d.api, 'snap2', 'start');
    await boot(vm.id, 2);
    await guestRun(d.api, d.dataDir, vm.id, write('OFFLINE-TWO'));
    // A second snapshot taken live, then deleted while running.
    await d.api.request('POST', '/api/v1/vms/snap2/snapshots', { name: 'second' });
    await d.api.request('DELETE', '/api/v1/vms/snap2/snapshots/second');
    await vmAction(d.api, 'snap2', 'stop', '?force=true');

    await d.api.request('POST', '/api/v1/vms/snap2/snapshots/cold/revert');
    await vmAction(d.api, 'snap2', 'start');
    await boot(vm.id, 3);
    expect((await guestRun(d.api, d.dataDir, vm.id, read)).trim()).toBe('OFFLINE-ONE');
    await vmAction(d.api, 'snap2', 'stop', '?force=true');

    await d.api.request('DELETE', '/api/v1/vms/snap2/snapshots/cold');
    expect((await getVm(d.api, 'snap2')).snapshots).toEqual([]);
  });
});
