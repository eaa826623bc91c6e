import { describe, expect, it } from 'vitest';
import { rejection } from '../../test/harness/errors';
import { CLIENT_ADDRESS_HEADER, withClientAddress } from './auth';
import { SessionStore } from './sessions';

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
