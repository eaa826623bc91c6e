import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NfError } from '../errors';
import type { HostPaths } from '../util/host-paths';
import { KeyedLock } from '../util/lock';
import { createLogger } from '../util/log';
import { CephCluster, cephFsid } from './cluster';
import type { CephConfig, MonAddress } from './conf';
import type { CephKey } from './keyring';

const log = createLogger('ceph');

/** What every host of one integrated cluster shares in its ceph.conf (the rest is the host's own). */
export interface CephClusterConfig {
  fsid: string;
  mons: MonAddress[];
  poolSize: number;
  poolMinSize: number;
  failureDomain: 'host' | 'osd';
  osdMemoryTargetBytes: number;
  monDataAvailWarn?: number;
}

/**
 * What a controller asks of a host's Ceph part (NodeApi.cephApply): the cluster's config and the keys this
 * host needs, and at most one daemon to make. Applying it again is harmless: a daemon already made is
 * only started.
 */
export interface CephApplyRequest {
  config: CephClusterConfig;
  keys: CephKey[];
  /** A monitor named after the host, made from the cluster's monmap. */
  mon?: { name: string; monmap: Buffer };
  /** A manager (its key is in `keys`). */
  mgr?: { id: string };
  /** An OSD on a block device or on a file of an allowed host path (`sizeGiB` makes a new sparse file). */
  osd?: { device: string; sizeGiB?: number };
  /** Removes this host's part of a cluster that failed to bootstrap (refused when it has OSDs). */
  purge?: boolean;
}

export interface CephDaemonInfo {
  entity: string;
  pid?: number;
  restarts: number;
}

export interface CephHostState {
  /** The cluster this host belongs to (absent: none). */
  fsid?: string;
  daemons: CephDaemonInfo[];
  /** The OSD made by this request. */
  osdId?: number;
}

/**
 * The node role's part of integrated Ceph: this host's config, keys and daemons under DATA_DIR/ceph,
 * supervised from `serve` like etcd (restarted when they die, adopted after `serve` restarts). A
 * controller drives it over NodeApi; the host checks what it is given (devices against its host paths).
 */
export class CephHost {
  readonly cluster: CephCluster;
  private readonly lock = new KeyedLock();

  constructor(
    dataDir: string,
    readonly nodeName: string,
    /** The host's management address: its OSDs and manager bind to it (unset: Ceph picks). */
    private readonly address: string | undefined,
    private readonly hostPaths: HostPaths,
  ) {
    this.cluster = new CephCluster(join(dataDir, 'ceph'));
  }

  /** Adopts or starts this host's daemons when it has any, and supervises them. */
  async start(): Promise<void> {
    if (!this.cluster.exists()) return;
    await this.cluster.start();
    const daemons = this.cluster.list().map((d) => d.entity);
    if (daemons.length > 0) log.info('Ceph daemons supervised', { daemons });
  }

  /** Stops supervising; the daemons keep running (like QEMU) and the next `serve` adopts them. */
  async stop(): Promise<void> {
    await this.cluster.stop();
  }

  state(): CephHostState {
    const fsid = this.cluster.exists() ? cephFsid(this.cluster.dir) : undefined;
    const daemons = this.cluster.list().map((d) => {
      const out: CephDaemonInfo = { entity: d.entity, restarts: d.restarts };
      if (d.pid !== undefined) out.pid = d.pid;
      return out;
    });
    return fsid ? { fsid, daemons } : { daemons };
  }

  async apply(req: CephApplyRequest): Promise<CephHostState> {
    return this.lock.run('ceph', async () => {
      const have = this.cluster.exists() ? cephFsid(this.cluster.dir) : undefined;
      if (have && have !== req.config.fsid)
        throw new NfError(
          'conflict',
          `${this.nodeName} already belongs to another Ceph cluster (fsid ${have}); remove it there first`,
        );
      if (req.purge) {
        if (have) await this.cluster.purge();
        log.warn('Ceph files of a failed bootstrap removed', { fsid: req.config.fsid });
        return this.state();
      }
      // Check the device before anything is written.
      if (req.osd) this.checkDevice(req.osd);
      await this.cluster.configure(this.config(req.config), req.keys);
      this.cluster.resume();
      if (req.mon) await this.cluster.makeMon(req.mon.name, req.mon.monmap, req.keys);
      if (req.mgr) await this.cluster.makeMgr(req.mgr.id);
      let osdId: number | undefined;
      if (req.osd) {
        const dev = req.osd.device;
        osdId = await this.cluster.addOsd(
          dev.startsWith('/dev/')
            ? { device: dev }
            : { file: dev, sizeBytes: (req.osd.sizeGiB ?? 0) * 1024 ** 3 },
        );
        log.info('Ceph OSD made', { osd: osdId, device: dev });
      }
      const s = this.state();
      return osdId === undefined ? s : { ...s, osdId };
    });
  }

  /** The config of this host: the cluster's, plus its name (CRUSH host bucket) and address. */
  private config(c: CephClusterConfig): Omit<CephConfig, 'dir'> {
    const ip = this.address;
    const bindable = ip && !['0.0.0.0', '::', '127.0.0.1', '::1', 'localhost'].includes(ip);
    const monIp = c.mons.find((m) => m.name === this.nodeName)?.ip;
    return {
      ...c,
      hostName: this.nodeName,
      ...(bindable ? { hostIp: ip } : {}),
      ...(monIp ? { monIp } : {}),
    };
  }

  private checkDevice(osd: { device: string; sizeGiB?: number }): void {
    const dev = osd.device;
    if (dev.startsWith('/dev/')) {
      if (!existsSync(dev) || !statSync(dev).isBlockDevice())
        throw new NfError('validation_failed', `${dev} is not a block device on ${this.nodeName}`);
      return;
    }
    if (osd.sizeGiB === undefined && !existsSync(dev))
      throw new NfError(
        'validation_failed',
        `${dev} does not exist on ${this.nodeName}: give sizeGiB to make it`,
      );
    // A file must be under an allowed host path (--host-path); its directory must exist.
    this.hostPaths.check(dirname(dev), 'device');
    if (!existsSync(dirname(dev)))
      throw new NfError('file_not_found', `device: ${dirname(dev)} does not exist on ${this.nodeName}`);
    if (existsSync(dev) && !statSync(dev).isFile())
      throw new NfError('validation_failed', `${dev} is neither a block device nor a file`);
  }
}
