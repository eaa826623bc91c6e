import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/cli/client';
import { waitFor } from '../../src/util/wait';
import { ClusterHost, NetLab, readyHosts } from '../harness/cluster';
import { ovnDaemonPid, ovnPids, ovnTaps } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { BOOTED } from '../harness/guest';
import { guestRun, startAndBoot, waitConsole } from '../harness/serial';
import { createVm, kernelVm, vmAction } from '../harness/vms';

interface NetworkView {
  name: string;
  type: string;
  subnet?: string;
  nics: number;
  ports?: { vm: string; nic: string; mac: string; ip?: string }[];
}

/**
 * Overlay networks on one host (a namespace host of a one-host cluster): real Open vSwitch (userspace
 * datapath) and OVN run by `serve`, two real guests on one logical switch get their addresses from OVN's
 * DHCP and reach each other; ovn-northd and serve killed -9 under traffic keep it flowing.
 */
describe('OVN overlay networks on one host', () => {
  // the host is a network namespace of its own: the userspace datapath's devices (br-int, ovs-netdev)
  // are per namespace, so another test's OVS cannot collide with them, and they go with the namespace
  let lab: NetLab;
  let host: ClusterHost;
  /** A namespace on the host's physical network (eth1), reachable only through a router's uplink. */
  let outside: string;
  // the host's eth1 is the physical network "provider" (provider networks, routers' uplinks)
  const PROVIDER = { NEUROFLOW_PROVIDER_NETWORKS: 'provider=eth1', NEUROFLOW_METRICS_INTERVAL_MS: '1000' };
  let d: {
    api: ApiClient;
    dataDir: string;
    ovnPids(): number[];
    ovnTaps(): string[];
    kill9(): Promise<void>;
    launch(): Promise<void>;
  };
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    lab = new NetLab();
    const x = lab.addHost();
    host = new ClusterHost('h1', x.ns, x.ip);
    outside = lab.addOutside();
    await host.start({ env: PROVIDER });
    const api = host.api(host.file('admin.token').trim(), host.file('cluster/pki/ca.crt'));
    await readyHosts(api, 1);
    d = {
      api,
      dataDir: host.dataDir,
      ovnPids: () => ovnPids(host.dataDir),
      ovnTaps: () => ovnTaps(host.dataDir),
      kill9: () => host.kill9(),
      launch: async () => {
        await host.start({ env: PROVIDER });
        await readyHosts(api, 1);
      },
    };
  }, 300_000);
  afterAll(async () => {
    await host?.[Symbol.asyncDispose]();
    await lab?.[Symbol.asyncDispose]();
  });
  const run = (vm: string, cmd: string) => guestRun(d.api, d.dataDir, ids[vm]!, cmd);
  const ip = async (vm: string) =>
    /NEUROFLOW-TEST-GUEST: ip=(\d+\.\d+\.\d+\.\d+)/.exec(
      await waitConsole(d.api, ids[vm]!, /NEUROFLOW-TEST-GUEST: ip=10\.77\.\d+\.\d+/, 60_000),
    )?.[1];

  it('creates an overlay network; refuses bad subnets, a taken name, and deleting it with NICs', async () => {
    const bad = (body: Record<string, unknown>) =>
      rejection(d.api.request('POST', '/api/v1/networks', { name: 'x', type: 'overlay', ...body }));
    expect(await bad({ subnet: '10.77.0.1/24' })).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/host bits/),
    });
    expect(await bad({ subnet: '10.77.0.0/30' })).toMatchObject({ code: 'validation_failed' });
    expect(await bad({ subnet: '10.77.0.0/24', gateway: '10.78.0.1' })).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/not a host address/),
    });
    const net = await d.api.request<NetworkView>('POST', '/api/v1/networks', {
      name: 'ovl',
      type: 'overlay',
      subnet: '10.77.0.0/24',
    });
    expect(net).toMatchObject({
      name: 'ovl',
      type: 'overlay',
      subnet: '10.77.0.0/24',
      gateway: '10.77.0.1',
      mtu: 1442,
    });
    expect(
      await rejection(
        d.api.request('POST', '/api/v1/networks', { name: 'ovl', type: 'overlay', subnet: '10.78.0.0/24' }),
      ),
    ).toMatchObject({ code: 'already_exists' });
    // OVN's daemons run under the data dir, supervised
    expect(d.ovnPids().length).toBeGreaterThanOrEqual(6);
    const list = await d.api.request<NetworkView[]>('GET', '/api/v1/networks');
    expect(list.map((n) => [n.name, n.type])).toEqual([
      ['default', 'nat'],
      ['ovl', 'overlay'],
    ]);
  });

  it('two guests on the network get addresses from OVN DHCP and reach each other; northd killed -9 comes back, traffic flows on', async () => {
    // o1 has a fixed address (OVN's DHCP hands out that one), o2 one OVN picks
    const nics: Record<string, Record<string, unknown>> = {
      o1: { network: 'ovl', ip: '10.77.0.50' },
      o2: { network: 'ovl' },
    };
    for (const name of ['o1', 'o2']) {
      const vm = await createVm(d.api, kernelVm(name, { networks: [nics[name]] }));
      ids[name] = vm.id;
      await startAndBoot(d.api, vm.id, () => vmAction(d.api, vm.id, 'start'), new RegExp(BOOTED), 120_000);
    }
    const [a, b] = [await ip('o1'), await ip('o2')];
    expect(a).toBe('10.77.0.50');
    expect(b).toMatch(/^10\.77\.0\.\d+$/);
    expect(a).not.toBe(b);
    // the API shows the addresses without asking the guests
    const net = await d.api.request<NetworkView>('GET', '/api/v1/networks/ovl');
    expect(net.nics).toBe(2);
    expect(net.ports?.map((p) => [p.vm, p.ip]).sort()).toEqual([
      ['o1', a],
      ['o2', b],
    ]);
    expect(await run('o1', `ping -c 3 -W 2 ${b} >/dev/null && echo PING-OK`)).toContain('PING-OK');
    // TCP: a line sent over nc from o2 arrives at o1
    await run('o1', '(nc -l -p 7000 > /tmp/got &) ; echo listening');
    await waitFor(
      async () => (await run('o2', `echo over-tcp | nc -w 2 ${a} 7000 && echo SENT`)).includes('SENT'),
      { timeoutMs: 20_000, intervalMs: 500, what: 'a TCP connection from o2 to o1' },
    );
    await waitFor(async () => (await run('o1', 'cat /tmp/got')).includes('over-tcp'), {
      timeoutMs: 10_000,
      what: 'the line to arrive',
    });

    // the monitoring graphs count the NICs' traffic on the host (the taps' counters), no guest agent asked
    await run('o2', `(ping -c 30 -i 0.2 -s 1200 ${a} >/dev/null &) ; echo pinging`);
    await waitFor(
      async () =>
        (
          await d.api.request<{ points: { netRxBps: number | null; netTxBps: number | null }[] }>(
            'GET',
            `/api/v1/vms/${ids.o2}/metrics?range=1h`,
          )
        ).points.some((p) => (p.netTxBps ?? 0) > 1000 && (p.netRxBps ?? 0) > 1000),
      { timeoutMs: 20_000, intervalMs: 1000, what: "o2's network graph to show the pings" },
    );

    // ovn-northd killed -9: flows stay (ping during the gap) and serve starts it again
    const northd = ovnDaemonPid(d.dataDir, 'ovn-northd');
    expect(northd).toBeDefined();
    process.kill(northd!, 'SIGKILL');
    expect(await run('o2', `ping -c 2 -W 2 ${a} >/dev/null && echo PING-OK`)).toContain('PING-OK');
    await waitFor(() => (ovnDaemonPid(d.dataDir, 'ovn-northd') ?? northd) !== northd, {
      timeoutMs: 15_000,
      what: 'ovn-northd to be started again',
    });

    // serve killed -9 and started again: the daemons are adopted (not restarted), the guests talk on
    const daemons = d.ovnPids().sort();
    await d.kill9();
    await d.launch();
    expect(d.ovnPids().sort()).toEqual(daemons);
    expect(await run('o1', `ping -c 2 -W 2 ${b} >/dev/null && echo PING-OK`)).toContain('PING-OK');
  }, 300_000);

  it('a router joins two networks; its uplink SNATs a guest out to an "outside" namespace; a floating IP reaches a guest from there', async () => {
    const api = d.api;
    // a second network and a guest on it
    await api.request('POST', '/api/v1/networks', { name: 'ovl2', type: 'overlay', subnet: '10.78.0.0/24' });
    const p1 = await createVm(api, kernelVm('p1', { networks: [{ network: 'ovl2' }] }));
    ids.p1 = p1.id;
    await startAndBoot(api, p1.id, () => vmAction(api, p1.id, 'start'), new RegExp(BOOTED), 120_000);
    await waitConsole(api, p1.id, /NEUROFLOW-TEST-GUEST: ip=10\.78\.0\.\d+/, 60_000);
    // no router yet: p1 cannot reach o1
    expect(
      await run('p1', 'ping -c 1 -W 1 10.77.0.50 >/dev/null && echo PING-OK || echo PING-FAIL'),
    ).toContain('PING-FAIL');

    // bad input: overlapping networks on one router, an unknown network, a nat network, a bad next hop
    await api.request('POST', '/api/v1/networks', { name: 'ovl3', type: 'overlay', subnet: '10.77.0.0/25' });
    const bad = (body: Record<string, unknown>) =>
      rejection(api.request('POST', '/api/v1/routers', { name: 'rx', ...body }));
    expect(await bad({ networks: ['ovl', 'ovl3'] })).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/overlap/),
    });
    expect(await bad({ networks: ['nope'] })).toMatchObject({ code: 'not_found' });
    expect(await bad({ networks: ['default'] })).toMatchObject({ code: 'validation_failed' });
    expect(
      await bad({ networks: ['ovl'], routes: [{ destination: '10.99.0.0/16', nexthop: '10.80.0.1' }] }),
    ).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/next hop/),
    });
    await api.request('DELETE', '/api/v1/networks/ovl3');

    const r1 = await api.request<{ networks: string[] }>('POST', '/api/v1/routers', {
      name: 'r1',
      networks: ['ovl', 'ovl2'],
      routes: [{ destination: '10.99.0.0/16', nexthop: '10.77.0.50' }],
    });
    expect(r1.networks).toEqual(['ovl', 'ovl2']);
    expect(
      await rejection(api.request('POST', '/api/v1/routers', { name: 'r2', networks: ['ovl'] })),
    ).toMatchObject({
      code: 'in_use',
      message: expect.stringMatching(/r1/),
    });
    // routed: p1 (10.78.0.x) reaches o1 (10.77.0.50) through the router, TCP too
    await waitFor(
      async () =>
        (await run('p1', 'ping -c 1 -W 1 10.77.0.50 >/dev/null && echo PING-OK')).includes('PING-OK'),
      {
        timeoutMs: 20_000,
        intervalMs: 500,
        what: 'p1 to reach o1 through the router',
      },
    );

    // a NIC hot-plugged into the running p1 on ovl: its tap and OVN port come at once, OVN's DHCP answers
    // it, it reaches o1 directly; unplugged, its tap goes
    const plugged = await api.request<{ networks: { id: string; network: string }[] }>(
      'POST',
      `/api/v1/vms/${p1.id}/networks`,
      { network: 'ovl' },
    );
    const nic = plugged.networks.find((n) => n.network === 'ovl')!.id;
    expect(d.ovnTaps()).toHaveLength(4);
    const dhcp = await run(
      'p1',
      'ip link set eth1 up; udhcpc -q -n -t 5 -T 1 -O mtu -i eth1 -s /etc/udhcpc.script >/dev/null 2>&1; ip -4 addr show eth1',
    );
    expect(dhcp).toMatch(/inet 10\.77\.0\.\d+/);
    expect(await run('p1', 'ping -c 1 -W 2 -I eth1 10.77.0.50 >/dev/null && echo PING-OK')).toContain(
      'PING-OK',
    );
    await api.request('DELETE', `/api/v1/vms/${p1.id}/networks/${nic}`);
    await waitFor(() => d.ovnTaps().length === 3, {
      timeoutMs: 15_000,
      what: 'the unplugged NIC’s tap to go',
    });

    // an uplink on a provider network (the host's physical network): SNAT out to the outside namespace,
    // which has no route to 10.77.0.0/24, so an answered ping proves the address was translated
    const ext = `${lab.overlaySubnet}.0/24`;
    const net = await api.request<{ type: string; physicalNetwork: string; mtu: number }>(
      'POST',
      '/api/v1/networks',
      {
        name: 'ext',
        type: 'provider',
        subnet: ext,
        gateway: `${lab.overlaySubnet}.200`,
      },
    );
    expect(net).toMatchObject({ type: 'provider', physicalNetwork: 'provider', mtu: 1500 });
    expect(
      await rejection(
        api.request('POST', '/api/v1/networks', { name: 'ext2', type: 'provider', subnet: '10.79.0.0/24' }),
      ),
    ).toMatchObject({ code: 'already_exists', message: expect.stringMatching(/untagged/) });
    const up = await api.request<{ uplink: { ip: string; snat: boolean }; gatewayHosts: string[] }>(
      'PATCH',
      '/api/v1/routers/r1',
      { uplink: { network: 'ext' } },
    );
    expect(up.uplink).toEqual({ network: 'ext', ip: `${lab.overlaySubnet}.254`, snat: true });
    expect(up.gatewayHosts).toEqual(['h1']);
    await waitFor(
      async () =>
        (await run('o1', `ping -c 1 -W 1 ${lab.overlaySubnet}.200 >/dev/null && echo PING-OK`)).includes(
          'PING-OK',
        ),
      { timeoutMs: 30_000, intervalMs: 500, what: 'o1 to reach the outside namespace through SNAT' },
    );
    const fromOutside = (ip: string) =>
      // busybox's ping: the machine may have no other
      spawnSync('ip', ['netns', 'exec', outside, 'busybox', 'ping', '-c', '1', '-W', '1', ip]).status === 0;
    // the outside cannot reach o2 until it has a floating IP
    const withFip = await api.request<{ floatingIps: { ip: string; vm: string; internalIp: string }[] }>(
      'POST',
      '/api/v1/routers/r1/floating-ips',
      { vm: 'o2' },
    );
    const fip = withFip.floatingIps[0]!;
    expect(fip).toMatchObject({ ip: `${lab.overlaySubnet}.253`, vm: 'o2', internalIp: await ip('o2') });
    await waitFor(() => fromOutside(fip.ip), {
      timeoutMs: 30_000,
      intervalMs: 500,
      what: 'the floating IP to answer',
    });
    expect(
      await rejection(api.request('POST', '/api/v1/routers/r1/floating-ips', { vm: 'o1', ip: fip.ip })),
    ).toMatchObject({ code: 'already_exists' });
    expect(await rejection(api.request('DELETE', '/api/v1/routers/r1'))).toMatchObject({ code: 'in_use' });
    expect(await rejection(api.request('DELETE', '/api/v1/networks/ext'))).toMatchObject({
      code: 'in_use',
      message: expect.stringMatching(/r1/),
    });
    await api.request('DELETE', `/api/v1/routers/r1/floating-ips/${fip.ip}`);
    await waitFor(() => !fromOutside(fip.ip), {
      timeoutMs: 15_000,
      intervalMs: 500,
      what: 'the floating IP to go',
    });
  }, 300_000);

  it('a security group by tag: inbound denied by default, a rule opens a TCP port, an admin deny wins, a tag change moves a VM in and out', async () => {
    const api = d.api;
    const a = (await ip('o1'))!;
    const b = (await ip('o2'))!;
    const ping = async (from: string, to: string) =>
      (await run(from, `ping -c 1 -W 1 ${to} >/dev/null && echo PING-OK || echo PING-FAIL`)).includes(
        'PING-OK',
      );
    const tcp = async (port: number) => {
      await run('o1', `(nc -l -p ${port} > /tmp/got${port} &) ; echo listening`);
      return /^SENT$/m.test(
        await run('o2', `echo hello | nc -w 2 ${a} ${port} && echo SENT || echo NOT-SENT`),
      );
    };
    expect(
      await rejection(
        api.request('POST', '/api/v1/security-groups', {
          name: 'x',
          rules: [{ direction: 'in', protocol: 'icmp', ports: '22' }],
        }),
      ),
    ).toMatchObject({ code: 'validation_failed', message: expect.stringMatching(/ports/) });
    expect(
      await rejection(
        api.request('POST', '/api/v1/security-groups', {
          name: 'x',
          rules: [{ direction: 'in', protocol: 'tcp', remoteGroup: 'nope' }],
        }),
      ),
    ).toMatchObject({ code: 'validation_failed', message: expect.stringMatching(/nope/) });
    const g = await api.request<{ rules: unknown[]; members: unknown[] }>('POST', '/api/v1/security-groups', {
      name: 'locked',
      tags: ['locked'],
    });
    expect(g.rules).toEqual([{ direction: 'out', protocol: 'any' }]);
    expect(g.members).toEqual([]);
    expect(await ping('o2', a)).toBe(true);

    // o1 tagged: nothing comes in (ping, TCP), what it starts goes out and its replies come back
    await api.request('PATCH', `/api/v1/vms/${ids.o1}`, { tags: ['locked'] });
    expect(
      (await api.request<{ members: { vm: string }[] }>('GET', '/api/v1/security-groups/locked')).members,
    ).toEqual([expect.objectContaining({ vm: 'o1', network: 'ovl' })]);
    await waitFor(async () => !(await ping('o2', a)), {
      timeoutMs: 15_000,
      intervalMs: 500,
      what: 'o1 to drop pings',
    });
    expect(await ping('o1', b)).toBe(true);
    expect(await tcp(7001)).toBe(false);

    // a rule opens TCP 7002 (ping stays closed)
    await api.request('PATCH', '/api/v1/security-groups/locked', {
      rules: [
        { direction: 'out', protocol: 'any' },
        { direction: 'in', protocol: 'tcp', ports: '7002-7003', remote: '10.77.0.0/24' },
      ],
    });
    await waitFor(() => tcp(7002), { timeoutMs: 20_000, intervalMs: 1000, what: 'TCP 7002 to open' });
    expect(await ping('o2', a)).toBe(false);

    // an admin group's deny wins over the tenant group's allow
    await api.request('POST', '/api/v1/security-groups', {
      name: 'admin-block',
      admin: true,
      tags: ['locked'],
      rules: [{ direction: 'in', protocol: 'tcp', ports: '7003', action: 'deny', log: true }],
    });
    await waitFor(async () => !(await tcp(7003)), {
      timeoutMs: 20_000,
      intervalMs: 1000,
      what: 'the admin deny',
    });

    // the tag taken off: o1 is in no group, everything reaches it again
    await api.request('PATCH', `/api/v1/vms/${ids.o1}`, { tags: [] });
    await waitFor(() => ping('o2', a), {
      timeoutMs: 15_000,
      intervalMs: 500,
      what: 'o1 to answer pings again',
    });
    for (const name of ['admin-block', 'locked'])
      await api.request('DELETE', `/api/v1/security-groups/${name}`);
    expect(await api.request('GET', '/api/v1/security-groups')).toEqual([]);
  }, 300_000);

  it('refuses a fixed address outside the subnet, on a nat network or taken, and a MAC taken on the network', async () => {
    const o1 = await d.api.request<{ networks: { mac: string }[] }>('GET', `/api/v1/vms/${ids.o1}`);
    const make = (nic: Record<string, unknown>) =>
      rejection(createVm(d.api, kernelVm('o3', { networks: [nic] })));
    expect(await make({ network: 'ovl', ip: '10.78.0.9' })).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/not a free host address/),
    });
    expect(await make({ network: 'ovl', ip: '10.77.0.1' })).toMatchObject({ code: 'validation_failed' }); // the gateway
    expect(await make({ network: 'default', ip: '10.0.2.20' })).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/needs an overlay or provider network/),
    });
    expect(await make({ network: 'ovl', ip: '10.77.0.50' })).toMatchObject({
      code: 'already_exists',
      message: expect.stringMatching(/o1/),
    });
    expect(await make({ network: 'ovl', mac: o1.networks[0]!.mac })).toMatchObject({
      code: 'already_exists',
    });
    expect((await d.api.request<{ name: string }[]>('GET', '/api/v1/vms')).map((v) => v.name)).not.toContain(
      'o3',
    );
  });

  it('a network with NICs is not deleted; a stopped VM frees its tap; deleting the VMs frees the network', async () => {
    // the router's guest and the router go first
    await d.api.request('DELETE', `/api/v1/vms/${ids.p1}?force=true`);
    delete ids.p1;
    await d.api.request('DELETE', '/api/v1/routers/r1');
    for (const n of ['ovl2', 'ext']) await d.api.request('DELETE', `/api/v1/networks/${n}`);
    expect(await rejection(d.api.request('DELETE', '/api/v1/networks/ovl'))).toMatchObject({
      code: 'in_use',
      message: expect.stringMatching(/o1/),
    });
    expect(d.ovnTaps()).toHaveLength(2);
    await vmAction(d.api, ids.o1!, 'stop', '?force=true');
    await waitFor(() => d.ovnTaps().length === 1, { timeoutMs: 15_000, what: "o1's tap to go" });
    for (const id of Object.values(ids)) await d.api.request('DELETE', `/api/v1/vms/${id}?force=true`);
    await d.api.request('DELETE', '/api/v1/networks/ovl');
    expect((await d.api.request<NetworkView[]>('GET', '/api/v1/networks')).map((n) => n.name)).toEqual([
      'default',
    ]);
    // nothing of it is left in OVN's northbound database
    const nb = spawnSync(
      'ovn-nbctl',
      [`--db=unix:${d.dataDir}/ovn/run/ovnnb_db.sock`, '--timeout=5', 'ls-list'],
      { encoding: 'utf8' },
    );
    expect(nb.status).toBe(0);
    expect(nb.stdout.trim()).toBe('');
  }, 120_000);
});
