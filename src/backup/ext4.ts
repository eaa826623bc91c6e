/**
 * A read-only reader of ext2/ext3/ext4 file systems over random reads (a backed-up disk read from its
 * chunks), for file restore: list directories, stat and read files, read symbolic links. It never writes
 * and never follows a link. The journal is not replayed: a file system backed up without a freeze (no
 * guest agent) may miss its last metadata changes, and `needsRecovery` says so.
 *
 * Format: the kernel's Documentation/filesystems/ext4 (superblock at byte 1024, group descriptors after
 * it, inodes in per-group tables, file data by extent trees or, in ext2/3, by block maps). htree
 * directories are read linearly (their index blocks look like empty entries, by design), so every
 * directory is read the same way.
 */
import { NfError } from '../errors';

/** Reads `length` bytes at `offset` (past the end of the source: zeros). */
export type ReadAt = (offset: number, length: number) => Promise<Uint8Array>;

const MAGIC = 0xef53;
const EXTENT_MAGIC = 0xf30a;
const INCOMPAT_FILETYPE = 0x2;
const INCOMPAT_RECOVER = 0x4;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_EXTENTS = 0x40;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_FLEX_BG = 0x200;
const COMPAT_HAS_JOURNAL = 0x4;
const FL_EXTENTS = 0x80000;
const FL_INLINE_DATA = 0x10000000;
const FL_ENCRYPT = 0x800;
/** Directory entries and file reads are bounded: a listing stops after this many entries. */
export const MAX_ENTRIES = 10_000;
const READ_PIECE = 1024 * 1024;

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface FsEntry {
  name: string;
  type: EntryType;
  size: number;
  /** Permission bits and the type, as in stat(2)'s st_mode. */
  mode: number;
  uid: number;
  gid: number;
  mtime: string;
  /** A symbolic link's target, as stored (never followed). */
  target?: string;
}

interface Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  flags: number;
  block: Uint8Array;
}

function typeOf(mode: number): EntryType {
  switch (mode & 0xf000) {
    case 0x8000:
      return 'file';
    case 0x4000:
      return 'dir';
    case 0xa000:
      return 'symlink';
    default:
      return 'other';
  }
}

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Whether the bytes at 1024 of a partition are an ext2/3/4 superblock. */
export function isExtSuperblock(sb: Uint8Array): boolean {
  return sb.byteLength >= 0x3a && dv(sb).getUint16(0x38, true) === MAGIC;
}

export class Ext4 {
  readonly blockSize: number;
  readonly label: string;
  readonly uuid: string;
  readonly type: 'ext2' | 'ext3' | 'ext4';
  readonly sizeBytes: number;
  /** The journal holds changes not yet written in place (the file system was not cleanly frozen). */
  readonly needsRecovery: boolean;
  private readonly inodesPerGroup: number;
  private readonly inodeSize: number;
  private readonly descSize: number;
  private readonly descStart: number;
  private readonly incompat: number;
  private readonly tables = new Map<number, number>();

  private constructor(
    private readonly read: ReadAt,
    sb: Uint8Array,
  ) {
    const v = dv(sb);
    const logBlock = v.getUint32(0x18, true);
    if (logBlock > 6) throw new NfError('validation_failed', 'not an ext file system (block size)');
    this.blockSize = 1024 << logBlock;
    const rev = v.getUint32(0x4c, true);
    this.inodeSize = rev >= 1 ? v.getUint16(0x58, true) : 128;
    this.inodesPerGroup = v.getUint32(0x28, true);
    this.incompat = v.getUint32(0x60, true);
    const compat = v.getUint32(0x5c, true);
    this.descSize = this.incompat & INCOMPAT_64BIT ? Math.max(32, v.getUint16(0xfe, true)) : 32;
    this.descStart = (v.getUint32(0x14, true) + 1) * this.blockSize;
    const blocks =
      v.getUint32(0x4, true) + (this.incompat & INCOMPAT_64BIT ? v.getUint32(0x150, true) * 2 ** 32 : 0);
    this.sizeBytes = blocks * this.blockSize;
    this.label = new TextDecoder().decode(sb.subarray(0x78, 0x88)).replace(/\0.*$/s, '');
    const u = Buffer.from(sb.subarray(0x68, 0x78)).toString('hex');
    this.uuid = `${u.slice(0, 8)}-${u.slice(8, 12)}-${u.slice(12, 16)}-${u.slice(16, 20)}-${u.slice(20)}`;
    this.type =
      this.incompat & (INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG)
        ? 'ext4'
        : compat & COMPAT_HAS_JOURNAL
          ? 'ext3'
          : 'ext2';
    this.needsRecovery = (this.incompat & INCOMPAT_RECOVER) !== 0;
    if (this.inodeSize < 128 || this.inodesPerGroup === 0)
      throw new NfError('validation_failed', 'not an ext file system (inode geometry)');
    if (this.incompat & INCOMPAT_META_BG)
      throw new NfError('not_implemented', 'ext file systems with meta_bg are not readable here yet');
  }

  /** Opens the file system whose first byte is at `read(0)`. */
  static async open(read: ReadAt): Promise<Ext4> {
    const sb = await read(1024, 1024);
    if (!isExtSuperblock(sb)) throw new NfError('validation_failed', 'not an ext2/3/4 file system');
    return new Ext4(read, sb);
  }

  private async inodeTable(group: number): Promise<number> {
    let t = this.tables.get(group);
    if (t === undefined) {
      const d = dv(await this.read(this.descStart + group * this.descSize, this.descSize));
      t = d.getUint32(0x8, true) + (this.descSize >= 64 ? d.getUint32(0x28, true) * 2 ** 32 : 0);
      this.tables.set(group, t);
    }
    return t;
  }

  private async inode(ino: number): Promise<Inode> {
    const group = Math.floor((ino - 1) / this.inodesPerGroup);
    const index = (ino - 1) % this.inodesPerGroup;
    const table = await this.inodeTable(group);
    const raw = await this.read(table * this.blockSize + index * this.inodeSize, this.inodeSize);
    const v = dv(raw);
    const extra = this.inodeSize > 128 ? v.getUint16(0x80, true) : 0;
    // the extra epoch bits of mtime (2 bits above the signed 32-bit seconds) when the inode has them
    const epoch = extra >= 0x0c ? v.getUint32(0x88, true) & 3 : 0;
    return {
      ino,
      mode: v.getUint16(0x0, true),
      uid: v.getUint16(0x2, true) | (v.getUint16(0x78, true) << 16),
      gid: v.getUint16(0x18, true) | (v.getUint16(0x7a, true) << 16),
      size: v.getUint32(0x4, true) + v.getUint32(0x6c, true) * 2 ** 32,
      mtime: v.getInt32(0x10, true) + epoch * 2 ** 32,
      flags: v.getUint32(0x20, true),
      block: raw.slice(0x28, 0x28 + 60),
    };
  }

  /**
   * The file's data as runs of (logical block, physical block or null for zeros, length in blocks),
   * ordered by logical block, from its extent tree or its ext2/3 block map.
   */
  private async runs(node: Inode): Promise<{ logical: number; physical: number | null; count: number }[]> {
    const out: { logical: number; physical: number | null; count: number }[] = [];
    if (node.flags & FL_EXTENTS) {
      const walk = async (b: Uint8Array, depth: number): Promise<void> => {
        const v = dv(b);
        if (v.getUint16(0, true) !== EXTENT_MAGIC)
          throw new NfError('data_corrupted', `inode ${node.ino}: damaged extent tree`);
        const entries = v.getUint16(2, true);
        const d = v.getUint16(6, true);
        if (d > 5 || depth > 5)
          throw new NfError('data_corrupted', `inode ${node.ino}: extent tree too deep`);
        for (let i = 0; i < entries; i++) {
          const e = 12 + i * 12;
          if (e + 12 > b.byteLength) break;
          if (d === 0) {
            let len = v.getUint16(e + 4, true);
            const unwritten = len > 32768;
            if (unwritten) len -= 32768;
            const start = v.getUint16(e + 6, true) * 2 ** 32 + v.getUint32(e + 8, true);
            out.push({ logical: v.getUint32(e, true), physical: unwritten ? null : start, count: len });
          } else {
            const leaf = v.getUint32(e + 4, true) + v.getUint16(e + 8, true) * 2 ** 32;
            await walk(await this.read(leaf * this.blockSize, this.blockSize), depth + 1);
          }
        }
      };
      await walk(node.block, 0);
      return out.sort((a, b) => a.logical - b.logical);
    }
    // ext2/3 block map: 12 direct blocks, then single, double and triple indirect blocks
    const blocks = Math.ceil(node.size / this.blockSize);
    const per = this.blockSize / 4;
    const v = dv(node.block);
    let logical = 0;
    const add = (physical: number) => {
      const last = out[out.length - 1];
      const p = physical === 0 ? null : physical;
      if (last && last.logical + last.count === logical) {
        if (p === null && last.physical === null) {
          last.count++;
          logical++;
          return;
        }
        if (p !== null && last.physical !== null && last.physical + last.count === p) {
          last.count++;
          logical++;
          return;
        }
      }
      out.push({ logical, physical: p, count: 1 });
      logical++;
    };
    const indirect = async (block: number, level: number): Promise<void> => {
      const span = per ** level;
      if (block === 0) {
        // a hole of a whole indirect tree
        const n = Math.min(span, blocks - logical);
        out.push({ logical, physical: null, count: n });
        logical += n;
        return;
      }
      const b = dv(await this.read(block * this.blockSize, this.blockSize));
      for (let i = 0; i < per && logical < blocks; i++) {
        const p = b.getUint32(i * 4, true);
        if (level === 1) add(p);
        else await indirect(p, level - 1);
      }
    };
    for (let i = 0; i < 12 && logical < blocks; i++) add(v.getUint32(i * 4, true));
    for (let level = 1; level <= 3 && logical < blocks; level++)
      await indirect(v.getUint32((11 + level) * 4, true), level);
    return out;
  }

  /** A file's bytes, in pieces of at most 1 MiB; holes and unwritten extents read as zeros. */
  private async *data(node: Inode): AsyncGenerator<Uint8Array> {
    if (node.flags & FL_INLINE_DATA) {
      if (node.size > 60)
        throw new NfError(
          'not_implemented',
          `inode ${node.ino}: inline data beyond 60 bytes is not readable here yet`,
        );
      yield node.block.slice(0, node.size);
      return;
    }
    const bs = this.blockSize;
    let pos = 0; // bytes of the file produced so far
    const zeros = async function* (n: number) {
      for (let left = n; left > 0; left -= READ_PIECE) yield new Uint8Array(Math.min(READ_PIECE, left));
    };
    for (const r of await this.runs(node)) {
      const start = r.logical * bs;
      if (start >= node.size) break;
      if (start > pos) {
        yield* zeros(start - pos);
        pos = start;
      }
      const end = Math.min(node.size, (r.logical + r.count) * bs);
      while (pos < end) {
        const n = Math.min(READ_PIECE, end - pos);
        if (r.physical === null) yield new Uint8Array(n);
        else yield await this.read(r.physical * bs + (pos - start), n);
        pos += n;
      }
    }
    if (pos < node.size) yield* zeros(node.size - pos);
  }

  private async readAll(node: Inode, limit: number): Promise<Uint8Array> {
    if (node.size > limit)
      throw new NfError(
        'insufficient_resources',
        `inode ${node.ino} is larger (${node.size} bytes) than ${limit}`,
      );
    const out = new Uint8Array(node.size);
    let at = 0;
    for await (const piece of this.data(node)) {
      out.set(piece, at);
      at += piece.byteLength;
    }
    return out;
  }

  /** A directory's entries (name, inode number), "." and ".." left out. */
  private async dirents(node: Inode): Promise<{ name: string; ino: number }[]> {
    if (node.flags & FL_INLINE_DATA)
      throw new NfError(
        'not_implemented',
        `directory inode ${node.ino} keeps its entries inline: not readable here yet`,
      );
    const raw = await this.readAll(node, 256 * 1024 * 1024);
    const v = dv(raw);
    const out: { name: string; ino: number }[] = [];
    const dec = new TextDecoder();
    const wide = !(this.incompat & INCOMPAT_FILETYPE);
    for (let blk = 0; blk < raw.byteLength; blk += this.blockSize) {
      let at = blk;
      const end = Math.min(raw.byteLength, blk + this.blockSize);
      while (at + 8 <= end) {
        const ino = v.getUint32(at, true);
        const recLen = v.getUint16(at + 4, true);
        const nameLen = wide ? v.getUint16(at + 6, true) : v.getUint8(at + 6);
        if (recLen < 8 || at + recLen > end) break; // damaged block: the rest of it is skipped
        if (ino !== 0 && nameLen > 0 && 8 + nameLen <= recLen) {
          const name = dec.decode(raw.subarray(at + 8, at + 8 + nameLen));
          if (name !== '.' && name !== '..') out.push({ name, ino });
        }
        at += recLen;
      }
    }
    return out;
  }

  private async entry(name: string, node: Inode): Promise<FsEntry> {
    const type = typeOf(node.mode);
    return {
      name,
      type,
      size: node.size,
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      mtime: new Date(node.mtime * 1000).toISOString(),
      ...(type === 'symlink' ? { target: await this.linkTarget(node) } : {}),
    };
  }

  private async linkTarget(node: Inode): Promise<string> {
    // a "fast" link keeps its target in the inode's block array
    const fast = !(node.flags & (FL_EXTENTS | FL_INLINE_DATA)) && node.size < 60;
    const bytes = fast ? node.block.subarray(0, node.size) : await this.readAll(node, 4096);
    return new TextDecoder().decode(bytes);
  }

  /** The inode at an absolute path; symbolic links are not followed. */
  private async resolve(path: string): Promise<{ name: string; node: Inode }> {
    const parts = normalize(path);
    let node = await this.inode(2);
    let name = '/';
    for (const [i, part] of parts.entries()) {
      if (typeOf(node.mode) !== 'dir')
        throw new NfError(
          'validation_failed',
          `/${parts.slice(0, i).join('/')} is ${typeOf(node.mode) === 'symlink' ? 'a symbolic link (links are not followed)' : 'not a directory'}`,
        );
      if (node.flags & FL_ENCRYPT)
        throw new NfError('forbidden', `/${parts.slice(0, i).join('/')} is encrypted by the guest`);
      const hit = (await this.dirents(node)).find((e) => e.name === part);
      if (!hit)
        throw new NfError('not_found', `/${parts.slice(0, i + 1).join('/')} does not exist in the backup`);
      node = await this.inode(hit.ino);
      name = part;
    }
    return { name, node };
  }

  async stat(path: string): Promise<FsEntry> {
    const { name, node } = await this.resolve(path);
    return this.entry(name, node);
  }

  /** A directory's entries sorted by name (directories first), at most MAX_ENTRIES. */
  async list(path: string): Promise<{ entries: FsEntry[]; truncated: boolean }> {
    const { node } = await this.resolve(path);
    if (typeOf(node.mode) !== 'dir') throw new NfError('validation_failed', `${path} is not a directory`);
    if (node.flags & FL_ENCRYPT) throw new NfError('forbidden', `${path} is encrypted by the guest`);
    const all = await this.dirents(node);
    const entries: FsEntry[] = [];
    for (const e of all.slice(0, MAX_ENTRIES))
      entries.push(await this.entry(e.name, await this.inode(e.ino)));
    entries.sort((a, b) => Number(b.type === 'dir') - Number(a.type === 'dir') || (a.name < b.name ? -1 : 1));
    return { entries, truncated: all.length > MAX_ENTRIES };
  }

  /** A regular file's content, streamed. */
  async open(path: string): Promise<{ entry: FsEntry; chunks: AsyncGenerator<Uint8Array> }> {
    const { name, node } = await this.resolve(path);
    const entry = await this.entry(name, node);
    if (entry.type !== 'file')
      throw new NfError(
        'validation_failed',
        `${path} is ${entry.type === 'dir' ? 'a directory' : `a ${entry.type}, not a file`}`,
      );
    return { entry, chunks: this.data(node) };
  }
}

/** An absolute path's components; ".." and "." are refused (a path names one place). */
export function normalize(path: string): string[] {
  if (!path.startsWith('/'))
    throw new NfError('validation_failed', `path must be absolute (start with /): ${path}`);
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '.' || p === '..' || p.includes('\0')))
    throw new NfError('validation_failed', `path must not contain "." or ".." components: ${path}`);
  return parts;
}
