import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NfError } from '../errors';
import { hashSecret, type JoinToken, newJoinToken, parseJoinToken, secretMatches } from './token';

const FP = `sha256:${'ab'.repeat(32)}`;
const NOW = new Date('2030-01-01T00:00:00.000Z');
const CONTROLLERS = ['ctl1.example.com:8443', '10.0.0.1:8443', '[fd00::1]:8443'];

function encode(body: unknown): string {
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

function validBody(): JoinToken {
  return parseJoinToken(
    newJoinToken({ controllers: CONTROLLERS, caFingerprint: FP, ttlSec: 3600, now: NOW }).token,
    NOW,
  );
}

function thrown(f: () => unknown): NfError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(NfError);
    return err as NfError;
  }
  throw new Error('expected an error');
}

describe('newJoinToken / parseJoinToken', () => {
  it('round-trips', () => {
    const made = newJoinToken({ controllers: CONTROLLERS, caFingerprint: FP, ttlSec: 3600, now: NOW });
    expect(made.token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(made.id).toMatch(/^[A-Za-z0-9_-]{12}$/);
    expect(made.expiresAt).toBe('2030-01-01T01:00:00.000Z');
    const t = parseJoinToken(made.token, NOW);
    expect(t).toEqual({
      v: 1,
      id: made.id,
      controllers: CONTROLLERS,
      caFingerprint: FP,
      secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      expiresAt: made.expiresAt,
    });
    expect(Buffer.from(t.secret, 'base64url')).toHaveLength(32);
    expect(made.secretHash).toBe(`sha256:${createHash('sha256').update(t.secret).digest('hex')}`);
    expect(made.secretHash).toBe(hashSecret(t.secret));
    expect(JSON.stringify(made)).not.toContain(t.secret);
  });

  it('makes a new id and secret every time', () => {
    const a = validBody();
    const b = validBody();
    expect(a.id).not.toBe(b.id);
    expect(a.secret).not.toBe(b.secret);
  });

  it('ignores whitespace around and inside a pasted token', () => {
    const { token } = newJoinToken({ controllers: CONTROLLERS, caFingerprint: FP, ttlSec: 60, now: NOW });
    const wrapped = `\n  ${token.slice(0, 30)}\n${token.slice(30, 70)}\r\n\t${token.slice(70)}  \n`;
    expect(parseJoinToken(wrapped, NOW)).toEqual(parseJoinToken(token, NOW));
  });

  it('accepts the lifetime bounds and rejects anything outside them', () => {
    for (const ttlSec of [60, 7 * 86_400]) {
      expect(() => newJoinToken({ controllers: CONTROLLERS, caFingerprint: FP, ttlSec })).not.toThrow();
    }
    for (const ttlSec of [59, 7 * 86_400 + 1, 0, -60, 90.5, Number.NaN]) {
      const err = thrown(() => newJoinToken({ controllers: CONTROLLERS, caFingerprint: FP, ttlSec }));
      expect(err.code).toBe('validation_failed');
      expect(err.message).toMatch(/lifetime/);
    }
  });

  it('refuses to make a token with bad controllers or fingerprint', () => {
    for (const controllers of [[], ['ctl1'], ['fd00::1:8443'], ['ctl1:0'], ['ctl1:65536'], ['bad host:1']]) {
      const err = thrown(() => newJoinToken({ controllers, caFingerprint: FP, ttlSec: 60 }));
      expect(err.code).toBe('validation_failed');
    }
    for (const caFingerprint of [
      '',
      'ab'.repeat(32),
      `sha256:${'AB'.repeat(32)}`,
      `sha1:${'ab'.repeat(20)}`,
    ]) {
      const err = thrown(() => newJoinToken({ controllers: CONTROLLERS, caFingerprint, ttlSec: 60 }));
      expect(err.message).toMatch(/caFingerprint/);
    }
  });

  it('reports expiry distinctly', () => {
    const { token, expiresAt } = newJoinToken({
      controllers: CONTROLLERS,
      caFingerprint: FP,
      ttlSec: 60,
      now: NOW,
    });
    expect(() => parseJoinToken(token, new Date(NOW.getTime() + 59_999))).not.toThrow();
    const err = thrown(() => parseJoinToken(token, new Date(NOW.getTime() + 60_000)));
    expect(err.code).toBe('unauthenticated');
    expect(err.message).toBe(`the join token expired at ${expiresAt}; create a new one on a controller`);
  });

  it('rejects what is not a token, saying why and never echoing the secret', () => {
    const good = validBody();
    const cases: [string, RegExp][] = [
      ['', /it is empty/],
      [' \n ', /it is empty/],
      ['abc$def', /not base64url/],
      ['abc=', /not base64url/],
      ['abcde', /not base64url/],
      ['A'.repeat(9000), /too long/],
      [Buffer.from('{"v":1').toString('base64url'), /does not decode to JSON/],
      [encode([1]), /not a JSON object/],
      [encode(null), /not a JSON object/],
      [encode('x'), /not a JSON object/],
      [encode({ ...good, v: undefined }), /"v" is missing/],
      [encode({ ...good, v: 2 }), /unsupported version 2/],
      [encode({ ...good, v: '1' }), /unsupported version "1"/],
      [encode({ ...good, extra: true }), /unexpected field "extra"/],
      [encode({ ...good, secret: undefined }), /"secret" is missing/],
      [encode({ ...good, expiresAt: undefined }), /"expiresAt" is missing/],
      [encode({ ...good, id: 'short' }), /"id"/],
      [encode({ ...good, id: 123456789012 }), /"id"/],
      [encode({ ...good, secret: `${good.secret}A` }), /"secret"/],
      [encode({ ...good, secret: `${good.secret.slice(1)}!` }), /"secret"/],
      [encode({ ...good, controllers: [] }), /non-empty list/],
      [encode({ ...good, controllers: 'ctl1:8443' }), /non-empty list/],
      [encode({ ...good, controllers: ['ctl1'] }), /"ctl1" is not/],
      [encode({ ...good, controllers: [42] }), /42 is not/],
      [encode({ ...good, controllers: ['10.0.0.256:8443'] }), /is not "host:port"/],
      [encode({ ...good, controllers: ['[fe80::1%eth0]:8443'] }), /is not "host:port"/],
      [encode({ ...good, controllers: ['[10.0.0.1]:8443'] }), /is not "host:port"/],
      [encode({ ...good, caFingerprint: 'sha256:xyz' }), /"caFingerprint"/],
      [encode({ ...good, caFingerprint: null }), /"caFingerprint"/],
      [encode({ ...good, expiresAt: 'soon' }), /"expiresAt" is not a date/],
      [encode({ ...good, expiresAt: 1893456000000 }), /"expiresAt" is not a date/],
      [encode({ ...good, expiresAt: '2030-01-01' }), /not an ISO 8601 UTC time/],
      [encode({ ...good, expiresAt: '2030-01-01T03:00:00+02:00' }), /not an ISO 8601 UTC time/],
    ];
    for (const [token, why] of cases) {
      const err = thrown(() => parseJoinToken(token, NOW));
      expect(err.code, token).toBe('validation_failed');
      expect(err.message, token).toMatch(/^this is not a NeuroFlow join token: /);
      expect(err.message, token).toMatch(why);
      expect(err.message).not.toContain(good.secret);
      expect(err.message).not.toContain(good.secret.slice(1));
    }
  });

  it('accepts host names, IPv4 and bracketed IPv6 controller addresses', () => {
    const controllers = [
      'a:1',
      'ctl-1.dc.example.com:65535',
      '192.168.0.1:443',
      '[::1]:8443',
      '[2001:db8::1]:443',
    ];
    const { token } = newJoinToken({ controllers, caFingerprint: FP, ttlSec: 60, now: NOW });
    expect(parseJoinToken(token, NOW).controllers).toEqual(controllers);
  });
});

describe('hashSecret / secretMatches', () => {
  it('matches only the right secret', () => {
    const { secret } = validBody();
    const hash = hashSecret(secret);
    expect(hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(secretMatches(secret, hash)).toBe(true);
    expect(secretMatches(`${secret}x`, hash)).toBe(false);
    expect(secretMatches('', hash)).toBe(false);
    expect(secretMatches(secret, hash.toUpperCase())).toBe(false);
    expect(secretMatches(secret, hash.slice(0, -1))).toBe(false);
    expect(secretMatches(secret, '')).toBe(false);
    expect(secretMatches(secret, secret)).toBe(false);
  });
});
