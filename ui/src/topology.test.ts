import { describe, expect, it } from 'vitest';
import type { Network } from './networks';
import type { Router } from './routers';
import {
  BAR_H,
  clip,
  layoutTopology,
  networkDetail,
  networkOrder,
  PAD,
  ROUTER_W,
  type TopologyInput,
  VM_W,
} from './topology';

const nat: Network = { name: 'default', type: 'nat', nics: 0 };
const web: Network = { name: 'web', type: 'overlay', subnet: '10.81.0.0/24', gateway: '10.81.0.1', nics: 0 };
const db: Network = { name: 'db', type: 'overlay', subnet: '10.82.0.0/24', gateway: '10.82.0.1', nics: 0 };
const ext: Network = {
  name: 'ext',
  type: 'provider',
  subnet: '203.0.113.0/24',
  gateway: '203.0.113.1',
  vlan: 40,
  nics: 0,
};
const edge: Router = {
  name: 'edge',
  networks: ['web', 'db'],
  uplink: { network: 'ext', ip: '203.0.113.250', snat: true },
  routes: [],
  floatingIps: [{ ip: '203.0.113.9', vmId: 'v1', vm: 'web1', nic: 'net0' }],
  createdAt: '2025-01-01T00:00:00Z',
};

const input = (x: Partial<TopologyInput>): TopologyInput => ({
  networks: [],
  ports: {},
  routers: [],
  groups: [],
  vms: [],
  width: 1200,
  ...x,
});

/** Whether two boxes share a pixel. */
const overlap = (a: { x: number; y: number; w: number; h: number }, b: typeof a) =>
  a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

describe('a network in the topology', () => {
  it('says its type, subnet and VLAN', () => {
    expect(networkDetail(nat)).toBe('NAT');
    expect(networkDetail(web)).toBe('overlay · 10.81.0.0/24');
    expect(networkDetail(ext)).toBe('provider · 203.0.113.0/24 · VLAN 40');
    expect(networkDetail({ ...ext, vlan: undefined })).toBe('provider · 203.0.113.0/24 · untagged');
  });

  it('is a row: uplinks first, then each router inside networks, the other OVN ones, NAT last', () => {
    const lone: Network = { ...web, name: 'aaa-lone' };
    const order = networkOrder([nat, web, lone, ext, db], [edge]).map((n) => n.name);
    expect(order).toEqual(['ext', 'db', 'web', 'aaa-lone', 'default']);
  });

  it('clips a long name with an ellipsis', () => {
    expect(clip('web1', 10)).toBe('web1');
    expect(clip('a-very-long-vm-name', 8)).toBe('a-very-…');
  });
});

describe('the topology layout', () => {
  it('without routers: the networks as rows from the left edge, their VMs under them, no links', () => {
    const l = layoutTopology(
      input({
        networks: [nat, web],
        vms: [
          { id: 'v1', name: 'web1', state: 'running', networks: [{ id: 'net0', network: 'web' }] },
          { id: 'v2', name: 'plain', state: 'stopped', networks: [{ id: 'net0', network: 'default' }] },
        ],
        ports: { web: [{ vm: 'web1', vmId: 'v1', nic: 'net0', mac: '52:54:00:00:00:01', ip: '10.81.0.5' }] },
      }),
    );
    expect(l.routers).toEqual([]);
    expect(l.links).toEqual([]);
    expect(l.networks.map((n) => [n.name, n.x, n.href])).toEqual([
      ['web', PAD, '#/networks/web'],
      ['default', PAD, '#/networks/default'],
    ]);
    expect(l.networks[0]!.w).toBe(1200 - 2 * PAD);
    const [w1, plain] = l.vms;
    expect(w1).toMatchObject({ name: 'web1', network: 'web', nics: ['net0 10.81.0.5'], href: '#/vms/v1' });
    // a NAT NIC has no address the API knows
    expect(plain).toMatchObject({ name: 'plain', network: 'default', nics: ['net0'], state: 'stopped' });
    expect(w1!.y).toBeGreaterThan(l.networks[0]!.y + BAR_H);
    expect(l.networks[1]!.y).toBeGreaterThan(w1!.y + w1!.h);
    expect(plain!.y).toBeGreaterThan(l.networks[1]!.y + BAR_H);
    expect(l.height).toBeGreaterThanOrEqual(plain!.y + plain!.h + PAD);
    // each VM hangs from its network's bus
    expect(l.buses.map((b) => b.network)).toEqual(['web', 'default']);
  });

  it('one router with two networks and an uplink: links from its lane to each bar, labelled with its addresses', () => {
    const l = layoutTopology(input({ networks: [nat, web, db, ext], routers: [edge] }));
    expect(l.networks.map((n) => n.name)).toEqual(['ext', 'db', 'web', 'default']);
    const [r] = l.routers;
    expect(r).toMatchObject({ name: 'edge', detail: 'router · SNAT', href: '#/routers/edge', x: PAD });
    expect(
      l.links
        .map((k) => ({ network: k.network, kind: k.kind, label: k.label }))
        .sort((a, b) => a.network.localeCompare(b.network)),
    ).toEqual([
      { network: 'db', kind: 'inside', label: '10.82.0.1' },
      { network: 'ext', kind: 'uplink', label: '203.0.113.250' },
      { network: 'web', kind: 'inside', label: '10.81.0.1' },
    ]);
    // every link leaves the router's lane (right of its box, left of the bars) and ends on its bar's top
    const lane = l.links[0]!.points[0]![0];
    for (const k of l.links) {
      const bar = l.networks.find((n) => n.name === k.network)!;
      expect(k.points[0]![0]).toBe(lane);
      expect(lane).toBeGreaterThan(PAD + ROUTER_W);
      expect(lane).toBeLessThan(bar.x);
      const end = k.points.at(-1)!;
      expect(end[1]).toBe(bar.y);
      expect(end[0]).toBeGreaterThan(bar.x);
      expect(k.labelX).toBeGreaterThan(end[0]);
    }
    // the box sits between its top and bottom links, joined to its lane, which spans them all
    const ys = l.links.map((k) => k.points[0]![1]);
    expect(r!.y + r!.h / 2).toBeGreaterThanOrEqual(Math.min(...ys));
    expect(r!.y + r!.h / 2).toBeLessThanOrEqual(Math.max(...ys));
    expect(r!.wires).toContainEqual([PAD + ROUTER_W, r!.y + r!.h / 2, lane, r!.y + r!.h / 2]);
    expect(r!.wires).toContainEqual([lane, Math.min(...ys), lane, Math.max(...ys)]);
    // no network bar under the router's box
    for (const n of l.networks) expect(overlap(r!, n)).toBe(false);
    // the NAT network has no router
    expect(l.links.some((k) => k.network === 'default')).toBe(false);
  });

  it('a VM on two networks: a box under each with its NIC there, its floating IP and its groups', () => {
    const l = layoutTopology(
      input({
        networks: [web, db, ext],
        routers: [edge],
        vms: [
          {
            id: 'v1',
            name: 'web1',
            state: 'running',
            networks: [
              { id: 'net0', network: 'web' },
              { id: 'net1', network: 'db', ip: '10.82.0.50' },
            ],
          },
        ],
        ports: {
          web: [{ vm: 'web1', vmId: 'v1', nic: 'net0', mac: 'm0', ip: '10.81.0.5' }],
          db: [{ vm: 'web1', vmId: 'v1', nic: 'net1', mac: 'm1' }],
        },
        groups: [
          { name: 'ssh', members: [{ vm: 'web1', vmId: 'v1', nic: 'net0', network: 'web' }] },
          { name: 'http', members: [{ vm: 'web1', vmId: 'v1', nic: 'net0', network: 'web' }] },
          { name: 'pg', members: [{ vm: 'web1', vmId: 'v1', nic: 'net1', network: 'db' }] },
        ],
      }),
    );
    const boxes = l.vms.filter((v) => v.vmId === 'v1');
    expect(boxes.map((b) => b.network).sort()).toEqual(['db', 'web']);
    const onWeb = boxes.find((b) => b.network === 'web')!;
    const onDb = boxes.find((b) => b.network === 'db')!;
    expect(onWeb.nics).toEqual(['net0 10.81.0.5']);
    expect(onWeb.floatingIps).toEqual(['floating 203.0.113.9']);
    expect(onWeb.groups.map((g) => g.name)).toEqual(['http', 'ssh']);
    // OVN has none for net1 yet: its fixed address
    expect(onDb.nics).toEqual(['net1 10.82.0.50']);
    expect(onDb.floatingIps).toEqual([]);
    expect(onDb.groups.map((g) => g.name)).toEqual(['pg']);
    expect(onWeb.title).toBe('web1: net0 on web, net1 on db');
    // each under its own network's bar, before the next
    for (const b of boxes) {
      const i = l.networks.findIndex((n) => n.name === b.network);
      expect(b.y).toBeGreaterThan(l.networks[i]!.y + BAR_H);
      if (l.networks[i + 1]) expect(b.y + b.h).toBeLessThan(l.networks[i + 1]!.y);
      expect(b.x).toBeGreaterThan(l.networks[i]!.x);
    }
    // an OVN NIC without an address either way: a dash
    const bare = layoutTopology(
      input({ networks: [web], vms: [{ id: 'v2', name: 'x', networks: [{ id: 'net0', network: 'web' }] }] }),
    );
    expect(bare.vms[0]!.nics).toEqual(['net0 —']);
  });

  it('stays readable at 10 networks and 50 VMs: VMs wrap inside the width, no two boxes overlap', () => {
    const nets: Network[] = Array.from({ length: 10 }, (_, i) => ({
      name: `n${i}`,
      type: 'overlay',
      subnet: `10.${i}.0.0/24`,
      gateway: `10.${i}.0.1`,
      nics: 0,
    }));
    const routers: Router[] = [
      { ...edge, name: 'r1', networks: ['n0', 'n1', 'n2'], uplink: undefined, floatingIps: [] },
      { ...edge, name: 'r2', networks: ['n3', 'n4'], uplink: undefined, floatingIps: [] },
    ];
    const vms = Array.from({ length: 50 }, (_, i) => ({
      id: `v${i}`,
      name: `vm-${String(i).padStart(2, '0')}-with-a-rather-long-name`,
      networks: [{ id: 'net0', network: `n${i % 10}` }],
    }));
    const l = layoutTopology(input({ networks: nets, routers, vms, width: 1100 }));
    expect(l.networks).toHaveLength(10);
    expect(l.vms).toHaveLength(50);
    const all = [...l.networks, ...l.vms, ...l.routers];
    for (const b of all) expect(b.x + b.w).toBeLessThanOrEqual(l.width - PAD);
    for (const b of all) expect(b.y + b.h).toBeLessThanOrEqual(l.height);
    for (let i = 0; i < all.length; i++)
      for (let j = i + 1; j < all.length; j++) expect(overlap(all[i]!, all[j]!)).toBe(false);
    expect(l.vms[0]!.text.length).toBeLessThan(l.vms[0]!.name.length);
    expect(l.vms[0]!.text.endsWith('…')).toBe(true);
    // five VMs on n0: in lines of at most what fits in the width
    const perLine = Math.floor((1100 - PAD - (l.networks[0]!.x + 16) + 12) / (VM_W + 12));
    const onN0 = l.vms.filter((v) => v.network === 'n0');
    expect(new Set(onN0.map((v) => v.y)).size).toBe(Math.ceil(onN0.length / perLine));
    // two routers: two lanes, the boxes apart
    expect(new Set(l.links.map((k) => k.points[0]![0])).size).toBe(2);
  });
});
