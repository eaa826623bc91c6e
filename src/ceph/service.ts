import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { keys, type PoolRecord } from '../controller/records';
import { NfError } from '../errors';
import type { Store } from '../store/store';
import type { HostPaths } from '../util/host-paths';
import { createLogger } from '../util/log';
import { CephCluster, type CephHealth } from './cluster';

const log = createLogger('ceph');

/** The NeuroFlow pool made for the integrated cluster, and its Ceph pool and cephx user. */
export const INTEGRATED_POOL = { name: 'ceph', cephPool: 'rbd', user: 'neuroflow' } as const;

export interface CephStatus {
  configured: boolean;
  health?: CephHealth;
  /** This host's Ceph daemons and their pids (absent: not running). */
  daemons: { entity: string; pid?: number; restarts: number }[];
  /** Replicas of the integrated pool, and what they risk on this cluster. */
  pool?: { name: string; size: number; minSize: number; warning?: string };
}

export interface BootstrapInput {
  /** The monitor's address (default: the host's management address). */
  monitorAddress?: string;
  size: number;
  minSize: number;
}

/**
 * The integrated Ceph cluster of this controller: bootstrap (its monitor and manager), OSDs on its disks,
 * supervision of its daemons from `serve` (adopted again after a restart), health. The RBD pool it makes
 * is registered as the shared pool `ceph`, so VMs use it like any shared pool.
 *
 * One host for now: monitors and OSDs on other hosts come with the multi-host step (docs/storage.md).
 */
export class CephService {
  readonly cluster: CephCluster;

  constructor(
    dataDir: string,
    private readonly store: Store,
    private readonly nodeName: string,
    /** The management address of this host (the monitor's default). */
    private readonly address: string,
    private readonly hostPaths: HostPaths,
    /** Called after the integrated pool is registered (hands it to the hosts). */
    private readonly onPool: () => Promise<void>,
  ) {
    this.cluster = new CephCluster(join(dataDir, 'ceph'));
  }

  /** Adopts or starts this host's daemons when a cluster is configured here, and supervises them. */
  async start(): Promise<void> {
    if (!this.cluster.exists()) return;
    await this.cluster.start();
    log.info('Ceph daemons supervised', { daemons: this.cluster.list().map((d) => d.entity) });
  }

  /** Stops supervising; the daemons keep running (like QEMU) and the next `serve` adopts them. */
  async stop(): Promise<void> {
    await this.cluster.stop();
  }

  async status(): Promise<CephStatus> {
    if (!this.cluster.exists()) return { configured: false, daemons: [] };
    const daemons = this.cluster.list().map((d) => {
      const out: CephStatus['daemons'][number] = { entity: d.entity, restarts: d.restarts };
      if (d.pid !== undefined) out.pid = d.pid;
      return out;
    });
    const health = await this.cluster.health().catch((err: Error) => {
      throw new NfError('unavailable', `Ceph does not answer: ${err.message}`);
    });
    const s: CephStatus = { configured: true, health, daemons };
    const pool = await this.poolSize().catch(() => undefined);
    if (pool) s.pool = { ...pool, ...risk(pool.size, pool.minSize, health.osds.total) };
    return s;
  }

  /**
   * Makes the cluster: this host's monitor and manager, the RBD pool `rbd` with the replicas asked, a
   * cephx user limited to it, and the shared pool `ceph` for VMs. Refused when one exists already.
   */
  async bootstrap(input: BootstrapInput): Promise<CephStatus> {
    if (this.cluster.exists()) throw new NfError('already_exists', 'Ceph is already set up on this host');
    if (await this.store.get(keys.pool(INTEGRATED_POOL.name)))
      throw new NfError('already_exists', `a storage pool named "${INTEGRATED_POOL.name}" already exists`);
    if (input.minSize > input.size)
      throw new NfError('validation_failed', `minSize ${input.minSize} is larger than size ${input.size}`);
    const ip = input.monitorAddress ?? this.address;
    await CephCluster.bootstrap(
      this.cluster.dir,
      { name: this.nodeName, ip },
      {
        poolSize: input.size,
        poolMinSize: input.minSize,
        // one host alone can only put replicas on different OSDs
        failureDomain: input.size > 1 ? 'host' : 'osd',
      },
    );
    await this.cluster.start();
    await this.cluster.createPool(INTEGRATED_POOL.cephPool, { size: input.size, minSize: input.minSize });
    const keyring = await this.cluster.rbdUser(INTEGRATED_POOL.user, [INTEGRATED_POOL.cephPool]);
    const key = /key = (\S+)/.exec(readFileSync(keyring, 'utf8'))?.[1];
    if (!key) throw new NfError('internal', 'the new cephx user has no key');
    const rec: PoolRecord = {
      name: INTEGRATED_POOL.name,
      type: 'rbd',
      rbd: { pool: INTEGRATED_POOL.cephPool, monitors: [ip], user: INTEGRATED_POOL.user, key },
      description: 'the integrated Ceph cluster',
      createdAt: new Date().toISOString(),
      createdBy: 'ceph.bootstrap',
    };
    await this.store.txn({
      when: [{ key: keys.pool(rec.name), absent: true }],
      put: [{ key: keys.pool(rec.name), value: rec }],
    });
    await this.onPool();
    return this.status();
  }

  /**
   * An OSD on this host: a whole block device with no data on it (bluestore's mkfs overwrites it), or a
   * file under an allowed host path (made sparse when it does not exist; labs and tests).
   */
  async addOsd(input: { node: string; device: string; sizeGiB?: number }): Promise<CephStatus> {
    if (!this.cluster.exists()) throw new NfError('invalid_state', 'set up Ceph first (POST /api/v1/ceph)');
    if (input.node !== this.nodeName)
      throw new NfError(
        'not_implemented',
        `OSDs on other hosts than ${this.nodeName} are not supported yet (integrated Ceph runs on one host)`,
      );
    const dev = input.device;
    if (dev.startsWith('/dev/')) {
      if (!existsSync(dev) || !statSync(dev).isBlockDevice())
        throw new NfError('validation_failed', `${dev} is not a block device`);
      await this.cluster.addOsd({ device: dev });
    } else {
      if (input.sizeGiB === undefined && !existsSync(dev))
        throw new NfError('validation_failed', `${dev} does not exist: give sizeGiB to make it`);
      // A file must be under an allowed host path (--host-path); its directory must exist.
      this.hostPaths.check(dirname(dev), 'device');
      if (!existsSync(dirname(dev)))
        throw new NfError('file_not_found', `device: ${dirname(dev)} does not exist`);
      if (existsSync(dev) && !statSync(dev).isFile())
        throw new NfError('validation_failed', `${dev} is neither a block device nor a file`);
      await this.cluster.addOsd({ file: dev, sizeBytes: (input.sizeGiB ?? 0) * 1024 ** 3 });
    }
    return this.status();
  }

  private async poolSize(): Promise<{ name: string; size: number; minSize: number }> {
    const get = async (k: string) =>
      Number(
        (
          JSON.parse(
            await this.cluster.admin(['osd', 'pool', 'get', INTEGRATED_POOL.cephPool, k, '--format', 'json']),
          ) as Record<string, number>
        )[k],
      );
    return { name: INTEGRATED_POOL.cephPool, size: await get('size'), minSize: await get('min_size') };
  }
}

/** What a pool's replica count risks on a cluster with this many OSDs, in words an admin can act on. */
export function risk(size: number, minSize: number, osds: number): { warning?: string } {
  if (size === 1) return { warning: 'one copy of every block: a failed disk loses data' };
  if (osds < size)
    return {
      warning: `${size} copies wanted but ${osds} OSD(s): the pool stays degraded until more OSDs are added`,
    };
  if (minSize < 2) return { warning: 'writes go on with a single copy left: a second failure loses data' };
  return {};
}
