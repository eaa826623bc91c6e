import { NfError } from '../errors';
import type { Store, TxnOps, Versioned } from './store';

/**
 * The Store contract in memory, with etcd's revision semantics (one global revision, bumped by every
 * successful transaction), for unit tests of controller logic.
 */
export class MemoryStore implements Store {
  private revision = 1;
  private readonly data = new Map<string, { value: string; mod: number }>();
  private readonly watchers = new Set<{ prefix: string; cb: (key: string) => void }>();
  /** Makes every call fail, to test behaviour while etcd is down. */
  down = false;

  async get<T>(key: string): Promise<Versioned<T> | undefined> {
    this.check();
    const e = this.data.get(key);
    return e ? { key, value: JSON.parse(e.value) as T, revision: String(e.mod) } : undefined;
  }

  async list<T>(prefix: string): Promise<Versioned<T>[]> {
    this.check();
    return [...this.data.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([key, e]) => ({ key, value: JSON.parse(e.value) as T, revision: String(e.mod) }));
  }

  async listWithRevision<T>(prefix: string): Promise<{ items: Versioned<T>[]; revision: string }> {
    return { items: await this.list<T>(prefix), revision: String(this.revision) };
  }

  async txn(ops: TxnOps, conflictMessage = 'the record was changed by someone else; retry'): Promise<void> {
    this.check();
    for (const c of ops.when ?? []) {
      const e = this.data.get(c.key);
      const ok = 'absent' in c ? !e : e !== undefined && String(e.mod) === c.revision;
      if (!ok) throw new NfError('conflict', conflictMessage);
    }
    this.revision++;
    const changed: string[] = [];
    for (const p of ops.put ?? []) {
      this.data.set(p.key, { value: JSON.stringify(p.value), mod: this.revision });
      changed.push(p.key);
    }
    for (const k of ops.delete ?? []) if (this.data.delete(k)) changed.push(k);
    for (const key of changed)
      for (const w of this.watchers) if (key.startsWith(w.prefix)) queueMicrotask(() => w.cb(key));
  }

  async watchPrefix(prefix: string, onChange: (key: string) => void): Promise<() => Promise<void>> {
    const w = { prefix, cb: onChange };
    this.watchers.add(w);
    return async () => {
      this.watchers.delete(w);
    };
  }

  async ping(): Promise<boolean> {
    return !this.down;
  }

  close(): void {}

  private check(): void {
    if (this.down) throw new NfError('unavailable', 'etcd is unreachable (test)');
  }
}
