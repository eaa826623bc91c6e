import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
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
 * Bearer token (scripts) or session cookie (browsers). Tokens are compared as hashes in constant time,
 * which leaks neither the token nor its length.
 */
export function requireToken(adminTokenHash: Buffer, sessions?: SessionStore): MiddlewareHandler<Env> {
  return async (c, next) => {
    if (c.req.method === 'GET' && PUBLIC_PATHS.has(c.req.path)) return next();
    if (c.req.method === 'POST' && PUBLIC_POSTS.has(c.req.path)) return next();
    const sessionUser = sessions?.check(getCookie(c, SESSION_COOKIE));
    if (sessionUser && !c.req.header('authorization')) {
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
