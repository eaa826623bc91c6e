import { fmtBytes, type Task, type Vm } from './api';

/** The task type of a backup (POST /vms/{id}/backup) and of a restore (POST /backups/{id}/restore). */
export const BACKUP = 'vm.backup';
export const RESTORE = 'backup.restore';
/** Repository maintenance tasks (POST /backup/repositories/{name}/verify and /gc, /backups/{id}/verify). */
export const VERIFY = 'backup.verify';
export const GC = 'backup.gc';
/** Boot verification (POST /backups/{id}/boot-verify): restored into an isolated VM, booted, deleted. */
export const BOOT_VERIFY = 'backup.boot-verify';

/** GET /backup/repositories (src/controller/backups.ts RepositoryView). */
export interface BackupRepository {
  name: string;
  path: string;
  /** The host whose file system holds the directory. */
  node: string;
  createdAt: string;
  id?: string;
  backups?: number;
  /** Chunks stored and the bytes they take (compressed, deduplicated). */
  usage?: { chunks: number; bytes: number };
  /** Why the directory cannot be read now. */
  error?: string;
  /** Client-side encryption: the key is a file on the repository's host, never in the API. */
  encrypted?: boolean;
  /** An encrypted repository's key file on its host (the path only; the key is never shown). */
  keyFile?: string;
  /**
   * The path is shared storage (an NFS mount, say) at the same place on every host: VMs of every host
   * can be backed up into it, and every host reads it. Absent: it belongs to its host (node) alone.
   */
  shared?: true;
}

export type Consistency = 'filesystem' | 'crash' | 'stopped';

export interface BackupDisk {
  id: string;
  sizeBytes: number;
  mode: 'full' | 'incremental';
  /** The backup an incremental one builds on. */
  base?: string;
  /** Why the disk was read whole (absent on a first backup). */
  fullReason?: string;
  readBytes: number;
  chunksRead: number;
  newChunks: number;
  newBytesStored: number;
  zeroChunks: number;
}

/** GET /backups (src/controller/backups.ts BackupView). */
export interface Backup {
  id: string;
  repository: string;
  vm: { id: string; name: string };
  node: string;
  startedAt: string;
  /** The instant the disks were captured. */
  pointInTime: string;
  endedAt: string;
  consistency: Consistency;
  consistencyNote?: string;
  /** The disks' size (zeros included). */
  sizeBytes: number;
  config: { name: string; vcpus: number; memoryMiB: number; disks: number };
  disks: BackupDisk[];
  notes?: string;
  /** The last boot verification of the backup. */
  bootVerify?: BootVerify;
}

/** How a boot verification went (kept with the backup; also the task's result). */
export interface BootVerify {
  passed: boolean;
  at: string;
  /** How long after the start the guest agent answered (passed). */
  agentAfterMs?: number;
  /** Why it failed. */
  reason?: string;
  /** The whole verification: restore, boot, clean-up. */
  totalMs?: number;
}

/** The API's repository name rule (src/api/routes/backups.ts). */
export const REPO_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** The API's VM name rule. */
const VM_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;
const MAX_NAME = 63;

const CONSISTENCY: Record<Consistency, [string, string]> = {
  filesystem: [
    'file-system consistent',
    'The guest agent froze the file systems for the instant the disks were captured',
  ],
  crash: ['crash consistent', 'As after a power cut: the guest agent did not freeze the file systems'],
  stopped: ['VM powered off', 'The VM was off: its disks were at rest'],
};

/** "file-system consistent", "crash consistent", "VM powered off". */
export function consistencyLabel(c: Consistency | string): string {
  return CONSISTENCY[c as Consistency]?.[0] ?? c;
}

/** What the consistency means, and the API's note of why (the agent did not answer…) when there is one. */
export function consistencyTitle(b: Pick<Backup, 'consistency' | 'consistencyNote'>): string {
  const what = CONSISTENCY[b.consistency]?.[1] ?? b.consistency;
  return b.consistencyNote ? `${what}. ${b.consistencyNote}` : what;
}

/** The backup as a whole: full or incremental when every disk is, else mixed. */
export function backupMode(b: Pick<Backup, 'disks'>): 'full' | 'incremental' | 'mixed' {
  const modes = new Set(b.disks.map((d) => d.mode));
  if (modes.size === 1) return b.disks[0]!.mode;
  return modes.size === 0 ? 'full' : 'mixed';
}

/** "disk0: incremental", "disk1: full" (the reason apart: diskModeReason). */
export function diskModeLine(d: Pick<BackupDisk, 'id' | 'mode'>): string {
  return `${d.id}: ${d.mode}`;
}

/**
 * Why a disk was read as it was: an incremental's base ("changes since backup X"), a full one's reason,
 * "first backup" for a full one without a reason.
 */
export function diskModeReason(d: Pick<BackupDisk, 'mode' | 'base' | 'fullReason'>): string {
  if (d.mode === 'incremental') return d.base ? `changes since backup ${d.base}` : 'changes only';
  return d.fullReason ?? 'first backup of this disk in the repository';
}

/** Bytes read from the VM's disks and bytes the repository took in (new chunks, compressed). */
export function backupTotals(b: Pick<Backup, 'disks'>): { read: number; stored: number; chunksRead: number } {
  let read = 0;
  let stored = 0;
  let chunksRead = 0;
  for (const d of b.disks) {
    read += d.readBytes;
    stored += d.newBytesStored;
    chunksRead += d.chunksRead;
  }
  return { read, stored, chunksRead };
}

/** "read 12.0 MiB, stored 3.1 MiB". */
export function dataLine(b: Pick<Backup, 'disks'>): string {
  const t = backupTotals(b);
  return `read ${fmtBytes(t.read)}, stored ${fmtBytes(t.stored)}`;
}

/** "3 backups, 1.2 GiB" of a repository; the error or "on host X" when it cannot be read from here. */
export function repositoryLine(r: BackupRepository): string {
  if (r.error) return `unreadable: ${r.error}`;
  if (r.backups === undefined) return `on host ${r.node}: open it through that host`;
  return `${count(r.backups, 'backup')}, ${fmtBytes(r.usage?.bytes ?? 0)}`;
}

/** The repositories a backup can go into now: readable ones of this host (with a count). */
export function usableRepositories(repos: BackupRepository[]): BackupRepository[] {
  return repos.filter((r) => !r.error && r.backups !== undefined);
}

/** The VMs that have backups, each once: name, count, newest time; by name. */
export interface VmBackups {
  vm: { id: string; name: string };
  count: number;
  latest: string;
  /** Bytes stored for the VM's backups (new chunks each took in). */
  stored: number;
}

export function groupByVm(backups: Backup[]): VmBackups[] {
  const by = new Map<string, VmBackups>();
  for (const b of backups) {
    const g = by.get(b.vm.id);
    const stored = backupTotals(b).stored;
    if (!g) by.set(b.vm.id, { vm: b.vm, count: 1, latest: b.pointInTime, stored });
    else {
      g.count++;
      g.stored += stored;
      if (b.pointInTime > g.latest) {
        g.latest = b.pointInTime;
        g.vm = b.vm; // the newest name (a VM renamed since)
      }
    }
  }
  return [...by.values()].sort(
    (a, b) => a.vm.name.localeCompare(b.vm.name) || a.vm.id.localeCompare(b.vm.id),
  );
}

/** The backups shown: of one repository and one VM ('' for all), newest first as the API sends them. */
export function filterBackups(backups: Backup[], f: { repository: string; vm: string }): Backup[] {
  return backups.filter(
    (b) => (!f.repository || b.repository === f.repository) && (!f.vm || b.vm.id === f.vm),
  );
}

/**
 * A free name for the restored VM: "<vm>-restored", then "-restored-2"… (at most 63 characters).
 */
export function restoreName(vmName: string, taken: Iterable<string>): string {
  const names = new Set(taken);
  for (let i = 1; ; i++) {
    const suffix = i === 1 ? '-restored' : `-restored-${i}`;
    const name = `${vmName.slice(0, MAX_NAME - suffix.length)}${suffix}`;
    if (!names.has(name)) return name;
  }
}

/** Why the restore form cannot be sent ('' when it can). */
export function restoreProblem(name: string): string {
  if (!name) return 'Give the new VM a name.';
  return VM_NAME.test(name)
    ? ''
    : 'Name: letters, digits, . _ - (starting with a letter or digit), up to 63 characters.';
}

/** The Restore… dialog: into a new VM (name, pool, start it), or in place over the backed-up VM. */
export interface RestoreForm {
  target: 'new' | 'in-place';
  name: string;
  /** '' : each disk into the pool it was backed up from. */
  pool: string;
  /** Start the new VM once restored. */
  start: boolean;
  /** In place: the replacing of the VM's disks (and the loss of its snapshots) acknowledged. */
  confirmed: boolean;
}

/** The VM a backup is of, as it is now (undefined: deleted since). */
export type RestoreSource = Pick<Vm, 'name' | 'state' | 'disks' | 'snapshots'> | undefined;

/**
 * Why the dialog cannot be sent as it is ('' when it can). In place: the VM must exist and the
 * overwrite be acknowledged; whether it is stopped is left to the API (it answers why not).
 */
export function restoreFormProblem(f: RestoreForm, source: RestoreSource): string {
  if (f.target === 'new') return restoreProblem(f.name.trim());
  if (!source) return 'The VM no longer exists: restore the backup as a new VM.';
  return f.confirmed ? '' : 'Confirm that its disks are replaced.';
}

/** POST /backups/{id}/restore from the dialog. */
export function restoreBody(f: RestoreForm, repository: string): Record<string, unknown> {
  if (f.target === 'in-place') return { inPlace: true, repository };
  return {
    name: f.name.trim(),
    repository,
    ...(f.pool ? { pool: f.pool } : {}),
    ...(f.start ? { start: true } : {}),
  };
}

/**
 * What a restore in place does to the VM as it is now: the disks it replaces (the backup's that the VM
 * still has), the backup's disks it no longer has (left out), the snapshots that go; and a note on its
 * state (it must be stopped).
 */
export function inPlacePlan(
  backup: Pick<Backup, 'disks'>,
  vm: RestoreSource,
): { replaced: string[]; skipped: string[]; snapshots: string[]; state: string } {
  const has = new Set((vm?.disks ?? []).map((d) => d.id));
  return {
    replaced: backup.disks.filter((d) => has.has(d.id)).map((d) => d.id),
    skipped: backup.disks.filter((d) => !has.has(d.id)).map((d) => d.id),
    snapshots: (vm?.snapshots ?? []).map((s) => s.name),
    state: !vm
      ? 'deleted'
      : vm.state === 'stopped'
        ? ''
        : `VM ${vm.name} is ${vm.state} now: stop it first (a restore in place is refused while it runs).`,
  };
}

/**
 * A hint for the repository form while it is typed (the API decides and says why it refuses): '' when
 * the fields look right.
 */
export function repositoryHint(f: { name: string; path: string }): string {
  if (f.name && !REPO_NAME.test(f.name)) return 'Name: lowercase letters, digits and -, up to 63.';
  return '';
}

/** A running vm.backup task's details: the phase, the disk being read and its bytes. */
export interface BackupDetails {
  repository?: string;
  backup?: string;
  /** captured: a running VM's disks are fixed at their point in time (reading follows). */
  phase?: 'freezing' | 'captured' | 'reading' | 'committing';
  disk?: string;
  doneBytes?: number;
  totalBytes?: number;
}

export function backupDetails(t: Task): BackupDetails | undefined {
  return t.type === BACKUP ? ((t.details ?? {}) as BackupDetails) : undefined;
}

/** A finished vm.backup task's result: the backup (and how long it took). */
export function backupResult(t: Task): (Backup & { totalMs?: number }) | undefined {
  const r = t.type === BACKUP ? (t.result as Partial<Backup> | undefined) : undefined;
  return r && typeof r.id === 'string' && Array.isArray(r.disks)
    ? (r as Backup & { totalMs?: number })
    : undefined;
}

/** A finished backup.restore task's result: the VM (new, or restored in place) and what happened. */
export interface RestoreResult {
  vm: string;
  id: string;
  /** Over the backed-up VM itself: its disks replaced. */
  inPlace?: boolean;
  disks?: string[];
  /** The snapshots the VM had (they lived in the replaced volumes). */
  snapshotsDropped?: string[];
  /** Asked to start: started, or why not. */
  started?: boolean;
  startError?: string;
}

export function restoreResult(t: Task): RestoreResult | undefined {
  const r = t.type === RESTORE ? (t.result as Partial<RestoreResult> | undefined) : undefined;
  return r && typeof r.vm === 'string' && typeof r.id === 'string' ? (r as RestoreResult) : undefined;
}

/**
 * What follows the VM's name in a restore's outcome: '' (a new VM, stopped), ", started", "; not
 * started: …", " restored in place (disk0); snapshots dropped: s1, s2".
 */
export function restoreNote(r: RestoreResult): string {
  if (r.inPlace) {
    const disks = r.disks?.length ? ` (${r.disks.join(', ')})` : '';
    const dropped = r.snapshotsDropped?.length ? `; snapshots dropped: ${r.snapshotsDropped.join(', ')}` : '';
    return ` restored in place${disks}${dropped}`;
  }
  if (r.started) return ', started';
  if (r.startError) return `; not started: ${r.startError}`;
  return '';
}

/** The toast of a restore that ended well (`error`: a new VM that did not start). */
export function restoreToast(vmName: string, r: RestoreResult): { text: string; error: boolean } {
  if (r.inPlace) {
    const dropped = r.snapshotsDropped?.length
      ? `; snapshots dropped: ${r.snapshotsDropped.join(', ')}`
      : '; it had no snapshots';
    return { text: `Backup of ${vmName} restored in place over VM ${r.vm}${dropped}`, error: false };
  }
  const base = `Backup of ${vmName} restored as VM ${r.vm}`;
  if (r.started) return { text: `${base}, started`, error: false };
  if (r.startError) return { text: `${base}; it did not start: ${r.startError}`, error: true };
  return { text: base, error: false };
}

/** "freezing the file systems", "disk0: 12.0 MiB of 40.0 MiB read", "committing"… */
export function backupProgress(d: BackupDetails): string {
  switch (d.phase) {
    case 'freezing':
      return 'freezing the file systems';
    case 'captured':
      return 'captured; reading the disks';
    case 'reading':
      return d.totalBytes === undefined
        ? `reading ${d.disk ?? 'the disks'}`
        : `${d.disk ? `${d.disk}: ` : ''}${fmtBytes(d.doneBytes ?? 0)} of ${fmtBytes(d.totalBytes)} read`;
    case 'committing':
      return 'committing';
    default:
      return 'starting';
  }
}

/** "incremental, read 4.0 MiB, stored 1.2 MiB in 3.2 s": a finished backup in one line. */
export function backupOutcome(b: Pick<Backup, 'disks'> & { totalMs?: number }): string {
  const secs = b.totalMs === undefined ? '' : ` in ${(b.totalMs / 1000).toFixed(1)} s`;
  return `${backupMode(b)}, ${dataLine(b)}${secs}`;
}

/** A repository's verify report (src/backup/repository.ts VerifyReport). */
export interface VerifyReport {
  backups: number;
  chunks: number;
  bad: { chunk: string; error: string; backups: string[] }[];
  broken: { id: string; vm: string }[];
}

/** A repository's garbage collection report (src/backup/repository.ts GcReport). */
export interface GcReport {
  keptChunks: number;
  removedChunks: number;
  freedBytes: number;
}

/** A finished backup.verify task's report (its target: the backup id or the repository name). */
export function verifyResult(t: Task): VerifyReport | undefined {
  const r = t.type === VERIFY ? (t.result as Partial<VerifyReport> | undefined) : undefined;
  return r && Array.isArray(r.bad) && typeof r.chunks === 'number' ? (r as VerifyReport) : undefined;
}

/** A finished backup.gc task's report (its target: the repository name). */
export function gcResult(t: Task): GcReport | undefined {
  const r = t.type === GC ? (t.result as Partial<GcReport> | undefined) : undefined;
  return r && typeof r.removedChunks === 'number' ? (r as GcReport) : undefined;
}

/**
 * The newest task of a type on a target (the store lists the newest first): what the last verify or GC
 * of a repository or backup found, or that one runs.
 */
export function lastTask(tasks: Task[], type: string, target: string): Task | undefined {
  return tasks.find((t) => t.type === type && t.target === target);
}

const detail = (t: Task, k: string): string | undefined =>
  typeof t.details?.[k] === 'string' ? (t.details[k] as string) : undefined;

/**
 * The newest task of a type on one backup (verify, boot-verify): by its details' backup and repository
 * when it has them (verify), else by its target (the backup id; boot-verify).
 */
export function backupTask(
  tasks: Task[],
  type: string,
  b: Pick<Backup, 'id' | 'repository'>,
): Task | undefined {
  return tasks.find((t) => {
    if (t.type !== type) return false;
    const backup = detail(t, 'backup');
    const repo = detail(t, 'repository');
    // a repository named but no backup: a verify of the whole repository
    if (backup === undefined) return repo === undefined && t.target === b.id;
    return backup === b.id && (repo === undefined || repo === b.repository);
  });
}

/**
 * The newest verify or GC of a whole repository: by its details' repository (a verify of one backup,
 * which names its backup too, is not one), else by its target (the repository name).
 */
export function repositoryTask(tasks: Task[], type: string, repository: string): Task | undefined {
  return tasks.find((t) => {
    if (t.type !== type) return false;
    const repo = detail(t, 'repository');
    if (repo === undefined) return t.target === repository;
    return repo === repository && detail(t, 'backup') === undefined;
  });
}

/**
 * A verify or GC task in one line: "verifying…", "verify: 3 backups, 40 chunks: all intact", or its
 * error; `bad` when the verify found damage or the task failed.
 */
export function maintenanceLine(t: Task): { text: string; bad: boolean } {
  const what = t.type === GC ? 'garbage collection' : 'verify';
  if (t.status === 'running') return { text: `${what} running…`, bad: false };
  if (t.status === 'error')
    return { text: `${what} failed: ${t.error?.message ?? 'unknown error'}`, bad: true };
  const v = verifyResult(t);
  if (v) return { text: `verify: ${verifyOutcome(v)}`, bad: v.bad.length > 0 };
  const g = gcResult(t);
  if (g) return { text: `garbage collection: ${gcOutcome(g)}`, bad: false };
  return { text: `${what} done`, bad: false };
}

/** "12 backups, 340 chunks: all intact" or "…: 2 damaged chunks; broken: web1 (id), …". */
export function verifyOutcome(r: Partial<VerifyReport>): string {
  const head = `${count(r.backups ?? 0, 'backup')}, ${count(r.chunks ?? 0, 'chunk')}`;
  const bad = r.bad ?? [];
  if (bad.length === 0) return `${head}: all intact`;
  const broken = (r.broken ?? []).map((b) => `${b.vm} (${b.id})`).join(', ');
  return `${head}: ${count(bad.length, 'damaged chunk')}${broken ? `; broken: ${broken}` : ''}`;
}

/** "removed 12 chunks, freed 40.0 MiB (kept 300)". */
export function gcOutcome(r: Partial<GcReport>): string {
  return `removed ${count(r.removedChunks ?? 0, 'chunk')}, freed ${fmtBytes(r.freedBytes ?? 0)} (kept ${r.keptChunks ?? 0})`;
}

/** "1 chunk", "3 chunks". */
export function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** "23 s", "1.5 s" (under 10 s with a tenth). */
export function seconds(ms: number): string {
  return ms < 10_000 ? `${(Math.round(ms / 100) / 10).toString()} s` : `${Math.round(ms / 1000)} s`;
}

/** The API's bounds of a boot verification's wait for the guest agent (s); its default. */
export const BOOT_TIMEOUT = { min: 10, max: 3600, default: 300 };

/** Why the wait typed is wrong ('' when right; empty: the API's default). */
export function bootTimeoutProblem(value: string): string {
  const v = value.trim();
  if (v === '') return '';
  const n = Number(v);
  return /^\d+$/.test(v) && n >= BOOT_TIMEOUT.min && n <= BOOT_TIMEOUT.max
    ? ''
    : `A whole number of seconds from ${BOOT_TIMEOUT.min} to ${BOOT_TIMEOUT.max}, or empty (${BOOT_TIMEOUT.default}).`;
}

/** POST /backups/{id}/boot-verify: the repository, and the wait when one is typed. */
export function bootVerifyBody(repository: string, timeout: string): Record<string, unknown> {
  const v = timeout.trim();
  return { repository, ...(v && !bootTimeoutProblem(v) ? { timeoutSec: Number(v) } : {}) };
}

/** A running backup.boot-verify task's details: the phase, its VM and the disk being restored. */
export interface BootVerifyDetails {
  /** restoring (then writing, per disk, as a restore), booting, cleaning up. */
  phase?: string;
  vm?: string;
  disk?: string;
}

export function bootVerifyDetails(t: Task): BootVerifyDetails | undefined {
  return t.type === BOOT_VERIFY ? ((t.details ?? {}) as BootVerifyDetails) : undefined;
}

/** A finished (passed or failed) backup.boot-verify task's result. */
export function bootVerifyResult(t: Task): (BootVerify & { backup?: string; vm?: string }) | undefined {
  const r = t.type === BOOT_VERIFY ? (t.result as Partial<BootVerify> | undefined) : undefined;
  return r && typeof r.passed === 'boolean'
    ? (r as BootVerify & { backup?: string; vm?: string })
    : undefined;
}

/** "restoring disk0 into verify-web1-1a2b", "booting verify-web1-1a2b: waiting for its guest agent"… */
export function bootVerifyProgress(d: BootVerifyDetails): string {
  const vm = d.vm ?? 'a VM of its own';
  switch (d.phase) {
    case 'restoring':
    case 'writing':
      return `restoring ${d.disk ?? 'the disks'} into ${vm}`;
    case 'booting':
      return `booting ${vm}: waiting for its guest agent`;
    case 'cleaning up':
      return `deleting ${vm}`;
    default:
      return 'starting';
  }
}

/** "✓ agent after 23 s", "✗ failed: <reason>": a boot verification in a line. */
export function bootVerifyLine(v: BootVerify): string {
  if (v.passed) return v.agentAfterMs === undefined ? '✓ passed' : `✓ agent after ${seconds(v.agentAfterMs)}`;
  return `✗ failed: ${v.reason ?? 'no reason given'}`;
}

/** The tooltip of a boot verification: when, what passing means, how long it all took. */
export function bootVerifyTitle(v: BootVerify, at: string): string {
  const total = v.totalMs === undefined ? '' : ` (restore, boot and clean-up: ${seconds(v.totalMs)})`;
  return v.passed
    ? `Boot-verified ${at}: restored into an isolated VM that started, and its guest agent answered${v.agentAfterMs === undefined ? '' : ` ${seconds(v.agentAfterMs)} after the start`}${total}`
    : `Boot verification failed ${at}${total}: ${v.reason ?? 'no reason given'}`;
}

// ---- file restore: browsing a backup's file systems ----

/** GET /backups/{id}/files: a file system on one of the backup's disks (src/backup/files.ts). */
export interface BackupFilesystem {
  /** "disk1" (the whole disk) or "disk0p1" (its partition 1). */
  id: string;
  disk: string;
  partition?: number;
  offsetBytes: number;
  sizeBytes: number;
  /** "ext4", "xfs", "swap", "unknown"… */
  type: string;
  /** Only these can be browsed. */
  readable: boolean;
  label?: string;
  uuid?: string;
  /** The journal was not replayed: the newest changes may be missing. */
  needsRecovery?: boolean;
  /** Why it cannot be browsed. */
  reason?: string;
}

export type FileType = 'file' | 'dir' | 'symlink' | 'other';

/** An entry of GET /backups/{id}/files/{fs}?path=. */
export interface FileEntry {
  name: string;
  type: FileType;
  size: number;
  /** st_mode: the type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  mtime: string;
  /** A symbolic link's target (never followed). */
  target?: string;
}

/** GET /backups/{id}/files/{fs}?path=: a directory of a backed-up file system. */
export interface BackupDirectory {
  path: string;
  entries: FileEntry[];
  /** More entries than the API lists. */
  truncated: boolean;
}

/** What a journal not replayed means (the file system was backed up without a freeze). */
export const NEEDS_RECOVERY =
  'The journal was not replayed: the newest changes may be missing (the file system was not frozen for the backup).';

const S_IFMT = 0o170000;
// (a Map: octal literals as object keys are rewritten by the formatter)
const TYPE_CHAR = new Map<number, string>([
  [0o140000, 's'],
  [0o120000, 'l'],
  [0o100000, '-'],
  [0o060000, 'b'],
  [0o040000, 'd'],
  [0o020000, 'c'],
  [0o010000, 'p'],
]);
const ENTRY_CHAR: Record<FileType, string> = { file: '-', dir: 'd', symlink: 'l', other: '?' };

/**
 * ls -l's mode column from st_mode: "drwxr-xr-x", "-rw-r--r--", "lrwxrwxrwx", with setuid/setgid
 * (s, S) and sticky (t, T); the entry's type stands in when the mode carries no type bits.
 */
export function modeString(mode: number, type?: FileType): string {
  const kind = TYPE_CHAR.get(mode & S_IFMT) ?? (type ? ENTRY_CHAR[type] : '?');
  let bits = '';
  for (let i = 8; i >= 0; i--) bits += (mode >> i) & 1 ? 'rwx'[(8 - i) % 3] : '-';
  const special = (at: number, flag: number, on: string) => {
    if (!(mode & flag)) return;
    const x = bits[at] === 'x';
    bits = bits.slice(0, at) + (x ? on : on.toUpperCase()) + bits.slice(at + 1);
  };
  special(2, 0o4000, 's');
  special(5, 0o2000, 's');
  special(8, 0o1000, 't');
  return kind + bits;
}

/** An absolute path made canonical: "/", "/etc", "/etc/ssh" (no trailing or doubled slashes). */
export function normalPath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  return `/${parts.join('/')}`;
}

/** A directory's entry: joinPath('/', 'etc') = "/etc", joinPath('/etc', 'ssh') = "/etc/ssh". */
export function joinPath(dir: string, name: string): string {
  const d = normalPath(dir);
  return d === '/' ? `/${name}` : `${d}/${name}`;
}

/** The directory a path is in: "/etc/ssh" → "/etc", "/etc" → "/", "/" → "/". */
export function parentPath(path: string): string {
  const d = normalPath(path);
  const i = d.lastIndexOf('/');
  return i <= 0 ? '/' : d.slice(0, i);
}

/** The breadcrumb of a path: "/etc/ssh" → [{/ ,"/"}, {etc, "/etc"}, {ssh, "/etc/ssh"}]. */
export function breadcrumbs(path: string): { name: string; path: string }[] {
  const crumbs = [{ name: '/', path: '/' }];
  let at = '/';
  for (const part of normalPath(path).split('/').filter(Boolean)) {
    at = joinPath(at, part);
    crumbs.push({ name: part, path: at });
  }
  return crumbs;
}

/** Directories first, then the rest, each by name (byte order, as ls in the C locale). */
export function sortEntries(entries: FileEntry[]): FileEntry[] {
  return [...entries].sort(
    (a, b) =>
      Number(b.type === 'dir') - Number(a.type === 'dir') || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
}

const backupFilesBase = (b: Pick<Backup, 'id'>) => `/backups/${encodeURIComponent(b.id)}/files`;

/** GET /backups/{id}/files?repository= (for api(): without /api/v1). */
export function filesystemsPath(b: Pick<Backup, 'id' | 'repository'>): string {
  return `${backupFilesBase(b)}?${new URLSearchParams({ repository: b.repository })}`;
}

/** GET /backups/{id}/files/{fs}?path=&repository= (for api(): without /api/v1). */
export function directoryPath(b: Pick<Backup, 'id' | 'repository'>, fs: string, path: string): string {
  const q = new URLSearchParams({ path: normalPath(path), repository: b.repository });
  return `${backupFilesBase(b)}/${encodeURIComponent(fs)}?${q}`;
}

/**
 * The link that downloads a file of a backed-up file system (a plain GET: the browser sends the session
 * cookie; the API answers with the bytes as an attachment).
 */
export function downloadHref(b: Pick<Backup, 'id' | 'repository'>, fs: string, path: string): string {
  const q = new URLSearchParams({ path: normalPath(path), repository: b.repository });
  return `/api/v1${backupFilesBase(b)}/${encodeURIComponent(fs)}/download?${q}`;
}

/** "ext4, 64.0 MiB, nfdata" (partition and label when there are). */
export function filesystemLine(fs: BackupFilesystem): string {
  const part = fs.partition === undefined ? '' : `partition ${fs.partition} of ${fs.disk}, `;
  return `${part}${fs.type}, ${fmtBytes(fs.sizeBytes)}${fs.label ? `, ${fs.label}` : ''}`;
}
