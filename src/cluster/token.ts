/**
 * Join tokens: what an admin copies from a controller to a new host. The token says where the controllers
 * are, pins the cluster CA by fingerprint (so the first HTTPS call needs no prior trust), and carries a
 * one-off secret. The controller keeps only the secret's hash.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { NfError } from '../errors';

/** The decoded token. */
export interface JoinToken {
  v: 1;
  /** 12 base64url characters; names the token (e.g. to revoke it) without revealing the secret. */
  id: string;
  /** HTTPS API addresses: "host:port" or "[v6]:port". */
  controllers: string[];
  /** `sha256:` + hex of the cluster CA certificate's DER. */
  caFingerprint: string;
  /** 32 random bytes, base64url. */
  secret: string;
  /** ISO 8601 UTC. */
  expiresAt: string;
}

export const MIN_TOKEN_TTL_SEC = 60;
export const MAX_TOKEN_TTL_SEC = 7 * 86_400;

const FIELDS = ['v', 'id', 'controllers', 'caFingerprint', 'secret', 'expiresAt'] as const;
const ID = /^[A-Za-z0-9_-]{12}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;
const FINGERPRINT = /^sha256:[0-9a-f]{64}$/;
const HASH = /^sha256:[0-9a-f]{64}$/;
/** Far above any real token (a few hundred bytes); bounds the work done on pasted junk. */
const MAX_TOKEN_CHARS = 8192;

/**
 * Creates a join token. Give the caller `token`; store `id`, `secretHash` and `expiresAt` (never the secret).
 */
export function newJoinToken(opts: {
  controllers: string[];
  caFingerprint: string;
  ttlSec: number;
  now?: Date;
}): {
  token: string;
  id: string;
  secretHash: string;
  expiresAt: string;
} {
  const { ttlSec, controllers, caFingerprint } = opts;
  if (!Number.isInteger(ttlSec) || ttlSec < MIN_TOKEN_TTL_SEC || ttlSec > MAX_TOKEN_TTL_SEC) {
    throw new NfError(
      'validation_failed',
      `the token lifetime must be ${MIN_TOKEN_TTL_SEC} to ${MAX_TOKEN_TTL_SEC} seconds (7 days)`,
    );
  }
  const problem = controllersProblem(controllers) ?? fingerprintProblem(caFingerprint);
  if (problem) throw new NfError('validation_failed', problem);
  const body: JoinToken = {
    v: 1,
    id: randomBytes(9).toString('base64url'),
    controllers: [...controllers],
    caFingerprint,
    secret: randomBytes(32).toString('base64url'),
    expiresAt: new Date((opts.now ?? new Date()).getTime() + ttlSec * 1000).toISOString(),
  };
  return {
    token: Buffer.from(JSON.stringify(body)).toString('base64url'),
    id: body.id,
    secretHash: hashSecret(body.secret),
    expiresAt: body.expiresAt,
  };
}

/**
 * Decodes and checks a join token (whitespace anywhere is ignored, as pasted tokens often wrap).
 * Throws NfError validation_failed for anything malformed, unauthenticated once it has expired.
 */
export function parseJoinToken(token: string, now = new Date()): JoinToken {
  const fail = (why: string) =>
    new NfError('validation_failed', `this is not a NeuroFlow join token: ${why}`);
  const text = typeof token === 'string' ? token.replace(/\s+/g, '') : '';
  if (text === '') throw fail('it is empty');
  if (text.length > MAX_TOKEN_CHARS) throw fail('it is far too long');
  if (!/^[A-Za-z0-9_-]+$/.test(text) || text.length % 4 === 1) throw fail('it is not base64url');
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw fail('it does not decode to JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw fail('it is not a JSON object');
  const t = body as Record<string, unknown>;
  if (!('v' in t)) throw fail('the version field "v" is missing');
  if (t.v !== 1) throw fail(`unsupported version ${JSON.stringify(t.v)?.slice(0, 20)} (this build reads 1)`);
  const extra = Object.keys(t).find((k) => !(FIELDS as readonly string[]).includes(k));
  if (extra !== undefined) throw fail(`unexpected field ${JSON.stringify(extra.slice(0, 40))}`);
  const missing = FIELDS.find((k) => !(k in t));
  if (missing !== undefined) throw fail(`the field "${missing}" is missing`);
  if (typeof t.id !== 'string' || !ID.test(t.id)) throw fail('"id" is not 12 base64url characters');
  if (typeof t.secret !== 'string' || !SECRET.test(t.secret))
    throw fail('"secret" is not 32 base64url bytes');
  const problem = controllersProblem(t.controllers) ?? fingerprintProblem(t.caFingerprint);
  if (problem) throw fail(problem);
  const expiresAt = t.expiresAt;
  if (typeof expiresAt !== 'string' || Number.isNaN(Date.parse(expiresAt))) {
    throw fail('"expiresAt" is not a date');
  }
  if (new Date(expiresAt).toISOString() !== expiresAt) throw fail('"expiresAt" is not an ISO 8601 UTC time');
  if (now.getTime() >= Date.parse(expiresAt)) {
    throw new NfError(
      'unauthenticated',
      `the join token expired at ${expiresAt}; create a new one on a controller`,
    );
  }
  return t as unknown as JoinToken;
}

/** `sha256:` + hex of the secret: the only form of it a controller stores. */
export function hashSecret(secret: string): string {
  return `sha256:${createHash('sha256').update(secret, 'utf8').digest('hex')}`;
}

/** True when `secret` hashes to `hash`, compared in constant time. */
export function secretMatches(secret: string, hash: string): boolean {
  if (typeof secret !== 'string' || typeof hash !== 'string' || !HASH.test(hash)) return false;
  return timingSafeEqual(Buffer.from(hashSecret(secret)), Buffer.from(hash));
}

/** Why `value` is not a non-empty list of "host:port" / "[v6]:port" addresses, or undefined if it is. */
function controllersProblem(value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length === 0)
    return '"controllers" must be a non-empty list of addresses';
  for (const addr of value) {
    if (typeof addr !== 'string' || !isControllerAddress(addr)) {
      return `controller address ${JSON.stringify(addr)?.slice(0, 300)} is not "host:port" or "[ipv6]:port"`;
    }
  }
  return undefined;
}

function fingerprintProblem(value: unknown): string | undefined {
  return typeof value === 'string' && FINGERPRINT.test(value)
    ? undefined
    : '"caFingerprint" is not "sha256:" and 64 lowercase hex digits';
}

function isControllerAddress(addr: string): boolean {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(addr);
  if (!m) return false;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return false;
  if (m[1] !== undefined) return isIP(m[1]) === 6 && !m[1].includes('%');
  const host = m[2]!;
  const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
  if (isIP(host) === 4) return true;
  // Digits and dots only but not an IPv4 address (e.g. 10.0.0.256): a typo, not a host name.
  return host.length <= 253 && !/^[\d.]+$/.test(host) && host.split('.').every((l) => label.test(l));
}
