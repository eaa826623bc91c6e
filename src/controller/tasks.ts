import { randomUUID } from 'node:crypto';
import { NfError, toNfError } from '../errors';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';
import { keys, type TaskRecord } from './records';

const log = createLogger('tasks');
const KEEP = 500;

/**
 * Long or state-changing operations as tasks in etcd (id, progress, result), which double as the audit
 * trail of who did what. Old tasks are trimmed.
 */
/** What a background task may do besides reporting its progress (TaskLog.start). */
export interface TaskControl {
  /** Merges into the task's `details` (and saves it). */
  details(d: Record<string, unknown>): void;
  /** Sets the task's `result`, saved when it ends well. */
  result(r: Record<string, unknown>): void;
  /** Called when a cancel is asked on this controller (with who asked). */
  onCancel(cb: (reason: string) => void): void;
  /** Whether a cancel was asked anywhere (reads the task record: call it now and then). */
  cancelRequested(): Promise<boolean>;
}

export class TaskLog {
  private writes = 0;
  private readonly cancelHandlers = new Map<string, (reason: string) => void>();
  private readonly saving = new Map<string, Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly onChange: (t: TaskRecord) => void = () => {},
    /** Who runs this log's tasks: "<host>/<process>", recorded in each task (see sweepOrphans). */
    private readonly runner?: string,
  ) {}

  /**
   * Ends the tasks an earlier daemon of this host left running (it was killed or restarted before they
   * ended): they would otherwise show "running" for ever. Types another part settles (migrations: the
   * leader decides where the VM runs) are left to it.
   */
  async sweepOrphans(host: string, skipTypes: string[] = []): Promise<number> {
    let n = 0;
    for (const { value: t } of await this.store.list<TaskRecord>(keys.tasks)) {
      if (t.status !== 'running' || !t.runner?.startsWith(`${host}/`) || t.runner === this.runner) continue;
      if (skipTypes.includes(t.type)) continue;
      await this.settle(
        t.id,
        false,
        `NeuroFlow on ${host} stopped before this task ended (it was not resumed)`,
      );
      n++;
    }
    return n;
  }

  async run<T>(
    type: string,
    target: string,
    user: string,
    fn: (progress: (p: number) => void) => Promise<T>,
  ): Promise<T> {
    return this.finish(await this.begin(type, target, user), fn);
  }

  /**
   * Like run, but answers as soon as the task is recorded: fn goes on in the background and its outcome
   * (progress, result or error) lands in the task (GET /api/v1/tasks/{id}, the event stream).
   */
  async start(
    type: string,
    target: string,
    user: string,
    fn: (progress: (p: number) => void, ctl: TaskControl) => Promise<unknown>,
    opts: { id?: string; cancellable?: boolean; details?: Record<string, unknown> } = {},
  ): Promise<TaskRecord> {
    const task = await this.begin(type, target, user, opts);
    const answer = { ...task };
    const ctl: TaskControl = {
      details: (d) => {
        task.details = { ...task.details, ...d };
        void this.save(task);
      },
      result: (r) => {
        task.result = r;
      },
      onCancel: (cb) => {
        this.cancelHandlers.set(task.id, cb);
      },
      cancelRequested: async () => {
        if (task.cancelRequested) return true;
        const asked = await this.store.get(keys.taskCancel(task.id)).catch(() => undefined);
        if (asked) {
          task.cancelRequested = true;
          void this.save(task);
        }
        return task.cancelRequested === true;
      },
    };
    void this.finish(task, (p) => fn(p, ctl))
      .catch((err) => log.warn('background task failed', { type, target, err: (err as Error).message }))
      .finally(() => {
        this.cancelHandlers.delete(task.id);
        if (opts.cancellable) void this.store.txn({ delete: [keys.taskCancel(task.id)] }).catch(() => {});
      });
    return answer;
  }

  /** A time-ordered task id (a prefix listing is chronological), for a caller that must name it first. */
  static newId(): string {
    return `${Date.now().toString(36).padStart(9, '0')}-${randomUUID().slice(0, 8)}`;
  }

  /**
   * Asks a running task to stop: recorded in the task (a task run by another controller sees it there)
   * and passed at once to the task when it runs here.
   */
  async cancel(id: string, user: string): Promise<TaskRecord> {
    const cur = await this.store.get<TaskRecord>(keys.task(id));
    if (!cur) throw new NfError('not_found', `no task ${id}`);
    const task = cur.value;
    if (task.status !== 'running')
      throw new NfError('invalid_state', `task ${id} has ended (${task.status}); there is nothing to cancel`);
    if (!task.cancellable)
      throw new NfError('invalid_state', `task ${id} (${task.type}) cannot be cancelled`);
    if (!task.cancelRequested) {
      const next = { ...task, cancelRequested: true };
      await this.store.txn({
        put: [
          { key: keys.taskCancel(id), value: { by: user, at: new Date().toISOString() } },
          { key: cur.key, value: next },
        ],
      });
      this.onChange(next);
      log.info('task cancel asked', { id, type: task.type, user });
    }
    this.cancelHandlers.get(id)?.(`cancelled by ${user}`);
    return { ...task, cancelRequested: true };
  }

  private async begin(
    type: string,
    target: string,
    user: string,
    opts: { id?: string; cancellable?: boolean; details?: Record<string, unknown> } = {},
  ): Promise<TaskRecord> {
    const id = opts.id ?? TaskLog.newId();
    const task: TaskRecord = {
      id,
      type,
      target,
      user,
      status: 'running',
      progress: 0,
      startedAt: new Date().toISOString(),
      ...(this.runner ? { runner: this.runner } : {}),
      ...(opts.cancellable ? { cancellable: true } : {}),
      ...(opts.details ? { details: opts.details } : {}),
    };
    await this.save(task);
    return task;
  }

  private async finish<T>(task: TaskRecord, fn: (progress: (p: number) => void) => Promise<T>): Promise<T> {
    try {
      const result = await fn((p) => {
        task.progress = Math.max(0, Math.min(1, p));
        void this.save(task);
      });
      Object.assign(task, { status: 'ok', progress: 1, endedAt: new Date().toISOString() });
      delete task.cancellable;
      return result;
    } catch (err) {
      const e = toNfError(err);
      delete task.cancellable;
      Object.assign(task, {
        status: 'error',
        error: { code: e.code, message: e.message },
        endedAt: new Date().toISOString(),
      });
      throw err;
    } finally {
      await this.save(task);
      if (++this.writes % 50 === 0) void this.trim();
    }
  }

  async list(limit = 100): Promise<TaskRecord[]> {
    const all = await this.store.list<TaskRecord>(keys.tasks);
    return all
      .map((t) => t.value)
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .slice(0, limit);
  }

  async get(id: string): Promise<TaskRecord | undefined> {
    return (await this.store.get<TaskRecord>(keys.task(id)))?.value;
  }

  /** Ends a running task whose runner is gone (the leader settled what it left). */
  async settle(id: string, ok: boolean, message: string): Promise<void> {
    const cur = await this.get(id);
    if (!cur || cur.status !== 'running') return;
    const task: TaskRecord = { ...cur, status: ok ? 'ok' : 'error', endedAt: new Date().toISOString() };
    delete task.cancellable;
    if (ok) task.details = { ...task.details, note: message };
    else task.error = { code: 'unavailable', message };
    await this.save(task);
  }

  /**
   * Writes the task as it is now. Writes of one task go out one after the other: a progress write still
   * in flight must never land after the final one (the task would stay "running" for ever).
   */
  private save(task: TaskRecord): Promise<void> {
    task.updatedAt = new Date().toISOString();
    const snapshot = structuredClone(task);
    this.onChange({ ...snapshot });
    const prev = this.saving.get(task.id) ?? Promise.resolve();
    const next = prev.then(async () => {
      try {
        await this.store.txn({ put: [{ key: keys.task(snapshot.id), value: snapshot }] });
      } catch (err) {
        log.warn('cannot record task', { id: snapshot.id, err });
      }
    });
    this.saving.set(task.id, next);
    void next.then(() => {
      if (this.saving.get(task.id) === next) this.saving.delete(task.id);
    });
    return next;
  }

  /** Keeps the newest KEEP tasks; never throws (it runs in the background). */
  private async trim(): Promise<void> {
    try {
      const all = await this.store.list<TaskRecord>(keys.tasks);
      if (all.length <= KEEP) return;
      const old = all.sort((a, b) => (a.key < b.key ? -1 : 1)).slice(0, all.length - KEEP);
      // etcd refuses transactions with more than 128 operations.
      for (let i = 0; i < old.length; i += 100) {
        await this.store.txn({ delete: old.slice(i, i + 100).map((t) => t.key) });
      }
    } catch (err) {
      log.warn('cannot trim old tasks', { err: (err as Error).message });
    }
  }
}
