import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { NfError } from '../errors';
import { writeFileAtomic } from './fs';
import { createLogger } from './log';
import { pidAlive, procCmdline, readPidfile } from './proc';
import { waitFor } from './wait';

const log = createLogger('daemon');

export interface DaemonSpec {
  /** How logs and errors name it (mon.a, ovn-northd). */
  name: string;
  /** The foreground command line; a running process with all of these arguments is this daemon. */
  argv: string[];
  /** Our pidfile (the daemon's own, if any, may differ). */
  pidfile: string;
  /** stdout and stderr go here (appended). */
  outFile: string;
  env?: Record<string, string>;
  /** Said when the binary is missing. */
  installHint?: string;
}

/**
 * A daemon of this host supervised like etcd: started detached in the foreground mode with a pidfile of
 * ours, so a `serve` killed with -9 leaves it running and the next `serve` adopts it (matched by its
 * command line); started again when it dies (supervise() each tick).
 */
export class Daemon {
  private pid?: number;
  /** Stopped on purpose: supervise() leaves it down until start(). */
  private stopped = false;
  restarts = 0;

  constructor(readonly spec: DaemonSpec) {}

  get name(): string {
    return this.spec.name;
  }

  /** The daemon's pid when it runs (ours: the same command line). */
  running(): number | undefined {
    const pid = this.pid ?? readPidfile(this.spec.pidfile);
    if (!pid || !pidAlive(pid)) return undefined;
    const argv = procCmdline(pid) ?? [];
    if (!this.spec.argv.every((a) => argv.includes(a))) return undefined;
    this.pid = pid;
    return pid;
  }

  /**
   * Adopts a running daemon or starts one. One of ours running with other options (its pidfile's process,
   * the same program, one of our arguments that names our run dir, such as its --unixctl socket) is
   * stopped first: the options changed.
   */
  async start(): Promise<number> {
    this.stopped = false;
    const running = this.running();
    if (running) {
      log.info('adopting running daemon', { daemon: this.name, pid: running });
      return running;
    }
    const stale = readPidfile(this.spec.pidfile);
    const dir = dirname(this.spec.pidfile);
    const argv = stale && pidAlive(stale) ? (procCmdline(stale) ?? []) : [];
    // an argument of ours naming our dir, exactly (a sibling daemon of the same program has its own)
    if (argv[0] === this.spec.argv[0] && argv.some((a) => a.includes(dir) && this.spec.argv.includes(a))) {
      log.info('restarting daemon with changed options', { daemon: this.name, pid: stale });
      await this.kill(stale!, 15_000);
    }
    return this.launch();
  }

  private async launch(): Promise<number> {
    mkdirSync(dirname(this.spec.pidfile), { recursive: true, mode: 0o700 });
    mkdirSync(dirname(this.spec.outFile), { recursive: true, mode: 0o700 });
    const [bin, ...args] = this.spec.argv;
    const out = openSync(this.spec.outFile, 'a', 0o600);
    try {
      const child = spawn(bin!, args, {
        detached: true,
        stdio: ['ignore', out, out],
        ...(this.spec.env ? { env: { ...process.env, ...this.spec.env } } : {}),
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (e) =>
          reject(
            new NfError(
              'unavailable',
              `cannot start ${bin}: ${e.message}${this.spec.installHint ? `; ${this.spec.installHint}` : ''}`,
            ),
          ),
        );
      });
      child.unref();
      this.pid = child.pid!;
      await writeFileAtomic(this.spec.pidfile, `${child.pid}\n`, 0o600);
      log.info('daemon started', { daemon: this.name, pid: child.pid });
      return child.pid!;
    } finally {
      closeSync(out);
    }
  }

  /** Starts the daemon again if it is gone; returns true when it did. */
  async supervise(): Promise<boolean> {
    if (this.stopped || this.running()) return false;
    this.restarts++;
    log.warn('daemon is gone, restarting', { daemon: this.name, restarts: this.restarts });
    await this.launch();
    return true;
  }

  /** SIGTERM, then SIGKILL after the timeout. */
  async stop(timeoutMs = 15_000): Promise<void> {
    this.stopped = true;
    const pid = this.running();
    if (!pid) return;
    await this.kill(pid, timeoutMs);
    this.pid = undefined;
  }

  private async kill(pid: number, timeoutMs: number): Promise<void> {
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !pidAlive(pid), { timeoutMs, what: `${this.name} to exit` }).catch(() => {
      if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    });
  }
}
