import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { CephCluster } from '../../src/ceph/cluster';
import type { ApiClient } from '../../src/cli/client';
import { RbdPool } from '../../src/storage/rbd-pool';
import { waitFor } from '../../src/util/wait';

/**
 * A one-host Ceph lab made by our own bootstrap code (src/ceph): a mon and a mgr on a loopback address of
 * its own (127.x.y.z, so labs and a real Ceph on this machine do not collide), one bluestore OSD on a
 * sparse file, replicas 1 (failure domain osd), an RBD pool and an RBD-only cephx user. Disposing it
 * stops every daemon and removes its files, even when the test failed.
 */
export interface LabInfo {
  dir: string;
  ip: string;
  pool: string;
  user: string;
  key: string;
  /** The lab's own ceph.conf (admin keyring beside it). */
  conf: string;
}

/**
 * The Ceph lab of this test run (test/harness/global-setup.ts starts it once, in the background). Waits
 * until it is up; each test names its volumes and pools uniquely, and removes them.
 */
export async function sharedCephLab(): Promise<SharedLab> {
  const file = inject('cephLabFile');
  const info = await waitFor(
    () =>
      existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as LabInfo | { error: string }) : undefined,
    { timeoutMs: 240_000, intervalMs: 250, what: 'the shared Ceph lab' },
  );
  if ('error' in info) throw new Error(`the shared Ceph lab did not start: ${info.error}`);
  return new SharedLab(info);
}

/** A test's view of the shared lab: a Ceph pool and an RBD user of its own, so tests never see each other's images. */
export class SharedLab {
  readonly cluster: CephCluster;
  constructor(readonly info: LabInfo) {
    this.cluster = new CephCluster(join(info.dir, 'ceph'));
  }

  get ip(): string {
    return this.info.ip;
  }

  /** A new Ceph pool and a cephx user limited to it (with its key), for one test file. */
  async newPool(): Promise<{
    pool: string;
    user: string;
    key: string;
    conf: string;
    rbdPool(name?: string): RbdPool;
  }> {
    const id = randomBytes(3).toString('hex');
    const pool = `nf-${id}`;
    const user = `nf-${id}`;
    await this.cluster.createPool(pool, { pgs: 8 });
    await poolReported(this.cluster, pool);
    const keyring = await this.cluster.rbdUser(user, [pool]);
    const key = /key = (\S+)/.exec(readFileSync(keyring, 'utf8'))![1]!;
    const conf = this.cluster.paths.conf;
    return { pool, user, key, conf, rbdPool: (name = 'ceph') => new RbdPool({ name, pool, conf, user }) };
  }
}

/**
 * A new Ceph pool of the shared lab added to a daemon as its storage pool `ceph` (RBD), once the daemon's
 * host reports it with its size. Returns the Ceph pool (and its RBD user) for checks from outside.
 */
export async function addRbdPool(
  api: ApiClient,
  lab: SharedLab,
): Promise<Awaited<ReturnType<SharedLab['newPool']>>> {
  const ceph = await lab.newPool();
  await api.request('POST', '/api/v1/pools', {
    name: 'ceph',
    type: 'rbd',
    pool: ceph.pool,
    monitors: [lab.ip],
    user: ceph.user,
    key: ceph.key,
  });
  await waitFor(
    async () =>
      (await api.request<{ name: string; hosts: { totalBytes: number }[] }[]>('GET', '/api/v1/pools')).some(
        (p) => p.name === 'ceph' && p.hosts.length === 1 && p.hosts[0]!.totalBytes > 0,
      ),
    { timeoutMs: 60_000, what: 'the host to report the pool ceph with its size' },
  );
  return ceph;
}

export class CephLab implements AsyncDisposable {
  readonly dir = mkdtempSync(join(tmpdir(), 'nf-ceph-'));
  cluster!: CephCluster;
  readonly ip =
    `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  readonly pool = 'nf-rbd';
  readonly user = 'neuroflow';

  static async start(): Promise<CephLab> {
    const lab = new CephLab();
    try {
      lab.cluster = await CephCluster.bootstrap(
        join(lab.dir, 'ceph'),
        { name: 'lab', ip: lab.ip },
        {
          poolSize: 1,
          poolMinSize: 1,
          failureDomain: 'osd',
          monDataAvailWarn: 1,
        },
      );
      await lab.cluster.addOsd({ file: join(lab.dir, 'osd0.img'), sizeBytes: 4 * 1024 ** 3 });
      await lab.cluster.createPool(lab.pool, { pgs: 16 });
      await lab.cluster.rbdUser(lab.user, [lab.pool]);
      await lab.cluster.waitHealthy(120_000);
      await poolReported(lab.cluster, lab.pool);
    } catch (err) {
      await lab[Symbol.asyncDispose]();
      throw err;
    }
    return lab;
  }

  /** What a test needs to use the lab (the key of the RBD user included). */
  describe(): LabInfo {
    const key =
      /key = (\S+)/.exec(readFileSync(this.cluster.paths.keyring(`client.${this.user}`), 'utf8'))?.[1] ?? '';
    return {
      dir: this.dir,
      ip: this.ip,
      pool: this.pool,
      user: this.user,
      key,
      conf: this.cluster.paths.conf,
    };
  }

  /** The lab's pool as NeuroFlow's rbd driver opens it. */
  rbdPool(name = 'ceph'): RbdPool {
    return new RbdPool({ name, pool: this.pool, conf: this.cluster.paths.conf, user: this.user });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.cluster?.stop({ daemons: true }).catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Waits until the manager reports the pool's capacity (it does so a little later than the pool's PGs). */
async function poolReported(cluster: CephCluster, pool: string): Promise<void> {
  await waitFor(
    async () => {
      const df = JSON.parse(await cluster.admin(['df', '--format', 'json'])) as { pools: { name: string }[] };
      return df.pools.some((p) => p.name === pool);
    },
    { timeoutMs: 60_000, intervalMs: 500, what: `the manager to report pool ${pool}` },
  );
}
