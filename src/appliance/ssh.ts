/**
 * SSH on the appliance, like ESXi's "Enable SSH" with a timeout: the console writes
 * `ssh.enabledUntil` (an ISO time, or null) into the appliance config and SIGHUPs `appliance serve`;
 * the supervisor's `SshService` runs Dropbear (`dropbear -F -E`) while that time is in the future and
 * stops it when the time passes or the config says null.
 *
 * - Only the listener stops at the deadline: sessions opened while SSH was on stay until they end
 *   (as on ESXi), since dropbear forks one process per connection and only the listener is signalled.
 * - Root logs in with the root password (busybox /etc/shadow, set by `appliance boot`); dropbear refuses
 *   an empty password (no `-B`), so a host without a root password takes no SSH login.
 * - The host key (ed25519) is made at first use in DATA_DIR/appliance/ssh/ (0600): an installed host keeps
 *   its SSH identity across reboots; a live system gets a new one at each boot.
 * - Files: /run/neuroflow/ssh-status.json (`{running, until, pid, listen, fingerprint, message, since}`),
 *   /run/neuroflow/dropbear.pid (the listener), /var/log/neuroflow/ssh.log (what the supervisor decided and
 *   dropbear's own log: connections, logins, failures).
 *
 * `planSsh` (config + now + what runs -> start/stop/nothing + when to look again) and `sshOnlyChange`
 * (may a SIGHUP leave `neuroflow serve` running?) are pure and unit-tested; everything else is I/O.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { appendFile, chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { toNfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { pidAlive, procCmdline, readPidfile } from '../util/proc';
import { deferred, waitFor } from '../util/wait';
import type { ApplianceConfig } from './config';

/** Where the supervisor says what SSH does (read by the console). */
export const SSH_STATUS = '/run/neuroflow/ssh-status.json';

/** The longest wait between two looks at the clock while SSH is on (a clock that jumps is noticed). */
export const SSH_MAX_CHECK_MS = 60_000;
/** The furthest ahead a deadline may be (the console's limit is 1440 minutes; 5 minutes of slack). */
export const SSH_MAX_AHEAD_MS = 24 * 3600_000 + 5 * 60_000;

// ---------------------------------------------------------------------------------------------------------
// Pure decisions

export interface SshInputs {
  /** The config's `ssh.enabledUntil` (ISO time or null). */
  enabledUntil: string | null | undefined;
  /** Now, in ms since the epoch. */
  now: number;
  /** Whether the dropbear listener runs now. */
  running: boolean;
  /** After dropbear died on its own: not started again before this time (ms since the epoch). */
  retryAt?: number | undefined;
}

export interface SshDecision {
  action: 'start' | 'stop' | 'none';
  /** Whether dropbear should run. */
  want: boolean;
  /** The deadline in force (ISO), when SSH is on. */
  until?: string;
  /** Call again in this many ms (the deadline, a back-off, a periodic look); undefined: only on a change. */
  nextCheckMs?: number;
  /** Why, for the log and the status. */
  reason: string;
}

/** What to do about dropbear, from the config's deadline, the time and what runs. */
export function planSsh(i: SshInputs): SshDecision {
  const off = (reason: string): SshDecision => ({ action: i.running ? 'stop' : 'none', want: false, reason });
  if (i.enabledUntil === null || i.enabledUntil === undefined) return off('SSH is disabled');
  const untilMs = Date.parse(i.enabledUntil);
  if (!Number.isFinite(untilMs))
    return off(`ssh.enabledUntil is not a time: ${JSON.stringify(i.enabledUntil)}`);
  const until = new Date(untilMs).toISOString();
  if (untilMs <= i.now) return off(`SSH was enabled until ${until}`);
  const left = untilMs - i.now;
  // The console allows at most a day; a deadline further ahead means a wrong clock (a host whose RTC
  // starts behind) or a hand-edited config: SSH stays off rather than on without a limit.
  if (left > SSH_MAX_AHEAD_MS)
    return off(`ssh.enabledUntil ${until} is more than 24 hours ahead: check the clock (SSH stays off)`);
  const base = { want: true, until, nextCheckMs: Math.min(left, SSH_MAX_CHECK_MS) };
  if (i.running) return { ...base, action: 'none', reason: `SSH is enabled until ${until}` };
  if (i.retryAt !== undefined && i.retryAt > i.now)
    return {
      ...base,
      action: 'none',
      nextCheckMs: Math.min(base.nextCheckMs, i.retryAt - i.now),
      reason: `dropbear is started again at ${new Date(i.retryAt).toISOString()}`,
    };
  return { ...base, action: 'start', reason: `SSH is enabled until ${until}` };
}

/** The pause before dropbear is started again after it died on its own `failures` times in a row. */
export function sshRestartDelayMs(failures: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, failures - 1));
}

/**
 * True when a SIGHUP only changed `ssh`: the supervisor then applies SSH and leaves `neuroflow serve`
 * (API, etcd) running. Any other change, and a SIGHUP with no change at all (the console's "Restart
 * Management Services"), restarts serve.
 */
export function sshOnlyChange(
  applied: ApplianceConfig | undefined,
  next: ApplianceConfig | undefined,
): boolean {
  if (!applied || !next) return false;
  if (isDeepStrictEqual(applied.ssh, next.ssh)) return false;
  return isDeepStrictEqual({ ...applied, ssh: null }, { ...next, ssh: null });
}

/** `dropbear`'s argv (no shell). */
export function dropbearArgv(o: { dropbear: string; listen: string[]; hostKey: string; pidfile: string }) {
  return [
    o.dropbear,
    '-F', // foreground: the supervisor is its parent
    '-E', // log to stderr (ssh.log), not syslog
    ...o.listen.flatMap((l) => ['-p', l]),
    '-r',
    o.hostKey,
    '-P',
    o.pidfile,
  ];
}

// ---------------------------------------------------------------------------------------------------------
// The service

export interface SshStatus {
  running: boolean;
  until: string | null;
  pid?: number;
  listen: string[];
  /** SHA256 fingerprint of the host key, once there is one. */
  fingerprint?: string;
  message: string;
  since: string;
}

export interface SshServiceOptions {
  dataDir: string;
  runDir: string;
  logDir: string;
  /** dropbear `-p` values (default `['22']`: every address, port 22). */
  listen?: string[];
  dropbear?: string;
  dropbearkey?: string;
  /** The clock (ms since the epoch). */
  now?: () => number;
  /** How long a stopping dropbear gets before SIGKILL. */
  stopTimeoutMs?: number;
}

/** A program of the image, wherever Debian or Buildroot put it (busybox init's PATH is short). */
export function findProgram(name: string): string {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return name;
}

export const sshKeyDir = (dataDir: string) => join(dataDir, 'appliance', 'ssh');

/** Runs dropbear while `ssh.enabledUntil` is in the future (see the top of this file). */
export class SshService {
  readonly listen: string[];
  readonly hostKey: string;
  private readonly dropbear: string;
  private readonly dropbearkey: string;
  private readonly now: () => number;
  private enabledUntil: string | null = null;
  private proc: ChildProcess | undefined;
  private procExit: Promise<void> | undefined;
  private failures = 0;
  private retryAt: number | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private fingerprint: string | undefined;
  private lastStatus = '';
  private lastError: string | undefined;

  constructor(private readonly opts: SshServiceOptions) {
    this.listen = opts.listen ?? ['22'];
    this.hostKey = join(sshKeyDir(opts.dataDir), 'dropbear_ed25519_host_key');
    this.dropbear = opts.dropbear ?? findProgram('dropbear');
    this.dropbearkey = opts.dropbearkey ?? findProgram('dropbearkey');
    this.now = opts.now ?? Date.now;
  }

  get statusFile(): string {
    return join(this.opts.runDir, 'ssh-status.json');
  }
  get pidfile(): string {
    return join(this.opts.runDir, 'dropbear.pid');
  }
  get logFile(): string {
    return join(this.opts.logDir, 'ssh.log');
  }
  /** The listener's pid while it runs. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** The config's deadline (at start and at every SIGHUP): applied at once. */
  configure(enabledUntil: string | null): void {
    if (this.closed) return;
    if (enabledUntil !== this.enabledUntil) {
      this.enabledUntil = enabledUntil;
      this.failures = 0;
      this.retryAt = undefined;
    }
    this.kick();
  }

  /** Resolves once every decision asked for so far is carried out. */
  settled(): Promise<void> {
    return this.queue;
  }

  /** Stops dropbear (sessions stay) and ends the service. */
  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.queue;
    if (this.proc) await this.stopDropbear('the management service stops');
    if (this.lastStatus)
      await this.writeStatus(false, null, 'the management service (appliance serve) stopped');
  }

  readStatus(): SshStatus | undefined {
    return readSshStatus(this.statusFile);
  }

  private kick(): void {
    this.queue = this.queue.then(
      () => this.step(),
      () => this.step(),
    );
  }

  /** One decision: plan, act, say so, and set the timer for the next look. */
  private async step(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const inputs = () => ({
      enabledUntil: this.enabledUntil,
      now: this.now(),
      running: this.proc !== undefined,
      retryAt: this.retryAt,
    });
    const d = planSsh(inputs());
    if (d.action === 'start') {
      try {
        await this.stopStale();
        await this.startDropbear();
        this.lastError = undefined;
        await this.log(
          `SSH enabled until ${d.until}: started dropbear (pid ${this.proc?.pid}) on ${this.listen.join(', ')}`,
        );
      } catch (err) {
        this.failures += 1;
        const delay = sshRestartDelayMs(this.failures);
        this.retryAt = this.now() + delay;
        this.lastError = `cannot start dropbear: ${toNfError(err).message}`;
        await this.log(`${this.lastError}; trying again in ${Math.round(delay / 1000)} s`);
      }
    } else if (d.action === 'stop') {
      await this.stopDropbear(d.reason);
    }
    // A listener left by a supervisor that died (SIGKILL, out of memory) is not our child: while SSH is
    // off it must go too, or it would listen on without a deadline.
    if (!d.want) await this.stopStale();
    if (!d.want) this.lastError = undefined;
    const after = planSsh(inputs());
    const message = this.proc
      ? `dropbear runs on ${this.listen.join(', ')} until ${after.until}`
      : this.lastError && after.want
        ? `${this.lastError}; ${after.reason}`
        : after.reason;
    await this.writeStatus(this.proc !== undefined, after.until ?? null, message);
    if (after.nextCheckMs !== undefined && !this.closed)
      this.timer = setTimeout(() => this.kick(), after.nextCheckMs);
  }

  /** The host key, made at first use (dropbearkey writes a temp file, renamed into place). */
  private async ensureHostKey(): Promise<void> {
    const dir = sshKeyDir(this.opts.dataDir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!existsSync(this.hostKey)) {
      const tmp = `${this.hostKey}.tmp-${process.pid}`;
      await rm(tmp, { force: true });
      const r = await run([this.dropbearkey, '-t', 'ed25519', '-f', tmp]);
      if (r.code !== 0) {
        await rm(tmp, { force: true });
        throw new Error(`dropbearkey failed (${r.code}): ${r.output.trim().slice(-300)}`);
      }
      await chmod(tmp, 0o600);
      await rename(tmp, this.hostKey);
      await this.log(`made the SSH host key ${this.hostKey}`);
    }
    await chmod(this.hostKey, 0o600);
    if (!this.fingerprint) {
      const r = await run([this.dropbearkey, '-y', '-f', this.hostKey]);
      const m = /Fingerprint:\s*(\S+)/.exec(r.output);
      if (m) {
        this.fingerprint = m[1];
        await this.log(`host key fingerprint ${this.fingerprint}`);
      }
    }
  }

  private async startDropbear(): Promise<void> {
    await mkdir(this.opts.runDir, { recursive: true });
    await mkdir(this.opts.logDir, { recursive: true });
    await this.ensureHostKey();
    await this.rotateLog();
    const argv = dropbearArgv({
      dropbear: this.dropbear,
      listen: this.listen,
      hostKey: this.hostKey,
      pidfile: this.pidfile,
    });
    const fd = openSync(this.logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    const exit = deferred<void>();
    const spawned = deferred<void>();
    this.proc = child;
    this.procExit = exit.promise;
    child.once('spawn', () => spawned.resolve());
    child.once('error', (err) => {
      if (this.proc === child) {
        this.proc = undefined;
        this.procExit = undefined;
      }
      spawned.reject(err);
      exit.resolve();
    });
    child.once('exit', (code, signal) => {
      exit.resolve();
      if (this.proc !== child) return;
      // Died on its own (port taken, a broken key...): started again after a back-off.
      this.proc = undefined;
      this.procExit = undefined;
      this.failures += 1;
      const delay = sshRestartDelayMs(this.failures);
      this.retryAt = this.now() + delay;
      this.lastError = `dropbear exited (${code ?? signal})`;
      void this.log(
        `dropbear (pid ${child.pid}) exited (${code ?? signal}); starting it again in ${Math.round(delay / 1000)} s if SSH is still enabled`,
      ).finally(() => this.kick());
    });
    await spawned.promise;
  }

  private async stopDropbear(reason: string): Promise<void> {
    const child = this.proc;
    const exited = this.procExit;
    this.proc = undefined;
    this.procExit = undefined;
    if (!child || !exited) return;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = this.opts.stopTimeoutMs ?? 5000;
      const done = await Promise.race([exited.then(() => true), Bun.sleep(t).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    this.failures = 0;
    this.retryAt = undefined;
    await this.log(`${reason}: stopped dropbear (pid ${child.pid}); open sessions stay until they end`);
  }

  /** A listener left by a supervisor that died (init respawns it) would hold the port: it is stopped. */
  private async stopStale(): Promise<void> {
    const pid = readPidfile(this.pidfile);
    if (!pid || pid === this.proc?.pid || !pidAlive(pid)) return;
    const argv = procCmdline(pid);
    if (!argv || basename(argv[0] ?? '') !== 'dropbear' || !argv.includes(this.pidfile)) return;
    await this.log(`stopping the dropbear listener left from before (pid ${pid})`);
    try {
      process.kill(pid, 'SIGTERM');
      await waitFor(() => !pidAlive(pid), { timeoutMs: 3000, what: `dropbear pid ${pid} to exit` });
    } catch {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }

  private async writeStatus(running: boolean, until: string | null, message: string): Promise<void> {
    const body = {
      running,
      until,
      ...(running && this.proc?.pid ? { pid: this.proc.pid } : {}),
      listen: this.listen,
      ...(this.fingerprint ? { fingerprint: this.fingerprint } : {}),
      message,
    };
    const key = JSON.stringify(body);
    if (key === this.lastStatus) return;
    this.lastStatus = key;
    const status: SshStatus = { ...body, since: new Date(this.now()).toISOString() };
    try {
      await writeFileAtomic(this.statusFile, `${JSON.stringify(status)}\n`, 0o644);
    } catch {}
  }

  private async log(line: string): Promise<void> {
    try {
      await mkdir(this.opts.logDir, { recursive: true });
      await appendFile(this.logFile, `${new Date(this.now()).toISOString()} appliance serve: ${line}\n`, {
        mode: 0o600,
      });
    } catch {}
  }

  private async rotateLog(): Promise<void> {
    try {
      if ((await stat(this.logFile)).size > 4 * 1024 * 1024) await rename(this.logFile, `${this.logFile}.1`);
    } catch {}
  }
}

/** /run/neuroflow/ssh-status.json, undefined before the supervisor wrote one. */
export function readSshStatus(path: string): SshStatus | undefined {
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as SshStatus;
    return typeof s?.running === 'boolean' ? s : undefined;
  } catch {
    return undefined;
  }
}

async function run(argv: string[]): Promise<{ code: number; output: string }> {
  return await new Promise((resolve) => {
    let output = '';
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      resolve({ code: 127, output: (err as Error).message });
      return;
    }
    child.stdout?.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.stderr?.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.once('error', (err) => resolve({ code: 127, output: `${argv[0]}: ${err.message}` }));
    child.once('close', (code) => resolve({ code: code ?? 1, output }));
  });
}
