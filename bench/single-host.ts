/**
 * Single-host figures of issue 2: API latency with 1,000 VMs defined, start call to QEMU running, idle
 * RSS of `neuroflow serve`, and the binary's size. Run with `npm run bench` (after `npm run build`).
 */
import { statSync } from 'node:fs';

import { procRssBytes } from '../src/util/proc';
import { neuroflowCommand, TestDaemon } from '../test/harness/daemon';
import { testGuest } from '../test/harness/guest';
import { kernelVm } from '../test/harness/vms';
import { benchSize, record, SMOKE, summary, timed } from './lib';

const N = benchSize('BENCH_VMS', 1000, 50);

await using d = await TestDaemon.start();
const api = d.api;
const rss = () => Math.round((procRssBytes(d.child!.pid!) ?? 0) / 1024 ** 2);
await Bun.sleep(SMOKE ? 200 : 2000); // let startup allocations settle before reading idle RSS (a figure, not a sync)
const idleRssMiB = rss();

const g = testGuest();
const create: number[] = [];
for (let i = 0; i < N; i++) {
  const body = { name: `bench-${i}`, vcpus: 1, memoryMiB: 64, boot: { kernel: g.vmlinux } };
  const [ms] = await timed(() => api.request('POST', '/api/v1/vms', body));
  create.push(ms);
}
const get: number[] = [];
for (let i = 0; i < benchSize('BENCH_GETS', 1000, 50); i++) {
  const [ms] = await timed(() => api.request('GET', `/api/v1/vms/bench-${Math.floor(Math.random() * N)}`));
  get.push(ms);
}
const list: number[] = [];
for (let i = 0; i < 30; i++) {
  const [ms] = await timed(() => api.request('GET', '/api/v1/vms'));
  list.push(ms);
}
const rss1000MiB = rss();

// Start call to QEMU running (the guest's boot is not included: the call returns once vCPUs run).
await api.request('POST', '/api/v1/vms', kernelVm('bench-start'));
const start: number[] = [];
for (let i = 0; i < 5; i++) {
  const [ms] = await timed(() => api.request('POST', '/api/v1/vms/bench-start/start'));
  start.push(ms);
  await api.request('POST', '/api/v1/vms/bench-start/stop?force=true');
}

const [bin] = neuroflowCommand();
const sizeMiB = bin?.endsWith('neuroflow')
  ? Math.round((statSync(bin).size / 1024 ** 2) * 10) / 10
  : undefined;
const figures = {
  vms: N,
  createMs: summary(create),
  getMs: summary(get),
  listMs: summary(list),
  startMs: summary(start),
  idleRssMiB,
  rssWith1000VmsMiB: rss1000MiB,
  binarySizeMiB: sizeMiB,
};
const s = figures;
record('single-host', figures, [
  `create p50 ${s.createMs.p50} ms, p99 ${s.createMs.p99} ms (${N} VMs)`,
  `get p50 ${s.getMs.p50} ms, p99 ${s.getMs.p99} ms (target p99 < 10 ms)`,
  `list of ${N} p50 ${s.listMs.p50} ms, p99 ${s.listMs.p99} ms (target p99 < 50 ms)`,
  `start call to QEMU running p50 ${s.startMs.p50} ms, max ${s.startMs.max} ms (target < 300 ms)`,
  `idle RSS of serve ${idleRssMiB} MiB, ${rss1000MiB} MiB with ${N} VMs defined (target < 120 MiB)`,
  `dist/neuroflow ${sizeMiB ?? '?'} MiB`,
]);
