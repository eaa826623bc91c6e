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
  backupTask,
  backupTotals,
  bootTimeoutProblem,
  bootVerifyBody,
  bootVerifyDetails,
  bootVerifyLine,
  bootVerifyProgress,
  bootVerifyResult,
  bootVerifyTitle,
  breadcrumbs,
  consistencyLabel,
  consistencyTitle,
  count,
  dataLine,
  directoryPath,
  diskModeLine,
  diskModeReason,
  downloadHref,
  type FileEntry,
  filesystemLine,
  filesystemsPath,
  filterBackups,
  gcOutcome,
  gcResult,
  groupByVm,
  inPlacePlan,
  joinPath,
  lastTask,
  maintenanceLine,
  modeString,
  normalPath,
  parentPath,
  type RestoreForm,
  repositoryHint,
  repositoryLine,
  repositoryTask,
  restoreBody,
  restoreFormProblem,
  restoreName,
  restoreNote,
  restoreProblem,
  restoreResult,
  restoreToast,
  seconds,
  sortEntries,
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

  it('says how a restore ended: in place (the snapshots dropped), started, or not started', () => {
    const inPlace = { vm: 'web1', id: 'v1', inPlace: true, disks: ['disk0', 'disk1'] };
    expect(restoreNote(inPlace)).toBe(' restored in place (disk0, disk1)');
    expect(restoreNote({ ...inPlace, snapshotsDropped: ['s1', 's2'] })).toBe(
      ' restored in place (disk0, disk1); snapshots dropped: s1, s2',
    );
    expect(restoreNote({ vm: 'n', id: 'v2' })).toBe('');
    expect(restoreNote({ vm: 'n', id: 'v2', started: true })).toBe(', started');
    expect(restoreNote({ vm: 'n', id: 'v2', startError: 'not enough memory' })).toBe(
      '; not started: not enough memory',
    );
    expect(restoreToast('web1', { ...inPlace, snapshotsDropped: ['s1'] })).toEqual({
      text: 'Backup of web1 restored in place over VM web1; snapshots dropped: s1',
      error: false,
    });
    expect(restoreToast('web1', inPlace).text).toBe(
      'Backup of web1 restored in place over VM web1; it had no snapshots',
    );
    expect(restoreToast('web1', { vm: 'n', id: 'v2' })).toEqual({
      text: 'Backup of web1 restored as VM n',
      error: false,
    });
    expect(restoreToast('web1', { vm: 'n', id: 'v2', started: true }).text).toBe(
      'Backup of web1 restored as VM n, started',
    );
    expect(restoreToast('web1', { vm: 'n', id: 'v2', startError: 'no memory' })).toEqual({
      text: 'Backup of web1 restored as VM n; it did not start: no memory',
      error: true,
    });
    expect(
      restoreResult(
        task({ type: 'backup.restore', status: 'ok', result: { ...inPlace, snapshotsDropped: [] } }),
      ),
    ).toMatchObject({ inPlace: true, disks: ['disk0', 'disk1'] });
  });

  it('says the phase of a running backup', () => {
    expect(backupProgress({})).toBe('starting');
    expect(backupProgress({ phase: 'freezing' })).toBe('freezing the file systems');
    expect(backupProgress({ phase: 'reading', disk: 'disk0' })).toBe('reading disk0');
    expect(backupProgress({ phase: 'reading', disk: 'disk0', doneBytes: MiB, totalBytes: 4 * MiB })).toBe(
      'disk0: 1.0 MiB of 4.0 MiB read',
    );
    expect(backupProgress({ phase: 'captured' })).toBe('captured; reading the disks');
    expect(backupProgress({ phase: 'committing' })).toBe('committing');
  });
});

describe('the restore dialog', () => {
  const form = (over: Partial<RestoreForm> = {}): RestoreForm => ({
    target: 'new',
    name: 'web1-restored',
    pool: '',
    start: false,
    confirmed: false,
    ...over,
  });
  const vm = {
    name: 'web1',
    state: 'stopped' as const,
    disks: [{ id: 'disk0', pool: 'local', volume: 'v0', sizeBytes: 1 }],
    snapshots: [{ name: 'before', vmState: 'stopped' }],
  };

  it('makes the body of a restore into a new VM: pool and start only when set', () => {
    expect(restoreBody(form({ name: ' n1 ' }), 'r1')).toEqual({ name: 'n1', repository: 'r1' });
    expect(restoreBody(form({ pool: 'fast', start: true }), 'r1')).toEqual({
      name: 'web1-restored',
      repository: 'r1',
      pool: 'fast',
      start: true,
    });
  });

  it('makes the body of a restore in place: no name, pool or start', () => {
    expect(
      restoreBody(form({ target: 'in-place', pool: 'fast', start: true, confirmed: true }), 'r1'),
    ).toEqual({ inPlace: true, repository: 'r1' });
  });

  it('holds back a bad name, an unconfirmed restore in place, and one over a VM deleted since', () => {
    expect(restoreFormProblem(form(), vm)).toBe('');
    expect(restoreFormProblem(form({ name: '' }), vm)).toBe('Give the new VM a name.');
    expect(restoreFormProblem(form({ name: 'a b' }), vm)).toMatch(/^Name: /);
    expect(restoreFormProblem(form({ target: 'in-place', name: '' }), vm)).toBe(
      'Confirm that its disks are replaced.',
    );
    expect(restoreFormProblem(form({ target: 'in-place', confirmed: true }), vm)).toBe('');
    // running: the API says why it refuses
    expect(
      restoreFormProblem(form({ target: 'in-place', confirmed: true }), { ...vm, state: 'running' }),
    ).toBe('');
    expect(restoreFormProblem(form({ target: 'in-place', confirmed: true }), undefined)).toMatch(
      /no longer exists/,
    );
  });

  it('says what a restore in place replaces and drops, and that a running VM must stop first', () => {
    const b = backup({ disks: [disk(), disk({ id: 'disk1' })] });
    expect(inPlacePlan(b, vm)).toEqual({
      replaced: ['disk0'],
      skipped: ['disk1'],
      snapshots: ['before'],
      state: '',
    });
    expect(inPlacePlan(b, { ...vm, state: 'running', snapshots: [] })).toMatchObject({
      snapshots: [],
      state: 'VM web1 is running now: stop it first (a restore in place is refused while it runs).',
    });
    expect(inPlacePlan(b, undefined)).toMatchObject({ replaced: [], state: 'deleted' });
  });
});

describe('boot verification', () => {
  const boot = (over: Partial<Task>) =>
    task({ type: 'backup.boot-verify', target: '2025-01-02T030405Z-abc123', ...over });

  it('says seconds', () => {
    expect(seconds(0)).toBe('0 s');
    expect(seconds(1540)).toBe('1.5 s');
    expect(seconds(9_960)).toBe('10 s');
    expect(seconds(23_400)).toBe('23 s');
  });

  it('checks the wait typed and makes the body', () => {
    expect(bootTimeoutProblem('')).toBe('');
    expect(bootTimeoutProblem(' 240 ')).toBe('');
    expect(bootTimeoutProblem('10')).toBe('');
    expect(bootTimeoutProblem('3600')).toBe('');
    for (const bad of ['9', '3601', '1.5', 'x', '-20'])
      expect(bootTimeoutProblem(bad)).toBe('A whole number of seconds from 10 to 3600, or empty (300).');
    expect(bootVerifyBody('r1', '')).toEqual({ repository: 'r1' });
    expect(bootVerifyBody('r1', ' 240')).toEqual({ repository: 'r1', timeoutSec: 240 });
    expect(bootVerifyBody('r1', '5')).toEqual({ repository: 'r1' });
  });

  it('says the phase of a running verification (the restore inside names its disk)', () => {
    expect(bootVerifyProgress({})).toBe('starting');
    expect(bootVerifyProgress({ phase: 'restoring', vm: 'verify-web1-1a2b' })).toBe(
      'restoring the disks into verify-web1-1a2b',
    );
    expect(bootVerifyProgress({ phase: 'writing', vm: 'verify-web1-1a2b', disk: 'disk0' })).toBe(
      'restoring disk0 into verify-web1-1a2b',
    );
    expect(bootVerifyProgress({ phase: 'booting', vm: 'verify-web1-1a2b', disk: 'disk0' })).toBe(
      'booting verify-web1-1a2b: waiting for its guest agent',
    );
    expect(bootVerifyProgress({ phase: 'cleaning up', vm: 'verify-web1-1a2b' })).toBe(
      'deleting verify-web1-1a2b',
    );
  });

  it('reads the details and the result (failed too) of a boot-verify task only', () => {
    expect(bootVerifyDetails(boot({ details: { phase: 'booting', vm: 'v' } }))).toEqual({
      phase: 'booting',
      vm: 'v',
    });
    expect(bootVerifyDetails(task({ details: { phase: 'reading' } }))).toBeUndefined();
    const passed = { backup: 'b', vm: 'v', passed: true, at: '2025-01-02T04:00:00Z', agentAfterMs: 12_300 };
    expect(bootVerifyResult(boot({ status: 'ok', result: passed }))).toEqual(passed);
    const failed = { passed: false, at: '2025-01-02T04:00:00Z', reason: 'timed out' };
    expect(bootVerifyResult(boot({ status: 'error', result: failed }))).toEqual(failed);
    expect(bootVerifyResult(boot({ status: 'running' }))).toBeUndefined();
    expect(bootVerifyResult(task({ status: 'ok', result: passed }))).toBeUndefined();
  });

  it('says in a line how it went, and more in the tooltip', () => {
    const at = '2025-01-02T04:00:00Z';
    expect(bootVerifyLine({ passed: true, at, agentAfterMs: 12_300 })).toBe('✓ agent after 12 s');
    expect(bootVerifyLine({ passed: true, at })).toBe('✓ passed');
    expect(bootVerifyLine({ passed: false, at, reason: 'timed out waiting for the guest agent' })).toBe(
      '✗ failed: timed out waiting for the guest agent',
    );
    expect(bootVerifyTitle({ passed: true, at, agentAfterMs: 12_300, totalMs: 40_000 }, 'T')).toBe(
      'Boot-verified T: restored into an isolated VM that started, and its guest agent answered 12 s after the start (restore, boot and clean-up: 40 s)',
    );
    expect(bootVerifyTitle({ passed: false, at, reason: 'bad chunk' }, 'T')).toBe(
      'Boot verification failed T: bad chunk',
    );
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

  it("finds a repository's and a backup's tasks by their details (a task without them: by target)", () => {
    const tasks = [
      verify({ id: '5', target: 'b1', details: { repository: 'r1', backup: 'b1' } }),
      verify({ id: '4', target: 'b1', details: { repository: 'r2', backup: 'b1' } }),
      gc({ id: '3', details: { repository: 'r1' } }),
      verify({ id: '2', target: 'r1', details: { repository: 'r1' } }),
      verify({ id: '1', target: 'r9' }),
      task({ id: '0', type: 'backup.boot-verify', target: 'b1', details: { phase: 'booting', vm: 'v' } }),
    ];
    expect(repositoryTask(tasks, 'backup.verify', 'r1')?.id).toBe('2');
    expect(repositoryTask(tasks, 'backup.gc', 'r1')?.id).toBe('3');
    expect(repositoryTask(tasks, 'backup.verify', 'r9')?.id).toBe('1');
    expect(repositoryTask(tasks, 'backup.verify', 'b1')).toBeUndefined();
    expect(backupTask(tasks, 'backup.verify', { id: 'b1', repository: 'r1' })?.id).toBe('5');
    expect(backupTask(tasks, 'backup.verify', { id: 'b1', repository: 'r2' })?.id).toBe('4');
    expect(backupTask(tasks, 'backup.verify', { id: 'r1', repository: 'r1' })).toBeUndefined();
    expect(backupTask(tasks, 'backup.boot-verify', { id: 'b1', repository: 'r1' })?.id).toBe('0');
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

describe('file restore', () => {
  it('writes st_mode as ls -l does', () => {
    expect(modeString(0o040755)).toBe('drwxr-xr-x');
    expect(modeString(0o100644)).toBe('-rw-r--r--');
    expect(modeString(0o120777)).toBe('lrwxrwxrwx');
    expect(modeString(0o040700)).toBe('drwx------');
    expect(modeString(0o100000)).toBe('----------');
    expect(modeString(0o020620)).toBe('crw--w----');
    expect(modeString(0o060660)).toBe('brw-rw----');
    expect(modeString(0o010644)).toBe('prw-r--r--');
    expect(modeString(0o140755)).toBe('srwxr-xr-x');
    // setuid, setgid and sticky: lower case over x, upper case without it
    expect(modeString(0o104755)).toBe('-rwsr-xr-x');
    expect(modeString(0o104644)).toBe('-rwSr--r--');
    expect(modeString(0o102755)).toBe('-rwxr-sr-x');
    expect(modeString(0o102745)).toBe('-rwxr-Sr-x');
    expect(modeString(0o041777)).toBe('drwxrwxrwt');
    expect(modeString(0o041776)).toBe('drwxrwxrwT');
    // no type bits: the entry's type stands in
    expect(modeString(0o755, 'dir')).toBe('drwxr-xr-x');
    expect(modeString(0o644, 'file')).toBe('-rw-r--r--');
    expect(modeString(0o777, 'symlink')).toBe('lrwxrwxrwx');
    expect(modeString(0o644)).toBe('?rw-r--r--');
  });

  it('joins paths, finds the parent, normalises', () => {
    expect(normalPath('/')).toBe('/');
    expect(normalPath('')).toBe('/');
    expect(normalPath('/etc/')).toBe('/etc');
    expect(normalPath('//etc//ssh/./')).toBe('/etc/ssh');
    expect(joinPath('/', 'etc')).toBe('/etc');
    expect(joinPath('/etc', 'ssh')).toBe('/etc/ssh');
    expect(joinPath('/etc/', 'ssh')).toBe('/etc/ssh');
    expect(joinPath('/', 'lost+found')).toBe('/lost+found');
    expect(parentPath('/etc/ssh')).toBe('/etc');
    expect(parentPath('/etc')).toBe('/');
    expect(parentPath('/etc/')).toBe('/');
    expect(parentPath('/')).toBe('/');
  });

  it('cuts a path into breadcrumb segments, each with its own path', () => {
    expect(breadcrumbs('/')).toEqual([{ name: '/', path: '/' }]);
    expect(breadcrumbs('/etc/ssh')).toEqual([
      { name: '/', path: '/' },
      { name: 'etc', path: '/etc' },
      { name: 'ssh', path: '/etc/ssh' },
    ]);
    expect(breadcrumbs('/lost+found/')).toEqual([
      { name: '/', path: '/' },
      { name: 'lost+found', path: '/lost+found' },
    ]);
  });

  it('lists directories first, then the rest, by name', () => {
    const e = (name: string, type: FileEntry['type']): FileEntry => ({
      name,
      type,
      size: 0,
      mode: 0,
      uid: 0,
      gid: 0,
      mtime: '2024-01-01T00:00:00Z',
    });
    const sorted = sortEntries([e('b.txt', 'file'), e('usr', 'dir'), e('A', 'symlink'), e('etc', 'dir')]);
    expect(sorted.map((x) => x.name)).toEqual(['etc', 'usr', 'A', 'b.txt']);
  });

  it('builds the API paths and the download link, with the repository', () => {
    const b = { id: '2026-01-02T030405Z-ab12cd', repository: 'nas1' };
    expect(filesystemsPath(b)).toBe('/backups/2026-01-02T030405Z-ab12cd/files?repository=nas1');
    expect(directoryPath(b, 'disk1', '/etc/')).toBe(
      '/backups/2026-01-02T030405Z-ab12cd/files/disk1?path=%2Fetc&repository=nas1',
    );
    expect(downloadHref(b, 'disk0p1', '/etc/a b&c')).toBe(
      '/api/v1/backups/2026-01-02T030405Z-ab12cd/files/disk0p1/download?path=%2Fetc%2Fa+b%26c&repository=nas1',
    );
  });

  it('says what a file system is in one line', () => {
    const fs = { id: 'disk1', disk: 'disk1', offsetBytes: 0, sizeBytes: 64 * MiB, readable: true };
    expect(filesystemLine({ ...fs, type: 'ext4', label: 'nfdata' })).toBe('ext4, 64.0 MiB, nfdata');
    expect(
      filesystemLine({ ...fs, id: 'disk0p2', disk: 'disk0', partition: 2, type: 'xfs', readable: false }),
    ).toBe('partition 2 of disk0, xfs, 64.0 MiB');
  });
});
