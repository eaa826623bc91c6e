/**
 * Placement scheduler figures: with 1,000 hosts of varied sizes and 50,000 VMs already placed, the time to
 * build that state, then placeAndAssign() throughput and latency (target ≥ 5,000 placements/s).
 * In-process, no daemon. Run alone with `bun bench/scheduler.ts`; BENCH_SCHED_HOSTS, BENCH_SCHED_VMS and
 * BENCH_SCHED_PLACEMENTS change the sizes.
 */
import { ClusterState, type SchedNode, type SchedVm } from '../src/controller/scheduler';
import { benchSize, record, summary } from './lib';

const HOSTS = benchSize('BENCH_SCHED_HOSTS', 1000, 20);
const PLACED = benchSize('BENCH_SCHED_VMS', 50_000, 500);
const PLACEMENTS = benchSize('BENCH_SCHED_PLACEMENTS', 20_000, 500);
const GiB = 1024 ** 3;

/** A deterministic pseudo-random sequence (mulberry32), so every run places the same VMs. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function makeHosts(r: () => number): SchedNode[] {
  const shapes = [
    { cpus: 32, memGiB: 256 },
    { cpus: 64, memGiB: 512 },
    { cpus: 96, memGiB: 768 },
    { cpus: 128, memGiB: 1024 },
  ];
  return Array.from({ length: HOSTS }, (_, i) => {
    const shape = pick(r, shapes);
    return {
      name: `host-${String(i).padStart(4, '0')}`,
      ready: r() > 0.01,
      maintenance: r() < 0.01,
      cpus: shape.cpus,
      memoryBytes: shape.memGiB * GiB - 16 * GiB,
      pools: r() < 0.9 ? ['local', 'ceph'] : ['local'],
      networks: r() < 0.8 ? ['default', 'prod', 'dmz'] : ['default', 'prod'],
      accelerator: 'kvm',
      cpuModel: i % 2 === 0 ? 'Intel Xeon Gold 6330' : 'AMD EPYC 7543',
    };
  });
}

/** VM number i; only VMs to be placed get affinity groups (the build does not honour them). */
function makeVm(r: () => number, i: number, affinity: boolean): SchedVm {
  const size = pick(r, [
    { vcpus: 1, memoryMiB: 1024 },
    { vcpus: 2, memoryMiB: 2048 },
    { vcpus: 2, memoryMiB: 4096 },
    { vcpus: 4, memoryMiB: 8192 },
    { vcpus: 8, memoryMiB: 16384 },
  ]);
  const vm: SchedVm = {
    id: `vm-${i}`,
    name: `vm-${i}`,
    ...size,
    pools: r() < 0.5 ? ['ceph'] : ['local'],
    networks: r() < 0.2 ? ['default', 'dmz'] : ['prod'],
  };
  if (r() < 0.1) vm.antiAffinityGroup = `anti-${i % 500}`;
  else if (affinity && r() < 0.05) vm.affinityGroup = `aff-${i % 2000}`;
  if (r() < 0.05) vm.requireKvm = true;
  if (r() < 0.05) vm.cpuModel = 'AMD EPYC 7543';
  return vm;
}

/** The figures, and one line for docs/benchmarks.md per headline figure. */
export interface SchedulerBench {
  figures: Record<string, unknown>;
  lines: string[];
}

/** Builds the state and times the placements; records nothing. */
export async function measureScheduler(): Promise<SchedulerBench> {
  const r = rng(42);
  const hosts = makeHosts(r);

  // The VMs already running: round-robin over the hosts, skipping a host without the memory left.
  // (Total memory is about twice what they need, so the loop always finds one.)
  const usedBytes = new Array<number>(hosts.length).fill(0);
  const running = Array.from({ length: PLACED }, (_, i) => {
    const vm = makeVm(r, i, false);
    let h = i % hosts.length;
    while (usedBytes[h]! + vm.memoryMiB * 1024 ** 2 > hosts[h]!.memoryBytes) h = (h + 1) % hosts.length;
    usedBytes[h]! += vm.memoryMiB * 1024 ** 2;
    return { vm, node: hosts[h]!.name };
  });

  // Build: what the leader does at start with the hosts and VM records read from etcd.
  const t0 = performance.now();
  const state = new ClusterState(hosts);
  for (const { vm, node } of running) state.assign(vm, node);
  const buildMs = performance.now() - t0;

  const vms = Array.from({ length: PLACEMENTS }, (_, i) => makeVm(r, PLACED + i, true));
  const latencyUs: number[] = [];
  let failed = 0;
  const t1 = performance.now();
  for (const vm of vms) {
    const s = performance.now();
    if (!state.placeAndAssign(vm).ok) failed++;
    latencyUs.push((performance.now() - s) * 1000);
  }
  const totalMs = performance.now() - t1;
  const perSecond = Math.round(PLACEMENTS / (totalMs / 1000));
  const us = summary(latencyUs);

  const figures = {
    hosts: HOSTS,
    vmsPlaced: PLACED,
    placements: PLACEMENTS,
    unschedulable: failed,
    buildMs: Math.round(buildMs),
    placementsPerSecond: perSecond,
    placementUs: us,
  };
  const lines = [
    `${perSecond} placements/s, p50 ${us.p50} µs, p99 ${us.p99} µs (${HOSTS} hosts, ${PLACED} VMs placed, ` +
      `${PLACEMENTS} placeAndAssign, ${failed} unschedulable; target ≥ 5,000/s)`,
    `state with ${HOSTS} hosts and ${PLACED} VMs built in ${Math.round(buildMs)} ms`,
  ];
  return { figures, lines };
}

/** Measures, prints, and records the figures under the name `scheduler`. */
export async function runSchedulerBench(): Promise<void> {
  const { figures, lines } = await measureScheduler();
  record('scheduler', figures, lines);
}

if (import.meta.main) await runSchedulerBench();
