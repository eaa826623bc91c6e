/**
 * The Topology tab: where each box and line of the logical network goes, from the API's data alone
 * (GET /networks with each OVN network's ports, /routers, /security-groups, /vms). Networks are rows
 * (a bar, then their VMs wrapping under it on a bus); routers sit in a column on the left, each with a
 * lane of its own from which a link drops onto every network it has a port on, labelled with that port's
 * address (the network's gateway inside, the uplink address outside). A VM on two networks is drawn under
 * each (one box per network, its NICs there): lines across rows would not stay readable at 50 VMs.
 */
import { DEFAULT_NETWORK, type Network, type NetworkPort, networkHref, networkTypeLabel } from './networks';
import { type Router, routerHref } from './routers';
import type { SecurityGroupMember } from './security-groups';

export interface TopologyVm {
  id: string;
  name: string;
  state?: string;
  networks: { id: string; network: string; ip?: string }[];
}

export interface TopologyInput {
  /** GET /networks. */
  networks: Network[];
  /** GET /networks/{name} `ports`, by network (the OVN ones read so far). */
  ports: Record<string, NetworkPort[]>;
  routers: Router[];
  groups: { name: string; members: SecurityGroupMember[] }[];
  vms: TopologyVm[];
  /** The drawing's width in pixels. */
  width: number;
}

/** A box of the drawing: what it names, where it leads, where it is. */
interface Box {
  name: string;
  detail: string;
  href: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

/** detail: "overlay · 10.81.0.0/24", "provider · 203.0.113.0/24 · VLAN 40", "NAT". */
export interface NetBox extends Box {
  type: string;
}

/** detail: "router", "router · SNAT". */
export interface RouterBox extends Box {
  /** Its box onto its lane, and the lane along its links' height: [x1, y1, x2, y2] each. */
  wires: [number, number, number, number][];
}

export interface Link {
  router: string;
  network: string;
  kind: 'inside' | 'uplink';
  /** The router's address on the network. */
  address: string;
  /** The label beside the link: the address (and the router when several share the network). */
  label: string;
  /** A polyline from the router's lane to the network's bar. */
  points: [number, number][];
  labelX: number;
  labelY: number;
}

export interface Badge {
  name: string;
  x: number;
  w: number;
}

export interface VmBox {
  vmId: string;
  name: string;
  /** Clipped to fit the box (`name` in full for the tooltip). */
  text: string;
  network: string;
  state?: string;
  href: string;
  /** "net0 10.81.0.5" (OVN: "—" until OVN gives one; NAT: the NIC alone). */
  nics: string[];
  floatingIps: string[];
  /** Security group badges that fit on one line, x relative to the box. */
  groups: Badge[];
  /** Groups left off for room. */
  moreGroups: number;
  /** Every NIC of the VM: "net0 on web, net1 on db". */
  title: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

/** A network's bus to its VMs: the spine down from the bar and one rail per line of boxes. */
export interface Bus {
  network: string;
  lines: [number, number, number, number][];
}

export interface TopologyLayout {
  width: number;
  height: number;
  networks: NetBox[];
  routers: RouterBox[];
  links: Link[];
  vms: VmBox[];
  buses: Bus[];
}

export const PAD = 16;
export const ROUTER_W = 150;
export const ROUTER_H = 40;
/** Between two routers' lanes. */
export const LANE = 12;
/** Between two links dropping onto one network. */
export const LINK_H = 16;
export const BAR_H = 26;
export const VM_W = 188;
export const VM_GAP = 12;
/** Between a bar (or a line of VMs) and the next line of VMs: room for the bus rail. */
export const BUS_GAP = 16;
export const ROW_GAP = 22;
const VM_NAME_H = 20;
const VM_LINE_H = 14;
const BADGE_H = 16;
/** Rough widths of a character: 12 px bold (a VM's name), 10 px (a badge). */
const NAME_CHAR = 7.2;
const BADGE_CHAR = 6.2;

/** Text cut to `max` characters, an ellipsis marking the cut. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}

/** A network's line under its name: type, subnet, VLAN. */
export function networkDetail(n: Pick<Network, 'type' | 'subnet' | 'vlan' | 'physicalNetwork'>): string {
  const parts: string[] = [networkTypeLabel(n.type)];
  if (n.subnet) parts.push(n.subnet);
  if (n.type === 'provider') parts.push(n.vlan ? `VLAN ${n.vlan}` : 'untagged');
  return parts.join(' · ');
}

/**
 * The rows top to bottom: the routers' uplink networks (the outside), then each router's inside networks
 * (routers by name), the other OVN networks, the NAT network last.
 */
export function networkOrder(networks: Network[], routers: Router[]): Network[] {
  const byName = [...networks].sort((a, b) => a.name.localeCompare(b.name));
  const out: Network[] = [];
  const take = (pick: (n: Network) => boolean) => {
    for (const n of byName) if (!out.includes(n) && pick(n)) out.push(n);
  };
  const rs = [...routers].sort((a, b) => a.name.localeCompare(b.name));
  take((n) => rs.some((r) => r.uplink?.network === n.name));
  for (const r of rs) take((n) => r.networks.includes(n.name));
  take((n) => n.type === 'overlay');
  take((n) => n.type !== 'nat');
  take(() => true);
  return out;
}

interface Attachment {
  vm: TopologyVm;
  nics: { id: string; ip?: string }[];
}

/** The VMs with a NIC on each network, by VM name. */
function attachments(vms: TopologyVm[]): Map<string, Attachment[]> {
  const out = new Map<string, Attachment[]>();
  for (const vm of [...vms].sort((a, b) => a.name.localeCompare(b.name)))
    for (const nic of vm.networks) {
      const list = out.get(nic.network) ?? [];
      let a = list.find((x) => x.vm === vm);
      if (!a) {
        a = { vm, nics: [] };
        list.push(a);
      }
      a.nics.push({ id: nic.id, ...(nic.ip ? { ip: nic.ip } : {}) });
      out.set(nic.network, list);
    }
  return out;
}

/** Badges in a row from the box's left, as many as fit in `room` (the rest counted). */
function badges(names: string[], room: number): { groups: Badge[]; moreGroups: number } {
  const groups: Badge[] = [];
  let x = 6;
  for (const [i, name] of names.entries()) {
    const w = Math.ceil(name.length * BADGE_CHAR) + 8;
    const left = names.length - i - 1;
    // keep room for "+N" when some would be left off
    if (x + w > room - (left > 0 ? 22 : 0)) return { groups, moreGroups: names.length - i };
    groups.push({ name, x, w });
    x += w + 4;
  }
  return { groups, moreGroups: 0 };
}

/** Positions of every box, bar and line of the topology (pure: the data in, the drawing's geometry out). */
export function layoutTopology(input: TopologyInput): TopologyLayout {
  const routers = [...input.routers].sort((a, b) => a.name.localeCompare(b.name));
  const rows = networkOrder(input.networks, routers);
  const known = new Set(rows.map((n) => n.name));
  const laneX = (i: number) => PAD + ROUTER_W + 16 + i * LANE;
  const x0 = routers.length ? laneX(routers.length - 1) + 28 : PAD;
  const width = Math.max(input.width, x0 + VM_W + 2 * PAD + 16);
  const barW = width - PAD - x0;
  const perLine = Math.max(1, Math.floor((width - PAD - (x0 + 16) + VM_GAP) / (VM_W + VM_GAP)));
  const byNetwork = attachments(input.vms);
  const fips = new Map<string, string[]>();
  for (const r of routers)
    for (const f of r.floatingIps) {
      const k = `${f.vmId}/${f.nic}`;
      fips.set(k, [...(fips.get(k) ?? []), f.ip]);
    }
  const groupsOf = new Map<string, Set<string>>();
  for (const g of input.groups)
    for (const m of g.members) {
      const k = `${m.vmId}/${m.network}`;
      groupsOf.set(k, (groupsOf.get(k) ?? new Set()).add(g.name));
    }
  // the router links onto each network, in router order
  const linksTo = new Map<string, { r: number; kind: Link['kind']; address: string }[]>();
  routers.forEach((r, i) => {
    const add = (network: string, kind: Link['kind'], address: string) => {
      if (!known.has(network)) return;
      linksTo.set(network, [...(linksTo.get(network) ?? []), { r: i, kind, address }]);
    };
    if (r.uplink) add(r.uplink.network, 'uplink', r.uplink.ip);
    for (const n of r.networks) add(n, 'inside', input.networks.find((x) => x.name === n)?.gateway ?? '');
  });

  const networks: NetBox[] = [];
  const links: Link[] = [];
  const vms: VmBox[] = [];
  const buses: Bus[] = [];
  /** Where each router's links leave its lane (y), to place the router's box. */
  const routerYs: number[][] = routers.map(() => []);
  let y = PAD;
  for (const n of rows) {
    const own = linksTo.get(n.name) ?? [];
    const barY = y + (own.length ? own.length * LINK_H + 6 : 0);
    networks.push({
      name: n.name,
      type: n.type,
      detail: networkDetail(n),
      href: networkHref(n.name),
      x: x0,
      y: barY,
      w: barW,
      h: BAR_H,
    });
    own.forEach((l, j) => {
      const ly = y + 8 + j * LINK_H;
      // the top link drops farthest right, so no link crosses another's drop
      const dropX = x0 + 10 + (own.length - 1 - j) * 8;
      const r = routers[l.r]!;
      routerYs[l.r]!.push(ly);
      links.push({
        router: r.name,
        network: n.name,
        kind: l.kind,
        address: l.address,
        label: own.length > 1 ? `${l.address} (${r.name})` : l.address,
        points: [
          [laneX(l.r), ly],
          [dropX, ly],
          [dropX, barY],
        ],
        labelX: x0 + 10 + own.length * 8 + 4,
        labelY: ly + 4,
      });
    });
    y = barY + BAR_H;
    const here = byNetwork.get(n.name) ?? [];
    const ovn = n.type !== 'nat';
    const ports = input.ports[n.name] ?? [];
    const bus: Bus = { network: n.name, lines: [] };
    const spineX = x0 + 8;
    for (let start = 0; start < here.length; start += perLine) {
      const line = here.slice(start, start + perLine).map((a) => {
        const nics = a.nics.map((nic) => {
          const ip =
            ports.find((p) => p.vmId === a.vm.id && p.nic === nic.id)?.ip ?? nic.ip ?? (ovn ? '—' : '');
          return ip ? `${nic.id} ${ip}` : nic.id;
        });
        const floating = a.nics.flatMap((nic) => fips.get(`${a.vm.id}/${nic.id}`) ?? []);
        const names = [...(groupsOf.get(`${a.vm.id}/${n.name}`) ?? [])].sort();
        return { a, nics, floating, ...badges(names, VM_W), hasGroups: names.length > 0 };
      });
      const h = Math.max(
        ...line.map(
          (b) =>
            VM_NAME_H + (b.nics.length + b.floating.length) * VM_LINE_H + (b.hasGroups ? BADGE_H + 2 : 0) + 4,
        ),
      );
      const top = y + BUS_GAP;
      const railY = top - BUS_GAP / 2;
      const lastX = x0 + 16 + (line.length - 1) * (VM_W + VM_GAP) + VM_W / 2;
      bus.lines.push([spineX, y, spineX, railY], [spineX, railY, lastX, railY]);
      line.forEach((b, i) => {
        const x = x0 + 16 + i * (VM_W + VM_GAP);
        bus.lines.push([x + VM_W / 2, railY, x + VM_W / 2, top]);
        vms.push({
          vmId: b.a.vm.id,
          name: b.a.vm.name,
          text: clip(b.a.vm.name, Math.floor((VM_W - 24) / NAME_CHAR)),
          network: n.name,
          ...(b.a.vm.state ? { state: b.a.vm.state } : {}),
          href: `#/vms/${b.a.vm.id}`,
          nics: b.nics,
          floatingIps: b.floating.map((ip) => `floating ${ip}`),
          groups: b.groups,
          moreGroups: b.moreGroups,
          title: `${b.a.vm.name}: ${b.a.vm.networks.map((x) => `${x.id} on ${x.network}`).join(', ')}`,
          x,
          y: top,
          w: VM_W,
          h,
        });
      });
      y = top + h;
    }
    if (bus.lines.length) buses.push(bus);
    y += ROW_GAP;
  }

  // each router's box level with the middle of its links, pushed down where it would overlap the last
  const boxes: RouterBox[] = [];
  const order = routers
    .map((r, i) => {
      const ys = routerYs[i]!;
      const mid = ys.length ? (Math.min(...ys) + Math.max(...ys)) / 2 : Number.POSITIVE_INFINITY;
      return { r, i, mid };
    })
    .sort((a, b) => a.mid - b.mid || a.i - b.i);
  let bottom = PAD - 12;
  for (const { r, i, mid } of order) {
    const by = Math.max(Number.isFinite(mid) ? mid - ROUTER_H / 2 : bottom + 12, bottom + 12, PAD);
    bottom = by + ROUTER_H;
    boxes[i] = {
      name: r.name,
      detail: r.uplink?.snat ? 'router · SNAT' : 'router',
      href: routerHref(r.name),
      x: PAD,
      y: by,
      w: ROUTER_W,
      h: ROUTER_H,
      wires: [],
    };
    // the box onto its lane, and the lane over all its links
    const ys = routerYs[i]!;
    if (ys.length) {
      const cy = by + ROUTER_H / 2;
      const lx = laneX(i);
      boxes[i]!.wires.push([PAD + ROUTER_W, cy, lx, cy], [lx, Math.min(cy, ...ys), lx, Math.max(cy, ...ys)]);
    }
  }
  const height = Math.max(y - ROW_GAP + PAD, bottom + PAD);
  return { width, height, networks, routers: boxes, links, vms, buses };
}

/** Whether a network's NICs have addresses OVN reads (GET /networks/{name} `ports`): not the NAT one. */
export function hasPorts(n: Pick<Network, 'name' | 'type'>): boolean {
  return n.type !== 'nat' && n.name !== DEFAULT_NETWORK;
}
