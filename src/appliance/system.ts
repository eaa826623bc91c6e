/**
 * What the appliance changes on the running system besides its config: host name, the root account's
 * shadow entry, signals to the management service, shutdown, and the commands of the network plan.
 *
 * Everything goes through a `Runner` and a `root` directory: on the appliance the runner runs commands and
 * root is `/`; in tests and `neuroflow console --dry-run` the runner only logs what it would run, and root
 * is a scratch directory, so no path of the console needs a real appliance.
 */
import { appendFile, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../util/fs';
import { pidAlive, readPidfile } from '../util/proc';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
}

export interface Runner {
  readonly dryRun: boolean;
  /** A command that changes the system; a dry run logs it and answers success. */
  run(argv: string[], opts?: RunOptions): Promise<CommandResult>;
  /** A read-only query (`ip -j addr`, `dmesg`): runs in a dry run too. */
  read(argv: string[], opts?: RunOptions): Promise<CommandResult>;
  /** Sends a signal; a dry run logs it. */
  signal(pid: number, signal: NodeJS.Signals): Promise<void>;
  /** A line for the dry-run log (files written, decisions); nothing otherwise. */
  note(text: string): Promise<void>;
}

async function spawnCommand(argv: string[], opts: RunOptions = {}): Promise<CommandResult> {
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn(argv, {
      stdin: opts.input === undefined ? 'ignore' : new TextEncoder().encode(opts.input),
      stdout: 'pipe',
      stderr: 'pipe',
      ...(opts.timeoutMs ? { timeout: opts.timeoutMs, killSignal: 'SIGKILL' } : {}),
    });
  } catch (err) {
    return { code: 127, stdout: '', stderr: `${argv[0]}: ${(err as Error).message}` };
  }
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout as ReadableStream).text(),
    new Response(proc.stderr as ReadableStream).text(),
    proc.exited,
  ]);
  if (proc.signalCode && opts.timeoutMs)
    return { code: 124, stdout, stderr: `${stderr}${argv[0]}: timed out after ${opts.timeoutMs} ms`.trim() };
  return { code, stdout, stderr };
}

/** Runs commands for real (the appliance). */
export function realRunner(): Runner {
  return {
    dryRun: false,
    run: spawnCommand,
    read: spawnCommand,
    async signal(pid, signal) {
      process.kill(pid, signal);
    },
    async note() {},
  };
}

/** Logs what it would change to `logFile` (one line each: time, what, argv as JSON) and changes nothing. */
export function dryRunRunner(logFile: string): Runner {
  const log = async (what: string, detail: string) => {
    await mkdir(dirname(logFile), { recursive: true });
    await appendFile(logFile, `${new Date().toISOString()} ${what} ${detail}\n`);
  };
  return {
    dryRun: true,
    async run(argv) {
      await log('run', JSON.stringify(argv));
      return { code: 0, stdout: '', stderr: '' };
    },
    read: spawnCommand,
    async signal(pid, signal) {
      await log('signal', JSON.stringify([signal, pid]));
    },
    async note(text) {
      await log('note', JSON.stringify(text));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Paths

/** Where the supervisor (busybox init's `neuroflow appliance serve`) keeps its pid. */
export const SERVE_PIDFILE = '/run/neuroflow/appliance-serve.pid';
/** Where the supervisor writes serve's output (a refused join ends with `error (CODE): MESSAGE`). */
export const SERVE_LOG = '/var/log/neuroflow/serve.log';
/** What the supervisor runs now: `{state: idle|waiting|starting|running|error|stopped, mode, message, since}`. */
export const CLUSTER_STATUS = '/run/neuroflow/cluster-status.json';

export interface SystemPaths {
  root: string;
  servePidfile: string;
  serveLog: string;
  clusterStatus: string;
  shadow: string;
  hostname: string;
  hosts: string;
}

export function systemPaths(root = '/'): SystemPaths {
  return {
    root,
    servePidfile: join(root, SERVE_PIDFILE),
    serveLog: join(root, SERVE_LOG),
    clusterStatus: join(root, CLUSTER_STATUS),
    shadow: join(root, 'etc', 'shadow'),
    hostname: join(root, 'etc', 'hostname'),
    hosts: join(root, 'etc', 'hosts'),
  };
}

export interface SystemContext {
  root: string;
  runner: Runner;
}

// ---------------------------------------------------------------------------------------------------------
// Host name

/** /etc/hosts with `127.0.1.1 NAME` (replacing an earlier 127.0.1.1 line) and a localhost line. */
export function hostsWithName(current: string | undefined, name: string): string {
  const lines = (current ?? '').split('\n').filter((l) => l.trim() !== '' && !/^\s*127\.0\.1\.1\s/.test(l));
  if (!lines.some((l) => /^\s*127\.0\.0\.1\s/.test(l))) lines.unshift('127.0.0.1\tlocalhost');
  const i = lines.findIndex((l) => /^\s*127\.0\.0\.1\s/.test(l));
  lines.splice(i + 1, 0, `127.0.1.1\t${name}`);
  return `${lines.join('\n')}\n`;
}

/** Writes ROOT/etc/hostname and ROOT/etc/hosts, then sets the kernel's host name (`hostname NAME`). */
export async function applyHostname(name: string, ctx: SystemContext): Promise<CommandResult> {
  const p = systemPaths(ctx.root);
  await writeFileAtomic(p.hostname, `${name}\n`, 0o644);
  await writeFileAtomic(p.hosts, hostsWithName(await readFile(p.hosts, 'utf8').catch(() => undefined), name));
  await ctx.runner.note(`wrote ${p.hostname} and ${p.hosts}`);
  return ctx.runner.run(['hostname', name]);
}

// ---------------------------------------------------------------------------------------------------------
// Root password

/**
 * /etc/shadow with root's password field set to `hash` (SHA-512 crypt) and its last-change day set to
 * today; other accounts and root's other fields are kept. Without a root line one is added.
 */
export function shadowWithRootHash(current: string | undefined, hash: string, now = new Date()): string {
  if (!hash.startsWith('$6$') || /[:\n]/.test(hash)) throw new Error('not a SHA-512 crypt hash');
  const day = String(Math.floor(now.getTime() / 86_400_000));
  const lines = (current ?? '').split('\n').filter((l) => l !== '');
  const i = lines.findIndex((l) => l.startsWith('root:'));
  if (i < 0) {
    lines.unshift(`root:${hash}:${day}:0:99999:7:::`);
  } else {
    const f = lines[i]!.split(':');
    while (f.length < 9) f.push('');
    f[1] = hash;
    f[2] = day;
    lines[i] = f.join(':');
  }
  return `${lines.join('\n')}\n`;
}

/** Sets the Linux root account's password from the config's SHA-512 hash (ROOT/etc/shadow, mode kept). */
export async function applyRootPassword(hash: string, ctx: Pick<SystemContext, 'root'>): Promise<void> {
  const p = systemPaths(ctx.root).shadow;
  const current = await readFile(p, 'utf8').catch(() => undefined);
  const mode = current === undefined ? 0o600 : (await stat(p)).mode & 0o777;
  await writeFileAtomic(p, shadowWithRootHash(current, hash), mode);
}

// ---------------------------------------------------------------------------------------------------------
// Services the appliance's init provides

export interface RestartOutcome {
  /** True when the signal went out (or, in a dry run, was logged). */
  signalled: boolean;
  pid?: number;
  message: string;
}

/**
 * Asks the supervisor to apply the config: `neuroflow appliance serve` runs under busybox init (respawn)
 * and re-reads the appliance config, restarting `serve` as needed, on SIGHUP to the pid in its pidfile.
 */
export async function restartManagement(ctx: SystemContext): Promise<RestartOutcome> {
  const pidfile = systemPaths(ctx.root).servePidfile;
  const pid = readPidfile(pidfile);
  if (pid === undefined)
    return {
      signalled: false,
      message: `the management service is not running (no ${pidfile}); it uses the new settings when it starts`,
    };
  if (!ctx.runner.dryRun && !pidAlive(pid))
    return { signalled: false, pid, message: `the management service (pid ${pid}) is not running` };
  try {
    await ctx.runner.signal(pid, 'SIGHUP');
  } catch (err) {
    return { signalled: false, pid, message: `cannot signal pid ${pid}: ${(err as Error).message}` };
  }
  return { signalled: true, pid, message: `asked the management service (pid ${pid}) to restart` };
}

/** The small interface through which the console drives the appliance's services. */
export interface ApplianceServices {
  /** SIGHUP to the supervisor: it re-reads the config (network, cluster, SSH) and restarts serve. */
  restartManagement(): Promise<RestartOutcome>;
  /** busybox `poweroff` / `reboot` (they signal init, which stops everything in order). */
  shutdown(kind: 'poweroff' | 'reboot'): Promise<CommandResult>;
}

export function applianceServices(ctx: SystemContext): ApplianceServices {
  return {
    restartManagement: () => restartManagement(ctx),
    shutdown: (kind) => ctx.runner.run([kind]),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Network test

export interface PingOutcome {
  target: string;
  ok: boolean;
  /** "3/3 replies, 0.4 ms average" or the failure. */
  summary: string;
}

/** Summarises `ping -c N` output (busybox or iputils). */
export function summarisePing(target: string, r: CommandResult, dryRun = false): PingOutcome {
  if (dryRun) return { target, ok: true, summary: 'dry run: not sent' };
  const out = `${r.stdout}\n${r.stderr}`;
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const avg = /= [\d.]+\/([\d.]+)\//.exec(out);
  if (m) {
    const ok = Number(m[2]) > 0;
    return {
      target,
      ok,
      summary: `${m[2]}/${m[1]} replies${ok && avg ? `, ${avg[1]} ms average` : ''}`,
    };
  }
  return { target, ok: false, summary: (r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.code}` };
}

/** Pings an address three times (2 s wait each); a dry run logs the command instead. */
export async function pingHost(target: string, runner: Runner): Promise<PingOutcome> {
  const r = await runner.run(['ping', '-c', '3', '-W', '2', target], { timeoutMs: 15_000 });
  return summarisePing(target, r, runner.dryRun);
}
