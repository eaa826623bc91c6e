/**
 * A backup repository: a directory (local, or an NFS mount) of content-addressed chunks, one index per
 * backed-up disk and one manifest per backup.
 *
 *   repo.json                         what the directory is (format version, chunk size)
 *   chunks/ab/ab12…ef                 a chunk: 1 byte of encoding, then the data (zstd or raw)
 *   backups/<vm id>/<backup id>/      a complete backup: manifest.json (written last) and <disk>.index.json
 *   backups/<vm id>/.<backup id>.partial/   one being written (never listed; removed by the next writer)
 *
 * A chunk's name is the SHA-256 of its plain data, so the same 4 MiB stored by any backup of any VM is kept
 * once. A backup is listed only once its manifest exists, and the manifest is written only after every
 * chunk it names is on stable storage (one syncfs of the repository's file system): a crash at any point
 * leaves either the old listing or the new one, never a backup that names a missing chunk.
 */

import { spawn } from 'node:child_process';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { NfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { pidAlive } from '../util/proc';

export const CHUNK_SIZE = 4 * 1024 * 1024;
const FORMAT = 'neuroflow-backup-repository';
const ENC_RAW = 0;
const ENC_ZSTD = 1;
/** Encrypted repositories: AES-256-GCM over zstd (or raw) data: 1 byte, 12 bytes nonce, ciphertext, 16 bytes tag. */
const ENC_GCM_RAW = 2;
const ENC_GCM_ZSTD = 3;
/** An encrypted JSON file (manifest, index) starts with these 4 bytes. */
const SEALED = Buffer.from('NFE1');
export const KEY_BYTES = 32;

export interface RepoInfo {
  format: typeof FORMAT;
  version: 1;
  id: string;
  chunkSize: number;
  createdAt: string;
  /**
   * Client-side encryption: every chunk, index and manifest sealed with AES-256-GCM under keys derived
   * from the repository's key (HKDF-SHA256), chunk names keyed (HMAC-SHA256) so they reveal nothing of
   * the data. Only a check value of the key is stored here.
   */
  encryption?: { algorithm: 'aes-256-gcm'; kdf: 'hkdf-sha256'; keyCheck: string };
}

interface Keys {
  enc: Buffer;
  id: Buffer;
}

function deriveKeys(master: Buffer): Keys & { check: string } {
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), info, 32));
  return {
    enc: derive('neuroflow-backup chunk encryption'),
    id: derive('neuroflow-backup chunk id'),
    check: derive('neuroflow-backup key check').toString('base64'),
  };
}

function seal(key: Buffer, plain: Uint8Array): Buffer {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([nonce, body, c.getAuthTag()]);
}

function unseal(key: Buffer, sealed: Uint8Array): Buffer {
  const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (b.length < 28) throw new Error('too short');
  const d = createDecipheriv('aes-256-gcm', key, b.subarray(0, 12));
  d.setAuthTag(b.subarray(b.length - 16));
  return Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]);
}

/** A disk's content in a backup: one entry per chunk, the chunk's id or null for a chunk of zeros. */
export interface DiskIndex {
  disk: string;
  sizeBytes: number;
  chunkSize: number;
  chunks: (string | null)[];
}

export interface VerifyReport {
  backups: number;
  chunks: number;
  /** Damaged or missing chunks, each with the backups that need it. */
  bad: { chunk: string; error: string; backups: string[] }[];
  /** Backups a bad chunk breaks (a restore of them fails). */
  broken: { id: string; vm: string }[];
}

export interface GcReport {
  keptChunks: number;
  removedChunks: number;
  freedBytes: number;
}

export interface BackupDisk {
  id: string;
  sizeBytes: number;
  /** full: every chunk read; incremental: only chunks changed since `base` were read. */
  mode: 'full' | 'incremental';
  base?: string;
  /** Why a backup that could have been incremental read the whole disk. */
  fullReason?: string;
  readBytes: number;
  chunksRead: number;
  newChunks: number;
  newBytesStored: number;
  zeroChunks: number;
}

export interface BackupManifest {
  id: string;
  vm: { id: string; name: string };
  node: string;
  startedAt: string;
  /** The instant the disks were captured (after the guest's file systems were frozen, if they were). */
  pointInTime: string;
  endedAt: string;
  consistency: 'filesystem' | 'crash' | 'stopped';
  /** Why the guest's file systems were not frozen (no agent, a freeze error). */
  consistencyNote?: string;
  /** The VM's configuration at that time (what a restore makes). */
  config: Record<string, unknown>;
  disks: BackupDisk[];
  notes?: string;
  /** The last boot verification (kept beside the manifest, which never changes; added when read). */
  bootVerify?: { passed: boolean; at: string; agentAfterMs?: number; reason?: string; totalMs?: number };
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HASH_RE = /^[0-9a-f]{64}$/;

function checkId(kind: string, id: string): string {
  if (!ID_RE.test(id)) throw new NfError('validation_failed', `invalid ${kind} "${id}"`);
  return id;
}

/** A backup's id: its start time, sortable, plus a few random letters. */
export function newBackupId(at = new Date()): string {
  return `${at
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replaceAll(':', '')}-${randomBytes(3).toString('hex')}`;
}

export function chunkId(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export class Repository {
  private constructor(
    readonly path: string,
    readonly info: RepoInfo,
    private readonly keys?: Keys,
  ) {}

  /**
   * Makes a repository in `path` (an empty or missing directory), or opens the one there. `key` (32 bytes)
   * makes a new repository encrypted; an existing one must be opened with its own key.
   */
  static async init(path: string, key?: Buffer): Promise<Repository> {
    if (existsSync(join(path, 'repo.json'))) return Repository.open(path, key);
    await mkdir(path, { recursive: true, mode: 0o700 });
    const other = (await readdir(path)).filter((f) => !f.startsWith('.') && f !== 'lost+found');
    if (other.length > 0)
      throw new NfError(
        'validation_failed',
        `${path} is not empty and is not a backup repository (it holds ${other.slice(0, 3).join(', ')}${other.length > 3 ? ', …' : ''})`,
      );
    if (key && key.length !== KEY_BYTES)
      throw new NfError('validation_failed', `a repository key is ${KEY_BYTES} bytes`);
    const info: RepoInfo = {
      format: FORMAT,
      version: 1,
      id: randomBytes(8).toString('hex'),
      chunkSize: CHUNK_SIZE,
      createdAt: new Date().toISOString(),
      ...(key
        ? { encryption: { algorithm: 'aes-256-gcm', kdf: 'hkdf-sha256', keyCheck: deriveKeys(key).check } }
        : {}),
    };
    await mkdir(join(path, 'chunks'), { mode: 0o700 });
    await mkdir(join(path, 'backups'), { mode: 0o700 });
    await writeFileAtomic(join(path, 'repo.json'), `${JSON.stringify(info, null, 2)}\n`, 0o600);
    return new Repository(path, info, key ? deriveKeys(key) : undefined);
  }

  /** Reads a repository's description (no key needed: it holds no secret). */
  static async describe(path: string): Promise<RepoInfo> {
    let info: RepoInfo;
    try {
      info = JSON.parse(await readFile(join(path, 'repo.json'), 'utf8')) as RepoInfo;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new NfError(
        code === 'ENOENT' ? 'not_found' : 'unavailable',
        code === 'ENOENT'
          ? `${path} is not a backup repository (no repo.json)`
          : `cannot read the backup repository in ${path}: ${(err as Error).message}`,
      );
    }
    if (info.format !== FORMAT || info.version !== 1)
      throw new NfError('validation_failed', `${path} holds a repository of an unknown format`);
    return info;
  }

  static async open(path: string, key?: Buffer): Promise<Repository> {
    const info = await Repository.describe(path);
    if (!info.encryption) {
      if (key)
        throw new NfError('validation_failed', `the repository in ${path} is not encrypted: give no key`);
      return new Repository(path, info);
    }
    if (!key) throw new NfError('forbidden', `the repository in ${path} is encrypted: its key is needed`);
    const keys = deriveKeys(key);
    const a = Buffer.from(keys.check);
    const b = Buffer.from(info.encryption.keyCheck);
    if (a.length !== b.length || !timingSafeEqual(a, b))
      throw new NfError('forbidden', `wrong key for the encrypted repository in ${path}`);
    return new Repository(path, info, keys);
  }

  get encrypted(): boolean {
    return !!this.keys;
  }

  /** A chunk's name: SHA-256 of its data, or (encrypted) HMAC-SHA256 under the repository's id key. */
  idOf(data: Uint8Array): string {
    return this.keys ? createHmac('sha256', this.keys.id).update(data).digest('hex') : chunkId(data);
  }

  /** Writes a JSON file of a backup (sealed when the repository is encrypted). */
  async writeJson(path: string, value: unknown): Promise<void> {
    const text = JSON.stringify(value, null, 2);
    await writeFileAtomic(
      path,
      this.keys ? Buffer.concat([SEALED, seal(this.keys.enc, Buffer.from(text))]) : `${text}\n`,
      0o600,
    );
  }

  async readJson<T>(path: string): Promise<T> {
    const raw = await readFile(path);
    if (raw.subarray(0, 4).equals(SEALED)) {
      if (!this.keys) throw new NfError('forbidden', `${path} is encrypted`);
      try {
        return JSON.parse(unseal(this.keys.enc, raw.subarray(4)).toString('utf8')) as T;
      } catch {
        throw new NfError('data_corrupted', `${path} cannot be decrypted (damaged)`);
      }
    }
    if (this.keys) throw new NfError('data_corrupted', `${path} is not sealed in an encrypted repository`);
    return JSON.parse(raw.toString('utf8')) as T;
  }

  private chunkPath(id: string): string {
    return join(this.path, 'chunks', id.slice(0, 2), id);
  }

  async hasChunk(id: string): Promise<boolean> {
    return existsSync(this.chunkPath(id));
  }

  /**
   * Stores a chunk unless the repository has it. Returns the bytes written (0 when it was there). The
   * file appears under its name only complete (written beside, then renamed).
   */
  async putChunk(data: Uint8Array, id = this.idOf(data)): Promise<number> {
    const path = this.chunkPath(id);
    if (existsSync(path)) return 0;
    const packed = await Bun.zstdCompress(data, { level: 3 });
    const zipped = packed.length < data.length;
    const payload = zipped ? packed : data;
    const body = this.keys
      ? Buffer.concat([Buffer.from([zipped ? ENC_GCM_ZSTD : ENC_GCM_RAW]), seal(this.keys.enc, payload)])
      : Buffer.concat([Buffer.from([zipped ? ENC_ZSTD : ENC_RAW]), payload]);
    const dir = join(this.path, 'chunks', id.slice(0, 2));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.${id}.${randomBytes(4).toString('hex')}`);
    try {
      await writeFile(tmp, body, { mode: 0o600 });
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC')
        throw new NfError('insufficient_resources', `the backup repository ${this.path} is full`);
      throw err;
    }
    return body.length;
  }

  /** A chunk's data, checked against its id: a damaged chunk is an error, never wrong data. */
  async getChunk(id: string): Promise<Buffer> {
    if (!HASH_RE.test(id)) throw new NfError('validation_failed', `invalid chunk id "${id}"`);
    let body: Buffer;
    try {
      body = await readFile(this.chunkPath(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw existsSync(`${this.chunkPath(id)}.bad`)
          ? new NfError(
              'data_corrupted',
              `chunk ${id} is damaged (a verification set it aside; a new backup of the same data heals it)`,
            )
          : new NfError('not_found', `chunk ${id} is missing from the backup repository ${this.path}`);
      throw err;
    }
    let data: Buffer;
    try {
      const kind = body[0];
      const sealed = kind === ENC_GCM_RAW || kind === ENC_GCM_ZSTD;
      if (sealed !== this.encrypted)
        throw new Error(sealed ? 'encrypted in a plain repository' : 'not encrypted');
      const payload = sealed ? unseal(this.keys!.enc, body.subarray(1)) : body.subarray(1);
      if (kind === ENC_ZSTD || kind === ENC_GCM_ZSTD) data = Buffer.from(await Bun.zstdDecompress(payload));
      else if (kind === ENC_RAW || kind === ENC_GCM_RAW) data = payload;
      else throw new Error(`unknown encoding ${kind}`);
    } catch (err) {
      throw new NfError('data_corrupted', `chunk ${id} is damaged: ${(err as Error).message}`);
    }
    if (this.idOf(data) !== id)
      throw new NfError('data_corrupted', `chunk ${id} is damaged (its content does not match)`);
    return data;
  }

  private vmDir(vmId: string): string {
    return join(this.path, 'backups', checkId('VM id', vmId));
  }

  /**
   * Starts writing a backup: a hidden directory that becomes the backup when `commit` writes the manifest
   * (after a syncfs of the repository, so every chunk named is stable) and renames it. `abort` removes it.
   * Leftovers of writers that died are removed here.
   */
  async beginBackup(vmId: string, backupId: string): Promise<BackupWriter> {
    checkId('backup id', backupId);
    const dir = this.vmDir(vmId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const f of await readdir(dir))
      if (f.startsWith('.') && f.endsWith('.partial') && !(await alive(join(dir, f), join(dir, f, WRITER))))
        await rm(join(dir, f), { recursive: true, force: true });
    const partial = join(dir, `.${backupId}.partial`);
    await mkdir(partial, { mode: 0o700 });
    await writeFile(join(partial, WRITER), JSON.stringify(me()));
    // written before the check, as GC writes its lock before it looks for writers: one sees the other
    const gc = await this.gcLock();
    if (gc) {
      await rm(partial, { recursive: true, force: true });
      throw new NfError(
        'invalid_state',
        `garbage collection runs on the repository in ${this.path} (${gc}); back up after it`,
      );
    }
    return new BackupWriter(this, partial, join(dir, backupId));
  }

  /** Who runs GC on the repository now (any host sharing it), if anyone. */
  private async gcLock(): Promise<string | undefined> {
    const path = join(this.path, GC_LOCK);
    if (!(await alive(path, path))) return undefined;
    return readFile(path, 'utf8').then(
      (t) => (JSON.parse(t) as { by: string }).by,
      () => 'started elsewhere',
    );
  }

  /** Backups being written now (their partial directory is touched every few seconds), by any host. */
  async liveWriters(): Promise<string[]> {
    const out: string[] = [];
    for (const vm of await readdir(join(this.path, 'backups')).catch(() => [] as string[]))
      for (const f of await readdir(join(this.path, 'backups', vm)).catch(() => [] as string[]))
        if (
          f.startsWith('.') &&
          f.endsWith('.partial') &&
          (await alive(join(this.path, 'backups', vm, f), join(this.path, 'backups', vm, f, WRITER)))
        )
          out.push(`${vm}/${f.slice(1, -'.partial'.length)}`);
    return out;
  }

  /** Complete backups (those with a manifest), newest first; of one VM when given. */
  async listBackups(vmId?: string): Promise<BackupManifest[]> {
    const vms = vmId ? [vmId] : await readdir(join(this.path, 'backups')).catch(() => [] as string[]);
    const out: BackupManifest[] = [];
    for (const vm of vms) {
      if (!ID_RE.test(vm)) continue;
      const ids = await readdir(join(this.path, 'backups', vm)).catch(() => [] as string[]);
      for (const id of ids) {
        if (id.startsWith('.')) continue;
        const m = await this.manifest(vm, id).catch(() => undefined);
        if (m) out.push(m);
      }
    }
    return out.sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id));
  }

  /** Records a boot verification's outcome with the backup. */
  async setBootVerify(
    vmId: string,
    backupId: string,
    result: NonNullable<BackupManifest['bootVerify']>,
  ): Promise<void> {
    const dir = join(this.vmDir(vmId), checkId('backup id', backupId));
    if (!existsSync(join(dir, 'manifest.json'))) return; // deleted meanwhile
    await this.writeJson(join(dir, 'bootverify.json'), result);
  }

  async manifest(vmId: string, backupId: string): Promise<BackupManifest> {
    const dir = join(this.vmDir(vmId), checkId('backup id', backupId));
    const path = join(dir, 'manifest.json');
    try {
      const m = await this.readJson<BackupManifest>(path);
      if (existsSync(join(dir, 'bootverify.json')))
        m.bootVerify = await this.readJson<NonNullable<BackupManifest['bootVerify']>>(
          join(dir, 'bootverify.json'),
        );
      return m;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw new NfError('not_found', `backup ${backupId} of VM ${vmId} not found`);
      throw err;
    }
  }

  async index(vmId: string, backupId: string, diskId: string): Promise<DiskIndex> {
    const path = join(
      this.vmDir(vmId),
      checkId('backup id', backupId),
      `${checkId('disk id', diskId)}.index.json`,
    );
    const idx = await this.readJson<DiskIndex>(path);
    if (
      idx.chunkSize !== this.info.chunkSize ||
      idx.chunks.length !== Math.ceil(idx.sizeBytes / idx.chunkSize)
    )
      throw new NfError('data_corrupted', `the index of disk ${diskId} in backup ${backupId} is damaged`);
    return idx;
  }

  /** Removes a backup (its manifest first, so it is unlisted at once); its chunks go at the next GC. */
  async deleteBackup(vmId: string, backupId: string): Promise<void> {
    const dir = join(this.vmDir(vmId), checkId('backup id', backupId));
    if (!existsSync(join(dir, 'manifest.json')))
      throw new NfError('not_found', `backup ${backupId} of VM ${vmId} not found`);
    await rm(join(dir, 'manifest.json'));
    await rm(dir, { recursive: true, force: true });
  }

  /** The complete backup with this id (of whichever VM), or undefined; only its own manifest is read. */
  async findBackup(backupId: string): Promise<BackupManifest | undefined> {
    if (!ID_RE.test(backupId)) return undefined;
    const root = join(this.path, 'backups');
    for (const vm of await readdir(root).catch(() => [] as string[]))
      if (ID_RE.test(vm) && existsSync(join(root, vm, backupId, 'manifest.json')))
        return this.manifest(vm, backupId);
    return undefined;
  }

  /** How many complete backups the repository holds (their manifests are not read). */
  async countBackups(): Promise<number> {
    let n = 0;
    const root = join(this.path, 'backups');
    for (const vm of await readdir(root).catch(() => [] as string[]))
      for (const id of await readdir(join(root, vm)).catch(() => [] as string[]))
        if (!id.startsWith('.') && existsSync(join(root, vm, id, 'manifest.json'))) n++;
    return n;
  }

  /** Bytes used by the repository's chunks and how many there are (a stat of every chunk: not cheap). */
  async usage(): Promise<{ chunks: number; bytes: number }> {
    let chunks = 0;
    let bytes = 0;
    const root = join(this.path, 'chunks');
    for (const d of await readdir(root).catch(() => [] as string[]))
      for (const f of await readdir(join(root, d)).catch(() => [] as string[])) {
        if (!HASH_RE.test(f)) continue;
        chunks++;
        bytes += (await stat(join(root, d, f))).size;
      }
    return { chunks, bytes };
  }

  /** Every chunk the given backups' indexes name, with the backups (and disks) naming each. */
  private async references(backups: BackupManifest[]): Promise<Map<string, Set<string>>> {
    const refs = new Map<string, Set<string>>();
    for (const m of backups)
      for (const d of m.disks) {
        const idx = await this.index(m.vm.id, m.id, d.id);
        for (const c of idx.chunks) {
          if (!c) continue;
          const users = refs.get(c) ?? new Set<string>();
          users.add(m.id);
          refs.set(c, users);
        }
      }
    return refs;
  }

  /**
   * Re-reads and re-hashes every chunk the backups name (all of them when none are given): the damaged or
   * missing ones, and the backups each one breaks.
   */
  async verify(
    only?: string[],
    onProgress: (done: number, total: number) => void = () => {},
  ): Promise<VerifyReport> {
    const all = await this.listBackups();
    const backups = only ? all.filter((m) => only.includes(m.id)) : all;
    const refs = await this.references(backups);
    const bad: VerifyReport['bad'] = [];
    let done = 0;
    for (const [id, users] of refs) {
      try {
        await this.getChunk(id);
      } catch (err) {
        bad.push({ chunk: id, error: (err as Error).message, backups: [...users].sort() });
        // set aside (as Proxmox Backup Server does): the next backup with the same data writes it again,
        // which heals every backup that names it; GC removes the damaged copy
        if (existsSync(this.chunkPath(id)))
          await rename(this.chunkPath(id), `${this.chunkPath(id)}.bad`).catch(() => {});
      }
      onProgress(++done, refs.size);
    }
    const broken = new Set(bad.flatMap((b) => b.backups));
    return {
      backups: backups.length,
      chunks: refs.size,
      bad,
      broken: backups.filter((m) => broken.has(m.id)).map((m) => ({ id: m.id, vm: m.vm.name })),
    };
  }

  /**
   * Garbage collection: marks every chunk the complete backups' indexes name and removes the others, with
   * what dead writers left (partial backups, half-written chunk files). Never from access times: a chunk is
   * kept exactly when an index names it. The caller makes sure no backup writes into the repository
   * meanwhile (its chunks are named by no index yet).
   */
  async gc(onProgress: (done: number, total: number) => void = () => {}): Promise<GcReport> {
    // the lock keeps backups of every host sharing the repository out while chunks are judged
    const lock = join(this.path, GC_LOCK);
    const other = await this.gcLock();
    if (other)
      throw new NfError('invalid_state', `garbage collection runs on the repository already (${other})`);
    await writeFile(lock, JSON.stringify({ ...me(), at: new Date().toISOString() }));
    const beat = heartbeat(lock);
    try {
      const writers = await this.liveWriters();
      if (writers.length > 0)
        throw new NfError(
          'invalid_state',
          `a backup is being written into the repository (${writers.join(', ')}); collect garbage after it`,
        );
      return await this.collect(onProgress);
    } finally {
      clearInterval(beat);
      await rm(lock, { force: true });
    }
  }

  private async collect(onProgress: (done: number, total: number) => void): Promise<GcReport> {
    const keep = await this.references(await this.listBackups());
    for (const vm of await readdir(join(this.path, 'backups')).catch(() => [] as string[]))
      for (const f of await readdir(join(this.path, 'backups', vm)).catch(() => [] as string[]))
        if (f.startsWith('.') && f.endsWith('.partial'))
          await rm(join(this.path, 'backups', vm, f), { recursive: true, force: true });
    const root = join(this.path, 'chunks');
    const dirs = await readdir(root).catch(() => [] as string[]);
    const report: GcReport = { keptChunks: 0, removedChunks: 0, freedBytes: 0 };
    let done = 0;
    for (const d of dirs) {
      for (const f of await readdir(join(root, d)).catch(() => [] as string[])) {
        const path = join(root, d, f);
        if (HASH_RE.test(f) && keep.has(f)) {
          report.keptChunks++;
          continue;
        }
        report.freedBytes += (await stat(path).catch(() => ({ size: 0 }))).size;
        await rm(path, { force: true });
        if (HASH_RE.test(f)) report.removedChunks++;
      }
      onProgress(++done, dirs.length);
    }
    return report;
  }

  /** Flushes the repository's whole file system (syncfs) so every chunk written so far is stable. */
  async sync(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const p = spawn('sync', ['-f', this.path], { stdio: 'ignore' });
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sync -f exited with ${code}`))));
    });
  }
}

/** GC's lock file in a repository (JSON: who, since when), touched while it runs. */
const GC_LOCK = 'gc.lock';
/** A writer's partial directory and GC's lock are touched this often; older than LIVE_MS they are dead. */
const BEAT_MS = 10_000;
const LIVE_MS = 60_000;

/** Who writes a backup: in its partial directory. */
const WRITER = 'writer.json';

interface Holder {
  by: string;
  /** The machine's boot id: a process of this very boot can be checked by its pid. */
  boot: string;
  pid: number;
}

let bootId: string | undefined;
function me(): Holder {
  bootId ??= (() => {
    try {
      return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      return '';
    }
  })();
  return { by: `${hostname()} pid ${process.pid}`, boot: bootId, pid: process.pid };
}

/**
 * Whether a writer or a collector is alive: its mark (`touched`) was touched within LIVE_MS (it beats
 * every BEAT_MS, from any host), and, when its holder ran on this machine in this boot, its process
 * still exists (a `serve` killed -9 leaves a fresh mark, but is dead at once).
 */
async function alive(touched: string, holderFile: string): Promise<boolean> {
  const st = await stat(touched).catch(() => undefined);
  if (!st || Date.now() - st.mtimeMs >= LIVE_MS) return false;
  const h = await readFile(holderFile, 'utf8').then(
    (t) => JSON.parse(t) as Partial<Holder>,
    () => undefined,
  );
  return !(h?.boot && h.boot === me().boot && typeof h.pid === 'number' && !pidAlive(h.pid));
}

function heartbeat(path: string): ReturnType<typeof setInterval> {
  const t = setInterval(() => {
    const now = new Date();
    void utimes(path, now, now).catch(() => {});
  }, BEAT_MS);
  t.unref?.();
  return t;
}

export class BackupWriter {
  private readonly beat: ReturnType<typeof setInterval>;
  constructor(
    readonly repo: Repository,
    private readonly partial: string,
    private readonly final: string,
  ) {
    this.beat = heartbeat(partial);
  }

  async writeIndex(index: DiskIndex): Promise<void> {
    checkId('disk id', index.disk);
    await this.repo.writeJson(join(this.partial, `${index.disk}.index.json`), index);
  }

  async commit(manifest: BackupManifest): Promise<void> {
    await this.repo.sync();
    await this.repo.writeJson(join(this.partial, 'manifest.json'), manifest);
    clearInterval(this.beat);
    await rm(join(this.partial, WRITER), { force: true });
    await rename(this.partial, this.final);
    await this.repo.sync();
  }

  async abort(): Promise<void> {
    clearInterval(this.beat);
    await rm(this.partial, { recursive: true, force: true });
  }
}
