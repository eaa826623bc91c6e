import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { ExecBody, ExecResultSchema, IdParam, PasswordBody } from '../schemas';

const TAG = ['Guest agent'];
const body = <T extends z.ZodType>(schema: T) => ({
  body: { content: { 'application/json': { schema } }, required: true },
});

/** What the guest agent lets an administrator see and do inside a running VM. */
export function guestRoutes(ctx: ApiContext) {
  const r = newRouter();
  const { guest, tasks } = ctx;

  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/guest',
      tags: TAG,
      summary: 'OS, host name, IPs, memory, file systems, load and uptime as the guest agent reports them',
      request: { params: IdParam },
      responses: { 200: json(z.record(z.string(), z.unknown()), 'Guest facts'), ...errors },
    }),
    async (c) => c.json(await guest.info(c.req.valid('param').id), 200),
  );

  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/guest/ping',
      tags: TAG,
      summary: 'Is the guest agent alive? Answers with the guest-ping round trip',
      request: { params: IdParam },
      responses: { 200: json(z.object({ latencyMs: z.number() }), 'Alive'), ...errors },
    }),
    async (c) => c.json(await guest.ping(c.req.valid('param').id), 200),
  );

  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/guest/exec',
      tags: TAG,
      summary: 'Run a program in the guest and wait for its exit code and output',
      request: { params: IdParam, ...body(ExecBody) },
      responses: { 200: json(ExecResultSchema, 'Result'), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      return c.json(
        await tasks.run('vm.guest.exec', `${id}: ${b.command[0]}`, c.get('user'), () => guest.exec(id, b)),
        200,
      );
    },
  );

  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/guest/password',
      tags: TAG,
      summary: "Set a guest user's password",
      request: { params: IdParam, ...body(PasswordBody) },
      responses: { 204: { description: 'Set' }, ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      // The task names the user, never the password.
      await tasks.run('vm.guest.password', `${id}: ${b.username}`, c.get('user'), () =>
        guest.setPassword(id, b.username, b.password, b.crypted),
      );
      return c.body(null, 204);
    },
  );

  const freeze = [
    [
      'fsfreeze',
      'Freeze every guest file system (writes block until thaw): {frozen: N}',
      (id: string): Promise<Record<string, number>> => guest.freeze(id),
    ],
    [
      'fsthaw',
      'Thaw the guest file systems (safe to repeat): {thawed: N}',
      (id: string): Promise<Record<string, number>> => guest.thaw(id),
    ],
  ] as const;
  for (const [verb, summary, run] of freeze) {
    r.openapi(
      createRoute({
        method: 'post',
        path: `/{id}/guest/${verb}`,
        tags: TAG,
        summary,
        request: { params: IdParam },
        responses: { 200: json(z.record(z.string(), z.number()), 'Count'), ...errors },
      }),
      async (c) => {
        const { id } = c.req.valid('param');
        return c.json(await tasks.run(`vm.guest.${verb}`, id, c.get('user'), () => run(id)), 200);
      },
    );
  }
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/guest/fsfreeze',
      tags: TAG,
      summary: 'Whether the guest file systems are frozen',
      request: { params: IdParam },
      responses: { 200: json(z.object({ status: z.string() }), 'Status'), ...errors },
    }),
    async (c) => c.json(await guest.freezeStatus(c.req.valid('param').id), 200),
  );
  return r;
}
