import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import {
  DiskAioSchema,
  DiskBusSchema,
  DiskCacheSchema,
  IdParam,
  NicInput,
  TaskSchema,
  VmSchema,
} from '../schemas';

const MiB = 1024 ** 2;

const DiskParams = z.object({
  id: z.string().openapi({ param: { name: 'id', in: 'path' }, description: 'VM id or name' }),
  disk: z.string().openapi({ param: { name: 'disk', in: 'path' }, example: 'disk0' }),
});

export const ResizeDiskBody = z
  .strictObject({
    sizeGiB: z
      .number()
      .positive()
      .max(65_536)
      .refine((g) => Number.isInteger(g * 1024), 'a whole number of MiB (GiB × 1024 must be an integer)')
      .openapi({ description: 'The new size; disks only grow', example: 20 }),
  })
  .openapi('ResizeDisk');

export const MoveDiskBody = z
  .strictObject({
    pool: z
      .string()
      .min(1)
      .max(63)
      .openapi({ description: "A pool the VM's host reaches (a shared pool, or local)", example: 'ceph' }),
  })
  .openapi('MoveDisk');

export const AddDiskBody = z
  .strictObject({
    sizeGiB: z
      .number()
      .min(1 / 1024)
      .max(65_536)
      .refine((g) => Number.isInteger(g * 1024), 'a whole number of MiB (GiB × 1024 must be an integer)'),
    pool: z.string().min(1).max(63).optional().openapi({ description: "Default: the first disk's pool" }),
    bus: DiskBusSchema.optional().openapi({
      description:
        'virtio-blk (default; hot-pluggable), virtio-scsi (hot-pluggable with a SCSI disk already), sata, ide',
    }),
    cache: DiskCacheSchema.optional(),
    aio: DiskAioSchema.optional(),
  })
  .openapi('AddDisk');

const LIMIT = z.number().int().min(0).max(1e12).optional();
export const TuneDiskBody = z
  .strictObject({
    limits: z
      .strictObject({
        iops: LIMIT,
        iopsRead: LIMIT,
        iopsWrite: LIMIT,
        bps: LIMIT.openapi({ description: 'Bytes per second, reads and writes together' }),
        bpsRead: LIMIT,
        bpsWrite: LIMIT,
      })
      .optional()
      .openapi({
        description:
          'Totals, or reads and writes apart (not both); 0 or absent: no limit. At once while the VM runs',
      }),
    cache: DiskCacheSchema.optional().openapi({
      description: 'A new cache mode: only while the VM is stopped',
    }),
    aio: DiskAioSchema.optional().openapi({ description: 'A new AIO engine: only while the VM is stopped' }),
  })
  .refine((b) => b.limits || b.cache || b.aio, { message: 'give limits, cache or aio' })
  .openapi('TuneDisk');

const NicParams = z.object({
  id: z.string().openapi({ param: { name: 'id', in: 'path' }, description: 'VM id or name' }),
  nic: z.string().openapi({ param: { name: 'nic', in: 'path' }, example: 'net1' }),
});

/**
 * A VM's disks and NICs: add and remove them (hot-plugged while the VM runs), grow a disk (online while
 * the VM runs), move one to another pool (live while it runs).
 */
export function vmDiskRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/disks',
      tags: ['VMs'],
      summary: 'Add a blank disk; hot-plugged while the VM runs (the guest sees it at once)',
      request: {
        params: IdParam,
        body: { content: { 'application/json': { schema: AddDiskBody } }, required: true },
      },
      responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const vm = await ctx.tasks.run('vm.disk.add', id, c.get('user'), () =>
        ctx.devices.addDisk(id, c.req.valid('json')),
      );
      return c.json(vm, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}/disks/{disk}',
      tags: ['VMs'],
      summary:
        'Remove a disk (hot-unplugged while the VM runs: the guest must let it go); its volume stays in the pool unless deleteVolume=true',
      request: {
        params: DiskParams,
        query: z.object({ deleteVolume: z.enum(['true', 'false']).optional() }),
      },
      responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
    }),
    async (c) => {
      const { id, disk } = c.req.valid('param');
      const deleteVolume = c.req.valid('query').deleteVolume === 'true';
      const vm = await ctx.tasks.run('vm.disk.remove', `${id}/${disk}`, c.get('user'), () =>
        ctx.devices.removeDisk(id, disk, { deleteVolume }),
      );
      return c.json(vm, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}/disks/{disk}',
      tags: ['VMs'],
      summary:
        "A disk's per-second I/O limits (QEMU throttling; 0 or absent: none), at once while the VM runs; its cache mode and AIO engine while it is stopped",
      request: {
        params: DiskParams,
        body: { content: { 'application/json': { schema: TuneDiskBody } }, required: true },
      },
      responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
    }),
    async (c) => {
      const { id, disk } = c.req.valid('param');
      const body = c.req.valid('json');
      const vm = await ctx.tasks.run('vm.disk.tune', `${id}/${disk}`, c.get('user'), () =>
        ctx.devices.tuneDisk(id, disk, body),
      );
      return c.json(vm, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}/networks/{nic}',
      tags: ['VMs'],
      summary:
        "A NIC's link: down pulls the cable (the guest sees no carrier), up plugs it in; at once while the VM runs",
      request: {
        params: NicParams,
        body: {
          content: {
            'application/json': {
              schema: z.strictObject({ link: z.enum(['up', 'down']) }).openapi('TuneNic'),
            },
          },
          required: true,
        },
      },
      responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
    }),
    async (c) => {
      const { id, nic } = c.req.valid('param');
      const up = c.req.valid('json').link === 'up';
      const vm = await ctx.tasks.run(
        up ? 'vm.nic.link-up' : 'vm.nic.link-down',
        `${id}/${nic}`,
        c.get('user'),
        () => ctx.devices.setLink(id, nic, up),
      );
      return c.json(vm, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/media',
      tags: ['VMs'],
      summary:
        'Insert an ISO image into the media drive, or eject it (image null); live while the VM runs, and a stopped VM without the drive gets it',
      request: {
        params: IdParam,
        body: {
          content: {
            'application/json': {
              schema: z.strictObject({ image: z.string().min(1).nullable() }).openapi('SetMedia'),
            },
          },
          required: true,
        },
      },
      responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { image } = c.req.valid('json');
      const vm = await ctx.tasks.run(image ? 'vm.media.insert' : 'vm.media.eject', id, c.get('user'), () =>
        ctx.devices.setMedia(id, image),
      );
      return c.json(vm, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/networks',
      tags: ['VMs'],
      summary: 'Add a NIC; hot-plugged while the VM runs',
      request: {
        params: IdParam,
        body: { content: { 'application/json': { schema: NicInput } }, required: true },
      },
      responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const vm = await ctx.tasks.run('vm.nic.add', id, c.get('user'), () =>
        ctx.devices.addNic(id, c.req.valid('json')),
      );
      return c.json(vm, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}/networks/{nic}',
      tags: ['VMs'],
      summary: 'Remove a NIC (hot-unplugged while the VM runs)',
      request: { params: NicParams },
      responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
    }),
    async (c) => {
      const { id, nic } = c.req.valid('param');
      const vm = await ctx.tasks.run('vm.nic.remove', `${id}/${nic}`, c.get('user'), () =>
        ctx.devices.removeNic(id, nic),
      );
      return c.json(vm, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/disks/{disk}/resize',
      tags: ['VMs'],
      summary: 'Grow a disk; while the VM runs the guest sees the new size at once (QMP block_resize)',
      request: {
        params: DiskParams,
        body: { content: { 'application/json': { schema: ResizeDiskBody } }, required: true },
      },
      responses: { 200: json(VmSchema, 'The VM afterwards'), ...errors },
    }),
    async (c) => {
      const { id, disk } = c.req.valid('param');
      const bytes = Math.round(c.req.valid('json').sizeGiB * 1024) * MiB;
      const vm = await ctx.tasks.run('vm.disk.resize', `${id}/${disk}`, c.get('user'), () =>
        ctx.actions.diskResize(id, disk, bytes),
      );
      return c.json(vm, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/disks/{disk}/move',
      tags: ['VMs'],
      summary:
        'Move a disk to another pool: mirrored while the VM runs (blockdev-mirror), copied when stopped; a task with progress',
      request: {
        params: DiskParams,
        body: { content: { 'application/json': { schema: MoveDiskBody } }, required: true },
      },
      responses: {
        202: json(
          TaskSchema,
          'The move runs as this task (GET /api/v1/tasks/{id}); the VM record follows when it ends',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const { id, disk } = c.req.valid('param');
      const { pool } = c.req.valid('json');
      // Bad input is an answer now, not a failed task later.
      const { vm } = await ctx.actions.diskMoveCheck(id, disk, pool);
      const task = await ctx.tasks.start(
        'vm.disk.move',
        `${vm.name}/${disk}→${pool}`,
        c.get('user'),
        (progress) => ctx.actions.diskMove(vm.id, disk, pool, progress),
      );
      return c.json(task, 202);
    },
  );
  return r;
}
