/**
 * VM hardware figures of issue 12 on one host (TCG): the time to clone a template whose disk has 1 GiB
 * written (a linked clone, and a full one that copies it; and, while it still ran, a clone from one of
 * its snapshots), and disk hot-plug latency: from the API call
 * to the guest seeing the disk (a loop in the guest prints a marker the moment /sys/block/vdb appears),
 * and from the unplug call to the guest having let it go.
 * Run: `bun bench/hardware.ts` (after `npm run build`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../src/util/wait';
import { TestDaemon } from '../test/harness/daemon';
import { BOOTED } from '../test/harness/guest';
import { guestRun, typeOnSerial, waitConsole } from '../test/harness/serial';
import { createVm, kernelVm, vmAction } from '../test/harness/vms';
import { benchSize, record, summary, timed } from './lib';

const USED_MIB = benchSize('BENCH_CLONE_USED_MIB', 1024, 32);
const PLUGS = benchSize('BENCH_HOTPLUGS', 5, 1);

await using d = await TestDaemon.start();

// A template with USED_MIB of random data written to its disk (nothing a copy could skip), then clones.
const tpl = await createVm(d.api, kernelVm('bench-hw-tpl', { disks: [{ sizeGiB: 2 }] }));
await vmAction(d.api, tpl.id, 'start');
await waitConsole(d.api, tpl.id, new RegExp(BOOTED), 120_000);
await guestRun(
  d.api,
  d.dataDir,
  tpl.id,
  `dd if=/dev/urandom of=/dev/vda bs=1M count=${USED_MIB} conv=fsync 2>/dev/null`,
  600_000,
);
// a clone of the running VM from a snapshot: a full copy of the disk as it was then
await d.api.request('POST', `/api/v1/vms/${tpl.id}/snapshots`, { name: 'bench' });
const [snapshotCloneMs] = await timed(() =>
  d.api.request('POST', `/api/v1/vms/${tpl.id}/clone`, { name: 'bench-hw-snap', snapshot: 'bench' }),
);
await vmAction(d.api, tpl.id, 'stop', '?force=true');
await d.api.request('DELETE', `/api/v1/vms/${tpl.id}/snapshots/bench`);
await d.api.request('POST', `/api/v1/vms/${tpl.id}/template`);
const [linkedMs] = await timed(() =>
  d.api.request('POST', `/api/v1/vms/${tpl.id}/clone`, { name: 'bench-hw-linked' }),
);
const [fullMs] = await timed(() =>
  d.api.request('POST', `/api/v1/vms/${tpl.id}/clone`, { name: 'bench-hw-full', full: true }),
);

// Hot-plug: a running guest, a loop in it that says when vdb comes and goes.
const vm = await createVm(d.api, kernelVm('bench-hw-plug'));
await vmAction(d.api, vm.id, 'start');
await waitConsole(d.api, vm.id, new RegExp(BOOTED), 120_000);
const consolePath = join(d.dataDir, 'node', 'vms', vm.id, 'console.log');
const consoleLength = () => readFileSync(consolePath, 'utf8').length;
/** Types a loop that prints MARKER once `test` holds, then waits for it in the console file (polled fast). */
async function guestNotices(test: string, marker: string, action: () => Promise<unknown>): Promise<number> {
  const from = consoleLength();
  // the marker is built by the shell, so the echo of the typed line does not match
  await typeOnSerial(d.dataDir, vm.id, `while ! ${test}; do usleep 10000; done; echo ${marker}''-seen`);
  const t0 = performance.now();
  await action();
  await waitFor(() => readFileSync(consolePath, 'utf8').slice(from).includes(`${marker}-seen`), {
    timeoutMs: 60_000,
    intervalMs: 5,
    what: `the guest to print ${marker}`,
  });
  return performance.now() - t0;
}
const plugMs: number[] = [];
const unplugMs: number[] = [];
for (let i = 0; i < PLUGS; i++) {
  let disk = '';
  plugMs.push(
    await guestNotices('[ -e /sys/block/vdb ]', `plug${i}`, async () => {
      const v = await d.api.request<{ disks: { id: string }[] }>('POST', `/api/v1/vms/${vm.id}/disks`, {
        sizeGiB: 1,
      });
      disk = v.disks.at(-1)!.id;
    }),
  );
  unplugMs.push(
    await guestNotices('[ ! -e /sys/block/vdb ]', `unplug${i}`, () =>
      d.api.request('DELETE', `/api/v1/vms/${vm.id}/disks/${disk}?deleteVolume=true`),
    ),
  );
}
await vmAction(d.api, vm.id, 'stop', '?force=true');

const round = (ms: number) => Math.round(ms);
const figures = {
  usedMiB: USED_MIB,
  linkedCloneMs: round(linkedMs),
  fullCloneMs: round(fullMs),
  snapshotCloneOfRunningMs: round(snapshotCloneMs),
  hotplugDiskMs: summary(plugMs.map(round)),
  hotUnplugDiskMs: summary(unplugMs.map(round)),
};
record('hardware', figures, [
  `clone of a template with ${USED_MIB} MiB written (dir pool, API call to answer): linked ${round(linkedMs)} ms, full ${round(fullMs)} ms; clone of the running VM from a snapshot (full copy): ${round(snapshotCloneMs)} ms`,
  `disk hot-plug, API call to the guest seeing /sys/block/vdb (virtio-blk into a PCIe root port, TCG, ${PLUGS}x): p50 ${figures.hotplugDiskMs.p50} ms, max ${figures.hotplugDiskMs.max} ms; unplug to the guest letting go: p50 ${figures.hotUnplugDiskMs.p50} ms, max ${figures.hotUnplugDiskMs.max} ms`,
]);
