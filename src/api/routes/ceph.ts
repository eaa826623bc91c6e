import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';

const Health = z.object({
  status: z.enum(['HEALTH_OK', 'HEALTH_WARN', 'HEALTH_ERR']),
  checks: z.array(z.object({ name: z.string(), severity: z.string(), summary: z.string() })),
  mons: z.object({ total: z.number(), inQuorum: z.array(z.string()) }),
  osds: z.object({ total: z.number(), up: z.number(), in: z.number() }),
  pgs: z.object({ total: z.number(), byState: z.record(z.string(), z.number()) }),
  recovery: z
    .object({
      degradedRatio: z.number(),
      misplacedRatio: z.number(),
      bytesPerSec: z.number(),
      objectsPerSec: z.number(),
    })
    .optional()
    .openapi({
      description: 'While data is degraded or moving: the share of objects, and the recovery rate',
    }),
});

export const CephStatusSchema = z
  .object({
    configured: z.boolean(),
    fsid: z.string().optional(),
    state: z.enum(['bootstrapping', 'ready']).optional(),
    health: Health.optional(),
    error: z
      .string()
      .optional()
      .openapi({ description: 'Why there is no health: no monitor answered in time' }),
    monitors: z.array(z.object({ name: z.string(), ip: z.string(), inQuorum: z.boolean() })),
    osds: z.array(
      z.object({
        id: z.number(),
        node: z.string(),
        device: z.string(),
        up: z.boolean().optional(),
        in: z.boolean().optional(),
      }),
    ),
    daemons: z
      .array(
        z.object({ host: z.string(), entity: z.string(), pid: z.number().optional(), restarts: z.number() }),
      )
      .openapi({ description: 'Every Ceph host’s daemons; no pid: not running' }),
    unreachableHosts: z
      .array(z.string())
      .openapi({ description: 'Hosts with Ceph daemons that did not answer (their daemons are not listed)' }),
    pool: z
      .object({ name: z.string(), size: z.number(), minSize: z.number(), warning: z.string().optional() })
      .optional()
      .openapi({ description: 'The RBD pool of the integrated cluster: replicas, and what they risk here' }),
  })
  .openapi('CephStatus');

export const CephBootstrapBody = z
  .strictObject({
    monitors: z
      .array(z.string().min(1).max(63))
      .min(1)
      .max(5)
      .optional()
      .openapi({
        description: 'Hosts that run a monitor and a manager (default: up to three controllers)',
        example: ['h1', 'h2', 'h3'],
      }),
    monitorAddress: z
      .string()
      .regex(/^[0-9a-fA-F.:]+$/)
      .optional()
      .openapi({ description: "With one monitor: its IP (default: the host's management address)" }),
    failureDomain: z
      .enum(['host', 'osd'])
      .optional()
      .openapi({ description: 'Copies on different hosts (default when size > 1) or only different OSDs' }),
    size: z.number().int().min(1).max(10).default(3).openapi({ description: 'Copies of every block' }),
    minSize: z.number().int().min(1).max(10).default(2).openapi({ description: 'Copies needed for I/O' }),
  })
  .openapi('CephBootstrap');

export const CephOsdBody = z
  .strictObject({
    node: z.string().min(1).openapi({ description: 'The host with the disk' }),
    device: z
      .string()
      .regex(/^\/[^\0]*$/)
      .max(4096)
      .openapi({
        description: 'A whole block device without data (/dev/sdb), or a file under an allowed host path',
      }),
    sizeGiB: z
      .number()
      .int()
      .min(1)
      .max(65_536)
      .optional()
      .openapi({ description: 'For a file that does not exist yet' }),
  })
  .openapi('CephOsd');

export const CephMonBody = z
  .strictObject({
    node: z.string().min(1).max(63).openapi({ description: 'The host that gets a monitor and a manager' }),
    address: z
      .string()
      .regex(/^[0-9a-fA-F.:]+$/)
      .optional()
      .openapi({ description: "The monitor's IP (default: the host's management address)" }),
  })
  .openapi('CephMon');

/** The integrated Ceph cluster: status, bootstrap, OSDs, monitors. */
export function cephRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Ceph'],
      summary: 'Integrated Ceph: health, monitors, OSDs up/in, PG states, this host’s daemons',
      responses: { 200: json(CephStatusSchema, 'Status'), ...errors },
    }),
    async (c) => c.json(await ctx.ceph.status(), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Ceph'],
      summary:
        'Set up Ceph: monitors and managers on up to three controllers, the RBD pool and the shared storage pool "ceph"',
      request: { body: { content: { 'application/json': { schema: CephBootstrapBody } }, required: true } },
      responses: { 201: json(CephStatusSchema, 'Status'), ...errors },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const user = c.get('user');
      const s = await ctx.tasks.run('ceph.bootstrap', 'ceph', user, () => ctx.ceph.bootstrap(b, user));
      return c.json(s, 201);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/osds',
      tags: ['Ceph'],
      summary: 'Make an OSD on a disk of a host (everything on the disk is lost)',
      request: { body: { content: { 'application/json': { schema: CephOsdBody } }, required: true } },
      responses: { 201: json(CephStatusSchema, 'Status'), ...errors },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const s = await ctx.tasks.run('ceph.osd.create', `${b.node}:${b.device}`, c.get('user'), () =>
        ctx.ceph.addOsd(b),
      );
      return c.json(s, 201);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/mons',
      tags: ['Ceph'],
      summary: 'Add a monitor (and a manager) on another host; every Ceph host then names it',
      request: { body: { content: { 'application/json': { schema: CephMonBody } }, required: true } },
      responses: { 201: json(CephStatusSchema, 'Status'), ...errors },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const s = await ctx.tasks.run('ceph.mon.create', b.node, c.get('user'), () => ctx.ceph.addMon(b));
      return c.json(s, 201);
    },
  );
  return r;
}
