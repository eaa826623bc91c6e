/**
 * Storage figures of issue 11 on one host (TCG): integrated Ceph set up through the API to HEALTH_OK
 * (a monitor, a manager, one OSD on a sparse file), serve's idle RSS with the Ceph daemons supervised and
 * theirs, the time to make a linked clone of a template with a 10 GiB disk on RBD, and in-guest
 * sequential write throughput on `dir` (qcow2) and `rbd` (dd with fsync, timed from the host), and
 * 4 KiB random-write IOPS on both (nf-iobench in the guest: O_DIRECT, queue depth 1).
 * Run: `bun bench/storage.ts` (after `npm run build`).
 */
import { join } from 'node:path';
import { procRssBytes } from '../src/util/proc';
import { waitFor } from '../src/util/wait';
import { TestDaemon } from '../test/harness/daemon';
import { BOOTED } from '../test/harness/guest';
import { guestRun, waitConsole } from '../test/harness/serial';
import { createVm, kernelVm, vmAction } from '../test/harness/vms';
import { benchSize, record, SMOKE, summary, timed } from './lib';

const CLONES = benchSize('BENCH_CLONES', 5, 1);
const WRITE_MIB = benchSize('BENCH_WRITE_MIB', 256, 16);
const IOPS_SECONDS = benchSize('BENCH_IOPS_SECONDS', 20, 2);
const mib = (b: number) => Math.round(b / 1024 ** 2);

await using d = await TestDaemon.start();
const host = (await d.api.request<{ name: string }[]>('GET', '/api/v1/nodes'))[0]!.name;
const mon = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

interface Status {
  health?: {
    status: string;
    checks: { name: string }[];
    pgs: { total: number; byState: Record<string, number> };
  };
  daemons: { entity: string; pid?: number }[];
}
const status = () => d.api.request<Status>('GET', '/api/v1/ceph');

// Ceph on this host to HEALTH_OK (MON_DISK_LOW is this machine's disk, tolerated).
const [bootstrapMs] = await timed(async () => {
  await d.api.request('POST', '/api/v1/ceph', { monitorAddress: mon, size: 1, minSize: 1 });
  await d.api.request('POST', '/api/v1/ceph/osds', {
    node: host,
    device: join(d.dataDir, 'osd0.img'),
    sizeGiB: 16,
  });
  await waitFor(
    async () => {
      const h = (await status()).health;
      const ok = h && (h.status === 'HEALTH_OK' || h.checks.every((c) => c.name === 'MON_DISK_LOW'));
      return ok && h.pgs.byState['active+clean'] === h.pgs.total;
    },
    { timeoutMs: 180_000, intervalMs: 250, what: 'Ceph HEALTH_OK' },
  );
});
await Bun.sleep(SMOKE ? 200 : 5000); // let the daemons settle before reading RSS (a figure, not a sync)
const daemons = (await status()).daemons;
const rss = Object.fromEntries(daemons.map((x) => [x.entity, x.pid ? mib(procRssBytes(x.pid) ?? 0) : 0]));
const serveRssMiB = mib(procRssBytes(d.child!.pid!) ?? 0);
await waitFor(
  async () =>
    (await d.api.request<{ name: string; hosts: unknown[] }[]>('GET', '/api/v1/pools')).some(
      (p) => p.name === 'ceph' && p.hosts.length > 0,
    ),
  { timeoutMs: 30_000, what: 'the pool ceph reported by the host' },
);

// A template with a 10 GiB disk on RBD, and linked clones of it (the API call, placement included).
const tpl = await createVm(d.api, kernelVm('bench-tpl', { disks: [{ sizeGiB: 10, pool: 'ceph' }] }));
await d.api.request('POST', `/api/v1/vms/${tpl.id}/template`);
const cloneMs: number[] = [];
for (let i = 0; i < CLONES; i++) {
  const [ms] = await timed(() =>
    d.api.request('POST', `/api/v1/vms/${tpl.id}/clone`, { name: `bench-clone-${i}` }),
  );
  cloneMs.push(ms);
}

// Sequential writes inside a guest, dir vs rbd.
const writeMBps: Record<string, number> = {};
const randomWriteIops: Record<string, number> = {};
for (const pool of ['local', 'ceph']) {
  const vm = await createVm(d.api, kernelVm(`bench-dd-${pool}`, { disks: [{ sizeGiB: 1, pool }] }));
  await vmAction(d.api, vm.id, 'start');
  await waitConsole(d.api, vm.id, new RegExp(BOOTED));
  const [ms] = await timed(() =>
    guestRun(
      d.api,
      d.dataDir,
      vm.id,
      `dd if=/dev/zero of=/dev/vda bs=1M count=${WRITE_MIB} conv=fsync 2>/dev/null`,
      300_000,
    ),
  );
  writeMBps[pool] = Math.round((WRITE_MIB / (ms / 1000)) * 10) / 10;
  // 4 KiB random writes, O_DIRECT, queue depth 1 (nf-iobench, from agent-rs: fio's randwrite iodepth=1)
  const out = await guestRun(
    d.api,
    d.dataDir,
    vm.id,
    `nf-iobench /dev/vda ${IOPS_SECONDS} 256`,
    (IOPS_SECONDS + 60) * 1000,
  );
  const m = /\{"iops":(\d+)/.exec(out);
  if (!m) throw new Error(`nf-iobench printed no figure: ${out.trim().slice(-300)}`);
  randomWriteIops[pool] = Number(m[1]);
  await vmAction(d.api, vm.id, 'stop', '?force=true');
}

const figures = {
  cephBootstrapToHealthyMs: Math.round(bootstrapMs),
  serveRssWithCephMiB: serveRssMiB,
  cephDaemonRssMiB: rss,
  linkedCloneOf10GiBMs: summary(cloneMs),
  inGuestSequentialWriteMBps: writeMBps,
  writeMiB: WRITE_MIB,
  inGuestRandomWrite4kIops: randomWriteIops,
  iopsSeconds: IOPS_SECONDS,
};
record('storage', figures, [
  `integrated Ceph on one host (mon, mgr, one 16 GiB file OSD) set up through the API to HEALTH_OK in ${Math.round(bootstrapMs / 100) / 10} s (three hosts: bench/cluster.ts)`,
  `serve RSS ${serveRssMiB} MiB with Ceph supervised; Ceph daemons ${Object.entries(rss)
    .map(([k, v]) => `${k} ${v} MiB`)
    .join(', ')}`,
  `linked clone of a template with a 10 GiB RBD disk (API call to placed): p50 ${cloneMs.length ? summary(cloneMs).p50 : '?'} ms, max ${summary(cloneMs).max} ms (target < 1 s)`,
  `in-guest sequential write (dd 1 MiB blocks, fsync, ${WRITE_MIB} MiB, timed from the host, TCG): dir ${writeMBps.local} MB/s, rbd ${writeMBps.ceph} MB/s`,
  `in-guest 4 KiB random writes (O_DIRECT, queue depth 1, ${IOPS_SECONDS} s over 256 MiB, nf-iobench, TCG): dir ${randomWriteIops.local} IOPS, rbd ${randomWriteIops.ceph} IOPS`,
]);
