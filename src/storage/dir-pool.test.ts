import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { rejection } from '../../test/harness/errors';
import type { NfError } from '../errors';
import { DirPool } from './dir-pool';
import { imageInfo, qemuImg } from './qemu-img';

const MiB = 1024 ** 2;
const VOL = 'vm-0b1f6a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b-disk0.qcow2';

let dir: string;
let pool: DirPool;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nf-dir-pool-test-'));
  pool = new DirPool('local', dir);
  pool.init();
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** An image in the pool's images dir, to clone volumes from. */
async function image(file: string, size = 4 * MiB, format: 'qcow2' | 'raw' = 'qcow2'): Promise<string> {
  const path = pool.imagePath(file);
  await qemuImg(['create', '-q', '-f', format, path, String(size)]);
  return path;
}

/** The disks dir holds exactly these names (no temporary files left). */
function disks(): string[] {
  return readdirSync(pool.disksDir).sort();
}

describe('DirPool.createDisk', () => {
  test('creates a thin qcow2 volume of the size asked for, and nothing else', async () => {
    const path = await pool.createDisk(VOL, 8 * MiB);
    expect(path).toBe(join(dir, 'disks', VOL));
    const info = await imageInfo(path);
    expect(info.format).toBe('qcow2');
    expect(info.virtualSize).toBe(8 * MiB);
    expect(info.backingFilename).toBeUndefined();
    expect(disks()).toStrictEqual([VOL]);
  });

  test('creating the same volume again succeeds and leaves the existing one untouched', async () => {
    const path = await pool.createDisk(VOL, 8 * MiB);
    // A snapshot changes the file (as a guest's writes would): it must survive the repeated call.
    await pool.snapshotCreate(VOL, 'before-retry');
    const before = readFileSync(path);
    const mtime = statSync(path).mtimeMs;
    await Bun.sleep(20);
    expect(await pool.createDisk(VOL, 8 * MiB)).toBe(path);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(statSync(path).mtimeMs).toBe(mtime);
    expect(await pool.hasSnapshot(VOL, 'before-retry')).toBe(true);
    expect(disks()).toStrictEqual([VOL]);
  });

  test('the same clone of a backing image is accepted again', async () => {
    const base = await image('debian.qcow2');
    await pool.createDisk(VOL, 4 * MiB, { path: base, format: 'qcow2' });
    await pool.createDisk(VOL, 4 * MiB, { path: base, format: 'qcow2' });
    const info = await imageInfo(pool.diskPath(VOL));
    expect(info.backingFilename).toBe(base);
    expect(info.backingFormat).toBe('qcow2');
    expect(disks()).toStrictEqual([VOL]);
  });

  test('a size that is not whole sectors matches what qemu-img made of it', async () => {
    await pool.createDisk(VOL, 1000);
    expect((await imageInfo(pool.diskPath(VOL))).virtualSize).toBe(1024);
    await pool.createDisk(VOL, 1000);
  });

  test('an existing volume of another size is refused and left as it is', async () => {
    const path = await pool.createDisk(VOL, 8 * MiB);
    const before = readFileSync(path);
    const err = await rejection(pool.createDisk(VOL, 16 * MiB));
    expect(err.code).toBe('already_exists');
    expect(err.message).toBe(
      `volume ${VOL} already exists in pool local and is not the one asked for (virtual size ${8 * MiB} bytes, not ${16 * MiB}); it was left as it is`,
    );
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  test('a raw file under the volume name is refused, not overwritten', async () => {
    const path = pool.diskPath(VOL);
    await qemuImg(['create', '-q', '-f', 'raw', path, String(8 * MiB)]);
    const err = await rejection(pool.createDisk(VOL, 8 * MiB));
    expect(err.code).toBe('already_exists');
    expect(err.message).toContain('format raw, not qcow2');
    expect((await imageInfo(path)).format).toBe('raw');
  });

  test('a file that is no image at all is refused and kept byte for byte', async () => {
    const path = pool.diskPath(VOL);
    writeFileSync(path, 'the only copy of something\n');
    const err = await rejection(pool.createDisk(VOL, 512));
    expect(err.code).toBe('already_exists');
    expect(readFileSync(path, 'utf8')).toBe('the only copy of something\n');
  });

  test('a volume with another backing file, or none, or another backing format, is refused', async () => {
    const a = await image('a.qcow2');
    const b = await image('b.qcow2');
    await pool.createDisk(VOL, 4 * MiB, { path: a, format: 'qcow2' });
    expect((await rejection(pool.createDisk(VOL, 4 * MiB, { path: b, format: 'qcow2' }))).message).toContain(
      `backing file ${a}, not ${b}`,
    );
    expect((await rejection(pool.createDisk(VOL, 4 * MiB))).message).toContain(`backing file ${a}, not none`);

    const other = 'vm-0b1f6a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b-disk1.qcow2';
    await pool.createDisk(other, 4 * MiB);
    expect(
      (await rejection(pool.createDisk(other, 4 * MiB, { path: a, format: 'qcow2' }))).message,
    ).toContain(`no backing file, not ${a}`);

    const raw = await image('c.raw', 4 * MiB, 'raw');
    const third = 'vm-0b1f6a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b-disk2.qcow2';
    await pool.createDisk(third, 4 * MiB, { path: raw, format: 'raw' });
    await pool.createDisk(third, 4 * MiB, { path: raw, format: 'raw' });
    expect(
      (await rejection(pool.createDisk(third, 4 * MiB, { path: raw, format: 'qcow2' }))).message,
    ).toContain('backing format raw, not qcow2');
  });

  test('a qcow2 with an external data file (a way to any host file) is refused', async () => {
    const path = pool.diskPath(VOL);
    const data = join(dir, 'host-file.raw');
    await qemuImg(['create', '-q', '-f', 'qcow2', '-o', `data_file=${data}`, path, String(4 * MiB)]);
    const err = await rejection(pool.createDisk(VOL, 4 * MiB));
    expect(err.message).toContain('external data file');
  });

  test('a symlink under the volume name is refused, and its target kept', async () => {
    const target = join(dir, 'elsewhere.qcow2');
    await qemuImg(['create', '-q', '-f', 'qcow2', target, String(4 * MiB)]);
    symlinkSync(target, pool.diskPath(VOL));
    const err = await rejection(pool.createDisk(VOL, 4 * MiB));
    expect(err.message).toContain('not a regular file');
    expect(existsSync(target)).toBe(true);
  });

  test('concurrent creates of one volume: both succeed, one file, no temporary left', async () => {
    await Promise.all([
      pool.createDisk(VOL, 8 * MiB),
      pool.createDisk(VOL, 8 * MiB),
      pool.createDisk(VOL, 8 * MiB),
    ]);
    expect(disks()).toStrictEqual([VOL]);
    expect((await imageInfo(pool.diskPath(VOL))).virtualSize).toBe(8 * MiB);
  });

  test('concurrent creates of different sizes: one wins, the others are refused', async () => {
    const results = await Promise.allSettled([pool.createDisk(VOL, 8 * MiB), pool.createDisk(VOL, 16 * MiB)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((refused.reason as NfError).code).toBe('already_exists');
    expect(disks()).toStrictEqual([VOL]);
  });

  test('a failed create leaves nothing behind, and temporaries of a crash go at init', async () => {
    const err = await rejection(
      pool.createDisk(VOL, 4 * MiB, { path: pool.imagePath('missing.qcow2'), format: 'qcow2' }),
    );
    expect(err.code).toBe('hypervisor_error');
    expect(disks()).toStrictEqual([]);

    writeFileSync(join(pool.disksDir, `.${VOL}.abc123.part`), 'half');
    writeFileSync(join(pool.disksDir, 'keep.qcow2'), 'not ours to judge');
    pool.init();
    expect(disks()).toStrictEqual(['keep.qcow2']);
  });

  test('deleting and creating again after a refused create works', async () => {
    await pool.createDisk(VOL, 8 * MiB);
    await rejection(pool.createDisk(VOL, 16 * MiB));
    await pool.deleteDisk(VOL);
    await pool.createDisk(VOL, 16 * MiB);
    expect((await imageInfo(pool.diskPath(VOL))).virtualSize).toBe(16 * MiB);
  });
});
