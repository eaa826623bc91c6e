import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { TestDaemon } from '../harness/daemon';
import { BOOTED } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm } from '../harness/vms';

type Metrics = { range: string; intervalSec: number; points: Record<string, number | null>[] };

describe('monitoring data kept by the node', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start({ env: { NEUROFLOW_METRICS_INTERVAL_MS: '300' } });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it('records CPU, memory, disk and network figures that follow what the guest does', async () => {
    const vm = await createVm(d.api, kernelVm('mon1', { start: true }));
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    await waitFor(async () => (await getVm(d.api, vm.id)).agent?.status === 'connected', {
      timeoutMs: 60_000,
      what: 'the agent',
    });
    const metrics = () => d.api.request<Metrics>('GET', `/api/v1/vms/${vm.id}/metrics?range=1h`);
    // 8 MiB written inside the guest must show up as disk write throughput.
    await guestRun(
      d.api,
      d.dataDir,
      vm.id,
      'dd if=/dev/zero of=/dev/vda bs=1M count=8 oflag=direct 2>/dev/null; sync',
    );
    const points = await waitFor(
      async () => {
        const m = await metrics();
        const written = m.points.reduce((sum, p) => sum + (p.diskWriteBps ?? 0) * m.intervalSec, 0);
        return written >= 8 * 1024 * 1024 * 0.5 ? m.points : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 300, what: 'the disk writes to appear in the metrics' },
    );
    expect(points.some((p) => (p.cpuPercent ?? 0) > 0)).toBe(true);
    expect(points.at(-1)!.memoryBytes).toBeGreaterThan(32 * 1024 * 1024);
    expect(points.every((p, i) => i === 0 || p.t! > points[i - 1]!.t!)).toBe(true);
    // Network counters come from the guest agent once it answers.
    await waitFor(async () => (await metrics()).points.some((p) => p.netRxBps !== null), {
      timeoutMs: 30_000,
      intervalMs: 300,
      what: 'network figures',
    });

    const nodes = await d.api.request<{ name: string }[]>('GET', '/api/v1/nodes');
    const host = await d.api.request<Metrics>('GET', `/api/v1/nodes/${nodes[0]!.name}/metrics`);
    expect(host.points.length).toBeGreaterThan(0);
    expect(host.points.at(-1)!.memoryUsedBytes).toBeGreaterThan(0);
    await expect(d.api.request('GET', '/api/v1/nodes/nope/metrics')).rejects.toMatchObject({
      code: 'not_found',
    });
    await expect(d.api.request('GET', `/api/v1/vms/${vm.id}/metrics?range=1y`)).rejects.toMatchObject({
      code: 'validation_failed',
    });
  });
});
