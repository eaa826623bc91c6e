/**
 * A host's part of a backup and of a restore: it owns the VM's QEMU (or, for a stopped VM, its volumes), so
 * it captures the point in time, reads the disks over NBD into the repository and writes the manifest.
 *
 * Incremental backups: each disk carries a mark named after the repository and the last backup stored
 * there (nfbk-<repo>-<backup>): a persistent dirty bitmap in a qcow2 disk, an RBD snapshot of an RBD disk.
 * The next backup reads only the chunks changed since (the bitmap's bits; `rbd diff` from the snapshot);
 * a disk without a usable mark (first backup, QEMU killed, disk moved or rolled back) is read whole and
 * the manifest says why. An RBD mark is taken just before the backup's instant, and the changes are read
 * from it to the live image: a superset of what changed, never less.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { NfError, toNfError } from '../errors';
import { imageInfo, qemuImg } from '../storage/qemu-img';
import { createLogger } from '../util/log';
import type { BackupExportDisk, VmInstance } from '../vmm/types';
import { backupDisk, type ChunkProgress, type DiskSource, restoreDisk } from './engine';
import { NBD_STATE_DIRTY, NbdClient } from './nbd';
import { serveVolume } from './qemu-nbd';
import { type BackupDisk, type BackupManifest, type DiskIndex, Repository } from './repository';

const log = createLogger('backup');

export interface BackupVolume {
  id: string;
  /** QEMU --image-opts of the volume (for a stopped VM, and for bitmaps of a stopped qcow2 disk). */
  imageOpts: string;
  qcow2: boolean;
  sizeBytes: number;
  /** An RBD disk: its snapshots are the marks of incremental backups. */
  rbd?: RbdMarks;
}

export interface RbdMarks {
  snapshots(): Promise<string[]>;
  create(name: string): Promise<void>;
  remove(name: string): Promise<void>;
  /** Extents that differ between the snapshot and the image now. */
  changedSince(name: string): Promise<{ offset: number; length: number }[]>;
}

export interface NodeBackupRequest {
  repository: string;
  /** The key of an encrypted repository: a file on this host, */
  keyFile?: string;
  /** or the key itself (sent by a controller over mTLS, never logged or stored on this host). */
  key?: Buffer;
  backupId: string;
  vm: { id: string; name: string };
  node: string;
  config: Record<string, unknown>;
  disks: BackupVolume[];
  notes?: string;
}

/** What a host is asked to back up: the VM's volumes by pool (it turns them into BackupVolumes). */
export type VmBackupRequest = Omit<NodeBackupRequest, 'disks' | 'node'> & {
  disks: { id: string; pool: string; volume: string; sizeBytes: number }[];
};

/** One disk of a backup to write into a new volume of a pool. */
export interface RestoreVolumeRequest {
  repository: string;
  keyFile?: string;
  key?: Buffer;
  vmId: string;
  backupId: string;
  diskId: string;
  pool: string;
  volume: string;
  sizeBytes: number;
}

export interface BackupProgress {
  /** captured: a running VM's point in time is fixed (its lock may go; the reading follows). */
  phase: 'freezing' | 'captured' | 'reading' | 'committing';
  doneBytes?: number;
  totalBytes?: number;
  disk?: string;
}

export interface GuestFreezer {
  freeze(): Promise<number>;
  thaw(): Promise<number>;
}

/** Opens a repository with its key file when it has one. */
export async function openRepository(path: string, keyFile?: string, key?: Buffer): Promise<Repository> {
  return Repository.open(path, key ?? (keyFile ? await readFile(keyFile) : undefined));
}

const bitmapName = (repo: Repository, backupId: string) => `nfbk-${repo.info.id}-${backupId}`;
const ownBitmap = (repo: Repository, name: string) => name.startsWith(`nfbk-${repo.info.id}-`);

/** Which disks can be incremental: the base backup, and for each disk its mark (bitmap, snapshot) or why not. */
async function plan(
  repo: Repository,
  req: NodeBackupRequest,
  bitmapsOf: (d: BackupVolume) => Promise<{ name: string; usable: boolean }[]>,
): Promise<
  Map<string, { base?: { backupId: string; index: DiskIndex; bitmap: string }; fullReason?: string }>
> {
  const last = (await repo.listBackups(req.vm.id))[0];
  const out = new Map<
    string,
    { base?: { backupId: string; index: DiskIndex; bitmap: string }; fullReason?: string }
  >();
  for (const d of req.disks) {
    if (!last) {
      out.set(d.id, {});
      continue;
    }
    if (!last.disks.some((x) => x.id === d.id)) {
      out.set(d.id, { fullReason: `disk ${d.id} is not in backup ${last.id}` });
      continue;
    }
    const want = bitmapName(repo, last.id);
    const all = await bitmapsOf(d);
    const bm = all.find((b) => b.name === want);
    const other = all.find((b) => ownBitmap(repo, b.name) && b.name !== want);
    if (!bm || !bm.usable) {
      out.set(d.id, {
        fullReason: bm
          ? `the change bitmap since backup ${last.id} is unusable (QEMU stopped without saving it)`
          : other
            ? `the change ${d.rbd ? 'snapshot' : 'bitmap'} follows backup ${other.name.slice(bitmapName(repo, '').length)}, which is no longer in the repository (deleted); the newest there is ${last.id}`
            : `no change ${d.rbd ? 'snapshot' : 'bitmap'} since backup ${last.id} (the disk was moved, rolled back, or backed up elsewhere)`,
      });
      continue;
    }
    out.set(d.id, {
      base: { backupId: last.id, index: await repo.index(req.vm.id, last.id, d.id), bitmap: want },
    });
  }
  return out;
}

/** A disk's marks: an RBD disk's snapshots, or a qcow2 disk's bitmaps as `bitmaps` gives them. */
async function marksOf(
  d: BackupVolume,
  bitmaps: () => Promise<{ name: string; usable: boolean }[]>,
): Promise<{ name: string; usable: boolean }[]> {
  if (d.rbd) return (await d.rbd.snapshots()).map((name) => ({ name, usable: true }));
  return d.qcow2 ? bitmaps() : [];
}

/** What changed since the base, for the engine: the bitmap over NBD, or the RBD diff from the snapshot. */
function changed(
  d: BackupVolume,
  client: NbdClient,
  mark: string,
  context: string,
): () => Promise<{ offset: number; length: number; flags: number }[]> {
  if (d.rbd) {
    const rbd = d.rbd;
    return async () => (await rbd.changedSince(mark)).map((e) => ({ ...e, flags: NBD_STATE_DIRTY }));
  }
  return () => client.blockStatus(context, 0, client.size);
}

/** Backs up a running VM: fleecing export of its disks at one instant, frozen file systems around it. */
export async function backupRunning(
  instance: VmInstance,
  runDir: string,
  req: NodeBackupRequest,
  guest: GuestFreezer | undefined,
  onProgress: (p: BackupProgress) => void,
): Promise<BackupManifest> {
  const repo = await openRepository(req.repository, req.keyFile, req.key);
  // What a backup left in QEMU when its daemon died (export, job, scratch node, bitmap copy): QEMU
  // outlives serve, so the next backup clears it first.
  await instance.endBackupExport(
    req.disks.map((d) => ({ id: d.id, scratch: '' })),
    false,
  );
  const startedAt = new Date().toISOString();
  const bitmaps = new Map<string, { name: string; usable: boolean }[]>();
  for (const d of req.disks) bitmaps.set(d.id, await marksOf(d, () => instance.diskBitmaps(d.id)));
  const planned = await plan(repo, req, async (d) => bitmaps.get(d.id) ?? []);
  const newBitmap = bitmapName(repo, req.backupId);
  const socket = join(runDir, 'backup-nbd.sock');
  const exportDisks: BackupExportDisk[] = req.disks.map((d) => ({
    id: d.id,
    scratch: join(runDir, `backup-scratch-${d.id}.qcow2`),
    ...(d.qcow2 ? { newBitmap } : {}),
    ...(d.qcow2 && planned.get(d.id)?.base ? { baseBitmap: planned.get(d.id)!.base!.bitmap } : {}),
  }));
  // bitmaps a dead backup of this repository left (not the base): they would only grow
  for (const d of req.disks)
    for (const b of bitmaps.get(d.id) ?? [])
      if (ownBitmap(repo, b.name) && b.name !== planned.get(d.id)?.base?.bitmap)
        await (d.rbd ? d.rbd.remove(b.name) : instance.removeDiskBitmap(d.id, b.name));
  for (const d of exportDisks) {
    const size = req.disks.find((x) => x.id === d.id)!.sizeBytes;
    await qemuImg(['create', '-q', '-f', 'qcow2', d.scratch, String(size)]);
  }
  const writer = await repo.beginBackup(req.vm.id, req.backupId);
  let ok = false;
  let exported = false;
  try {
    onProgress({ phase: 'freezing' });
    let consistency: BackupManifest['consistency'] = 'crash';
    let consistencyNote: string | undefined;
    let frozen = false;
    if (guest) {
      try {
        await guest.freeze();
        frozen = true;
      } catch (err) {
        consistencyNote = `the guest's file systems were not frozen: ${(err as Error).message}`;
      }
    } else consistencyNote = 'the VM has no guest agent: crash-consistent';
    let pointInTime: string;
    try {
      // RBD marks just before the instant: the next backup reads what changed since, a little more
      for (const d of req.disks) if (d.rbd) await d.rbd.create(newBitmap);
      await instance.startBackupExport({ socket, disks: exportDisks });
      exported = true;
      pointInTime = new Date().toISOString();
    } finally {
      if (frozen)
        await guest!.thaw().then(
          () => {
            consistency = 'filesystem';
          },
          (err: Error) => {
            consistencyNote = `thawing the guest failed: ${err.message}`;
          },
        );
    }
    onProgress({ phase: 'captured' });
    const disks: BackupDisk[] = [];
    for (const d of req.disks) {
      const p = planned.get(d.id)!;
      const context = `qemu:dirty-bitmap:bk-since-${d.id}`;
      const client = await NbdClient.connect(socket, {
        exportName: d.id,
        metaContexts: ['base:allocation', ...(p.base && !d.rbd ? [context] : [])],
      });
      try {
        disks.push(
          await backupDisk(repo, writer, source(d, client, p, context), (c: ChunkProgress) =>
            onProgress({ phase: 'reading', disk: d.id, ...c }),
          ),
        );
      } finally {
        await client.close().catch(() => {});
      }
    }
    onProgress({ phase: 'committing' });
    const manifest: BackupManifest = {
      id: req.backupId,
      vm: req.vm,
      node: req.node,
      startedAt,
      pointInTime,
      endedAt: new Date().toISOString(),
      consistency,
      ...(consistencyNote ? { consistencyNote } : {}),
      config: req.config,
      disks,
      ...(req.notes ? { notes: req.notes } : {}),
    };
    await writer.commit(manifest);
    ok = true;
    return manifest;
  } finally {
    if (!ok) await writer.abort().catch(() => {});
    await settleRbdMarks(repo, req.disks, newBitmap, ok);
    if (exported)
      await instance
        .endBackupExport(exportDisks, ok)
        .catch((err: Error) => log.warn('cannot end a backup export', { vm: req.vm.name, err: err.message }));
    else if (ok === false)
      for (const d of req.disks) await instance.removeDiskBitmap(d.id, newBitmap).catch(() => {});
    for (const d of exportDisks) await rm(d.scratch, { force: true });
  }
}

function source(
  d: BackupVolume,
  client: NbdClient,
  p: { base?: { backupId: string; index: DiskIndex; bitmap: string }; fullReason?: string },
  context: string,
): DiskSource {
  return {
    id: d.id,
    client,
    ...(p.base
      ? {
          base: {
            backupId: p.base.backupId,
            index: p.base.index,
            changed: changed(d, client, p.base.bitmap, context),
          },
        }
      : {}),
    ...(p.fullReason ? { fullReason: p.fullReason } : {}),
  };
}

/**
 * After a backup: stored, the new RBD snapshot is the next one's base and older marks of this repository
 * go; failed, the new one goes (the base stays).
 */
async function settleRbdMarks(
  repo: Repository,
  disks: BackupVolume[],
  mark: string,
  ok: boolean,
): Promise<void> {
  for (const d of disks) {
    if (!d.rbd) continue;
    try {
      if (!ok) await d.rbd.remove(mark);
      else
        for (const s of await d.rbd.snapshots()) if (ownBitmap(repo, s) && s !== mark) await d.rbd.remove(s);
    } catch (err) {
      log.warn('cannot settle the backup snapshots of an RBD disk', {
        disk: d.id,
        err: toNfError(err).message,
      });
    }
  }
}

async function imageBitmaps(d: BackupVolume): Promise<{ name: string; usable: boolean }[]> {
  if (!d.qcow2) return [];
  const info = await imageInfo({ imageOpts: d.imageOpts.replaceAll('read-only=off', 'read-only=on') });
  return info.bitmaps.map((b) => ({ name: b.name, usable: !b.flags.includes('in-use') }));
}

/** Backs up a stopped VM (the caller holds its lock, so nothing writes the disks meanwhile). */
export async function backupStopped(
  runDir: string,
  req: NodeBackupRequest,
  onProgress: (p: BackupProgress) => void,
): Promise<BackupManifest> {
  const repo = await openRepository(req.repository, req.keyFile, req.key);
  const startedAt = new Date().toISOString();
  const planned = await plan(repo, req, (d) => marksOf(d, () => imageBitmaps(d)));
  const newMark = bitmapName(repo, req.backupId);
  for (const d of req.disks)
    if (d.rbd)
      for (const s of await d.rbd.snapshots())
        if (ownBitmap(repo, s) && s !== planned.get(d.id)?.base?.bitmap) await d.rbd.remove(s);
  const writer = await repo.beginBackup(req.vm.id, req.backupId);
  let ok = false;
  try {
    const disks: BackupDisk[] = [];
    for (const d of req.disks) {
      const p = planned.get(d.id)!;
      // NBD exports only a disabled bitmap: a disabled copy of the base one (which keeps recording if
      // this backup fails)
      const copy = `bk-since-${d.id}`;
      if (d.rbd) await d.rbd.create(newMark);
      if (p.base && !d.rbd) {
        await qemuImg(['bitmap', '--remove', '--image-opts', d.imageOpts, copy]).catch(() => {});
        await qemuImg([
          'bitmap',
          '--add',
          '--disable',
          '--merge',
          p.base.bitmap,
          '--image-opts',
          d.imageOpts,
          copy,
        ]);
      }
      try {
        const server = await serveVolume({
          socket: join(runDir, `backup-${d.id}.sock`),
          imageOpts: d.imageOpts,
          readOnly: true,
          ...(p.base && !d.rbd ? { bitmap: copy } : {}),
        });
        try {
          const client = await NbdClient.connect(server.socket, {
            exportName: '',
            metaContexts: ['base:allocation', ...(p.base && !d.rbd ? [`qemu:dirty-bitmap:${copy}`] : [])],
          });
          try {
            disks.push(
              await backupDisk(repo, writer, source(d, client, p, `qemu:dirty-bitmap:${copy}`), (c) =>
                onProgress({ phase: 'reading', disk: d.id, ...c }),
              ),
            );
          } finally {
            await client.close().catch(() => {});
          }
        } finally {
          await server.close();
        }
      } finally {
        if (p.base && !d.rbd)
          await qemuImg(['bitmap', '--remove', '--image-opts', d.imageOpts, copy]).catch(() => {});
      }
    }
    onProgress({ phase: 'committing' });
    const now = new Date().toISOString();
    const manifest: BackupManifest = {
      id: req.backupId,
      vm: req.vm,
      node: req.node,
      startedAt,
      pointInTime: startedAt,
      endedAt: now,
      consistency: 'stopped',
      config: req.config,
      disks,
      ...(req.notes ? { notes: req.notes } : {}),
    };
    await writer.commit(manifest);
    ok = true;
    await settleRbdMarks(repo, req.disks, newMark, true);
    // The next backup's base: a bitmap from now (the disks did not change since the read), old ones go.
    for (const d of req.disks) {
      if (!d.qcow2) continue;
      try {
        for (const b of await imageBitmaps(d))
          if (ownBitmap(repo, b.name))
            await qemuImg(['bitmap', '--remove', '--image-opts', d.imageOpts, b.name]);
        await qemuImg(['bitmap', '--add', '--image-opts', d.imageOpts, bitmapName(repo, req.backupId)]);
      } catch (err) {
        log.warn('cannot set the change bitmap of a backed-up disk; its next backup is a full one', {
          vm: req.vm.name,
          disk: d.id,
          err: toNfError(err).message,
        });
      }
    }
    return manifest;
  } finally {
    if (!ok) {
      await writer.abort().catch(() => {});
      await settleRbdMarks(repo, req.disks, newMark, false);
    }
  }
}

/** Writes one disk of a backup into a new (zeroed) volume given as --image-opts. */
export async function restoreVolume(
  runDir: string,
  req: Omit<RestoreVolumeRequest, 'pool' | 'volume' | 'sizeBytes'> & { imageOpts: string },
  onProgress: (p: ChunkProgress) => void,
): Promise<{ writtenBytes: number }> {
  const repo = await openRepository(req.repository, req.keyFile, req.key);
  const index = await repo.index(req.vmId, req.backupId, req.diskId);
  const server = await serveVolume({
    socket: join(runDir, `restore-${req.diskId}-${process.pid}.sock`),
    imageOpts: req.imageOpts,
    readOnly: false,
  });
  try {
    const client = await NbdClient.connect(server.socket, { exportName: '' });
    try {
      if (!client.writable) throw new NfError('internal', 'the restore target was exported read-only');
      return await restoreDisk(repo, index, client, onProgress);
    } finally {
      await client.close().catch(() => {});
    }
  } finally {
    await server.close();
  }
}
