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
import { existsSync, mkdirSync } from 'node:fs';
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

  /** Where OVN's central part (databases, northd) is: empty = on this host. */
  private centralAddress = '';

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
    return this.centralAddress === '' || this.centralAddress === this.opts.address;
  }

  /**
   * Says where OVN's central part is (the cluster's choice, in etcd): this host's address (or empty) makes
   * it run here. Taken before the daemons start; a change later needs a restart of the daemons (not built).
   */
  setCentral(address: string): void {
    if (this.started && address !== this.centralAddress)
      log.warn("OVN's central host changed under running daemons; kept", {
        was: this.centralAddress,
        now: address,
      });
    else this.centralAddress = address;
  }

  private sslArgs(): string[] {
    const t = this.opts.tls;
    return t ? [`--private-key=${t.key}`, `--certificate=${t.cert}`, `--ca-cert=${t.ca}`] : [];
  }

  /** How this host reaches a database (6641 northbound, 6642 southbound). */
  private remote(sock: string, port: number): string {
    return this.central || !this.opts.tls ? `unix:${sock}` : `ssl:${this.centralAddress}:${port}`;
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
    this.daemons.push(d);
    return d;
  }

  private async createDb(file: string, schema: string): Promise<void> {
    if (!existsSync(file)) await run(['ovsdb-tool', 'create', file, schema]);
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
    await ovsdb.start();
    await waitFor(() => existsSync(p.ovsSock), { timeoutMs: 10_000, intervalMs: 20, what: 'ovsdb-server' });
    await this.vsctl(['--no-wait', 'init']);
    if (this.central) {
      const nbDb = join(p.db, 'ovnnb_db.db');
      const sbDb = join(p.db, 'ovnsb_db.db');
      await this.createDb(nbDb, SCHEMAS.nb);
      await this.createDb(sbDb, SCHEMAS.sb);
      for (const [name, file, sock, port] of [
        ['ovnnb-db', nbDb, p.nbSock, 6641],
        ['ovnsb-db', sbDb, p.sbSock, 6642],
      ] as const)
        await this.daemon(name, [
          '/usr/sbin/ovsdb-server',
          file,
          `--remote=punix:${sock}`,
          // other hosts (their ovn-controller, controllers' northbound clients): SSL with the cluster's
          // certificates both ways, on the management address only
          ...(this.opts.tls ? [`--remote=pssl:${port}:${this.opts.address}`, ...this.sslArgs()] : []),
          `--unixctl=${join(p.run, `${name}.ctl`)}`,
          `--log-file=${join(p.log, `${name}.log`)}`,
        ]).start();
      await waitFor(() => existsSync(p.nbSock) && existsSync(p.sbSock), {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: "OVN's databases",
      });
      await this.daemon('ovn-northd', [
        '/usr/bin/ovn-northd',
        `--ovnnb-db=unix:${p.nbSock}`,
        `--ovnsb-db=unix:${p.sbSock}`,
        `--unixctl=${join(p.run, 'ovn-northd.ctl')}`,
        `--log-file=${join(p.log, 'ovn-northd.log')}`,
      ]).start();
    }
    const netdev = !existsSync('/sys/module/openvswitch');
    // --no-wait: ovs-vswitchd does not run yet (a write waits for it to apply the change otherwise)
    await this.vsctl([
      '--no-wait',
      'set',
      'open_vswitch',
      '.',
      `external_ids:system-id=${this.opts.chassis}`,
      `external_ids:hostname=${this.opts.chassis}`,
      `external_ids:ovn-remote=${this.remote(p.sbSock, 6642)}`,
      'external_ids:ovn-encap-type=geneve',
      `external_ids:ovn-bridge=${INTEGRATION_BRIDGE}`,
      ...(netdev ? ['external_ids:ovn-bridge-datapath-type=netdev'] : []),
    ]);
    await this.daemon('ovs-vswitchd', [
      '/usr/sbin/ovs-vswitchd',
      `unix:${p.ovsSock}`,
      `--unixctl=${join(p.run, 'ovs-vswitchd.ctl')}`,
      `--log-file=${join(p.log, 'ovs-vswitchd.log')}`,
    ]).start();
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
    await this.daemon('ovn-controller', [
      '/usr/bin/ovn-controller',
      `unix:${p.ovsSock}`,
      ...(this.central ? [] : this.sslArgs()),
      `--log-file=${join(p.log, 'ovn-controller.log')}`,
    ]).start();
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
      central: this.central ? 'here' : this.centralAddress,
      ms: Date.now() - t0,
    });
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
    return run(
      [tool, `--db=${db}`, ...(this.central ? [] : this.sslArgs()), '--timeout=10', ...args],
      this.env,
    );
  }

  /**
   * Connects a VM NIC's tap device to the integration bridge as the logical port `port` (OVN binds it to
   * this chassis). The tap is made here (persistent, up); QEMU attaches to it by name.
   */
  async plug(tap: string, port: string, central?: string): Promise<void> {
    if (central !== undefined) this.setCentral(central);
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
