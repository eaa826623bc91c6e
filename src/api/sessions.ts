import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { NfError } from '../errors';

const DEFAULT_TTL_MS = 8 * 3600_000;

interface Session {
  user: string;
  expiresAt: number;
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
 * random session id for an HttpOnly cookie. Sessions live in memory: a daemon restart logs browsers out.
 * Failed logins are slowed down and, after 10 in a row from one client address for one user name,
 * refused for a minute from that address for that name only: nobody locks root out for everyone.
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();
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
    this.sessions.set(id, { user, expiresAt });
    return { id, expiresAt };
  }

  /** The user of a live session, or undefined. */
  check(id: string | undefined): string | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (s.expiresAt < Date.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s.user;
  }

  logout(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }
}

export const SESSION_COOKIE = 'nf_session';
