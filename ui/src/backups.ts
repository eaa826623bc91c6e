import { fmtBytes, type Task } from './api';

/** The task type of a backup (POST /vms/{id}/backup) and of a restore (POST /backups/{id}/restore). */
export const BACKUP = 'vm.backup';
export const RESTORE = 'backup.restore';
/** Repository maintenance tasks (POST /backup/repositories/{name}/verify and /gc, /backups/{id}/verify). */
export const VERIFY = 'backup.verify';
export const GC = 'backup.gc';

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
  phase?: 'freezing' | 'reading' | 'committing';
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

/** A finished backup.restore task's result: the new VM. */
export function restoreResult(t: Task): { vm: string; id: string } | undefined {
  const r = t.type === RESTORE ? (t.result as { vm?: unknown; id?: unknown } | undefined) : undefined;
  return r && typeof r.vm === 'string' && typeof r.id === 'string' ? { vm: r.vm, id: r.id } : undefined;
}

/** "freezing the file systems", "disk0: 12.0 MiB of 40.0 MiB read", "committing". */
export function backupProgress(d: BackupDetails): string {
  switch (d.phase) {
    case 'freezing':
      return 'freezing the file systems';
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
