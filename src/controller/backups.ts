/**
 * Backups: repositories (a directory on a host: local disk or an NFS mount) registered in etcd, backups of
 * VMs into them as tasks, and restores into new VMs. The host that runs the VM reads its disks; in this
 * first step that is the host of the API the request reaches (a VM on another host is refused, clearly).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import type { Ext4 } from '../backup/ext4';
import { backupFilesystems, type FilesystemInfo, openFilesystem } from '../backup/files';
import {
  type BackupProgress,
  openRepository,
  type RestoreVolumeRequest,
  type VmBackupRequest,
} from '../backup/node-backup';
import { type BackupManifest, type GcReport, KEY_BYTES, newBackupId, Repository } from '../backup/repository';
import { applyRetention, type Retention } from '../backup/retention';
import { NfError, toNfError } from '../errors';
import type { Store } from '../store/store';
import { bytes } from '../util/format';
import { writeFileAtomic } from '../util/fs';
import type { HostPaths } from '../util/host-paths';
import type { KeyedLock } from '../util/lock';
import { createLogger } from '../util/log';
import { deferred, waitFor } from '../util/wait';
import { keys, type TaskRecord, type VmRecord } from './records';
import type { TaskLog } from './tasks';
import type { VmService, VmView } from './vms';

const log = createLogger('backups');
const NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export interface RepositoryRecord {
  name: string;
  path: string;
  /** Client-side encryption: the key is a file on the repository's host (keyFile()), never in etcd. */
  encrypted?: boolean;
  /** The repository's own id (repo.json): names its key file. */
  repoId?: string;
  /** The host whose file system holds it (where it was added). */
  node: string;
  /**
   * The path is the same storage on every host (an NFS mount, say): VMs of any host are backed up into it
   * by their own host, and any host's API reads it.
   */
  shared?: boolean;
  createdAt: string;
}

export interface RepositoryView extends Omit<RepositoryRecord, 'repoId'> {
  /** An encrypted repository's key file on its host (the path; the key itself is never shown). */
  keyFile?: string;
  id?: string;
  backups?: number;
  usage?: { chunks: number; bytes: number };
  /** Why the directory cannot be read right now. */
  error?: string;
}

export interface BackupView extends Omit<BackupManifest, 'config'> {
  repository: string;
  /** Bytes the backup's disks hold (their size, zeros included). */
  sizeBytes: number;
  config: { name: string; vcpus: number; memoryMiB: number; disks: number };
}

interface LocalNode {
  backupVm(req: VmBackupRequest, onProgress: (p: BackupProgress) => void): Promise<BackupManifest>;
  restoreVolume(
    req: RestoreVolumeRequest,
    onProgress: (done: number, total: number) => void,
  ): Promise<{ writtenBytes: number }>;
  deleteVolume(pool: string, volume: string): Promise<void>;
  hasPool(name: string): boolean;
  vmStatus(id: string): { state: string };
}

export interface BootVerifyResult {
  passed: boolean;
  at: string;
  agentAfterMs?: number;
  reason?: string;
  totalMs?: number;
}

/** File restore keeps a few opened file systems for this long after their last use. */
const FS_IDLE_MS = 120_000;
const OPEN_FS_MAX = 4;

export class BackupService {
  /** Backups writing into each repository (by path), and repositories being garbage-collected. */
  private readonly writing = new Map<string, number>();
  private readonly collecting = new Set<string>();
  private readonly usageCache = new Map<string, { at: number; usage: { chunks: number; bytes: number } }>();
  private readonly openFilesystems = new Map<string, { at: number; fs: Promise<Ext4> }>();

  constructor(
    private readonly store: Store,
    private readonly vms: VmService,
    private readonly lock: KeyedLock,
    private readonly tasks: TaskLog,
    private readonly nodeName: string,
    private readonly node: LocalNode,
    /** Another host's node (a VM of that host is backed up by it). */
    private readonly remote: (name: string) => Pick<LocalNode, 'backupVm' | 'vmStatus'>,
    private readonly makeRecord: (
      source: VmRecord,
      id: string,
      input: { name: string; description?: string },
      pool: string | undefined,
    ) => VmRecord,
    private readonly hostPaths: HostPaths,
    /** This host's own place for repositories (under its data dir): always allowed. */
    private readonly backupRoot: string,
    /** Keys of encrypted repositories on this host. */
    private readonly keysDir: string,
    /** VM operations a restore and a boot verification use. */
    private readonly ops: {
      start(id: string): Promise<unknown>;
      /** Stops (pulls the plug) and deletes the VM with its volumes. */
      remove(id: string): Promise<unknown>;
      /** The guest agent answers (guest-ping). */
      ping(id: string): Promise<unknown>;
    },
    private readonly onCreated: () => void = () => {},
  ) {}

  // ---- repositories ----

  async listRepositories(): Promise<RepositoryView[]> {
    const recs = await this.store.list<RepositoryRecord>(keys.backupRepos);
    return Promise.all(recs.map((r) => this.repoView(r.value)));
  }

  async getRepository(name: string): Promise<RepositoryView> {
    return this.repoView(await this.repoRecord(name));
  }

  private async repoView(rec: RepositoryRecord): Promise<RepositoryView> {
    const { repoId: _id, ...r } = rec;
    const keyFile = rec.encrypted ? this.keyOf(rec).keyFile : undefined;
    if (!this.reachable(rec)) return { ...r, ...(keyFile ? { keyFile } : {}) };
    try {
      const repo = await this.openRec(rec);
      return {
        ...r,
        ...(keyFile ? { keyFile } : {}),
        id: repo.info.id,
        backups: await repo.countBackups(),
        usage: await this.usage(repo),
      };
    } catch (err) {
      return { ...r, error: (err as Error).message };
    }
  }

  /**
   * A repository's use: a stat of every chunk, so kept for a minute (the web UI asks every few seconds)
   * and dropped when this service changes the repository.
   */
  private async usage(repo: Repository): Promise<{ chunks: number; bytes: number }> {
    const hit = this.usageCache.get(repo.path);
    if (hit && Date.now() - hit.at < 60_000) return hit.usage;
    const usage = await repo.usage();
    this.usageCache.set(repo.path, { at: Date.now(), usage });
    return usage;
  }

  private async repoRecord(name: string): Promise<RepositoryRecord> {
    const cur = await this.store.get<RepositoryRecord>(keys.backupRepo(name));
    if (!cur) throw new NfError('not_found', `no backup repository "${name}"`);
    return cur.value;
  }

  /** Registers a directory of this host as a repository (made there if empty, opened if it is one). */
  async createRepository(input: {
    name: string;
    path: string;
    /** Encrypt a new repository (a key is made unless `key` is given). */
    encrypt?: boolean;
    /** The key, base64 of 32 bytes: to encrypt with one the admin holds, or to open an encrypted one. */
    key?: string;
    /** The path is shared storage mounted at the same place on every host. */
    shared?: boolean;
  }): Promise<RepositoryView> {
    if (!NAME_RE.test(input.name))
      throw new NfError(
        'validation_failed',
        'a repository name is 1-63 lowercase letters, digits and dashes',
      );
    if (
      !isAbsolute(input.path) ||
      normalize(input.path) !== input.path.replace(/\/+$/, '') ||
      input.path === '/'
    )
      throw new NfError(
        'validation_failed',
        `the repository path must be an absolute, normalised directory, not ${input.path}`,
      );
    // like every host path the API takes: only under the directories this host allows (and its own)
    if (!input.path.startsWith(`${this.backupRoot}/`)) this.hostPaths.check(input.path, 'path');
    if (await this.store.get(keys.backupRepo(input.name)))
      throw new NfError('already_exists', `a backup repository named "${input.name}" exists`);
    for (const r of await this.store.list<RepositoryRecord>(keys.backupRepos))
      if ((r.value.node === this.nodeName || r.value.shared) && r.value.path === input.path)
        throw new NfError('already_exists', `${input.path} is repository "${r.value.name}" already`);
    let key: Buffer | undefined;
    if (input.key !== undefined) {
      key = Buffer.from(input.key, 'base64');
      if (key.length !== KEY_BYTES || key.toString('base64') !== input.key.replace(/\s/g, ''))
        throw new NfError('validation_failed', `key: base64 of ${KEY_BYTES} bytes`);
    }
    const existing = existsSync(join(input.path, 'repo.json'))
      ? await Repository.describe(input.path)
      : undefined;
    if (existing?.encryption && !key) {
      // the key may be on this host already (the repository was registered here before)
      if (existsSync(this.keyFile(existing.id))) key = await readFile(this.keyFile(existing.id));
      else throw new NfError('forbidden', `${input.path} is an encrypted repository: give its key`);
    }
    if (!existing && key && input.encrypt === false)
      throw new NfError('validation_failed', 'a key was given with encrypt: false');
    if (!existing && input.encrypt) key ??= randomBytes(KEY_BYTES);
    // checks the key of an existing repository (wrong: forbidden) before anything is written
    const repo = await Repository.init(input.path, key);
    if (repo.encrypted) {
      await mkdir(this.keysDir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.keyFile(repo.info.id), key!, 0o600);
    }
    const rec: RepositoryRecord = {
      name: input.name,
      path: input.path,
      node: this.nodeName,
      createdAt: new Date().toISOString(),
      repoId: repo.info.id,
      ...(repo.encrypted ? { encrypted: true } : {}),
      ...(input.shared ? { shared: true } : {}),
    };
    await this.store.txn(
      {
        when: [{ key: keys.backupRepo(rec.name), absent: true }],
        put: [{ key: keys.backupRepo(rec.name), value: rec }],
      },
      `a backup repository named "${rec.name}" was just made`,
    );
    log.info('backup repository added', { name: rec.name, path: rec.path });
    return this.repoView(rec);
  }

  /** Forgets a repository; its directory and backups stay on disk (register it again to use them). */
  async deleteRepository(name: string): Promise<void> {
    await this.repoRecord(name);
    await this.store.txn({ delete: [keys.backupRepo(name)] });
  }

  /** Whether this host reads the repository: its own, or a shared one (mounted on every host). */
  private reachable(r: RepositoryRecord): boolean {
    return r.node === this.nodeName || r.shared === true;
  }

  private async open(name: string): Promise<Repository> {
    const r = await this.repoRecord(name);
    if (!this.reachable(r))
      throw new NfError(
        'not_implemented',
        `repository "${name}" is on host ${r.node}: use that host's API (backups through another host are not built yet)`,
      );
    return this.openRec(r);
  }

  /** Where an encrypted repository's key lives on this host (0600 in a 0700 directory). */
  private keyFile(repoId: string): string {
    return join(this.keysDir, `${repoId}.key`);
  }

  private keyOf(r: RepositoryRecord): { keyFile?: string } {
    return r.encrypted && r.repoId ? { keyFile: this.keyFile(r.repoId) } : {};
  }

  private openRec(r: RepositoryRecord): Promise<Repository> {
    return openRepository(r.path, this.keyOf(r).keyFile);
  }

  // ---- backups ----

  async list(filter: { repository?: string; vm?: string } = {}): Promise<BackupView[]> {
    const repos = filter.repository
      ? [await this.repoRecord(filter.repository)]
      : (await this.store.list<RepositoryRecord>(keys.backupRepos)).map((r) => r.value);
    let vmId: string | undefined;
    if (filter.vm) vmId = await this.vmId(filter.vm);
    const out: BackupView[] = [];
    for (const r of repos) {
      if (!this.reachable(r)) continue;
      const repo = await this.openRec(r).catch(() => undefined);
      if (!repo) continue;
      for (const m of await repo.listBackups(vmId)) out.push(view(r.name, m));
    }
    return out.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  }

  /** A VM's id from its name or id; a deleted VM's backups stay reachable by its id. */
  private async vmId(ref: string): Promise<string> {
    return this.vms.find(ref).then(
      (v) => v.value.id,
      () => ref,
    );
  }

  /** Finds a backup by its id, in one repository or in every one of this host. */
  private async locate(
    id: string,
    repository?: string,
  ): Promise<{ name: string; rec: RepositoryRecord; repo: Repository; m: BackupManifest }> {
    const repos = repository
      ? [await this.repoRecord(repository)]
      : (await this.store.list<RepositoryRecord>(keys.backupRepos)).map((r) => r.value);
    for (const r of repos) {
      if (!this.reachable(r)) continue;
      const repo = await this.openRec(r).catch(() => undefined);
      const m = await repo?.findBackup(id);
      if (repo && m) return { name: r.name, rec: r, repo, m };
    }
    throw new NfError('not_found', `no backup ${id}${repository ? ` in repository "${repository}"` : ''}`);
  }

  async get(id: string, repository?: string): Promise<BackupView> {
    const { name, m } = await this.locate(id, repository);
    return view(name, m);
  }

  async delete(id: string, repository?: string): Promise<void> {
    const { name, repo, m } = await this.locate(id, repository);
    await repo.deleteBackup(m.vm.id, m.id);
    log.info('backup deleted', { repository: name, vm: m.vm.name, id });
  }

  // ---- file restore ----

  /** The file systems of a backup's disks, and whether each can be browsed. */
  async filesystems(id: string, repository?: string): Promise<FilesystemInfo[]> {
    const { repo, m } = await this.locate(id, repository);
    return backupFilesystems(repo, m);
  }

  /**
   * One file system of a backup, opened for browsing. An admin clicks through directories one request at
   * a time, so the last few opened stay a while (with their decoded chunk cache).
   */
  private async openFs(id: string, fsId: string, repository?: string): Promise<Ext4> {
    const { rec, repo, m } = await this.locate(id, repository);
    const key = `${rec.path}\0${m.id}\0${fsId}`;
    const now = Date.now();
    for (const [k, v] of this.openFilesystems) if (now - v.at > FS_IDLE_MS) this.openFilesystems.delete(k);
    let hit = this.openFilesystems.get(key);
    if (!hit) {
      hit = { at: now, fs: openFilesystem(repo, m, fsId) };
      hit.fs.catch(() => this.openFilesystems.delete(key));
      this.openFilesystems.set(key, hit);
      while (this.openFilesystems.size > OPEN_FS_MAX)
        this.openFilesystems.delete(this.openFilesystems.keys().next().value!);
    }
    hit.at = now;
    return hit.fs;
  }

  /** A directory of a backed-up file system. */
  async browse(id: string, fsId: string, path: string, repository?: string) {
    const fs = await this.openFs(id, fsId, repository);
    return { path, ...(await fs.list(path)) };
  }

  /** A file of a backed-up file system, streamed; the download is logged with who took it. */
  async download(id: string, fsId: string, path: string, user: string, repository?: string) {
    const fs = await this.openFs(id, fsId, repository);
    const file = await fs.open(path);
    log.info('file restored from a backup', {
      backup: id,
      filesystem: fsId,
      path,
      user,
      bytes: file.entry.size,
    });
    return file;
  }

  /** Starts a backup of a VM (running or stopped) as a task; its result is the backup. */
  async backup(ref: string, input: { repository: string; notes?: string }, user: string) {
    return (await this.startBackup(ref, input, user)).task;
  }

  /** backup(), with a promise of its outcome (a job waits for each VM's backup in turn). */
  async startBackup(
    ref: string,
    input: { repository: string; notes?: string },
    user: string,
  ): Promise<{ task: TaskRecord; done: Promise<BackupView> }> {
    const settled = deferred<BackupView>();
    const done = settled.promise;
    done.catch(() => {}); // a caller that does not wait must not see an unhandled rejection
    const vm = (await this.vms.find(ref)).value;
    const repo = await this.repoRecord(input.repository);
    if (!this.reachable(repo))
      throw new NfError(
        'not_implemented',
        `repository "${repo.name}" is on host ${repo.node}, not on ${this.nodeName}, and not shared: use that host's API`,
      );
    this.writer(vm, repo);
    await this.openRec(repo);
    const backupId = newBackupId();
    const task = await this.tasks.start(
      'vm.backup',
      vm.name,
      user,
      async (progress, ctl) => {
        try {
          const v = await this.runBackup(vm.id, repo, backupId, input.notes, progress, ctl);
          settled.resolve(v);
          return v;
        } catch (err) {
          settled.reject(err);
          throw err;
        }
      },
      { details: { repository: repo.name, backup: backupId } },
    );
    return { task, done };
  }

  /**
   * One backup. The VM's lock is held while its disks are captured (a running VM: until the point in time
   * is fixed, milliseconds; a stopped one: for the whole read, so it cannot start meanwhile); a running VM
   * can then be stopped, migrated away (refused by its host while read) or changed while its disks are read.
   */
  private async runBackup(
    vmId: string,
    repo: RepositoryRecord,
    backupId: string,
    notes: string | undefined,
    progress: (p: number) => void,
    ctl: { details(d: Record<string, unknown>): void; result(r: Record<string, unknown>): void },
  ): Promise<BackupView> {
    const t0 = Date.now();
    let lastPct = -1;
    let name = vmId;
    const captured = deferred<void>();
    let host: Pick<LocalNode, 'backupVm' | 'vmStatus'> = this.node;
    const reading = await this.lock.run(vmId, async () => {
      const cur = (await this.vms.find(vmId)).value;
      name = cur.name;
      host = this.writer(cur, repo);
      if (cur.migration) throw new NfError('invalid_state', `VM "${cur.name}" is migrating`);
      const running = host.vmStatus(cur.id).state !== 'stopped';
      const key = host === this.node ? this.keyOf(repo) : await this.keyBytes(repo);
      const work = this.writingInto(repo.path, () =>
        host.backupVm(
          {
            repository: repo.path,
            ...key,
            backupId,
            vm: { id: cur.id, name: cur.name },
            config: cur as unknown as Record<string, unknown>,
            disks: cur.disks.map((d) => ({
              id: d.id,
              pool: d.pool,
              volume: d.volume,
              sizeBytes: d.sizeBytes,
            })),
            ...(notes ? { notes } : {}),
          },
          (p) => {
            if (p.phase === 'captured') captured.resolve();
            if (p.phase === 'reading' && p.totalBytes) {
              const pct = Math.floor((p.doneBytes! / p.totalBytes) * 100);
              if (pct >= lastPct + 5 || pct === 100) {
                lastPct = pct;
                progress(pct / 100);
                ctl.details({
                  phase: p.phase,
                  disk: p.disk,
                  doneBytes: p.doneBytes,
                  totalBytes: p.totalBytes,
                });
              }
            } else ctl.details({ phase: p.phase });
          },
        ),
      );
      work.catch(() => {}); // awaited below, outside the lock when the VM runs
      if (running) await Promise.race([captured.promise, work]);
      else await work;
      return { work, running };
    });
    let manifest: BackupManifest;
    try {
      manifest = await reading.work;
    } catch (err) {
      const state = host.vmStatus(vmId).state;
      if (reading.running && state !== 'running' && state !== 'paused')
        throw new NfError(
          'cancelled',
          `VM "${name}" stopped during its backup; nothing was stored`,
          undefined,
          {
            cause: err,
          },
        );
      throw err;
    }
    const v = view(repo.name, manifest);
    ctl.result({ ...v, totalMs: Date.now() - t0 });
    log.info('VM backed up', {
      vm: name,
      backup: backupId,
      read: bytes(manifest.disks.reduce((n, d) => n + d.readBytes, 0)),
      stored: bytes(manifest.disks.reduce((n, d) => n + d.newBytesStored, 0)),
      modes: manifest.disks.map((d) => d.mode).join(','),
    });
    return v;
  }

  /** Deletes the backups of a VM that a retention policy does not keep; returns their ids. */
  async prune(repository: string, vmId: string, retention: Retention): Promise<string[]> {
    const repo = await this.open(repository);
    const list = await repo.listBackups(vmId);
    const { remove } = applyRetention(
      list.map((m) => ({ id: m.id, at: m.pointInTime })),
      retention,
    );
    for (const id of remove) await repo.deleteBackup(vmId, id);
    if (remove.length > 0) log.info('backups pruned', { repository, vm: vmId, removed: remove.length });
    return remove;
  }

  /** GC now, in the caller's task (a job after pruning); skipped (undefined) while a backup writes there. */
  async collect(repository: string): Promise<GcReport | undefined> {
    const rec = await this.repoRecord(repository);
    const repo = await this.open(repository);
    if (this.writing.has(rec.path) || this.collecting.has(rec.path)) return undefined;
    this.collecting.add(rec.path);
    try {
      return await repo.gc();
    } finally {
      this.collecting.delete(rec.path);
      this.usageCache.delete(rec.path);
    }
  }

  /** The host a repository is on (jobs run on the controller of that host). */
  /** Where a repository is: its host, and whether every host reaches it (shared storage). */
  async repositoryPlace(name: string): Promise<{ node: string; shared: boolean }> {
    const r = await this.repoRecord(name);
    return { node: r.node, shared: r.shared === true };
  }

  private async writingInto<T>(path: string, fn: () => Promise<T>): Promise<T> {
    if (this.collecting.has(path))
      throw new NfError('invalid_state', 'the repository is being garbage-collected; back up when it ends');
    this.writing.set(path, (this.writing.get(path) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      this.usageCache.delete(path);
      const n = (this.writing.get(path) ?? 1) - 1;
      if (n > 0) this.writing.set(path, n);
      else this.writing.delete(path);
    }
  }

  /** Re-reads and re-hashes the chunks of one backup, or of every backup of a repository, as a task. */
  async verify(target: { backup: string; repository?: string } | { repository: string }, user: string) {
    let name: string;
    let repo: Repository;
    let only: string[] | undefined;
    if ('backup' in target) {
      const found = await this.locate(target.backup, target.repository);
      name = found.name;
      repo = found.repo;
      only = [found.m.id];
    } else {
      name = target.repository;
      repo = await this.open(name);
    }
    return this.tasks.start(
      'backup.verify',
      only ? only[0]! : name,
      user,
      async (progress, ctl) => {
        let last = -1;
        const report = await repo.verify(only, (done, total) => {
          const pct = Math.floor((done / Math.max(1, total)) * 100);
          if (pct >= last + 5) {
            last = pct;
            progress(pct / 100);
          }
        });
        ctl.result({ repository: name, ...report });
        if (report.bad.length > 0)
          log.error('backup verification found damaged chunks', {
            repository: name,
            bad: report.bad.length,
            broken: report.broken.map((b) => b.id).join(','),
          });
        return report;
      },
      { details: { repository: name, ...(only ? { backup: only[0] } : {}) } },
    );
  }

  /** Removes the chunks no backup names (after deletes), as a task; refused while a backup writes there. */
  async gc(repository: string, user: string) {
    const rec = await this.repoRecord(repository);
    const repo = await this.open(repository);
    if (this.writing.has(rec.path) || this.collecting.has(rec.path))
      throw new NfError(
        'invalid_state',
        `a backup or a GC runs in repository "${repository}"; try when it ends`,
      );
    this.collecting.add(rec.path);
    try {
      return await this.tasks.start(
        'backup.gc',
        repository,
        user,
        async (progress, ctl) => {
          try {
            const report = await repo.gc((done, total) => progress(done / Math.max(1, total)));
            ctl.result({ repository, ...report });
            log.info('backup repository garbage-collected', { repository, ...report });
            return report;
          } finally {
            this.collecting.delete(rec.path);
            this.usageCache.delete(rec.path);
          }
        },
        { details: { repository } },
      );
    } catch (err) {
      this.collecting.delete(rec.path);
      this.usageCache.delete(rec.path);
      throw err;
    }
  }

  /** Restores a backup into a new VM (new id and MAC addresses; disks into `pool` or their own pools). */
  async restore(
    id: string,
    input: { name: string; pool?: string; repository?: string; start?: boolean },
    user: string,
  ) {
    const found = await this.locate(id, input.repository);
    const record = await this.plannedRestore(found.m, input.name, input.pool);
    return this.tasks.start('backup.restore', input.name, user, async (progress, ctl) => {
      await this.restoreInto(found, record, progress, ctl);
      log.info('backup restored into a new VM', { backup: id, vm: record.name });
      const result: { vm: string; id: string; started?: boolean; startError?: string } = {
        vm: record.name,
        id: record.id,
      };
      if (input.start)
        await this.ops.start(record.id).then(
          () => {
            result.started = true;
          },
          (err: Error) => {
            result.startError = err.message;
          },
        );
      ctl.result(result);
      return result;
    });
  }

  /**
   * Restores a backup over its own VM, which must be stopped: each disk in the backup is written into a
   * new volume, the record then points at the new volumes (its snapshots, which lived in the old ones, go)
   * and the old volumes are deleted. Until the record changes nothing of the VM is touched: a failure
   * leaves it as it was. The VM's hardware stays as it is now; disks not in the backup stay too.
   */
  async restoreInPlace(id: string, input: { repository?: string }, user: string) {
    const found = await this.locate(id, input.repository);
    const { m } = found;
    const cur = await this.vms.find(m.vm.id).catch(() => {
      throw new NfError(
        'not_found',
        `VM ${m.vm.name} (${m.vm.id}) no longer exists: restore the backup as a new VM`,
      );
    });
    const stopped = (vm: VmRecord) => {
      this.checkLocal(vm, 'restore');
      if (vm.template) throw new NfError('invalid_state', `VM "${vm.name}" is a template`);
      if (vm.power !== 'stopped' || this.node.vmStatus(vm.id).state !== 'stopped')
        throw new NfError('invalid_state', `VM "${vm.name}" must be stopped to be restored in place`);
    };
    stopped(cur.value);
    return this.tasks.start('backup.restore', cur.value.name, user, (progress, ctl) =>
      this.lock.run(m.vm.id, async () => {
        const now = await this.vms.find(m.vm.id);
        stopped(now.value);
        // each disk of the backup the VM still has, into a new volume beside the old one
        const made = m.disks.flatMap((bd) => {
          const disk = now.value.disks.find((x) => x.id === bd.id);
          const volume = `vm-${m.vm.id}-${bd.id}-r${randomBytes(3).toString('hex')}.qcow2`;
          return disk ? [{ id: bd.id, pool: disk.pool, volume, sizeBytes: bd.sizeBytes }] : [];
        });
        if (made.length === 0)
          throw new NfError('invalid_state', `VM "${now.value.name}" has none of the backup's disks now`);
        await this.writeVolumes(found, made, progress, ctl, () =>
          this.store.txn(
            {
              when: [{ key: now.key, revision: now.revision }],
              put: [
                {
                  key: now.key,
                  value: {
                    ...now.value,
                    disks: now.value.disks.map((d) => {
                      const n = made.find((x) => x.id === d.id);
                      if (!n) return d;
                      const { cloneOf: _c, image: _i, ...rest } = d;
                      return { ...rest, volume: n.volume, sizeBytes: n.sizeBytes };
                    }),
                    snapshots: [],
                    updatedAt: new Date().toISOString(),
                  },
                },
              ],
            },
            `VM "${now.value.name}" changed during the restore; nothing was changed`,
          ),
        );
        const old = now.value.disks.filter((d) => made.some((x) => x.id === d.id));
        for (const d of old)
          await this.node.deleteVolume(d.pool, d.volume).catch((err: Error) =>
            log.warn('an old volume of a VM restored in place stays', {
              volume: d.volume,
              err: err.message,
            }),
          );
        log.info('backup restored in place', { backup: id, vm: now.value.name, disks: made.length });
        const result = {
          vm: now.value.name,
          id: m.vm.id,
          inPlace: true,
          disks: made.map((d) => d.id),
          ...(now.value.snapshots.length > 0
            ? { snapshotsDropped: now.value.snapshots.map((x) => x.name) }
            : {}),
        };
        ctl.result(result);
        return result;
      }),
    );
  }

  /** The record a restore makes (checked: free name, the pool exists here, every disk in the backup). */
  private async plannedRestore(m: BackupManifest, name: string, pool?: string): Promise<VmRecord> {
    if (await this.store.get(keys.vmName(name)))
      throw new NfError('already_exists', `a VM named "${name}" already exists; pick another name`);
    if (pool && !this.node.hasPool(pool))
      throw new NfError('not_found', `storage pool "${pool}" does not exist on host ${this.nodeName}`);
    const source = m.config as unknown as VmRecord;
    const record = this.makeRecord(source, randomUUID(), { name }, pool);
    record.node = this.nodeName;
    for (const d of record.disks) {
      const was = m.disks.find((x) => x.id === d.id);
      if (!was) throw new NfError('data_corrupted', `backup ${m.id} has no data for disk ${d.id}`);
      d.sizeBytes = was.sizeBytes;
    }
    return record;
  }

  /** Writes every disk of a backup into new volumes, then the VM record; nothing stays on a failure. */
  private async restoreInto(
    found: { rec: RepositoryRecord; repo: Repository; m: BackupManifest },
    record: VmRecord,
    progress: (p: number) => void,
    ctl: { details(d: Record<string, unknown>): void },
  ): Promise<void> {
    await this.writeVolumes(found, record.disks, progress, ctl, () =>
      this.store.txn(
        {
          when: [{ key: keys.vmName(record.name), absent: true }],
          put: [
            { key: keys.vm(record.id), value: record },
            { key: keys.vmName(record.name), value: record.id },
          ],
        },
        `a VM named "${record.name}" was just created; pick another name`,
      ),
    );
    this.onCreated();
  }

  /**
   * Writes disks of a backup into new volumes (each `id` is a disk of the backup), then runs `commit`
   * (the record that names them); a failure of either deletes every volume made.
   */
  private async writeVolumes(
    found: { rec: RepositoryRecord; repo: Repository; m: BackupManifest },
    targets: { id: string; pool: string; volume: string; sizeBytes: number }[],
    progress: (p: number) => void,
    ctl: { details(d: Record<string, unknown>): void },
    commit: () => Promise<unknown>,
  ): Promise<void> {
    const total = targets.reduce((n, d) => n + d.sizeBytes, 0);
    const made: { pool: string; volume: string }[] = [];
    let before = 0;
    try {
      for (const d of targets) {
        ctl.details({ phase: 'writing', disk: d.id });
        await this.node.restoreVolume(
          {
            repository: found.repo.path,
            ...this.keyOf(found.rec),
            vmId: found.m.vm.id,
            backupId: found.m.id,
            diskId: d.id,
            pool: d.pool,
            volume: d.volume,
            sizeBytes: d.sizeBytes,
          },
          (done) => progress(Math.min(0.99, (before + done) / Math.max(1, total))),
        );
        made.push({ pool: d.pool, volume: d.volume });
        before += d.sizeBytes;
      }
      await commit();
    } catch (err) {
      for (const v of made) await this.node.deleteVolume(v.pool, v.volume).catch(() => {});
      throw err;
    }
  }

  /**
   * Boot verification (as Veeam's SureBackup): the backup restored into a VM of its own with no network,
   * started, and passed when its guest agent answers within the time allowed; the VM and its volumes are
   * deleted afterwards whatever happened. The outcome is kept with the backup (bootVerify in its view).
   */
  async bootVerify(id: string, input: { repository?: string; timeoutSec?: number }, user: string) {
    const found = await this.locate(id, input.repository);
    const name = `verify-${found.m.vm.name.slice(0, 40)}-${randomBytes(2).toString('hex')}`;
    const record = await this.plannedRestore(found.m, name);
    record.description = `boot verification of backup ${found.m.id} (deleted when it ends)`;
    record.networks = []; // isolated: it must not answer on its source's addresses
    delete record.onBoot;
    delete record.ha;
    delete record.bootOrder;
    const timeoutMs = (input.timeoutSec ?? 300) * 1000;
    return this.tasks.start(
      'backup.boot-verify',
      found.m.id,
      user,
      async (progress, ctl) => {
        const t0 = Date.now();
        let outcome: BootVerifyResult;
        let made = false;
        try {
          ctl.details({ phase: 'restoring', vm: name });
          await this.restoreInto(found, record, (p) => progress(p * 0.5), ctl);
          made = true;
          ctl.details({ phase: 'booting', vm: name });
          await this.ops.start(record.id);
          const bootAt = Date.now();
          await waitFor(
            async () => {
              const st = this.node.vmStatus(record.id).state;
              if (st !== 'running' && Date.now() - bootAt > 5000)
                throw new NfError('unavailable', `the VM is ${st} (it did not keep running)`);
              return this.ops.ping(record.id).then(
                () => true,
                () => false,
              );
            },
            { timeoutMs, intervalMs: 1000, what: 'the guest agent to answer' },
          );
          outcome = { passed: true, at: new Date().toISOString(), agentAfterMs: Date.now() - bootAt };
        } catch (err) {
          outcome = { passed: false, at: new Date().toISOString(), reason: toNfError(err).message };
        } finally {
          if (made) {
            ctl.details({ phase: 'cleaning up', vm: name });
            await this.ops
              .remove(record.id)
              .catch((err: Error) =>
                log.error('a boot-verification VM could not be deleted', { vm: name, err: err.message }),
              );
          }
        }
        outcome.totalMs = Date.now() - t0;
        await found.repo.setBootVerify(found.m.vm.id, found.m.id, outcome);
        ctl.result({ backup: found.m.id, vm: name, ...outcome });
        if (!outcome.passed) throw new NfError('unavailable', `boot verification failed: ${outcome.reason}`);
        return outcome;
      },
      { details: { repository: found.name, backup: found.m.id, vm: found.m.vm.name } },
    );
  }

  /**
   * The host that backs a VM up: its own host (this one, or another through the cluster), which must
   * reach the repository: the repository is on it, or shared.
   */
  private writer(vm: VmRecord, repo: RepositoryRecord): Pick<LocalNode, 'backupVm' | 'vmStatus'> {
    if (!vm.node || vm.node === this.nodeName) {
      if (!this.reachable(repo))
        throw new NfError(
          'invalid_state',
          `repository "${repo.name}" is on host ${repo.node} and not shared`,
        );
      return this.node;
    }
    if (repo.node !== vm.node && !repo.shared)
      throw new NfError(
        'invalid_state',
        `VM "${vm.name}" runs on host ${vm.node} and repository "${repo.name}" is on host ${repo.node}, not shared: back it up into a repository of ${vm.node} or a shared one (the same NFS mount on every host)`,
      );
    return this.remote(vm.node);
  }

  /** An encrypted repository's key for another host (over mTLS); it must be on this host. */
  private async keyBytes(repo: RepositoryRecord): Promise<{ key?: Buffer }> {
    const { keyFile } = this.keyOf(repo);
    if (!keyFile) return {};
    try {
      return { key: await readFile(keyFile) };
    } catch {
      throw new NfError(
        'forbidden',
        `the key of encrypted repository "${repo.name}" is not on host ${this.nodeName} (${keyFile}): copy it there from host ${repo.node} (mode 0600), or use that host's API`,
      );
    }
  }

  private checkLocal(vm: VmRecord, what: string): void {
    if (vm.node && vm.node !== this.nodeName)
      throw new NfError(
        'not_implemented',
        `VM "${vm.name}" runs on host ${vm.node}: ${what} it through that host's API (backups through another host are not built yet)`,
      );
    if (!vm.node) throw new NfError('invalid_state', `VM "${vm.name}" is not placed on a host yet`);
  }
}

function view(repository: string, m: BackupManifest): BackupView {
  const c = m.config as Partial<VmView> & { disks?: unknown[] };
  const { config: _c, ...rest } = m;
  return {
    ...rest,
    repository,
    sizeBytes: m.disks.reduce((n, d) => n + d.sizeBytes, 0),
    config: {
      name: String(c.name ?? m.vm.name),
      vcpus: Number(c.vcpus ?? 0),
      memoryMiB: Number(c.memoryMiB ?? 0),
      disks: c.disks?.length ?? 0,
    },
  };
}
