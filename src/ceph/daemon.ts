import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { NfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { createLogger } from '../util/log';
import { pidAlive, procCmdline, readPidfile } from '../util/proc';
import { waitFor } from '../util/wait';
import { cephPaths } from './conf';

const log = createLogger('ceph');

export type DaemonType = 'mon' | 'mgr' | 'osd';

/**
 * One Ceph daemon of this host (ceph-mon, ceph-mgr, ceph-osd), supervised like etcd: started detached in
 * the foreground mode (`-f`) with a pidfile of ours, so a `serve` killed with -9 leaves it running and
 * the next `serve` adopts it; restarted within a second when it dies.
 */
export class CephDaemon {
  private pid?: number;
  restarts = 0;

  constructor(
    readonly type: DaemonType,
    readonly id: string,
    private readonly dir: string,
  ) {}

  get entity(): string {
    return `${this.type}.${this.id}`;
  }

  private get pidfile(): string {
    return join(cephPaths(this.dir).run, `${this.entity}.pid`);
  }

  private argv(): string[] {
    return [`/usr/bin/ceph-${this.type}`, '-f', '--conf', cephPaths(this.dir).conf, '--id', this.id];
  }

  /** The daemon's pid when it runs (ours: same binary, same conf, same id). */
  running(): number | undefined {
    const pid = this.pid ?? readPidfile(this.pidfile);
    if (!pid || !pidAlive(pid)) return undefined;
    const argv = procCmdline(pid) ?? [];
    const want = this.argv();
    if (!want.every((a) => argv.includes(a))) return undefined;
    this.pid = pid;
    return pid;
  }

  /** Adopts a running daemon or starts one. */
  async start(): Promise<number> {
    const running = this.running();
    if (running) {
      log.info('adopting running Ceph daemon', { daemon: this.entity, pid: running });
      return running;
    }
    return this.launch();
  }

  private async launch(): Promise<number> {
    const p = cephPaths(this.dir);
    mkdirSync(p.run, { recursive: true, mode: 0o700 });
    mkdirSync(p.log, { recursive: true, mode: 0o700 });
    const [bin, ...args] = this.argv();
    const out = openSync(join(p.log, `${this.entity}.out`), 'a', 0o600);
    try {
      const child = spawn(bin!, args, { detached: true, stdio: ['ignore', out, out] });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (e) =>
          reject(
            new NfError(
              'unavailable',
              `cannot start ${bin}: ${e.message}; install ceph-${this.type} (scripts/setup.sh)`,
            ),
          ),
        );
      });
      child.unref();
      this.pid = child.pid!;
      await writeFileAtomic(this.pidfile, `${child.pid}\n`, 0o600);
      log.info('Ceph daemon started', { daemon: this.entity, pid: child.pid });
      return child.pid!;
    } finally {
      closeSync(out);
    }
  }

  /** Restarts the daemon if it is gone; returns true when it did. */
  async supervise(): Promise<boolean> {
    if (this.running()) return false;
    this.restarts++;
    log.warn('Ceph daemon is gone, restarting', { daemon: this.entity, restarts: this.restarts });
    await this.launch();
    return true;
  }

  /** SIGTERM, then SIGKILL after the timeout. */
  async stop(timeoutMs = 15_000): Promise<void> {
    const pid = this.running();
    if (!pid) return;
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !pidAlive(pid), { timeoutMs, what: `${this.entity} to exit` }).catch(() => {
      if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    });
    this.pid = undefined;
  }
}
