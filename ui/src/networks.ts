/**
 * Networks a NIC attaches to (GET/POST /networks, GET/DELETE /networks/{name}; docs/network.md): the
 * built-in NAT network "default", overlay networks (an OVN logical switch with its own subnet, DHCP
 * and address management) and provider networks (an OVN logical switch on a physical network of the
 * hosts, VLAN tagged or not). What the Networks page and the network pickers check before sending: the
 * same rules as the API (src/api/routes/networks.ts, src/network/service.ts), with its wording.
 */

export type NetworkType = 'nat' | 'overlay' | 'provider';

/** An overlay NIC as GET /networks/{name} shows it: its VM, its MAC and the address OVN gave it. */
export interface NetworkPort {
  vm: string;
  vmId: string;
  nic: string;
  mac: string;
  /** Absent until OVN gave one (the VM has not started since the NIC was added). */
  ip?: string;
}

/** GET /networks (and GET /networks/{name} with `ports` for an overlay network). */
export interface Network {
  name: string;
  type: NetworkType;
  subnet?: string;
  /** The address a router joining the network takes: DHCP names it as the router. */
  gateway?: string;
  dns?: string[];
  mtu?: number;
  /** provider: the hosts' physical network (serve --provider-network NAME=IFACE). */
  physicalNetwork?: string;
  /** provider: its VLAN tag (absent: untagged). */
  vlan?: number;
  /** provider: whether OVN answers DHCP on it. */
  dhcp?: boolean;
  createdAt?: string;
  /** NICs attached to it. */
  nics: number;
  ports?: NetworkPort[];
}

/** POST /networks. */
export interface NewNetworkBody {
  name: string;
  type: 'overlay' | 'provider';
  subnet: string;
  gateway?: string;
  dns?: string[];
  mtu?: number;
  physicalNetwork?: string;
  vlan?: number;
  dhcp?: boolean;
}

/** The built-in NAT network every host has (never deleted). */
export const DEFAULT_NETWORK = 'default';
/** The API's network name rule. */
export const NETWORK_NAME = /^[a-z0-9][a-z0-9-]{0,30}$/;
/** The MTU of an overlay network that names none: Geneve on a 1500-byte underlay. */
export const OVERLAY_MTU = 1442;
/** The MTU of a provider network that names none. */
export const PROVIDER_MTU = 1500;
export const MTU_MIN = 576;
/** The largest overlay MTU (Geneve on a 9000-byte underlay). */
export const MTU_MAX = 8942;
/** The largest provider MTU (jumbo frames). */
export const PROVIDER_MTU_MAX = 9000;
/** The physical network a provider network is on when none is named. */
export const DEFAULT_PHYSICAL_NETWORK = 'provider';
/** The API's physical network name rule. */
export const PHYSICAL_NETWORK_NAME = /^[a-z0-9][a-z0-9-]{0,11}$/;
export const VLAN_MIN = 1;
export const VLAN_MAX = 4094;
/** The most DNS servers DHCP hands out. */
export const MAX_DNS = 4;
/** The prefixes the API takes (a /30 leaves DHCP nothing to hand out besides the gateway). */
export const PREFIX_MIN = 8;
export const PREFIX_MAX = 29;

/** An IPv4 address as a number (undefined when it is not one: four 0-255 decimals). */
export function parseIpv4(text: string): number | undefined {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) return undefined;
  const p = text.split('.').map(Number);
  if (p.some((x) => x > 255)) return undefined;
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** A subnet in CIDR form: its network address, prefix and size, or what is wrong with it. */
export type Cidr = { base: number; prefix: number; size: number; problem: '' } | { problem: string };

/**
 * Parses "10.10.0.0/24" as the API does: no host bits set, a prefix from /8 to /29 (a network's subnet)
 * or from `min` to `max` (a route's destination, a rule's remote: /0 to /32).
 */
export function parseCidr(text: string, min = PREFIX_MIN, max = PREFIX_MAX): Cidr {
  const t = text.trim();
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(t);
  const base = m ? parseIpv4(m[1]!) : undefined;
  if (!m || base === undefined) return { problem: `an IPv4 CIDR such as 10.10.0.0/24, not "${t}"` };
  const prefix = Number(m[2]);
  if (prefix < min || prefix > max) return { problem: `a prefix from /${min} to /${max}` };
  const size = 2 ** (32 - prefix);
  if (base % size !== 0)
    return { problem: `${t} has host bits set (${formatIpv4(base - (base % size))}/${prefix}?)` };
  return { base, prefix, size, problem: '' };
}

/** The gateway an overlay network gets when none is given: the subnet's first address ('' if no subnet). */
export function defaultGateway(subnet: string): string {
  const c = parseCidr(subnet);
  return c.problem ? '' : formatIpv4((c as { base: number }).base + 1);
}

/** What is wrong with a gateway typed for a subnet ('' when it is right, or empty: the default). */
export function gatewayProblem(gateway: string, subnet: string): string {
  const g = gateway.trim();
  if (!g) return '';
  const n = parseIpv4(g);
  if (n === undefined) return `"${g}" is not an IPv4 address`;
  const c = parseCidr(subnet);
  if (c.problem) return '';
  const { base, size } = c as { base: number; size: number };
  if (n <= base || n >= base + size - 1) return `${g} is not a host address of ${subnet.trim()}`;
  return '';
}

/** DNS servers as typed (commas or spaces between): in order, each once, with what is wrong ('' if right). */
export function parseDns(text: string): { dns: string[]; problem: string } {
  const words = text.split(/[\s,]+/).filter(Boolean);
  const bad = words.filter((w) => parseIpv4(w) === undefined);
  const dns = [...new Set(words.filter((w) => parseIpv4(w) !== undefined))];
  let problem = '';
  if (bad.length === 1) problem = `"${bad[0]}" is not an IPv4 address`;
  else if (bad.length > 1) problem = `${bad.map((b) => `"${b}"`).join(', ')} are not IPv4 addresses`;
  else if (dns.length > MAX_DNS) problem = `at most ${MAX_DNS} servers (${dns.length} given)`;
  return { dns, problem };
}

/** What is wrong with an MTU as typed ('' when right, or empty: the default), up to `max`. */
export function mtuProblem(text: string, max = MTU_MAX): string {
  const t = text.trim();
  if (!t) return '';
  if (!/^\d+$/.test(t) || Number(t) < MTU_MIN || Number(t) > max)
    return `a whole number from ${MTU_MIN} to ${max}`;
  return '';
}

/** The Add network dialog's fields, as typed. */
export interface NetworkForm {
  name: string;
  subnet: string;
  gateway: string;
  /** Comma- or space-separated. */
  dns: string;
  mtu: string;
  /** Absent: overlay. */
  type?: 'overlay' | 'provider';
  /** provider: the physical network (empty: "provider"). */
  physicalNetwork?: string;
  /** provider: a VLAN tag as typed (empty: untagged). */
  vlan?: string;
  /** provider: OVN answers DHCP. */
  dhcp?: boolean;
}

export const EMPTY_NETWORK_FORM: NetworkForm = {
  name: '',
  subnet: '',
  gateway: '',
  dns: '',
  mtu: '',
  type: 'overlay',
  physicalNetwork: DEFAULT_PHYSICAL_NETWORK,
  vlan: '',
  dhcp: false,
};

/** What is wrong with a VLAN tag as typed ('' when right, or empty: untagged). */
export function vlanProblem(text: string): string {
  const t = text.trim();
  if (!t) return '';
  if (!/^\d+$/.test(t) || Number(t) < VLAN_MIN || Number(t) > VLAN_MAX)
    return `a whole number from ${VLAN_MIN} to ${VLAN_MAX}`;
  return '';
}

/**
 * What is wrong with each field typed so far (an empty field is not wrong here: see `networkReady`), as
 * messages beginning with the field's name.
 */
export function networkProblems(f: NetworkForm): Partial<Record<keyof NetworkForm, string>> {
  const out: Partial<Record<keyof NetworkForm, string>> = {};
  const name = f.name.trim();
  if (name && !NETWORK_NAME.test(name))
    out.name = 'Name: lowercase letters, digits and -, starting with a letter or digit; up to 31';
  const subnet = f.subnet.trim();
  const c = subnet ? parseCidr(subnet) : undefined;
  if (c?.problem) out.subnet = `Subnet: ${c.problem}`;
  const g = gatewayProblem(f.gateway, f.subnet);
  if (g) out.gateway = `Gateway: ${g}`;
  const dns = parseDns(f.dns).problem;
  if (dns) out.dns = `DNS servers: ${dns}`;
  const provider = f.type === 'provider';
  const mtu = mtuProblem(f.mtu, provider ? PROVIDER_MTU_MAX : MTU_MAX);
  if (mtu) out.mtu = `MTU: ${mtu}`;
  if (provider) {
    const phys = (f.physicalNetwork ?? '').trim();
    if (phys && !PHYSICAL_NETWORK_NAME.test(phys))
      out.physicalNetwork = 'Physical network: lowercase letters, digits and -; up to 12';
    const vlan = vlanProblem(f.vlan ?? '');
    if (vlan) out.vlan = `VLAN: ${vlan}`;
  }
  return out;
}

/** The form can be sent: a name and a subnet, nothing wrong. */
export function networkReady(f: NetworkForm): boolean {
  return !!f.name.trim() && !!f.subnet.trim() && Object.keys(networkProblems(f)).length === 0;
}

/** POST /networks for the form (the optional fields only when given). */
export function networkBody(f: NetworkForm): NewNetworkBody {
  const dns = parseDns(f.dns).dns;
  const provider = f.type === 'provider';
  const vlan = (f.vlan ?? '').trim();
  return {
    name: f.name.trim(),
    type: provider ? 'provider' : 'overlay',
    subnet: f.subnet.trim(),
    ...(f.gateway.trim() ? { gateway: f.gateway.trim() } : {}),
    ...(dns.length ? { dns } : {}),
    ...(f.mtu.trim() ? { mtu: Number(f.mtu.trim()) } : {}),
    ...(provider
      ? {
          physicalNetwork: (f.physicalNetwork ?? '').trim() || DEFAULT_PHYSICAL_NETWORK,
          ...(vlan ? { vlan: Number(vlan) } : {}),
          dhcp: !!f.dhcp,
        }
      : {}),
  };
}

/** The VLAN column: a provider network's tag, "untagged", or '' (not a provider network). */
export function vlanLabel(n: Pick<Network, 'type' | 'vlan'>): string {
  if (n.type !== 'provider') return '';
  return n.vlan ? String(n.vlan) : 'untagged';
}

/** The overlay network named, from GET /networks (undefined for "default", an unknown name, no list yet). */
export function overlayNetwork<N extends Pick<Network, 'name' | 'type'>>(
  name: string,
  list: N[] | undefined,
): N | undefined {
  const n = list?.find((x) => x.name === name.trim());
  return n?.type === 'overlay' ? n : undefined;
}

/**
 * What is wrong with a fixed address typed for a NIC on an overlay network ('' when it is right, or
 * empty: OVN picks one). The API's rule: a host address of the subnet (not its network or broadcast
 * address) other than the gateway; whether another NIC has it only the API knows (409).
 */
export function fixedIpProblem(
  ip: string,
  net: Pick<Network, 'name' | 'subnet' | 'gateway'> | undefined,
): string {
  const t = ip.trim();
  if (!t) return '';
  const a = parseIpv4(t);
  if (a === undefined) return `Fixed address: "${t}" is not an IPv4 address`;
  if (!net?.subnet) return '';
  const c = parseCidr(net.subnet);
  if (c.problem) return '';
  const { base, size } = c as { base: number; size: number };
  const gateway = net.gateway || defaultGateway(net.subnet);
  if (a <= base || a >= base + size - 1)
    return `Fixed address: ${t} is not a host address of network "${net.name}" (${net.subnet})`;
  if (a === parseIpv4(gateway)) return `Fixed address: ${t} is the gateway of network "${net.name}"`;
  return '';
}

/** The `ip` of a NIC's body: the fixed address typed, only for an overlay network and when given. */
export function fixedIpBody(ip: string, net: Pick<Network, 'type'> | undefined): { ip?: string } {
  return net?.type === 'overlay' && ip.trim() ? { ip: ip.trim() } : {};
}

/** A NIC's fixed address as its row on the VM page says it: "10.10.0.50 (fixed)" ('' without one). */
export function fixedIpLabel(n: { ip?: string }): string {
  return n.ip ? `${n.ip} (fixed)` : '';
}

/** A network's type as the UI says it. */
export function networkTypeLabel(type: NetworkType | string): string {
  if (type === 'nat') return 'NAT';
  if (type === 'overlay') return 'overlay';
  if (type === 'provider') return 'provider';
  return type;
}

/** A network in a picker: "default (NAT)", "web (overlay, 10.10.0.0/24)". */
export function networkOptionLabel(n: Pick<Network, 'name' | 'type' | 'subnet'>): string {
  return `${n.name} (${networkTypeLabel(n.type)}${n.subnet ? `, ${n.subnet}` : ''})`;
}

/**
 * The networks a NIC can be put on, for a picker: every network of GET /networks, "default" first, the
 * rest by name; while the list is not there (or failed), "default" alone; `current` (the choice so far)
 * is always offered, even if the list lacks it.
 */
export function networkChoices(
  list: Pick<Network, 'name' | 'type' | 'subnet'>[] | undefined,
  current = DEFAULT_NETWORK,
): { value: string; label: string }[] {
  const all = [...(list ?? [])];
  if (!all.some((n) => n.name === DEFAULT_NETWORK)) all.push({ name: DEFAULT_NETWORK, type: 'nat' });
  const c = current.trim();
  const out = all
    .sort((a, b) =>
      a.name === DEFAULT_NETWORK ? -1 : b.name === DEFAULT_NETWORK ? 1 : a.name.localeCompare(b.name),
    )
    .map((n) => ({ value: n.name, label: networkOptionLabel(n) }));
  if (c && !out.some((o) => o.value === c)) out.push({ value: c, label: c });
  return out;
}

/**
 * A hint beside a network picked for a NIC hot-plugged into a running VM: the API refuses a hot-plug
 * onto an overlay network ('' when there is nothing to say).
 */
export function hotplugHint(network: string, list: Pick<Network, 'name' | 'type'>[] | undefined): string {
  const type = list?.find((n) => n.name === network)?.type;
  return type === 'overlay' || type === 'provider'
    ? 'Plugged at once: OVN gives it its address when the guest asks DHCP on the new NIC.'
    : '';
}

/**
 * What changes the networks' NIC counts: the VMs' NICs (id and network). The Networks page reads again
 * when it changes (the store follows VM events live).
 */
export function nicSignature(vms: { id: string; networks: { id: string; network: string }[] }[]): string {
  return vms
    .map((v) => `${v.id}:${v.networks.map((n) => `${n.id}=${n.network}`).join(',')}`)
    .sort()
    .join(';');
}

/** The address column of an overlay NIC: OVN's address, or why there is none yet. */
export function portAddress(p: Pick<NetworkPort, 'ip'>): string {
  return p.ip ?? '—';
}

/** The hash of the Networks page, with one network's NICs open. */
export function networkHref(name?: string): string {
  return name ? `#/networks/${encodeURIComponent(name)}` : '#/networks';
}

/** What a NIC's row on the VM page says when OVN has given it no address yet. */
export const NO_ADDRESS_YET = '(none yet)';

/**
 * The address of each of a VM's NICs on OVN networks, by NIC id, from GET /networks/{name} of its
 * networks (matched by VM id and NIC): OVN's address, or "(none yet)". The NAT network's NICs are left
 * out (its address is passt's, inside the guest: the API does not know it).
 */
export function nicAddresses(
  vmId: string,
  details: Pick<Network, 'type' | 'ports'>[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of details) {
    if (d.type === 'nat') continue;
    for (const p of d.ports ?? []) if (p.vmId === vmId) out[p.nic] = p.ip ?? NO_ADDRESS_YET;
  }
  return out;
}

/** The networks of a VM's NICs whose addresses OVN knows (every one but the NAT network), each once. */
export function ovnNetworksOf(nics: { network: string }[]): string[] {
  return [...new Set(nics.map((n) => n.network).filter((n) => n !== DEFAULT_NETWORK))].sort();
}
