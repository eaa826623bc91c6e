import { createRoute, z } from '@hono/zod-openapi';
import { NfError } from '../../errors';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { TaskSchema } from '../schemas';

const NAME = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, 'letters, digits, . _ -; up to 63 characters');

export const ImportBody = z
  .strictObject({
    source: z
      .union([
        z.strictObject({ path: z.string().min(1).max(4096) }),
        z.strictObject({ url: z.string().min(1).max(4096) }),
      ])
      .openapi({
        description:
          'An OVA, an OVF (its disks beside it) or a VMDK: a file under an allowed host path (uploads land in one: POST /api/v1/imports/files), or an http(s) URL',
      }),
    name: NAME.optional().openapi({ description: "The new VM's name (default: the OVF's)" }),
    pool: NAME.optional().openapi({ description: 'Where the disks go (default local)' }),
    networkMap: z
      .record(z.string().max(255), NAME)
      .optional()
      .openapi({ description: 'OVF network name → NeuroFlow network (unmapped: default)' }),
    devices: z.enum(['auto', 'virtio', 'emulated']).optional().openapi({
      description:
        'auto (default): virtio for Linux, SATA disks and e1000e NICs for Windows (no VirtIO drivers yet); virtio; emulated',
    }),
    vcpus: z
      .number()
      .int()
      .min(1)
      .max(256)
      .optional()
      .openapi({ description: 'A bare VMDK: vCPUs (default 1)' }),
    memoryMiB: z
      .number()
      .int()
      .min(16)
      .max(16 * 1024 * 1024)
      .optional()
      .openapi({ description: 'A bare VMDK: memory (default 1024)' }),
    start: z.boolean().optional().openapi({ description: 'Start the VM once imported' }),
  })
  .openapi('Import');

const PlanSchema = z
  .object({
    kind: z.enum(['ova', 'ovf', 'vmdk']),
    name: z.string(),
    source: z.object({
      osType: z.string(),
      windows: z.boolean(),
      firmware: z.string(),
      secureBoot: z.boolean(),
      ignored: z.array(z.string()),
    }),
    vm: z.object({
      vcpus: z.number(),
      memoryMiB: z.number(),
      machine: z.string(),
      firmware: z.string(),
      secureBoot: z.boolean(),
      cpu: z.object({ model: z.string(), sockets: z.number() }).optional(),
      disks: z.array(
        z.object({
          file: z.string(),
          label: z.string(),
          sizeBytes: z.number(),
          bus: z.string(),
          from: z.string(),
        }),
      ),
      networks: z.array(
        z.object({
          network: z.string(),
          model: z.string(),
          from: z.string(),
          label: z.string(),
          sourceNetwork: z
            .string()
            .openapi({ description: 'The OVF network it was on (what networkMap maps)' }),
        }),
      ),
    }),
    pool: z.string(),
    verified: z.record(z.string(), z.string()),
    notes: z.array(z.string()),
  })
  .openapi('ImportPlan');

/** Imports of VMs exported from VMware (src/controller/imports.ts). */
export function importRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'post',
      path: '/files',
      tags: ['Imports'],
      summary:
        'Upload an OVA, OVF or VMDK (the raw body) into this host\u2019s import directory, for an import',
      request: {
        query: z.object({ filename: z.string().min(1).max(255) }),
        body: {
          content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
          required: true,
        },
      },
      responses: {
        201: json(z.object({ path: z.string(), sizeBytes: z.number() }).openapi('ImportFile'), 'Stored'),
        ...errors,
      },
    }),
    async (c) => {
      const body = c.req.raw.body;
      if (!body) throw new NfError('validation_failed', 'the upload has no body');
      const file = await ctx.imports.upload(c.req.valid('query').filename, body);
      return c.json(file, 201);
    },
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/files',
      tags: ['Imports'],
      summary: 'Delete an upload that will not be imported (an import deletes its upload once it ran)',
      request: { query: z.object({ path: z.string().min(1).max(4096) }) },
      responses: { 204: { description: 'Deleted' }, ...errors },
    }),
    async (c) => {
      await ctx.imports.discard(c.req.valid('query').path);
      return c.body(null, 204);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/inspect',
      tags: ['Imports'],
      summary:
        'What an import would make: the source\u2019s hardware mapped to NeuroFlow\u2019s, checked, nothing made',
      request: { body: { content: { 'application/json': { schema: ImportBody } }, required: true } },
      responses: { 200: json(PlanSchema, 'The plan'), ...errors },
    }),
    async (c) => c.json(await ctx.imports.inspect(c.req.valid('json')), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Imports'],
      summary:
        'Import a VM from an OVA, OVF or VMDK: checked at once (4xx, nothing made), then a task converts its disks into the pool (progress: bytes converted) and records the VM',
      request: { body: { content: { 'application/json': { schema: ImportBody } }, required: true } },
      responses: {
        202: json(
          TaskSchema,
          'The import runs as this task; its result names the new VM (`vm`) and the mapping notes',
        ),
        ...errors,
      },
    }),
    async (c) => c.json(await ctx.imports.start(c.req.valid('json'), c.get('user')), 202),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/bulk',
      tags: ['Imports'],
      summary:
        'Import several VMs: every package is checked first (a refusal names the item, nothing starts), then each runs as its own task',
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.strictObject({ imports: z.array(ImportBody).min(1).max(50) }).openapi('BulkImport'),
            },
          },
          required: true,
        },
      },
      responses: { 202: json(z.array(TaskSchema), 'One task per import, in order'), ...errors },
    }),
    async (c) => c.json(await ctx.imports.startMany(c.req.valid('json').imports, c.get('user')), 202),
  );
  return r;
}
