import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../../src/cli/client';
import { pidAlive, procCmdline, readPidfile } from '../../src/util/proc';
import { waitFor } from '../../src/util/wait';
import { testGuest } from './guest';

const ROOT = join(import.meta.dirname, '..', '..');

/** How to run neuroflow: the built binary when there is one (what users run), else the sources. */
export function neuroflowCommand(): string[] {
  const bin = process.env.NEUROFLOW_BINARY ?? join(ROOT, 'dist', 'neuroflow');
  if (existsSync(bin)) return [bin];
  return [process.execPath, join(ROOT, 'src', 'main.ts')];
}

/**
 * One `neuroflow serve --dev` in its own data dir on a free port. Disposing it kills the daemon, every
 * QEMU and etcd it started, and removes the data dir, even when the test failed.
 */
export class TestDaemon implements AsyncDisposable {
  child?: ChildProcess;
  url = '';
  token = '';
  api!: ApiClient;
  output = '';
  env: Record<string, string> = {};

  private constructor(readonly dataDir: string) {}

  static async start(
    opts: { dataDir?: string; demoIso?: string; env?: Record<string, string> } = {},
  ): Promise<TestDaemon> {
    const d = new TestDaemon(opts.dataDir ?? mkdtempSync(join(tmpdir(), 'nf-test-')));
    d.env = opts.env ?? {};
    await d.launch(opts.demoIso);
    return d;
  }

  /** Runs a CLI command against this daemon; resolves with its stdout, rejects with its stderr. */
  cli(args: string[]): Promise<string> {
    const [cmd, ...pre] = neuroflowCommand();
    return new Promise((resolve, reject) => {
      execFile(cmd!, [...pre, ...args, '--data-dir', this.dataDir], (err, stdout, stderr) =>
        err
          ? reject(new Error(`neuroflow ${args.join(' ')} failed: ${stderr || err.message}`))
          : resolve(stdout),
      );
    });
  }

  async launch(demoIso?: string): Promise<void> {
    rmSync(join(this.dataDir, 'api.url'), { force: true });
    const [cmd, ...pre] = neuroflowCommand();
    // The API may only use host files under allowed dirs: the test guest's, and temp dirs tests make.
    const args = [
      ...pre,
      'serve',
      '--dev',
      '--data-dir',
      this.dataDir,
      '--listen',
      '127.0.0.1:0',
      '--host-path',
      testGuest().dir,
      '--host-path',
      tmpdir(),
    ];
    if (demoIso) args.push('--demo-image', `demo=${demoIso}`);
    const child = spawn(cmd!, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NEUROFLOW_ACCEL: 'tcg', ...this.env },
    });
    this.child = child;
    child.stdout!.on('data', (b) => (this.output += b));
    child.stderr!.on('data', (b) => (this.output += b));
    await waitFor(
      () => {
        if (child.exitCode !== null)
          throw new Error(`neuroflow serve exited ${child.exitCode}:\n${this.output}`);
        return existsSync(join(this.dataDir, 'api.url'));
      },
      { timeoutMs: 60_000, what: 'neuroflow serve to listen' },
    );
    this.url = readFileSync(join(this.dataDir, 'api.url'), 'utf8').trim();
    this.token = readFileSync(join(this.dataDir, 'admin.token'), 'utf8').trim();
    this.api = new ApiClient({ url: this.url, token: this.token });
  }

  /** Simulates a crash: SIGKILL, no cleanup by the daemon. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGKILL');
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, {
      timeoutMs: 10_000,
      what: 'daemon to die',
    });
  }

  async stopGracefully(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, {
      timeoutMs: 20_000,
      what: 'daemon to stop',
    });
  }

  /** QEMU processes that belong to this daemon's data dir. */
  qemuPids(): number[] {
    const vmsDir = join(this.dataDir, 'node', 'vms');
    if (!existsSync(vmsDir)) return [];
    return readdirSync(vmsDir)
      .map((id) => readPidfile(join(vmsDir, id, 'qemu.pid')))
      .filter(
        (pid): pid is number =>
          pid !== undefined &&
          pidAlive(pid) &&
          (procCmdline(pid) ?? []).some((a) => a.includes(this.dataDir)),
      );
  }

  /** Ceph daemons of this data dir's integrated cluster (their argv names its ceph.conf). */
  cephPids(): number[] {
    const conf = join(this.dataDir, 'ceph', 'ceph.conf');
    return pidsWhere((argv) => argv.includes(conf));
  }

  ovnPids(): number[] {
    return ovnPids(this.dataDir);
  }

  ovnTaps(): string[] {
    return ovnTaps(this.dataDir);
  }

  etcdPid(): number | undefined {
    const pid = readPidfile(join(this.dataDir, 'etcd', 'etcd.pid'));
    return pid && pidAlive(pid) ? pid : undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill9().catch(() => {});
    const taps = this.ovnTaps();
    const pids = [...this.qemuPids(), ...this.ovnPids()];
    const etcd = this.etcdPid();
    if (etcd) pids.push(etcd);
    pids.push(...this.cephPids());
    await killAll(pids);
    for (const t of taps) spawnSync('ip', ['link', 'del', t]);
    // the userspace datapath's own devices outlive ovs-vswitchd; kept while another one of this network
    // namespace (another test's daemon) may use them
    if (taps.length > 0 || existsSync(join(this.dataDir, 'ovn'))) {
      const here = readlinkSync('/proc/self/ns/net');
      const others = pidsWhere((argv) => argv[0]?.endsWith('ovs-vswitchd') ?? false).filter((p) => {
        try {
          return readlinkSync(`/proc/${p}/ns/net`) === here;
        } catch {
          return false;
        }
      });
      if (others.length === 0)
        for (const dev of ['br-int', 'ovs-netdev']) spawnSync('ip', ['link', 'del', dev]);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Processes whose command line passes the test. */
export function pidsWhere(test: (argv: string[]) => boolean): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((pid) => test(procCmdline(pid) ?? []));
}

/** Open vSwitch and OVN daemons of a data dir (their argv names files under <data dir>/ovn/). */
export function ovnPids(dataDir: string): number[] {
  const root = join(dataDir, 'ovn');
  return pidsWhere((argv) => argv.some((a) => a.includes(root)));
}

/** The pid of one OVN/OVS daemon of a data dir (`ovn-northd`, `ovn-controller`, ...), if it runs. */
export function ovnDaemonPid(dataDir: string, name: string): number | undefined {
  const root = join(dataDir, 'ovn');
  return pidsWhere((argv) => argv[0]?.endsWith(`/${name}`) === true && argv.some((a) => a.includes(root)))[0];
}

/** The tap devices of VM NICs on a data dir's OVN integration bridge. */
export function ovnTaps(dataDir: string): string[] {
  const sock = join(dataDir, 'ovn', 'run', 'db.sock');
  if (!existsSync(sock)) return [];
  const r = spawnSync('ovs-vsctl', [`--db=unix:${sock}`, '--timeout=5', 'list-ports', 'br-int'], {
    encoding: 'utf8',
  });
  return r.status === 0 ? r.stdout.split('\n').filter((t) => /^nf[0-9a-f]{12}$/.test(t)) : [];
}

/** SIGKILLs the processes and waits (bounded) until they are gone. */
export async function killAll(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  await waitFor(() => pids.every((p) => !pidAlive(p)), {
    timeoutMs: 10_000,
    what: 'test processes to die',
  }).catch(() => {});
}
