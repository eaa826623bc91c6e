import { existsSync, mkdirSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { NfError } from '../errors';
import { imageInfo, qemuImg } from './qemu-img';

export interface PoolInfo {
  name: string;
  type: 'dir';
  path: string;
  /** What this driver can do, so callers ask instead of assuming. */
  capabilities: { thin: boolean; snapshots: boolean; shared: boolean };
  totalBytes: number;
  freeBytes: number;
}

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;

/**
 * A directory of thin qcow2 volumes (VM disks) and images (ISOs, disk templates). Names are checked so a
 * path can never leave the pool's directory.
 */
export class DirPool {
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
  }

  info(): PoolInfo {
    const fs = statfsSync(this.path);
    return {
      name: this.name,
      type: 'dir',
      path: this.path,
      capabilities: { thin: true, snapshots: true, shared: false },
      totalBytes: fs.blocks * fs.bsize,
      freeBytes: fs.bavail * fs.bsize,
    };
  }

  diskPath(volume: string): string {
    return this.safeJoin(this.disksDir, volume);
  }

  imagePath(file: string): string {
    return this.safeJoin(this.imagesDir, file);
  }

  /** Creates a thin qcow2 volume, optionally as a copy-on-write clone of a backing image. */
  async createDisk(
    volume: string,
    sizeBytes: number | undefined,
    backing?: { path: string; format: 'qcow2' | 'raw' },
  ): Promise<string> {
    const path = this.diskPath(volume);
    if (existsSync(path))
      throw new NfError('already_exists', `volume ${volume} already exists in pool ${this.name}`);
    const args = ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on'];
    if (backing) args.push('-b', backing.path, '-F', backing.format);
    args.push(path);
    if (sizeBytes !== undefined) args.push(String(sizeBytes));
    try {
      await qemuImg(args);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    return path;
  }

  async deleteDisk(volume: string): Promise<void> {
    await rm(this.diskPath(volume), { force: true });
  }

  async snapshotCreate(volume: string, name: string): Promise<void> {
    await qemuImg(['snapshot', '-q', '-c', name, this.diskPath(volume)]);
  }

  async snapshotApply(volume: string, name: string): Promise<void> {
    await qemuImg(['snapshot', '-q', '-a', name, this.diskPath(volume)]);
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
