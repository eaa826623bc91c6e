import { createRoute, z } from '@hono/zod-openapi';
import { vmEtag } from '../../controller/vms';
import { NfError } from '../../errors';
import type { ApiContext } from '../context';
import { errors, json, metricsBody } from '../openapi';
import { newRouter } from '../router';
import {
  CreateSnapshotBody,
  CreateVmBody,
  EditVmBody,
  ForceQuery,
  IdParam,
  MetricsQuery,
  MetricsSchema,
  SnapshotParams,
  SnapshotSchema,
  StopQuery,
  VmSchema,
} from '../schemas';

const TAG = ['VMs'];
const body = <T extends z.ZodType>(schema: T) => ({
  body: { content: { 'application/json': { schema } }, required: true },
});

function stopOpts(q: { force?: string; timeoutSec?: number }) {
  return q.timeoutSec === undefined
    ? { force: q.force === 'true' }
    : { force: q.force === 'true', timeoutMs: q.timeoutSec * 1000 };
}

export function vmRoutes(ctx: ApiContext) {
  const r = newRouter();
  const { vms, actions, tasks } = ctx;

  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: TAG,
      summary: 'List VMs',
      responses: { 200: json(z.array(VmSchema), 'VMs'), ...errors },
    }),
    async (c) => c.json(await vms.list(), 200),
  );

  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: TAG,
      summary: 'Create a VM',
      request: body(CreateVmBody),
      responses: { 201: json(VmSchema, 'Created'), ...errors },
    }),
    async (c) => {
      const input = c.req.valid('json');
      const created = await tasks.run('vm.create', input.name, c.get('user'), () => vms.create(input));
      if (!input.start) return c.json(created, 201);
      try {
        return c.json(
          await tasks.run('vm.start', input.name, c.get('user'), () => actions.start(created.id)),
          201,
        );
      } catch {
        // The VM exists; its state (error) and reason say why it did not start; the task records it too.
        return c.json(await vms.get(created.id), 201);
      }
    },
  );

  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: TAG,
      summary: 'Get a VM by id or name',
      request: { params: IdParam },
      responses: { 200: json(VmSchema, 'The VM'), ...errors },
    }),
    async (c) => {
      const rec = await vms.find(c.req.valid('param').id);
      c.header('ETag', vmEtag(rec));
      return c.json(vms.view(rec.value), 200);
    },
  );

  r.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: TAG,
      summary:
        'Change a VM: name and description at once; hardware at once when stopped, else at its next cold start (pendingChanges). If-Match: the ETag of a GET (412 when the VM changed since)',
      request: {
        params: IdParam,
        headers: z.object({ 'if-match': z.string().optional() }),
        ...body(EditVmBody),
      },
      responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const ifMatch = c.req.valid('header')['if-match'];
      const { vm, etag } = await tasks.run('vm.edit', id, c.get('user'), () =>
        vms.edit(id, c.req.valid('json'), ifMatch),
      );
      c.header('ETag', etag);
      return c.json(vm, 200);
    },
  );

  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: TAG,
      summary: 'Delete a VM and its disks (409 while running unless force=true)',
      request: { params: IdParam, query: ForceQuery },
      responses: { 204: { description: 'Deleted' }, ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await tasks.run('vm.delete', id, c.get('user'), () =>
        vms.delete(id, c.req.valid('query').force === 'true'),
      );
      return c.body(null, 204);
    },
  );

  const simple = [
    ['start', 'Start (power on)', (id: string) => actions.start(id)],
    ['pause', 'Pause (freeze vCPUs)', (id: string) => actions.pause(id)],
    ['resume', 'Resume a paused VM', (id: string) => actions.resume(id)],
    ['reset', 'Hard reset', (id: string) => actions.reset(id)],
  ] as const;
  for (const [verb, summary, run] of simple) {
    r.openapi(
      createRoute({
        method: 'post',
        path: `/{id}/${verb}`,
        tags: TAG,
        summary,
        request: { params: IdParam },
        responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
      }),
      async (c) => {
        const { id } = c.req.valid('param');
        return c.json(await tasks.run(`vm.${verb}`, id, c.get('user'), () => run(id)), 200);
      },
    );
  }

  const graceful = [
    [
      'stop',
      'Shut down: ACPI first, forced after timeoutSec (default 60); force=true pulls the plug',
      (id: string, o: ReturnType<typeof stopOpts>) => actions.stop(id, o),
    ],
    [
      'reboot',
      'Reboot: clean shutdown, then start again',
      (id: string, o: ReturnType<typeof stopOpts>) => actions.reboot(id, o),
    ],
  ] as const;
  for (const [verb, summary, run] of graceful) {
    r.openapi(
      createRoute({
        method: 'post',
        path: `/{id}/${verb}`,
        tags: TAG,
        summary,
        request: { params: IdParam, query: StopQuery },
        responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
      }),
      async (c) => {
        const { id } = c.req.valid('param');
        const opts = stopOpts(c.req.valid('query'));
        return c.json(await tasks.run(`vm.${verb}`, id, c.get('user'), () => run(id, opts)), 200);
      },
    );
  }

  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/metrics',
      tags: TAG,
      summary: 'CPU %, memory (QEMU RSS), disk and network bytes/s over the last hour or day',
      request: { params: IdParam, query: MetricsQuery },
      responses: { 200: json(MetricsSchema, 'Points, oldest first'), ...errors },
    }),
    async (c) => {
      const vm = await vms.find(c.req.valid('param').id);
      const { range } = c.req.valid('query');
      return c.json(
        metricsBody(
          range,
          ctx.metricsIntervalSec,
          await ctx.node.vmMetrics(vm.value.id, range === '1h' ? 'fine' : 'coarse'),
        ),
        200,
      );
    },
  );

  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/console-ticket',
      tags: TAG,
      summary: 'A one-time ticket (30 s) to open the VNC console websocket at the returned path',
      request: { params: IdParam },
      responses: {
        200: json(z.object({ ticket: z.string(), expiresAt: z.string(), path: z.string() }), 'Ticket'),
        ...errors,
      },
    }),
    async (c) => {
      const vm = await vms.get(c.req.valid('param').id);
      if (vm.state !== 'running' && vm.state !== 'paused')
        throw new NfError('invalid_state', `VM "${vm.name}" is ${vm.state}: no console`);
      return c.json(await ctx.console.issue(vm.id, c.get('user')), 200);
    },
  );

  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/console-log',
      tags: TAG,
      summary: 'Serial console output (last 256 KiB)',
      request: { params: IdParam },
      responses: {
        200: { description: 'text', content: { 'text/plain': { schema: z.string() } } },
        ...errors,
      },
    }),
    async (c) => {
      const vm = await vms.find(c.req.valid('param').id);
      return c.text(await ctx.node.consoleLog(vm.value.id), 200);
    },
  );

  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/snapshots',
      tags: TAG,
      summary: 'List snapshots',
      request: { params: IdParam },
      responses: { 200: json(z.array(SnapshotSchema), 'Snapshots'), ...errors },
    }),
    async (c) => c.json((await vms.get(c.req.valid('param').id)).snapshots, 200),
  );

  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/snapshots',
      tags: TAG,
      summary: 'Snapshot every disk (running or stopped)',
      request: { params: IdParam, ...body(CreateSnapshotBody) },
      responses: { 201: json(VmSchema, 'The VM with the new snapshot'), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      return c.json(
        await tasks.run('vm.snapshot', `${id}@${b.name}`, c.get('user'), () =>
          actions.snapshotCreate(id, b.name, b.description),
        ),
        201,
      );
    },
  );

  const onSnapshot = [
    [
      'delete',
      '/{id}/snapshots/{snap}',
      'Delete a snapshot',
      'vm.snapshot.delete',
      (id: string, snap: string) => actions.snapshotDelete(id, snap),
    ],
    [
      'post',
      '/{id}/snapshots/{snap}/revert',
      'Revert every disk to the snapshot (VM must be stopped)',
      'vm.snapshot.revert',
      (id: string, snap: string) => actions.snapshotRevert(id, snap),
    ],
  ] as const;
  for (const [method, path, summary, task, run] of onSnapshot) {
    r.openapi(
      createRoute({
        method,
        path,
        tags: TAG,
        summary,
        request: { params: SnapshotParams },
        responses: { 200: json(VmSchema, 'The VM'), ...errors },
      }),
      async (c) => {
        const { id, snap } = c.req.valid('param');
        return c.json(await tasks.run(task, `${id}@${snap}`, c.get('user'), () => run(id, snap)), 200);
      },
    );
  }
  return r;
}
