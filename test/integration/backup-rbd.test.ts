import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addRbdPool, type SharedLab, sharedCephLab } from '../harness/ceph';
import { TestDaemon } from '../harness/daemon';
import { BOOTED } from '../harness/guest';
import { guestRun, startAndBoot } from '../harness/serial';
import { createVm, kernelVm, type TaskView, type VmView, vmAction, waitTask } from '../harness/vms';

interface BackupDisk {
  mode: 'full' | 'incremental';
  base?: string;
  fullReason?: string;
  chunksRead: number;
}

/** Backups of a VM whose disk is on Ceph RBD: incremental through RBD snapshot diffs (the shared Ceph lab). */
describe('backups of RBD disks', () => {
  let d: TestDaemon;
  let lab: SharedLab;
  let rbd: { pool: string; rbdPool(name?: string): { listSnapshots(v: string): Promise<string[]> } };
  let vm: VmView;
  let repoDir: string;
  beforeAll(async () => {
    d = await TestDaemon.start();
    lab = await sharedCephLab();
    rbd = await addRbdPool(d.api, lab);
    repoDir = join(mkdtempSync(join(tmpdir(), 'nf-backup-rbd-')), 'repo');
    await d.api.request('POST', '/api/v1/backup/repositories', { name: 'r', path: repoDir });
    vm = await createVm(d.api, kernelVm('rbd-bk', { disks: [{ sizeGiB: 1, pool: 'ceph' }] }));
  }, 300_000);
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
    if (repoDir) rmSync(join(repoDir, '..'), { recursive: true, force: true });
  });

  const run = (cmd: string) => guestRun(d.api, d.dataDir, vm.id, cmd);
  const write = async (mib: number) =>
    /[0-9a-f]{32}/.exec(
      await run(
        `dd if=/dev/urandom of=/tmp/p bs=1M count=4 2>/dev/null; dd if=/tmp/p of=/dev/vda bs=1M seek=${mib} oflag=direct conv=fsync 2>/dev/null; md5sum </tmp/p`,
      ),
    )?.[0];
  const backup = async (): Promise<{ id: string; disks: BackupDisk[] }> => {
    const t = await d.api.request<TaskView>('POST', `/api/v1/vms/${vm.id}/backup`, { repository: 'r' });
    const done = await waitTask(d.api, t.id, 240_000);
    expect(done.error).toBeUndefined();
    return done.result as unknown as { id: string; disks: BackupDisk[] };
  };
  const marks = async () =>
    (await rbd.rbdPool().listSnapshots(`vm-${vm.id}-disk0.qcow2`)).filter((s) => s.startsWith('nfbk-'));

  it('full, then incremental from the RBD snapshot of the last backup (running and stopped); one mark stays; restores right', async () => {
    await startAndBoot(d.api, vm.id, () => vmAction(d.api, vm.id, 'start'), new RegExp(BOOTED), 240_000);
    const a = await write(16);
    const b1 = await backup();
    expect(b1.disks[0]).toMatchObject({ mode: 'full' });
    expect(await marks()).toHaveLength(1);

    const b = await write(64);
    const b2 = await backup();
    // only what changed since b1's snapshot: the 4 MiB at 64 MiB (one chunk), maybe a file-system block
    expect(b2.disks[0]).toMatchObject({ mode: 'incremental', base: b1.id });
    expect(b2.disks[0]!.chunksRead).toBeGreaterThanOrEqual(1);
    expect(b2.disks[0]!.chunksRead).toBeLessThanOrEqual(3);
    expect((await marks()).map((s) => s.split('-').slice(2).join('-'))).toEqual([b2.id]);

    await vmAction(d.api, vm.id, 'stop', '?force=true');
    const b3 = await backup();
    // stopped: nothing changed since b2's snapshot (a forced stop writes nothing)
    expect(b3.disks[0]).toMatchObject({ mode: 'incremental', base: b2.id });
    expect(b3.disks[0]!.chunksRead).toBeLessThanOrEqual(1);
    expect(await marks()).toHaveLength(1);

    // restore into the local pool; the data is there
    const t = await d.api.request<TaskView>('POST', `/api/v1/backups/${b3.id}/restore`, {
      name: 'rbd-bk-restored',
      pool: 'local',
    });
    const r = await waitTask(d.api, t.id, 240_000);
    expect(r.error).toBeUndefined();
    const restoredId = (r.result as { id: string }).id;
    await startAndBoot(
      d.api,
      restoredId,
      () => vmAction(d.api, restoredId, 'start'),
      new RegExp(BOOTED),
      240_000,
    );
    const read = async (mib: number) =>
      /[0-9a-f]{32}/.exec(
        await guestRun(
          d.api,
          d.dataDir,
          restoredId,
          `dd if=/dev/vda bs=1M skip=${mib} count=4 iflag=direct 2>/dev/null | md5sum`,
        ),
      )?.[0];
    expect(await read(16)).toBe(a);
    expect(await read(64)).toBe(b);
    await vmAction(d.api, restoredId, 'stop', '?force=true');
    // deleting the VM deletes its image with the backup snapshot (snap purge)
    await d.api.request('DELETE', `/api/v1/vms/${vm.id}`);
  }, 900_000);
});
