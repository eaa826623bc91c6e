import type { Task } from './api';
import { type BackupRepository, count, REPO_NAME } from './backups';
import { parseTags, sameTags, tagsText } from './tags';

/** The task type of a job's run (POST /backup/jobs/{name}/run, or its schedule). */
export const JOB = 'backup.job';

/** Per VM: the N newest, and the newest of each of the N newest hours/days/weeks/months/years (UTC). */
export interface Retention {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}
export type RetentionKey = keyof Retention;

/** GET /backup/jobs (src/controller/backup-jobs.ts BackupJobView). */
export interface BackupJob {
  name: string;
  /** A cron expression (a seconds field allowed) or @hourly, @daily, @weekly, @monthly; UTC. */
  schedule: string;
  repository: string;
  /** Every VM (templates excluded), VMs by name or id, or the VMs carrying any of the tags at each run. */
  selection: { all?: boolean; vms?: string[]; tags?: string[] };
  retention?: Retention;
  enabled: boolean;
  notes?: string;
  createdAt: string;
  /** Absent when disabled. */
  nextRunAt?: string;
  running: boolean;
  lastRunAt?: string;
  lastStatus?: 'ok' | 'partial' | 'error';
  lastMessage?: string;
  /** The task of the run going on, or of the last one. */
  lastTaskId?: string;
}

/** One VM of a job's run. */
export interface JobVmOutcome {
  vm: string;
  status: 'ok' | 'error' | 'skipped';
  backup?: string;
  /** Its vm.backup task. */
  taskId?: string;
  /** "full", "incremental" or "full+incremental" (its disks). */
  mode?: string;
  error?: string;
  /** Backups of the VM the retention policy removed after this one. */
  pruned?: number;
}

/** A finished backup.job task's result (also on a failed run: what each VM did). */
export interface JobRunResult {
  job: string;
  status: 'ok' | 'partial' | 'error';
  vms: JobVmOutcome[];
  pruned: number;
  gc?: { keptChunks: number; removedChunks: number; freedBytes: number };
}

/** A running backup.job task's details. */
export interface JobRunDetails {
  phase?: 'backing up' | 'pruning' | string;
  vm?: string;
  done?: number;
  total?: number;
}

/** The retention rules in the order they are shown: [field, short label]. */
export const RETENTION_RULES: [RetentionKey, string][] = [
  ['keepLast', 'last'],
  ['keepHourly', 'hourly'],
  ['keepDaily', 'daily'],
  ['keepWeekly', 'weekly'],
  ['keepMonthly', 'monthly'],
  ['keepYearly', 'yearly'],
];

/** The API's bound of a retention count. */
export const MAX_KEEP = 10_000;

/** "last 3, daily 7"; "keep all" when no rule keeps a number of backups (none set, or all 0). */
export function retentionSummary(r: Retention | undefined): string {
  const parts = RETENTION_RULES.filter(([k]) => (r?.[k] ?? 0) > 0).map(([k, label]) => `${label} ${r![k]}`);
  return parts.length ? parts.join(', ') : 'keep all';
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const NICKNAMES: Record<string, string> = {
  '@hourly': 'every hour, on the hour',
  '@daily': 'every day at 00:00 UTC',
  '@midnight': 'every day at 00:00 UTC',
  '@weekly': 'every Sunday at 00:00 UTC',
  '@monthly': 'on the 1st of every month at 00:00 UTC',
  '@yearly': 'every 1 January at 00:00 UTC',
  '@annually': 'every 1 January at 00:00 UTC',
};

const num = (s: string, max: number, min = 0): number | undefined => {
  if (!/^\d{1,2}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= min && n <= max ? n : undefined;
};
const pad = (n: number) => String(n).padStart(2, '0');
const ordinal = (n: number) =>
  `${n}${n % 10 === 1 && n !== 11 ? 'st' : n % 10 === 2 && n !== 12 ? 'nd' : n % 10 === 3 && n !== 13 ? 'rd' : 'th'}`;
/** "*\/N" → N (a step of at least 1). */
const step = (s: string, max: number): number | undefined => {
  const m = /^\*\/(\d{1,2})$/.exec(s);
  const n = m ? Number(m[1]) : Number.NaN;
  return n >= 1 && n <= max ? n : undefined;
};

/** "Monday", "Monday to Friday", "Monday, Wednesday"; undefined for anything else. */
function weekdays(s: string): string | undefined {
  const day = (x: string) => {
    const n = num(x, 7);
    return n === undefined ? undefined : DAYS[n % 7];
  };
  const range = /^(\d)-(\d)$/.exec(s);
  if (range) {
    const [a, b] = [day(range[1]!), day(range[2]!)];
    return a && b && Number(range[1]) < Number(range[2]) ? `${a} to ${b}` : undefined;
  }
  const names = s.split(',').map(day);
  return names.every((n) => n) ? names.join(', ') : undefined;
}

/**
 * A reading of the common schedules: "every day at 02:00 UTC", "every Sunday at 02:00 UTC", "every hour
 * at :15", "every 15 minutes"…; '' for what it does not read (the API checks the expression and says
 * when it is wrong). Cron fields: minute hour day-of-month month day-of-week, or a seconds field first.
 */
export function scheduleHint(schedule: string): string {
  const s = schedule.trim().replace(/\s+/g, ' ');
  if (s.startsWith('@')) return NICKNAMES[s.toLowerCase()] ?? '';
  let f = s.split(' ');
  if (f.length === 6) {
    const everySec = step(f[0]!, 59);
    if (everySec !== undefined && f.slice(1).every((x) => x === '*'))
      return everySec === 1 ? 'every second' : `every ${everySec} seconds`;
    if (f[0] !== '0') return '';
    f = f.slice(1);
  }
  if (f.length !== 5) return '';
  const [min, hour, dom, month, dow] = f as [string, string, string, string, string];
  if (f.every((x) => x === '*')) return 'every minute';
  const everyMin = step(min, 59);
  if (everyMin !== undefined && [hour, dom, month, dow].every((x) => x === '*'))
    return everyMin === 1 ? 'every minute' : `every ${everyMin} minutes`;
  const m = num(min, 59);
  if (m === undefined) return '';
  if (hour === '*' && dom === '*' && month === '*' && dow === '*')
    return m === 0 ? 'every hour, on the hour' : `every hour at :${pad(m)}`;
  const everyHour = step(hour, 23);
  if (everyHour !== undefined && dom === '*' && month === '*' && dow === '*')
    return `every ${everyHour === 1 ? 'hour' : `${everyHour} hours`} at :${pad(m)}`;
  const h = num(hour, 23);
  if (h === undefined) return '';
  const at = `at ${pad(h)}:${pad(m)} UTC`;
  if (dom === '*' && month === '*') {
    if (dow === '*') return `every day ${at}`;
    const days = weekdays(dow);
    return days ? `every ${days} ${at}` : '';
  }
  const d = num(dom, 31, 1);
  if (d === undefined || dow !== '*') return '';
  if (month === '*') return `on the ${ordinal(d)} of every month ${at}`;
  const mo = num(month, 12, 1);
  return mo === undefined ? '' : `every ${d} ${MONTHS[mo - 1]} ${at}`;
}

/** The schedule presets of the job dialog. */
export const SCHEDULE_PRESETS: { label: string; schedule: string }[] = [
  { label: 'hourly', schedule: '@hourly' },
  { label: 'daily 02:00', schedule: '0 2 * * *' },
  { label: 'weekly Sunday 02:00', schedule: '0 2 * * 0' },
];

/**
 * A job's VMs for its row: "all VMs", "tags: a, b", or their names (a ref no VM answers to as it is,
 * marked).
 */
export function selectionLine(sel: BackupJob['selection'], vms: { id: string; name: string }[]): string {
  if (sel.all) return 'all VMs';
  if (sel.tags?.length) return `tags: ${sel.tags.join(', ')}`;
  const refs = sel.vms ?? [];
  if (refs.length === 0) return 'none';
  return refs
    .map((ref) => vms.find((v) => v.id === ref || v.name === ref)?.name ?? `${ref} (gone)`)
    .join(', ');
}

/** How a job picks its VMs: every VM, these VMs, or the VMs carrying any of the tags (at each run). */
export type JobPick = 'all' | 'vms' | 'tags';

/** The job dialog's fields (numbers as typed; empty = not set). */
export interface JobForm {
  name: string;
  schedule: string;
  repository: string;
  pick: JobPick;
  /** VM ids (or, for a ref of the job no known VM answers to, the ref as it is). */
  vms: string[];
  /** The tags as typed (comma- or space-separated). */
  tags: string;
  retention: Record<RetentionKey, string>;
  notes: string;
  enabled: boolean;
}

const noRetention = (): Record<RetentionKey, string> =>
  Object.fromEntries(RETENTION_RULES.map(([k]) => [k, ''])) as Record<RetentionKey, string>;

/** A new job: daily at 02:00 into the first repository, no VM yet, keep the last 7. */
export function newJobForm(repos: Pick<BackupRepository, 'name'>[]): JobForm {
  return {
    name: '',
    schedule: '0 2 * * *',
    repository: repos[0]?.name ?? '',
    pick: 'vms',
    vms: [],
    tags: '',
    retention: { ...noRetention(), keepLast: '7' },
    notes: '',
    enabled: true,
  };
}

/** An existing job in the dialog: VMs named in its selection become their ids. */
export function jobForm(job: BackupJob, vms: { id: string; name: string }[]): JobForm {
  const retention = noRetention();
  for (const [k] of RETENTION_RULES) {
    const n = job.retention?.[k];
    if (n !== undefined) retention[k] = String(n);
  }
  return {
    name: job.name,
    schedule: job.schedule,
    repository: job.repository,
    pick: job.selection.all ? 'all' : job.selection.tags?.length ? 'tags' : 'vms',
    vms: (job.selection.vms ?? []).map((ref) => vms.find((v) => v.id === ref || v.name === ref)?.id ?? ref),
    tags: tagsText(job.selection.tags),
    retention,
    notes: job.notes ?? '',
    enabled: job.enabled,
  };
}

/** Why a retention count as typed is wrong ('' when right; empty is "not set"). */
export function keepProblem(value: string): string {
  const v = value.trim();
  if (v === '') return '';
  if (!/^\d+$/.test(v) || Number(v) > MAX_KEEP) return `a whole number from 0 to ${MAX_KEEP}, or empty`;
  return '';
}

/** The retention the form sets: the rules with a number (none: {}). */
export function formRetention(f: Pick<JobForm, 'retention'>): Retention {
  const out: Retention = {};
  for (const [k] of RETENTION_RULES) {
    const v = f.retention[k].trim();
    if (v !== '' && !keepProblem(v)) out[k] = Number(v);
  }
  return out;
}

/** The selection the form sends: {all: true}, {vms}, or {tags} (sorted, unique). */
export function formSelection(f: Pick<JobForm, 'pick' | 'vms' | 'tags'>): BackupJob['selection'] {
  if (f.pick === 'all') return { all: true };
  if (f.pick === 'tags') return { tags: parseTags(f.tags).tags };
  return { vms: f.vms };
}

/** The names of the VMs (templates excluded) carrying any of the tags now, sorted. */
export function taggedVms(
  tags: string[],
  vms: { name: string; tags?: string[]; template?: boolean }[],
): string[] {
  return vms
    .filter((v) => !v.template && (v.tags ?? []).some((t) => tags.includes(t)))
    .map((v) => v.name)
    .sort((a, b) => a.localeCompare(b));
}

/** Every tag the VMs carry, sorted. */
export function tagsInUse(vms: { tags?: string[] }[]): string[] {
  return [...new Set(vms.flatMap((v) => v.tags ?? []))].sort();
}

/**
 * What keeps the form from being sent, by field ('name', 'schedule', 'repository', 'vms', 'tags', a
 * rule).
 */
export function jobFormProblems(f: JobForm, creating: boolean): Partial<Record<string, string>> {
  const p: Partial<Record<string, string>> = {};
  const name = f.name.trim();
  if (creating && !name) p.name = 'Give the job a name.';
  else if (creating && !REPO_NAME.test(name))
    p.name = 'Name: lowercase letters, digits and -, up to 63 (starting with a letter or digit).';
  if (!f.schedule.trim()) p.schedule = 'Give a schedule.';
  if (!f.repository) p.repository = 'Choose a repository.';
  if (f.pick === 'vms' && f.vms.length === 0) p.vms = 'Choose at least one VM, or all VMs.';
  if (f.pick === 'tags') {
    const { tags, problem } = parseTags(f.tags);
    if (problem) p.tags = problem;
    else if (tags.length === 0) p.tags = 'Give at least one tag.';
  }
  for (const [k] of RETENTION_RULES) {
    const e = keepProblem(f.retention[k]);
    if (e) p[k] = e;
  }
  return p;
}

/** POST /backup/jobs: every field the form sets (notes when given; retention when a rule is set). */
export function createJobBody(f: JobForm): Record<string, unknown> {
  const retention = formRetention(f);
  const notes = f.notes.trim();
  return {
    name: f.name.trim(),
    schedule: f.schedule.trim(),
    repository: f.repository,
    selection: formSelection(f),
    ...(Object.keys(retention).length ? { retention } : {}),
    enabled: f.enabled,
    ...(notes ? { notes } : {}),
  };
}

/**
 * PATCH /backup/jobs/{name}: the fields that differ from the job. The retention is sent whole ({} clears
 * it: keep all); notes cleared are sent as '' (the API cannot remove a field).
 */
export function editJobBody(f: JobForm, job: BackupJob): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const schedule = f.schedule.trim();
  if (schedule !== job.schedule) body.schedule = schedule;
  if (f.repository !== job.repository) body.repository = f.repository;
  const selection = formSelection(f);
  if (!sameSelection(selection, job.selection)) body.selection = selection;
  const retention = formRetention(f);
  if (!sameRetention(retention, job.retention ?? {})) body.retention = retention;
  if (f.enabled !== job.enabled) body.enabled = f.enabled;
  const notes = f.notes.trim();
  if (notes !== (job.notes ?? '')) body.notes = notes;
  return body;
}

/** The same selection: tags in any order, VMs in the same order. */
function sameSelection(a: BackupJob['selection'], b: BackupJob['selection']): boolean {
  if (!!a.all !== !!b.all) return false;
  if (a.all) return true;
  if (!!a.tags?.length !== !!b.tags?.length) return false;
  if (a.tags?.length) return sameTags(a.tags, b.tags);
  return JSON.stringify(a.vms ?? []) === JSON.stringify(b.vms ?? []);
}

function sameRetention(a: Retention, b: Retention): boolean {
  return RETENTION_RULES.every(([k]) => a[k] === b[k]);
}

/** "ok", "partial", "error": the colour class of a job's last run. */
export function lastRunClass(status: BackupJob['lastStatus']): string {
  return status ? `run-${status}` : 'run-never';
}

/** A finished backup.job task's result (ok or failed), undefined for other tasks. */
export function jobRunResult(t: Task): JobRunResult | undefined {
  const r = t.type === JOB ? (t.result as Partial<JobRunResult> | undefined) : undefined;
  return r && Array.isArray(r.vms) && typeof r.status === 'string' ? (r as JobRunResult) : undefined;
}

export function jobRunDetails(t: Task): JobRunDetails | undefined {
  return t.type === JOB ? ((t.details ?? {}) as JobRunDetails) : undefined;
}

/**
 * A job's run to show: the newest of its lastTaskId's task, its newest backup.job task the store has
 * (the target is the job's name) and the run started here (task ids grow with time).
 */
export function jobTask(
  tasks: Task[],
  job: Pick<BackupJob, 'name' | 'lastTaskId'>,
  mine?: Task,
): Task | undefined {
  const byId = job.lastTaskId ? tasks.find((t) => t.id === job.lastTaskId) : undefined;
  const byName = tasks.find((t) => t.type === JOB && t.target === job.name);
  let best: Task | undefined;
  for (const t of [byId, byName, mine]) if (t && (!best || t.id > best.id)) best = t;
  return best;
}

/** "backing up web1 (2 of 3)", "pruning old backups", "starting". */
export function jobRunProgress(d: JobRunDetails): string {
  if (d.phase === 'backing up')
    return `backing up ${d.vm ?? 'a VM'}${d.total ? ` (${(d.done ?? 0) + 1} of ${d.total})` : ''}`;
  if (d.phase === 'pruning') return 'pruning old backups';
  return d.phase ?? 'starting';
}

/** "web1: ok (incremental), 2 pruned", "db1: error: …", "app: skipped: it runs on host h2". */
export function jobVmLine(o: JobVmOutcome): string {
  if (o.status === 'ok')
    return `${o.vm}: ok${o.mode ? ` (${o.mode})` : ''}${o.pruned ? `, ${o.pruned} pruned` : ''}`;
  return `${o.vm}: ${o.status}${o.error ? `: ${o.error}` : ''}`;
}

/** "2 VMs backed up, 3 backups pruned": a run in one line. */
export function jobRunOutcome(r: JobRunResult): string {
  const ok = r.vms.filter((v) => v.status === 'ok').length;
  const failed = r.vms.filter((v) => v.status === 'error').length;
  const skipped = r.vms.filter((v) => v.status === 'skipped').length;
  const parts = [`${count(ok, 'VM')} backed up`];
  if (failed) parts.push(`${failed} failed`);
  if (skipped) parts.push(`${skipped} skipped`);
  if (r.pruned) parts.push(`${count(r.pruned, 'backup')} pruned`);
  return r.vms.length === 0 ? 'no VM to back up' : parts.join(', ');
}

/**
 * Where an encrypted repository's key is kept on its host: the path the API gives (keyFile), else
 * `<data dir>/backup-keys/<id>.key` (an API before keyFile: the --data-dir of `neuroflow serve`).
 */
export function keyFilePath(r: Pick<BackupRepository, 'id' | 'keyFile'>): string {
  return r.keyFile ?? `<data dir>/backup-keys/${r.id ?? '<repository id>'}.key`;
}

/** Why a key as typed is not base64 of 32 bytes ('' when it is, or is empty). */
export function keyProblem(key: string): string {
  const k = key.replace(/\s/g, '');
  if (!k) return '';
  let bytes = -1;
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(k) && k.length % 4 === 0) {
    try {
      bytes = atob(k).length;
    } catch {
      bytes = -1;
    }
  }
  return bytes === 32 ? '' : 'The key: base64 of 32 bytes (44 characters ending in =).';
}

/** POST /backup/repositories from the dialog: encrypt when ticked, the key when given. */
export function repositoryBody(f: {
  name: string;
  path: string;
  encrypt: boolean;
  key: string;
  /** The path is shared storage, the same on every host (an NFS mount, say). */
  shared?: boolean;
}): Record<string, unknown> {
  const key = f.key.replace(/\s/g, '');
  return {
    name: f.name.trim(),
    path: f.path.trim(),
    ...(f.encrypt ? { encrypt: true } : {}),
    ...(key ? { key } : {}),
    ...(f.shared ? { shared: true } : {}),
  };
}

/** "in 12 s", "in 5 min", "in 3 h", "in 2 d" until an ISO time ('—' without one; "due" once passed). */
export function until(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '—';
  const s = Math.round((t - now) / 1000);
  if (s <= 0) return 'due';
  if (s < 60) return `in ${s} s`;
  if (s < 3600) return `in ${Math.floor(s / 60)} min`;
  if (s < 86_400) return `in ${Math.floor(s / 3600)} h`;
  return `in ${Math.floor(s / 86_400)} d`;
}
