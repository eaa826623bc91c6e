import { describe, expect, it } from 'vitest';
import type { Task } from './api';
import {
  type BackupJob,
  createJobBody,
  editJobBody,
  formRetention,
  formSelection,
  JOB,
  jobForm,
  jobFormProblems,
  jobRunDetails,
  jobRunOutcome,
  jobRunProgress,
  jobRunResult,
  jobTask,
  jobVmLine,
  keepProblem,
  keyFilePath,
  keyProblem,
  lastRunClass,
  newJobForm,
  repositoryBody,
  retentionSummary,
  SCHEDULE_PRESETS,
  scheduleHint,
  selectionLine,
  taggedVms,
  tagsInUse,
  until,
} from './backup-jobs';

const job = (over: Partial<BackupJob> = {}): BackupJob => ({
  name: 'nightly',
  schedule: '0 2 * * *',
  repository: 'nas1',
  selection: { vms: ['vm-1'] },
  retention: { keepLast: 3 },
  enabled: true,
  createdAt: '2025-01-02T03:04:05.000Z',
  running: false,
  ...over,
});

const VMS = [
  { id: 'vm-1', name: 'web1' },
  { id: 'vm-2', name: 'db1' },
];

const task = (over: Partial<Task> = {}): Task => ({
  id: 't1',
  type: JOB,
  target: 'nightly',
  status: 'ok',
  progress: 1,
  ...over,
});

describe('retention summary', () => {
  it('lists the rules set, in order', () => {
    expect(retentionSummary({ keepDaily: 7, keepLast: 3 })).toBe('last 3, daily 7');
    expect(
      retentionSummary({
        keepLast: 1,
        keepHourly: 24,
        keepDaily: 7,
        keepWeekly: 4,
        keepMonthly: 12,
        keepYearly: 2,
      }),
    ).toBe('last 1, hourly 24, daily 7, weekly 4, monthly 12, yearly 2');
  });
  it('says "keep all" with no rule that keeps a number', () => {
    expect(retentionSummary(undefined)).toBe('keep all');
    expect(retentionSummary({})).toBe('keep all');
    expect(retentionSummary({ keepLast: 0, keepDaily: 0 })).toBe('keep all');
    expect(retentionSummary({ keepLast: 0, keepWeekly: 2 })).toBe('weekly 2');
  });
});

describe('schedule hint', () => {
  it('reads the presets', () => {
    expect(SCHEDULE_PRESETS.map((p) => [p.label, scheduleHint(p.schedule)])).toEqual([
      ['hourly', 'every hour, on the hour'],
      ['daily 02:00', 'every day at 02:00 UTC'],
      ['weekly Sunday 02:00', 'every Sunday at 02:00 UTC'],
    ]);
  });
  it('reads the nicknames', () => {
    expect(scheduleHint('@daily')).toBe('every day at 00:00 UTC');
    expect(scheduleHint('@weekly')).toBe('every Sunday at 00:00 UTC');
    expect(scheduleHint('@monthly')).toBe('on the 1st of every month at 00:00 UTC');
    expect(scheduleHint('@HOURLY')).toBe('every hour, on the hour');
    expect(scheduleHint('@reboot')).toBe('');
  });
  it('reads common cron expressions', () => {
    expect(scheduleHint('30 1 * * *')).toBe('every day at 01:30 UTC');
    expect(scheduleHint('  15   23 * * *  ')).toBe('every day at 23:15 UTC');
    expect(scheduleHint('15 * * * *')).toBe('every hour at :15');
    expect(scheduleHint('0 * * * *')).toBe('every hour, on the hour');
    expect(scheduleHint('*/15 * * * *')).toBe('every 15 minutes');
    expect(scheduleHint('* * * * *')).toBe('every minute');
    expect(scheduleHint('0 */6 * * *')).toBe('every 6 hours at :00');
    expect(scheduleHint('0 3 * * 1-5')).toBe('every Monday to Friday at 03:00 UTC');
    expect(scheduleHint('0 3 * * 1,3,5')).toBe('every Monday, Wednesday, Friday at 03:00 UTC');
    expect(scheduleHint('0 3 * * 7')).toBe('every Sunday at 03:00 UTC');
    expect(scheduleHint('0 4 1 * *')).toBe('on the 1st of every month at 04:00 UTC');
    expect(scheduleHint('0 4 22 * *')).toBe('on the 22nd of every month at 04:00 UTC');
    expect(scheduleHint('0 4 13 * *')).toBe('on the 13th of every month at 04:00 UTC');
    expect(scheduleHint('0 4 1 6 *')).toBe('every 1 June at 04:00 UTC');
  });
  it('reads a seconds field', () => {
    expect(scheduleHint('*/3 * * * * *')).toBe('every 3 seconds');
    expect(scheduleHint('0 0 2 * * *')).toBe('every day at 02:00 UTC');
    expect(scheduleHint('30 0 2 * * *')).toBe('');
  });
  it('says nothing of what it does not read (the API judges)', () => {
    for (const s of [
      '',
      'every day',
      '0 2 * *',
      '61 2 * * *',
      '0 25 * * *',
      '0 2 * * 9',
      '0 2 1 * 1',
      '0 2 */2 * *',
    ])
      expect(scheduleHint(s)).toBe('');
  });
});

describe('a job in its row', () => {
  it('names its VMs', () => {
    expect(selectionLine({ all: true }, VMS)).toBe('all VMs');
    expect(selectionLine({ vms: ['vm-2', 'web1'] }, VMS)).toBe('db1, web1');
    expect(selectionLine({ vms: ['old'] }, VMS)).toBe('old (gone)');
    expect(selectionLine({ tags: ['env:prod', 'nightly'] }, VMS)).toBe('tags: env:prod, nightly');
    expect(selectionLine({}, VMS)).toBe('none');
  });
  it('colours the last run', () => {
    expect(lastRunClass('ok')).toBe('run-ok');
    expect(lastRunClass('partial')).toBe('run-partial');
    expect(lastRunClass(undefined)).toBe('run-never');
  });
  it('says when the next run is', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(until('2025-01-01T00:00:30Z', now)).toBe('in 30 s');
    expect(until('2025-01-01T00:05:00Z', now)).toBe('in 5 min');
    expect(until('2025-01-01T02:00:00Z', now)).toBe('in 2 h');
    expect(until('2025-01-03T02:00:00Z', now)).toBe('in 2 d');
    expect(until('2024-12-31T23:59:00Z', now)).toBe('due');
    expect(until(undefined, now)).toBe('—');
  });
});

describe('the job form', () => {
  it('starts as a daily job at 02:00 into the first repository, keeping the last 7', () => {
    const f = newJobForm([{ name: 'nas1' }, { name: 'nas2' }]);
    expect(f).toMatchObject({
      schedule: '0 2 * * *',
      repository: 'nas1',
      pick: 'vms',
      vms: [],
      tags: '',
      enabled: true,
    });
    expect(formRetention(f)).toEqual({ keepLast: 7 });
    expect(newJobForm([]).repository).toBe('');
  });

  it('checks retention numbers: empty is not set', () => {
    expect(keepProblem('')).toBe('');
    expect(keepProblem(' 3 ')).toBe('');
    expect(keepProblem('0')).toBe('');
    expect(keepProblem('10000')).toBe('');
    for (const bad of ['-1', '1.5', 'x', '10001', '1e3'])
      expect(keepProblem(bad)).toBe('a whole number from 0 to 10000, or empty');
  });

  it('says what keeps it from being sent', () => {
    const f = { ...newJobForm([{ name: 'nas1' }]), name: 'nightly', vms: ['vm-1'] };
    expect(jobFormProblems(f, true)).toEqual({});
    expect(jobFormProblems({ ...f, name: '' }, true)).toEqual({ name: 'Give the job a name.' });
    expect(Object.keys(jobFormProblems({ ...f, name: 'Nightly' }, true))).toEqual(['name']);
    // the name is fixed once made: not judged on an edit
    expect(jobFormProblems({ ...f, name: 'Nightly' }, false)).toEqual({});
    expect(Object.keys(jobFormProblems({ ...f, schedule: ' ' }, true))).toEqual(['schedule']);
    expect(Object.keys(jobFormProblems({ ...f, repository: '' }, true))).toEqual(['repository']);
    expect(Object.keys(jobFormProblems({ ...f, vms: [] }, true))).toEqual(['vms']);
    expect(jobFormProblems({ ...f, vms: [], pick: 'all' }, true)).toEqual({});
    // by tags: at least one, each a tag (the VMs ticked do not count)
    expect(jobFormProblems({ ...f, pick: 'tags', tags: 'nightly, env:prod' }, true)).toEqual({});
    expect(jobFormProblems({ ...f, pick: 'tags', tags: ' , ' }, true)).toEqual({
      tags: 'Give at least one tag.',
    });
    expect(jobFormProblems({ ...f, pick: 'tags', tags: 'nightly Env' }, true).tags).toMatch(
      /^"Env" is not a tag: lowercase letters/,
    );
    // the tags typed are not judged while another way is chosen
    expect(jobFormProblems({ ...f, tags: 'Env' }, true)).toEqual({});
    expect(
      jobFormProblems({ ...f, retention: { ...f.retention, keepDaily: 'x', keepYearly: '-2' } }, true),
    ).toEqual({
      keepDaily: 'a whole number from 0 to 10000, or empty',
      keepYearly: 'a whole number from 0 to 10000, or empty',
    });
  });

  it('makes the POST body: only what is set', () => {
    const f = {
      ...newJobForm([{ name: 'nas1' }]),
      name: ' nightly ',
      schedule: ' 0 2 * * 0 ',
      vms: ['vm-1', 'vm-2'],
      retention: {
        keepLast: '1',
        keepHourly: '',
        keepDaily: ' 7 ',
        keepWeekly: '',
        keepMonthly: '',
        keepYearly: '',
      },
    };
    expect(createJobBody(f)).toEqual({
      name: 'nightly',
      schedule: '0 2 * * 0',
      repository: 'nas1',
      selection: { vms: ['vm-1', 'vm-2'] },
      retention: { keepLast: 1, keepDaily: 7 },
      enabled: true,
    });
    const all = createJobBody({
      ...f,
      pick: 'all',
      notes: ' weekly ',
      enabled: false,
      retention: { ...f.retention, keepLast: '', keepDaily: '' },
    });
    expect(all).toEqual({
      name: 'nightly',
      schedule: '0 2 * * 0',
      repository: 'nas1',
      selection: { all: true },
      enabled: false,
      notes: 'weekly',
    });
  });

  it('fills from a job (VM names become ids) and gives it back unchanged', () => {
    const j = job({ selection: { vms: ['db1', 'vm-1', 'gone'] }, retention: { keepLast: 3, keepDaily: 0 } });
    const f = jobForm(j, VMS);
    expect(f.vms).toEqual(['vm-2', 'vm-1', 'gone']);
    expect(f.retention).toMatchObject({ keepLast: '3', keepDaily: '0', keepWeekly: '' });
    expect(f.notes).toBe('');
    // an untouched form changes nothing but the refs by name (now by id: they follow a rename)
    expect(editJobBody(f, j)).toEqual({ selection: { vms: ['vm-2', 'vm-1', 'gone'] } });
    const k = job();
    expect(editJobBody(jobForm(k, VMS), k)).toEqual({});
    expect(jobForm(job({ selection: { all: true } }), VMS)).toMatchObject({ pick: 'all', vms: [] });
    const t = job({ selection: { tags: ['nightly', 'env:prod'] } });
    expect(jobForm(t, VMS)).toMatchObject({ pick: 'tags', vms: [], tags: 'nightly, env:prod' });
    // the same tags in another order are no change
    expect(editJobBody(jobForm(t, VMS), t)).toEqual({});
  });

  it('makes the PATCH body: what changed; a cleared retention {} and cleared notes ""', () => {
    const j = job({ notes: 'nightly run' });
    const f = jobForm(j, VMS);
    expect(
      editJobBody(
        {
          ...f,
          schedule: '@hourly',
          repository: 'nas2',
          pick: 'all',
          enabled: false,
          notes: '',
          retention: { ...f.retention, keepLast: '' },
        },
        j,
      ),
    ).toEqual({
      schedule: '@hourly',
      repository: 'nas2',
      selection: { all: true },
      enabled: false,
      notes: '',
      retention: {},
    });
    expect(editJobBody({ ...f, retention: { ...f.retention, keepWeekly: '4' } }, j)).toEqual({
      retention: { keepLast: 3, keepWeekly: 4 },
    });
    // VMs → tags, tags → other tags, tags → VMs: the selection sent whole
    expect(editJobBody({ ...f, pick: 'tags', tags: 'nightly' }, j)).toEqual({
      selection: { tags: ['nightly'] },
    });
    const t = job({ selection: { tags: ['nightly'] } });
    const tf = jobForm(t, VMS);
    expect(editJobBody({ ...tf, tags: 'nightly env:prod' }, t)).toEqual({
      selection: { tags: ['env:prod', 'nightly'] },
    });
    expect(editJobBody({ ...tf, pick: 'vms', vms: ['vm-1'] }, t)).toEqual({ selection: { vms: ['vm-1'] } });
    // a job without retention, left without: nothing sent
    const bare = job({ retention: undefined });
    expect(editJobBody(jobForm(bare, VMS), bare)).toEqual({});
  });
});

describe('selecting VMs by tag', () => {
  const form = { pick: 'vms' as const, vms: ['vm-1'], tags: 'nightly, env:prod nightly' };
  it('sends all, the VMs, or the tags (sorted, unique)', () => {
    expect(formSelection({ ...form, pick: 'all' })).toEqual({ all: true });
    expect(formSelection(form)).toEqual({ vms: ['vm-1'] });
    expect(formSelection({ ...form, pick: 'tags' })).toEqual({ tags: ['env:prod', 'nightly'] });
  });
  it('makes a POST body with the tags', () => {
    const f = { ...newJobForm([{ name: 'nas1' }]), name: 'tagged', pick: 'tags' as const, tags: 'nightly' };
    expect(createJobBody(f).selection).toEqual({ tags: ['nightly'] });
  });
  const vms = [
    { name: 'web1', tags: ['env:prod', 'nightly'] },
    { name: 'db1', tags: ['env:prod'] },
    { name: 'app', tags: ['nightly'] },
    { name: 'tpl', tags: ['nightly'], template: true },
    { name: 'bare' },
  ];
  it('names the VMs carrying any of the tags now (templates left out)', () => {
    expect(taggedVms(['nightly'], vms)).toEqual(['app', 'web1']);
    expect(taggedVms(['env:prod', 'nightly'], vms)).toEqual(['app', 'db1', 'web1']);
    expect(taggedVms(['none'], vms)).toEqual([]);
    expect(taggedVms([], vms)).toEqual([]);
  });
  it('lists the tags in use', () => {
    expect(tagsInUse(vms)).toEqual(['env:prod', 'nightly']);
    expect(tagsInUse([])).toEqual([]);
  });
});

describe("a job's run", () => {
  const result = {
    job: 'nightly',
    status: 'partial',
    vms: [
      { vm: 'web1', status: 'ok', backup: 'b1', mode: 'incremental', pruned: 2 },
      { vm: 'db1', status: 'error', error: 'VM "db1" is migrating' },
      { vm: 'app', status: 'skipped', error: 'it runs on host h2' },
      { vm: 'new', status: 'ok', mode: 'full' },
    ],
    pruned: 2,
  };

  it("picks the job's newest run: its lastTaskId's, its newest by name, or the one started here", () => {
    const run = (id: string, target = 'nightly') => task({ id, target });
    const tasks = [run('0003', 'weekly'), run('0002'), run('0001')];
    expect(jobTask(tasks, { name: 'nightly', lastTaskId: '0001' })?.id).toBe('0002');
    expect(jobTask(tasks, { name: 'nightly', lastTaskId: '0004' })?.id).toBe('0002');
    expect(jobTask([run('0001')], { name: 'nightly', lastTaskId: '0001' }, run('0005'))?.id).toBe('0005');
    expect(jobTask([run('0009', 'other')], { name: 'nightly', lastTaskId: '0009' })?.id).toBe('0009');
    expect(jobTask([], { name: 'nightly' })).toBeUndefined();
  });

  it('reads the result of a backup.job task, ended well or not', () => {
    expect(jobRunResult(task({ result }))).toEqual(result);
    expect(jobRunResult(task({ status: 'error', result }))).toEqual(result);
    expect(jobRunResult(task({ status: 'error' }))).toBeUndefined();
    expect(jobRunResult(task({ type: 'vm.backup', result }))).toBeUndefined();
  });

  it('says each VM and the run in a line', () => {
    const r = jobRunResult(task({ result }))!;
    expect(r.vms.map(jobVmLine)).toEqual([
      'web1: ok (incremental), 2 pruned',
      'db1: error: VM "db1" is migrating',
      'app: skipped: it runs on host h2',
      'new: ok (full)',
    ]);
    expect(jobRunOutcome(r)).toBe('2 VMs backed up, 1 failed, 1 skipped, 2 backups pruned');
    expect(jobRunOutcome({ ...r, vms: [r.vms[0]!], pruned: 1 })).toBe('1 VM backed up, 1 backup pruned');
    expect(jobRunOutcome({ ...r, vms: [], pruned: 0 })).toBe('no VM to back up');
  });

  it('says what a running job does', () => {
    const d = jobRunDetails(
      task({ status: 'running', details: { phase: 'backing up', vm: 'web1', done: 1, total: 3 } }),
    );
    expect(jobRunProgress(d!)).toBe('backing up web1 (2 of 3)');
    expect(jobRunProgress({ phase: 'pruning' })).toBe('pruning old backups');
    expect(jobRunProgress({})).toBe('starting');
    expect(jobRunDetails(task({ type: 'vm.backup' }))).toBeUndefined();
  });
});

describe('encrypted repositories', () => {
  it('checks a key: base64 of 32 bytes', () => {
    const key = btoa(String.fromCharCode(...new Array(32).fill(7)));
    expect(key).toHaveLength(44);
    expect(keyProblem('')).toBe('');
    expect(keyProblem(key)).toBe('');
    expect(keyProblem(` ${key.slice(0, 20)}\n${key.slice(20)} `)).toBe('');
    const short = btoa(String.fromCharCode(...new Array(31).fill(7)));
    for (const bad of [short, 'abc', `${key}AAAA`, `${key.slice(0, 43)}!`])
      expect(keyProblem(bad)).toBe('The key: base64 of 32 bytes (44 characters ending in =).');
  });

  it('makes the POST body: encrypt and shared when ticked, the key when given', () => {
    expect(repositoryBody({ name: ' nas1 ', path: ' /srv/b ', encrypt: false, key: '' })).toEqual({
      name: 'nas1',
      path: '/srv/b',
    });
    expect(repositoryBody({ name: 'v', path: '/srv/v', encrypt: true, key: '' })).toEqual({
      name: 'v',
      path: '/srv/v',
      encrypt: true,
    });
    expect(repositoryBody({ name: 'v', path: '/srv/v', encrypt: false, key: ' ab\ncd= ' })).toEqual({
      name: 'v',
      path: '/srv/v',
      key: 'abcd=',
    });
    expect(repositoryBody({ name: 'n', path: '/mnt/nfs', encrypt: false, key: '', shared: true })).toEqual({
      name: 'n',
      path: '/mnt/nfs',
      shared: true,
    });
    expect(repositoryBody({ name: 'n', path: '/mnt/nfs', encrypt: false, key: '', shared: false })).toEqual({
      name: 'n',
      path: '/mnt/nfs',
    });
  });

  it('names the key file: the path the API gives, else where it is under the data directory', () => {
    expect(keyFilePath({ id: '0f3a', keyFile: '/var/lib/neuroflow/backup-keys/0f3a.key' })).toBe(
      '/var/lib/neuroflow/backup-keys/0f3a.key',
    );
    expect(keyFilePath({ id: '0f3a' })).toBe('<data dir>/backup-keys/0f3a.key');
    expect(keyFilePath({})).toBe('<data dir>/backup-keys/<repository id>.key');
  });
});
