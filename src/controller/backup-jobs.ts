/**
 * Scheduled backup jobs: a schedule (cron expression or @hourly/@daily/@weekly/@monthly, UTC), a
 * selection (every VM, or named VMs), a repository and a retention policy. The controller of the
 * repository's host runs a job when it is due (also once at start for a run missed while it was down);
 * a run backs the VMs up one after the other (each its own `vm.backup` task), prunes each VM's backups by
 * the retention policy, then garbage-collects the repository if anything was pruned. The run is a
 * `backup.job` task whose result lists every VM's outcome.
 */
import { Cron } from 'croner';
import type { Retention } from '../backup/retention';
import { NfError, toNfError } from '../errors';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';
import type { BackupService } from './backups';
import { keys, type VmRecord } from './records';
import type { TaskLog } from './tasks';
import type { VmService } from './vms';

const log = createLogger('backup-jobs');
const NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** How often due jobs are looked for (tests shorten it). */
const TICK_MS = Number(process.env.NEUROFLOW_BACKUP_TICK_MS) || 20_000;

export interface BackupJobRecord {
  name: string;
  schedule: string;
  repository: string;
  /** Every VM, named VMs, or the VMs carrying any of the tags (at each run). */
  selection: { all?: boolean; vms?: string[]; tags?: string[] };
  retention?: Retention;
  enabled: boolean;
  notes?: string;
  createdAt: string;
}

export interface BackupJobState {
  lastRunAt?: string;
  lastTaskId?: string;
  lastStatus?: 'ok' | 'partial' | 'error';
  lastMessage?: string;
}

export interface BackupJobView extends BackupJobRecord, BackupJobState {
  nextRunAt?: string;
  running: boolean;
}

export interface JobVmOutcome {
  vm: string;
  status: 'ok' | 'error' | 'skipped';
  backup?: string;
  taskId?: string;
  mode?: string;
  error?: string;
  pruned?: number;
}

export function nextRun(schedule: string, after: Date): Date | undefined {
  return new Cron(schedule, { paused: true, timezone: 'Etc/UTC' }).nextRun(after) ?? undefined;
}

export function checkSchedule(schedule: string): void {
  try {
    if (!nextRun(schedule, new Date())) throw new Error('it never runs');
  } catch (err) {
    throw new NfError(
      'validation_failed',
      `schedule "${schedule}": ${(err as Error).message} (a cron expression such as "0 2 * * *", or @hourly, @daily, @weekly, @monthly; UTC)`,
    );
  }
}

export class BackupJobs {
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly running = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly backups: BackupService,
    private readonly vms: VmService,
    private readonly tasks: TaskLog,
    private readonly nodeName: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async list(): Promise<BackupJobView[]> {
    const recs = await this.store.list<BackupJobRecord>(keys.backupJobs);
    return Promise.all(recs.map((r) => this.view(r.value)));
  }

  async get(name: string): Promise<BackupJobView> {
    return this.view(await this.record(name));
  }

  private async view(j: BackupJobRecord): Promise<BackupJobView> {
    const state = (await this.store.get<BackupJobState>(keys.backupJobState(j.name)))?.value ?? {};
    // as the scheduler counts: from the last run (a run missed while down is due now)
    const due = j.enabled ? nextRun(j.schedule, new Date(state.lastRunAt ?? j.createdAt)) : undefined;
    const next = due && due.getTime() < Date.now() ? new Date() : due;
    return {
      ...j,
      ...state,
      ...(next ? { nextRunAt: next.toISOString() } : {}),
      running: this.running.has(j.name),
    };
  }

  private async record(name: string): Promise<BackupJobRecord> {
    const cur = await this.store.get<BackupJobRecord>(keys.backupJob(name));
    if (!cur) throw new NfError('not_found', `no backup job "${name}"`);
    return cur.value;
  }

  private async check(
    j: Omit<BackupJobRecord, 'createdAt'>,
    changed: { repository?: unknown; selection?: unknown } = j,
  ): Promise<void> {
    if (!NAME_RE.test(j.name))
      throw new NfError('validation_failed', 'a job name is 1-63 lowercase letters, digits and dashes');
    checkSchedule(j.schedule);
    if (changed.repository !== undefined) await this.backups.repositoryPlace(j.repository); // not_found names it
    if (changed.selection === undefined) return; // a VM deleted since does not block disabling the job
    const ways = [j.selection.all, !!j.selection.vms?.length, !!j.selection.tags?.length].filter(Boolean);
    if (ways.length === 0)
      throw new NfError(
        'validation_failed',
        'select VMs: selection.all, selection.vms with at least one VM, or selection.tags with at least one tag',
      );
    if (ways.length > 1)
      throw new NfError(
        'validation_failed',
        'selection.all, selection.vms and selection.tags exclude each other',
      );
    for (const ref of j.selection.vms ?? []) await this.vms.find(ref); // not_found names it
  }

  async create(
    input: Omit<BackupJobRecord, 'createdAt' | 'enabled'> & { enabled?: boolean },
  ): Promise<BackupJobView> {
    const rec: BackupJobRecord = {
      ...input,
      enabled: input.enabled ?? true,
      createdAt: new Date().toISOString(),
    };
    await this.check(rec);
    await this.store
      .txn(
        {
          when: [{ key: keys.backupJob(rec.name), absent: true }],
          put: [{ key: keys.backupJob(rec.name), value: rec }],
        },
        `a backup job named "${rec.name}" exists`,
      )
      .catch((err) => {
        const e = toNfError(err);
        throw e.code === 'conflict'
          ? new NfError('already_exists', `a backup job named "${rec.name}" exists`)
          : e;
      });
    log.info('backup job added', { job: rec.name, schedule: rec.schedule, repository: rec.repository });
    return this.view(rec);
  }

  async update(
    name: string,
    patch: Partial<Omit<BackupJobRecord, 'name' | 'createdAt'>>,
  ): Promise<BackupJobView> {
    const cur = await this.record(name);
    const next: BackupJobRecord = { ...cur, ...patch, name };
    await this.check(next, patch);
    await this.store.txn({ put: [{ key: keys.backupJob(name), value: next }] });
    return this.view(next);
  }

  async delete(name: string): Promise<void> {
    await this.record(name);
    await this.store.txn({ delete: [keys.backupJob(name), keys.backupJobState(name)] });
  }

  /** Runs a job now (as its schedule would), as a task. */
  async runNow(name: string, user: string) {
    const job = await this.record(name);
    if ((await this.backups.repositoryPlace(job.repository)).node !== this.nodeName)
      throw new NfError(
        'not_implemented',
        `job "${name}" backs up into a repository of another host: run it there`,
      );
    if (this.running.has(name)) throw new NfError('invalid_state', `job "${name}" is running`);
    return this.run(job, user);
  }

  private async run(job: BackupJobRecord, user: string) {
    this.running.add(job.name);
    const startedAt = new Date().toISOString();
    try {
      const task = await this.tasks.start('backup.job', job.name, user, async (progress, ctl) => {
        const outcomes: JobVmOutcome[] = [];
        try {
          const missing: string[] = [];
          const vms = await this.selected(job, missing);
          for (const ref of missing)
            outcomes.push({ vm: ref, status: 'error', error: 'no such VM (deleted or renamed)' });
          for (const [i, vm] of vms.entries()) {
            ctl.details({ phase: 'backing up', vm: vm.name, done: i, total: vms.length });
            outcomes.push(await this.backupOne(job, vm, user));
            progress(((i + 1) / Math.max(1, vms.length)) * 0.9);
          }
          let pruned = 0;
          if (job.retention) {
            ctl.details({ phase: 'pruning' });
            for (const o of outcomes) {
              const vm = vms.find((v) => v.name === o.vm);
              if (!vm || o.status !== 'ok') continue; // never prune a VM whose backup just failed
              o.pruned = (await this.backups.prune(job.repository, vm.id, job.retention)).length;
              pruned += o.pruned;
            }
          }
          const gc = pruned > 0 ? await this.backups.collect(job.repository) : undefined;
          const gcSkipped =
            pruned > 0 && !gc
              ? 'another backup was writing into the repository: run its GC later'
              : undefined;
          const ok = outcomes.filter((o) => o.status === 'ok').length;
          const failed = outcomes.filter((o) => o.status === 'error');
          const skipped = outcomes.filter((o) => o.status === 'skipped');
          const status = failed.length === 0 && ok > 0 ? 'ok' : ok === 0 ? 'error' : 'partial';
          const parts = [`${ok} of ${outcomes.length} VM(s) backed up`];
          if (pruned > 0) parts.push(`${pruned} old backup(s) pruned`);
          if (skipped.length > 0)
            parts.push(`skipped: ${skipped.map((f) => `${f.vm} (${f.error})`).join('; ')}`);
          if (failed.length > 0)
            parts.push(`failed: ${failed.map((f) => `${f.vm} (${f.error})`).join('; ')}`);
          const message = outcomes.length === 0 ? 'the job selects no VM' : parts.join('; ');
          ctl.result({
            job: job.name,
            status,
            vms: outcomes,
            pruned,
            ...(gc ? { gc } : {}),
            ...(gcSkipped ? { gcSkipped } : {}),
          });
          await this.saveState(job.name, { lastRunAt: startedAt, lastStatus: status, lastMessage: message });
          if (status !== 'ok') throw new NfError('unavailable', message);
          return outcomes;
        } catch (err) {
          if (outcomes.length === 0)
            await this.saveState(job.name, {
              lastRunAt: startedAt,
              lastStatus: 'error',
              lastMessage: (err as Error).message,
            });
          throw err;
        } finally {
          this.running.delete(job.name);
        }
      });
      await this.saveState(job.name, { lastTaskId: task.id }).catch(() => {});
      return task;
    } catch (err) {
      this.running.delete(job.name);
      throw err;
    }
  }

  private async backupOne(job: BackupJobRecord, vm: VmRecord, user: string): Promise<JobVmOutcome> {
    const place = await this.backups.repositoryPlace(job.repository);
    // a VM of another host is backed up by that host, which must reach the repository
    if (vm.node && vm.node !== this.nodeName && !place.shared && vm.node !== place.node)
      return {
        vm: vm.name,
        status: 'skipped',
        error: `it runs on host ${vm.node}, and the repository is on ${place.node}, not shared`,
      };
    try {
      const { task, done } = await this.backups.startBackup(
        vm.id,
        { repository: job.repository, notes: job.notes ?? `job ${job.name}` },
        user,
      );
      const b = await done;
      return {
        vm: vm.name,
        status: 'ok',
        backup: b.id,
        taskId: task.id,
        mode: [...new Set(b.disks.map((d) => d.mode))].join('+'),
      };
    } catch (err) {
      return { vm: vm.name, status: 'error', error: toNfError(err).message };
    }
  }

  /** The job's VMs as records; the names or ids that match no VM any more go into `missing`. */
  private async selected(job: BackupJobRecord, missing: string[] = []): Promise<VmRecord[]> {
    if (job.selection.all || job.selection.tags?.length) {
      const tags = new Set(job.selection.tags ?? []);
      return (
        (await this.store.list<VmRecord>(keys.vms))
          .map((v) => v.value)
          // templates, and the short-lived VMs of boot verifications, are not backed up
          .filter((v) => !v.template && !v.description?.startsWith('boot verification of backup'))
          .filter((v) => job.selection.all || (v.tags ?? []).some((t) => tags.has(t)))
          .sort((a, b) => a.name.localeCompare(b.name))
      );
    }
    const out: VmRecord[] = [];
    for (const ref of job.selection.vms ?? []) {
      const v = await this.vms.find(ref).catch(() => undefined);
      if (v) out.push(v.value);
      else {
        log.warn('a VM of a backup job is gone', { job: job.name, vm: ref });
        missing.push(ref);
      }
    }
    return out;
  }

  private async saveState(name: string, state: BackupJobState): Promise<void> {
    if (!(await this.store.get(keys.backupJob(name)))) return; // deleted meanwhile: its state goes with it
    const cur = (await this.store.get<BackupJobState>(keys.backupJobState(name)))?.value ?? {};
    await this.store.txn({ put: [{ key: keys.backupJobState(name), value: { ...cur, ...state } }] });
  }

  /** Starts the jobs of this host's repositories that are due (a run missed while down counts as due). */
  private async tick(): Promise<void> {
    try {
      for (const { value: job } of await this.store.list<BackupJobRecord>(keys.backupJobs)) {
        if (!job.enabled || this.running.has(job.name)) continue;
        const node = (await this.backups.repositoryPlace(job.repository).catch(() => undefined))?.node;
        if (node !== this.nodeName) continue;
        const state = (await this.store.get<BackupJobState>(keys.backupJobState(job.name)))?.value;
        const due = nextRun(job.schedule, new Date(state?.lastRunAt ?? job.createdAt));
        if (!due || due.getTime() > Date.now()) continue;
        log.info('backup job due', { job: job.name, due: due.toISOString() });
        await this.run(job, 'scheduler').catch((err) =>
          log.warn('a backup job could not start', { job: job.name, err: (err as Error).message }),
        );
      }
    } catch (err) {
      log.warn('backup job scheduling failed', { err: (err as Error).message });
    }
  }
}
