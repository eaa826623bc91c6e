/**
 * The data path of backups: a disk exported over NBD (QEMU's point-in-time view of a running disk, or
 * qemu-nbd on a stopped one) read into repository chunks, and chunks written back into a new volume
 * exported by qemu-nbd. Chunks the export reports as zeros are never read; with a base backup and a dirty
 * bitmap, only chunks the bitmap marks are read (the others are the base's).
 */
import { NfError } from '../errors';
import { NBD_STATE_DIRTY, NBD_STATE_ZERO, type NbdClient, type NbdExtent } from './nbd';
import type { BackupDisk, BackupWriter, DiskIndex, Repository } from './repository';

const IN_FLIGHT = 4;

export interface DiskSource {
  id: string;
  client: NbdClient;
  /**
   * The base backup's index and the extents changed since it (a dirty bitmap over NBD, or an RBD
   * snapshot diff): only chunks they touch are read.
   */
  base?: { backupId: string; index: DiskIndex; changed: () => Promise<NbdExtent[]> };
  /** Why this disk is read whole although an earlier backup exists. */
  fullReason?: string;
}

export interface ChunkProgress {
  doneBytes: number;
  totalBytes: number;
}

/** For each chunk, whether any byte of it is in an extent with (or without) the flag. */
function chunkFlags(
  extents: NbdExtent[],
  chunkSize: number,
  count: number,
  test: (flags: number) => boolean,
): boolean[] {
  const out = new Array<boolean>(count).fill(false);
  for (const e of extents) {
    if (!test(e.flags)) continue;
    const first = Math.floor(e.offset / chunkSize);
    const last = Math.min(count - 1, Math.floor((e.offset + e.length - 1) / chunkSize));
    for (let i = first; i <= last; i++) out[i] = true;
  }
  return out;
}

function isZero(b: Uint8Array): boolean {
  // compare 8 bytes at a time where the buffer allows it
  const whole = b.byteLength - (b.byteLength % 8);
  const v = new BigUint64Array(b.buffer, b.byteOffset, whole / 8);
  if (b.byteOffset % 8 === 0) {
    for (let i = 0; i < v.length; i++) if (v[i] !== 0n) return false;
    for (let i = whole; i < b.byteLength; i++) if (b[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < b.byteLength; i++) if (b[i] !== 0) return false;
  return true;
}

/** Runs `work(i)` for i in `items` with at most `n` at once; the first failure ends it. */
async function pool<T>(items: T[], n: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const runner = async () => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, runner));
  if (failed !== undefined) throw failed;
}

/** Reads one disk into the repository; returns its index entry figures. */
export async function backupDisk(
  repo: Repository,
  writer: BackupWriter,
  src: DiskSource,
  onProgress: (p: ChunkProgress) => void,
): Promise<BackupDisk> {
  const size = src.client.size;
  const cs = repo.info.chunkSize;
  const count = Math.ceil(size / cs);
  const zero = chunkFlags(
    // a chunk is skipped only if every byte of it reads as zeros
    invert(await src.client.blockStatus('base:allocation', 0, size), size),
    cs,
    count,
    (f) => (f & NBD_STATE_ZERO) === 0,
  ).map((notZero) => !notZero);
  let base = src.base;
  let fullReason = src.fullReason;
  if (base && base.index.sizeBytes !== size) {
    fullReason = `the disk's size changed since backup ${base.backupId}`;
    base = undefined;
  }
  const dirty = base
    ? chunkFlags(await base.changed(), cs, count, (f) => (f & NBD_STATE_DIRTY) !== 0)
    : undefined;
  const chunks = new Array<string | null>(count).fill(null);
  const toRead: number[] = [];
  let zeroChunks = 0;
  for (let i = 0; i < count; i++) {
    if (zero[i]) {
      zeroChunks++;
      continue;
    }
    const kept = base && dirty && !dirty[i] ? (base.index.chunks[i] ?? null) : undefined;
    // an unchanged chunk is taken from the base unless the repository lost it (a verification set it
    // aside as damaged): then it is read again, which heals every backup naming it
    if (kept === null || (kept && (await repo.hasChunk(kept)))) chunks[i] = kept;
    else toRead.push(i);
  }
  const stats = { readBytes: 0, newChunks: 0, newBytesStored: 0 };
  const total = toRead.reduce((n, i) => n + Math.min(cs, size - i * cs), 0);
  onProgress({ doneBytes: 0, totalBytes: total });
  await pool(toRead, IN_FLIGHT, async (i) => {
    const off = i * cs;
    const data = await src.client.read(off, Math.min(cs, size - off));
    stats.readBytes += data.byteLength;
    if (isZero(data)) {
      zeroChunks++;
    } else {
      const id = repo.idOf(data);
      const stored = await repo.putChunk(data, id);
      if (stored > 0) {
        stats.newChunks++;
        stats.newBytesStored += stored;
      }
      chunks[i] = id;
    }
    onProgress({ doneBytes: stats.readBytes, totalBytes: total });
  });
  await writer.writeIndex({ disk: src.id, sizeBytes: size, chunkSize: cs, chunks });
  return {
    id: src.id,
    sizeBytes: size,
    mode: base ? 'incremental' : 'full',
    ...(base ? { base: base.backupId } : {}),
    ...(!base && fullReason ? { fullReason } : {}),
    readBytes: stats.readBytes,
    chunksRead: toRead.length,
    newChunks: stats.newChunks,
    newBytesStored: stats.newBytesStored,
    zeroChunks,
  };
}

/** Extents not covered by the server's answer count as data (never skipped as zeros by mistake). */
function invert(extents: NbdExtent[], size: number): NbdExtent[] {
  const out: NbdExtent[] = [];
  let at = 0;
  for (const e of [...extents].sort((a, b) => a.offset - b.offset)) {
    if (e.offset > at) out.push({ offset: at, length: e.offset - at, flags: 0 });
    out.push(e);
    at = Math.max(at, e.offset + e.length);
  }
  if (at < size) out.push({ offset: at, length: size - at, flags: 0 });
  return out;
}

/**
 * Writes a backed-up disk into a new, zeroed volume exported writable over NBD: chunks of zeros are not
 * written. Every chunk is checked against its id as it is read (a damaged one fails the restore).
 */
export async function restoreDisk(
  repo: Repository,
  index: DiskIndex,
  client: NbdClient,
  onProgress: (p: ChunkProgress) => void,
): Promise<{ writtenBytes: number }> {
  if (client.size < index.sizeBytes)
    throw new NfError(
      'validation_failed',
      `the target volume (${client.size} bytes) is smaller than disk ${index.disk} (${index.sizeBytes} bytes)`,
    );
  const cs = index.chunkSize;
  const todo = index.chunks.flatMap((id, i) => (id ? [i] : []));
  const total = todo.reduce((n, i) => n + Math.min(cs, index.sizeBytes - i * cs), 0);
  let done = 0;
  onProgress({ doneBytes: 0, totalBytes: total });
  await pool(todo, IN_FLIGHT, async (i) => {
    const data = await repo.getChunk(index.chunks[i]!);
    const expected = Math.min(cs, index.sizeBytes - i * cs);
    if (data.byteLength !== expected)
      throw new NfError(
        'data_corrupted',
        `chunk ${index.chunks[i]} has ${data.byteLength} bytes, ${expected} expected`,
      );
    await client.write(i * cs, data);
    done += data.byteLength;
    onProgress({ doneBytes: done, totalBytes: total });
  });
  await client.flush();
  return { writtenBytes: done };
}
