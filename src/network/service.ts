/**
 * Networks a NIC attaches to (`/api/v1/networks`): `nat` (outbound NAT through passt, reaching no host
 * service: src/network/nat.ts) and `overlay` (an OVN logical switch with its own subnet, OVN's DHCP and
 * address management). An overlay network is a logical switch `nf-<name>` with a DHCP options row; each
 * NIC on it is a logical switch port `<vm id>-<nic id>` with its MAC and an address OVN picks (or one the
 * NIC reserves), bound by the VM's host when the VM starts (src/network/ovn/host.ts). OVN's central part
 * (databases, northd) runs on one host of a cluster (central()); the others reach it over SSL.
 */
import { createHash } from 'node:crypto';
import { keys, type NetworkRecord, type RouterRecord, type VmRecord } from '../controller/records';
import { NfError } from '../errors';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';
import { intToIp, ipToInt, parseSubnet } from './ip';
import type { OvnHost } from './ovn/host';

const log = createLogger('network');

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,30}$/;
/** Geneve's overhead on a 1500-byte underlay. */
export const OVERLAY_MTU = 1442;

export interface NetworkInput {
  name: string;
  type: 'overlay' | 'provider';
  /** IPv4 subnet in CIDR form. */
  subnet: string;
  /** Default: the subnet's first address (kept for a router). */
  gateway?: string;
  dns?: string[];
  mtu?: number;
  /** provider: the hosts' physical network (default "provider"), a VLAN tag, OVN's DHCP (default off). */
  physicalNetwork?: string;
  vlan?: number;
  dhcp?: boolean;
}

/** Whether a network is an OVN logical switch (overlay or provider) with a subnet. */
export function isOvn(net: NetworkRecord | undefined): net is NetworkRecord & { subnet: string } {
  return (net?.type === 'overlay' || net?.type === 'provider') && !!net.subnet;
}

/** Whether OVN answers DHCP on the network. */
function hasDhcp(net: NetworkRecord): boolean {
  return net.type === 'overlay' || !!net.dhcp;
}

export interface NetworkPort {
  vm: string;
  vmId: string;
  nic: string;
  mac: string;
  /** The address OVN gave the port (or the NIC's reservation). */
  ip?: string;
}

export interface NetworkView extends NetworkRecord {
  /** The NICs on the network. */
  nics: number;
}

/**
 * The addresses routers hold on their uplink networks (their own, their floating IPs), with who holds
 * each; `except` leaves a router's own address out (the router being changed).
 */
export async function routerAddresses(
  store: Store,
  except?: string,
): Promise<{ network: string; ip: string; holder: string }[]> {
  const out: { network: string; ip: string; holder: string }[] = [];
  for (const r of (await store.list<RouterRecord>(keys.routers)).map((x) => x.value)) {
    if (!r.uplink) continue;
    if (r.name !== except)
      out.push({ network: r.uplink.network, ip: r.uplink.ip, holder: `router "${r.name}"` });
    for (const f of r.floatingIps)
      out.push({ network: r.uplink.network, ip: f.ip, holder: `a floating IP of router "${r.name}"` });
  }
  return out;
}

/**
 * Checks NICs about to be given to a VM (new, or added): a fixed address needs an overlay network, lies
 * in its subnet (not its network, broadcast or gateway address) and is no other NIC's there; a MAC given
 * for an overlay network is no other NIC's on it. Nothing is written.
 */
export async function checkNicAddresses(
  store: Store,
  vmId: string | undefined,
  nics: { network: string; mac?: string; ip?: string }[],
): Promise<void> {
  const vms = (await store.list<VmRecord>(keys.vms)).map((v) => v.value).filter((v) => v.id !== vmId);
  // on one OVN network: who has each address and each MAC (two ports with one MAC break switching)
  const taken = new Map<string, string>();
  for (const v of vms)
    for (const n of v.networks) {
      taken.set(`${n.network}/${n.mac.toLowerCase()}`, `VM "${v.name}" (${n.id})`);
      if (n.ip) taken.set(`${n.network}/${n.ip}`, `VM "${v.name}" (${n.id})`);
    }
  for (const a of await routerAddresses(store)) taken.set(`${a.network}/${a.ip}`, a.holder);
  for (const [i, n] of nics.entries()) {
    const net = (await store.get<NetworkRecord>(keys.network(n.network)))?.value;
    const overlay = isOvn(net) ? net : undefined;
    const mac = n.mac?.toLowerCase();
    if (mac && overlay) {
      const other = taken.get(`${n.network}/${mac}`);
      if (other)
        throw new NfError('already_exists', `MAC ${mac} on network "${n.network}" is ${other}'s already`);
      taken.set(`${n.network}/${mac}`, `NIC ${i} of this request`);
    }
    if (!n.ip) continue;
    if (!overlay)
      throw new NfError(
        'validation_failed',
        `a fixed address (${n.ip}) needs an overlay or provider network, not "${n.network}"`,
      );
    const { base, size } = parseSubnet(overlay.subnet!);
    const a = ipToInt(n.ip);
    if (a <= base || a >= base + size - 1 || n.ip === overlay.gateway)
      throw new NfError(
        'validation_failed',
        `${n.ip} is not a free host address of network "${n.network}" (${overlay.subnet}, gateway ${overlay.gateway})`,
      );
    const other = taken.get(`${n.network}/${n.ip}`);
    if (other) throw new NfError('already_exists', `${n.ip} on network "${n.network}" is ${other}'s already`);
    taken.set(`${n.network}/${n.ip}`, `NIC ${i} of this request`);
  }
}

/** What follows a VM's ports: floating IPs (routers) and security group membership. */
export interface PortFollowers {
  /** A VM's (or some of its NICs') ports are gone. */
  dropVm?(vmId: string, nicIds: string[]): Promise<void>;
  /** Ports were made (for `vm`, as it is about to run: its record may not say so yet), or tags changed. */
  portsChanged?(vm?: VmRecord): Promise<void>;
}

/** OVN's central part in etcd: its first host (kept for earlier versions) and its raft members. */
interface Member {
  node: string;
  address: string;
}
interface CentralRecord extends Member {
  members?: Member[];
  /** The first member made the databases' raft clusters (a later member, or a start without files, joins). */
  created?: boolean;
}
/** Raft members of OVN's databases: three tolerate one lost. */
const MAX_CENTRAL = 3;

export class NetworkService {
  private followers: PortFollowers[] = [];

  /** Routers and security groups follow the VMs' ports. */
  follow(f: PortFollowers): void {
    this.followers.push(f);
  }

  /** A VM's tags (or NICs) changed: security groups follow. */
  async vmChanged(): Promise<void> {
    for (const f of this.followers) await f.portsChanged?.();
  }

  constructor(
    private readonly store: Store,
    /** OVN on this host with its central part (the northbound database). */
    private readonly ovn: OvnHost | undefined,
    /** This host: its name and management address (empty on a single host). */
    private readonly self: { node: string; address: string } = { node: '', address: '' },
  ) {}

  async list(): Promise<NetworkView[]> {
    const [nets, vms] = await Promise.all([
      this.store.list<NetworkRecord>(keys.networks),
      this.store.list<VmRecord>(keys.vms),
    ]);
    return nets
      .map((n) => ({
        ...n.value,
        nics: vms.reduce((c, v) => c + v.value.networks.filter((x) => x.network === n.value.name).length, 0),
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<NetworkView & { ports?: NetworkPort[] }> {
    const rec = await this.record(name);
    const vms = (await this.store.list<VmRecord>(keys.vms)).map((v) => v.value);
    const using = vms.flatMap((v) => v.networks.filter((n) => n.network === name).map((n) => ({ v, n })));
    const view: NetworkView & { ports?: NetworkPort[] } = { ...rec, nics: using.length };
    if (isOvn(rec)) {
      const addrs = await this.portAddresses(name).catch(() => new Map<string, string>());
      view.ports = using.map(({ v, n }) => {
        // a fixed address is the NIC's before OVN has its port (the VM's first start)
        const ip = addrs.get(portName(v.id, n.id)) ?? n.ip;
        return { vm: v.name, vmId: v.id, nic: n.id, mac: n.mac, ...(ip ? { ip } : {}) };
      });
    }
    return view;
  }

  private async record(name: string): Promise<NetworkRecord> {
    const cur = await this.store.get<NetworkRecord>(keys.network(name));
    if (!cur) throw new NfError('not_found', `no network "${name}"`);
    return cur.value;
  }

  private local(): OvnHost {
    if (!this.ovn) throw new NfError('unavailable', 'OVN is not available on this host');
    return this.ovn;
  }

  /**
   * Where OVN's central part runs: its members' addresses, comma-separated ('' on a single host, which
   * runs it itself). The first overlay network makes the controller that creates it the first member
   * (kept in etcd); other controllers join (memberJoin) up to three: the databases are a raft cluster,
   * ovn-northd runs on each member (one active), and every host's clients reach them over SSL.
   */
  async central(choose = false): Promise<string> {
    if (!this.self.address) return '';
    const cur = await this.centralRecord();
    if (cur) return cur.members.map((m) => m.address).join(',');
    if (!choose) return '';
    const rec: CentralRecord = { ...this.self, members: [{ ...this.self }] };
    await this.store
      .txn({ when: [{ key: keys.ovnCentral, absent: true }], put: [{ key: keys.ovnCentral, value: rec }] })
      .catch((err) => {
        if (!NfError.isCode(err, 'conflict')) throw err;
      });
    return (await this.centralRecord())!.members.map((m) => m.address).join(',');
  }

  /** The central record (one written by an earlier version, with one host and no members, read as such). */
  private async centralRecord(): Promise<(CentralRecord & { members: Member[] }) | undefined> {
    const cur = await this.store.get<CentralRecord>(keys.ovnCentral);
    if (!cur) return undefined;
    return {
      ...cur.value,
      members: cur.value.members ?? [{ node: cur.value.node, address: cur.value.address }],
    };
  }

  /** Says the raft clusters exist (their first member made them). */
  private async markCreated(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const cur = await this.store.get<CentralRecord>(keys.ovnCentral);
      if (!cur || cur.value.created) return;
      try {
        await this.store.txn({
          when: [{ key: cur.key, revision: cur.revision }],
          put: [{ key: cur.key, value: { ...cur.value, created: true } }],
        });
        return;
      } catch (err) {
        if (!NfError.isCode(err, 'conflict')) throw err;
      }
    }
  }

  /**
   * This controller joins OVN's central part while it has fewer than three members (written in etcd
   * first: every host then lists it; its databases join the raft cluster when its daemons start).
   */
  private async memberJoin(): Promise<void> {
    if (!this.self.address) return;
    const cur = await this.store.get<CentralRecord>(keys.ovnCentral);
    if (!cur) return;
    const members = cur.value.members ?? [{ node: cur.value.node, address: cur.value.address }];
    if (members.some((m) => m.address === this.self.address) || members.length >= MAX_CENTRAL) return;
    await this.store
      .txn({
        when: [{ key: cur.key, revision: cur.revision }],
        put: [{ key: cur.key, value: { ...cur.value, members: [...members, { ...this.self }] } }],
      })
      .then(() => log.info("this host joins OVN's central databases", { members: members.length + 1 }))
      .catch((err) => {
        if (!NfError.isCode(err, 'conflict')) throw err; // another controller joined meanwhile: next round
      });
  }

  /**
   * Every 10 s on a controller: once OVN's central part exists, this host joins it (up to three members)
   * and runs its daemons; a running OVN follows a changed member list.
   */
  watchCentral(): () => void {
    let busy = false;
    const tick = async () => {
      if (busy || !this.ovn || !this.self.address) return;
      busy = true;
      try {
        await this.memberJoin();
        const list = await this.central();
        if (!list) return;
        if (!this.ovn.started) {
          if (list.split(',').includes(this.self.address)) await this.startOvn();
        } else if (list !== this.ovn.centralList) await this.ovn.setCentral(list);
      } catch (err) {
        log.warn("cannot follow OVN's central part", { err: (err as Error).message });
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void tick(), 10_000);
    timer.unref?.();
    void tick();
    return () => clearInterval(timer);
  }

  /**
   * Northbound commands in one ovn-nbctl run (joined with `--`: one process, one transaction), on this
   * host's OVN (started if need be) talking to the central databases.
   */
  async nb(...commands: string[][]): Promise<string> {
    return (await this.startOvn()).nbctl(commands.flatMap((c, i) => (i === 0 ? c : ['--', ...c])));
  }

  /**
   * The hosts (OVN chassis) that have a physical network, from the southbound database (each host's
   * ovn-controller reports its bridge mappings): a router's uplink port can be active on these.
   */
  async chassisWith(physicalNetwork: string): Promise<string[]> {
    const out = await (await this.startOvn()).sbctl([
      '--format=json',
      '--columns=name,other_config',
      'list',
      'chassis',
    ]);
    const t = JSON.parse(out) as { data: [string, ['map', [string, string][]]][] };
    return t.data
      .filter(([, [, map]]) =>
        map.some(
          ([k, v]) =>
            k === 'ovn-bridge-mappings' && v.split(',').some((m) => m.split(':')[0] === physicalNetwork),
        ),
      )
      .map(([name]) => name)
      .sort();
  }

  /** The address OVN gave each VM NIC port of a network (or its fixed one): port name → IPv4. */
  addresses(network: string): Promise<Map<string, string>> {
    return this.portAddresses(network);
  }

  /** Starts this host's OVN, with the cluster's central part where it is (asked of etcd once). */
  async startOvn(choose = false): Promise<OvnHost> {
    const ovn = this.local();
    if (!ovn.started) {
      if (await this.central(choose)) await this.memberJoin();
      const rec = await this.centralRecord();
      // the first member makes the databases' raft clusters, once; any other member (or a later start
      // without its files) joins them
      const first = !!rec && rec.members[0]?.address === this.self.address && !rec.created;
      await ovn.setCentral(rec?.members.map((m) => m.address).join(',') ?? '', { create: first });
      await ovn.ensureStarted();
      if (first) await this.markCreated();
    }
    await ovn.ensureStarted();
    return ovn;
  }

  async create(input: NetworkInput): Promise<NetworkView> {
    if (!NAME_RE.test(input.name))
      throw new NfError('validation_failed', 'a network name is 1-31 lowercase letters, digits and dashes');
    if (input.type !== 'overlay' && input.type !== 'provider')
      throw new NfError('validation_failed', 'type: overlay or provider (nat is built in: "default")');
    const provider = input.type === 'provider';
    if (
      !provider &&
      (input.physicalNetwork !== undefined || input.vlan !== undefined || input.dhcp === false)
    )
      throw new NfError(
        'validation_failed',
        'physicalNetwork, vlan and dhcp: false are for provider networks',
      );
    const physicalNetwork = provider ? (input.physicalNetwork ?? 'provider') : undefined;
    if (physicalNetwork !== undefined && !/^[a-z0-9][a-z0-9-]{0,11}$/.test(physicalNetwork))
      throw new NfError('validation_failed', 'physicalNetwork: 1-12 lowercase letters, digits and dashes');
    if (input.vlan !== undefined && (!Number.isInteger(input.vlan) || input.vlan < 1 || input.vlan > 4094))
      throw new NfError('validation_failed', 'vlan: 1 to 4094');
    const { base, size, prefix } = parseSubnet(input.subnet);
    const gateway = input.gateway ?? intToIp(base + 1);
    const g = ipToInt(gateway);
    if (g <= base || g >= base + size - 1)
      throw new NfError('validation_failed', `gateway ${gateway} is not a host address of ${input.subnet}`);
    for (const d of input.dns ?? []) ipToInt(d);
    const mtu = input.mtu ?? (provider ? 1500 : OVERLAY_MTU);
    // an overlay network's frames get Geneve's 58 bytes on a 9000-byte underlay at most
    const maxMtu = provider ? 9000 : 8942;
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > maxMtu)
      throw new NfError('validation_failed', `mtu: 576 to ${maxMtu} on ${input.type} networks`);
    if (await this.store.get(keys.network(input.name)))
      throw new NfError('already_exists', `a network named "${input.name}" exists`);
    if (provider) {
      // one physical network and VLAN carries one provider network (two would be one broadcast domain)
      const same = (await this.store.list<NetworkRecord>(keys.networks))
        .map((n) => n.value)
        .find((n) => n.type === 'provider' && n.physicalNetwork === physicalNetwork && n.vlan === input.vlan);
      if (same)
        throw new NfError(
          'already_exists',
          `network "${same.name}" is on physical network ${physicalNetwork}${input.vlan ? ` VLAN ${input.vlan}` : ' untagged'} already`,
        );
    }
    await this.startOvn(true);
    const rec: NetworkRecord = {
      name: input.name,
      type: input.type,
      subnet: `${intToIp(base)}/${prefix}`,
      gateway,
      ...(input.dns?.length ? { dns: input.dns } : {}),
      mtu,
      ...(provider
        ? {
            physicalNetwork,
            ...(input.vlan !== undefined ? { vlan: input.vlan } : {}),
            dhcp: input.dhcp ?? false,
          }
        : {}),
      createdAt: new Date().toISOString(),
    };
    await this.makeSwitch(rec);
    try {
      await this.store.txn({
        when: [{ key: keys.network(rec.name), absent: true }],
        put: [{ key: keys.network(rec.name), value: rec }],
      });
    } catch (err) {
      // another create of the name won (its switch is this one: --may-exist) or the write is unknown:
      // the switch goes only when etcd has no such network
      if (!(await this.store.get(keys.network(rec.name)).catch(() => true)))
        await this.dropSwitch(rec.name).catch(() => {});
      if (NfError.isCode(err, 'conflict'))
        throw new NfError('already_exists', `a network named "${input.name}" exists`);
      throw err;
    }
    log.info('network created', { name: rec.name, type: rec.type, subnet: rec.subnet });
    return { ...rec, nics: 0 };
  }

  /** The logical switch and its DHCP options (idempotent). */
  private async makeSwitch(rec: NetworkRecord): Promise<void> {
    const ls = switchName(rec.name);
    await this.nb(
      ['--may-exist', 'ls-add', ls],
      [
        'set',
        'logical_switch',
        ls,
        `other_config:subnet=${rec.subnet}`,
        `other_config:exclude_ips=${rec.gateway}`,
        `external_ids:neuroflow-network=${rec.name}`,
      ],
      // a provider network reaches the hosts' physical network through a localnet port
      ...(rec.type === 'provider'
        ? [
            ['--may-exist', 'lsp-add', ls, localnetPort(rec.name)],
            ['lsp-set-type', localnetPort(rec.name), 'localnet'],
            ['lsp-set-addresses', localnetPort(rec.name), 'unknown'],
            ['lsp-set-options', localnetPort(rec.name), `network_name=${rec.physicalNetwork}`],
            ...(rec.vlan ? [['set', 'logical_switch_port', localnetPort(rec.name), `tag=${rec.vlan}`]] : []),
          ]
        : []),
    );
    if (!hasDhcp(rec)) return;
    let dhcp = await this.dhcpOptions(rec.name);
    if (!dhcp) {
      dhcp = (await this.nb(['dhcp-options-create', rec.subnet!, `neuroflow-network=${rec.name}`])).trim();
      dhcp ||= (await this.dhcpOptions(rec.name)) ?? '';
    }
    await this.nb([
      'dhcp-options-set-options',
      dhcp,
      'lease_time=3600',
      `router=${rec.gateway}`,
      `server_id=${rec.gateway}`,
      `server_mac=${serverMac(rec.name)}`,
      `mtu=${rec.mtu ?? OVERLAY_MTU}`,
      ...(rec.dns?.length ? [`dns_server={${rec.dns.join(',')}}`] : []),
    ]);
  }

  private async dhcpOptions(name: string): Promise<string | undefined> {
    const out = await this.nb([
      '--bare',
      '--columns=_uuid',
      'find',
      'dhcp_options',
      `external_ids:neuroflow-network=${name}`,
    ]);
    return out.trim().split('\n')[0] || undefined;
  }

  private async dropSwitch(name: string): Promise<void> {
    await this.nb(['--if-exists', 'ls-del', switchName(name)]);
    const dhcp = await this.dhcpOptions(name);
    if (dhcp) await this.nb(['dhcp-options-del', dhcp]);
  }

  async delete(name: string): Promise<void> {
    const rec = await this.record(name);
    if (name === 'default') throw new NfError('invalid_state', 'the default network stays');
    const vms = (await this.store.list<VmRecord>(keys.vms)).map((v) => v.value);
    const using = vms.filter((v) => v.networks.some((n) => n.network === name)).map((v) => v.name);
    if (using.length > 0)
      throw new NfError(
        'in_use',
        `network "${name}" has NICs of ${using.length} VM(s): ${using.slice(0, 5).join(', ')}${using.length > 5 ? ', …' : ''}`,
      );
    const routers = (await this.store.list<RouterRecord>(keys.routers))
      .map((r) => r.value)
      .filter((r) => r.networks.includes(name) || r.uplink?.network === name);
    if (routers.length > 0)
      throw new NfError(
        'in_use',
        `network "${name}" is connected to router(s) ${routers.map((r) => `"${r.name}"`).join(', ')}`,
      );
    if (isOvn(rec)) await this.dropSwitch(name);
    await this.store.txn({ delete: [keys.network(name)] });
    log.info('network deleted', { name });
  }

  /**
   * The logical ports of a VM's NICs on overlay networks, made or updated before it starts (a NIC's MAC
   * and network come from the record): returns each such NIC's port name.
   */
  async ensurePorts(vm: VmRecord): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const n of vm.networks) {
      const net = await this.store.get<NetworkRecord>(keys.network(n.network));
      if (!isOvn(net?.value)) continue;
      const port = portName(vm.id, n.id);
      const ls = switchName(n.network);
      const ovnDhcp = hasDhcp(net.value);
      const dhcp = ovnDhcp ? await this.dhcpOptions(n.network) : undefined;
      // OVN picks the address when it answers DHCP; on a provider network whose own DHCP does, the port
      // has only its MAC (the address is the LAN's business)
      const addresses = n.ip ? `${n.mac} ${n.ip}` : ovnDhcp ? `${n.mac} dynamic` : n.mac;
      const make = () =>
        this.nb(
          ['--may-exist', 'lsp-add', ls, port],
          ['lsp-set-addresses', port, addresses],
          // port security: the guest sends from its own MAC (and address) only: no spoofing of another
          // NIC, of the gateway, or of a security group's remote addresses
          ['lsp-set-port-security', port, n.ip || !ovnDhcp ? addresses : n.mac],
          ...(dhcp ? [['lsp-set-dhcpv4-options', port, dhcp]] : []),
          ['set', 'logical_switch_port', port, `external_ids:neuroflow-vm=${vm.id}`],
          // bound on the VM's host only (a stale tap elsewhere cannot claim it)
          ...(vm.node ? this.binding(port, [vm.node], false) : []),
        );
      // a NIC moved to another network: its port leaves the old switch first
      await make().catch(async (err: NfError) => {
        if (!/already exists/.test(err.message)) throw err;
        await this.nb(['--if-exists', 'lsp-del', port]);
        await make();
      });
      // the address OVN picked (at once, or once northd has seen the port) joins the port security
      if (!n.ip && ovnDhcp) {
        const ip = await this.dynamicAddress(port);
        if (ip) await this.nb(['lsp-set-port-security', port, `${n.mac} ${ip}`]);
        else log.warn('OVN gave the port no address yet: its port security has the MAC only', { port });
      }
      out.set(n.id, port);
    }
    // a new port goes into its security groups before the VM runs (never unfiltered)
    if (out.size > 0) for (const f of this.followers) await f.portsChanged?.(vm);
    return out;
  }

  /** The IPv4 address OVN's IPAM gave a port; waits once for northd when it has none yet. */
  private async dynamicAddress(port: string): Promise<string | undefined> {
    const read = async () =>
      /\b(\d+\.\d+\.\d+\.\d+)\b/.exec(
        await this.nb(['get', 'logical_switch_port', port, 'dynamic_addresses']),
      )?.[1];
    const ip = await read();
    if (ip) return ip;
    await this.nb(['--wait=sb', 'sync']).catch(() => {});
    return read();
  }

  /**
   * A live migration's ports (OVN's multi-chassis binding): while it runs, bound on both hosts, the
   * target's copy activated only by the guest's RARP announcement after the switch (QEMU sends it), so
   * the guest keeps its address and its peers' traffic follows it; then on the one host it ended on.
   */
  async bindPorts(vm: VmRecord, chassis: string[], migrating: boolean): Promise<void> {
    for (const n of vm.networks) {
      const net = await this.store.get<NetworkRecord>(keys.network(n.network));
      if (isOvn(net?.value)) await this.nb(...this.binding(portName(vm.id, n.id), chassis, migrating));
    }
  }

  /** The commands that bind a port to these chassis (both of a migration: activated by RARP). */
  private binding(port: string, chassis: string[], migrating: boolean): string[][] {
    return [
      ['set', 'logical_switch_port', port, `options:requested-chassis="${chassis.join(',')}"`],
      migrating
        ? ['set', 'logical_switch_port', port, 'options:activation-strategy=rarp']
        : ['remove', 'logical_switch_port', port, 'options', 'activation-strategy'],
    ];
  }

  /** Removes a deleted VM's (or a removed NIC's) logical ports. */
  async dropPorts(vmId: string, nicIds: string[]): Promise<void> {
    if (!this.ovn || !(await this.hasOverlay())) return;
    for (const f of this.followers)
      await f
        .dropVm?.(vmId, nicIds)
        ?.catch((err) => log.warn('cannot follow a port removal', { err: (err as Error).message }));
    for (const id of nicIds) await this.nb(['--if-exists', 'lsp-del', portName(vmId, id)]).catch(() => {});
    for (const f of this.followers) await f.portsChanged?.().catch(() => {});
  }

  /** Whether any overlay network exists (then this host runs OVN). */
  async hasOverlay(): Promise<boolean> {
    return (await this.store.list<NetworkRecord>(keys.networks)).some((n) => isOvn(n.value));
  }

  /** The IPv4 address of each port of a network's switch (OVN's pick, or the fixed one), in one query. */
  private async portAddresses(network: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const ports = (await this.nb(['lsp-list', switchName(network)]))
      .split('\n')
      .map((l) => /\((.+)\)\s*$/.exec(l)?.[1])
      .filter((p): p is string => !!p);
    if (ports.length === 0) return out;
    // one `get` per port, all in one run: the dynamic address, then the configured one, for each
    const text = await this.nb(
      ...ports.flatMap((p) => [
        ['get', 'logical_switch_port', p, 'dynamic_addresses'],
        ['get', 'logical_switch_port', p, 'addresses'],
      ]),
    );
    const lines = text.split('\n');
    ports.forEach((p, i) => {
      const ip = /\b(\d+\.\d+\.\d+\.\d+)\b/.exec(`${lines[2 * i] ?? ''} ${lines[2 * i + 1] ?? ''}`)?.[1];
      if (ip) out.set(p, ip);
    });
    return out;
  }
}

export function switchName(network: string): string {
  return `nf-${network}`;
}

/** A provider network's port onto the hosts' physical network. */
export function localnetPort(network: string): string {
  return `ln-${network}`;
}

export function portName(vmId: string, nicId: string): string {
  return `${vmId}-${nicId}`;
}

/** The MAC OVN's DHCP server answers from on a network (locally administered, stable per name). */
function serverMac(name: string): string {
  const h = createHash('sha256').update(`neuroflow-dhcp/${name}`).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
