/**
 * HA failover figures on three hosts (network namespaces, each its own `neuroflow serve`) with integrated
 * Ceph (a monitor, a manager and an OSD each, 3 copies): an HA VM on RBD is on a host that is neither the
 * leader nor h1 (the API this bench talks to), a fault hits that host, and the time runs until the VM
 * runs again on another host and its guest has booted there. Faults in turn: a crash (serve and QEMUs
 * killed -9), a partition (its link down; it fences itself), a `serve` kill (its QEMUs live on; the
 * storage blocklist fences them, the leader stops them when serve is back). After each the host comes
 * back; a double run is a QEMU of the VM alive on two hosts once things settled, or the isolated copy
 * still alive when the new one started (partitions).
 * Target: p95 ≤ 25 s with the default 10 s detection; zero double runs.
 * BENCH_HA_TRIALS (20; smoke 1) sets the number of faults.
 */
import { join } from 'node:path';
import type { ApiClient } from '../src/cli/client';
import { waitFor } from '../src/util/wait';
import { ClusterHost, NetLab, readyHosts } from '../test/harness/cluster';
import { BOOTED, testGuest } from '../test/harness/guest';
import { guestRun, startAndBoot, waitConsole } from '../test/harness/serial';
import { kernelVm, type VmView, waitTask } from '../test/harness/vms';
import { benchSize, percentile, record } from './lib';

const TRIALS = benchSize('BENCH_HA_TRIALS', 20, 1);
const KINDS = ['crash', 'partition', 'serve'] as const;
type Kind = (typeof KINDS)[number];

testGuest();
const lab = new NetLab();
const hosts: ClusterHost[] = [];
let api: ApiClient;
const vmOf = (name: string) =>
  api.request<VmView & { pid?: number; startedAt?: string }>('GET', `/api/v1/vms/${name}`);
const hostOf = (n: string) => hosts.find((h) => h.name === n)!;

/** A host that is neither the leader nor h1. */
async function victim(): Promise<ClusterHost> {
  const nodes = await api.request<{ name: string; leader: boolean }[]>('GET', '/api/v1/nodes');
  return hosts.find((x) => x.name !== 'h1' && !nodes.find((n) => n.name === x.name)?.leader)!;
}

async function moveTo(name: string, host: string): Promise<void> {
  if ((await vmOf(name)).node === host) return;
  const t = await api.request<{ id: string }>('POST', `/api/v1/vms/${name}/migrate`, { node: host });
  const done = await waitTask(api, t.id, 180_000);
  if (done.error) throw new Error(`moving ${name} to ${host} failed: ${done.error.message}`);
}

/** One fault; resolves with the ms from the fault to the guest booted elsewhere, and whether it ran twice. */
async function trial(kind: Kind): Promise<{ ms: number; double: boolean }> {
  const v = await victim();
  await moveTo('ha', v.name);
  const before = await vmOf('ha');
  const t0 = Date.now();
  let deadAt: number | undefined;
  const watch = setInterval(() => {
    if (deadAt === undefined && !v.qemuPids(before.id).includes(before.pid!)) deadAt = Date.now();
  }, 25);
  if (kind === 'crash') await v.crash();
  else if (kind === 'serve') await v.kill9();
  else v.link(false);
  let ms: number;
  let started: number;
  try {
    const vm = await waitFor(
      async () => {
        const x = await vmOf('ha').catch(() => undefined);
        return x && x.node !== v.name && x.state === 'running' ? x : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 200, what: `ha to run again after a ${kind} of ${v.name}` },
    );
    started = Date.parse(vm.startedAt ?? '');
    await waitConsole(api, vm.id, new RegExp(BOOTED), 120_000);
    ms = Date.now() - t0;
  } finally {
    clearInterval(watch);
    if (kind === 'partition') v.link(true);
  }
  if (kind !== 'partition') await v.start();
  await readyHosts(api, 3, 180_000);
  // Settled: the leader stops a stale copy on the host that came back (serve kill) within seconds.
  const now = await vmOf('ha');
  const others = () => hosts.filter((h) => h.name !== now.node).flatMap((h) => h.qemuPids(now.id));
  const single = await waitFor(() => others().length === 0, {
    timeoutMs: 60_000,
    intervalMs: 250,
    what: 'one QEMU of ha',
  }).then(
    () => true,
    () => false,
  );
  const isolatedLate = kind === 'partition' && !(deadAt !== undefined && deadAt < started);
  // Where the time went: the recovery's timeline against the fault.
  const rec = (
    await api.request<{
      recoveries: {
        host: string;
        detectedAt: string;
        fencedAt?: string;
        fence?: string;
        vms: { restartedAt?: string; runningAt?: string }[];
      }[];
    }>('GET', '/api/v1/ha')
  ).recoveries.find((r) => r.host === v.name && Date.parse(r.detectedAt) > t0);
  const at = (iso?: string) => (iso ? `+${((Date.parse(iso) - t0) / 1000).toFixed(1)} s` : '-');
  console.log(
    `ha: ${kind} of ${v.name}: detected ${at(rec?.detectedAt)}, fenced ${at(rec?.fencedAt)}, handed over ${at(rec?.vms[0]?.restartedAt)}, running ${at(rec?.vms[0]?.runningAt)}, booted +${(ms / 1000).toFixed(1)} s; ${rec?.fence ?? ''}`,
  );
  return { ms, double: !single || isolatedLate };
}

try {
  for (const i of [1, 2, 3]) {
    const h = lab.addHost();
    hosts.push(new ClusterHost(`h${i}`, h.ns, h.ip));
  }
  const [h1] = hosts as [ClusterHost];
  await h1.start();
  api = h1.api(h1.file('admin.token').trim(), h1.file('cluster/pki/ca.crt'));
  for (const h of hosts.slice(1)) {
    const { token } = await api.request<{ token: string }>('POST', '/api/v1/cluster/join-tokens', {
      ttlSec: 600,
      role: 'controller',
    });
    await h.start({ join: token });
  }
  await readyHosts(api, 3, 180_000);
  await api.request('POST', '/api/v1/ceph', { size: 3, minSize: 2, monitors: ['h1', 'h2'] });
  await api.request('POST', '/api/v1/ceph/mons', { node: 'h3' });
  for (const h of hosts)
    await api.request('POST', '/api/v1/ceph/osds', {
      node: h.name,
      device: join(h.dataDir, 'import', 'osd.img'),
      sizeGiB: 8,
    });
  await waitFor(
    async () =>
      (await api.request<{ name: string; hosts: unknown[] }[]>('GET', '/api/v1/pools')).some(
        (p) => p.name === 'ceph' && p.hosts.length === 3,
      ),
    { timeoutMs: 120_000, intervalMs: 1000, what: 'every host to reach the pool ceph' },
  );
  const vm = await api.request<VmView>('POST', '/api/v1/vms', {
    ...kernelVm('ha', { disks: [{ sizeGiB: 1, pool: 'ceph' }] }),
    ha: { enabled: true, priority: 'high' },
  });
  await startAndBoot(api, vm.id, () => api.request('POST', `/api/v1/vms/${vm.id}/start`), new RegExp(BOOTED));
  await guestRun(api, hostOf((await vmOf('ha')).node).dataDir, vm.id, 'true');

  const samples: Record<Kind, number[]> = { crash: [], partition: [], serve: [] };
  let doubles = 0;
  for (let i = 0; i < TRIALS; i++) {
    const kind = KINDS[i % KINDS.length]!;
    const r = await trial(kind);
    samples[kind].push(r.ms);
    if (r.double) doubles++;
    console.log(`ha: trial ${i + 1}/${TRIALS} ${kind}: ${r.ms} ms${r.double ? ' DOUBLE RUN' : ''}`);
  }
  const all = Object.values(samples)
    .flat()
    .sort((a, b) => a - b);
  const s = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return { n: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted.at(-1) };
  };
  const figures = {
    trials: TRIALS,
    detectionSec: 10,
    failoverMs: s(all),
    byKind: { crash: s(samples.crash), partition: s(samples.partition), serve: s(samples.serve) },
    doubleRuns: doubles,
  };
  const sec = (ms: number | undefined) =>
    ms === undefined || !Number.isFinite(ms) ? '-' : `${(ms / 1000).toFixed(1)} s`;
  record('ha', figures, [
    `failure to the HA VM booted on another host (RBD, detection 10 s), ${TRIALS} faults: p50 ${sec(figures.failoverMs.p50)} / p95 ${sec(figures.failoverMs.p95)} / max ${sec(figures.failoverMs.max)} (target p95 ≤ 25 s); crash p50 ${sec(figures.byKind.crash.p50)}, partition p50 ${sec(figures.byKind.partition.p50)}, serve kill p50 ${sec(figures.byKind.serve.p50)}`,
    `double runs: ${doubles} of ${TRIALS} faults (target 0)`,
  ]);
} finally {
  for (const h of hosts) await h[Symbol.asyncDispose]();
  await lab[Symbol.asyncDispose]();
}
