import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ApplianceConfig, defaultConfig, parseConfig } from '../src/appliance/config';
import {
  defaultGatewayFromProcRoute,
  ipv4InSubnet,
  ipv4ToInt,
  managementInterface,
  parseIpJson,
  parseIpv4Cidr,
  planNetwork,
  readResolvConf,
  resolvConf,
  runPlan,
  udhcpcScript,
} from '../src/appliance/network';
import { dryRunRunner } from '../src/appliance/system';

const cfg = (network: Partial<ApplianceConfig['network']>): ApplianceConfig =>
  parseConfig({ ...defaultConfig(), hostname: 'esx1', network: { ...defaultConfig().network, ...network } });

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'nf-net-'));
  dirs.push(d);
  return d;
};

describe('IPv4 arithmetic', () => {
  it('parses addresses and subnets', () => {
    expect(ipv4ToInt('192.168.1.10')).toBe(0xc0a8010a);
    expect(ipv4ToInt('1.2.3')).toBeUndefined();
    const c = parseIpv4Cidr('10.1.2.3/16')!;
    expect(c.prefix).toBe(16);
    expect(c.network).toBe(ipv4ToInt('10.1.0.0'));
    expect(c.broadcast).toBe(ipv4ToInt('10.1.255.255'));
    expect(parseIpv4Cidr('10.1.2.3/32')!.broadcast).toBe(ipv4ToInt('10.1.2.3'));
    expect(parseIpv4Cidr('10.1.2.3')).toBeUndefined();
    expect(parseIpv4Cidr('10.1.2.3/33')).toBeUndefined();
    expect(ipv4InSubnet('192.168.1.1', '192.168.1.10/24')).toBe(true);
    expect(ipv4InSubnet('192.168.2.1', '192.168.1.10/24')).toBe(false);
    expect(ipv4InSubnet('10.0.0.1', '10.200.0.1/8')).toBe(true);
  });
});

describe('planNetwork: argv arrays, never shell strings', () => {
  it('static: links up, address, default route, resolv.conf', () => {
    const steps = planNetwork(
      cfg({
        mode: 'static',
        address: '192.0.2.10/24',
        gateway: '192.0.2.1',
        dns: ['192.0.2.53', '192.0.2.54'],
      }),
      { root: '/r' },
    );
    expect(steps).toEqual([
      ['@kill-pidfile', '/r/run/neuroflow/udhcpc.pid'],
      ['ip', 'link', 'set', 'dev', 'lo', 'up'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'up'],
      ['ip', '-4', 'addr', 'flush', 'dev', 'eth0'],
      ['ip', 'addr', 'add', '192.0.2.10/24', 'dev', 'eth0'],
      ['ip', 'route', 'replace', 'default', 'via', '192.0.2.1', 'dev', 'eth0'],
      ['@write', '/r/etc/resolv.conf', resolvConf(['192.0.2.53', '192.0.2.54']), '0644'],
    ]);
    expect(resolvConf(['192.0.2.53'])).toMatch(/^# written by NeuroFlow.*\nnameserver 192\.0\.2\.53\n$/);
    for (const s of steps) for (const a of s) expect(typeof a).toBe('string');
  });

  it('DHCP: udhcpc with our script (hostname sent), configured DNS servers win', () => {
    const steps = planNetwork(cfg({ mode: 'dhcp', dns: ['9.9.9.9'] }), { root: '/r' });
    expect(steps.slice(0, 4)).toEqual([
      ['@kill-pidfile', '/r/run/neuroflow/udhcpc.pid'],
      ['ip', 'link', 'set', 'dev', 'lo', 'up'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'up'],
      ['ip', '-4', 'addr', 'flush', 'dev', 'eth0'],
    ]);
    const script = steps[4]!;
    expect(script.slice(0, 2)).toEqual(['@write', '/r/run/neuroflow/udhcpc.script']);
    expect(script[3]).toBe('0755');
    expect(script[2]).toContain('servers="9.9.9.9"');
    expect(script[2]).toContain('/r/etc/resolv.conf');
    expect(steps[5]).toEqual([
      'udhcpc',
      '-i',
      'eth0',
      '-s',
      '/r/run/neuroflow/udhcpc.script',
      '-p',
      '/r/run/neuroflow/udhcpc.pid',
      '-x',
      'hostname:esx1',
      '-t',
      '5',
      '-T',
      '3',
      '-b',
    ]);
    expect(steps).toHaveLength(6);
    // Without configured servers the lease's are used.
    expect(udhcpcScript([])).toContain('servers="$dns"');
  });

  it('VLAN: an 802.1Q link on the interface carries the address; stale VLAN links go', () => {
    const c = cfg({
      mode: 'static',
      address: '10.5.0.2/24',
      gateway: '10.5.0.1',
      dns: ['10.5.0.1'],
      vlan: 5,
    });
    expect(managementInterface(c.network)).toBe('eth0.5');
    const steps = planNetwork(c, { root: '/', existingLinks: ['lo', 'eth0', 'eth0.7', 'eth1.7'] });
    expect(steps).toEqual([
      ['@kill-pidfile', '/run/neuroflow/udhcpc.pid'],
      ['ip', 'link', 'set', 'dev', 'lo', 'up'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'up'],
      ['ip', 'link', 'delete', 'dev', 'eth0.7'],
      ['ip', '-4', 'addr', 'flush', 'dev', 'eth0'],
      ['ip', 'link', 'add', 'link', 'eth0', 'name', 'eth0.5', 'type', 'vlan', 'id', '5'],
      ['ip', 'link', 'set', 'dev', 'eth0.5', 'up'],
      ['ip', '-4', 'addr', 'flush', 'dev', 'eth0.5'],
      ['ip', 'addr', 'add', '10.5.0.2/24', 'dev', 'eth0.5'],
      ['ip', 'route', 'replace', 'default', 'via', '10.5.0.1', 'dev', 'eth0.5'],
      ['@write', '/etc/resolv.conf', resolvConf(['10.5.0.1']), '0644'],
    ]);
    // The VLAN link exists already: not added again. DHCP on it.
    const again = planNetwork(cfg({ mode: 'dhcp', vlan: 5 }), { existingLinks: ['eth0', 'eth0.5'] });
    expect(again.some((s) => s.includes('add') && s.includes('vlan'))).toBe(false);
    expect(again.at(-1)!.slice(0, 3)).toEqual(['udhcpc', '-i', 'eth0.5']);
  });

  it('runPlan: commands through the runner (a dry run logs them), files written under the root', async () => {
    const root = tmp();
    const log = join(root, 'dry-run.log');
    const steps = planNetwork(
      cfg({ mode: 'static', address: '192.0.2.10/24', gateway: '192.0.2.1', dns: ['192.0.2.53'] }),
      { root },
    );
    const results = await runPlan(steps, dryRunRunner(log));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(readResolvConf(root)).toEqual(['192.0.2.53']);
    const logged = readFileSync(log, 'utf8');
    expect(logged).toContain('run ["ip","addr","add","192.0.2.10/24","dev","eth0"]');
    expect(logged).toContain(`note "wrote ${join(root, 'etc', 'resolv.conf')}"`);
    const dhcp = planNetwork(cfg({ mode: 'dhcp' }), { root });
    await runPlan(dhcp, dryRunRunner(log));
    expect(statSync(join(root, 'run', 'neuroflow', 'udhcpc.script')).mode & 0o777).toBe(0o755);
  });
});

describe('live state', () => {
  it('parses `ip -j addr`', () => {
    const json = JSON.stringify([
      { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP'], operstate: 'UNKNOWN', addr_info: [] },
      {
        ifindex: 2,
        ifname: 'eth0',
        flags: ['BROADCAST', 'UP'],
        operstate: 'UP',
        addr_info: [
          { family: 'inet', local: '192.0.2.10', prefixlen: 24 },
          { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
        ],
      },
      { ifname: 'eth0.5', link: 'eth0', flags: ['BROADCAST'], operstate: 'DOWN' },
    ]);
    expect(parseIpJson(json)).toEqual([
      { name: 'lo', up: true, ipv4: [] },
      { name: 'eth0', up: true, ipv4: ['192.0.2.10/24'] },
      { name: 'eth0.5', up: false, ipv4: [], link: 'eth0' },
    ]);
    expect(parseIpJson('not json')).toEqual([]);
    const route =
      'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n' +
      'eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n' +
      'eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\n';
    expect(defaultGatewayFromProcRoute(route)).toBe('10.0.0.1');
    expect(defaultGatewayFromProcRoute('Iface\n')).toBeUndefined();
    expect(parseIpJson('{}')).toEqual([]);
  });
});
