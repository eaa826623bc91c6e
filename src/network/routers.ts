/**
 * Routers (`/api/v1/routers`): an OVN logical router `nfr-<name>` joining overlay networks (its port on
 * each has the network's gateway address, so the guests' DHCP default route reaches it), with an uplink
 * onto a provider network (its own address there, a default route to that network's gateway, SNAT of
 * the inside networks, active on one of the hosts that have the physical network and moved to another
 * when that host dies: OVN's gateway chassis with BFD), floating IPs (DNAT and SNAT of one NIC's address)
 * and static routes.
 *
 * Changes go to OVN as the difference between the old and the new record, in one northbound transaction,
 * so what does not change keeps forwarding (and its connections' state).
 */
import { createHash } from 'node:crypto';
import { keys, type NetworkRecord, type RouterRecord, type VmRecord } from '../controller/records';
import { NfError } from '../errors';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';
import { inSubnet, intToIp, ipToInt, overlaps, parseCidr } from './ip';
import { isOvn, type NetworkService, portName, routerAddresses, switchName } from './service';

const log = createLogger('router');
const NAME_RE = /^[a-z0-9][a-z0-9-]{0,30}$/;

export interface RouterInput {
  name: string;
  networks?: string[];
  uplink?: { network: string; ip?: string; snat?: boolean };
  routes?: { destination: string; nexthop: string }[];
}

export interface RouterPatch {
  networks?: string[];
  /** null: no uplink (its floating IPs must go first). */
  uplink?: { network: string; ip?: string; snat?: boolean } | null;
  routes?: { destination: string; nexthop: string }[];
}

export interface FloatingIpView {
  ip: string;
  vmId: string;
  vm?: string;
  nic: string;
  /** The NIC's address the floating IP leads to. */
  internalIp?: string;
}

export interface RouterView extends Omit<RouterRecord, 'floatingIps'> {
  floatingIps: FloatingIpView[];
  /** The hosts its uplink can be active on (OVN gateway chassis, highest priority first). */
  gatewayHosts?: string[];
}

export function routerName(name: string): string {
  return `nfr-${name}`;
}
/** The router's port on a network (the router side), and the switch side of the same link. */
function lrp(router: string, network: string): string {
  return `nfr-${router}.${network}`;
}
function lsp(router: string, network: string): string {
  return `nfs-${router}.${network}`;
}
/** A router port's MAC: locally administered, stable per router and network. */
function routerMac(router: string, network: string): string {
  const h = createHash('sha256').update(`neuroflow-router/${router}/${network}`).digest();
  return ['0a', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export class RouterService {
  constructor(
    private readonly store: Store,
    private readonly networks: NetworkService,
  ) {}

  async list(): Promise<RouterView[]> {
    const all = (await this.store.list<RouterRecord>(keys.routers)).map((r) => r.value);
    const vms = await this.vmNames();
    return all
      .map((r) => ({ ...r, floatingIps: r.floatingIps.map((f) => ({ ...f, vm: vms.get(f.vmId) })) }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<RouterView> {
    const r = await this.record(name);
    const vms = await this.vmNames();
    const view: RouterView = {
      ...r,
      floatingIps: r.floatingIps.map((f) => ({ ...f, vm: vms.get(f.vmId) })),
    };
    // the router's NAT rows: each floating IP's internal address as OVN has it
    const internal = await this.natRows(name).catch(() => new Map<string, string>());
    for (const f of view.floatingIps) {
      const ip = internal.get(f.ip);
      if (ip) f.internalIp = ip;
    }
    if (r.uplink) {
      const out = await this.networks
        .nb(['lrp-get-gateway-chassis', lrp(name, r.uplink.network)])
        .catch(() => '');
      // "<port>-<chassis> <priority>" per line, highest priority first
      const port = lrp(name, r.uplink.network);
      view.gatewayHosts = out
        .split('\n')
        .map((l) => l.trim().split(/\s+/)[0] ?? '')
        .filter((x) => x.startsWith(`${port}-`))
        .map((x) => x.slice(port.length + 1));
    }
    return view;
  }

  /** A router's dnat_and_snat rows: external IP → logical IP. */
  private async natRows(name: string): Promise<Map<string, string>> {
    const uuids = new Set(
      (await this.networks.nb(['get', 'logical_router', routerName(name), 'nat'])).match(/[0-9a-f-]{36}/g) ??
        [],
    );
    const t = JSON.parse(
      await this.networks.nb(['--format=json', '--columns=_uuid,type,external_ip,logical_ip', 'list', 'nat']),
    ) as { data: [['uuid', string], string, string, string][] };
    return new Map(
      t.data
        .filter(([[, uuid], type]) => uuids.has(uuid) && type === 'dnat_and_snat')
        .map(([, , ext, logical]) => [ext, logical]),
    );
  }

  private async vmNames(): Promise<Map<string, string>> {
    return new Map((await this.store.list<VmRecord>(keys.vms)).map((v) => [v.value.id, v.value.name]));
  }

  private async record(name: string): Promise<RouterRecord> {
    const cur = await this.store.get<RouterRecord>(keys.router(name));
    if (!cur) throw new NfError('not_found', `no router "${name}"`);
    return cur.value;
  }

  private async network(name: string): Promise<NetworkRecord & { subnet: string }> {
    const net = (await this.store.get<NetworkRecord>(keys.network(name)))?.value;
    if (!net) throw new NfError('not_found', `no network "${name}"`);
    if (!isOvn(net))
      throw new NfError('validation_failed', `network "${name}" is ${net.type}: a router joins OVN networks`);
    return net;
  }

  /**
   * Checks a router's wanted state against the others and the networks; fills in the uplink's address.
   * Nothing is written.
   */
  private async validate(next: RouterRecord): Promise<void> {
    const others = (await this.store.list<RouterRecord>(keys.routers))
      .map((r) => r.value)
      .filter((r) => r.name !== next.name);
    if (new Set(next.networks).size !== next.networks.length)
      throw new NfError('validation_failed', 'networks: each network once');
    const subnets: { name: string; subnet: string }[] = [];
    for (const n of next.networks) {
      const net = await this.network(n);
      if (net.type !== 'overlay')
        throw new NfError(
          'validation_failed',
          `network "${n}" is a provider network: give it as the router's uplink, not as an inside network`,
        );
      const on = others.find((r) => r.networks.includes(n));
      if (on)
        throw new NfError(
          'in_use',
          `network "${n}" is connected to router "${on.name}" already (its gateway ${net.gateway} is that router's)`,
        );
      subnets.push({ name: n, subnet: net.subnet });
    }
    if (next.uplink) {
      const up = await this.network(next.uplink.network);
      if (up.type !== 'provider')
        throw new NfError(
          'validation_failed',
          `uplink: network "${up.name}" is ${up.type}; an uplink is a provider network (type provider)`,
        );
      if (next.networks.includes(up.name))
        throw new NfError('validation_failed', `network "${up.name}" cannot be inside and uplink both`);
      subnets.push({ name: up.name, subnet: up.subnet });
      const taken = await this.takenOn(up.name, next.name);
      if (next.uplink.ip) {
        if (!inSubnet(next.uplink.ip, up.subnet) || next.uplink.ip === up.gateway)
          throw new NfError(
            'validation_failed',
            `uplink ip ${next.uplink.ip} is not a host address of network "${up.name}" (${up.subnet}, gateway ${up.gateway})`,
          );
        const who = taken.get(next.uplink.ip);
        if (who) throw new NfError('already_exists', `${next.uplink.ip} on "${up.name}" is ${who}'s already`);
      } else next.uplink.ip = freeAddress(up, taken);
      const hosts = await this.networks.chassisWith(up.physicalNetwork ?? 'provider');
      if (hosts.length === 0)
        throw new NfError(
          'unavailable',
          `no host has physical network "${up.physicalNetwork ?? 'provider'}" (serve --provider-network ${up.physicalNetwork ?? 'provider'}=IFACE)`,
        );
    }
    for (let i = 0; i < subnets.length; i++)
      for (let j = i + 1; j < subnets.length; j++)
        if (overlaps(subnets[i]!.subnet, subnets[j]!.subnet))
          throw new NfError(
            'validation_failed',
            `networks "${subnets[i]!.name}" (${subnets[i]!.subnet}) and "${subnets[j]!.name}" (${subnets[j]!.subnet}) overlap: one router cannot route between them`,
          );
    for (const r of next.routes) {
      const dest = parseCidr(r.destination, 'route destination', 0, 32);
      if (next.uplink && dest.prefix === 0)
        throw new NfError(
          'validation_failed',
          `route to ${r.destination}: the uplink's default route is the router's (via the uplink network's gateway)`,
        );
      ipToInt(r.nexthop);
      if (!subnets.some((s) => inSubnet(r.nexthop, s.subnet)))
        throw new NfError(
          'validation_failed',
          `route to ${r.destination}: next hop ${r.nexthop} is on none of the router's networks`,
        );
    }
    if (new Set(next.routes.map((r) => r.destination)).size !== next.routes.length)
      throw new NfError('validation_failed', 'routes: one route per destination');
  }

  /** Who holds each address of a provider network (NICs, routers, floating IPs), this router aside. */
  private async takenOn(network: string, except: string): Promise<Map<string, string>> {
    const taken = new Map<string, string>();
    for (const v of (await this.store.list<VmRecord>(keys.vms)).map((x) => x.value))
      for (const n of v.networks) if (n.network === network && n.ip) taken.set(n.ip, `VM "${v.name}"`);
    const addrs = await this.networks.addresses(network).catch(() => new Map<string, string>());
    for (const ip of addrs.values()) if (!taken.has(ip)) taken.set(ip, 'a NIC');
    for (const a of await routerAddresses(this.store, except))
      if (a.network === network) taken.set(a.ip, a.holder);
    return taken;
  }

  async create(input: RouterInput): Promise<RouterView> {
    if (!NAME_RE.test(input.name))
      throw new NfError('validation_failed', 'a router name is 1-31 lowercase letters, digits and dashes');
    if (await this.store.get(keys.router(input.name)))
      throw new NfError('already_exists', `a router named "${input.name}" exists`);
    const rec: RouterRecord = {
      name: input.name,
      networks: input.networks ?? [],
      ...(input.uplink
        ? {
            uplink: {
              network: input.uplink.network,
              ip: input.uplink.ip ?? '',
              snat: input.uplink.snat ?? true,
            },
          }
        : {}),
      routes: input.routes ?? [],
      floatingIps: [],
      createdAt: new Date().toISOString(),
    };
    await this.validate(rec);
    await this.apply(undefined, rec);
    try {
      await this.store.txn({
        when: [{ key: keys.router(rec.name), absent: true }],
        put: [{ key: keys.router(rec.name), value: rec }],
      });
    } catch (err) {
      // undone only when etcd has no such router (a write that went through after all, or another
      // create of the name that won, keeps what is in OVN)
      if (!(await this.store.get(keys.router(rec.name)).catch(() => true)))
        await this.apply(rec, undefined).catch(() => {});
      if (NfError.isCode(err, 'conflict'))
        throw new NfError('already_exists', `a router named "${input.name}" exists`);
      throw err;
    }
    log.info('router created', { name: rec.name, networks: rec.networks, uplink: rec.uplink?.network });
    return this.get(rec.name);
  }

  async update(name: string, patch: RouterPatch): Promise<RouterView> {
    const cur = await this.store.get<RouterRecord>(keys.router(name));
    if (!cur) throw new NfError('not_found', `no router "${name}"`);
    const old = cur.value;
    const next: RouterRecord = structuredClone(old);
    if (patch.networks) next.networks = patch.networks;
    if (patch.routes) next.routes = patch.routes;
    if (patch.uplink === null) delete next.uplink;
    else if (patch.uplink) {
      const same = old.uplink?.network === patch.uplink.network;
      next.uplink = {
        network: patch.uplink.network,
        ip: patch.uplink.ip ?? (same ? old.uplink!.ip : ''),
        snat: patch.uplink.snat ?? old.uplink?.snat ?? true,
      };
    }
    if (old.floatingIps.length > 0 && (!next.uplink || next.uplink.network !== old.uplink?.network))
      throw new NfError(
        'in_use',
        `router "${name}" has ${old.floatingIps.length} floating IP(s) on its uplink: release them first`,
      );
    // a floating IP's NIC stays on one of the router's networks
    for (const f of next.floatingIps) {
      const net = (await this.store.get<VmRecord>(keys.vm(f.vmId)))?.value.networks.find(
        (n) => n.id === f.nic,
      );
      if (net && !next.networks.includes(net.network))
        throw new NfError(
          'in_use',
          `floating IP ${f.ip} leads to a NIC on network "${net.network}": release it before taking the network off`,
        );
    }
    await this.validate(next);
    await this.apply(old, next);
    try {
      await this.store.txn({
        when: [{ key: cur.key, revision: cur.revision }],
        put: [{ key: cur.key, value: next }],
      });
    } catch (err) {
      // OVN goes back to what etcd holds now (the old record, or another change that won)
      const now = await this.store.get<RouterRecord>(keys.router(name)).catch(() => undefined);
      await this.apply(next, now?.value).catch(() => {});
      if (NfError.isCode(err, 'conflict'))
        throw new NfError('conflict', `router "${name}" changed meanwhile; read it again`);
      throw err;
    }
    log.info('router changed', { name, networks: next.networks, uplink: next.uplink?.network });
    return this.get(name);
  }

  async delete(name: string): Promise<void> {
    const rec = await this.record(name);
    if (rec.floatingIps.length > 0)
      throw new NfError(
        'in_use',
        `router "${name}" has ${rec.floatingIps.length} floating IP(s): release them first (${rec.floatingIps.map((f) => f.ip).join(', ')})`,
      );
    await this.apply(rec, undefined);
    await this.store.txn({ delete: [keys.router(name)] });
    log.info('router deleted', { name });
  }

  /** Gives a VM's NIC an address of the router's uplink network (DNAT in, SNAT out). */
  async addFloatingIp(name: string, input: { vm: string; nic?: string; ip?: string }): Promise<RouterView> {
    const cur = await this.store.get<RouterRecord>(keys.router(name));
    if (!cur) throw new NfError('not_found', `no router "${name}"`);
    const rec = cur.value;
    if (!rec.uplink)
      throw new NfError('invalid_state', `router "${name}" has no uplink: floating IPs are its addresses`);
    const vm = await this.findVm(input.vm);
    const nic = input.nic
      ? vm.networks.find((n) => n.id === input.nic)
      : vm.networks.find((n) => rec.networks.includes(n.network));
    if (!nic)
      throw new NfError(
        input.nic ? 'not_found' : 'validation_failed',
        input.nic
          ? `VM "${vm.name}" has no NIC ${input.nic}`
          : `VM "${vm.name}" has no NIC on the networks of router "${name}" (${rec.networks.join(', ') || 'none'})`,
      );
    if (!rec.networks.includes(nic.network))
      throw new NfError(
        'validation_failed',
        `NIC ${nic.id} of VM "${vm.name}" is on network "${nic.network}", not one of router "${name}"`,
      );
    if (rec.floatingIps.some((f) => f.vmId === vm.id && f.nic === nic.id))
      throw new NfError('already_exists', `NIC ${nic.id} of VM "${vm.name}" has a floating IP already`);
    const internal = await this.nicAddress(vm, nic.id, nic.network);
    const up = await this.network(rec.uplink.network);
    const taken = await this.takenOn(up.name, '');
    let ip = input.ip;
    if (ip) {
      if (!inSubnet(ip, up.subnet) || ip === up.gateway)
        throw new NfError(
          'validation_failed',
          `${ip} is not a host address of uplink network "${up.name}" (${up.subnet}, gateway ${up.gateway})`,
        );
      const who = taken.get(ip);
      if (who) throw new NfError('already_exists', `${ip} on "${up.name}" is ${who}'s already`);
    } else ip = freeAddress(up, taken);
    const next = structuredClone(rec);
    next.floatingIps.push({ ip, vmId: vm.id, nic: nic.id });
    await this.networks.nb(['lr-nat-add', routerName(name), 'dnat_and_snat', ip, internal]);
    try {
      await this.store.txn({
        when: [{ key: cur.key, revision: cur.revision }],
        put: [{ key: cur.key, value: next }],
      });
    } catch (err) {
      await this.networks
        .nb(['--if-exists', 'lr-nat-del', routerName(name), 'dnat_and_snat', ip])
        .catch(() => {});
      throw err;
    }
    log.info('floating IP added', { router: name, ip, vm: vm.name, nic: nic.id });
    return this.get(name);
  }

  async removeFloatingIp(name: string, ip: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.store.get<RouterRecord>(keys.router(name));
      if (!cur) throw new NfError('not_found', `no router "${name}"`);
      if (!cur.value.floatingIps.some((f) => f.ip === ip))
        throw new NfError('not_found', `router "${name}" has no floating IP ${ip}`);
      await this.networks.nb(['--if-exists', 'lr-nat-del', routerName(name), 'dnat_and_snat', ip]);
      const next = structuredClone(cur.value);
      next.floatingIps = next.floatingIps.filter((f) => f.ip !== ip);
      try {
        await this.store.txn({
          when: [{ key: cur.key, revision: cur.revision }],
          put: [{ key: cur.key, value: next }],
        });
        break;
      } catch (err) {
        // the router changed meanwhile: read it again (the NAT row is gone either way)
        if (!NfError.isCode(err, 'conflict') || attempt >= 4) throw err;
      }
    }
    log.info('floating IP released', { router: name, ip });
  }

  /** Releases the floating IPs that lead to a deleted VM's NICs (or removed NICs). */
  async dropVm(vmId: string, nicIds?: string[]): Promise<void> {
    for (const cur of await this.store.list<RouterRecord>(keys.routers))
      for (const f of cur.value.floatingIps)
        if (f.vmId === vmId && (!nicIds || nicIds.includes(f.nic)))
          await this.removeFloatingIp(cur.value.name, f.ip).catch((err) =>
            log.warn('floating IP not released', { ip: f.ip, err: (err as Error).message }),
          );
  }

  private async findVm(ref: string): Promise<VmRecord> {
    const vms = (await this.store.list<VmRecord>(keys.vms)).map((v) => v.value);
    const vm = vms.find((v) => v.id === ref) ?? vms.find((v) => v.name === ref);
    if (!vm) throw new NfError('not_found', `no VM "${ref}"`);
    return vm;
  }

  /** A NIC's address: its fixed one, or the one OVN gave its port (made at the VM's first start). */
  private async nicAddress(vm: VmRecord, nicId: string, network: string): Promise<string> {
    const fixed = vm.networks.find((n) => n.id === nicId)?.ip;
    if (fixed) return fixed;
    const ip = (await this.networks.addresses(network)).get(portName(vm.id, nicId));
    if (!ip)
      throw new NfError(
        'invalid_state',
        `NIC ${nicId} of VM "${vm.name}" has no address yet: start the VM once (OVN gives it one) or give the NIC a fixed address`,
      );
    return ip;
  }

  /**
   * Brings OVN from one state of a router to another (undefined: none) in one northbound transaction.
   */
  private async apply(from: RouterRecord | undefined, to: RouterRecord | undefined): Promise<void> {
    const name = (to ?? from)!.name;
    const lr = routerName(name);
    // what goes first, then what comes (a new default route after the old one is gone, ...)
    const dels: string[][] = [];
    const adds: string[][] = [];
    if (!to) {
      dels.push(['--if-exists', 'lr-del', lr]);
      for (const n of [...from!.networks, ...(from!.uplink ? [from!.uplink.network] : [])])
        dels.push(['--if-exists', 'lsp-del', lsp(name, n)]);
      await this.networks.nb(...dels);
      return;
    }
    const nets = new Map<string, NetworkRecord & { subnet: string }>();
    for (const n of [...(from?.networks ?? []), ...to.networks, ...(to.uplink ? [to.uplink.network] : [])])
      if (!nets.has(n)) nets.set(n, await this.network(n));
    const prefix = (n: string) => nets.get(n)!.subnet.split('/')[1];
    if (!from)
      adds.push(['lr-add', lr], ['set', 'logical_router', lr, `external_ids:neuroflow-router=${name}`]);
    const link = (n: string, ip: string) => [
      ['lrp-add', lr, lrp(name, n), routerMac(name, n), `${ip}/${prefix(n)}`],
      ['--may-exist', 'lsp-add', switchName(n), lsp(name, n)],
      ['lsp-set-type', lsp(name, n), 'router'],
      ['lsp-set-addresses', lsp(name, n), 'router'],
      ['lsp-set-options', lsp(name, n), `router-port=${lrp(name, n)}`],
    ];
    const unlink = (n: string) => [
      ['--if-exists', 'lrp-del', lrp(name, n)],
      ['--if-exists', 'lsp-del', lsp(name, n)],
    ];
    const snat = (r: RouterRecord) =>
      r.uplink?.snat ? r.networks.map((n) => ({ ip: r.uplink!.ip, inside: nets.get(n)?.subnet ?? '' })) : [];
    // inside networks
    for (const n of from?.networks ?? []) if (!to.networks.includes(n)) dels.push(...unlink(n));
    for (const n of to.networks)
      if (!from?.networks.includes(n)) adds.push(...link(n, nets.get(n)!.gateway!));
    // the uplink: port, gateway hosts, default route, SNAT (all redone when it changes)
    const upChanged = JSON.stringify(from?.uplink) !== JSON.stringify(to.uplink);
    if (from?.uplink && upChanged) {
      dels.push(...unlink(from.uplink.network));
      dels.push(['--if-exists', 'lr-route-del', lr, '0.0.0.0/0']);
      dels.push(['--if-exists', 'lr-nat-del', lr, 'snat']);
    }
    if (to.uplink && upChanged) {
      const up = nets.get(to.uplink.network)!;
      adds.push(...link(up.name, to.uplink.ip));
      const hosts = await this.networks.chassisWith(up.physicalNetwork ?? 'provider');
      hosts.forEach((h, i) => {
        adds.push(['lrp-set-gateway-chassis', lrp(name, up.name), h, String(100 - i)]);
      });
      adds.push(['lr-route-add', lr, '0.0.0.0/0', up.gateway!]);
      for (const s of snat(to)) adds.push(['lr-nat-add', lr, 'snat', s.ip, s.inside]);
    } else if (to.uplink) {
      // the same uplink: SNAT follows the inside networks
      const was = new Set(snat(from!).map((s) => s.inside));
      const now = new Set(snat(to).map((s) => s.inside));
      for (const sub of was) if (!now.has(sub)) dels.push(['--if-exists', 'lr-nat-del', lr, 'snat', sub]);
      for (const s of snat(to)) if (!was.has(s.inside)) adds.push(['lr-nat-add', lr, 'snat', s.ip, s.inside]);
    }
    // static routes
    const key = (r: { destination: string; nexthop: string }) => `${r.destination} ${r.nexthop}`;
    const had = new Set((from?.routes ?? []).map(key));
    const want = new Set(to.routes.map(key));
    for (const r of from?.routes ?? [])
      if (!want.has(key(r))) dels.push(['--if-exists', 'lr-route-del', lr, r.destination, r.nexthop]);
    for (const r of to.routes)
      if (!had.has(key(r))) adds.push(['lr-route-add', lr, r.destination, r.nexthop]);
    if (dels.length + adds.length > 0) await this.networks.nb(...dels, ...adds);
  }
}

/** The highest free host address of a network (away from the DHCP range, which OVN fills from the bottom). */
function freeAddress(net: NetworkRecord & { subnet: string }, taken: Map<string, string>): string {
  const { base, size } = parseCidr(net.subnet);
  for (let a = base + size - 2; a > base; a--) {
    const ip = intToIp(a);
    if (ip !== net.gateway && !taken.has(ip)) return ip;
  }
  throw new NfError('unavailable', `network "${net.name}" (${net.subnet}) has no free address`);
}
