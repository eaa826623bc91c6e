import { describe, expect, it } from 'vitest';
import type { Network } from './networks';
import {
  cidrsOverlap,
  EMPTY_ROUTER_FORM,
  floatingIpLabel,
  floatingIpProblem,
  floatingIpTargets,
  insideChoices,
  type Router,
  routeProblems,
  routerBody,
  routerChange,
  routerForm,
  routerHref,
  routerProblems,
  routerReady,
  uplinkChoices,
  uplinkLabel,
} from './routers';

const nets: Network[] = [
  { name: 'default', type: 'nat', nics: 0 },
  { name: 'web', type: 'overlay', subnet: '10.77.0.0/24', gateway: '10.77.0.1', nics: 0 },
  { name: 'db', type: 'overlay', subnet: '10.78.0.0/24', gateway: '10.78.0.1', nics: 0 },
  { name: 'web2', type: 'overlay', subnet: '10.77.0.0/16', gateway: '10.77.0.1', nics: 0 },
  { name: 'ext', type: 'provider', subnet: '203.0.113.0/24', gateway: '203.0.113.1', vlan: 40, nics: 0 },
];
const edge: Router = {
  name: 'edge',
  networks: ['web'],
  uplink: { network: 'ext', ip: '203.0.113.254', snat: true },
  routes: [{ destination: '10.99.0.0/16', nexthop: '10.77.0.254' }],
  floatingIps: [{ ip: '203.0.113.253', vmId: 'v1', vm: 'web1', nic: 'net0', internalIp: '10.77.0.5' }],
  createdAt: '2025-01-01T00:00:00Z',
};

describe('static routes as typed', () => {
  it('are a destination CIDR (/0 to /32) and a next-hop address, one per destination; blank rows ignored', () => {
    expect(
      routeProblems([
        { destination: '10.99.0.0/16', nexthop: '10.77.0.254' },
        { destination: '0.0.0.0/0', nexthop: '10.77.0.253' },
        { destination: ' ', nexthop: '' },
        { destination: '10.99.0.1/16', nexthop: '10.77.0.254' },
        { destination: '10.98.0.0/16', nexthop: 'gw' },
        { destination: '10.97.0.0/16', nexthop: '' },
        { destination: '10.99.0.0/16', nexthop: '10.77.0.9' },
      ]),
    ).toEqual([
      '',
      '',
      '',
      'Destination: 10.99.0.1/16 has host bits set (10.99.0.0/16?)',
      'Next hop: "gw" is not an IPv4 address',
      'Next hop: an IPv4 address',
      'Destination 10.99.0.0/16: one route per destination',
    ]);
  });
});

describe('the Add router form', () => {
  it('needs a name only; refuses a bad name and overlapping networks with the API’s words', () => {
    expect(routerReady(EMPTY_ROUTER_FORM, nets)).toBe(false);
    expect(routerReady({ ...EMPTY_ROUTER_FORM, name: 'edge' }, nets)).toBe(true);
    expect(routerProblems({ ...EMPTY_ROUTER_FORM, name: 'Edge', networks: ['web', 'web2'] }, nets)).toEqual({
      name: 'Name: lowercase letters, digits and -, starting with a letter or digit; up to 31',
      networks:
        'Networks "web" (10.77.0.0/24) and "web2" (10.77.0.0/16) overlap: one router cannot route between them',
    });
    expect(cidrsOverlap('10.77.0.0/24', '10.78.0.0/24')).toBe(false);
    expect(cidrsOverlap('10.77.0.0/24', 'x')).toBe(false);
  });
  it('checks an uplink address against the uplink network', () => {
    const f = { ...EMPTY_ROUTER_FORM, name: 'edge', uplink: 'ext' };
    expect(routerProblems({ ...f, uplinkIp: '203.0.114.5' }, nets).uplinkIp).toBe(
      'Uplink address: 203.0.114.5 is not a host address of 203.0.113.0/24',
    );
    expect(routerProblems({ ...f, uplinkIp: '203.0.113.1' }, nets).uplinkIp).toBe(
      'Uplink address: 203.0.113.1 is the gateway of network "ext"',
    );
    expect(routerProblems({ ...f, uplinkIp: '203.0.113.9' }, nets)).toEqual({});
    expect(floatingIpProblem('203.0.113.255', nets[4])).toBe(
      'Address: 203.0.113.255 is not a host address of 203.0.113.0/24',
    );
    expect(floatingIpProblem('', nets[4])).toBe('');
  });
  it('sends only what is given', () => {
    expect(routerBody({ ...EMPTY_ROUTER_FORM, name: ' edge ' })).toEqual({ name: 'edge' });
    expect(
      routerBody({
        name: 'edge',
        networks: ['web', 'db'],
        uplink: 'ext',
        uplinkIp: ' ',
        snat: false,
        routes: [
          { destination: ' 10.99.0.0/16 ', nexthop: '10.77.0.254' },
          { destination: '', nexthop: '' },
        ],
      }),
    ).toEqual({
      name: 'edge',
      networks: ['web', 'db'],
      uplink: { network: 'ext', snat: false },
      routes: [{ destination: '10.99.0.0/16', nexthop: '10.77.0.254' }],
    });
  });
});

describe("a router's Edit form", () => {
  it('starts as the router is and sends nothing unchanged', () => {
    expect(routerChange(edge, routerForm(edge))).toEqual({});
    expect(routerChange(edge, { ...routerForm(edge), networks: ['db', 'web'] })).toEqual({
      networks: ['db', 'web'],
    });
  });
  it('sends the lists that changed whole, the uplink when it changed, null to remove it', () => {
    const f = routerForm(edge);
    expect(routerChange(edge, { ...f, routes: [] })).toEqual({ routes: [] });
    expect(routerChange(edge, { ...f, snat: false })).toEqual({
      uplink: { network: 'ext', ip: '203.0.113.254', snat: false },
    });
    expect(routerChange(edge, { ...f, uplink: '' })).toEqual({ uplink: null });
    expect(routerChange({ ...edge, uplink: undefined }, { ...f, uplinkIp: '' })).toEqual({
      uplink: { network: 'ext', snat: true },
    });
  });
});

describe('the pickers', () => {
  it('offer overlay networks inside (one on another router named) and provider networks as uplink', () => {
    const other: Router = { ...edge, name: 'core', networks: ['db'], uplink: undefined, floatingIps: [] };
    expect(insideChoices(nets, [edge, other], 'edge')).toEqual([
      { name: 'db', subnet: '10.78.0.0/24', router: 'core' },
      { name: 'web', subnet: '10.77.0.0/24' },
      { name: 'web2', subnet: '10.77.0.0/16' },
    ]);
    expect(insideChoices(undefined, undefined)).toEqual([]);
    expect(uplinkChoices(nets).map((n) => n.name)).toEqual(['ext']);
  });
  it('offer as floating IP targets the NICs on the router’s networks without one', () => {
    const vms = [
      {
        id: 'v1',
        name: 'web1',
        networks: [
          { id: 'net0', network: 'web' },
          { id: 'net1', network: 'web' },
        ],
      },
      { id: 'v2', name: 'db1', networks: [{ id: 'net0', network: 'db' }] },
      { id: 'v3', name: 'app', networks: [{ id: 'net0', network: 'web', ip: '10.77.0.50' }] },
    ];
    expect(floatingIpTargets(vms, edge)).toEqual([
      { vmId: 'v3', vm: 'app', nics: [{ id: 'net0', network: 'web', ip: '10.77.0.50' }] },
      { vmId: 'v1', vm: 'web1', nics: [{ id: 'net1', network: 'web' }] },
    ]);
  });
  it('say a router’s parts in words', () => {
    expect(uplinkLabel(edge.uplink)).toBe('ext 203.0.113.254, SNAT');
    expect(uplinkLabel(undefined)).toBe('');
    expect(floatingIpLabel(edge.floatingIps[0]!)).toBe('203.0.113.253 → web1 net0 (10.77.0.5)');
    expect(routerHref()).toBe('#/routers');
    expect(routerHref('edge')).toBe('#/routers/edge');
  });
});
