import { createRoute, z } from '@hono/zod-openapi';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { CLIENT_ADDRESS_HEADER } from '../auth';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { SESSION_COOKIE } from '../sessions';

const LoginBody = z
  .strictObject({ username: z.string().min(1).max(64), password: z.string().min(1).max(4096) })
  .openapi('Login');

/** Browser login with the root password; scripts keep using the API token. */
export function authRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'post',
      path: '/login',
      tags: ['Auth'],
      summary: 'Log in as root; sets an HttpOnly session cookie',
      security: [],
      request: { body: { content: { 'application/json': { schema: LoginBody } }, required: true } },
      responses: { 200: json(z.object({ user: z.string(), expiresAt: z.string() }), 'Logged in'), ...errors },
    }),
    async (c) => {
      const { username, password } = c.req.valid('json');
      const s = await ctx.sessions.login(
        username,
        password,
        c.req.header(CLIENT_ADDRESS_HEADER) ?? 'unknown',
      );
      setCookie(c, SESSION_COOKIE, s.id, {
        httpOnly: true,
        sameSite: 'Strict',
        secure: new URL(c.req.url).protocol === 'https:',
        path: '/',
        maxAge: Math.floor(ctx.sessions.ttlMs / 1000),
      });
      return c.json({ user: username, expiresAt: new Date(s.expiresAt).toISOString() }, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/logout',
      tags: ['Auth'],
      summary: 'End the session',
      security: [],
      responses: { 204: { description: 'Logged out' } },
    }),
    async (c) => {
      await ctx.sessions.logout(getCookie(c, SESSION_COOKIE));
      deleteCookie(c, SESSION_COOKIE, { path: '/' });
      return c.body(null, 204);
    },
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/whoami',
      tags: ['Auth'],
      summary: 'Who the request is authenticated as',
      responses: { 200: json(z.object({ user: z.string() }), 'User'), ...errors },
    }),
    async (c) => c.json({ user: c.get('user') }, 200),
  );
  return r;
}
