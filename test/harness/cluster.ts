import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../../src/cli/client';
import { pidAlive, procCmdline, readPidfile } from '../../src/util/proc';
import { waitFor } from '../../src/util/wait';
import { killAll, neuroflowCommand } from './daemon';
import { testGuest } from './guest';

function run(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/**
 * Several "hosts" on one machine: each a network namespace with its own IP on a bridge in the root
 * namespace (which also gets an address, so the test process reaches every host). Disposing it removes
 * every namespace and the bridge.
 */
export class NetLab implements AsyncDisposable {
  readonly id = randomBytes(3).toString('hex');
  readonly bridge = `nfbr${this.id}`;
  /** A second network: each host's `eth1`, for Geneve between hosts (NEUROFLOW_OVERLAY_INTERFACE=eth1). */
  readonly overlayBridge = `nfob${this.id}`;
  readonly subnet: string;
  readonly overlaySubnet: string;
  readonly hosts: { ns: string; ip: string }[] = [];
  readonly taps: string[] = [];

  constructor() {
    // 10.<200-249>.<0-255>.0/24, unlikely to collide with the machine's own networks.
    const b = randomBytes(2);
    this.subnet = `10.${200 + (b[0]! % 50)}.${b[1]!}`;
    run(['ip', 'link', 'add', this.bridge, 'type', 'bridge']);
    run(['ip', 'addr', 'add', `${this.subnet}.254/24`, 'dev', this.bridge]);
    run(['ip', 'link', 'set', this.bridge, 'up']);
    this.overlaySubnet = `10.${200 + (b[0]! % 50)}.${(b[1]! + 128) % 256}`;
    run(['ip', 'link', 'add', this.overlayBridge, 'type', 'bridge']);
    run(['ip', 'link', 'set', this.overlayBridge, 'up']);
  }

  /** A new namespace "host" with address subnet.N (N = 1, 2, ...). */
  addHost(): { ns: string; ip: string } {
    const n = this.hosts.length + 1;
    const ns = `nf${this.id}h${n}`;
    const veth = `nfv${this.id}${n}`;
    run(['ip', 'netns', 'add', ns]);
    run(['ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    run(['ip', 'link', 'set', veth, 'master', this.bridge, 'up']);
    const ip = `${this.subnet}.${n}`;
    run(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const oveth = `nfo${this.id}${n}`;
    run(['ip', 'link', 'add', oveth, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', ns]);
    run(['ip', 'link', 'set', oveth, 'master', this.overlayBridge, 'up']);
    run(['ip', '-n', ns, 'addr', 'add', `${this.overlaySubnet}.${n}/24`, 'dev', 'eth1']);
    run(['ip', '-n', ns, 'link', 'set', 'eth1', 'up']);
    const host = { ns, ip };
    this.hosts.push(host);
    return host;
  }

  readonly outside: string[] = [];

  /**
   * An "outside" namespace on the second network (the hosts' eth1): address overlaySubnet.200, no route
   * to any VM network (what reaches a VM from it comes through a router's uplink). Returns its name.
   */
  addOutside(): string {
    const ns = `nf${this.id}out`;
    const veth = `nfx${this.id}`;
    run(['ip', 'netns', 'add', ns]);
    this.outside.push(ns);
    run(['ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    run(['ip', 'link', 'set', veth, 'master', this.overlayBridge, 'up']);
    run(['ip', '-n', ns, 'addr', 'add', `${this.overlaySubnet}.200/24`, 'dev', 'eth0']);
    run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /**
   * A tap device on the bridge for a QEMU NIC (`-netdev tap,ifname=TAP,script=no,downscript=no`): the
   * VM is a host of this lab; its address is its own business (subnet.N with N > 100 is free).
   */
  addTap(): string {
    const tap = `nft${this.id}${this.taps.length + 1}`;
    run(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    this.taps.push(tap);
    run(['ip', 'link', 'set', tap, 'master', this.bridge, 'up']);
    return tap;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const t of this.taps) spawnSync('ip', ['link', 'del', t]);
    for (const h of this.hosts) spawnSync('ip', ['netns', 'del', h.ns]);
    for (const ns of this.outside) spawnSync('ip', ['netns', 'del', ns]);
    spawnSync('ip', ['link', 'del', this.bridge]);
    spawnSync('ip', ['link', 'del', this.overlayBridge]);
  }
}

/** A lab's end: each host's crash report printed (if it has one), the hosts and the lab disposed. */
export async function tearDown(hosts: ClusterHost[], lab: NetLab | undefined): Promise<void> {
  for (const x of hosts) {
    const report = x.crashReport();
    if (report) console.error(report);
  }
  await Promise.all(hosts.map((x) => x[Symbol.asyncDispose]()));
  await lab?.[Symbol.asyncDispose]();
}

/**
 * `neuroflow serve` (cluster mode) inside a namespace, with its own data dir. Disposing it kills the
 * daemon and every etcd and QEMU it started, and removes the data dir.
 */
export class ClusterHost implements AsyncDisposable {
  child?: ChildProcess;
  output = '';
  readonly dataDir = mkdtempSync(join(tmpdir(), 'nf-cluster-'));

  constructor(
    readonly name: string,
    readonly ns: string,
    readonly ip: string,
  ) {}

  get url(): string {
    return `https://${this.ip}:8006`;
  }

  /** Starts serve; resolves once the API answers (or rejects with the daemon's output if it exits). */
  async start(opts: { join?: string; env?: Record<string, string> } = {}): Promise<void> {
    rmSync(join(this.dataDir, 'api.url'), { force: true });
    const [cmd, ...pre] = neuroflowCommand();
    const args = [
      'netns',
      'exec',
      this.ns,
      cmd!,
      ...pre,
      'serve',
      '--data-dir',
      this.dataDir,
      '--listen',
      `${this.ip}:8006`,
      '--name',
      this.name,
      '--host-path',
      testGuest().dir,
    ];
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      NEUROFLOW_ACCEL: 'tcg',
      // DRS passes only when a test asks (POST /drs/run): no VM moves under another test's feet
      NEUROFLOW_DRS_INTERVAL_SEC: '0',
    };
    if (opts.join) env.NEUROFLOW_JOIN_TOKEN = opts.join;
    Object.assign(env, opts.env ?? {});
    this.output = '';
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    child.stdout!.on('data', (b) => (this.output += b));
    child.stderr!.on('data', (b) => (this.output += b));
    await waitFor(
      () => {
        if (child.exitCode !== null)
          throw new Error(`serve on ${this.name} exited ${child.exitCode}:\n${this.output}`);
        return existsSync(join(this.dataDir, 'api.url'));
      },
      { timeoutMs: 180_000, what: `serve on ${this.name} to listen` },
    );
  }

  /** Runs serve expecting it to fail at once; returns its exit code and output. */
  async startExpectingFailure(opts: { join?: string }): Promise<{ code: number | null; output: string }> {
    try {
      await this.start(opts);
    } catch {
      return { code: this.child?.exitCode ?? null, output: this.output };
    }
    throw new Error(`serve on ${this.name} started but was expected to fail`);
  }

  /** An API client trusting the cluster CA, with the given (admin) token. */
  api(token: string, caPem: string): ApiClient {
    return new ApiClient({ url: this.url, token, ca: caPem });
  }

  file(rel: string): string {
    return readFileSync(join(this.dataDir, rel), 'utf8');
  }

  /** The last lines of the daemon's output when it exited by itself (for a failing test's report). */
  crashReport(): string | undefined {
    const c = this.child;
    if (!c || c.exitCode === null || c.signalCode === 'SIGKILL') return undefined;
    return `serve on ${this.name} exited (${c.exitCode ?? c.signalCode}):\n${this.output.split('\n').slice(-40).join('\n')}`;
  }

  /**
   * The whole host dies: serve and every process in its namespace (etcd, QEMU, passt, Ceph daemons) get
   * SIGKILL at once, as when the power goes. Its data dir stays, so start() brings it back.
   */
  async powerOff(): Promise<void> {
    await this.kill9();
    const pids = spawnSync('ip', ['netns', 'pids', this.ns], { encoding: 'utf8' })
      .stdout.split('\n')
      .map(Number)
      .filter((n) => n > 0);
    await killAll(pids);
  }

  /** The host's QEMU processes (of VMs in its run dir), alive now. */
  qemuPids(vmId?: string): number[] {
    const vmsDir = join(this.dataDir, 'node', 'vms');
    if (!existsSync(vmsDir)) return [];
    return readdirSync(vmsDir)
      .filter((id) => !vmId || id === vmId)
      .flatMap((id) => {
        const pid = readPidfile(join(vmsDir, id, 'qemu.pid'));
        return pid && pidAlive(pid) && (procCmdline(pid) ?? []).some((a) => a.includes(this.dataDir))
          ? [pid]
          : [];
      });
  }

  /** A host crash as HA sees it: serve and every QEMU of the host get SIGKILL (etcd and Ceph live on). */
  async crash(): Promise<void> {
    const qemus = this.qemuPids();
    await this.kill9();
    await killAll(qemus);
  }

  /** Takes the host's only link down (a partition) or up again. */
  link(up: boolean): void {
    run(['ip', '-n', this.ns, 'link', 'set', 'eth0', up ? 'up' : 'down']);
  }

  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, {
      timeoutMs: 10_000,
      what: `serve on ${this.name} to die`,
    });
  }

  private pids(): number[] {
    const pids = this.qemuPids();
    // Ceph daemons (our pidfiles; their argv names this data dir's ceph.conf)
    const cephRun = join(this.dataDir, 'ceph', 'run');
    if (existsSync(cephRun)) {
      for (const f of readdirSync(cephRun).filter((x) => x.endsWith('.pid'))) {
        const pid = readPidfile(join(cephRun, f));
        if (pid && pidAlive(pid) && (procCmdline(pid) ?? []).some((a) => a.includes(this.dataDir)))
          pids.push(pid);
      }
    }
    const etcd = readPidfile(join(this.dataDir, 'etcd', 'etcd.pid'));
    if (etcd && pidAlive(etcd) && (procCmdline(etcd) ?? []).some((a) => a.includes(this.dataDir)))
      pids.push(etcd);
    return pids;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill9().catch(() => {});
    // NF_KEEP_LOGS=DIR keeps each host's daemon output for a post-mortem.
    // (never at the cost of the clean-up below)
    if (process.env.NF_KEEP_LOGS)
      try {
        mkdirSync(process.env.NF_KEEP_LOGS, { recursive: true });
        writeFileSync(join(process.env.NF_KEEP_LOGS, `${this.name}.log`), this.output);
      } catch (err) {
        console.error(`cannot keep the log of ${this.name}: ${(err as Error).message}`);
      }
    await killAll(this.pids());
    await this.powerOff().catch(() => {}); // anything else still running in the namespace
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Waits until `n` hosts are ready (heartbeats arrive) and connected (the API's controller reaches them). */
export function readyHosts(api: ApiClient, n: number, timeoutMs = 90_000): Promise<unknown> {
  return waitFor(
    async () =>
      (await api.request<{ state: string; connected: boolean }[]>('GET', '/api/v1/nodes')).filter(
        (h) => h.state === 'ready' && h.connected,
      ).length === n,
    { timeoutMs, intervalMs: 500, what: `${n} ready hosts` },
  );
}
