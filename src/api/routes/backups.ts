import { createRoute, z } from '@hono/zod-openapi';
import { NfError } from '../../errors';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { IdParam, TAG, TaskSchema } from '../schemas';

const REPO_NAME = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits, -; up to 63');
const BACKUP_ID = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a backup id');
const VM_NAME = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, 'letters, digits, . _ -; up to 63 characters');

const RepositorySchema = z
  .object({
    name: z.string(),
    path: z.string(),
    node: z.string().openapi({ description: 'The host whose file system holds the directory' }),
    createdAt: z.string(),
    id: z.string().optional(),
    backups: z.number().optional(),
    usage: z
      .object({ chunks: z.number(), bytes: z.number() })
      .optional()
      .openapi({ description: 'Chunks stored and the bytes they take (compressed, deduplicated)' }),
    error: z.string().optional().openapi({ description: 'Why the directory cannot be read now' }),
    keyFile: z.string().optional().openapi({
      description: 'Where the key of an encrypted repository is on its host (keep a copy elsewhere)',
    }),
    shared: z.boolean().optional().openapi({
      description: 'Shared storage at the same path on every host: VMs of any host back up into it',
    }),
    encrypted: z.boolean().optional().openapi({
      description:
        'Client-side encryption (AES-256-GCM); the key is a file on the host, never in the API or etcd',
    }),
  })
  .openapi('BackupRepository');

const BackupDiskSchema = z.object({
  id: z.string(),
  sizeBytes: z.number(),
  mode: z.enum(['full', 'incremental']),
  base: z.string().optional().openapi({ description: 'The backup an incremental one builds on' }),
  fullReason: z.string().optional().openapi({ description: 'Why the disk was read whole' }),
  readBytes: z.number(),
  chunksRead: z.number(),
  newChunks: z.number(),
  newBytesStored: z.number(),
  zeroChunks: z.number(),
});

const BackupSchema = z
  .object({
    id: z.string(),
    repository: z.string(),
    vm: z.object({ id: z.string(), name: z.string() }),
    node: z.string(),
    startedAt: z.string(),
    pointInTime: z.string().openapi({ description: 'The instant the disks were captured' }),
    endedAt: z.string(),
    consistency: z.enum(['filesystem', 'crash', 'stopped']).openapi({
      description:
        'filesystem: the guest agent froze the file systems for the instant; crash: as after a power cut; stopped: the VM was off',
    }),
    consistencyNote: z.string().optional(),
    sizeBytes: z.number(),
    config: z.object({ name: z.string(), vcpus: z.number(), memoryMiB: z.number(), disks: z.number() }),
    disks: z.array(BackupDiskSchema),
    notes: z.string().optional(),
    bootVerify: z
      .object({
        passed: z.boolean(),
        at: z.string(),
        agentAfterMs: z.number().optional(),
        reason: z.string().optional(),
        totalMs: z.number().optional(),
      })
      .optional()
      .openapi({ description: 'The last boot verification of this backup' }),
  })
  .openapi('Backup');

const FilesystemSchema = z
  .object({
    id: z.string().openapi({ description: 'disk0 (the whole disk) or disk0p1 (its partition 1)' }),
    disk: z.string(),
    partition: z.number().optional(),
    offsetBytes: z.number(),
    sizeBytes: z.number(),
    type: z.string().openapi({ example: 'ext4' }),
    readable: z.boolean(),
    label: z.string().optional(),
    uuid: z.string().optional(),
    needsRecovery: z.boolean().optional().openapi({
      description:
        'The journal held changes not yet written in place (backed up without a freeze): the newest changes may be missing',
    }),
    reason: z.string().optional().openapi({ description: 'Why it cannot be browsed' }),
  })
  .openapi('BackupFilesystem');

const FileEntrySchema = z
  .object({
    name: z.string(),
    type: z.enum(['file', 'dir', 'symlink', 'other']),
    size: z.number(),
    mode: z.number().openapi({ description: 'st_mode: the type and permission bits' }),
    uid: z.number(),
    gid: z.number(),
    mtime: z.string(),
    target: z.string().optional().openapi({ description: "A symbolic link's target (not followed)" }),
  })
  .openapi('BackupFileEntry');

const DirectorySchema = z
  .object({
    path: z.string(),
    entries: z.array(FileEntrySchema),
    truncated: z.boolean().openapi({ description: 'The directory has more entries than listed (10,000)' }),
  })
  .openapi('BackupDirectory');

const RepoQuery = z.object({ repository: REPO_NAME.optional() });
const BackupParam = z.object({ id: BACKUP_ID });

/** Backup repositories (`/backup/repositories`). */
export function backupRepositoryRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Backups'],
      summary: 'Backup repositories, with their use',
      responses: { 200: json(z.array(RepositorySchema), 'Repositories'), ...errors },
    }),
    async (c) => c.json(await ctx.backups.listRepositories(), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Backups'],
      summary:
        'Add a backup repository: a directory of this host (made there if missing or empty; an existing repository is opened)',
      request: {
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({
                  name: REPO_NAME,
                  path: z.string().min(2).max(4096).openapi({ example: '/srv/backups' }),
                  shared: z.boolean().optional().openapi({
                    description:
                      'The path is shared storage (an NFS mount, say) at the same place on every host: VMs of every host can be backed up into it, and every host reads it',
                  }),
                  encrypt: z.boolean().optional().openapi({
                    description:
                      'Encrypt a new repository: a key is made and kept on the host (<data dir>/backup-keys/<id>.key): keep a copy elsewhere, without it nothing can be read',
                  }),
                  key: z.string().max(100).optional().openapi({
                    description:
                      'Base64 of a 32-byte key: encrypt with a key you hold, or open an existing encrypted repository (a wrong key is refused, nothing written)',
                  }),
                })
                .openapi('NewBackupRepository'),
            },
          },
          required: true,
        },
      },
      responses: { 201: json(RepositorySchema, 'Added'), ...errors },
    }),
    async (c) => c.json(await ctx.backups.createRepository(c.req.valid('json')), 201),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{name}',
      tags: ['Backups'],
      summary: 'A backup repository',
      request: { params: z.object({ name: REPO_NAME }) },
      responses: { 200: json(RepositorySchema, 'The repository'), ...errors },
    }),
    async (c) => c.json(await ctx.backups.getRepository(c.req.valid('param').name), 200),
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}',
      tags: ['Backups'],
      summary: 'Forget a backup repository (its directory and backups stay on disk)',
      request: { params: z.object({ name: REPO_NAME }) },
      responses: { 204: { description: 'Forgotten' }, ...errors },
    }),
    async (c) => {
      await ctx.backups.deleteRepository(c.req.valid('param').name);
      return c.body(null, 204);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{name}/verify',
      tags: ['Backups'],
      summary:
        'Verify every backup of a repository: re-read and re-hash each chunk; the task result lists damaged or missing chunks and the backups they break',
      request: { params: z.object({ name: REPO_NAME }) },
      responses: { 202: json(TaskSchema, 'The verification runs as this task'), ...errors },
    }),
    async (c) =>
      c.json(await ctx.backups.verify({ repository: c.req.valid('param').name }, c.get('user')), 202),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{name}/gc',
      tags: ['Backups'],
      summary:
        'Garbage-collect a repository: remove the chunks no backup names (marked from the indexes), and what interrupted backups left; 409 while a backup writes there',
      request: { params: z.object({ name: REPO_NAME }) },
      responses: {
        202: json(TaskSchema, 'The GC runs as this task; its result says what was removed'),
        ...errors,
      },
    }),
    async (c) => c.json(await ctx.backups.gc(c.req.valid('param').name, c.get('user')), 202),
  );
  return r;
}

/** Backups (`/backups`). */
export function backupRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Backups'],
      summary: 'Backups, newest first (of one repository or VM when asked)',
      request: {
        query: z.object({ repository: REPO_NAME.optional(), vm: z.string().min(1).max(64).optional() }),
      },
      responses: { 200: json(z.array(BackupSchema), 'Backups'), ...errors },
    }),
    async (c) => c.json(await ctx.backups.list(c.req.valid('query')), 200),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Backups'],
      summary: 'A backup: its disks (full or incremental, and why), consistency and sizes',
      request: { params: BackupParam, query: RepoQuery },
      responses: { 200: json(BackupSchema, 'The backup'), ...errors },
    }),
    async (c) => c.json(await ctx.backups.get(c.req.valid('param').id, c.req.valid('query').repository), 200),
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['Backups'],
      summary: 'Delete a backup (chunks other backups use stay)',
      request: { params: BackupParam, query: RepoQuery },
      responses: { 204: { description: 'Deleted' }, ...errors },
    }),
    async (c) => {
      await ctx.backups.delete(c.req.valid('param').id, c.req.valid('query').repository);
      return c.body(null, 204);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/restore',
      tags: ['Backups'],
      summary:
        'Restore a backup into a new VM (new id and MAC addresses; disks into `pool` or their own pools), or with inPlace over its own stopped VM (its disks replaced; its hardware and other disks stay), as a task',
      request: {
        params: BackupParam,
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({
                  name: VM_NAME.optional().openapi({ description: 'The new VM (needed unless inPlace)' }),
                  inPlace: z.boolean().optional().openapi({
                    description:
                      'Over the backed-up VM itself, which must be stopped: each of its disks in the backup is replaced (its snapshots go); nothing changes if it fails',
                  }),
                  pool: REPO_NAME.optional().openapi({
                    description: 'Where every disk goes (default: as backed up)',
                  }),
                  repository: REPO_NAME.optional(),
                  start: z.boolean().optional().openapi({ description: 'Start the new VM once restored' }),
                })
                .openapi('RestoreBackup'),
            },
          },
          required: true,
        },
      },
      responses: {
        202: json(TaskSchema, 'The restore runs as this task; its result names the new VM'),
        ...errors,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const id = c.req.valid('param').id;
      if (body.inPlace) {
        if (body.name || body.pool || body.start)
          throw new NfError(
            'validation_failed',
            'inPlace restores over the VM itself: give no name, pool or start',
          );
        return c.json(await ctx.backups.restoreInPlace(id, body, c.get('user')), 202);
      }
      if (!body.name) throw new NfError('validation_failed', 'name: the new VM (or inPlace: true)');
      return c.json(await ctx.backups.restore(id, { ...body, name: body.name }, c.get('user')), 202);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/boot-verify',
      tags: ['Backups'],
      summary:
        'Boot verification: restore into an isolated VM (no network), start it, pass when its guest agent answers; the VM is deleted afterwards (task; the outcome is kept with the backup)',
      request: {
        params: BackupParam,
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({
                  repository: REPO_NAME.optional(),
                  timeoutSec: z.number().int().min(10).max(3600).optional().openapi({
                    description: 'How long the guest agent has to answer after the start (default 300)',
                  }),
                })
                .openapi('BootVerifyBackup'),
            },
          },
          required: false,
        },
      },
      responses: { 202: json(TaskSchema, 'The verification runs as this task'), ...errors },
    }),
    async (c) =>
      c.json(
        await ctx.backups.bootVerify(
          c.req.valid('param').id,
          (c.req.valid('json') as { repository?: string; timeoutSec?: number } | undefined) ?? {},
          c.get('user'),
        ),
        202,
      ),
  );
  const FsParam = z.object({
    id: BACKUP_ID,
    fs: z.string().regex(/^[a-z0-9]{1,32}$/, 'a file system id (disk0, disk0p1)'),
  });
  const FsPath = z.string().min(1).max(4096).startsWith('/', 'an absolute path');
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/files',
      tags: ['Backups'],
      summary:
        "File restore: the file systems of a backup's disks (partitions of MBR and GPT disks); ext2/3/4 can be browsed, other formats are named",
      request: { params: BackupParam, query: RepoQuery },
      responses: { 200: json(z.array(FilesystemSchema), 'File systems'), ...errors },
    }),
    async (c) =>
      c.json(await ctx.backups.filesystems(c.req.valid('param').id, c.req.valid('query').repository), 200),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/files/{fs}',
      tags: ['Backups'],
      summary:
        'File restore: a directory of a backed-up file system, read from the repository (nothing is restored first); links are shown, not followed',
      request: {
        params: FsParam,
        query: z.object({
          path: FsPath.optional().openapi({ description: 'An absolute path in the file system (default /)' }),
          repository: REPO_NAME.optional(),
        }),
      },
      responses: { 200: json(DirectorySchema, 'The directory'), ...errors },
    }),
    async (c) => {
      const { id, fs } = c.req.valid('param');
      const q = c.req.valid('query');
      return c.json(await ctx.backups.browse(id, fs, q.path ?? '/', q.repository), 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/files/{fs}/download',
      tags: ['Backups'],
      summary: 'File restore: download one file of a backed-up file system (streamed, holes as zeros)',
      request: {
        params: FsParam,
        query: z.object({ path: FsPath, repository: REPO_NAME.optional() }),
      },
      responses: {
        200: {
          description: "The file's content",
          content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
        },
        ...errors,
      },
    }),
    async (c) => {
      const { id, fs } = c.req.valid('param');
      const q = c.req.valid('query');
      const { entry, chunks } = await ctx.backups.download(id, fs, q.path, c.get('user'), q.repository);
      const body = new ReadableStream<Uint8Array>({
        async pull(ctl) {
          const next = await chunks.next();
          if (next.done) ctl.close();
          else ctl.enqueue(next.value);
        },
        async cancel() {
          await chunks.return(undefined);
        },
      });
      return new Response(body, {
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(entry.size),
          'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(entry.name)}`,
          'x-content-type-options': 'nosniff',
        },
      });
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/verify',
      tags: ['Backups'],
      summary:
        'Verify a backup: re-read and re-hash every chunk it needs (task; the result lists any bad chunk)',
      request: { params: BackupParam, query: RepoQuery },
      responses: { 202: json(TaskSchema, 'The verification runs as this task'), ...errors },
    }),
    async (c) =>
      c.json(
        await ctx.backups.verify({ backup: c.req.valid('param').id, ...c.req.valid('query') }, c.get('user')),
        202,
      ),
  );
  return r;
}

/** `POST /vms/{id}/backup`. */
export function vmBackupRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/backup',
      tags: ['Backups'],
      summary:
        'Back a VM up now, running or stopped (incremental when the repository has an earlier backup of it), as a task with progress',
      request: {
        params: IdParam,
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({ repository: REPO_NAME, notes: z.string().max(500).optional() })
                .openapi('BackupVm'),
            },
          },
          required: true,
        },
      },
      responses: {
        202: json(TaskSchema, 'The backup runs as this task; its result is the backup'),
        ...errors,
      },
    }),
    async (c) =>
      c.json(await ctx.backups.backup(c.req.valid('param').id, c.req.valid('json'), c.get('user')), 202),
  );
  return r;
}

const RetentionSchema = z
  .strictObject({
    keepLast: z.number().int().min(0).max(10000).optional(),
    keepHourly: z.number().int().min(0).max(10000).optional(),
    keepDaily: z.number().int().min(0).max(10000).optional(),
    keepWeekly: z.number().int().min(0).max(10000).optional(),
    keepMonthly: z.number().int().min(0).max(10000).optional(),
    keepYearly: z.number().int().min(0).max(10000).optional(),
  })
  .openapi('BackupRetention', {
    description:
      'Per VM: keep the N newest (keepLast), and the newest of each of the N newest hours/days/ISO weeks/months/years that have one (UTC); a backup kept by any rule stays',
  });

const JobFields = {
  schedule: z.string().min(1).max(200).openapi({
    description:
      'A cron expression ("0 2 * * *": 02:00 every day) or @hourly, @daily, @weekly, @monthly; UTC',
    example: '0 2 * * *',
  }),
  repository: REPO_NAME,
  selection: z
    .strictObject({
      all: z.boolean().optional().openapi({ description: 'Every VM (templates excluded)' }),
      vms: z
        .array(z.string().min(1).max(64))
        .max(1000)
        .optional()
        .openapi({ description: 'VM names or ids' }),
      tags: z
        .array(TAG)
        .max(32)
        .optional()
        .openapi({ description: 'The VMs carrying any of these tags when the job runs' }),
    })
    .openapi({ description: 'all, a list of VMs, or tags' }),
  retention: RetentionSchema.optional(),
  enabled: z.boolean().optional(),
  notes: z.string().max(500).optional(),
};

const JobSchema = z
  .object({
    name: z.string(),
    schedule: z.string(),
    repository: z.string(),
    selection: z.object({
      all: z.boolean().optional(),
      vms: z.array(z.string()).optional(),
      tags: z.array(z.string()).optional(),
    }),
    retention: z.record(z.string(), z.number()).optional(),
    enabled: z.boolean(),
    notes: z.string().optional(),
    createdAt: z.string(),
    nextRunAt: z.string().optional(),
    running: z.boolean(),
    lastRunAt: z.string().optional(),
    lastStatus: z.enum(['ok', 'partial', 'error']).optional(),
    lastMessage: z.string().optional(),
    lastTaskId: z
      .string()
      .optional()
      .openapi({ description: 'The task of the run going on, or of the last one' }),
  })
  .openapi('BackupJob');

const JobParam = z.object({ name: REPO_NAME });

/** Scheduled backup jobs (`/backup/jobs`). */
export function backupJobRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Backups'],
      summary: 'Backup jobs, with their next and last runs',
      responses: { 200: json(z.array(JobSchema), 'Jobs'), ...errors },
    }),
    async (c) => c.json(await ctx.backupJobs.list(), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Backups'],
      summary: 'Add a scheduled backup job (schedule, VMs, repository, retention)',
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.strictObject({ name: REPO_NAME, ...JobFields }).openapi('NewBackupJob'),
            },
          },
          required: true,
        },
      },
      responses: { 201: json(JobSchema, 'Added'), ...errors },
    }),
    async (c) => c.json(await ctx.backupJobs.create(c.req.valid('json')), 201),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{name}',
      tags: ['Backups'],
      summary: 'A backup job',
      request: { params: JobParam },
      responses: { 200: json(JobSchema, 'The job'), ...errors },
    }),
    async (c) => c.json(await ctx.backupJobs.get(c.req.valid('param').name), 200),
  );
  r.openapi(
    createRoute({
      method: 'patch',
      path: '/{name}',
      tags: ['Backups'],
      summary: 'Change a backup job (any field but its name)',
      request: {
        params: JobParam,
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({
                  schedule: JobFields.schedule.optional(),
                  repository: REPO_NAME.optional(),
                  selection: JobFields.selection.optional(),
                  retention: RetentionSchema.optional(),
                  enabled: z.boolean().optional(),
                  notes: z.string().max(500).optional(),
                })
                .openapi('EditBackupJob'),
            },
          },
          required: true,
        },
      },
      responses: { 200: json(JobSchema, 'The job'), ...errors },
    }),
    async (c) => c.json(await ctx.backupJobs.update(c.req.valid('param').name, c.req.valid('json')), 200),
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}',
      tags: ['Backups'],
      summary: 'Delete a backup job (its backups stay)',
      request: { params: JobParam },
      responses: { 204: { description: 'Deleted' }, ...errors },
    }),
    async (c) => {
      await ctx.backupJobs.delete(c.req.valid('param').name);
      return c.body(null, 204);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{name}/run',
      tags: ['Backups'],
      summary:
        'Run a backup job now: each VM backed up in turn (its own task), then pruned by the retention policy, then GC; the job task result lists each VM',
      request: { params: JobParam },
      responses: { 202: json(TaskSchema, 'The run, as a task'), ...errors },
    }),
    async (c) => c.json(await ctx.backupJobs.runNow(c.req.valid('param').name, c.get('user')), 202),
  );
  return r;
}
