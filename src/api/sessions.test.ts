import { describe, expect, it } from 'vitest';
import { rejection } from '../../test/harness/errors';
import { keys } from '../controller/records';
import { MemoryStore } from '../store/memory-store';
import { waitFor } from '../util/wait';
import { CLIENT_ADDRESS_HEADER, withClientAddress } from './auth';
import { EtcdSessions, SessionStore, sessionHash } from './sessions';

describe('login back-off', () => {
  it('locks out one client address for one user, not everyone', async () => {
    const s = new SessionStore('right-password-1', undefined, 0);
    for (let i = 0; i < 10; i++) await rejection(s.login('root', 'wrong', '10.0.2.15'));
    // the guesser is locked out, even with the right password
    const locked = await rejection(s.login('root', 'right-password-1', '10.0.2.15'));
    expect(locked.message).toMatch(/too many failed logins from this address/);
    // the administrator elsewhere is not
    expect((await s.login('root', 'right-password-1', '192.0.2.7')).id).toBeTruthy();
  });

  it('forgets the failures of a client that then logs in', async () => {
    const s = new SessionStore('right-password-1', undefined, 0);
    for (let i = 0; i < 9; i++) await rejection(s.login('root', 'wrong', 'a'));
    await s.login('root', 'right-password-1', 'a');
    for (let i = 0; i < 9; i++) await rejection(s.login('root', 'wrong', 'a'));
    expect((await s.login('root', 'right-password-1', 'a')).id).toBeTruthy();
  });
});

describe('the client address header', () => {
  it('replaces what the client sent under that name', () => {
    const req = new Request('http://x/api/v1/auth/login', {
      headers: { [CLIENT_ADDRESS_HEADER]: '1.2.3.4' },
    });
    expect(withClientAddress(req, '10.0.2.15').headers.get(CLIENT_ADDRESS_HEADER)).toBe('10.0.2.15');
    expect(withClientAddress(req, undefined).headers.get(CLIENT_ADDRESS_HEADER)).toBe('unknown');
  });
});

describe('sessions shared through the store (two controllers)', () => {
  it('a login on one is honoured by the other, a logout on the other ends it on both; the store keeps hashes only', async () => {
    const store = new MemoryStore();
    const [a, b] = [
      new SessionStore('right-password-1', undefined, 0),
      new SessionStore('right-password-1', undefined, 0),
    ];
    const stops = [await new EtcdSessions(store, a).start(), await new EtcdSessions(store, b).start()];
    try {
      const { id } = await a.login('root', 'right-password-1', 'x');
      // at once through the store, before b's mirror has it
      expect(await b.verify(id)).toBe('root');
      expect(b.check(id)).toBe('root');
      const kept = await store.list<{ user: string }>(keys.sessions);
      expect(kept.map((k) => k.key)).toEqual([keys.session(sessionHash(id))]);
      expect(JSON.stringify(kept)).not.toContain(id);
      await b.logout(id);
      await waitFor(() => a.check(id) === undefined, { timeoutMs: 2000, what: "a to drop b's logout" });
      expect(await a.verify(id)).toBeUndefined();
      expect(await store.list(keys.sessions)).toEqual([]);
      // a controller started later knows the sessions made before it
      const { id: id2 } = await a.login('root', 'right-password-1', 'x');
      const c = new SessionStore('right-password-1', undefined, 0);
      stops.push(await new EtcdSessions(store, c).start());
      expect(c.check(id2)).toBe('root');
      expect(c.check('forged')).toBeUndefined();
      expect(await c.verify('forged')).toBeUndefined();
    } finally {
      for (const stop of stops) await stop();
    }
  });

  it('an expired session is refused everywhere', async () => {
    const store = new MemoryStore();
    const a = new SessionStore('right-password-1', 1, 0);
    const b = new SessionStore('right-password-1', 1, 0);
    const stops = [await new EtcdSessions(store, a).start(), await new EtcdSessions(store, b).start()];
    try {
      const { id, expiresAt } = await a.login('root', 'right-password-1', 'x');
      await waitFor(() => Date.now() > expiresAt, { timeoutMs: 1000, intervalMs: 2, what: 'the expiry' });
      expect(a.check(id)).toBeUndefined();
      expect(await b.verify(id)).toBeUndefined();
    } finally {
      for (const stop of stops) await stop();
    }
  });
});

describe('a session once ended', () => {
  it('is not brought back by a read taken before the logout, nor kept by a controller whose watch was lost', async () => {
    const store = new MemoryStore();
    const a = new SessionStore('right-password-1', undefined, 0);
    await new EtcdSessions(store, a).start().then((stop) => stop()); // a's backend, without its watch
    const { id } = await a.login('root', 'right-password-1', 'x');
    const hash = sessionHash(id);
    const stale = { user: 'root', expiresAt: Date.now() + 60_000 };
    // a read of the store that answers after the logout, with what it held before
    a.useBackend({
      save: async () => {},
      remove: async (h) => store.txn({ delete: [keys.session(h)] }),
      load: async () => stale,
    });
    await a.logout(id);
    expect(await a.verify(id)).toBeUndefined();
    a.mirror(hash, stale);
    expect(a.check(id)).toBeUndefined();

    // b lost its watch: a logout elsewhere never reached it; the periodic check drops what etcd lacks
    const b = new SessionStore('right-password-1', undefined, 0);
    b.mirror(sessionHash('other-id'), stale);
    expect(b.check('other-id')).toBe('root');
    const known = b.known();
    b.retain(new Set(), known);
    expect(b.check('other-id')).toBeUndefined();
    // a session made after the check's snapshot is not touched by it
    b.useBackend({ save: async () => {}, remove: async () => {}, load: async () => undefined });
    const fresh = b.known();
    const { id: id2 } = await b.login('root', 'right-password-1', 'x');
    b.retain(new Set(), fresh);
    expect(b.check(id2)).toBe('root');
  });
});
