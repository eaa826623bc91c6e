import { Etcd3, type IOptions } from 'etcd3';
import { NfError } from '../errors';
import { createLogger } from '../util/log';

const log = createLogger('store');

/** A value with the etcd mod revision it was read at; writes compare against it. */
export interface Versioned<T> {
  key: string;
  value: T;
  revision: string;
}

export type Condition = { key: string; absent: true } | { key: string; revision: string };

export interface TxnOps {
  when?: Condition[];
  put?: { key: string; value: unknown }[];
  delete?: string[];
}

/** What the controller needs from a key-value store; etcd in production, memory in unit tests. */
export interface Store {
  get<T>(key: string): Promise<Versioned<T> | undefined>;
  list<T>(prefix: string): Promise<Versioned<T>[]>;
  /**
   * Like list, with the store's revision the list was read at: it only grows, also when keys are
   * deleted (unlike the highest mod revision of the entries).
   */
  listWithRevision<T>(prefix: string): Promise<{ items: Versioned<T>[]; revision: string }>;
  txn(ops: TxnOps, conflictMessage?: string): Promise<void>;
  watchPrefix(prefix: string, onChange: (key: string) => void): Promise<() => Promise<void>>;
  ping(): Promise<boolean>;
  close(): void;
}

/**
 * Desired state in etcd. Every write is one transaction guarded by compare-and-swap on mod revisions
 * (or on absence, for creates), so two writers never silently overwrite each other.
 */
/** How long a call refused by an open circuit breaker is retried (etcd3 half-opens it after 5 s). */
const BREAKER_WAIT_MS = 6000;

export class EtcdStore implements Store {
  readonly client: Etcd3;
  private readonly options: IOptions;

  constructor(endpoint: string | string[], options: Partial<IOptions> = {}) {
    this.options = {
      hosts: endpoint,
      dialTimeout: 3000,
      // A stalled etcd must not hang API calls and per-VM locks forever.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 10_000 }),
      ...options,
    };
    this.client = new Etcd3(this.options);
  }

  /**
   * Runs fn with a client of its own, closed afterwards. For membership changes, which etcd refuses
   * with UNAVAILABLE while the cluster settles: on the shared client that would trip its circuit breaker
   * and fail every other call for a while.
   */
  async withOwnClient<R>(fn: (client: Etcd3) => Promise<R>): Promise<R> {
    const client = new Etcd3(this.options);
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  }

  async get<T>(key: string): Promise<Versioned<T> | undefined> {
    const res = await this.wrap(() => this.client.get(key).exec());
    const kv = res.kvs[0];
    if (!kv) return undefined;
    return { key, value: JSON.parse(kv.value.toString()) as T, revision: kv.mod_revision };
  }

  async list<T>(prefix: string): Promise<Versioned<T>[]> {
    return (await this.listWithRevision<T>(prefix)).items;
  }

  async listWithRevision<T>(prefix: string): Promise<{ items: Versioned<T>[]; revision: string }> {
    const res = await this.wrap(() => this.client.getAll().prefix(prefix).exec());
    const items = res.kvs.map((kv) => ({
      key: kv.key.toString(),
      value: JSON.parse(kv.value.toString()) as T,
      revision: kv.mod_revision,
    }));
    return { items, revision: res.header.revision };
  }

  /** Runs the writes only if every condition holds; throws `conflict` otherwise. */
  async txn(ops: TxnOps, conflictMessage = 'the record was changed by someone else; retry'): Promise<void> {
    const res = await this.wrap(() => {
      let tx = this.client.if('\0nf-always', 'Create', '==', 0); // a key nobody writes: always true
      for (const c of ops.when ?? []) {
        tx =
          'absent' in c ? tx.and(c.key, 'Create', '==', 0) : tx.and(c.key, 'Mod', '==', Number(c.revision));
      }
      const puts = (ops.put ?? []).map((p) => this.client.put(p.key).value(JSON.stringify(p.value)));
      const dels = (ops.delete ?? []).map((k) => this.client.delete().key(k));
      return tx.then(...puts, ...dels).commit();
    });
    if (!res.succeeded) throw new NfError('conflict', conflictMessage);
  }

  /** Calls `onChange` on every put/delete under the prefix; reconnects on its own after etcd restarts. */
  async watchPrefix(prefix: string, onChange: (key: string) => void): Promise<() => Promise<void>> {
    const watcher = await this.client.watch().prefix(prefix).create();
    watcher.on('put', (kv) => onChange(kv.key.toString()));
    watcher.on('delete', (kv) => onChange(kv.key.toString()));
    watcher.on('error', (err) => log.warn('watch error', { prefix, err }));
    return () => watcher.cancel();
  }

  async ping(): Promise<boolean> {
    try {
      await this.client.maintenance.status();
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    this.client.close();
  }

  private async wrap<R>(fn: () => Promise<R>): Promise<R> {
    // The client's circuit breaker for an etcd host opens after three failures in a row (a member's
    // link flapping, a leader election) and refuses every call to it for 5 s without sending anything:
    // such a refusal is retried (safe for writes too) until the breaker half-opens, instead of failing
    // API calls on a healthy controller for seconds after the blip.
    const until = Date.now() + BREAKER_WAIT_MS;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if ((err as { isBrokenCircuitError?: boolean }).isBrokenCircuitError && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        throw new NfError('unavailable', `etcd is unreachable: ${(err as Error).message}`, undefined, {
          cause: err,
        });
      }
    }
  }
}
