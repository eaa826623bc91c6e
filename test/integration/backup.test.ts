import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { TestDaemon } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { BOOTED, testGuest } from '../harness/guest';
import { guestRun, startAndBoot } from '../harness/serial';
import { createVm, getVm, kernelVm, type TaskView, vmAction, waitTask } from '../harness/vms';

interface BackupDiskView {
  id: string;
  mode: 'full' | 'incremental';
  base?: string;
  fullReason?: string;
  chunksRead: number;
  readBytes: number;
  newChunks: number;
  zeroChunks: number;
}
interface BackupView {
  id: string;
  consistency: string;
  disks: BackupDiskView[];
}

/** Backups of real guests into a real repository, and restores that boot (issue 15, first step). */
describe('backup and restore', () => {
  let d: TestDaemon;
  let repoDir: string;
  beforeAll(async () => {
    d = await TestDaemon.start({ env: { NEUROFLOW_BACKUP_TICK_MS: '1000' } });
    repoDir = join(mkdtempSync(join(tmpdir(), 'nf-backup-')), 'repo');
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
    if (repoDir) rmSync(join(repoDir, '..'), { recursive: true, force: true }); // r1 and r2
  });

  const run = (id: string, cmd: string) => guestRun(d.api, d.dataDir, id, cmd);
  const boot = (id: string, action: () => Promise<unknown>) =>
    startAndBoot(d.api, id, action, new RegExp(BOOTED), 240_000);
  const backup = async (vm: string): Promise<BackupView & { totalMs: number }> => {
    const t = await d.api.request<TaskView>('POST', `/api/v1/vms/${vm}/backup`, { repository: 'r1' });
    const done = await waitTask(d.api, t.id, 180_000);
    expect(done.error).toBeUndefined();
    return done.result as unknown as BackupView & { totalMs: number };
  };
  /** 4 MiB of random data written at `mib` MiB of the guest's disk; returns its md5. */
  const write = async (vm: string, mib: number) =>
    /[0-9a-f]{32}/.exec(
      await run(
        vm,
        `dd if=/dev/urandom of=/tmp/p bs=1M count=4 2>/dev/null; dd if=/tmp/p of=/dev/vda bs=1M seek=${mib} oflag=direct conv=fsync 2>/dev/null; md5sum </tmp/p`,
      ),
    )?.[0];
  const read = async (vm: string, mib: number) =>
    /[0-9a-f]{32}/.exec(
      await run(vm, `dd if=/dev/vda bs=1M skip=${mib} count=4 iflag=direct 2>/dev/null | md5sum`),
    )?.[0];
  const ZEROS_4M = 'b5cfa9d6c8febd618f91ac2843d50a1c';

  it('adds a repository; refuses a relative path, a taken name and a non-empty foreign directory', async () => {
    const repo = await d.api.request<{ name: string; id: string; backups: number }>(
      'POST',
      '/api/v1/backup/repositories',
      {
        name: 'r1',
        path: repoDir,
      },
    );
    expect(repo).toMatchObject({ name: 'r1', backups: 0 });
    expect(readdirSync(repoDir).sort()).toEqual(['backups', 'chunks', 'repo.json']);
    expect(
      await rejection(d.api.request('POST', '/api/v1/backup/repositories', { name: 'r2', path: 'rel/dir' })),
    ).toMatchObject({
      code: 'validation_failed',
    });
    expect(
      await rejection(
        d.api.request('POST', '/api/v1/backup/repositories', { name: 'r1', path: `${repoDir}-x` }),
      ),
    ).toMatchObject({
      code: 'already_exists',
    });
    expect(
      await rejection(
        d.api.request('POST', '/api/v1/backup/repositories', { name: 'r3', path: '/etc/nf-repo' }),
      ),
    ).toMatchObject({ code: 'forbidden' });
    expect(existsSync('/etc/nf-repo')).toBe(false);
    expect(
      await rejection(d.api.request('POST', '/api/v1/backup/repositories', { name: 'r3', path: d.dataDir })),
    ).toMatchObject({
      code: 'validation_failed',
    });
  });

  it('backs up a running guest (full, then incremental reading only changed chunks), restores both points in time', async () => {
    const vm = await createVm(d.api, kernelVm('bk1'));
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    const a = await write(vm.id, 16);
    const b1 = await backup(vm.id);
    expect(b1.consistency).toBe('filesystem');
    expect(b1.disks[0]).toMatchObject({ id: 'disk0', mode: 'full' });
    // a fresh 1 GiB disk: the 4 MiB written (maybe two chunks) and a little file-system-free data
    expect(b1.disks[0]!.chunksRead).toBeLessThan(16);
    expect(b1.disks[0]!.zeroChunks).toBeGreaterThan(200);

    const b = await write(vm.id, 64);
    const b2 = await backup(vm.id);
    expect(b2.disks[0]).toMatchObject({ mode: 'incremental', base: b1.id });
    // only the chunk(s) the new 4 MiB touched (64 MiB is chunk-aligned: exactly one)
    expect(b2.disks[0]!.chunksRead).toBe(1);
    expect(b2.disks[0]!.newChunks).toBe(1);

    const list = await d.api.request<BackupView[]>('GET', `/api/v1/backups?vm=${vm.id}`);
    expect(list.map((x) => x.id)).toEqual([b2.id, b1.id]);

    // restore the newer backup into a new VM: both writes are there
    const t = await d.api.request<TaskView>('POST', `/api/v1/backups/${b2.id}/restore`, {
      name: 'bk1-restored',
    });
    const r = await waitTask(d.api, t.id, 180_000);
    expect(r.error).toBeUndefined();
    const restored = await getVm(d.api, 'bk1-restored');
    expect(restored.id).not.toBe(vm.id);
    await boot(restored.id, () => vmAction(d.api, restored.id, 'start'));
    expect(await read(restored.id, 16)).toBe(a);
    expect(await read(restored.id, 64)).toBe(b);
    await vmAction(d.api, restored.id, 'stop', '?force=true');

    // the older one: the first write only
    const t1 = await d.api.request<TaskView>('POST', `/api/v1/backups/${b1.id}/restore`, {
      name: 'bk1-older',
    });
    expect((await waitTask(d.api, t1.id, 180_000)).error).toBeUndefined();
    const older = await getVm(d.api, 'bk1-older');
    await boot(older.id, () => vmAction(d.api, older.id, 'start'));
    expect(await read(older.id, 16)).toBe(a);
    expect(await read(older.id, 64)).toBe(ZEROS_4M);
    await vmAction(d.api, older.id, 'stop', '?force=true');

    // a stopped VM: still incremental (QEMU saved the bitmap when it stopped)
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    const b3 = await backup(vm.id);
    expect(b3.consistency).toBe('stopped');
    expect(b3.disks[0]).toMatchObject({ mode: 'incremental', base: b2.id });
    // and after that, a start and a write: incremental from the stopped backup
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    await write(vm.id, 128);
    const b4 = await backup(vm.id);
    expect(b4.disks[0]).toMatchObject({ mode: 'incremental', base: b3.id, chunksRead: 1 });
  }, 900_000);

  it('verify names a damaged chunk and the backups it breaks; a restore needing it fails and leaves nothing; GC removes only unnamed chunks', async () => {
    const vm = await getVm(d.api, 'bk1');
    const list = await d.api.request<BackupView[]>('GET', `/api/v1/backups?vm=${vm.id}`);
    expect(list).toHaveLength(4);
    const [b4, b3, b2, b1] = list as [BackupView, BackupView, BackupView, BackupView];
    const verify = async (path: string) => {
      const t = await d.api.request<TaskView>('POST', path);
      const done = await waitTask(d.api, t.id, 120_000);
      expect(done.error).toBeUndefined();
      return done.result as {
        chunks: number;
        bad: { chunk: string; backups: string[] }[];
        broken: { id: string }[];
      };
    };
    expect((await verify('/api/v1/backup/repositories/r1/verify')).bad).toEqual([]);

    // the chunk written at 64 MiB (chunk 16) first stored by b2, named by b2, b3 and b4
    const index = (b: string) =>
      JSON.parse(readFileSync(join(repoDir, 'backups', vm.id, b, 'disk0.index.json'), 'utf8')) as {
        chunks: (string | null)[];
      };
    const id = index(b2.id).chunks[16]!;
    expect(index(b4.id).chunks[16]).toBe(id);
    const file = join(repoDir, 'chunks', id.slice(0, 2), id);
    const body = readFileSync(file);
    body[body.length - 1]! ^= 0xff;
    writeFileSync(file, body);
    const report = await verify('/api/v1/backup/repositories/r1/verify');
    expect(report.bad).toEqual([
      { chunk: id, error: expect.stringMatching(/damaged/), backups: [b2.id, b3.id, b4.id].sort() },
    ]);
    expect(report.broken.map((b) => b.id).sort()).toEqual([b2.id, b3.id, b4.id].sort());
    expect((await verify(`/api/v1/backups/${b1.id}/verify`)).bad).toEqual([]);

    const volumes = () => readdirSync(join(d.dataDir, 'pools', 'local', 'disks')).sort();
    const before = volumes();
    const t = await d.api.request<TaskView>('POST', `/api/v1/backups/${b2.id}/restore`, { name: 'bk1-bad' });
    const failed = await waitTask(d.api, t.id, 120_000);
    expect(failed.error).toMatchObject({ code: 'data_corrupted', message: expect.stringContaining(id) });
    expect(volumes()).toEqual(before);
    expect(await rejection(getVm(d.api, 'bk1-bad'))).toMatchObject({ code: 'not_found' });
    expect(existsSync(`${file}.bad`)).toBe(true); // set aside by the verification

    // the next backup reads that chunk again although it did not change (the repository lost it): healed
    const b5 = await backup(vm.id);
    expect(b5.disks[0]).toMatchObject({ mode: 'incremental', base: b4.id, newChunks: 1 });
    expect(existsSync(file)).toBe(true);
    expect((await verify('/api/v1/backup/repositories/r1/verify')).bad).toEqual([]);

    // the backups that need it go; GC removes it and b4's own chunk, keeps b1's
    const chunksBefore = (
      await d.api.request<{ usage: { chunks: number } }>('GET', '/api/v1/backup/repositories/r1')
    ).usage.chunks;
    for (const b of [b2, b3, b4, b5]) await d.api.request('DELETE', `/api/v1/backups/${b.id}`);
    expect(await rejection(d.api.request('GET', `/api/v1/backups/${b2.id}`))).toMatchObject({
      code: 'not_found',
    });
    const gc = await d.api.request<TaskView>('POST', '/api/v1/backup/repositories/r1/gc');
    const g = await waitTask(d.api, gc.id, 60_000);
    expect(g.error).toBeUndefined();
    // b1's chunks (and those of the restored VMs' backups: none) stay
    const kept = new Set(index(b1.id).chunks.filter((c): c is string => !!c));
    expect(g.result).toMatchObject({ keptChunks: kept.size, removedChunks: chunksBefore - kept.size });
    expect(existsSync(file)).toBe(false);
    expect(existsSync(`${file}.bad`)).toBe(false);
    expect((await verify('/api/v1/backup/repositories/r1/verify')).bad).toEqual([]);
    // a restore under a taken name is refused before anything is made
    expect(
      await rejection(d.api.request('POST', `/api/v1/backups/${b1.id}/restore`, { name: 'bk1' })),
    ).toMatchObject({
      code: 'already_exists',
    });
  }, 300_000);

  it('serve killed -9 during a backup: the partial backup is not listed, its task ends, the next backup works and is incremental', async () => {
    const vm = await getVm(d.api, 'bk1');
    // 512 MiB of data on the disk (written from the host while the VM is stopped: fast), so the read takes a while
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    const disk = join(d.dataDir, 'pools', 'local', 'disks', `vm-${vm.id}-disk0.qcow2`);
    const cmds = Array.from({ length: 128 }, (_, i) => ['-c', `write -P ${i + 1} ${256 + i * 4}M 4M`]).flat();
    execFileSync('qemu-io', ['-f', 'qcow2', ...cmds, disk], { stdio: 'ignore' });
    // a full backup of the new state (qemu-io wrote behind the bitmap's back: it is not a NeuroFlow write)
    const full = await backup(vm.id);
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    await write(vm.id, 900);
    // the backup that dies: into a second repository, where it is a full one (long enough to be killed)
    await d.api.request('POST', '/api/v1/backup/repositories', { name: 'r2', path: `${repoDir}-2` });
    const t = await d.api.request<TaskView>('POST', `/api/v1/vms/${vm.id}/backup`, { repository: 'r2' });
    await waitFor(
      async () =>
        (await d.api.request<TaskView>('GET', `/api/v1/tasks/${t.id}`)).details?.phase === 'reading',
      { timeoutMs: 60_000, intervalMs: 20, what: 'the backup to read' },
    );
    const pid = d.qemuPids()[0];
    await d.kill9();
    await d.launch();
    expect(d.qemuPids()).toContain(pid); // the guest ran on
    const ended = await waitTask(d.api, t.id, 60_000);
    expect(ended).toMatchObject({
      status: 'error',
      error: { message: expect.stringMatching(/stopped before this task ended/) },
    });
    expect(await d.api.request<BackupView[]>('GET', '/api/v1/backups?repository=r2')).toEqual([]);
    expect(
      readdirSync(join(`${repoDir}-2`, 'backups', vm.id)).filter((f) => f.endsWith('.partial')),
    ).toHaveLength(1);
    // the next backup clears what the dead one left in QEMU and is still incremental from the last stored one
    const next = await backup(vm.id);
    expect(next.disks[0]).toMatchObject({ mode: 'incremental', base: full.id, chunksRead: 1 });
    // and the second repository works again; the partial backup is gone
    const t2 = await d.api.request<TaskView>('POST', `/api/v1/vms/${vm.id}/backup`, { repository: 'r2' });
    expect((await waitTask(d.api, t2.id, 180_000)).error).toBeUndefined();
    expect(readdirSync(join(`${repoDir}-2`, 'backups', vm.id)).filter((f) => f.startsWith('.'))).toEqual([]);
    // and restores right
    const r = await d.api.request<TaskView>('POST', `/api/v1/backups/${next.id}/restore`, {
      name: 'bk1-after-crash',
    });
    expect((await waitTask(d.api, r.id, 180_000)).error).toBeUndefined();
    const back = await getVm(d.api, 'bk1-after-crash');
    await boot(back.id, () => vmAction(d.api, back.id, 'start'));
    expect(await read(back.id, 256 + 4)).toBe(await read(vm.id, 256 + 4));
    await vmAction(d.api, back.id, 'stop', '?force=true');
  }, 600_000);

  it('the CLI: repositories, a backup followed to its end, the list, verify and a restore', async () => {
    expect(await d.cli(['backup', 'repo', 'list'])).toMatch(/r1\s+\S+repo\s/);
    const made = await d.cli(['backup', 'create', 'bk1', '--repository', 'r1', '--notes', 'from the CLI']);
    expect(made).toMatch(/disk0: 1024 MiB, incremental on \S+; read/);
    const id = /^(\S+)\s+VM bk1/m.exec(made)?.[1];
    expect(id).toBeTruthy();
    expect(await d.cli(['backup', 'list', '--vm', 'bk1'])).toContain(id!);
    expect(await d.cli(['backup', 'show', id!])).toContain('notes: from the CLI');
    expect(await d.cli(['backup', 'verify', id!])).toMatch(/chunks checked: all good/);
    expect(await d.cli(['backup', 'restore', id!, '--name', 'bk1-cli'])).toMatch(/restored as VM bk1-cli/);
    await expect(d.cli(['backup', 'create', 'bk1'])).rejects.toThrow(/--repository/);
  }, 300_000);

  it('a full repository file system: the backup fails cleanly, nothing older is harmed', async () => {
    const small = join(repoDir, '..', 'small');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', small]);
    try {
      await d.api.request('POST', '/api/v1/backup/repositories', {
        name: 'small',
        path: join(small, 'repo'),
      });
      // an older backup that fits: a VM never started (its disk reads as zeros)
      const empty = await createVm(d.api, kernelVm('bk-empty'));
      const t0 = await d.api.request<TaskView>('POST', `/api/v1/vms/${empty.id}/backup`, {
        repository: 'small',
      });
      const older = await waitTask(d.api, t0.id, 60_000);
      expect(older.error).toBeUndefined();
      // bk1 holds far more than 6 MiB of data
      const t = await d.api.request<TaskView>('POST', '/api/v1/vms/bk1/backup', { repository: 'small' });
      const failed = await waitTask(d.api, t.id, 180_000);
      expect(failed.error).toMatchObject({
        code: 'insufficient_resources',
        message: expect.stringMatching(/full/),
      });
      const list = await d.api.request<BackupView[]>('GET', '/api/v1/backups?repository=small');
      expect(list.map((b) => b.id)).toEqual([(older.result as { id: string }).id]);
      const vm = await getVm(d.api, 'bk1');
      expect(existsSync(join(small, 'repo', 'backups', vm.id))).toBe(true);
      expect(readdirSync(join(small, 'repo', 'backups', vm.id))).toEqual([]);
      const v = await d.api.request<TaskView>('POST', '/api/v1/backup/repositories/small/verify');
      expect((await waitTask(d.api, v.id, 60_000)).result).toMatchObject({ backups: 1, bad: [] });
      await d.api.request('DELETE', '/api/v1/backup/repositories/small');
    } finally {
      execFileSync('umount', ['-l', small]);
    }
  }, 300_000);

  it('an encrypted repository: no plaintext in its files, restores right; a wrong key is refused and writes nothing', async () => {
    const vm = await getVm(d.api, 'bk1');
    const MARK = 'NEUROFLOW-PLAINTEXT-MARKER';
    await run(
      vm.id,
      `yes ${MARK} | head -c 4194304 | dd of=/dev/vda bs=1M seek=1000 oflag=direct conv=fsync 2>/dev/null`,
    );
    const encDir = `${repoDir}-enc`;
    const repo = await d.api.request<Record<string, unknown>>('POST', '/api/v1/backup/repositories', {
      name: 'enc',
      path: encDir,
      encrypt: true,
    });
    expect(repo).toMatchObject({ name: 'enc', encrypted: true });
    const keyFile = join(d.dataDir, 'backup-keys', `${repo.id}.key`);
    expect(repo.keyFile).toBe(keyFile);
    const key = readFileSync(keyFile);
    expect(key).toHaveLength(32);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(repo)).not.toContain(key.toString('base64'));
    const t = await d.api.request<TaskView>('POST', `/api/v1/vms/${vm.id}/backup`, { repository: 'enc' });
    const enc = (await waitTask(d.api, t.id, 180_000)).result as unknown as BackupView;
    expect(enc.disks[0]).toMatchObject({ mode: 'full' });
    // the same data in the plain repository shows the marker (so the check below could fail)
    await backup(vm.id);
    const holds = (dir: string, text: string): string[] =>
      execFileSync('grep', ['-rlaF', text, dir], { encoding: 'utf8' }).split('\n').filter(Boolean);
    const grep = (dir: string, text: string) => {
      try {
        return holds(dir, text);
      } catch {
        return []; // grep exits 1 when nothing matches
      }
    };
    expect(grep(repoDir, MARK).length).toBeGreaterThan(0);
    // (long strings: a 3-byte one turns up by chance in megabytes of ciphertext)
    for (const text of [MARK, vm.id, '"disk0"', '"memoryMiB"'])
      expect(grep(join(encDir, 'chunks'), text).concat(grep(join(encDir, 'backups'), text))).toEqual([]);
    // restores right
    const r = await d.api.request<TaskView>('POST', `/api/v1/backups/${enc.id}/restore`, { name: 'bk1-enc' });
    expect((await waitTask(d.api, r.id, 180_000)).error).toBeUndefined();
    const back = await getVm(d.api, 'bk1-enc');
    await boot(back.id, () => vmAction(d.api, back.id, 'start'));
    expect(await read(back.id, 1000)).toBe(await read(vm.id, 1000));
    await vmAction(d.api, back.id, 'stop', '?force=true');
    // the same directory: refused without its key (none on this host) and with a wrong one; nothing written
    await d.api.request('DELETE', '/api/v1/backup/repositories/enc');
    rmSync(keyFile);
    const repoJson = readFileSync(join(encDir, 'repo.json'), 'utf8');
    expect(
      await rejection(d.api.request('POST', '/api/v1/backup/repositories', { name: 'enc2', path: encDir })),
    ).toMatchObject({ code: 'forbidden', message: expect.stringMatching(/give its key/) });
    expect(
      await rejection(
        d.api.request('POST', '/api/v1/backup/repositories', {
          name: 'enc2',
          path: encDir,
          key: Buffer.alloc(32, 7).toString('base64'),
        }),
      ),
    ).toMatchObject({ code: 'forbidden', message: expect.stringMatching(/wrong key/) });
    expect(readFileSync(join(encDir, 'repo.json'), 'utf8')).toBe(repoJson);
    expect(existsSync(keyFile)).toBe(false);
    // with its key: the backups are there again
    await d.api.request('POST', '/api/v1/backup/repositories', {
      name: 'enc2',
      path: encDir,
      key: key.toString('base64'),
    });
    expect(
      (await d.api.request<BackupView[]>('GET', '/api/v1/backups?repository=enc2')).map((b) => b.id),
    ).toEqual([enc.id]);
    await d.api.request('DELETE', '/api/v1/backup/repositories/enc2');
  }, 600_000);

  it('boot verification: passes for a good backup, fails for a damaged one; its VM and volumes are gone either way', async () => {
    const vm = await getVm(d.api, 'bk1');
    const [latest] = await d.api.request<BackupView[]>('GET', `/api/v1/backups?repository=r1&vm=${vm.id}`);
    const vmsBefore = (await d.api.request<{ name: string }[]>('GET', '/api/v1/vms'))
      .map((v) => v.name)
      .sort();
    const volumes = () => readdirSync(join(d.dataDir, 'pools', 'local', 'disks')).sort();
    const volsBefore = volumes();
    const verifyBoot = async () => {
      const t = await d.api.request<TaskView>('POST', `/api/v1/backups/${latest!.id}/boot-verify`, {
        timeoutSec: 240,
      });
      return waitTask(d.api, t.id, 400_000);
    };
    const good = await verifyBoot();
    expect(good.error).toBeUndefined();
    expect(good.result).toMatchObject({ passed: true, agentAfterMs: expect.any(Number) });
    expect(await d.api.request('GET', `/api/v1/backups/${latest!.id}`)).toMatchObject({
      bootVerify: { passed: true },
    });
    expect((await d.api.request<{ name: string }[]>('GET', '/api/v1/vms')).map((v) => v.name).sort()).toEqual(
      vmsBefore,
    );
    expect(volumes()).toEqual(volsBefore);

    // a damaged chunk of that backup: the restore inside fails, and so does the verification
    const index = JSON.parse(
      readFileSync(join(repoDir, 'backups', vm.id, latest!.id, 'disk0.index.json'), 'utf8'),
    ) as { chunks: (string | null)[] };
    const id = index.chunks.find((c): c is string => !!c)!;
    const file = join(repoDir, 'chunks', id.slice(0, 2), id);
    const original = readFileSync(file);
    const damaged = Buffer.from(original);
    damaged[damaged.length - 1]! ^= 0xff;
    writeFileSync(file, damaged);
    try {
      const bad = await verifyBoot();
      expect(bad.error?.message).toMatch(/boot verification failed: .*chunk/);
      expect(bad.result).toMatchObject({ passed: false, reason: expect.stringContaining(id) });
      expect(await d.api.request('GET', `/api/v1/backups/${latest!.id}`)).toMatchObject({
        bootVerify: { passed: false },
      });
      expect(
        (await d.api.request<{ name: string }[]>('GET', '/api/v1/vms')).map((v) => v.name).sort(),
      ).toEqual(vmsBefore);
      expect(volumes()).toEqual(volsBefore);
    } finally {
      writeFileSync(file, original);
    }
  }, 900_000);

  it('jobs: refused when wrong; run now backs each VM up and prunes by retention; the schedule runs it', async () => {
    const add = (body: Record<string, unknown>) =>
      d.api.request<Record<string, unknown>>('POST', '/api/v1/backup/jobs', body);
    const base = {
      name: 'j1',
      schedule: '@daily',
      repository: 'r1',
      selection: { vms: ['bk1', 'bk-empty'] },
    };
    expect(await rejection(add({ ...base, schedule: 'every day' }))).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/schedule "every day"/),
    });
    expect(await rejection(add({ ...base, repository: 'nope' }))).toMatchObject({ code: 'not_found' });
    expect(await rejection(add({ ...base, selection: { vms: ['nope'] } }))).toMatchObject({
      code: 'not_found',
    });
    expect(await rejection(add({ ...base, selection: {} }))).toMatchObject({ code: 'validation_failed' });
    const job = await add({ ...base, retention: { keepLast: 2 } });
    expect(job).toMatchObject({ name: 'j1', enabled: true, running: false, nextRunAt: expect.any(String) });
    expect(await rejection(add(base))).toMatchObject({ code: 'already_exists' });

    const bk1 = await getVm(d.api, 'bk1');
    expect(
      (await d.api.request<BackupView[]>('GET', `/api/v1/backups?repository=r1&vm=${bk1.id}`)).length,
    ).toBeGreaterThan(2);
    const t = await d.api.request<TaskView>('POST', '/api/v1/backup/jobs/j1/run');
    const done = await waitTask(d.api, t.id, 300_000);
    expect(done.error).toBeUndefined();
    const result = done.result as {
      vms: { vm: string; status: string; pruned?: number }[];
      pruned: number;
      gc?: unknown;
    };
    expect(result.vms.map((v) => [v.vm, v.status])).toEqual([
      ['bk1', 'ok'],
      ['bk-empty', 'ok'],
    ]);
    expect(result.pruned).toBeGreaterThan(0);
    expect(result.gc).toBeDefined();
    expect(
      await d.api.request<BackupView[]>('GET', `/api/v1/backups?repository=r1&vm=${bk1.id}`),
    ).toHaveLength(2);
    // what is left restores: verify of the repository is clean after the prune and GC
    const v = await d.api.request<TaskView>('POST', '/api/v1/backup/repositories/r1/verify');
    expect((await waitTask(d.api, v.id, 120_000)).result).toMatchObject({ bad: [] });
    expect(await d.api.request('GET', '/api/v1/backup/jobs/j1')).toMatchObject({ lastStatus: 'ok' });

    // the scheduler: every 3 seconds (a cron expression with seconds), then disabled
    const before = (await d.api.request<{ lastRunAt: string }>('GET', '/api/v1/backup/jobs/j1')).lastRunAt;
    await d.api.request('PATCH', '/api/v1/backup/jobs/j1', { schedule: '*/3 * * * * *' });
    try {
      await waitFor(
        async () =>
          (await d.api.request<{ lastRunAt: string }>('GET', '/api/v1/backup/jobs/j1')).lastRunAt > before,
        { timeoutMs: 120_000, intervalMs: 500, what: 'the scheduled run' },
      );
    } finally {
      await d.api.request('PATCH', '/api/v1/backup/jobs/j1', { enabled: false });
    }
    const tasks = await d.api.request<(TaskView & { user: string; target: string })[]>(
      'GET',
      '/api/v1/tasks',
    );
    expect(tasks.find((x) => x.type === 'backup.job' && x.user === 'scheduler')).toBeDefined();
    await waitFor(
      async () => !(await d.api.request<{ running: boolean }>('GET', '/api/v1/backup/jobs/j1')).running,
      {
        timeoutMs: 120_000,
        what: 'the scheduled run to end',
      },
    );
    await d.api.request('DELETE', '/api/v1/backup/jobs/j1');
    expect(await d.api.request('GET', '/api/v1/backup/jobs')).toEqual([]);
    // the CLI
    expect(
      await d.cli([
        'backup',
        'job',
        'add',
        'j2',
        '--schedule',
        '@daily',
        '--repository',
        'r1',
        '--vm',
        'bk1',
        '--keep-last',
        '3',
      ]),
    ).toMatch(/job j2: next run 20\d\d-/);
    expect(await d.cli(['backup', 'job', 'list'])).toMatch(/j2\s+@daily\s+r1\s+bk1/);
    expect(await d.api.request('GET', '/api/v1/backup/jobs/j2')).toMatchObject({
      retention: { keepLast: 3 },
    });
    await d.cli(['backup', 'job', 'rm', 'j2']);

    // selection by tag: the VMs carrying it when the job runs (tags set with the CLI)
    expect(await d.cli(['vm', 'set', 'bk-empty', '--tag', 'nightly', '--tag', 'env:test'])).toMatch(
      /Tags:\s+env:test, nightly/,
    );
    expect(
      await rejection(add({ ...base, name: 'j3', selection: { all: true, tags: ['nightly'] } })),
    ).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/exclude each other/),
    });
    expect(await rejection(add({ ...base, name: 'j3', selection: { tags: ['Bad Tag'] } }))).toMatchObject({
      code: 'validation_failed',
    });
    await d.cli([
      'backup',
      'job',
      'add',
      'j3',
      '--schedule',
      '@daily',
      '--repository',
      'r1',
      '--tag',
      'nightly',
    ]);
    expect(await d.cli(['backup', 'job', 'list'])).toMatch(/j3\s+@daily\s+r1\s+tags nightly/);
    const tagged = await waitTask(
      d.api,
      (await d.api.request<TaskView>('POST', '/api/v1/backup/jobs/j3/run')).id,
      300_000,
    );
    expect((tagged.result as { vms: { vm: string; status: string }[] }).vms).toEqual([
      expect.objectContaining({ vm: 'bk-empty', status: 'ok' }),
    ]);
    await d.cli(['vm', 'set', 'bk-empty', '--no-tags']);
    expect((await getVm(d.api, 'bk-empty')).tags).toBeUndefined();
    await d.cli(['backup', 'job', 'rm', 'j3']);
  }, 600_000);

  it('restores in place over the stopped VM: its disk replaced, snapshots dropped; refused while it runs', async () => {
    const vm = await getVm(d.api, 'bk1');
    expect(vm.state).toBe('running');
    const b = await write(vm.id, 64);
    const taken = await backup(vm.id);
    const c = await write(vm.id, 64);
    expect(c).not.toBe(b);
    expect(
      await rejection(d.api.request('POST', `/api/v1/backups/${taken.id}/restore`, { inPlace: true })),
    ).toMatchObject({ code: 'invalid_state', message: expect.stringMatching(/must be stopped/) });
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    await d.api.request('POST', `/api/v1/vms/${vm.id}/snapshots`, { name: 'before-restore' });
    const disks = join(d.dataDir, 'pools', 'local', 'disks');
    const oldVolume = (await d.api.request<{ disks: { volume: string }[] }>('GET', `/api/v1/vms/${vm.id}`))
      .disks[0]!.volume;
    const t = await d.api.request<TaskView>('POST', `/api/v1/backups/${taken.id}/restore`, { inPlace: true });
    const done = await waitTask(d.api, t.id, 300_000);
    expect(done.error).toBeUndefined();
    expect(done.result).toMatchObject({
      inPlace: true,
      disks: ['disk0'],
      snapshotsDropped: ['before-restore'],
    });
    const after = await d.api.request<{ disks: { volume: string }[]; snapshots: unknown[] }>(
      'GET',
      `/api/v1/vms/${vm.id}`,
    );
    expect(after.snapshots).toEqual([]);
    expect(after.disks[0]!.volume).not.toBe(oldVolume);
    expect(readdirSync(disks)).not.toContain(oldVolume);
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    expect(await read(vm.id, 64)).toBe(b);
    // a new volume has no change bitmap: the next backup reads it whole and says why
    const next = await backup(vm.id);
    expect(next.disks[0]).toMatchObject({ mode: 'full', fullReason: expect.stringMatching(/bitmap/) });
  }, 600_000);

  it('a running VM stopped while its disks are read: the stop is not held up, the backup fails clearly, nothing is stored', async () => {
    const vm = await getVm(d.api, 'bk1');
    expect(vm.state).toBe('running');
    await d.api.request('POST', '/api/v1/backup/repositories', { name: 'r3', path: `${repoDir}-3` });
    const t = await d.api.request<TaskView>('POST', `/api/v1/vms/${vm.id}/backup`, { repository: 'r3' });
    await waitFor(
      async () =>
        (await d.api.request<TaskView>('GET', `/api/v1/tasks/${t.id}`)).details?.phase === 'reading',
      { timeoutMs: 60_000, intervalMs: 20, what: 'the backup to read' },
    );
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    const ended = await waitTask(d.api, t.id, 120_000);
    // had the stop waited for the backup (the VM's lock), the backup would have ended well first
    expect(ended).toMatchObject({
      status: 'error',
      error: { code: 'cancelled', message: expect.stringMatching(/stopped during its backup/) },
    });
    expect(await d.api.request<BackupView[]>('GET', '/api/v1/backups?repository=r3')).toEqual([]);
    expect(readdirSync(join(`${repoDir}-3`, 'backups', vm.id))).toEqual([]);
  }, 300_000);

  it('file restore: browses the ext4 data disk of a running guest backup; downloads give the files as they were', async () => {
    await d.api.request('POST', '/api/v1/images/import', { name: 'data', path: testGuest().dataDisk });
    const vm = await createVm(d.api, kernelVm('bkf', { disks: [{ sizeGiB: 1 }, { image: 'data' }] }));
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    const md5 = /[0-9a-f]{32}/.exec(
      await run(
        vm.id,
        'mkdir -p /data/etc/deep && echo backed-up > /data/etc/hostname && ln -s etc/hostname /data/link && dd if=/dev/urandom of=/data/big.bin bs=1M count=9 2>/dev/null && sync && md5sum /data/big.bin',
      ),
    )?.[0];
    expect(md5).toBeTruthy();
    const b = await backup(vm.id);
    expect(b.consistency).toBe('filesystem');
    await run(vm.id, 'echo changed > /data/etc/hostname; rm /data/big.bin; sync');

    const fss = await d.api.request<
      { id: string; disk: string; type: string; label?: string; readable: boolean; needsRecovery?: boolean }[]
    >('GET', `/api/v1/backups/${b.id}/files`);
    // disk0 is blank; disk1 is the guest's ext4 (frozen for the backup: its journal is clean)
    expect(fss).toEqual([
      {
        id: 'disk1',
        disk: 'disk1',
        type: 'ext4',
        label: 'nfdata',
        readable: true,
        offsetBytes: 0,
        sizeBytes: expect.any(Number),
        uuid: expect.any(String),
      },
    ]);
    const root = await d.api.request<{
      entries: { name: string; type: string; size: number; target?: string }[];
    }>('GET', `/api/v1/backups/${b.id}/files/disk1?path=/`);
    expect(root.entries).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'etc', type: 'dir' }),
        expect.objectContaining({ name: 'big.bin', type: 'file', size: 9 * 1048576 }),
        expect.objectContaining({ name: 'link', type: 'symlink', target: 'etc/hostname' }),
      ]),
    );
    const download = async (path: string) => {
      const res = await d.api.stream(
        `/api/v1/backups/${b.id}/files/disk1/download?path=${encodeURIComponent(path)}`,
      );
      return { res, body: Buffer.from(await res.arrayBuffer()) };
    };
    const big = await download('/big.bin');
    expect(big.res.headers.get('content-disposition')).toBe("attachment; filename*=UTF-8''big.bin");
    expect(createHash('md5').update(big.body).digest('hex')).toBe(md5);
    expect((await download('/etc/hostname')).body.toString()).toBe('backed-up\n');
    // bad requests name what is wrong
    expect(
      await rejection(d.api.request('GET', `/api/v1/backups/${b.id}/files/disk1?path=/nope`)),
    ).toMatchObject({ code: 'not_found' });
    expect(
      await rejection(d.api.request('GET', `/api/v1/backups/${b.id}/files/disk1?path=etc`)),
    ).toMatchObject({ code: 'validation_failed' });
    expect(
      await rejection(d.api.request('GET', `/api/v1/backups/${b.id}/files/disk1?path=/etc/../..`)),
    ).toMatchObject({ code: 'validation_failed' });
    expect(await rejection(d.api.request('GET', `/api/v1/backups/${b.id}/files/disk9?path=/`))).toMatchObject(
      { code: 'not_found' },
    );
    expect(await rejection(download('/etc'))).toMatchObject({ code: 'validation_failed' });
    expect(await rejection(download('/link'))).toMatchObject({ code: 'validation_failed' });

    // the CLI
    expect(await d.cli(['backup', 'files', b.id])).toMatch(/disk1\s+ext4\s+64 MiB\s+nfdata\s+yes/);
    expect(await d.cli(['backup', 'files', b.id, 'disk1', '/etc'])).toMatch(
      /-rw-r--r--\s+10\s+\S+ \S+\s+hostname/,
    );
    const out = join(mkdtempSync(join(tmpdir(), 'nf-dl-')), 'hostname');
    try {
      expect(await d.cli(['backup', 'download', b.id, 'disk1', '/etc/hostname', '--output', out])).toContain(
        `→ ${out} (10 bytes)`,
      );
      expect(readFileSync(out, 'utf8')).toBe('backed-up\n');
      await expect(
        d.cli(['backup', 'download', b.id, 'disk1', '/etc/hostname', '--output', out]),
      ).rejects.toThrow(/exists/);
    } finally {
      rmSync(join(out, '..'), { recursive: true, force: true });
    }
    await vmAction(d.api, vm.id, 'stop', '?force=true');
  }, 300_000);
});
