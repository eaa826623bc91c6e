/**
 * Routers (GET/POST /routers, GET/PATCH/DELETE /routers/{name}, floating IPs; docs/network.md): an OVN
 * logical router joining overlay networks (its port on each has the network's gateway), with an uplink
 * onto a provider network (SNAT out), floating IPs and static routes. What the Routers page checks
 * before sending: the API's rules (src/api/routes/routers.ts, src/network/routers.ts), with its wording.
 */
import { gatewayProblem, NETWORK_NAME, type Network, parseCidr, parseIpv4 } from './networks';

export interface StaticRoute {
  destination: string;
  nexthop: string;
}

export interface RouterUplink {
  network: string;
  /** The router's address on the uplink network. */
  ip: string;
  /** SNAT of the inside networks to that address. */
  snat: boolean;
}

export interface FloatingIp {
  ip: string;
  vmId: string;
  /** Absent when the VM is gone. */
  vm?: string;
  nic: string;
  /** The NIC's address it leads to (GET of one router). */
  internalIp?: string;
}

/** GET /routers, GET /routers/{name}. */
export interface Router {
  name: string;
  /** The overlay networks it joins. */
  networks: string[];
  uplink?: RouterUplink;
  routes: StaticRoute[];
  floatingIps: FloatingIp[];
  /** The hosts its uplink can be active on, highest priority first (GET of one router). */
  gatewayHosts?: string[];
  createdAt: string;
}

/** The uplink as sent: the address and SNAT optional (the API picks the highest free one; SNAT on). */
export interface UplinkBody {
  network: string;
  ip?: string;
  snat?: boolean;
}

/** POST /routers. */
export interface NewRouterBody {
  name: string;
  networks?: string[];
  uplink?: UplinkBody;
  routes?: StaticRoute[];
}

/** PATCH /routers/{name}: each list given replaces the old one; uplink null removes it. */
export interface RouterChangeBody {
  networks?: string[];
  uplink?: UplinkBody | null;
  routes?: StaticRoute[];
}

/** The Add router form and a router's Edit form, as typed. */
export interface RouterForm {
  name: string;
  /** Overlay networks picked. */
  networks: string[];
  /** A provider network ('' for none). */
  uplink: string;
  /** The router's address there ('' for the API's pick). */
  uplinkIp: string;
  snat: boolean;
  /** Static routes as typed (a row with both fields empty is ignored). */
  routes: StaticRoute[];
}

export const EMPTY_ROUTER_FORM: RouterForm = {
  name: '',
  networks: [],
  uplink: '',
  uplinkIp: '',
  snat: true,
  routes: [],
};

/** A router's Edit form, filled with what it has. */
export function routerForm(r: Router): RouterForm {
  return {
    name: r.name,
    networks: [...r.networks],
    uplink: r.uplink?.network ?? '',
    uplinkIp: r.uplink?.ip ?? '',
    snat: r.uplink?.snat ?? true,
    routes: r.routes.map((x) => ({ ...x })),
  };
}

const blank = (r: StaticRoute) => !r.destination.trim() && !r.nexthop.trim();

/** The routes typed (blank rows left out), trimmed. */
export function parseRoutes(rows: StaticRoute[]): StaticRoute[] {
  return rows
    .filter((r) => !blank(r))
    .map((r) => ({ destination: r.destination.trim(), nexthop: r.nexthop.trim() }));
}

/** What is wrong with each route row ('' when right, or blank): destination /0-/32, next hop IPv4, one per destination. */
export function routeProblems(rows: StaticRoute[]): string[] {
  const seen = new Set<string>();
  return rows.map((r) => {
    if (blank(r)) return '';
    const dest = r.destination.trim();
    const hop = r.nexthop.trim();
    if (!dest) return 'Destination: an IPv4 CIDR such as 10.99.0.0/16';
    const c = parseCidr(dest, 0, 32);
    if (c.problem) return `Destination: ${c.problem}`;
    if (!hop) return 'Next hop: an IPv4 address';
    if (parseIpv4(hop) === undefined) return `Next hop: "${hop}" is not an IPv4 address`;
    if (seen.has(dest)) return `Destination ${dest}: one route per destination`;
    seen.add(dest);
    return '';
  });
}

/** Whether two CIDRs share an address (false when either is not one). */
export function cidrsOverlap(a: string, b: string): boolean {
  const x = parseCidr(a, 0, 32);
  const y = parseCidr(b, 0, 32);
  if (x.problem || y.problem) return false;
  const p = x as { base: number; size: number };
  const q = y as { base: number; size: number };
  return p.base < q.base + q.size && q.base < p.base + p.size;
}

export interface RouterProblems {
  name?: string;
  networks?: string;
  uplinkIp?: string;
  /** One per route row ('' when right). */
  routes?: string[];
}

/**
 * What is wrong with the form so far (an empty name is not wrong here: see `routerReady`), against the
 * networks of GET /networks when there: overlapping subnets, an uplink address outside its subnet.
 */
export function routerProblems(f: RouterForm, networks?: Network[]): RouterProblems {
  const out: RouterProblems = {};
  const name = f.name.trim();
  if (name && !NETWORK_NAME.test(name))
    out.name = 'Name: lowercase letters, digits and -, starting with a letter or digit; up to 31';
  const subnets = [...f.networks, ...(f.uplink ? [f.uplink] : [])]
    .map((n) => networks?.find((x) => x.name === n))
    .filter((n): n is Network & { subnet: string } => !!n?.subnet);
  for (let i = 0; i < subnets.length && !out.networks; i++)
    for (let j = i + 1; j < subnets.length; j++)
      if (cidrsOverlap(subnets[i]!.subnet, subnets[j]!.subnet)) {
        out.networks = `Networks "${subnets[i]!.name}" (${subnets[i]!.subnet}) and "${subnets[j]!.name}" (${subnets[j]!.subnet}) overlap: one router cannot route between them`;
        break;
      }
  const ip = f.uplinkIp.trim();
  if (f.uplink && ip) {
    const up = networks?.find((n) => n.name === f.uplink);
    const g = gatewayProblem(ip, up?.subnet ?? '');
    if (g) out.uplinkIp = `Uplink address: ${g}`;
    else if (up?.gateway === ip)
      out.uplinkIp = `Uplink address: ${ip} is the gateway of network "${up.name}"`;
  }
  const routes = routeProblems(f.routes);
  if (routes.some(Boolean)) out.routes = routes;
  return out;
}

/** The form can be sent: a name, nothing wrong. */
export function routerReady(f: RouterForm, networks?: Network[]): boolean {
  return !!f.name.trim() && Object.keys(routerProblems(f, networks)).length === 0;
}

function uplinkBody(f: RouterForm): UplinkBody {
  return { network: f.uplink, ...(f.uplinkIp.trim() ? { ip: f.uplinkIp.trim() } : {}), snat: f.snat };
}

/** POST /routers for the form (the optional parts only when given). */
export function routerBody(f: RouterForm): NewRouterBody {
  const routes = parseRoutes(f.routes);
  return {
    name: f.name.trim(),
    ...(f.networks.length ? { networks: [...f.networks] } : {}),
    ...(f.uplink ? { uplink: uplinkBody(f) } : {}),
    ...(routes.length ? { routes } : {}),
  };
}

const sameList = <T>(a: T[], b: T[], key: (x: T) => string) =>
  a.length === b.length && a.every((x, i) => key(x) === key(b[i]!));

/** PATCH /routers/{name} for the Edit form: only what changed ({} when nothing did). */
export function routerChange(r: Router, f: RouterForm): RouterChangeBody {
  const out: RouterChangeBody = {};
  if (!sameList([...f.networks].sort(), [...r.networks].sort(), String)) out.networks = [...f.networks];
  const routes = parseRoutes(f.routes);
  const key = (x: StaticRoute) => `${x.destination} ${x.nexthop}`;
  if (!sameList(routes, r.routes, key)) out.routes = routes;
  if (!f.uplink) {
    if (r.uplink) out.uplink = null;
  } else if (
    !r.uplink ||
    r.uplink.network !== f.uplink ||
    r.uplink.snat !== f.snat ||
    (f.uplinkIp.trim() !== '' && f.uplinkIp.trim() !== r.uplink.ip)
  )
    out.uplink = uplinkBody(f);
  return out;
}

/**
 * The overlay networks a router can join, by name: each with the other router that has it already (the
 * API refuses a network on two routers: 409).
 */
export function insideChoices(
  networks: Network[] | undefined,
  routers: Router[] | undefined,
  self?: string,
): { name: string; subnet?: string; router?: string }[] {
  return (networks ?? [])
    .filter((n) => n.type === 'overlay')
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((n) => {
      const on = routers?.find((r) => r.name !== self && r.networks.includes(n.name));
      return { name: n.name, subnet: n.subnet, ...(on ? { router: on.name } : {}) };
    });
}

/** The provider networks an uplink can be on, by name. */
export function uplinkChoices(networks: Network[] | undefined): Network[] {
  return (networks ?? []).filter((n) => n.type === 'provider').sort((a, b) => a.name.localeCompare(b.name));
}

/** A VM's NICs on the router's networks: what a floating IP can lead to. */
export interface FloatingIpTarget {
  vmId: string;
  vm: string;
  nics: { id: string; network: string; ip?: string }[];
}

/** The VMs with a NIC on one of the router's networks (without a floating IP yet), by name. */
export function floatingIpTargets(
  vms: { id: string; name: string; networks: { id: string; network: string; ip?: string }[] }[],
  r: Pick<Router, 'networks' | 'floatingIps'>,
): FloatingIpTarget[] {
  return vms
    .map((v) => ({
      vmId: v.id,
      vm: v.name,
      nics: v.networks
        .filter((n) => r.networks.includes(n.network))
        .filter((n) => !r.floatingIps.some((f) => f.vmId === v.id && f.nic === n.id))
        .map((n) => ({ id: n.id, network: n.network, ...(n.ip ? { ip: n.ip } : {}) })),
    }))
    .filter((t) => t.nics.length > 0)
    .sort((a, b) => a.vm.localeCompare(b.vm));
}

/** What is wrong with a floating IP's address as typed ('' when right, or empty: the API picks one). */
export function floatingIpProblem(ip: string, uplink: Network | undefined): string {
  const t = ip.trim();
  if (!t) return '';
  const g = gatewayProblem(t, uplink?.subnet ?? '');
  if (g) return `Address: ${g}`;
  if (uplink?.gateway === t) return `Address: ${t} is the gateway of network "${uplink.name}"`;
  return '';
}

/** A router's uplink in its row: "ext 203.0.113.250, SNAT" ('' without one). */
export function uplinkLabel(u: RouterUplink | undefined): string {
  if (!u) return '';
  return `${u.network} ${u.ip}${u.snat ? ', SNAT' : ''}`;
}

/** A static route as its row says it: "10.99.0.0/16 via 10.77.0.254". */
export function routeLabel(r: StaticRoute): string {
  return `${r.destination} via ${r.nexthop}`;
}

/** A floating IP as its row says it: "203.0.113.9 → web1 net0 (10.77.0.5)". */
export function floatingIpLabel(f: FloatingIp): string {
  return `${f.ip} → ${f.vm ?? f.vmId} ${f.nic}${f.internalIp ? ` (${f.internalIp})` : ''}`;
}

/** The hash of the Routers page, with one router open. */
export function routerHref(name?: string): string {
  return name ? `#/routers/${encodeURIComponent(name)}` : '#/routers';
}
