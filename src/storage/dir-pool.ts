import { randomBytes } from 'node:crypto';
import { constants, mkdirSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import { copyFile, link, lstat, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { NfError } from '../errors';
import {
  type BlockdevNode,
  type CloneSource,
  growTo,
  notAsAsked,
  type PoolUsage,
  type StorageCapabilities,
  type StorageDriver,
  type VolumeInfo,
} from './driver';
import { imageInfo, qemuImg } from './qemu-img';

export interface PoolInfo {
  name: string;
  type: 'dir';
  path: string;
  /** What this driver can do, so callers ask instead of assuming. */
  capabilities: StorageCapabilities;
  totalBytes: number;
  freeBytes: number;
}

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;

export const DIR_CAPABILITIES: StorageCapabilities = Object.freeze({
  shared: false,
  thin: true,
  snapshots: true,
  linkedClones: true,
  liveResize: true,
});

/**
 * The `dir` storage driver: a directory of thin qcow2 volumes (VM disks) and images (ISOs, disk
 * templates) on one host. Names are checked so a path can never leave the pool's directory.
 */
export class DirPool implements StorageDriver {
  readonly type = 'dir';
  readonly capabilities = DIR_CAPABILITIES;
  readonly disksDir: string;
  readonly imagesDir: string;

  constructor(
    readonly name: string,
    readonly path: string,
  ) {
    this.disksDir = join(path, 'disks');
    this.imagesDir = join(path, 'images');
  }

  init(): void {
    mkdirSync(this.disksDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.imagesDir, { recursive: true, mode: 0o700 });
    // Transfers cut short by a daemon crash: never registered, so nothing refers to them.
    for (const f of readdirSync(this.imagesDir)) {
      if (/^incoming-.*\.part$/.test(f)) rmSync(join(this.imagesDir, f), { force: true });
    }
    // Volumes whose creation a crash cut short (see createDisk): never under a volume's name.
    for (const f of readdirSync(this.disksDir)) {
      if (/^\..+\.part$/.test(f)) rmSync(join(this.disksDir, f), { force: true });
    }
  }

  info(): PoolInfo {
    const fs = statfsSync(this.path);
    return {
      name: this.name,
      type: 'dir',
      path: this.path,
      capabilities: DIR_CAPABILITIES,
      totalBytes: fs.blocks * fs.bsize,
      freeBytes: fs.bavail * fs.bsize,
    };
  }

  async capacity(): Promise<{ totalBytes: number; freeBytes: number }> {
    const { totalBytes, freeBytes } = this.info();
    return { totalBytes, freeBytes };
  }

  async usage(): Promise<PoolUsage> {
    const { totalBytes, freeBytes } = this.info();
    const volumes = await this.listVolumes();
    return {
      totalBytes,
      freeBytes,
      virtualBytes: volumes.reduce((n, v) => n + v.virtualBytes, 0),
      allocatedBytes: volumes.reduce((n, v) => n + v.allocatedBytes, 0),
      volumes: volumes.length,
    };
  }

  createVolume(volume: string, sizeBytes: number | undefined, clone?: CloneSource): Promise<void> {
    if (clone?.volume && clone.snapshot) return this.copyAt(volume, sizeBytes, clone.image, clone.snapshot);
    const backing = clone
      ? {
          path: clone.volume ? this.diskPath(clone.image) : this.imagePath(clone.image),
          format: clone.format,
        }
      : undefined;
    return this.createDisk(volume, sizeBytes, backing).then(() => {});
  }

  deleteVolume(volume: string): Promise<void> {
    return this.deleteDisk(volume);
  }

  /**
   * A full copy of `source` as it was at `snapshot` (qemu-img convert of the internal snapshot, read
   * with force-share: a running QEMU never changes the clusters of a snapshot, it copies on write).
   */
  private async copyAt(volume: string, sizeBytes: number | undefined, source: string, snapshot: string) {
    const path = this.diskPath(volume);
    if (await exists(path)) {
      // made by an earlier call: accepted when it is an independent volume of the size asked
      const have = await this.volumeInfo(volume);
      if (!have || have.parent || (sizeBytes !== undefined && have.virtualBytes !== sizeBytes))
        throw notAsAsked(this.name, volume, `not a copy of ${source} at ${snapshot}`);
      return;
    }
    const src = await this.volumeInfo(source);
    if (!src?.snapshots.includes(snapshot))
      throw new NfError('not_found', `volume ${source} has no snapshot "${snapshot}" in pool ${this.name}`);
    const tmp = join(this.disksDir, `.${volume}.${randomBytes(6).toString('hex')}.part`);
    try {
      await qemuImg(
        [
          'convert',
          '-U',
          '-f',
          'qcow2',
          '-O',
          'qcow2',
          '-o',
          'lazy_refcounts=on',
          '-l',
          `snapshot.name=${snapshot.replaceAll(',', ',,')}`,
          this.diskPath(source),
          tmp,
        ],
        0,
      );
      // (the snapshot's size: a disk grown since is smaller at its snapshot)
      if (sizeBytes !== undefined && sizeBytes > (await imageInfo(tmp, 'qcow2')).virtualSize)
        await qemuImg(['resize', '-q', '-f', 'qcow2', tmp, String(sizeBytes)]);
      await linkNew(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async flattenVolume(volume: string): Promise<void> {
    const path = this.diskPath(volume);
    const info = await imageInfo(path, 'qcow2').catch(() => undefined);
    if (!info) throw new NfError('not_found', `volume ${volume} does not exist in pool ${this.name}`);
    if (!info.backingFilename) return;
    // A safe rebase onto nothing copies in every cluster the backing chain holds.
    await qemuImg(['rebase', '-q', '-f', 'qcow2', '-b', '', path], 0);
  }

  async resizeVolume(volume: string, sizeBytes: number): Promise<void> {
    const size = growTo(this.name, volume, (await this.volumeInfo(volume))?.virtualBytes, sizeBytes);
    if (size !== undefined)
      await qemuImg(['resize', '-q', '-f', 'qcow2', this.diskPath(volume), String(size)]);
  }

  async volumeInfo(volume: string): Promise<VolumeInfo | undefined> {
    const path = this.diskPath(volume);
    if (!(await exists(path))) return undefined;
    const info = await imageInfo(path, 'qcow2');
    const v: VolumeInfo = {
      name: volume,
      virtualBytes: info.virtualSize,
      allocatedBytes: info.actualSize,
      snapshots: info.snapshots.map((s) => s.name),
    };
    if (info.backingFilename) v.parent = info.backingFilename.split('/').at(-1)!;
    return v;
  }

  async listVolumes(): Promise<VolumeInfo[]> {
    const names = (await readdir(this.disksDir)).filter((f) => VOLUME_NAME.test(f)).sort();
    const all = await Promise.all(names.map((n) => this.volumeInfo(n).catch(() => undefined)));
    return all.filter((v): v is VolumeInfo => v !== undefined);
  }

  blockdev(volume: string, nodeName: string, opts: { readOnly?: boolean } = {}): BlockdevNode[] {
    const readOnly = opts.readOnly ?? false;
    return [
      {
        driver: 'file',
        filename: this.diskPath(volume),
        'node-name': `${nodeName}-file`,
        'read-only': readOnly,
        'auto-read-only': true,
        discard: 'unmap',
      },
      {
        driver: 'qcow2',
        file: `${nodeName}-file`,
        'node-name': nodeName,
        'read-only': readOnly,
        discard: 'unmap',
      },
    ];
  }

  diskPath(volume: string): string {
    return this.safeJoin(this.disksDir, volume);
  }

  imagePath(file: string): string {
    return this.safeJoin(this.imagesDir, file);
  }

  /**
   * Creates a thin qcow2 volume, optionally as a copy-on-write clone of a backing image.
   *
   * Idempotent: when the volume already exists and is what this call would create (a qcow2 of the same
   * virtual size, with the same backing file and backing format or none, and no external data file),
   * the call succeeds and leaves it as it is, so a retry after a lost reply or a failed cleanup
   * converges. Any other file under that name (another size or format, another backing file, not an
   * image of ours) is refused with `already_exists` and never touched.
   *
   * The volume is made under a temporary name and linked into place only if the name is still free:
   * a volume's name never shows a half-made file, and an existing file is never overwritten.
   */
  async createDisk(
    volume: string,
    sizeBytes: number | undefined,
    backing?: { path: string; format: 'qcow2' | 'raw' },
  ): Promise<string> {
    const path = this.diskPath(volume);
    if (await exists(path)) {
      await this.checkSameDisk(volume, path, sizeBytes, backing);
      return path;
    }
    const tmp = join(this.disksDir, `.${volume}.${randomBytes(6).toString('hex')}.part`);
    const args = ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on'];
    if (backing) args.push('-b', backing.path, '-F', backing.format);
    args.push(tmp);
    if (sizeBytes !== undefined) args.push(String(sizeBytes));
    try {
      await qemuImg(args);
      await linkNew(tmp, path);
    } catch (err) {
      if (NfError.isCode(err, 'already_exists')) {
        // Another call made it meanwhile: the same rules as for a volume found at the start.
        await this.checkSameDisk(volume, path, sizeBytes, backing);
        return path;
      }
      throw err;
    } finally {
      await rm(tmp, { force: true });
    }
    return path;
  }

  /** Throws `already_exists` unless the file at `path` is what createDisk would make of these arguments. */
  private async checkSameDisk(
    volume: string,
    path: string,
    sizeBytes: number | undefined,
    backing: { path: string; format: 'qcow2' | 'raw' } | undefined,
  ): Promise<void> {
    const refuse = (why: string) => notAsAsked(this.name, volume, why);
    const st = await lstat(path);
    if (!st.isFile()) throw refuse('not a regular file');
    let info: Awaited<ReturnType<typeof imageInfo>>;
    try {
      info = await imageInfo(path); // probed, not forced: a raw file must show as raw
    } catch (err) {
      throw refuse(`unreadable: ${(err as Error).message}`);
    }
    if (info.format !== 'qcow2') throw refuse(`format ${info.format}, not qcow2`);
    if (info.dataFile) throw refuse('it has an external data file');
    if (sizeBytes !== undefined) {
      // qemu-img rounds a size up to whole 512-byte sectors.
      const want = Math.ceil(sizeBytes / 512) * 512;
      if (info.virtualSize !== want) throw refuse(`virtual size ${info.virtualSize} bytes, not ${want}`);
    } else if (!backing) {
      throw refuse('no size to compare with');
    }
    const haveBacking = info.backingFilename ?? '';
    const wantBacking = backing?.path ?? '';
    if (haveBacking !== wantBacking)
      throw refuse(
        haveBacking
          ? `backing file ${haveBacking}, not ${wantBacking || 'none'}`
          : `no backing file, not ${wantBacking}`,
      );
    if (backing && info.backingFormat !== backing.format)
      throw refuse(`backing format ${info.backingFormat ?? 'unknown'}, not ${backing.format}`);
  }

  async deleteDisk(volume: string): Promise<void> {
    await rm(this.diskPath(volume), { force: true });
  }

  async snapshotCreate(volume: string, name: string): Promise<void> {
    await qemuImg(['snapshot', '-q', '-c', name, this.diskPath(volume)]);
  }

  async snapshotRollback(volume: string, name: string): Promise<void> {
    // QEMU refuses to apply a snapshot to an image with dirty bitmaps, and a rollback changes data
    // behind a backup bitmap's back anyway: they go (the next backup of the disk is a full one).
    const path = this.diskPath(volume);
    for (const bitmap of (await imageInfo(path, 'qcow2')).bitmaps)
      await qemuImg(['bitmap', '--remove', '-f', 'qcow2', path, bitmap.name]);
    await qemuImg(['snapshot', '-q', '-a', name, path]);
  }

  async hasSnapshot(volume: string, name: string): Promise<boolean> {
    const info = await imageInfo(this.diskPath(volume), 'qcow2');
    return info.snapshots.some((s) => s.name === name);
  }

  async snapshotDelete(volume: string, name: string): Promise<void> {
    if (!(await this.hasSnapshot(volume, name))) return; // deleting what is gone is done
    await qemuImg(['snapshot', '-q', '-d', name, this.diskPath(volume)]);
  }

  private safeJoin(dir: string, name: string): string {
    if (!VOLUME_NAME.test(name))
      throw new NfError('validation_failed', `"${name}" is not a valid volume name`);
    const full = resolve(dir, name);
    if (!full.startsWith(`${dir}/`))
      throw new NfError('validation_failed', `"${name}" escapes the pool directory`);
    return full;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Puts `tmp` at `path` unless something is there already (`already_exists`). A hard link does that
 * atomically; where the file system has none, an exclusive copy still never overwrites.
 */
async function linkNew(tmp: string, path: string): Promise<void> {
  try {
    await link(tmp, path);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new NfError('already_exists', `${path} exists`);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
  }
  try {
    await copyFile(tmp, path, constants.COPYFILE_EXCL);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new NfError('already_exists', `${path} exists`);
    // COPYFILE_EXCL made the file, so a copy cut short (no space left) is ours: it goes, or a retry
    // could take its intact qcow2 header for the volume asked for.
    await rm(path, { force: true }).catch(() => {});
    throw err;
  }
}
