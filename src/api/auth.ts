import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { getCookie } from 'hono/cookie';
import { NfError } from '../errors';
import type { Env } from './context';
import { SESSION_COOKIE, type SessionStore } from './sessions';

/** Reachable without a token: liveness probes, the API description and the cluster CA (public). */
const PUBLIC_PATHS = new Set(['/api/v1/health', '/api/v1/openapi.json', '/api/v1/cluster/ca']);
/** Login, and joining a host (authenticated by the join token's secret instead). */
const PUBLIC_POSTS = new Set(['/api/v1/auth/login', '/api/v1/auth/logout', '/api/v1/cluster/join']);

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/**
 * The peer's address as serve saw it on the connection (withClientAddress): whatever a client sent
 * under this name is replaced, so it cannot pose as another address.
 */
export const CLIENT_ADDRESS_HEADER = 'x-neuroflow-client-address';

export function withClientAddress(req: Request, address: string | undefined): Request {
  const headers = new Headers(req.headers);
  headers.set(CLIENT_ADDRESS_HEADER, address ?? 'unknown');
  return new Request(req, { headers });
}

/** JSON bodies are small: 1 MiB at most (image uploads stream raw bodies, authenticated). */
export const MAX_JSON_BODY_BYTES = 1024 ** 2;

/** Routes whose body is a raw stream of any size (after authentication): image and import uploads. */
function isUpload(method: string, path: string): boolean {
  return method === 'POST' && (path === '/api/v1/images' || path === '/api/v1/imports/files');
}

/**
 * Refuses a body over MAX_JSON_BODY_BYTES with `payload_too_large` (413): by its Content-Length before
 * reading anything, or while reading a body that does not say its length. Runs after authentication, so
 * only the login and join routes take bodies from anyone, and only small ones.
 */
export function limitBodies(): MiddlewareHandler<Env> {
  const limit = bodyLimit({
    maxSize: MAX_JSON_BODY_BYTES,
    onError: () => {
      throw new NfError(
        'payload_too_large',
        `request bodies are limited to ${MAX_JSON_BODY_BYTES} bytes (upload images with POST /api/v1/images)`,
      );
    },
  });
  return (c, next) => (isUpload(c.req.method, c.req.path) ? next() : limit(c, next));
}

/**
 * Writes are JSON and come from our own pages: a body must be `application/json` (415 otherwise; image
 * uploads excepted), and a write without a bearer token (a browser's cookie, or the login itself) from
 * another site is refused (403) by its `Sec-Fetch-Site` or `Origin`. SameSite=Strict alone lets other ports
 * of the same host and sibling subdomains through; a `text/plain` form post needs no preflight.
 */
export function checkWrites(): MiddlewareHandler<Env> {
  return async (c, next) => {
    const method = c.req.method;
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return next();
    if (!c.req.header('authorization')) {
      const site = c.req.header('sec-fetch-site');
      const origin = c.req.header('origin');
      const own = new URL(c.req.url).origin;
      if (
        (site && site !== 'same-origin' && site !== 'none') ||
        (origin && origin !== 'null' && origin !== own) ||
        origin === 'null'
      )
        throw new NfError(
          'forbidden',
          `a ${method} from another site (${origin ?? site}) is refused; use the NeuroFlow pages or an API token`,
        );
    }
    const hasBody =
      Number(c.req.header('content-length') ?? 0) > 0 || c.req.header('transfer-encoding') !== undefined;
    const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (hasBody && !isUpload(method, c.req.path) && type !== 'application/json')
      throw new NfError(
        'unsupported_media_type',
        `send the body as application/json${type ? `, not ${type}` : ' (no Content-Type was given)'}`,
      );
    return next();
  };
}

/**
 * True when the request carries a valid admin token or session: such a client may keep a connection idle
 * while a long call runs (the server's idle timeout is for everyone else). Cheap: hashes and a map.
 */
export function isAuthenticated(req: Request, adminTokenHash: Buffer, sessions?: SessionStore): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.get('authorization') ?? '');
  if (m) return timingSafeEqual(hashToken(m[1]!), adminTokenHash);
  const cookie = new RegExp(`(?:^|;\\s*)${SESSION_COOKIE}=([^;]+)`).exec(
    req.headers.get('cookie') ?? '',
  )?.[1];
  return !!sessions?.check(cookie);
}

/**
 * Bearer token (scripts) or session cookie (browsers). Tokens are compared as hashes in constant time,
 * which leaks neither the token nor its length.
 */
export function requireToken(adminTokenHash: Buffer, sessions?: SessionStore): MiddlewareHandler<Env> {
  return async (c, next) => {
    if (c.req.method === 'GET' && PUBLIC_PATHS.has(c.req.path)) return next();
    if (c.req.method === 'POST' && PUBLIC_POSTS.has(c.req.path)) return next();
    // a cookie counts only without a bearer token (its store lookup is not made for token callers)
    const sessionUser = c.req.header('authorization')
      ? undefined
      : await sessions?.verify(getCookie(c, SESSION_COOKIE));
    if (sessionUser) {
      c.set('user', sessionUser);
      return next();
    }
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m)
      throw new NfError(
        'unauthenticated',
        'send "Authorization: Bearer <token>"; the admin token is in DATA_DIR/admin.token',
      );
    if (!timingSafeEqual(hashToken(m[1]!), adminTokenHash))
      throw new NfError('unauthenticated', 'the API token is not valid');
    c.set('user', 'admin');
    await next();
  };
}
