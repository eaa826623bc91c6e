import { describe, expect, it } from 'vitest';
import {
  defaultGateway,
  EMPTY_NETWORK_FORM,
  fixedIpBody,
  fixedIpLabel,
  fixedIpProblem,
  formatIpv4,
  gatewayProblem,
  hotplugHint,
  mtuProblem,
  NETWORK_NAME,
  NO_ADDRESS_YET,
  networkBody,
  networkChoices,
  networkHref,
  networkOptionLabel,
  networkProblems,
  networkReady,
  networkTypeLabel,
  nicAddresses,
  nicSignature,
  overlayNetwork,
  ovnNetworksOf,
  parseCidr,
  parseDns,
  parseIpv4,
  portAddress,
  vlanLabel,
  vlanProblem,
} from './networks';

describe('an IPv4 address', () => {
  it('is four decimals from 0 to 255', () => {
    expect(parseIpv4('10.0.0.1')).toBe(0x0a000001);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIpv4('0.0.0.0')).toBe(0);
    for (const bad of [
      '',
      '10.0.0',
      '10.0.0.256',
      '10.0.0.1.2',
      'a.b.c.d',
      '10.0.0.-1',
      ' 10.0.0.1',
      '1000.0.0.1',
    ])
      expect(parseIpv4(bad)).toBeUndefined();
  });
  it('reads back as it was', () => {
    for (const ip of ['10.77.0.1', '192.168.255.0', '0.0.0.0', '255.255.255.255'])
      expect(formatIpv4(parseIpv4(ip)!)).toBe(ip);
  });
});

describe('a subnet', () => {
  it('is an IPv4 CIDR with a prefix from /8 to /29', () => {
    expect(parseCidr('10.10.0.0/24')).toEqual({ base: 0x0a0a0000, prefix: 24, size: 256, problem: '' });
    expect(parseCidr(' 10.0.0.0/8 ').problem).toBe('');
    expect(parseCidr('192.168.1.8/29').problem).toBe('');
    expect(parseCidr('10.10.0.0').problem).toBe('an IPv4 CIDR such as 10.10.0.0/24, not "10.10.0.0"');
    expect(parseCidr('10.10.0.300/24').problem).toMatch(/^an IPv4 CIDR/);
    expect(parseCidr('fd00::/64').problem).toMatch(/^an IPv4 CIDR/);
    expect(parseCidr('10.0.0.0/7').problem).toBe('a prefix from /8 to /29');
    expect(parseCidr('10.0.0.0/30').problem).toBe('a prefix from /8 to /29');
  });
  it('has no host bits set: the API refuses it with the same words', () => {
    expect(parseCidr('10.77.0.1/24').problem).toBe('10.77.0.1/24 has host bits set (10.77.0.0/24?)');
    expect(parseCidr('10.77.3.0/16').problem).toBe('10.77.3.0/16 has host bits set (10.77.0.0/16?)');
    expect(parseCidr('192.168.1.4/29').problem).toBe('192.168.1.4/29 has host bits set (192.168.1.0/29?)');
  });
  it('gives its first address as the default gateway', () => {
    expect(defaultGateway('10.77.0.0/24')).toBe('10.77.0.1');
    expect(defaultGateway('10.77.0.1/24')).toBe('');
    expect(defaultGateway('')).toBe('');
  });
});

describe('a gateway', () => {
  it('is optional', () => expect(gatewayProblem('  ', '10.0.0.0/24')).toBe(''));
  it('is an IPv4 host address of the subnet', () => {
    expect(gatewayProblem('10.0.0.1', '10.0.0.0/24')).toBe('');
    expect(gatewayProblem('10.0.0.254', '10.0.0.0/24')).toBe('');
    expect(gatewayProblem('10.0.0.0', '10.0.0.0/24')).toBe('10.0.0.0 is not a host address of 10.0.0.0/24');
    expect(gatewayProblem('10.0.0.255', '10.0.0.0/24')).toBe(
      '10.0.0.255 is not a host address of 10.0.0.0/24',
    );
    expect(gatewayProblem('10.0.1.1', '10.0.0.0/24')).toBe('10.0.1.1 is not a host address of 10.0.0.0/24');
    expect(gatewayProblem('router', '10.0.0.0/24')).toBe('"router" is not an IPv4 address');
  });
  it('is not judged against a subnet that is wrong itself', () =>
    expect(gatewayProblem('10.0.9.1', '10.0.0.1/24')).toBe(''));
});

describe('DNS servers as typed', () => {
  it('are split on commas and spaces, in order, each once', () => {
    expect(parseDns('')).toEqual({ dns: [], problem: '' });
    expect(parseDns(' , ')).toEqual({ dns: [], problem: '' });
    expect(parseDns('10.0.0.53, 9.9.9.9')).toEqual({ dns: ['10.0.0.53', '9.9.9.9'], problem: '' });
    expect(parseDns('9.9.9.9 1.1.1.1,\n9.9.9.9')).toEqual({ dns: ['9.9.9.9', '1.1.1.1'], problem: '' });
  });
  it('say which are not addresses', () => {
    expect(parseDns('9.9.9.9, dns.example').problem).toBe('"dns.example" is not an IPv4 address');
    expect(parseDns('a b 1.1.1.1').problem).toBe('"a", "b" are not IPv4 addresses');
  });
  it('are at most 4', () => {
    expect(parseDns('1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4').problem).toBe('');
    expect(parseDns('1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5').problem).toBe('at most 4 servers (5 given)');
  });
});

describe('an MTU', () => {
  it('is optional, else a whole number from 576 to 8942', () => {
    expect(mtuProblem('')).toBe('');
    expect(mtuProblem('1442')).toBe('');
    expect(mtuProblem('576')).toBe('');
    expect(mtuProblem('8942')).toBe('');
    for (const bad of ['575', '8943', '1400.5', '-1500', 'jumbo'])
      expect(mtuProblem(bad)).toBe('a whole number from 576 to 8942');
  });
});

describe('the Add network form', () => {
  const good = { name: 'web', subnet: '10.77.0.0/24', gateway: '', dns: '', mtu: '' };
  it('takes the API’s network names', () => {
    for (const ok of ['web', 'a', '0', 'web-1', 'x'.repeat(31)]) expect(NETWORK_NAME.test(ok)).toBe(true);
    for (const bad of ['', 'Web', '-web', 'web_1', 'web.1', 'x'.repeat(32)])
      expect(NETWORK_NAME.test(bad)).toBe(false);
  });
  it('says what is wrong, field by field, leaving empty fields alone', () => {
    expect(networkProblems(EMPTY_NETWORK_FORM)).toEqual({});
    expect(networkProblems(good)).toEqual({});
    expect(
      networkProblems({ name: 'Web', subnet: '10.77.0.1/24', gateway: 'x', dns: '8.8.8', mtu: '100' }),
    ).toEqual({
      name: 'Name: lowercase letters, digits and -, starting with a letter or digit; up to 31',
      subnet: 'Subnet: 10.77.0.1/24 has host bits set (10.77.0.0/24?)',
      gateway: 'Gateway: "x" is not an IPv4 address',
      dns: 'DNS servers: "8.8.8" is not an IPv4 address',
      mtu: 'MTU: a whole number from 576 to 8942',
    });
    expect(networkProblems({ ...good, gateway: '10.77.1.1' })).toEqual({
      gateway: 'Gateway: 10.77.1.1 is not a host address of 10.77.0.0/24',
    });
  });
  it('is ready with a name and a right subnet, nothing wrong', () => {
    expect(networkReady(good)).toBe(true);
    expect(networkReady({ ...good, name: ' ' })).toBe(false);
    expect(networkReady({ ...good, subnet: '' })).toBe(false);
    expect(networkReady({ ...good, subnet: '10.77.0.1/24' })).toBe(false);
    expect(networkReady({ ...good, mtu: '99999' })).toBe(false);
  });
  it('sends the optional fields only when given', () => {
    expect(networkBody(good)).toEqual({ name: 'web', type: 'overlay', subnet: '10.77.0.0/24' });
    expect(
      networkBody({
        name: ' web ',
        subnet: ' 10.77.0.0/24 ',
        gateway: ' 10.77.0.254 ',
        dns: '10.77.0.53, 9.9.9.9 10.77.0.53',
        mtu: ' 1400 ',
      }),
    ).toEqual({
      name: 'web',
      type: 'overlay',
      subnet: '10.77.0.0/24',
      gateway: '10.77.0.254',
      dns: ['10.77.0.53', '9.9.9.9'],
      mtu: 1400,
    });
  });
});

describe('a network picker', () => {
  const list = [
    { name: 'web', type: 'overlay' as const, subnet: '10.77.0.0/24' },
    { name: 'default', type: 'nat' as const },
    { name: 'db', type: 'overlay' as const, subnet: '10.78.0.0/24' },
  ];
  it('names each network with its type and subnet', () => {
    expect(networkTypeLabel('nat')).toBe('NAT');
    expect(networkTypeLabel('overlay')).toBe('overlay');
    expect(networkTypeLabel('vlan')).toBe('vlan');
    expect(networkOptionLabel({ name: 'default', type: 'nat' })).toBe('default (NAT)');
    expect(networkOptionLabel(list[0]!)).toBe('web (overlay, 10.77.0.0/24)');
  });
  it('offers every network, default first, the rest by name', () => {
    expect(networkChoices(list, 'default')).toEqual([
      { value: 'default', label: 'default (NAT)' },
      { value: 'db', label: 'db (overlay, 10.78.0.0/24)' },
      { value: 'web', label: 'web (overlay, 10.77.0.0/24)' },
    ]);
  });
  it('offers default while the list is not there, and always the current choice', () => {
    expect(networkChoices(undefined)).toEqual([{ value: 'default', label: 'default (NAT)' }]);
    expect(networkChoices(undefined, 'web')).toEqual([
      { value: 'default', label: 'default (NAT)' },
      { value: 'web', label: 'web' },
    ]);
    expect(networkChoices(list, 'gone').at(-1)).toEqual({ value: 'gone', label: 'gone' });
    expect(networkChoices(list, 'web')).toHaveLength(3);
  });
  it('warns of a hot-plug onto an overlay network', () => {
    expect(hotplugHint('web', list)).toMatch(/Plugged at once/);
    expect(hotplugHint('default', list)).toBe('');
    expect(hotplugHint('web', undefined)).toBe('');
  });
});

describe('a fixed address for a NIC', () => {
  const ovl = { name: 'ovl', type: 'overlay' as const, subnet: '10.77.0.0/24', gateway: '10.77.0.1' };
  const list = [{ name: 'default', type: 'nat' as const }, ovl];
  it('is asked only on an overlay network', () => {
    expect(overlayNetwork('ovl', list)).toBe(ovl);
    expect(overlayNetwork(' ovl ', list)).toBe(ovl);
    expect(overlayNetwork('default', list)).toBeUndefined();
    expect(overlayNetwork('gone', list)).toBeUndefined();
    expect(overlayNetwork('ovl', undefined)).toBeUndefined();
  });
  it('is optional: OVN picks one', () => {
    expect(fixedIpProblem('', ovl)).toBe('');
    expect(fixedIpProblem('  ', ovl)).toBe('');
  });
  it('is a host address of the subnet, not the gateway', () => {
    expect(fixedIpProblem('10.77.0.50', ovl)).toBe('');
    expect(fixedIpProblem(' 10.77.0.2 ', ovl)).toBe('');
    expect(fixedIpProblem('10.77.0.254', ovl)).toBe('');
    expect(fixedIpProblem('10.77.0.5O', ovl)).toBe('Fixed address: "10.77.0.5O" is not an IPv4 address');
    expect(fixedIpProblem('10.77.0.256', ovl)).toBe('Fixed address: "10.77.0.256" is not an IPv4 address');
    expect(fixedIpProblem('10.78.0.9', ovl)).toBe(
      'Fixed address: 10.78.0.9 is not a host address of network "ovl" (10.77.0.0/24)',
    );
    expect(fixedIpProblem('10.77.0.0', ovl)).toMatch(/10\.77\.0\.0 is not a host address/);
    expect(fixedIpProblem('10.77.0.255', ovl)).toMatch(/10\.77\.0\.255 is not a host address/);
    expect(fixedIpProblem('10.77.0.1', ovl)).toBe('Fixed address: 10.77.0.1 is the gateway of network "ovl"');
    expect(fixedIpProblem('10.77.0.9', { ...ovl, gateway: '10.77.0.9' })).toMatch(/is the gateway/);
    expect(fixedIpProblem('10.77.0.1', { ...ovl, gateway: '10.77.0.9' })).toBe('');
  });
  it('takes the first address as the gateway of a network that names none', () =>
    expect(fixedIpProblem('10.77.0.1', { name: 'ovl', subnet: '10.77.0.0/24' })).toMatch(/is the gateway/));
  it('is judged only as an address while the network is not known', () => {
    expect(fixedIpProblem('10.99.0.1', undefined)).toBe('');
    expect(fixedIpProblem('x', undefined)).toBe('Fixed address: "x" is not an IPv4 address');
  });
  it('is sent as ip, only on an overlay network and when given', () => {
    expect(fixedIpBody(' 10.77.0.50 ', ovl)).toEqual({ ip: '10.77.0.50' });
    expect(fixedIpBody('', ovl)).toEqual({});
    expect(fixedIpBody('10.77.0.50', { type: 'nat' })).toEqual({});
    expect(fixedIpBody('10.77.0.50', undefined)).toEqual({});
  });
  it('shows on the NIC row when the record has one', () => {
    expect(fixedIpLabel({ ip: '10.10.0.50' })).toBe('10.10.0.50 (fixed)');
    expect(fixedIpLabel({})).toBe('');
  });
});

describe('the Networks page', () => {
  it('reads again when a VM gains, loses or moves a NIC, not when anything else changes', () => {
    const a = { id: 'a', networks: [{ id: 'net0', network: 'default' }] };
    const b = { id: 'b', networks: [{ id: 'net0', network: 'web' }] };
    const sig = nicSignature([a, b]);
    expect(nicSignature([b, a])).toBe(sig);
    expect(nicSignature([{ ...a, state: 'running' } as typeof a, b])).toBe(sig);
    expect(nicSignature([a])).not.toBe(sig);
    expect(nicSignature([a, { ...b, networks: [{ id: 'net0', network: 'db' }] }])).not.toBe(sig);
    expect(nicSignature([a, { ...b, networks: [...b.networks, { id: 'net1', network: 'web' }] }])).not.toBe(
      sig,
    );
  });
  it('shows an address only once OVN gave one', () => {
    expect(portAddress({ ip: '10.77.0.2' })).toBe('10.77.0.2');
    expect(portAddress({})).toBe('—');
  });
  it('links to one network', () => {
    expect(networkHref()).toBe('#/networks');
    expect(networkHref('web')).toBe('#/networks/web');
  });
});

describe('a provider network in the Add network form', () => {
  const provider = {
    ...EMPTY_NETWORK_FORM,
    name: 'ext',
    subnet: '203.0.113.0/24',
    type: 'provider' as const,
  };
  it('names its physical network (default "provider"), an optional VLAN and whether OVN answers DHCP', () => {
    expect(networkBody(provider)).toEqual({
      name: 'ext',
      type: 'provider',
      subnet: '203.0.113.0/24',
      physicalNetwork: 'provider',
      dhcp: false,
    });
    expect(networkBody({ ...provider, physicalNetwork: ' ', vlan: ' 40 ', dhcp: true })).toEqual({
      name: 'ext',
      type: 'provider',
      subnet: '203.0.113.0/24',
      physicalNetwork: 'provider',
      vlan: 40,
      dhcp: true,
    });
    // an overlay network sends none of them
    expect(networkBody({ ...provider, type: 'overlay', vlan: '40', dhcp: true })).toEqual({
      name: 'ext',
      type: 'overlay',
      subnet: '203.0.113.0/24',
    });
  });
  it('checks the VLAN, the physical network and a jumbo MTU', () => {
    for (const ok of ['', '1', '4094']) expect(vlanProblem(ok)).toBe('');
    for (const bad of ['0', '4095', '1.5', 'ten'])
      expect(vlanProblem(bad)).toBe('a whole number from 1 to 4094');
    expect(networkProblems({ ...provider, vlan: '5000', physicalNetwork: 'Phys_Net', mtu: '9000' })).toEqual({
      vlan: 'VLAN: a whole number from 1 to 4094',
      physicalNetwork: 'Physical network: lowercase letters, digits and -; up to 12',
    });
    expect(networkProblems({ ...provider, type: 'overlay', vlan: '5000', mtu: '9000' })).toEqual({
      mtu: 'MTU: a whole number from 576 to 8942',
    });
    expect(networkReady({ ...provider, vlan: '40' })).toBe(true);
  });
  it('shows its VLAN in the table', () => {
    expect(vlanLabel({ type: 'provider', vlan: 40 })).toBe('40');
    expect(vlanLabel({ type: 'provider' })).toBe('untagged');
    expect(vlanLabel({ type: 'overlay' })).toBe('');
    expect(networkTypeLabel('provider')).toBe('provider');
  });
});

describe("a VM's NIC addresses on its page", () => {
  it("are OVN's address of each NIC on an OVN network, matched by VM and NIC, or (none yet); NAT NICs none", () => {
    const web = {
      type: 'overlay' as const,
      ports: [
        { vm: 'a', vmId: 'v1', nic: 'net0', mac: 'm0', ip: '10.81.0.5' },
        { vm: 'b', vmId: 'v2', nic: 'net0', mac: 'm1', ip: '10.81.0.6' },
        { vm: 'a', vmId: 'v1', nic: 'net2', mac: 'm2' },
      ],
    };
    const ext = {
      type: 'provider' as const,
      ports: [{ vm: 'a', vmId: 'v1', nic: 'net1', mac: 'm3', ip: '203.0.113.7' }],
    };
    expect(nicAddresses('v1', [web, ext, { type: 'nat' }])).toEqual({
      net0: '10.81.0.5',
      net1: '203.0.113.7',
      net2: NO_ADDRESS_YET,
    });
    expect(NO_ADDRESS_YET).toBe('(none yet)');
    expect(nicAddresses('v3', [web])).toEqual({});
  });

  it('are read from each network of its NICs but the NAT one, once each', () => {
    expect(
      ovnNetworksOf([{ network: 'default' }, { network: 'web' }, { network: 'db' }, { network: 'web' }]),
    ).toEqual(['db', 'web']);
    expect(ovnNetworksOf([{ network: 'default' }])).toEqual([]);
  });
});
