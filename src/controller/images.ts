import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NfError } from '../errors';
import type { NodeApi } from '../node/types';
import type { DirPool } from '../storage/dir-pool';
import { imageInfo } from '../storage/qemu-img';
import { findByRef } from '../store/lookup';
import type { Store, Versioned } from '../store/store';
import { type HostPaths, readableFile } from '../util/host-paths';
import { type ImageRecord, isoImagesOf, keys, type VmRecord } from './records';

/**
 * ISOs and disk images in a pool. Content is streamed to a temp file while hashed, checked, then renamed
 * into place, so a failed or cancelled transfer leaves nothing behind.
 */
export class ImageService {
  constructor(
    private readonly store: Store,
    private readonly pools: Map<string, DirPool>,
    private readonly hostPaths: HostPaths,
    /** This host (images land in its pools) and the way to reach the host of an image to delete it. */
    private readonly nodeName: string,
    private readonly nodes: {
      on(name: string): Pick<NodeApi, 'deleteImageFile' | 'copyImage'>;
    },
  ) {}

  async list(): Promise<ImageRecord[]> {
    return (await this.store.list<ImageRecord>(keys.images))
      .map((i) => i.value)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  find(ref: string): Promise<Versioned<ImageRecord>> {
    return findByRef<ImageRecord>(this.store, ref, 'image', keys.image, keys.imageName);
  }

  /** Copies a host file into the pool. */
  async importFile(opts: {
    name: string;
    path: string;
    pool?: string;
    sha256?: string;
    source?: string;
    /** Files named by the operator on serve's command line (demo images) skip the allow-list. */
    trusted?: boolean;
  }): Promise<ImageRecord> {
    if (opts.trusted) readableFile(opts.path, 'path');
    else this.hostPaths.file(opts.path, 'path');
    const body = Bun.file(opts.path).stream();
    return this.ingest({ ...opts, body, source: opts.source ?? opts.path });
  }

  /** Stores a streamed upload (request body) in the pool. */
  async upload(opts: {
    name: string;
    body: ReadableStream<Uint8Array>;
    pool?: string;
    sha256?: string;
    maxBytes?: number;
  }): Promise<ImageRecord> {
    return this.ingest({ ...opts, source: 'upload' });
  }

  /**
   * Copies a disk image into a shared pool (Ceph RBD) as a new image: VMs on every host then clone their
   * disks from it (linked clones), and it pins no VM to a host. Runs on the host that holds the source.
   */
  async copyToPool(ref: string, opts: { pool: string; name?: string }): Promise<ImageRecord> {
    const src = (await this.find(ref)).value;
    if (src.shared) throw new NfError('validation_failed', `image "${src.name}" is in a shared pool already`);
    if (!(await this.store.get(keys.pool(opts.pool))))
      throw new NfError(
        'validation_failed',
        `"${opts.pool}" is not a shared storage pool (see GET /api/v1/pools)`,
      );
    const name = opts.name ?? `${src.name}-${opts.pool}`;
    if (await this.store.get(keys.imageName(name)))
      throw new NfError('already_exists', `an image named "${name}" already exists; give another name`);
    const id = randomUUID();
    const volume = `img-${id}`;
    const host = this.nodes.on(src.node ?? this.nodeName);
    // an ISO is raw bytes; it becomes a read-only CD-ROM medium any host can open
    const format = src.format === 'qcow2' ? 'qcow2' : 'raw';
    const size = await host.copyImage(
      { pool: src.pool, file: src.file, format },
      { pool: opts.pool, volume },
    );
    const rec: ImageRecord = {
      id,
      name,
      kind: src.kind,
      format: src.kind === 'iso' ? 'iso' : 'raw',
      pool: opts.pool,
      shared: true,
      file: volume,
      sizeBytes: size,
      virtualSizeBytes: size,
      // the source file's: the copy is the same content as raw
      sha256: src.sha256,
      createdAt: new Date().toISOString(),
      source: `image:${src.name}`,
    };
    try {
      await this.store.txn(
        {
          when: [{ key: keys.imageName(name), absent: true }],
          put: [
            { key: keys.image(id), value: rec },
            { key: keys.imageName(name), value: id },
          ],
        },
        `an image named "${name}" was just created by someone else`,
      );
    } catch (err) {
      if (!(await this.store.get(keys.image(id)).catch(() => undefined)))
        await host.deleteImageFile(opts.pool, volume).catch(() => {});
      throw err;
    }
    return rec;
  }

  async delete(ref: string): Promise<void> {
    const cur = await this.find(ref);
    const img = cur.value;
    const vms = await this.store.list<VmRecord>(keys.vms);
    const users = vms
      .map((v) => v.value)
      .filter((v) => v.disks.some((d) => d.image === img.id) || isoImagesOf(v).includes(img.id));
    if (users.length > 0) {
      throw new NfError(
        'in_use',
        `image "${img.name}" is used by VM(s) ${users.map((u) => u.name).join(', ')}; delete them or change their boot media first`,
      );
    }
    try {
      await this.store.txn(
        { when: [{ key: cur.key, revision: cur.revision }], delete: [cur.key, keys.imageName(img.name)] },
        `image "${img.name}" was just changed or taken into use by a new VM; retry`,
      );
    } catch (err) {
      // A retried transaction may have gone through already: only a record still there is a conflict.
      if (!NfError.isCode(err, 'conflict') || (await this.store.get(cur.key))) throw err;
    }
    await this.nodes.on(img.node ?? this.nodeName).deleteImageFile(img.pool, img.file);
  }

  private async ingest(opts: {
    name: string;
    body: ReadableStream<Uint8Array>;
    pool?: string;
    sha256?: string;
    source: string;
    maxBytes?: number;
  }): Promise<ImageRecord> {
    const pool = this.pool(opts.pool ?? 'local');
    if (await this.store.get(keys.imageName(opts.name))) {
      throw new NfError(
        'already_exists',
        `an image named "${opts.name}" already exists; delete it or pick another name`,
      );
    }
    const id = randomUUID();
    const tmp = pool.imagePath(`incoming-${id}.part`);
    const hash = createHash('sha256');
    let received = 0;
    const limit = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    const counter = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        received += chunk.byteLength;
        if (received > limit)
          throw new NfError('payload_too_large', `image is larger than the ${limit} byte limit`);
        hash.update(chunk);
        ctl.enqueue(chunk);
      },
    });
    let finalPath: string | undefined;
    try {
      await pipeline(
        Readable.fromWeb(opts.body.pipeThrough(counter) as never),
        createWriteStream(tmp, { mode: 0o600 }),
      );
      const sha256 = hash.digest('hex');
      if (opts.sha256 && opts.sha256 !== sha256) {
        throw new NfError(
          'checksum_mismatch',
          `sha256 of the received data is ${sha256}, not the expected ${opts.sha256}`,
        );
      }
      if (received === 0) throw new NfError('validation_failed', 'the image is empty');
      // The format from the file's first bytes, then qemu-img told which one: probing with qemu-img would
      // open formats that name other files (a VMDK's extents), an oracle for host paths.
      const info = await imageInfo(tmp, await sniffFormat(tmp));
      // A qcow2 with a backing file could point at any host file and leak it into a VM: refuse it.
      if (info.backingFilename || info.dataFile) {
        throw new NfError(
          'validation_failed',
          'images that refer to other files (a backing file or an external data file) are not accepted; flatten it first with qemu-img convert',
        );
      }
      const isIso = info.format === 'raw' && (await looksLikeIso(tmp));
      const format: ImageRecord['format'] = isIso
        ? 'iso'
        : info.format === 'qcow2'
          ? 'qcow2'
          : info.format === 'raw'
            ? 'raw'
            : unsupported(info.format);
      const file = `${id}.${format === 'iso' ? 'iso' : format}`;
      finalPath = pool.imagePath(file);
      await rename(tmp, finalPath);
      const rec: ImageRecord = {
        id,
        name: opts.name,
        kind: format === 'iso' ? 'iso' : 'disk',
        format,
        pool: pool.name,
        node: this.nodeName,
        file,
        sizeBytes: received,
        virtualSizeBytes: info.virtualSize,
        sha256,
        createdAt: new Date().toISOString(),
        source: opts.source,
      };
      await this.store.txn(
        {
          when: [{ key: keys.imageName(opts.name), absent: true }],
          put: [
            { key: keys.image(id), value: rec },
            { key: keys.imageName(opts.name), value: id },
          ],
        },
        `an image named "${opts.name}" was just created by someone else`,
      );
      return rec;
    } catch (err) {
      await rm(tmp, { force: true });
      // The record may have been committed by a retried transaction whose reply was lost: keep the file.
      const committed = await this.store.get<ImageRecord>(keys.image(id)).then(
        (r) => r?.value,
        () => 'unknown' as const,
      );
      if (committed && committed !== 'unknown') return committed;
      if (finalPath && committed !== 'unknown') await rm(finalPath, { force: true });
      if (NfError.isCode(err, 'conflict')) throw new NfError('already_exists', err.message);
      throw err;
    }
  }

  private pool(name: string): DirPool {
    const pool = this.pools.get(name);
    if (!pool) throw new NfError('validation_failed', `storage pool "${name}" does not exist (try "local")`);
    return pool;
  }
}

function unsupported(format: string): never {
  throw new NfError(
    'validation_failed',
    `image format "${format}" is not supported; use qcow2, raw or an ISO`,
  );
}

/** ISO 9660 has "CD001" at byte 32769 (the primary volume descriptor). */
/** qcow2 or raw by magic bytes; formats that refer to other files or are not supported yet are refused. */
export async function sniffFormat(path: string): Promise<'qcow2' | 'raw'> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(64);
    await fh.read(head, 0, 64, 0);
    const text = head.toString('latin1');
    if (head.subarray(0, 4).equals(Buffer.from([0x51, 0x46, 0x49, 0xfb]))) return 'qcow2';
    if (text.startsWith('KDMV') || text.startsWith('COWD') || /^#\s*Disk DescriptorFile/.test(text))
      throw new NfError(
        'validation_failed',
        'VMDK images are not accepted here yet (convert to qcow2 with qemu-img)',
      );
    if (text.startsWith('vhdxfile') || text.startsWith('conectix'))
      throw new NfError(
        'validation_failed',
        'VHD/VHDX images are not accepted (convert to qcow2 with qemu-img)',
      );
    if (text.startsWith('QED\0') || text.startsWith('<<< ') || text.startsWith('WithoutFreeSpace'))
      throw new NfError(
        'validation_failed',
        'this image format is not accepted (convert to qcow2 with qemu-img)',
      );
    return 'raw';
  } finally {
    await fh.close();
  }
}

async function looksLikeIso(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(5);
    await fh.read(buf, 0, 5, 32769);
    return buf.toString('latin1') === 'CD001';
  } finally {
    await fh.close();
  }
}
