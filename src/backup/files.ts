/**
 * File restore: the file systems of a backed-up disk, read straight from the repository's chunks (nothing
 * is restored to a volume first). A disk's partitions come from its MBR or GPT (or the whole disk is one
 * file system); ext2/3/4 are readable, other known formats are named and reported as not readable.
 */
import { Disk, type ReadResult, type WriteResult } from 'file-disk';
import { getPartitions } from 'partitioninfo';
import { NfError } from '../errors';
import { Ext4, isExtSuperblock, type ReadAt } from './ext4';
import type { BackupManifest, DiskIndex, Repository } from './repository';

/** Chunks kept decoded per open disk (4 MiB each). */
const CACHED_CHUNKS = 6;

/** Random reads of a backed-up disk: its chunks fetched (checked against their ids) and cached. */
export class BackupDiskReader {
  private readonly cache = new Map<number, Promise<Uint8Array>>();
  constructor(
    private readonly repo: Repository,
    readonly index: DiskIndex,
  ) {}

  get size(): number {
    return this.index.sizeBytes;
  }

  private chunk(i: number): Promise<Uint8Array> {
    let p = this.cache.get(i);
    if (p) {
      // most recently used last
      this.cache.delete(i);
      this.cache.set(i, p);
      return p;
    }
    const id = this.index.chunks[i];
    const len = Math.min(this.index.chunkSize, this.index.sizeBytes - i * this.index.chunkSize);
    p = id ? this.repo.getChunk(id) : Promise.resolve(new Uint8Array(len));
    p.catch(() => this.cache.delete(i));
    this.cache.set(i, p);
    while (this.cache.size > CACHED_CHUNKS) this.cache.delete(this.cache.keys().next().value!);
    return p;
  }

  /** `length` bytes at `offset`; beyond the disk's end they read as zeros. */
  readonly read: ReadAt = async (offset, length) => {
    const out = new Uint8Array(length);
    const cs = this.index.chunkSize;
    let at = offset;
    const end = Math.min(offset + length, this.size);
    while (at < end) {
      const i = Math.floor(at / cs);
      const within = at - i * cs;
      const n = Math.min(end - at, cs - within);
      const c = await this.chunk(i);
      out.set(c.subarray(within, within + n), at - offset);
      at += n;
    }
    return out;
  };

  /** A window of the disk (a partition) as its own source. */
  slice(offset: number): ReadAt {
    return (o, l) => this.read(offset + o, l);
  }
}

/** file-disk's Disk over a backup, for the partition table reader. */
class ReaderDisk extends Disk {
  constructor(private readonly r: BackupDiskReader) {
    super(true);
  }
  protected async _getCapacity(): Promise<number> {
    return this.r.size;
  }
  protected async _read(
    buffer: Buffer,
    bufferOffset: number,
    length: number,
    fileOffset: number,
  ): Promise<ReadResult> {
    const data = await this.r.read(fileOffset, length);
    buffer.set(data, bufferOffset);
    return { bytesRead: length, buffer };
  }
  protected async _write(): Promise<WriteResult> {
    throw new Error('read-only');
  }
  protected async _flush(): Promise<void> {}
}

export interface FilesystemInfo {
  /** `disk0` (a file system on the whole disk) or `disk0p1` (partition 1 of disk0). */
  id: string;
  disk: string;
  partition?: number;
  offsetBytes: number;
  sizeBytes: number;
  /** ext2/ext3/ext4 are readable; other formats are named when recognised. */
  type: string;
  readable: boolean;
  label?: string;
  uuid?: string;
  /** The journal holds changes not written in place: the newest changes may be missing. */
  needsRecovery?: boolean;
  /** Why it cannot be browsed. */
  reason?: string;
}

/** Other formats by their magic bytes, to say what a partition is even when it cannot be browsed. */
async function otherType(read: ReadAt): Promise<string | undefined> {
  const head = await read(0, 4096);
  const s = (a: number, b: number) => Buffer.from(head.subarray(a, b)).toString('latin1');
  if (s(0, 4) === 'XFSB') return 'xfs';
  if (s(0, 6) === 'LUKS\xba\xbe') return 'crypto_LUKS';
  if (s(3, 11) === 'NTFS    ') return 'ntfs';
  if (s(0x52, 0x57) === 'FAT32' || s(0x36, 0x39) === 'FAT') return 'vfat';
  if (s(512 + 0, 512 + 8) === 'LABELONE') return 'LVM2_member';
  if (s(4086, 4096) === 'SWAPSPACE2') return 'swap';
  const btrfs = await read(0x10040, 8);
  if (Buffer.from(btrfs).toString('latin1') === '_BHRfS_M') return 'btrfs';
  return undefined;
}

async function probe(
  read: ReadAt,
  base: Omit<FilesystemInfo, 'type' | 'readable'>,
): Promise<FilesystemInfo | undefined> {
  if (isExtSuperblock(await read(1024, 1024))) {
    try {
      const fs = await Ext4.open(read);
      return {
        ...base,
        type: fs.type,
        readable: true,
        label: fs.label,
        uuid: fs.uuid,
        ...(fs.needsRecovery ? { needsRecovery: true } : {}),
      };
    } catch (err) {
      return { ...base, type: 'ext4', readable: false, reason: (err as Error).message };
    }
  }
  const other = await otherType(read);
  return other
    ? { ...base, type: other, readable: false, reason: `${other} cannot be browsed (ext2/3/4 can)` }
    : undefined;
}

/** The file systems of one backed-up disk. */
export async function diskFilesystems(r: BackupDiskReader): Promise<FilesystemInfo[]> {
  const disk = r.index.disk;
  const whole = await probe(r.read, { id: disk, disk, offsetBytes: 0, sizeBytes: r.size });
  if (whole) return [whole];
  let table: Awaited<ReturnType<typeof getPartitions>>;
  try {
    table = await getPartitions(new ReaderDisk(r), { includeExtended: false });
  } catch {
    return []; // no partition table and no file system: an empty or unformatted disk
  }
  const out: FilesystemInfo[] = [];
  for (const p of table.partitions) {
    if (p.size <= 0 || p.offset >= r.size) continue;
    const base = {
      id: `${disk}p${p.index}`,
      disk,
      partition: p.index,
      offsetBytes: p.offset,
      sizeBytes: p.size,
    };
    out.push(
      (await probe(r.slice(p.offset), base)) ?? {
        ...base,
        type: 'unknown',
        readable: false,
        reason: 'no file system recognised',
      },
    );
  }
  return out;
}

/** Every file system of a backup's disks. */
export async function backupFilesystems(repo: Repository, m: BackupManifest): Promise<FilesystemInfo[]> {
  const out: FilesystemInfo[] = [];
  for (const d of m.disks)
    out.push(...(await diskFilesystems(new BackupDiskReader(repo, await repo.index(m.vm.id, m.id, d.id)))));
  return out;
}

/** Opens one file system of a backup (by its id from backupFilesystems) for browsing. */
export async function openFilesystem(repo: Repository, m: BackupManifest, fsId: string): Promise<Ext4> {
  const match = /^(.+?)(?:p(\d+))?$/.exec(fsId);
  const disk = m.disks.find((d) => d.id === fsId) ?? m.disks.find((d) => d.id === match?.[1]);
  if (!disk) throw new NfError('not_found', `backup ${m.id} has no file system "${fsId}"`);
  const reader = new BackupDiskReader(repo, await repo.index(m.vm.id, m.id, disk.id));
  const info = (await diskFilesystems(reader)).find((f) => f.id === fsId);
  if (!info) throw new NfError('not_found', `backup ${m.id} has no file system "${fsId}"`);
  if (!info.readable) throw new NfError('not_implemented', `${fsId}: ${info.reason}`);
  return Ext4.open(reader.slice(info.offsetBytes));
}
