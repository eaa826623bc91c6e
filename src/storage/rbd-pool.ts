import { randomBytes } from 'node:crypto';
import { cephTool } from '../ceph/tools';
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

export const RBD_CAPABILITIES: StorageCapabilities = Object.freeze({
  shared: true,
  thin: true,
  snapshots: true,
  linkedClones: true,
  liveResize: true,
});

/** How a host reaches an RBD pool: a Ceph config (monitors, keyring path) and a cephx user. */
export interface RbdPoolConfig {
  /** NeuroFlow's name of the pool. */
  name: string;
  /** The Ceph pool that holds the images. */
  pool: string;
  /** ceph.conf path: `mon host` and `keyring` (0600, root). */
  conf: string;
  /** cephx user without the `client.` prefix. */
  user: string;
}

/** Features of every image (fast-diff makes `rbd du` quick; deep-flatten lets clones drop their parent). */
export const RBD_FEATURES = 'layering,exclusive-lock,object-map,fast-diff,deep-flatten';
/** The snapshot of an image that linked clones hang off (clone v2: no protect needed). */
export const CLONE_BASE_SNAPSHOT = 'nf-clone-base';

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;
const SNAPSHOT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;

interface RbdInfo {
  name: string;
  size: number;
  parent?: { pool: string; image: string; snapshot: string };
}
interface RbdLsEntry {
  image: string;
  size: number;
  snapshot?: string;
  parent?: { pool: string; image: string; snapshot: string };
}
interface RbdDu {
  images: { name: string; snapshot?: string; provisioned_size: number; used_size: number }[];
}

/**
 * The `rbd` storage driver: volumes are RBD images in one Ceph pool, reached by every host through
 * librbd (QEMU's rbd block driver, no kernel module). Runs the `rbd` and `ceph` tools (ceph-common) with
 * argv arrays; sizes in bytes.
 */
export class RbdPool implements StorageDriver {
  readonly type = 'rbd';
  readonly capabilities = RBD_CAPABILITIES;
  readonly name: string;

  constructor(readonly config: RbdPoolConfig) {
    this.name = config.name;
  }

  async capacity(): Promise<{ totalBytes: number; freeBytes: number }> {
    const s = await this.poolStats();
    return { totalBytes: s.max_avail + s.bytes_used, freeBytes: s.max_avail };
  }

  /** The pool's figures from the manager (a new pool shows a few seconds late: zeros until then). */
  private async poolStats(): Promise<{ max_avail: number; bytes_used: number }> {
    const df = await this.ceph<{
      pools: { name: string; stats: { max_avail: number; bytes_used: number } }[];
    }>(['df']);
    return df.pools.find((p) => p.name === this.config.pool)?.stats ?? { max_avail: 0, bytes_used: 0 };
  }

  async usage(): Promise<PoolUsage> {
    // `rbd du` reads the pool itself: it fails when the pool, the key or the monitors are wrong.
    const du = await this.rbdJson<RbdDu>(['du', '-p', this.config.pool]).catch((err: Error) => {
      if (/No such file or directory|\(2\)/.test(err.message))
        throw new NfError('not_found', `Ceph pool ${this.config.pool} does not exist`);
      throw err;
    });
    const stats = await this.poolStats();
    const heads = du.images.filter((i) => i.snapshot === undefined);
    return {
      // What the pool may still grow to (replication already counted in max_avail) plus what it holds.
      totalBytes: stats.max_avail + stats.bytes_used,
      freeBytes: stats.max_avail,
      virtualBytes: heads.reduce((n, i) => n + i.provisioned_size, 0),
      allocatedBytes: du.images.reduce((n, i) => n + i.used_size, 0),
      volumes: heads.length,
    };
  }

  async createVolume(volume: string, sizeBytes: number | undefined, clone?: CloneSource): Promise<void> {
    const spec = this.spec(volume);
    const existing = await this.info(volume);
    if (existing) return this.checkSame(volume, existing, sizeBytes, clone);
    if (clone?.volume && clone.snapshot) return this.copyAt(volume, sizeBytes, clone.image, clone.snapshot);
    try {
      if (clone) {
        const image = this.spec(clone.image);
        if (clone.format !== 'raw')
          throw new NfError(
            'validation_failed',
            `image ${clone.image} in an RBD pool must be raw, not ${clone.format}`,
          );
        if (!(await this.hasSnapshot(clone.image, CLONE_BASE_SNAPSHOT)))
          await this.rbd(['snap', 'create', `${image}@${CLONE_BASE_SNAPSHOT}`]);
        await this.rbd(['clone', '--rbd-default-clone-format', '2', `${image}@${CLONE_BASE_SNAPSHOT}`, spec]);
        if (sizeBytes !== undefined) {
          const made = await this.info(volume);
          if (made && sizeBytes > made.size) await this.rbd(['resize', '--size', `${sizeBytes}B`, spec]);
        }
      } else {
        if (sizeBytes === undefined) throw new NfError('validation_failed', `volume ${volume} needs a size`);
        await this.rbd(['create', '--size', `${sizeBytes}B`, '--image-feature', RBD_FEATURES, spec]);
      }
    } catch (err) {
      // Another call made it meanwhile: judged as a volume found at the start.
      const now = await this.info(volume).catch(() => undefined);
      if (now && /exists/i.test((err as Error).message)) return this.checkSame(volume, now, sizeBytes, clone);
      throw err;
    }
  }

  /**
   * A full copy of `source` as it was at `snapshot` (an RBD snapshot is read-only: the source may be
   * written meanwhile), made under a temporary name and renamed: a half-made copy is never taken for one.
   */
  private async copyAt(volume: string, sizeBytes: number | undefined, source: string, snapshot: string) {
    if (!(await this.hasSnapshot(source, snapshot)))
      throw new NfError('not_found', `volume ${source} has no snapshot "${snapshot}" in pool ${this.name}`);
    const tmp = `${volume.slice(0, 100)}.part-${randomBytes(4).toString('hex')}`;
    try {
      await this.rbd(['cp', '--no-progress', `${this.spec(source)}@${snapshot}`, this.spec(tmp)]);
      const made = await this.info(tmp);
      if (made && sizeBytes !== undefined && sizeBytes > made.size)
        await this.rbd(['resize', '--no-progress', '--size', `${sizeBytes}B`, this.spec(tmp)]);
      await this.rbd(['rename', this.spec(tmp), this.spec(volume)]);
    } catch (err) {
      await this.rbd(['rm', '--no-progress', this.spec(tmp)]).catch(() => {});
      const now = await this.info(volume).catch(() => undefined);
      if (now && /exists/i.test((err as Error).message))
        return this.checkSame(volume, now, sizeBytes, {
          image: source,
          format: 'raw',
          volume: true,
          snapshot,
        });
      throw err;
    }
  }

  private checkSame(volume: string, have: RbdInfo, sizeBytes: number | undefined, clone?: CloneSource): void {
    const refuse = (why: string) => notAsAsked(this.name, volume, why);
    if (clone?.snapshot) {
      // a copy has no parent; its content cannot be compared cheaply
      if (have.parent) throw refuse(`a clone of ${have.parent.image}, not a copy of ${clone.image}`);
      if (sizeBytes !== undefined && have.size !== sizeBytes) throw refuse(`size ${have.size} bytes`);
      return;
    }
    const parent = have.parent?.image;
    if ((parent ?? '') !== (clone?.image ?? ''))
      throw refuse(
        parent ? `a clone of ${parent}, not ${clone?.image ?? 'empty'}` : `not a clone of ${clone!.image}`,
      );
    if (sizeBytes !== undefined && have.size !== sizeBytes && !(clone && have.size > sizeBytes))
      throw refuse(`size ${have.size} bytes, not ${sizeBytes}`);
  }

  async deleteVolume(volume: string): Promise<void> {
    const spec = this.spec(volume);
    if (!(await this.info(volume))) return;
    const children = await this.rbdJson<unknown[]>(['children', '--all', spec]).catch(() => []);
    if (children.length > 0)
      throw new NfError(
        'in_use',
        `volume ${volume} has ${children.length} linked clone(s); delete or flatten them first`,
      );
    await this.rbd(['snap', 'purge', '--no-progress', spec]);
    await this.rbd(['rm', '--no-progress', spec]);
  }

  async resizeVolume(volume: string, sizeBytes: number): Promise<void> {
    const size = growTo(this.name, volume, (await this.info(volume))?.size, sizeBytes);
    if (size !== undefined)
      await this.rbd(['resize', '--no-progress', '--size', `${size}B`, this.spec(volume)]);
  }

  async flattenVolume(volume: string): Promise<void> {
    const info = await this.info(volume);
    if (!info) throw new NfError('not_found', `volume ${volume} does not exist in pool ${this.name}`);
    if (!info.parent) return;
    await this.rbd(['flatten', '--no-progress', this.spec(volume)]);
  }

  async volumeInfo(volume: string): Promise<VolumeInfo | undefined> {
    const info = await this.info(volume);
    if (!info) return undefined;
    const [du, snaps] = await Promise.all([
      this.rbdJson<RbdDu>(['du', this.spec(volume)]),
      this.snapshots(volume),
    ]);
    const v: VolumeInfo = {
      name: volume,
      virtualBytes: info.size,
      allocatedBytes: du.images.reduce((n, i) => n + i.used_size, 0),
      snapshots: snaps.filter((s) => s !== CLONE_BASE_SNAPSHOT),
    };
    if (info.parent) v.parent = info.parent.image;
    return v;
  }

  async listVolumes(): Promise<VolumeInfo[]> {
    const [ls, du] = await Promise.all([
      this.rbdJson<RbdLsEntry[]>(['ls', '-l', this.config.pool]),
      this.rbdJson<RbdDu>(['du', '-p', this.config.pool]),
    ]);
    const used = new Map<string, number>();
    for (const i of du.images) used.set(i.name, (used.get(i.name) ?? 0) + i.used_size);
    const out = new Map<string, VolumeInfo>();
    for (const e of ls.filter((x) => x.snapshot === undefined)) {
      const v: VolumeInfo = {
        name: e.image,
        virtualBytes: e.size,
        allocatedBytes: used.get(e.image) ?? 0,
        snapshots: [],
      };
      if (e.parent) v.parent = e.parent.image;
      out.set(e.image, v);
    }
    for (const e of ls)
      if (e.snapshot !== undefined && e.snapshot !== CLONE_BASE_SNAPSHOT)
        out.get(e.image)?.snapshots.push(e.snapshot);
    return [...out.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async snapshotCreate(volume: string, name: string): Promise<void> {
    await this.rbd(['snap', 'create', '--no-progress', this.snapSpec(volume, name)]);
  }

  async snapshotDelete(volume: string, name: string): Promise<void> {
    if (!(await this.hasSnapshot(volume, name))) return;
    await this.rbd(['snap', 'rm', '--no-progress', this.snapSpec(volume, name)]);
  }

  async snapshotRollback(volume: string, name: string): Promise<void> {
    await this.rbd(['snap', 'rollback', '--no-progress', this.snapSpec(volume, name)]);
  }

  /** Snapshot names of a volume. */
  async listSnapshots(volume: string): Promise<string[]> {
    return this.snapshots(volume);
  }

  /** Extents of the volume that differ now from a snapshot of it (`rbd diff --from-snap`). */
  async diffSince(volume: string, snapshot: string): Promise<{ offset: number; length: number }[]> {
    const list = await this.rbdJson<{ offset: number; length: number }[]>([
      'diff',
      '--from-snap',
      snapshot,
      this.spec(volume),
    ]);
    return list.map((e) => ({ offset: e.offset, length: e.length }));
  }

  async hasSnapshot(volume: string, name: string): Promise<boolean> {
    return (await this.snapshots(volume)).includes(name);
  }

  blockdev(volume: string, nodeName: string, opts: { readOnly?: boolean } = {}): BlockdevNode[] {
    return [
      {
        driver: 'rbd',
        pool: this.config.pool,
        image: this.checkName(volume),
        conf: this.config.conf,
        user: this.config.user,
        'node-name': nodeName,
        'read-only': opts.readOnly ?? false,
        'auto-read-only': true,
        discard: 'unmap',
      },
    ];
  }

  private async snapshots(volume: string): Promise<string[]> {
    const list = await this.rbdJson<{ name: string }[]>(['snap', 'ls', this.spec(volume)]);
    return list.map((s) => s.name);
  }

  private async info(volume: string): Promise<RbdInfo | undefined> {
    try {
      return await this.rbdJson<RbdInfo>(['info', this.spec(volume)]);
    } catch (err) {
      if (/No such file or directory|\(2\)/.test((err as Error).message)) return undefined;
      throw err;
    }
  }

  private checkName(volume: string): string {
    if (!VOLUME_NAME.test(volume))
      throw new NfError('validation_failed', `"${volume}" is not a valid volume name`);
    return volume;
  }

  private spec(volume: string): string {
    return `${this.config.pool}/${this.checkName(volume)}`;
  }

  /**
   * HA storage fencing: every client of `volumes` that connects from one of `ips` (a failed host's
   * QEMUs) is blocklisted for `expireSec` (its writes are refused from then on, even if it lives on behind
   * a partition), then its exclusive lock is removed so the VM's next QEMU takes it at once. The pool's
   * user may do both (`profile rbd`). Returns what it did, one line per client or lock.
   */
  async fenceClients(volumes: string[], ips: string[], expireSec = 3600): Promise<string[]> {
    const done: string[] = [];
    const fromHost = (addr: string) => ips.includes(addrIp(addr));
    // Each step with its time: a fence that waits on Ceph (an OSD not yet marked down) says where.
    const timed = async <T>(fn: () => Promise<T>): Promise<[T, string]> => {
      const t0 = performance.now();
      const v = await fn();
      return [v, `${((performance.now() - t0) / 1000).toFixed(1)} s`];
    };
    for (const volume of volumes) {
      const spec = this.spec(volume);
      const [[status, lockList], read] = await timed(() =>
        Promise.all([
          this.rbd(['status', spec, '--format', 'json']),
          this.rbd(['lock', 'ls', spec, '--format', 'json']),
        ]),
      );
      const watchers = [...status.matchAll(CLIENT_ADDR)].map((m) => m[0]).filter(fromHost);
      const locks = parseLocks(lockList);
      const addrs = new Set([...watchers, ...locks.map((l) => l.address).filter(fromHost)]);
      done.push(`${volume}: clients read (${read})`);
      for (const addr of addrs) {
        // (it answers on stderr only: not JSON)
        const [, took] = await timed(() =>
          cephTool('ceph', [...this.common(), 'osd', 'blocklist', 'add', addr, String(expireSec)], {
            what: 'ceph osd blocklist add',
          }),
        );
        done.push(`${volume}: blocklisted ${addr} (${took})`);
      }
      for (const l of locks.filter((x) => fromHost(x.address))) {
        const [, took] = await timed(() =>
          this.rbd(['lock', 'rm', spec, l.id, l.locker]).catch((err: Error) => {
            // gone meanwhile (librbd broke it for the VM's next QEMU): fine
            if (!/No such file|\(2\)/.test(err.message)) throw err;
          }),
        );
        done.push(`${volume}: lock of ${l.locker} removed (${took})`);
      }
    }
    return done;
  }

  private snapSpec(volume: string, name: string): string {
    if (!SNAPSHOT_NAME.test(name))
      throw new NfError('validation_failed', `"${name}" is not a valid snapshot name`);
    return `${this.spec(volume)}@${name}`;
  }

  private common(): string[] {
    return ['--conf', this.config.conf, '--id', this.config.user];
  }

  private rbd(args: string[]): Promise<string> {
    return cephTool('rbd', [...this.common(), ...args], { what: `rbd ${args.slice(0, 2).join(' ')}` });
  }

  private async rbdJson<T>(args: string[]): Promise<T> {
    return JSON.parse(await this.rbd([...args, '--format', 'json'])) as T;
  }

  private async ceph<T>(args: string[]): Promise<T> {
    const out = await cephTool('ceph', [...this.common(), ...args, '--format', 'json'], {
      what: `ceph ${args[0]}`,
    });
    return JSON.parse(out) as T;
  }
}

/** A Ceph client instance address as the tools print it: IP:port/nonce (IPv4, or [IPv6]). */
const CLIENT_ADDR = /(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):\d+\/\d+/g;

function addrIp(addr: string): string {
  const host = addr.slice(0, addr.lastIndexOf(':'));
  return host.startsWith('[') ? host.slice(1, -1) : host;
}

/** `rbd lock ls --format json`: an array in Ceph 16 (an object keyed by lock id before). */
export function parseLocks(json: string): { id: string; locker: string; address: string }[] {
  const raw = JSON.parse(json || '[]') as unknown;
  const list = Array.isArray(raw)
    ? (raw as { id: string; locker: string; address: string }[])
    : Object.entries((raw ?? {}) as Record<string, { locker: string; address: string }>).map(([id, l]) => ({
        id,
        ...l,
      }));
  return list.filter((l) => l && typeof l.id === 'string' && typeof l.locker === 'string' && l.address);
}
