import { describe, expect, it } from 'vitest';
import type { Task } from './api';
import {
  type Backup,
  type BackupDisk,
  type BackupRepository,
  backupDetails,
  backupMode,
  backupOutcome,
  backupProgress,
  backupResult,
  backupTotals,
  consistencyLabel,
  consistencyTitle,
  count,
  dataLine,
  diskModeLine,
  diskModeReason,
  filterBackups,
  gcOutcome,
  gcResult,
  groupByVm,
  lastTask,
  maintenanceLine,
  repositoryHint,
  repositoryLine,
  restoreName,
  restoreProblem,
  restoreResult,
  usableRepositories,
  verifyOutcome,
  verifyResult,
} from './backups';

const MiB = 1024 * 1024;

const disk = (over: Partial<BackupDisk> = {}): BackupDisk => ({
  id: 'disk0',
  sizeBytes: 1024 * MiB,
  mode: 'full',
  readBytes: 8 * MiB,
  chunksRead: 2,
  newChunks: 2,
  newBytesStored: 3 * MiB,
  zeroChunks: 254,
  ...over,
});

const backup = (over: Partial<Backup> = {}): Backup => ({
  id: '2025-01-02T030405Z-abc123',
  repository: 'r1',
  vm: { id: 'vm-1', name: 'web1' },
  node: 'h1',
  startedAt: '2025-01-02T03:04:05.000Z',
  pointInTime: '2025-01-02T03:04:06.000Z',
  endedAt: '2025-01-02T03:04:09.000Z',
  consistency: 'filesystem',
  sizeBytes: 1024 * MiB,
  config: { name: 'web1', vcpus: 1, memoryMiB: 256, disks: 1 },
  disks: [disk()],
  ...over,
});

const task = (over: Partial<Task>): Task => ({
  id: 't1',
  type: 'vm.backup',
  target: 'web1',
  status: 'running',
  progress: 0,
  ...over,
});

describe('backup consistency', () => {
  it('names each kind and explains it, with the API note when there is one', () => {
    expect(consistencyLabel('filesystem')).toBe('file-system consistent');
    expect(consistencyLabel('crash')).toBe('crash consistent');
    expect(consistencyLabel('stopped')).toBe('VM powered off');
    expect(consistencyLabel('other')).toBe('other');
    expect(consistencyTitle({ consistency: 'filesystem' })).toMatch(/guest agent froze the file systems/);
    expect(
      consistencyTitle({ consistency: 'crash', consistencyNote: 'the guest agent did not answer' }),
    ).toBe(
      'As after a power cut: the guest agent did not freeze the file systems. the guest agent did not answer',
    );
  });
});

describe('backup modes', () => {
  it('is full or incremental when every disk is, else mixed', () => {
    expect(backupMode(backup())).toBe('full');
    expect(backupMode(backup({ disks: [disk({ mode: 'incremental' })] }))).toBe('incremental');
    expect(backupMode(backup({ disks: [disk(), disk({ id: 'disk1', mode: 'incremental' })] }))).toBe('mixed');
    expect(backupMode(backup({ disks: [] }))).toBe('full');
  });

  it('says each disk mode and why it was read so', () => {
    expect(diskModeLine(disk())).toBe('disk0: full');
    expect(diskModeReason(disk())).toBe('first backup of this disk in the repository');
    expect(diskModeReason(disk({ fullReason: 'no change bitmap since backup X' }))).toBe(
      'no change bitmap since backup X',
    );
    expect(diskModeReason(disk({ mode: 'incremental', base: 'b1' }))).toBe('changes since backup b1');
    expect(diskModeReason(disk({ mode: 'incremental' }))).toBe('changes only');
  });

  it('adds up the data read and stored over the disks', () => {
    const b = backup({
      disks: [disk(), disk({ id: 'disk1', readBytes: 4 * MiB, newBytesStored: MiB, chunksRead: 1 })],
    });
    expect(backupTotals(b)).toEqual({ read: 12 * MiB, stored: 4 * MiB, chunksRead: 3 });
    expect(dataLine(b)).toBe('read 12.0 MiB, stored 4.0 MiB');
    expect(backupOutcome({ ...b, totalMs: 3210 })).toBe('full, read 12.0 MiB, stored 4.0 MiB in 3.2 s');
    expect(backupOutcome(backup({ disks: [disk({ mode: 'incremental' })] }))).toBe(
      'incremental, read 8.0 MiB, stored 3.0 MiB',
    );
  });
});

describe('repositories', () => {
  const ok: BackupRepository = {
    name: 'r1',
    path: '/srv/b',
    node: 'h1',
    createdAt: '2025-01-01T00:00:00Z',
    backups: 2,
    usage: { chunks: 10, bytes: 40 * MiB },
  };
  const bad: BackupRepository = { ...ok, name: 'r2', backups: undefined, usage: undefined, error: 'ENOENT' };
  const remote: BackupRepository = { ...ok, name: 'r3', node: 'h2', backups: undefined, usage: undefined };

  it('says what a repository holds, or why it cannot be read', () => {
    expect(repositoryLine(ok)).toBe('2 backups, 40.0 MiB');
    expect(repositoryLine({ ...ok, backups: 1 })).toBe('1 backup, 40.0 MiB');
    expect(repositoryLine(bad)).toBe('unreadable: ENOENT');
    expect(repositoryLine(remote)).toBe('on host h2: open it through that host');
  });

  it('offers only readable repositories of this host for a backup', () => {
    expect(usableRepositories([ok, bad, remote]).map((r) => r.name)).toEqual(['r1']);
  });

  it('hints at a bad name while it is typed; the path is left to the API', () => {
    expect(repositoryHint({ name: '', path: '' })).toBe('');
    expect(repositoryHint({ name: 'nas-1', path: 'relative' })).toBe('');
    expect(repositoryHint({ name: 'NAS', path: '/srv' })).toMatch(/^Name: lowercase/);
    expect(repositoryHint({ name: '-x', path: '/srv' })).toMatch(/^Name/);
  });
});

describe('lists of backups', () => {
  const list = [
    backup({ id: 'c', pointInTime: '2025-01-03T00:00:00Z', vm: { id: 'vm-1', name: 'web1-renamed' } }),
    backup({
      id: 'x',
      repository: 'r2',
      pointInTime: '2025-01-02T12:00:00Z',
      vm: { id: 'vm-2', name: 'db' },
    }),
    backup({ id: 'b', pointInTime: '2025-01-02T00:00:00Z' }),
    backup({ id: 'a', pointInTime: '2025-01-01T00:00:00Z', vm: { id: 'vm-9', name: 'web1' } }),
  ];

  it('groups by VM id (a renamed VM once, under its newest name; two VMs of one name apart)', () => {
    expect(groupByVm(list)).toEqual([
      { vm: { id: 'vm-2', name: 'db' }, count: 1, latest: '2025-01-02T12:00:00Z', stored: 3 * MiB },
      { vm: { id: 'vm-9', name: 'web1' }, count: 1, latest: '2025-01-01T00:00:00Z', stored: 3 * MiB },
      { vm: { id: 'vm-1', name: 'web1-renamed' }, count: 2, latest: '2025-01-03T00:00:00Z', stored: 6 * MiB },
    ]);
    expect(groupByVm([])).toEqual([]);
  });

  it('filters by repository and VM, keeping the order', () => {
    expect(filterBackups(list, { repository: '', vm: '' }).map((b) => b.id)).toEqual(['c', 'x', 'b', 'a']);
    expect(filterBackups(list, { repository: 'r1', vm: '' }).map((b) => b.id)).toEqual(['c', 'b', 'a']);
    expect(filterBackups(list, { repository: 'r1', vm: 'vm-1' }).map((b) => b.id)).toEqual(['c', 'b']);
    expect(filterBackups(list, { repository: 'r2', vm: 'vm-1' })).toEqual([]);
  });
});

describe('restore', () => {
  it('suggests a free name', () => {
    expect(restoreName('web1', [])).toBe('web1-restored');
    expect(restoreName('web1', ['web1-restored', 'web1-restored-2'])).toBe('web1-restored-3');
    const long = 'a'.repeat(63);
    expect(restoreName(long, [])).toHaveLength(63);
    expect(restoreName(long, [restoreName(long, [])])).toMatch(/-restored-2$/);
    expect(restoreName(long, [restoreName(long, [])])).toHaveLength(63);
  });

  it('checks the name as the API does', () => {
    expect(restoreProblem('web1-restored')).toBe('');
    expect(restoreProblem('')).toBe('Give the new VM a name.');
    expect(restoreProblem('web 1')).toMatch(/^Name: letters/);
    expect(restoreProblem('a'.repeat(64))).toMatch(/^Name/);
  });
});

describe('backup and restore tasks', () => {
  it('reads the details and result of a backup task, and nothing of other tasks', () => {
    const t = task({
      details: { repository: 'r1', phase: 'reading', disk: 'disk0', doneBytes: MiB, totalBytes: 4 * MiB },
    });
    expect(backupDetails(t)).toMatchObject({ phase: 'reading', disk: 'disk0' });
    expect(backupDetails(task({}))).toEqual({});
    expect(backupDetails(task({ type: 'vm.import', details: { phase: 'reading' } }))).toBeUndefined();
    const done = task({ status: 'ok', progress: 1, result: { ...backup(), totalMs: 1500 } });
    expect(backupResult(done)?.id).toBe(backup().id);
    expect(backupResult(task({ status: 'ok', result: { id: 'x' } }))).toBeUndefined();
    expect(backupResult(task({ type: 'backup.restore', result: { ...backup() } }))).toBeUndefined();
  });

  it('reads the new VM of a restore task', () => {
    expect(
      restoreResult(
        task({ type: 'backup.restore', status: 'ok', result: { vm: 'web1-restored', id: 'v2' } }),
      ),
    ).toEqual({
      vm: 'web1-restored',
      id: 'v2',
    });
    expect(restoreResult(task({ type: 'backup.restore', status: 'running' }))).toBeUndefined();
    expect(restoreResult(task({ type: 'vm.backup', result: { vm: 'a', id: 'b' } }))).toBeUndefined();
  });

  it('says the phase of a running backup', () => {
    expect(backupProgress({})).toBe('starting');
    expect(backupProgress({ phase: 'freezing' })).toBe('freezing the file systems');
    expect(backupProgress({ phase: 'reading', disk: 'disk0' })).toBe('reading disk0');
    expect(backupProgress({ phase: 'reading', disk: 'disk0', doneBytes: MiB, totalBytes: 4 * MiB })).toBe(
      'disk0: 1.0 MiB of 4.0 MiB read',
    );
    expect(backupProgress({ phase: 'committing' })).toBe('committing');
  });
});

describe('repository maintenance reports', () => {
  it('says what a verify found', () => {
    expect(verifyOutcome({ backups: 3, chunks: 40, bad: [], broken: [] })).toBe(
      '3 backups, 40 chunks: all intact',
    );
    expect(
      verifyOutcome({
        backups: 1,
        chunks: 4,
        bad: [{ chunk: 'ab', error: 'hash mismatch', backups: ['b1'] }],
        broken: [{ id: 'b1', vm: 'web1' }],
      }),
    ).toBe('1 backup, 4 chunks: 1 damaged chunk; broken: web1 (b1)');
    expect(verifyOutcome({ backups: 1, chunks: 1, bad: [] })).toBe('1 backup, 1 chunk: all intact');
  });

  it('counts in words', () => {
    expect(count(0, 'chunk')).toBe('0 chunks');
    expect(count(1, 'chunk')).toBe('1 chunk');
    expect(count(2, 'damaged chunk')).toBe('2 damaged chunks');
  });

  it('says what a garbage collection freed', () => {
    expect(gcOutcome({ keptChunks: 30, removedChunks: 2, freedBytes: 8 * MiB })).toBe(
      'removed 2 chunks, freed 8.0 MiB (kept 30)',
    );
    expect(gcOutcome({ keptChunks: 1, removedChunks: 1, freedBytes: 0 })).toBe(
      'removed 1 chunk, freed 0 B (kept 1)',
    );
  });

  const report = { repository: 'r1', backups: 2, chunks: 5, bad: [], broken: [] };
  const verify = (over: Partial<Task>) => task({ type: 'backup.verify', target: 'r1', ...over });
  const gc = (over: Partial<Task>) => task({ type: 'backup.gc', target: 'r1', ...over });

  it('reads the reports of finished verify and GC tasks only', () => {
    expect(verifyResult(verify({ status: 'ok', result: report }))).toEqual(report);
    expect(verifyResult(verify({ status: 'running' }))).toBeUndefined();
    expect(verifyResult(gc({ status: 'ok', result: report }))).toBeUndefined();
    const freed = { repository: 'r1', keptChunks: 3, removedChunks: 1, freedBytes: MiB };
    expect(gcResult(gc({ status: 'ok', result: freed }))).toEqual(freed);
    expect(gcResult(verify({ status: 'ok', result: freed }))).toBeUndefined();
  });

  it('finds the newest verify or GC of a target', () => {
    const tasks = [
      verify({ id: 'new', target: 'b1' }),
      gc({ id: 'g' }),
      verify({ id: 'newer' }),
      verify({ id: 'older' }),
    ];
    expect(lastTask(tasks, 'backup.verify', 'r1')?.id).toBe('newer');
    expect(lastTask(tasks, 'backup.verify', 'b1')?.id).toBe('new');
    expect(lastTask(tasks, 'backup.gc', 'r1')?.id).toBe('g');
    expect(lastTask(tasks, 'backup.gc', 'r2')).toBeUndefined();
  });

  it('says in one line how a verify or GC went, and whether it is bad news', () => {
    expect(maintenanceLine(verify({}))).toEqual({ text: 'verify running…', bad: false });
    expect(maintenanceLine(gc({}))).toEqual({ text: 'garbage collection running…', bad: false });
    expect(maintenanceLine(verify({ status: 'ok', result: report }))).toEqual({
      text: 'verify: 2 backups, 5 chunks: all intact',
      bad: false,
    });
    const damaged = {
      ...report,
      bad: [{ chunk: 'ab', error: 'missing', backups: ['b1'] }],
      broken: [{ id: 'b1', vm: 'web1' }],
    };
    expect(maintenanceLine(verify({ status: 'ok', result: damaged }))).toEqual({
      text: 'verify: 2 backups, 5 chunks: 1 damaged chunk; broken: web1 (b1)',
      bad: true,
    });
    expect(
      maintenanceLine(gc({ status: 'ok', result: { keptChunks: 3, removedChunks: 0, freedBytes: 0 } })),
    ).toEqual({
      text: 'garbage collection: removed 0 chunks, freed 0 B (kept 3)',
      bad: false,
    });
    expect(
      maintenanceLine(gc({ status: 'error', error: { code: 'invalid_state', message: 'a backup runs' } })),
    ).toEqual({
      text: 'garbage collection failed: a backup runs',
      bad: true,
    });
  });
});
