/**
 * `neuroflow appliance serve` (respawned by busybox init): runs NeuroFlow as the appliance config says.
 *
 * - cluster.mode `none`: nothing runs; it waits for SIGHUP (the console writes the config, then sends it).
 * - `create` / `member`: a child `neuroflow serve --data-dir /var/lib/neuroflow --listen MGMT-IP:8006
 *   --name HOSTNAME [--cluster-name N] [--watchdog /dev/watchdog]`, restarted with a back-off when it dies. It is "running" once
 *   GET /api/v1/health answers on the management address.
 * - `join`: the same with the token in NEUROFLOW_JOIN_TOKEN (never in argv); once the API answers, the
 *   config becomes `{ mode: 'member' }` (the token is dropped). A failed join is not retried: the error
 *   goes to the log and to /run/neuroflow/cluster-status.json, and it waits for SIGHUP (a new token).
 *
 * The child is the `serve` command, not serve() in this process: the bundler initialises a module that
 * is both in main.ts's static graph and behind this lazily loaded one in the wrong order
 * (src/cluster/pki.ts's `import 'reflect-metadata'` runs after @peculiar/x509, whose tsyringe then
 * throws at start-up), so nothing here may import src/serve.ts or src/cluster/*. The `serve` command
 * gets the config's root password as its scrypt hash (NEUROFLOW_ROOT_PASSWORD_SCRYPT); without one set
 * yet, `serve` generates DATA_DIR/root.password (the founder's cluster record keeps whichever it used).
 * SIGHUP: read the config again and restart the child, unless only `ssh` changed: SSH (dropbear while
 * `ssh.enabledUntil` is in the future, src/appliance/ssh.ts) is applied at once and the child (API, etcd)
 * keeps running. A SIGHUP with no change at all restarts the child (the console's "Restart Management
 * Services"). SIGTERM/SIGINT: stop the child (the API and etcd stop, VMs keep running) and dropbear's
 * listener (open SSH sessions stay), and exit.
 *
 * Files: /run/neuroflow/appliance-serve.pid (this process), /run/neuroflow/cluster-status.json (what
 * runs: state idle|waiting|starting|running|error|stopped, mode, message, url, pid, since),
 * /var/log/neuroflow/serve.log (the child's output); for SSH /run/neuroflow/ssh-status.json and
 * /var/log/neuroflow/ssh.log (see ssh.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { NfError, toNfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { pidAlive, procCmdline, readPidfile } from '../util/proc';
import { deferred } from '../util/wait';
import { interfaceAddress, LOG_DIR, RUN_DIR } from './boot';
import { APPLIANCE_DATA_DIR, type ApplianceConfig, readConfig, writeConfig } from './config';
import { managementInterface } from './network';
import { SshService, type SshServiceOptions, sshOnlyChange } from './ssh';

export const API_PORT = 8006;

export type ServeState = 'idle' | 'waiting' | 'starting' | 'running' | 'error' | 'stopped';

export interface ClusterStatus {
  state: ServeState;
  mode: ApplianceConfig['cluster']['mode'] | 'unknown';
  message?: string;
  url?: string;
  pid?: number;
  since: string;
}

export interface ApplianceServeOptions {
  dataDir?: string;
  runDir?: string;
  logDir?: string;
  /** The management address for a config (default: the address of its management interface). */
  address?: (cfg: ApplianceConfig) => string | undefined;
  /** The child's argv (default: this binary's `appliance daemon ...`). */
  childArgv?: (cfg: ApplianceConfig, address: string, dataDir: string) => string[];
  /** Whether the API at this URL answers (default: GET /api/v1/health). */
  healthy?: (url: string) => Promise<boolean>;
  /** Back-off between restarts of a child that died (ms). */
  restartDelayMs?: (attempt: number) => number;
  /** How long a stopping child gets before SIGKILL. */
  stopTimeoutMs?: number;
  /** SSH (dropbear): listen addresses, programs, clock (default: port 22 on every address). */
  ssh?: Omit<SshServiceOptions, 'dataDir' | 'runDir' | 'logDir'>;
}

/** argv[0..] that runs this program again: the compiled binary, or bun + the entry script. */
export function selfArgv(): string[] {
  const exe = process.execPath;
  if (/^bun(-debug)?$/.test(basename(exe)) && process.argv[1]) return [exe, process.argv[1]];
  return [exe];
}

const urlHost = (address: string) => (address.includes(':') ? `[${address}]` : address);

/** The host's watchdog (a hardware driver's, or softdog that `appliance boot` loads without one). */
export const WATCHDOG_DEVICE = '/dev/watchdog';

export function defaultChildArgv(
  cfg: ApplianceConfig,
  address: string,
  dataDir: string,
  /** null: none (default: the host's when it has one) */
  watchdog: string | null = existsSync(WATCHDOG_DEVICE) ? WATCHDOG_DEVICE : null,
): string[] {
  return [
    ...selfArgv(),
    'serve',
    '--data-dir',
    dataDir,
    '--listen',
    `${urlHost(address)}:${API_PORT}`,
    '--name',
    cfg.hostname,
    ...(cfg.cluster.mode === 'create' && cfg.cluster.name ? ['--cluster-name', cfg.cluster.name] : []),
    // fed while HA VMs run here (src/node/watchdog.ts): a hung serve resets the host
    ...(watchdog ? ['--watchdog', watchdog] : []),
  ];
}

/** True once the API answers GET /api/v1/health (HTTPS with the cluster's own CA: not verified here). */
export async function apiHealthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/api/v1/health`, {
      signal: AbortSignal.timeout(5000),
      tls: { rejectUnauthorized: false },
    } as RequestInit);
    return res.ok;
  } catch {
    return false;
  }
}

/** The cluster membership `serve` keeps in the data dir (src/cluster/config.ts; not imported, see above). */
export const clusterConfigPath = (dataDir: string) => join(dataDir, 'cluster', 'config.json');

export function defaultAddress(cfg: ApplianceConfig): string | undefined {
  if (cfg.network.mode === 'static' && cfg.network.address) return cfg.network.address.split('/')[0];
  return interfaceAddress(managementInterface(cfg.network));
}

/** Supervises the `neuroflow serve` child of the appliance (see the top of this file). */
export class ApplianceServe {
  readonly dataDir: string;
  readonly runDir: string;
  readonly logDir: string;
  private child: ChildProcess | undefined;
  private childExit: Promise<number | null> | undefined;
  private wake = deferred<void>();
  private generation = 0;
  private stopping = false;
  /** The config the current pass runs with (what a SIGHUP compares against). */
  private applied: ApplianceConfig | undefined;
  /** Set once run() holds the pidfile: a second supervisor that lost must not touch dropbear. */
  private started = false;
  /** Dropbear while `ssh.enabledUntil` is in the future. */
  readonly ssh: SshService;

  constructor(private readonly opts: ApplianceServeOptions = {}) {
    this.dataDir = opts.dataDir ?? APPLIANCE_DATA_DIR;
    this.runDir = opts.runDir ?? RUN_DIR;
    this.logDir = opts.logDir ?? LOG_DIR;
    this.ssh = new SshService({
      ...opts.ssh,
      dataDir: this.dataDir,
      runDir: this.runDir,
      logDir: this.logDir,
    });
  }

  get pidfile(): string {
    return join(this.runDir, 'appliance-serve.pid');
  }
  get statusFile(): string {
    return join(this.runDir, 'cluster-status.json');
  }
  get logFile(): string {
    return join(this.logDir, 'serve.log');
  }

  /**
   * SIGHUP: read the config again; SSH follows it at once; the child is restarted unless only `ssh`
   * changed (an unreadable config restarts it too: the pass then reports the error).
   */
  reload(): void {
    let next: ApplianceConfig | undefined;
    let readable = true;
    try {
      next = readConfig(this.dataDir);
    } catch {
      readable = false;
    }
    if (readable && this.started) this.ssh.configure(next?.ssh.enabledUntil ?? null);
    if (readable && !this.stopping && sshOnlyChange(this.applied, next)) {
      this.applied = next;
      return;
    }
    this.restart();
  }

  /** End the current pass (its child stops), then start the next one. */
  private restart(): void {
    this.generation += 1;
    this.wake.resolve();
  }

  /** Stop the child and dropbear's listener, and end run(). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.restart();
    await Promise.all([this.stopChild(), this.ssh.stop()]);
  }

  async status(s: Omit<ClusterStatus, 'since'>): Promise<void> {
    const body: ClusterStatus = { ...s, since: new Date().toISOString() };
    await writeFileAtomic(this.statusFile, `${JSON.stringify(body)}\n`, 0o644);
  }

  /** Runs until stop(): one pass per config generation. */
  async run(): Promise<void> {
    mkdirSync(this.runDir, { recursive: true });
    mkdirSync(this.logDir, { recursive: true });
    const other = readPidfile(this.pidfile);
    if (other && other !== process.pid && pidAlive(other) && procCmdline(other)?.includes('serve'))
      throw new NfError('invalid_state', `appliance serve already runs (pid ${other})`);
    await writeFileAtomic(this.pidfile, `${process.pid}\n`, 0o644);
    this.started = true;
    try {
      while (!this.stopping) {
        const gen = this.generation;
        this.wake = deferred<void>();
        await this.pass(gen);
        // Wait for SIGHUP unless one came in meanwhile.
        if (gen === this.generation && !this.stopping) await this.wake.promise;
        await this.stopChild();
      }
      await this.status({ state: 'stopped', mode: 'unknown' });
    } finally {
      await this.ssh.stop();
      rmSync(this.pidfile, { force: true });
    }
  }

  /** One config generation: returns when it has nothing more to do (idle, failed join) or on SIGHUP. */
  private async pass(gen: number): Promise<void> {
    let read: ApplianceConfig | undefined;
    try {
      read = readConfig(this.dataDir);
    } catch (err) {
      this.applied = undefined;
      await this.status({ state: 'error', mode: 'unknown', message: toNfError(err).message });
      return;
    }
    this.applied = read;
    this.ssh.configure(read?.ssh.enabledUntil ?? null);
    if (!read || read.cluster.mode === 'none') {
      await this.status({
        state: 'idle',
        mode: 'none',
        message: 'no cluster chosen yet: create one or join one on the console',
      });
      return;
    }
    let cfg: ApplianceConfig = read;
    const mode = cfg.cluster.mode;
    let address: string | undefined;
    for (;;) {
      address = (this.opts.address ?? defaultAddress)(cfg);
      if (address || gen !== this.generation) break;
      await this.status({
        state: 'waiting',
        mode,
        message: `waiting for an address on ${managementInterface(cfg.network)}`,
      });
      await Promise.race([Bun.sleep(1000), this.wake.promise]);
    }
    if (!address) return;
    const url = `https://${urlHost(address)}:${API_PORT}`;
    for (let attempt = 0; gen === this.generation; attempt++) {
      const { exit } = await this.startChild(cfg, address, url);
      const ready = this.watchReady(cfg, url, exit);
      const code = await Promise.race([exit, this.wake.promise.then(() => 'reload' as const)]);
      await ready;
      if (code === 'reload' || gen !== this.generation) return;
      // A join that worked made the config say member: from then on a dying child is restarted.
      try {
        cfg = readConfig(this.dataDir) ?? cfg;
        // What runs from now on; its ssh part stays what SSH was last given (a SIGHUP brings the rest).
        this.applied = { ...cfg, ssh: this.applied?.ssh ?? cfg.ssh };
      } catch {}
      const current = this.readStatus();
      const message =
        current?.state === 'error' && current.message
          ? current.message
          : `neuroflow serve exited (${code ?? 'killed by a signal'}): ${this.lastLogLines()}`;
      if (cfg.cluster.mode === 'join') {
        await this.status({ state: 'error', mode: cfg.cluster.mode, message });
        return;
      }
      await this.status({ state: 'error', mode: cfg.cluster.mode, message: `${message}; restarting` });
      const delay = (this.opts.restartDelayMs ?? ((a) => Math.min(60_000, 2000 * 2 ** a)))(attempt);
      await Promise.race([Bun.sleep(delay), this.wake.promise]);
    }
  }

  /**
   * Polls the API until it answers (then: status running; a join is done, so the config says member from
   * now on) or the child exits.
   */
  private async watchReady(cfg: ApplianceConfig, url: string, exit: Promise<number | null>): Promise<void> {
    let exited = false;
    void exit.then(() => {
      exited = true;
    });
    const healthy = this.opts.healthy ?? apiHealthy;
    while (!exited) {
      if (await healthy(url)) {
        if (exited) return;
        let mode = cfg.cluster.mode;
        if (mode === 'join') {
          try {
            const now = readConfig(this.dataDir) ?? cfg;
            if (now.cluster.mode === 'join') {
              const member: ApplianceConfig = { ...now, cluster: { mode: 'member' } };
              await writeConfig(member, this.dataDir);
              // A later SIGHUP compares against what runs: the joined member.
              if (this.applied?.cluster.mode === 'join') this.applied = { ...member, ssh: this.applied.ssh };
            }
            mode = 'member';
          } catch (err) {
            await this.status({
              state: 'error',
              mode,
              message: `joined, but the config was not rewritten: ${toNfError(err).message}`,
            });
            return;
          }
        }
        await this.status({
          state: 'running',
          mode,
          url,
          ...(this.child?.pid ? { pid: this.child.pid } : {}),
        });
        return;
      }
      await Promise.race([Bun.sleep(1000), exit]);
    }
  }

  /** Starts the child; the promise it returns resolves with its exit code. */
  private async startChild(
    cfg: ApplianceConfig,
    address: string,
    url: string,
  ): Promise<{ exit: Promise<number | null> }> {
    this.rotateLog();
    const argv = (this.opts.childArgv ?? defaultChildArgv)(cfg, address, this.dataDir);
    const env: Record<string, string | undefined> = { ...process.env, NEUROFLOW_JOIN_TOKEN: undefined };
    // Joined already (the config rewrite was lost): no token, serve carries on with the cluster.
    const joined = existsSync(clusterConfigPath(this.dataDir));
    if (cfg.cluster.mode === 'join' && !joined) env.NEUROFLOW_JOIN_TOKEN = cfg.cluster.token;
    // NeuroFlow's root login takes the config's password (its scrypt hash; no plain password is kept).
    env.NEUROFLOW_ROOT_PASSWORD_SCRYPT = cfg.rootPassword
      ? JSON.stringify(cfg.rootPassword.scrypt)
      : undefined;
    await this.status({
      state: 'starting',
      mode: cfg.cluster.mode,
      url,
      message: `starting neuroflow serve on ${address} (log: ${this.logFile})`,
    });
    const fd = openSync(this.logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], env });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    const exit = deferred<number | null>();
    child.once('exit', (code) => {
      if (this.child === child) this.child = undefined;
      exit.resolve(code);
    });
    child.once('error', (err) => {
      if (this.child === child) this.child = undefined;
      void this.status({ state: 'error', mode: cfg.cluster.mode, message: err.message }).finally(() =>
        exit.resolve(127),
      );
    });
    this.childExit = exit.promise;
    return { exit: exit.promise };
  }

  private async stopChild(): Promise<void> {
    const child = this.child;
    const exited = this.childExit;
    if (!child || !exited || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = this.opts.stopTimeoutMs ?? 30_000;
    const done = await Promise.race([exited.then(() => true), Bun.sleep(t).then(() => false)]);
    if (!done) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  readStatus(): ClusterStatus | undefined {
    try {
      return JSON.parse(readFileSync(this.statusFile, 'utf8')) as ClusterStatus;
    } catch {
      return undefined;
    }
  }

  private rotateLog(): void {
    try {
      if (statSync(this.logFile).size > 16 * 1024 * 1024) renameSync(this.logFile, `${this.logFile}.1`);
    } catch {}
  }

  private lastLogLines(): string {
    try {
      const lines = readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-3);
      return lines.join(' | ').slice(-600);
    } catch {
      return '';
    }
  }
}

/** `neuroflow appliance serve`. Returns -1: it keeps running (until SIGTERM). */
export async function runApplianceServe(): Promise<number> {
  const sup = new ApplianceServe();
  process.on('SIGHUP', () => sup.reload());
  const stop = () => {
    void sup.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    await sup.run();
  } catch (err) {
    process.stderr.write(`appliance serve: ${toNfError(err).message}\n`);
    // init respawns us at once: do not spin.
    await Bun.sleep(10_000);
    return 1;
  }
  return 0;
}

/** Prints /run/neuroflow/cluster-status.json (for people and scripts on the host). */
export function printStatus(runDir = RUN_DIR): number {
  const p = join(runDir, 'cluster-status.json');
  if (!existsSync(p)) {
    process.stdout.write('{"state":"unknown","message":"appliance serve has not written a status yet"}\n');
    return 1;
  }
  process.stdout.write(readFileSync(p, 'utf8'));
  return 0;
}
