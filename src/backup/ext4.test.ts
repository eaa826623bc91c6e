import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ext4, type ReadAt } from './ext4';
import { BackupDiskReader, diskFilesystems, openFilesystem } from './files';
import { CHUNK_SIZE, type DiskIndex, Repository } from './repository';

/** Images made by the real mkfs of e2fsprogs, read back by the reader. */
describe('ext2/3/4 reader', () => {
  let dir: string;
  const big = randomBytes(9 * 1024 * 1024 + 123);
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nf-ext4-'));
    const src = join(dir, 'src');
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'etc', 'hostname'), 'backed-up\n');
    writeFileSync(join(src, 'big.bin'), big);
    // a file with a hole: 1 MiB of data at 10 MiB of a 20 MiB file
    writeFileSync(join(src, 'sparse'), '');
    truncateSync(join(src, 'sparse'), 20 * 1024 * 1024);
    const fd = openSync(join(src, 'sparse'), 'r+');
    writeSync(fd, Buffer.alloc(1024 * 1024, 0x5a), 0, 1024 * 1024, 10 * 1024 * 1024);
    closeSync(fd);
    symlinkSync('etc/hostname', join(src, 'link'));
    symlinkSync(`/${'x'.repeat(120)}`, join(src, 'long-link'));
    mkdirSync(join(src, 'many'));
    for (let i = 0; i < 400; i++)
      writeFileSync(join(src, 'many', `file-${String(i).padStart(4, '0')}`), `${i}\n`);
    mkdirSync(join(src, 'deep', 'a', 'b', 'c'), { recursive: true });
    writeFileSync(join(src, 'deep', 'a', 'b', 'c', 'leaf'), 'leaf\n');
    for (const [name, args] of [
      ['ext4', ['-t', 'ext4']],
      ['ext3', ['-t', 'ext3']],
      ['ext2', ['-t', 'ext2', '-b', '1024']],
    ] as const) {
      const img = join(dir, `${name}.img`);
      writeFileSync(img, '');
      truncateSync(img, 64 * 1024 * 1024);
      execFileSync('mke2fs', ['-q', '-F', ...args, '-L', `lbl-${name}`, '-d', src, img], { stdio: 'pipe' });
      // e2fsck -D rebuilds directories with htree indexes where the file system has dir_index
      // (exit status 1: "file system modified", which -D always does)
      expect(spawnSync('e2fsck', ['-fyD', img], { stdio: 'pipe' }).status).toBeLessThanOrEqual(1);
    }
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const fileSource = (path: string): ReadAt => {
    const fd = openSync(path, 'r');
    return async (offset, length) => {
      const b = new Uint8Array(length);
      readSync(fd, b, 0, length, offset);
      return b;
    };
  };
  const readAll = async (fs: Ext4, path: string) => {
    const { chunks } = await fs.open(path);
    const parts: Uint8Array[] = [];
    for await (const c of chunks) parts.push(c);
    return Buffer.concat(parts);
  };

  for (const type of ['ext4', 'ext3', 'ext2'] as const) {
    it(`reads ${type}: listing, a large file, a hole, links, a 400-entry directory, a deep path`, async () => {
      const fs = await Ext4.open(fileSource(join(dir, `${type}.img`)));
      expect(fs).toMatchObject({ type, label: `lbl-${type}`, needsRecovery: false });
      const root = await fs.list('/');
      expect(root.entries.map((e) => e.name)).toEqual(
        expect.arrayContaining(['etc', 'many', 'deep', 'big.bin', 'sparse', 'link', 'long-link']),
      );
      expect(root.entries.find((e) => e.name === 'etc')).toMatchObject({ type: 'dir' });
      expect(root.entries.find((e) => e.name === 'link')).toMatchObject({
        type: 'symlink',
        target: 'etc/hostname',
      });
      expect(root.entries.find((e) => e.name === 'long-link')).toMatchObject({
        target: `/${'x'.repeat(120)}`,
      });
      expect((await readAll(fs, '/etc/hostname')).toString()).toBe('backed-up\n');
      expect(sha(await readAll(fs, '/big.bin'))).toBe(sha(big));
      const sparse = await readAll(fs, '/sparse');
      expect(sparse.length).toBe(20 * 1024 * 1024);
      expect(sparse.subarray(10 * 1024 * 1024, 11 * 1024 * 1024).every((b) => b === 0x5a)).toBe(true);
      expect(sparse.subarray(0, 10 * 1024 * 1024).every((b) => b === 0)).toBe(true);
      const many = await fs.list('/many');
      expect(many.entries.length).toBe(400);
      expect(many.entries[0]).toMatchObject({ name: 'file-0000', type: 'file', size: 2 });
      expect((await readAll(fs, '/many/file-0399')).toString()).toBe('399\n');
      expect((await readAll(fs, '/deep/a/b/c/leaf')).toString()).toBe('leaf\n');
      expect(await fs.stat('/deep/a/b/c/leaf')).toMatchObject({ type: 'file', size: 5 });
      // errors name the path
      await expect(fs.list('/nope')).rejects.toMatchObject({ code: 'not_found' });
      await expect(fs.list('/etc/hostname')).rejects.toMatchObject({ code: 'validation_failed' });
      await expect(fs.open('/etc')).rejects.toMatchObject({ code: 'validation_failed' });
      await expect(fs.list('/link/x')).rejects.toThrow(/symbolic link/);
      await expect(fs.list('/etc/../etc')).rejects.toMatchObject({ code: 'validation_failed' });
      await expect(fs.list('etc')).rejects.toMatchObject({ code: 'validation_failed' });
    });
  }

  it('refuses what is not an ext file system', async () => {
    const zero: ReadAt = async (_o, l) => new Uint8Array(l);
    await expect(Ext4.open(zero)).rejects.toMatchObject({ code: 'validation_failed' });
  });

  it('finds the partitions of a backed-up GPT disk in its repository chunks and browses the ext4 one', async () => {
    const disk = join(dir, 'disk.raw');
    writeFileSync(disk, '');
    truncateSync(disk, 96 * 1024 * 1024);
    execFileSync('sfdisk', ['-q', disk], { input: 'label: gpt\nstart=2048, size=81920, type=L\n,,L\n' });
    execFileSync(
      'mkfs.ext4',
      ['-q', '-F', '-L', 'part1', '-E', 'offset=1048576', '-d', join(dir, 'src'), disk, '40M'],
      {
        stdio: 'pipe',
      },
    );
    const repo = await Repository.init(join(dir, 'repo'));
    // the disk's chunks as a backup would store them
    const fd = openSync(disk, 'r');
    const index: DiskIndex = {
      disk: 'disk0',
      sizeBytes: 96 * 1024 * 1024,
      chunkSize: CHUNK_SIZE,
      chunks: [],
    };
    for (let off = 0; off < index.sizeBytes; off += CHUNK_SIZE) {
      const b = Buffer.alloc(CHUNK_SIZE);
      readSync(fd, b, 0, CHUNK_SIZE, off);
      if (b.every((x) => x === 0)) index.chunks.push(null);
      else {
        const id = repo.idOf(b);
        await repo.putChunk(b, id);
        index.chunks.push(id);
      }
    }
    const reader = new BackupDiskReader(repo, index);
    const found = await diskFilesystems(reader);
    expect(found).toEqual([
      expect.objectContaining({
        id: 'disk0p1',
        partition: 1,
        type: 'ext4',
        readable: true,
        label: 'part1',
        offsetBytes: 1048576,
      }),
      expect.objectContaining({ id: 'disk0p2', partition: 2, type: 'unknown', readable: false }),
    ]);
    const m = { id: 'b1', vm: { id: 'vm1', name: 'v' }, disks: [{ id: 'disk0' }] } as never;
    const w = await repo.beginBackup('vm1', 'b1');
    await w.writeIndex(index);
    await w.commit({ ...(m as object), node: 'h', startedAt: '', pointInTime: '' } as never);
    const fs = await openFilesystem(repo, m, 'disk0p1');
    expect(sha(await readAll(fs, '/big.bin'))).toBe(sha(big));
    await expect(openFilesystem(repo, m, 'disk0p2')).rejects.toMatchObject({ code: 'not_implemented' });
    await expect(openFilesystem(repo, m, 'disk0p7')).rejects.toMatchObject({ code: 'not_found' });
  });
});
