/**
 * OVN networking figures of issue 16, on two namespace hosts (each its own `neuroflow serve`, Geneve over
 * a second link, the userspace datapath, TCG guests):
 * - TCP throughput between two guests of one overlay network on one host and across the hosts (busybox
 *   `nc`, BENCH_NET_MIB of zeros, timed in the sender, counted by the receiver);
 * - network create → usable: the API's POST, then until both hosts have the flows (`ovn-nbctl --wait=hv
 *   sync`), median of BENCH_NET_CREATES; the first network (which starts OVN on its host) apart;
 * - applying a security group of 1,000 rules (PATCH, then until every host has the flows), with members.
 * Run: `bun bench/network.ts` (after `npm run build`).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { ApiClient } from '../src/cli/client';
import { waitFor } from '../src/util/wait';
import { ClusterHost, NetLab, readyHosts } from '../test/harness/cluster';
import { BOOTED, testGuest } from '../test/harness/guest';
import { guestRun, guestStream, startAndBoot, waitConsole } from '../test/harness/serial';
import { kernelVm, type VmView } from '../test/harness/vms';
import { benchSize, record, summary, timed } from './lib';

const MIB = benchSize('BENCH_NET_MIB', 64, 4);
const CREATES = benchSize('BENCH_NET_CREATES', 10, 2);
const RULES = benchSize('BENCH_NET_RULES', 1000, 100);

testGuest();
const lab = new NetLab();
const hosts: ClusterHost[] = [];
let api: ApiClient;
const hostOf = (n: string) => hosts.find((h) => h.name === n)!;
const vmOf = (name: string) => api.request<VmView>('GET', `/api/v1/vms/${name}`);
const run = async (name: string, cmd: string) => {
  const vm = await vmOf(name);
  return guestRun(api, hostOf(vm.node).dataDir, vm.id, cmd, 300_000);
};

/** Until every host's ovn-controller has what the northbound database holds now (OVN's own barrier). */
function hvSync(): void {
  const r = spawnSync(
    'ovn-nbctl',
    [
      `--db=unix:${join(hosts[0]!.dataDir, 'ovn', 'run', 'ovnnb_db.sock')}`,
      '--timeout=120',
      '--wait=hv',
      'sync',
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`ovn-nbctl --wait=hv sync: ${r.stderr}`);
}

/** MiB/s of one TCP stream from guest `from` to guest `to` (at `ip`), every byte counted. */
async function tcp(from: string, to: string, ip: string): Promise<number> {
  const port = 7100 + Math.floor(Math.random() * 800);
  const r = await guestStream(run, { from, to, ip, port, kib: MIB * 1024 });
  if (!r) throw new Error(`the stream from ${from} to ${to} failed`);
  if (r.received !== MIB * 1024 * 1024) throw new Error(`${to} received ${r.received} bytes of ${MIB} MiB`);
  return MIB / Math.max(0.01, r.seconds);
}

try {
  for (const i of [1, 2]) {
    const h = lab.addHost();
    hosts.push(new ClusterHost(`h${i}`, h.ns, h.ip));
  }
  const env = { NEUROFLOW_OVERLAY_INTERFACE: 'eth1' };
  const [h1, h2] = hosts as [ClusterHost, ClusterHost];
  await h1.start({ env });
  api = h1.api(h1.file('admin.token').trim(), h1.file('cluster/pki/ca.crt'));
  const { token } = await api.request<{ token: string }>('POST', '/api/v1/cluster/join-tokens', {
    ttlSec: 600,
  });
  await h2.start({ join: token, env });
  await readyHosts(api, 2, 120_000);

  // network create → usable (the first one also starts OVN: measured apart)
  const [firstMs] = await timed(() =>
    api.request('POST', '/api/v1/networks', { name: 'bench', type: 'overlay', subnet: '10.90.0.0/24' }),
  );
  // three guests: a and b on h1, c on h2
  const addr: Record<string, string> = {};
  for (const [name, node] of [
    ['a', 'h1'],
    ['b', 'h1'],
    ['c', 'h2'],
  ] as const) {
    const vm = await api.request<VmView>(
      'POST',
      '/api/v1/vms',
      kernelVm(name, { networks: [{ network: 'bench' }], placement: { node }, tags: ['bench'] }),
    );
    await startAndBoot(
      api,
      vm.id,
      () => api.request('POST', `/api/v1/vms/${vm.id}/start`),
      new RegExp(BOOTED),
    );
    const log = await waitConsole(api, vm.id, /NEUROFLOW-TEST-GUEST: ip=10\.90\.0\.\d+/, 60_000);
    addr[name] = /ip=(10\.90\.0\.\d+)/.exec(log)![1]!;
  }
  const same = await tcp('a', 'b', addr.b!);
  const across = await tcp('a', 'c', addr.c!);

  // with both hosts running OVN (a guest on each)
  const creates: number[] = [];
  for (let i = 0; i < CREATES; i++) {
    const [ms] = await timed(async () => {
      await api.request('POST', '/api/v1/networks', {
        name: `bn${i}`,
        type: 'overlay',
        subnet: `10.91.${i}.0/24`,
      });
      hvSync();
    });
    creates.push(ms);
  }
  for (let i = 0; i < CREATES; i++) await api.request('DELETE', `/api/v1/networks/bn${i}`);

  // a security group of RULES rules on the three guests (each rule its own port)
  await api.request('POST', '/api/v1/security-groups', { name: 'bench', tags: ['bench'] });
  hvSync();
  const rules = Array.from({ length: RULES }, (_, i) => ({
    direction: 'in',
    protocol: 'tcp',
    ports: String(10_000 + i),
    remote: `10.${i % 200}.0.0/16`,
  }));
  const [apiMs] = await timed(() => api.request('PATCH', '/api/v1/security-groups/bench', { rules }));
  const [syncMs] = await timed(async () => hvSync());
  await api.request('DELETE', '/api/v1/security-groups/bench');

  const c = summary(creates);
  record(
    'network',
    {
      tcpSameHostMiBps: Math.round(same * 10) / 10,
      tcpAcrossHostsMiBps: Math.round(across * 10) / 10,
      firstNetworkMs: Math.round(firstMs),
      createToUsableMs: c,
      securityRules: RULES,
      securityRulesApiMs: Math.round(apiMs),
      securityRulesAppliedMs: Math.round(apiMs + syncMs),
      streamMiB: MIB,
    },
    [
      `TCP guest to guest (TCG, busybox nc, ${MIB} MiB): same host ${same.toFixed(1)} MiB/s, across hosts (Geneve, userspace datapath) ${across.toFixed(1)} MiB/s`,
      `overlay network create → usable on both hosts: p50 ${c.p50} ms, max ${c.max} ms (n=${c.n}); the first one (starts OVN on the host) ${Math.round(firstMs)} ms`,
      `security group of ${RULES} rules on 3 NICs: API ${Math.round(apiMs)} ms, in every host's flows ${Math.round(apiMs + syncMs)} ms`,
    ],
  );
} finally {
  for (const h of hosts) await h[Symbol.asyncDispose]().catch(() => {});
  await lab[Symbol.asyncDispose]();
}
