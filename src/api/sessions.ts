import { createHash, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { keys } from '../controller/records';
import { NfError } from '../errors';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';

const log = createLogger('sessions');

const DEFAULT_TTL_MS = 8 * 3600_000;

export interface Session {
  user: string;
  expiresAt: number;
}

/** Where sessions are kept beside memory (etcd: every controller honours them, a restart keeps them). */
export interface SessionBackend {
  save(hash: string, s: Session): Promise<void>;
  remove(hash: string): Promise<void>;
  load(hash: string): Promise<Session | undefined>;
}

/**
 * A bearer secret (session id, console ticket) as it is kept: its SHA-256, so a copy of the store gives
 * no usable cookie or ticket.
 */
export function sessionHash(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

export interface PasswordHash {
  /** scrypt N=16384 r=8 p=1, 32 bytes; base64. */
  salt: string;
  hash: string;
}

export function hashPassword(password: string): PasswordHash {
  const salt = randomBytes(16);
  return { salt: salt.toString('base64'), hash: scryptSync(password, salt, 32).toString('base64') };
}

/**
 * Browser logins: the root user's password (checked against a scrypt hash kept only in memory) yields a
 * random session id for an HttpOnly cookie. With a backend (EtcdSessions) sessions are kept in etcd by
 * the id's hash and mirrored into every controller's memory: any controller honours a login made on
 * another, a logout ends it everywhere, and a daemon restart keeps browsers logged in. Failed logins are slowed down and, after 10 in a row from one client address for one user name,
 * refused for a minute from that address for that name only: nobody locks root out for everyone.
 */
export class SessionStore {
  /** By sessionHash(id). */
  private readonly sessions = new Map<string, Session>();
  /** Sessions ended (logout, or gone from the backend), until they would have expired. */
  private readonly ended = new Map<string, number>();
  private backend?: SessionBackend;
  private readonly salt: Buffer;
  private readonly hash: Buffer;
  /** Failed logins per client address and user name (bounded: the oldest entries go first). */
  private readonly failures = new Map<string, { count: number; lockedUntil: number }>();

  constructor(
    /** The root password, or its hash as every controller of a cluster shares it. */
    rootPassword: string | PasswordHash,
    readonly ttlMs = Number(process.env.NEUROFLOW_SESSION_TTL_SEC ?? 0) * 1000 || DEFAULT_TTL_MS,
    /** How long a failed login waits before it answers (slows guessing). */
    private readonly failDelayMs = 300,
  ) {
    const h = typeof rootPassword === 'string' ? hashPassword(rootPassword) : rootPassword;
    this.salt = Buffer.from(h.salt, 'base64');
    this.hash = Buffer.from(h.hash, 'base64');
  }

  async login(
    user: string,
    password: string,
    client = 'unknown',
  ): Promise<{ id: string; expiresAt: number }> {
    const key = `${client}\n${user}`;
    const f = this.failures.get(key);
    if (f && Date.now() < f.lockedUntil) {
      throw new NfError('unauthenticated', 'too many failed logins from this address; try again in a minute');
    }
    const ok = user === 'root' && timingSafeEqual(scryptSync(password, this.salt, 32), this.hash);
    if (!ok) {
      const next = { count: (f?.count ?? 0) + 1, lockedUntil: 0 };
      if (next.count >= 10) {
        next.lockedUntil = Date.now() + 60_000;
        next.count = 0;
      }
      this.failures.delete(key); // re-inserted last: the map's order is the eviction order
      this.failures.set(key, next);
      if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
      await Bun.sleep(this.failDelayMs); // slows guessing; not a synchronisation
      throw new NfError('unauthenticated', 'wrong user name or password');
    }
    this.failures.delete(key);
    const id = randomBytes(32).toString('base64url');
    const expiresAt = Date.now() + this.ttlMs;
    const session = { user, expiresAt };
    const hash = sessionHash(id);
    await this.backend?.save(hash, session); // kept first: no cookie for a session other controllers lack
    this.sessions.set(hash, session);
    return { id, expiresAt };
  }

  /** The user of a live session this controller knows (memory: cheap), or undefined. */
  check(id: string | undefined): string | undefined {
    return id ? this.live(sessionHash(id)) : undefined;
  }

  /** As check, and asks the backend about a session memory does not hold yet (just made elsewhere). */
  async verify(id: string | undefined): Promise<string | undefined> {
    if (!id) return undefined;
    const hash = sessionHash(id);
    const user = this.live(hash);
    if (user || !this.backend) return user;
    const s = await this.backend.load(hash).catch(() => undefined);
    // a read taken before a logout elsewhere may answer after it: an ended session stays ended
    if (!s || this.ended.has(hash)) return undefined;
    this.sessions.set(hash, s);
    return this.live(hash);
  }

  private live(hash: string): string | undefined {
    const s = this.sessions.get(hash);
    if (!s) return undefined;
    if (s.expiresAt < Date.now()) {
      this.sessions.delete(hash);
      return undefined;
    }
    return s.user;
  }

  /** Ends a session: in the backend first (every controller), then here. */
  async logout(id: string | undefined): Promise<void> {
    if (!id) return;
    const hash = sessionHash(id);
    try {
      await this.backend?.remove(hash);
    } finally {
      this.end(hash);
    }
  }

  /** Forgets a session for good (tombstoned until it would have expired: no late read brings it back). */
  private end(hash: string): void {
    const s = this.sessions.get(hash);
    this.sessions.delete(hash);
    this.ended.set(hash, s?.expiresAt ?? Date.now() + this.ttlMs);
    const now = Date.now();
    if (this.ended.size > 1000) for (const [h, until] of this.ended) if (until < now) this.ended.delete(h);
  }

  /** Keeps sessions in `backend` from now on. */
  useBackend(backend: SessionBackend): void {
    this.backend = backend;
  }

  /** What the backend says of one session (EtcdSessions' mirror): set, or gone. */
  mirror(hash: string, s: Session | undefined): void {
    if (s && s.expiresAt > Date.now() && !this.ended.has(hash)) this.sessions.set(hash, s);
    else if (this.sessions.has(hash)) this.end(hash);
  }

  /** The sessions in memory now (what a later read of the backend must hold). */
  known(): Set<string> {
    return new Set(this.sessions.keys());
  }

  /**
   * Of `known` (taken before the backend was read: each was saved there before memory had it), ends those
   * the backend no longer holds (the periodic check behind the watch).
   */
  retain(held: Set<string>, known: Set<string>): void {
    for (const hash of known) if (!held.has(hash) && this.sessions.has(hash)) this.end(hash);
  }
}

/**
 * Sessions in etcd (`/neuroflow/v1/sessions/<hash>`), mirrored into the SessionStore's memory through a
 * watch, so the per-request check stays a map lookup. A sweep every 2 minutes deletes expired records
 * (any controller; deletes are idempotent) and drops from memory what etcd no longer holds.
 */
export class EtcdSessions implements SessionBackend {
  private cancel?: () => Promise<void>;
  private timer?: Timer;
  /** Watch events are read back one after another: a put's late read cannot undo a later delete. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly sessions: SessionStore,
  ) {}

  async save(hash: string, s: Session): Promise<void> {
    await this.store.txn({ put: [{ key: keys.session(hash), value: s }] });
  }

  async remove(hash: string): Promise<void> {
    await this.store.txn({ delete: [keys.session(hash)] });
  }

  async load(hash: string): Promise<Session | undefined> {
    return (await this.store.get<Session>(keys.session(hash)))?.value;
  }

  /** Loads every session, then follows changes; returns the stop. */
  async start(): Promise<() => Promise<void>> {
    this.sessions.useBackend(this);
    this.cancel = await this.store.watchPrefix(keys.sessions, (key) => {
      const hash = key.slice(keys.sessions.length);
      this.chain = this.chain
        .then(() => this.load(hash))
        .then((s) => this.sessions.mirror(hash, s))
        .catch((err) => log.warn('cannot read a session', { err: (err as Error).message }));
    });
    for (const s of await this.store.list<Session>(keys.sessions))
      this.sessions.mirror(s.key.slice(keys.sessions.length), s.value);
    void this.sweep();
    this.timer = setInterval(() => void this.sweep(), 120_000);
    this.timer.unref?.();
    return async () => {
      clearInterval(this.timer);
      await this.cancel?.();
    };
  }

  /**
   * Deletes expired records, and drops from memory what etcd no longer holds: a watch that etcd cancelled
   * (history compacted while it reconnected) must not keep a logged-out session alive here.
   */
  private async sweep(): Promise<void> {
    try {
      const known = this.sessions.known();
      const now = Date.now();
      const all = await this.store.list<Session>(keys.sessions);
      this.sessions.retain(new Set(all.map((s) => s.key.slice(keys.sessions.length))), known);
      const old = all.filter((s) => s.value.expiresAt < now);
      if (old.length > 0) await this.store.txn({ delete: old.map((s) => s.key) });
    } catch (err) {
      log.warn('cannot sweep expired sessions', { err: (err as Error).message });
    }
  }
}

export const SESSION_COOKIE = 'nf_session';
