import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { NfError } from '../errors';
import type { Env } from './context';

/** Reachable without a token: liveness probes and the API description. */
const PUBLIC_PATHS = new Set(['/api/v1/health', '/api/v1/openapi.json']);

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Bearer-token check; comparing hashes in constant time leaks neither the token nor its length. */
export function requireToken(adminTokenHash: Buffer): MiddlewareHandler<Env> {
  return async (c, next) => {
    if (c.req.method === 'GET' && PUBLIC_PATHS.has(c.req.path)) return next();
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
