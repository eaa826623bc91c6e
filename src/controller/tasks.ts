import { randomUUID } from 'node:crypto';
import { toNfError } from '../errors';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';
import { keys, type TaskRecord } from './records';

const log = createLogger('tasks');
const KEEP = 500;

/**
 * Long or state-changing operations as tasks in etcd (id, progress, result), which double as the audit
 * trail of who did what. Old tasks are trimmed.
 */
export class TaskLog {
  private writes = 0;

  constructor(
    private readonly store: Store,
    private readonly onChange: (t: TaskRecord) => void = () => {},
  ) {}

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
    fn: (progress: (p: number) => void) => Promise<unknown>,
  ): Promise<TaskRecord> {
    const task = await this.begin(type, target, user);
    const answer = { ...task };
    void this.finish(task, fn).catch((err) =>
      log.warn('background task failed', { type, target, err: (err as Error).message }),
    );
    return answer;
  }

  private async begin(type: string, target: string, user: string): Promise<TaskRecord> {
    // Time-ordered ids so a prefix listing is chronological.
    const id = `${Date.now().toString(36).padStart(9, '0')}-${randomUUID().slice(0, 8)}`;
    const task: TaskRecord = {
      id,
      type,
      target,
      user,
      status: 'running',
      progress: 0,
      startedAt: new Date().toISOString(),
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
      return result;
    } catch (err) {
      const e = toNfError(err);
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

  private async save(task: TaskRecord): Promise<void> {
    this.onChange({ ...task });
    try {
      await this.store.txn({ put: [{ key: keys.task(task.id), value: task }] });
    } catch (err) {
      log.warn('cannot record task', { id: task.id, err });
    }
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
