import { join } from 'node:path';
import { Daemon } from '../util/daemon';
import { cephPaths } from './conf';

export type DaemonType = 'mon' | 'mgr' | 'osd';

/**
 * One Ceph daemon of this host (ceph-mon, ceph-mgr, ceph-osd) in its foreground mode (`-f`), supervised
 * like etcd (src/util/daemon.ts): adopted after a `serve` restart, restarted within a second when it dies.
 */
export class CephDaemon extends Daemon {
  constructor(
    readonly type: DaemonType,
    readonly id: string,
    dir: string,
  ) {
    const p = cephPaths(dir);
    super({
      name: `${type}.${id}`,
      argv: [`/usr/bin/ceph-${type}`, '-f', '--conf', p.conf, '--id', id],
      pidfile: join(p.run, `${type}.${id}.pid`),
      outFile: join(p.log, `${type}.${id}.out`),
      installHint: `install ceph-${type} (scripts/setup.sh)`,
    });
  }

  get entity(): string {
    return this.name;
  }
}
