import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CephCluster } from '../../src/ceph/cluster';
import { RbdPool } from '../../src/storage/rbd-pool';

/**
 * A one-host Ceph lab made by our own bootstrap code (src/ceph): a mon and a mgr on a loopback address of
 * its own (127.x.y.z, so labs and a real Ceph on this machine do not collide), one bluestore OSD on a
 * sparse file, replicas 1 (failure domain osd), an RBD pool and an RBD-only cephx user. Disposing it
 * stops every daemon and removes its files, even when the test failed.
 */
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
    } catch (err) {
      await lab[Symbol.asyncDispose]();
      throw err;
    }
    return lab;
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
