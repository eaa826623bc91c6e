import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/cli/client';
import { waitFor } from '../../src/util/wait';
import { ClusterHost, NetLab, readyHosts, tearDown } from '../harness/cluster';
import { killAll, ovnDaemonPid } from '../harness/daemon';
import { BOOTED } from '../harness/guest';
import { guestRun, guestStream, startAndBoot, waitConsole } from '../harness/serial';
import { kernelVm, type VmView } from '../harness/vms';

/**
 * OVN networking on three hosts (network namespaces, each its own `serve`; Geneve over a second link, which
 * is also every host's physical network "provider"; an "outside" namespace on it): guests on different
 * hosts on one overlay network, a router across hosts with its uplink and a floating IP, a security group
 * between hosts, northd and a host's serve killed -9 under traffic, and a whole host (the first
 * controller, where OVN's databases began) killed -9 while its two peers carry on.
 */
describe('OVN networking across three hosts', () => {
  let lab: NetLab;
  const hosts: ClusterHost[] = [];
  let api: ApiClient;
  let outside: string;
  const h = (n: string) => hosts.find((x) => x.name === n)!;
  /** Prints what OVN's control plane holds and logged on these hosts (a failed wait's post-mortem). */
  const ovnPostMortem = (names: string[]) => {
    const sh = (argv: string[]) => {
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
      return `$ ${argv.slice(0, 4).join(' ')} ...\n${r.stdout}${r.stderr}`;
    };
    for (const x of names) {
      const dir = `${h(x).dataDir}/ovn`;
      console.error(
        [
          `===== ${x}`,
          sh(['ovn-nbctl', `--db=unix:${dir}/run/ovnnb_db.sock`, '--no-leader-only', 'list', 'port_group']),
          sh(['ovs-appctl', '-t', `${dir}/run/ovnnb_db.ctl`, 'cluster/status', 'OVN_Northbound']),
          sh(['ovs-appctl', '-t', `${dir}/run/ovnsb_db.ctl`, 'cluster/status', 'OVN_Southbound']),
          ...['ovn-northd', 'ovn-controller', 'ovnnb-db', 'ovnsb-db'].map((l) =>
            sh(['tail', '-n', '25', `${dir}/log/${l}.log`]),
          ),
          h(x)
            .output.split('\n')
            .filter((l) => /"level":"(warn|error)"|security|VM edited/.test(l))
            .slice(-30)
            .join('\n'),
        ].join('\n'),
      );
    }
  };
  const env = {
    NEUROFLOW_OVERLAY_INTERFACE: 'eth1',
    NEUROFLOW_PROVIDER_NETWORKS: 'provider=eth1',
  };
  const vmOf = (name: string) => api.request<VmView>('GET', `/api/v1/vms/${name}`);
  const run = async (name: string, cmd: string, timeoutMs = 60_000) => {
    const vm = await vmOf(name);
    return guestRun(api, h(vm.node).dataDir, vm.id, cmd, timeoutMs);
  };
  const addr: Record<string, string> = {};
  const ping = async (from: string, to: string) =>
    (await run(from, `ping -c 1 -W 2 ${to} >/dev/null && echo PING-OK || echo PING-FAIL`)).includes(
      'PING-OK',
    );
  /** Whether `bytes` sent over TCP from one guest to another's port all arrive. */
  const stream = async (from: string, to: string, port: number, kib: number) =>
    (await guestStream(run, { from, to, ip: addr[to]!, port, kib }))?.received === kib * 1024;
  /** Starts guests (pinned to hosts) on networks, all booting at once; records their DHCP addresses. */
  const guests = async (list: [name: string, node: string, network: string, prefix: string][]) => {
    const vms = await Promise.all(
      list.map(([name, node, network]) =>
        api.request<VmView>(
          'POST',
          '/api/v1/vms',
          kernelVm(name, { networks: [{ network }], placement: { node } }),
        ),
      ),
    );
    await Promise.all(
      vms.map((vm) =>
        startAndBoot(api, vm.id, () => api.request('POST', `/api/v1/vms/${vm.id}/start`), new RegExp(BOOTED)),
      ),
    );
    for (const [i, [name, , , prefix]] of list.entries()) {
      const re = new RegExp(`NEUROFLOW-TEST-GUEST: ip=(${prefix.replace(/\./g, '\\.')}\\d+)`);
      addr[name] = re.exec(await waitConsole(api, vms[i]!.id, re, 60_000))![1]!;
    }
  };

  beforeAll(async () => {
    lab = new NetLab();
    for (let i = 1; i <= 3; i++) {
      const x = lab.addHost();
      hosts.push(new ClusterHost(`h${i}`, x.ns, x.ip));
    }
    outside = lab.addOutside();
    await h('h1').start({ env });
    api = h('h1').api(h('h1').file('admin.token').trim(), h('h1').file('cluster/pki/ca.crt'));
    // three controllers: etcd and OVN's databases (raft) both outlive one of them
    for (const n of ['h2', 'h3']) {
      const { token } = await api.request<{ token: string }>('POST', '/api/v1/cluster/join-tokens', {
        ttlSec: 600,
        role: 'controller',
      });
      await h(n).start({ join: token, env });
    }
    await readyHosts(api, 3, 180_000);
  }, 420_000);

  afterAll(() => tearDown(hosts, lab));

  it('guests on two hosts (neither the central one) get OVN DHCP addresses and exchange ping and TCP', async () => {
    await api.request('POST', '/api/v1/networks', { name: 'span', type: 'overlay', subnet: '10.60.0.0/24' });
    await guests([
      ['v2', 'h2', 'span', '10.60.0.'],
      ['v3', 'h3', 'span', '10.60.0.'],
    ]);
    expect(addr.v2).not.toBe(addr.v3);
    // the first packets may wait for the hosts' tunnels (the databases' raft members joining meanwhile)
    await waitFor(() => ping('v2', addr.v3!), {
      timeoutMs: 30_000,
      intervalMs: 1000,
      what: 'v2 to reach v3',
    });
    expect(await ping('v3', addr.v2!)).toBe(true);
    // 2 MiB of full-size segments: the guests take the overlay's MTU (1442) from OVN's DHCP
    expect(await stream('v2', 'v3', 7000, 2048)).toBe(true);
    expect(await run('v2', 'cat /sys/class/net/eth0/mtu')).toMatch(/^1442$/m);
  }, 300_000);

  it('a router across hosts: a guest of another network on h1 is routed to; SNAT out through the uplink; a floating IP answers from outside', async () => {
    await api.request('POST', '/api/v1/networks', { name: 'back', type: 'overlay', subnet: '10.61.0.0/24' });
    await api.request('POST', '/api/v1/networks', {
      name: 'ext',
      type: 'provider',
      subnet: `${lab.overlaySubnet}.0/24`,
      gateway: `${lab.overlaySubnet}.200`,
    });
    await guests([['v1', 'h1', 'back', '10.61.0.']]);
    const r = await api.request<{ gatewayHosts: string[]; uplink: { ip: string } }>(
      'POST',
      '/api/v1/routers',
      {
        name: 'r',
        networks: ['span', 'back'],
        uplink: { network: 'ext' },
      },
    );
    // every host has the physical network: each can carry the uplink, one at a time
    expect([...r.gatewayHosts].sort()).toEqual(['h1', 'h2', 'h3']);
    await waitFor(() => ping('v3', addr.v1!), {
      timeoutMs: 30_000,
      intervalMs: 1000,
      what: 'v3 (h3) to reach v1 (h1)',
    });
    // out to the outside namespace (no route back to 10.60.0.0/24: the answer proves SNAT)
    await waitFor(() => ping('v2', `${lab.overlaySubnet}.200`), {
      timeoutMs: 30_000,
      intervalMs: 1000,
      what: 'v2 (h2) to reach the outside through the uplink',
    });
    const fip = (
      await api.request<{ floatingIps: { ip: string }[] }>('POST', '/api/v1/routers/r/floating-ips', {
        vm: 'v3',
      })
    ).floatingIps[0]!.ip;
    await waitFor(
      () =>
        spawnSync('ip', ['netns', 'exec', outside, 'busybox', 'ping', '-c', '1', '-W', '1', fip]).status ===
        0,
      { timeoutMs: 30_000, intervalMs: 1000, what: "v3's floating IP to answer from outside" },
    );
    await api.request('DELETE', `/api/v1/routers/r/floating-ips/${fip}`);
  }, 300_000);

  it('a security group between hosts: the tagged guest on h3 takes only what its rules allow from h2', async () => {
    await api.request('POST', '/api/v1/security-groups', {
      name: 'web',
      tags: ['web'],
      rules: [
        { direction: 'out', protocol: 'any' },
        { direction: 'in', protocol: 'tcp', ports: '8080', remote: '10.60.0.0/24' },
      ],
    });
    await api.request('PATCH', '/api/v1/vms/v3', { tags: ['web'] });
    await waitFor(async () => !(await ping('v2', addr.v3!)), {
      timeoutMs: 20_000,
      intervalMs: 1000,
      what: 'pings to be dropped',
    });
    expect(await stream('v2', 'v3', 7001, 64)).toBe(false);
    expect(await stream('v2', 'v3', 8080, 64)).toBe(true);
    expect(await ping('v3', addr.v2!)).toBe(true); // what it starts goes out, replies come back
    await api.request('PATCH', '/api/v1/vms/v3', { tags: [] });
    await waitFor(() => ping('v2', addr.v3!), {
      timeoutMs: 20_000,
      intervalMs: 1000,
      what: 'pings to pass again',
    });
  }, 300_000);

  it("northd killed -9 and h3's serve killed -9 and started again under traffic: the pings go on", async () => {
    await run('v2', `(ping -c 80 -i 0.25 ${addr.v3} > /tmp/ping.out 2>&1 &); echo started`);
    const northd = ovnDaemonPid(h('h1').dataDir, 'ovn-northd');
    expect(northd).toBeDefined();
    process.kill(northd!, 'SIGKILL');
    await h('h3').kill9();
    await h('h3').start({ env });
    await readyHosts(api, 3, 120_000);
    await waitFor(() => (ovnDaemonPid(h('h1').dataDir, 'ovn-northd') ?? northd) !== northd, {
      timeoutMs: 15_000,
      what: 'ovn-northd to be started again',
    });
    const out = await waitFor(
      async () => {
        const o = await run('v2', 'cat /tmp/ping.out');
        return /packet loss/.test(o) ? o : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: 'the pings to end' },
    );
    const loss = Number(/(\d+)% packet loss/.exec(out)?.[1]);
    console.log(`pings across northd and serve killed -9: ${loss}% of 80 lost`);
    expect(loss).toBeLessThanOrEqual(5);
  }, 300_000);

  it("h1 dies whole (every process of its namespace killed -9): OVN's raft databases and northd carry on on h2 and h3, traffic flows, the router's uplink moves off h1, changes still reach the flows", async () => {
    // the three controllers are members of both databases' raft clusters
    const status = (host: string, db: 'nb' | 'sb') =>
      spawnSync(
        'ovs-appctl',
        [
          '-t',
          `${h(host).dataDir}/ovn/run/ovn${db}-db.ctl`,
          'cluster/status',
          db === 'nb' ? 'OVN_Northbound' : 'OVN_Southbound',
        ],
        { encoding: 'utf8' },
      ).stdout;
    for (const db of ['nb', 'sb'] as const)
      await waitFor(() => (status('h2', db).match(/^\s+\S{4} \(\S{4} at ssl:/gm) ?? []).length === 3, {
        timeoutMs: 60_000,
        intervalMs: 1000,
        what: `three members in the ${db} database's raft cluster`,
      }).catch((err) => {
        ovnPostMortem(['h1', 'h2', 'h3']);
        throw err;
      });
    // every member's ovn-northd reaches all three (one started before the third joined is restarted):
    // the active one must reach whichever member becomes the raft leader
    await waitFor(
      () =>
        ['h1', 'h2', 'h3'].every((x) => {
          const pid = ovnDaemonPid(h(x).dataDir, 'ovn-northd');
          let argv: string[] = [];
          try {
            argv = pid ? readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0') : [];
          } catch {} // it ended meanwhile (restarted)
          const nb = argv.find((a) => a.startsWith('--ovnnb-db=')) ?? '';
          return (nb.match(/ssl:/g) ?? []).length === 3;
        }),
      { timeoutMs: 30_000, intervalMs: 500, what: "every member's northd to know the three members" },
    );
    await run('v2', `(ping -c 80 -i 0.25 ${addr.v3} > /tmp/ping2.out 2>&1 &); echo started`);
    const pids = spawnSync('ip', ['netns', 'pids', h('h1').ns], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map(Number);
    expect(pids.length).toBeGreaterThan(5);
    await killAll(pids);
    // from now on through h2's API (etcd: two of three members left)
    const api2 = h('h2').api(h('h1').file('admin.token').trim(), h('h1').file('cluster/pki/ca.crt'));
    api = api2;
    const out = await waitFor(
      async () => {
        const o = await run('v2', 'cat /tmp/ping2.out').catch(() => '');
        return /packet loss/.test(o) ? o : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 1000, what: 'the pings to end' },
    );
    const loss = Number(/(\d+)% packet loss/.exec(out)?.[1]);
    console.log(`pings between h2 and h3 while h1 died: ${loss}% of 80 lost`);
    expect(loss).toBeLessThanOrEqual(5);
    // the router's uplink was active on h1 (its highest priority): it moves to h2 or h3 (BFD between the
    // hosts' tunnels), and v2 reaches the outside through SNAT again
    await waitFor(() => ping('v2', `${lab.overlaySubnet}.200`).catch(() => false), {
      timeoutMs: 60_000,
      intervalMs: 2000,
      what: "the router's uplink to move off h1",
    });
    // a change through h2's API still reaches the flows: v3 joins the "web" group (TCP 8080 only), pings stop
    await waitFor(
      async () =>
        api2
          .request('PATCH', '/api/v1/vms/v3', { tags: ['web'] })
          .then(() => true)
          .catch(() => false),
      { timeoutMs: 60_000, intervalMs: 2000, what: "h2's API to take a change" },
    );
    await waitFor(async () => !(await ping('v2', addr.v3!)), {
      // (a loaded machine: raft elections and northd's lock move before the group reaches the flows)
      timeoutMs: 120_000,
      intervalMs: 1000,
      what: 'the group to apply without h1',
    }).catch((err) => {
      ovnPostMortem(['h2', 'h3']);
      throw err;
    });
    expect(await stream('v2', 'v3', 8080, 64)).toBe(true);
  }, 300_000);
});
