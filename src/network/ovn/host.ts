/**
 * Open vSwitch and OVN on this host, run by `serve` like etcd and Ceph (src/util/daemon.ts: adopted after
 * a restart of `serve`, started again when they die): the switch's database and `ovs-vswitchd`, and
 * `ovn-controller`, which turns the southbound database into flows on the integration bridge. On a host
 * that holds OVN's central part (one host today), the northbound and southbound databases and
 * `ovn-northd` too. Everything lives under `<data dir>/ovn/` (its own run dir: nothing of a system OVS is
 * touched). The userspace (`netdev`) datapath is used when the kernel has no openvswitch module.
 *
 * The daemons start only once a host needs them (the first overlay network): a host without overlay
 * networks runs none of them.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { NfError } from '../../errors';
import { Daemon } from '../../util/daemon';
import { createLogger } from '../../util/log';
import { runTool } from '../../util/tool';
import { waitFor } from '../../util/wait';

const log = createLogger('ovn');

const SCHEMAS = {
  vswitch: '/usr/share/openvswitch/vswitch.ovsschema',
  nb: '/usr/share/ovn/ovn-nb.ovsschema',
  sb: '/usr/share/ovn/ovn-sb.ovsschema',
};
const INSTALL = 'install openvswitch-switch, ovn-host and ovn-central (scripts/setup.sh)';
export const INTEGRATION_BRIDGE = 'br-int';
/** The userspace datapath's bridge for Geneve's underlay (the overlay interface is its port). */
const UNDERLAY_BRIDGE = 'br-phy';

export interface OvnPaths {
  root: string;
  run: string;
  log: string;
  db: string;
  /** The switch's database socket. */
  ovsSock: string;
  nbSock: string;
  sbSock: string;
}

export function ovnPaths(dataDir: string): OvnPaths {
  const root = join(dataDir, 'ovn');
  const run = join(root, 'run');
  return {
    root,
    run,
    log: join(root, 'log'),
    db: join(root, 'db'),
    ovsSock: join(run, 'db.sock'),
    nbSock: join(run, 'ovnnb_db.sock'),
    sbSock: join(run, 'ovnsb_db.sock'),
  };
}

/** Runs an OVS/OVN tool (or `ip`) with an argv array; its stderr is the error. */
export function run(argv: string[], env?: Record<string, string>, timeoutMs = 30_000): Promise<string> {
  return runTool(argv[0]!, argv.slice(1), {
    ...(env ? { env } : {}),
    timeoutMs,
    what: argv.slice(0, 3).join(' '),
    installHint: INSTALL,
  });
}

/** A device's IPv4 addresses in CIDR form. */
async function addrs(dev: string): Promise<string[]> {
  const out = await run(['ip', '-j', '-4', 'addr', 'show', 'dev', dev]).catch(() => '[]');
  const parsed = JSON.parse(out || '[]') as { addr_info?: { local: string; prefixlen: number }[] }[];
  return parsed.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
}

/** The OVS bridge of a provider (physical) network on a host. */
export function providerBridge(name: string): string {
  return `br-${name}`.slice(0, 15);
}

/** `NAME=IFACE,NAME=IFACE` (serve --provider-network, NEUROFLOW_PROVIDER_NETWORKS) as a map. */
export function parseProviders(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items.flatMap((i) => i.split(',')).filter(Boolean)) {
    const m = /^([a-z0-9][a-z0-9-]{0,11})=([A-Za-z0-9_.@-]{1,15})$/.exec(item.trim());
    if (!m)
      throw new NfError(
        'validation_failed',
        `--provider-network ${item}: NAME=IFACE, a name of 1-12 lowercase letters, digits and dashes`,
      );
    out[m[1]!] = m[2]!;
  }
  return out;
}

export class OvnHost {
  readonly paths: OvnPaths;
  private readonly daemons: Daemon[] = [];
  private timer?: ReturnType<typeof setInterval>;
  private starting?: Promise<void>;

  /**
   * The hosts of OVN's central part (the databases' raft members, each running ovn-northd too), by
   * management address: empty = this host alone (a single host: standalone databases on unix sockets).
   */
  private centrals: string[] = [];
  /**
   * Whether this host may create the databases' raft clusters when it has none (the first member, once:
   * the cluster's record says whether they were made); else it joins them.
   */
  private createCluster = false;

  constructor(
    dataDir: string,
    private readonly opts: {
      /** The chassis name (the host's node name). */
      chassis: string;
      /** The host's management address: the databases listen there when central; Geneve's by default. */
      address: string;
      /**
       * The interface Geneve tunnels go out of (a dedicated network), its first IPv4 address their
       * endpoint. The userspace datapath needs the endpoint on an OVS bridge: the interface goes into
       * `br-phy` and its addresses move to the bridge.
       */
      underlay?: string;
      /**
       * Physical networks of this host for provider networks: name → interface. Each interface becomes
       * a port of an OVS bridge (`br-<name>`, or `br-phy` when it is the underlay too) mapped for OVN
       * (`ovn-bridge-mappings`); its addresses move to the bridge.
       */
      providers?: Record<string, string>;
      /** A cluster host's certificate, key and CA (the databases' SSL, both ways); none on a single host. */
      tls?: { key: string; cert: string; ca: string };
    },
  ) {
    this.paths = ovnPaths(dataDir);
  }

  /** Whether the databases and ovn-northd run here. */
  get central(): boolean {
    return this.centrals.length === 0 || this.centrals.includes(this.opts.address);
  }

  /** Where OVN's central part is: its members' addresses, comma-separated (empty: this host alone). */
  get centralList(): string {
    return this.centrals.join(',');
  }

  /**
   * Says where OVN's central part is (the cluster's choice, in etcd: a comma-separated list of member
   * addresses; this host's address in it makes it a member). Before the daemons start it is simply taken;
   * later, this host's clients (ovn-controller, the ctl tools) follow a changed list at once, while
   * becoming or ceasing to be a member waits for the daemons' next start.
   */
  async setCentral(list: string, opts: { create?: boolean } = {}): Promise<void> {
    if (opts.create !== undefined) this.createCluster = opts.create;
    const next = list.split(',').filter(Boolean);
    if (next.join(',') === this.centrals.join(',')) return;
    if (!this.started) {
      this.centrals = next;
      return;
    }
    const wasMember = this.central;
    this.centrals = next;
    // a host that becomes a member starts its databases (joining the raft clusters) and ovn-northd now;
    // one that ceases to be one keeps them until its next start
    if (this.central && !wasMember) await this.startCentralPart();
    else if (this.central !== wasMember)
      log.warn("this host leaves OVN's central databases at the daemons' next start", {});
    else if (this.central) await this.restartNorthd();
    await this.vsctl([
      'set',
      'open_vswitch',
      '.',
      `external_ids:ovn-remote="${this.remote(this.paths.sbSock, 6642)}"`,
    ]);
    log.info("OVN's central hosts changed", { centrals: next });
  }

  /** A cluster host: its central databases are raft clusters its clients reach over SSL. */
  private get clustered(): boolean {
    return !!this.opts.tls && this.centrals.length > 0;
  }

  /** SSL options of a client of the central databases (none on a single host: unix sockets). */
  private clientSsl(): string[] {
    return this.clustered ? this.sslArgs() : [];
  }

  private sslArgs(): string[] {
    const t = this.opts.tls;
    return t ? [`--private-key=${t.key}`, `--certificate=${t.cert}`, `--ca-cert=${t.ca}`] : [];
  }

  /**
   * How this host reaches a database (6641 northbound, 6642 southbound): its unix socket on a single
   * host; in a cluster, every member over SSL (a clustered database's writes go to its raft leader, which
   * a client finds among them).
   */
  private remote(sock: string, port: number): string {
    if (!this.clustered) return `unix:${sock}`;
    return this.centrals.map((a) => `ssl:${a}:${port}`).join(',');
  }

  /** The environment OVS/OVN tools need to keep to our run dir. */
  get env(): Record<string, string> {
    const p = this.paths;
    return { OVS_RUNDIR: p.run, OVS_LOGDIR: p.log, OVS_DBDIR: p.db, OVN_RUNDIR: p.run, OVN_LOGDIR: p.log };
  }

  get started(): boolean {
    return this.timer !== undefined;
  }

  /** Starts (or adopts) the daemons once; later calls wait for the same start. */
  ensureStarted(): Promise<void> {
    this.starting ??= this.start().catch((err) => {
      this.starting = undefined;
      throw err;
    });
    return this.starting;
  }

  private daemon(name: string, argv: string[]): Daemon {
    const d = new Daemon({
      name,
      argv,
      pidfile: join(this.paths.run, `nf-${name}.pid`),
      outFile: join(this.paths.log, `${name}.out`),
      env: this.env,
      installHint: INSTALL,
    });
    return d;
  }

  /** Starts (or adopts) a daemon; supervised from then on (not before: never started twice). */
  private async launch(d: Daemon): Promise<void> {
    await d.start();
    this.daemons.push(d);
  }

  private async createDb(file: string, schema: string): Promise<void> {
    if (!existsSync(file)) await run(['ovsdb-tool', 'create', file, schema]);
  }

  /**
   * A member's clustered database (raft over SSL on the management address, `raftPort`): the first
   * member creates the cluster (from its standalone database of an earlier version, if it has one), the
   * others join it. Done once; the file then carries the cluster.
   */
  private async clusterDb(
    file: string,
    schema: string,
    dbName: string,
    raftPort: number,
    d: Daemon,
  ): Promise<void> {
    const local = `ssl:${this.opts.address}:${raftPort}`;
    const standalone = `${file}.standalone`;
    if (existsSync(file)) {
      const isStandalone = await run(['ovsdb-tool', 'db-is-standalone', file]).then(
        () => true,
        () => false,
      );
      if (!isStandalone || d.running()) return; // clustered already (or adopted running: converted next start)
      renameSync(file, standalone);
    }
    // an earlier version's standalone database becomes the cluster, through a temporary file (renamed
    // once whole: a failure leaves the standalone copy to convert at the next start, never an empty one)
    if (existsSync(standalone)) {
      rmSync(`${file}.tmp`, { force: true });
      await run(['ovsdb-tool', 'create-cluster', `${file}.tmp`, standalone, local]);
      renameSync(`${file}.tmp`, file);
      log.info('OVN database made a raft cluster from the standalone one', { db: dbName });
      return;
    }
    const others = this.centrals.filter((a) => a !== this.opts.address).map((a) => `ssl:${a}:${raftPort}`);
    if (others.length === 0 || (this.createCluster && this.centrals[0] === this.opts.address))
      await run(['ovsdb-tool', 'create-cluster', file, schema, local]);
    else await run(['ovsdb-tool', 'join-cluster', file, dbName, local, ...others]);
  }

  private async start(): Promise<void> {
    const p = this.paths;
    for (const d of [p.root, p.run, p.log, p.db]) mkdirSync(d, { recursive: true, mode: 0o700 });
    const t0 = Date.now();
    const ovsDb = join(p.db, 'conf.db');
    await this.createDb(ovsDb, SCHEMAS.vswitch);
    const ovsdb = this.daemon('ovsdb-server', [
      '/usr/sbin/ovsdb-server',
      ovsDb,
      `--remote=punix:${p.ovsSock}`,
      `--unixctl=${join(p.run, 'ovsdb-server.ctl')}`,
      `--log-file=${join(p.log, 'ovsdb-server.log')}`,
    ]);
    await this.launch(ovsdb);
    await waitFor(() => existsSync(p.ovsSock), { timeoutMs: 10_000, intervalMs: 20, what: 'ovsdb-server' });
    await this.vsctl(['--no-wait', 'init']);
    if (this.central) await this.startCentralPart();
    const netdev = !existsSync('/sys/module/openvswitch');
    // --no-wait: ovs-vswitchd does not run yet (a write waits for it to apply the change otherwise)
    await this.vsctl([
      '--no-wait',
      'set',
      'open_vswitch',
      '.',
      `external_ids:system-id=${this.opts.chassis}`,
      `external_ids:hostname=${this.opts.chassis}`,
      `external_ids:ovn-remote="${this.remote(p.sbSock, 6642)}"`,
      'external_ids:ovn-encap-type=geneve',
      `external_ids:ovn-bridge=${INTEGRATION_BRIDGE}`,
      ...(netdev ? ['external_ids:ovn-bridge-datapath-type=netdev'] : []),
    ]);
    await this.launch(
      this.daemon('ovs-vswitchd', [
        '/usr/sbin/ovs-vswitchd',
        `unix:${p.ovsSock}`,
        `--unixctl=${join(p.run, 'ovs-vswitchd.ctl')}`,
        `--log-file=${join(p.log, 'ovs-vswitchd.log')}`,
      ]),
    );
    if (netdev && this.opts.tls && !this.opts.underlay)
      log.warn(
        'the userspace datapath reaches other hosts over Geneve only from an OVS bridge: give serve --overlay-interface (NEUROFLOW_OVERLAY_INTERFACE), a network interface for the overlay (it becomes a port of br-phy); overlay traffic stays on this host until then',
      );
    const encapIp = await this.tunnelEndpoint(netdev);
    const mappings = await this.providerBridges(netdev);
    await this.vsctl([
      '--no-wait',
      'set',
      'open_vswitch',
      '.',
      `external_ids:ovn-encap-ip=${encapIp}`,
      `external_ids:ovn-bridge-mappings="${mappings}"`,
    ]);
    await this.launch(
      this.daemon('ovn-controller', [
        '/usr/bin/ovn-controller',
        `unix:${p.ovsSock}`,
        ...this.clientSsl(),
        `--log-file=${join(p.log, 'ovn-controller.log')}`,
      ]),
    );
    // ovn-controller makes the integration bridge
    await waitFor(
      async () =>
        (
          await this.vsctl(['--if-exists', 'get', 'bridge', INTEGRATION_BRIDGE, 'datapath_type']).catch(
            () => '',
          )
        ).length > 0,
      { timeoutMs: 20_000, intervalMs: 100, what: 'ovn-controller to make the integration bridge' },
    );
    this.timer = setInterval(() => void this.supervise(), 1000);
    this.timer.unref?.();
    log.info('Open vSwitch and OVN run', {
      datapath: netdev ? 'netdev (userspace)' : 'system',
      geneve: encapIp,
      central: this.centrals.length === 0 ? 'here' : this.centrals.join(','),
      member: this.central,
      ms: Date.now() - t0,
    });
  }

  /**
   * OVN's central part on this host: the northbound and southbound databases (standalone on a single
   * host; in a cluster, this host's member of their raft clusters) and ovn-northd.
   */
  private async startCentralPart(): Promise<void> {
    const p = this.paths;
    const nbDb = join(p.db, 'ovnnb_db.db');
    const sbDb = join(p.db, 'ovnsb_db.db');
    for (const [name, file, sock, port, schema, dbName] of [
      ['ovnnb-db', nbDb, p.nbSock, 6641, SCHEMAS.nb, 'OVN_Northbound'],
      ['ovnsb-db', sbDb, p.sbSock, 6642, SCHEMAS.sb, 'OVN_Southbound'],
    ] as const) {
      const d = this.daemon(name, [
        '/usr/sbin/ovsdb-server',
        file,
        `--remote=punix:${sock}`,
        // other hosts (their ovn-controller, controllers' northbound clients): SSL with the cluster's
        // certificates both ways, on the management address only (the raft port likewise)
        ...(this.opts.tls ? [`--remote=pssl:${port}:${this.opts.address}`, ...this.sslArgs()] : []),
        `--unixctl=${join(p.run, `${name}.ctl`)}`,
        `--log-file=${join(p.log, `${name}.log`)}`,
      ]);
      if (this.clustered) await this.clusterDb(file, schema, dbName, port + 2, d);
      else await this.createDb(file, schema);
      await this.launch(d);
    }
    await waitFor(() => existsSync(p.nbSock) && existsSync(p.sbSock), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: "OVN's databases",
    });
    // on every member: one of them active (OVN's lock in the southbound database), the others ready
    await this.launch(this.northd());
  }

  /** ovn-northd with every member as its remotes (it must reach whichever is the raft leader). */
  private northd(): Daemon {
    const p = this.paths;
    return this.daemon('ovn-northd', [
      '/usr/bin/ovn-northd',
      `--ovnnb-db=${this.remote(p.nbSock, 6641)}`,
      `--ovnsb-db=${this.remote(p.sbSock, 6642)}`,
      ...this.clientSsl(),
      `--unixctl=${join(p.run, 'ovn-northd.ctl')}`,
      `--log-file=${join(p.log, 'ovn-northd.log')}`,
    ]);
  }

  /**
   * Starts ovn-northd again with the members as they are now: one started with fewer would hold the
   * active lock while unable to reach a raft leader among the later members (seen: h1 died, the NB
   * leader was h3, h2's active northd knew only h1 and h2, and no change reached the flows).
   */
  private async restartNorthd(): Promise<void> {
    const i = this.daemons.findIndex((d) => d.name === 'ovn-northd');
    if (i < 0) return;
    const [old] = this.daemons.splice(i, 1);
    await old!.stop(5000).catch(() => {});
    // supervised even if this start fails: the next tick starts it again
    const d = this.northd();
    this.daemons.push(d);
    await d
      .start()
      .then(() => log.info('ovn-northd restarted with the members as remotes', { centrals: this.centrals }))
      .catch((err) => log.error('cannot restart ovn-northd', { err: (err as Error).message }));
  }

  /**
   * Geneve's local endpoint: the underlay interface's first IPv4 address, or the management address. On
   * the userspace datapath the interface becomes a port of `br-phy` and its addresses move to the bridge
   * (OVS routes and resolves tunnel traffic itself there); done once, kept across restarts.
   */
  private async tunnelEndpoint(netdev: boolean): Promise<string> {
    const iface = this.opts.underlay;
    if (!iface) return this.opts.address;
    if (!netdev) {
      const own = await addrs(iface);
      if (!own[0]) throw new NfError('unavailable', `the overlay interface ${iface} has no IPv4 address`);
      return own[0].split('/')[0]!;
    }
    await this.bridgeInterface(UNDERLAY_BRIDGE, iface, true);
    const moved = await addrs(UNDERLAY_BRIDGE);
    if (!moved[0])
      throw new NfError(
        'unavailable',
        `the overlay interface ${iface} has no IPv4 address (nor has ${UNDERLAY_BRIDGE})`,
      );
    return moved[0].split('/')[0]!;
  }

  /**
   * The provider networks' bridges (made once, kept across restarts): each physical network's interface
   * a port of its bridge, its addresses moved there (the host keeps them). Returns OVN's bridge mappings.
   */
  private async providerBridges(netdev: boolean): Promise<string> {
    const out: string[] = [];
    for (const [name, iface] of Object.entries(this.opts.providers ?? {})) {
      const bridge = iface === this.opts.underlay && netdev ? UNDERLAY_BRIDGE : providerBridge(name);
      if (bridge !== UNDERLAY_BRIDGE) await this.bridgeInterface(bridge, iface, netdev);
      out.push(`${name}:${bridge}`);
    }
    return out.join(',');
  }

  /** Makes `bridge` (its datapath) with `iface` as a port; the interface's addresses move to the bridge. */
  private async bridgeInterface(bridge: string, iface: string, netdev: boolean): Promise<void> {
    await this.vsctl([
      '--may-exist',
      'add-br',
      bridge,
      '--',
      'set',
      'bridge',
      bridge,
      `datapath_type=${netdev ? 'netdev' : 'system'}`,
    ]);
    await this.vsctl(['--may-exist', 'add-port', bridge, iface]);
    for (const a of await addrs(iface)) {
      await run(['ip', 'addr', 'del', a, 'dev', iface]);
      await run(['ip', 'addr', 'add', a, 'dev', bridge]).catch((err: NfError) => {
        if (!/exists/i.test(err.message)) throw err;
      });
    }
    await run(['ip', 'link', 'set', iface, 'up']);
    await run(['ip', 'link', 'set', bridge, 'up']);
  }

  private supervising = false;
  private async supervise(): Promise<void> {
    if (this.supervising) return;
    this.supervising = true;
    try {
      for (const d of this.daemons)
        await d.supervise().catch((err) => log.error('OVN daemon restart failed', { daemon: d.name, err }));
    } finally {
      this.supervising = false;
    }
  }

  /** This host's physical networks (names) for provider networks. */
  get physicalNetworks(): string[] {
    return Object.keys(this.opts.providers ?? {});
  }

  /** The daemons (for the host's view and the tests): name, pid, restarts. */
  status(): { name: string; pid?: number; restarts: number }[] {
    return this.daemons.map((d) => ({ name: d.name, pid: d.running(), restarts: d.restarts }));
  }

  /** Stops supervising; the daemons keep running (the dataplane outlives `serve`) unless `daemons`. */
  async stop(opts: { daemons?: boolean } = {}): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.starting = undefined;
    if (opts.daemons) for (const d of [...this.daemons].reverse()) await d.stop();
  }

  vsctl(args: string[]): Promise<string> {
    return run(['ovs-vsctl', `--db=unix:${this.paths.ovsSock}`, '--timeout=10', ...args], this.env);
  }

  /** The northbound database (networks, routers, security groups). */
  nbctl(args: string[]): Promise<string> {
    return this.ovnctl('ovn-nbctl', this.remote(this.paths.nbSock, 6641), args);
  }

  /** The southbound database (read: which chassis have which physical networks). */
  sbctl(args: string[]): Promise<string> {
    return this.ovnctl('ovn-sbctl', this.remote(this.paths.sbSock, 6642), args);
  }

  private ovnctl(tool: string, db: string, args: string[]): Promise<string> {
    return run([tool, `--db=${db}`, ...this.clientSsl(), '--timeout=10', ...args], this.env);
  }

  /**
   * Connects a VM NIC's tap device to the integration bridge as the logical port `port` (OVN binds it to
   * this chassis). The tap is made here (persistent, up); QEMU attaches to it by name.
   */
  async plug(tap: string, port: string, central?: string): Promise<void> {
    if (central !== undefined) await this.setCentral(central);
    await this.ensureStarted();
    await run(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']).catch((err: NfError) => {
      if (!/exists|busy/i.test(err.message)) throw err;
    });
    await run(['ip', 'link', 'set', tap, 'up']);
    await this.vsctl([
      '--may-exist',
      'add-port',
      INTEGRATION_BRIDGE,
      tap,
      '--',
      'set',
      'interface',
      tap,
      `external_ids:iface-id=${port}`,
    ]);
  }

  /** Removes a NIC's tap from the bridge and deletes it. */
  async unplug(tap: string): Promise<void> {
    if (existsSync(this.paths.ovsSock))
      await this.vsctl(['--if-exists', 'del-port', INTEGRATION_BRIDGE, tap]).catch(() => {});
    await run(['ip', 'link', 'del', tap]).catch(() => {});
  }
}
