/**
 * Guest agent figures of issue 3: agent-rs binary size, its RSS at idle and while a guest-exec child
 * runs (beside stock qemu-ga's), and guest-ping round trip through the API and node (TCG).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../src/util/wait';
import { TestDaemon } from '../test/harness/daemon';
import { BOOTED } from '../test/harness/guest';
import { waitConsole } from '../test/harness/serial';
import { createVm, getVm, kernelVm } from '../test/harness/vms';
import { benchSize, record, summary, timed } from './lib';

const ROOT = join(import.meta.dirname, '..');
const sizeBytes = statSync(join(ROOT, 'dist', 'neuroflow-agent')).size;

await using d = await TestDaemon.start();

async function rssKiB(vm: string, process: string, during: boolean): Promise<number> {
  // While measuring "during exec", the measuring shell itself is the agent's running child.
  const script = `grep VmRSS /proc/$(pidof ${process} | cut -d' ' -f1)/status | tr -s ' ' | cut -d' ' -f2`;
  const cmd = during ? ['/bin/sh', '-c', `sleep 0.2; ${script}`] : ['/bin/sh', '-c', script];
  const r = await d.api.request<{ stdout: string }>('POST', `/api/v1/vms/${vm}/guest/exec`, { command: cmd });
  return Number(r.stdout.trim());
}

const figures: Record<string, unknown> = { agentSizeBytes: sizeBytes };
for (const [variant, proc] of [
  ['agent-rs', 'neuroflow-agent'],
  ['qemu-ga', 'qemu-ga'],
] as const) {
  const vm = await createVm(d.api, kernelVm(`bench-${variant}`, { start: true }, variant));
  await waitConsole(d.api, vm.id, new RegExp(BOOTED));
  await waitFor(async () => (await getVm(d.api, vm.id)).agent?.status === 'connected', {
    timeoutMs: 60_000,
    what: 'agent',
  });
  // Idle: the agent only ever ran the probes; measure a few times and keep the smallest (exec itself costs).
  const idle = Math.min(...(await Promise.all([0, 1, 2].map(() => rssKiB(vm.id, proc, false)))));
  const during = await rssKiB(vm.id, proc, true);
  const ping: number[] = [];
  for (let i = 0; i < benchSize('BENCH_PINGS', 200, 10); i++) {
    const [ms] = await timed(() => d.api.request('POST', `/api/v1/vms/${vm.id}/guest/ping`));
    ping.push(ms);
  }
  figures[variant] = { idleRssKiB: idle, execRssKiB: during, pingMs: summary(ping) };
  await d.api.request('DELETE', `/api/v1/vms/${vm.id}?force=true`);
}

const rs = figures['agent-rs'] as {
  idleRssKiB: number;
  execRssKiB: number;
  pingMs: { p50: number; p99: number };
};
const ga = figures['qemu-ga'] as {
  idleRssKiB: number;
  execRssKiB: number;
  pingMs: { p50: number; p99: number };
};
record('guest-agent', figures, [
  `agent-rs stripped static binary ${(sizeBytes / 1024 ** 2).toFixed(2)} MiB (target < 1.5 MiB)`,
  `agent-rs RSS idle ${(rs.idleRssKiB / 1024).toFixed(2)} MiB, during exec ${(rs.execRssKiB / 1024).toFixed(2)} MiB (target < 3 MiB); stock qemu-ga ${(ga.idleRssKiB / 1024).toFixed(2)} / ${(ga.execRssKiB / 1024).toFixed(2)} MiB`,
  `guest-ping through API and node p50 ${rs.pingMs.p50} ms, p99 ${rs.pingMs.p99} ms (qemu-ga p50 ${ga.pingMs.p50} ms), TCG`,
]);
