import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NfError } from '../../src/errors';
import { neuroflowCommand, TestDaemon } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { testGuest } from '../harness/guest';
import { getVm, type VmView, vmAction } from '../harness/vms';

const MiB = 1024 ** 2;
/** Memory the host keeps back from VMs (HOST_RESERVE_BYTES). */
const RESERVE_MIB = 512;
const DEFINED = 1000;

interface NodeView {
  name: string;
  cpus: number;
  memoryTotalBytes: number;
  allocation: { vms: number; poweredOn: number; vcpus: number; memoryBytes: number };
}

interface Shortfall {
  host: string;
  asked: { vcpus: number; memoryMiB: number };
  free: { vcpus: number; memoryMiB: number };
  limit: { vcpus: number; memoryMiB: number };
  poweredOnVms: number;
}

/** A diskless VM booting the test kernel: defining 1,000 of them costs records only. */
function tinyVm(name: string, extra: Record<string, unknown> = {}) {
  return { name, vcpus: 1, memoryMiB: 64, boot: { kernel: testGuest().vmlinux }, ...extra };
}

describe('capacity: defined VMs cost no CPU or memory; admission at power-on', () => {
  let d: TestDaemon;
  let host: NodeView;
  beforeAll(async () => {
    d = await TestDaemon.start();
    // One vCPU per host CPU, so that a handful of guests fill the host's vCPUs.
    await d.api.request('PATCH', '/api/v1/cluster', { policy: { vcpuOvercommit: 1 } });
    host = (await d.api.request<NodeView[]>('GET', '/api/v1/nodes'))[0]!;
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  const node = async () => (await d.api.request<NodeView[]>('GET', '/api/v1/nodes'))[0]!;

  it(`defines ${DEFINED} stopped VMs on one host, all placed, none holding CPU or memory`, async () => {
    const names = Array.from({ length: DEFINED }, (_, i) => `cap${i}`);
    // four creates in flight at a time
    for (let i = 0; i < names.length; i += 4) {
      const views = await Promise.all(
        names.slice(i, i + 4).map((n) => d.api.request<VmView>('POST', '/api/v1/vms', tinyVm(n))),
      );
      for (const v of views) expect([v.name, v.state, v.node]).toEqual([v.name, 'stopped', host.name]);
    }
    const all = await d.api.request<VmView[]>('GET', '/api/v1/vms');
    expect(all.filter((v) => v.state === 'pending')).toEqual([]);
    expect((await node()).allocation).toEqual({ vms: DEFINED, poweredOn: 0, vcpus: 0, memoryBytes: 0 });
  });

  it('starts any of them while the host has room, and refuses the next start with the figures', async () => {
    const cpus = host.cpus;
    // with vcpuOvercommit 1, `cpus` one-vCPU VMs fill the host's vCPUs; pick them across the range
    const picks = Array.from({ length: cpus }, (_, i) => `cap${Math.floor(((i + 0.5) * DEFINED) / cpus)}`);
    for (const name of picks) expect((await vmAction(d.api, name, 'start')).state).toBe('running');
    expect((await node()).allocation).toMatchObject({
      poweredOn: cpus,
      vcpus: cpus,
      memoryBytes: cpus * 64 * MiB,
    });

    const next = 'cap1';
    const before = await getVm(d.api, next);
    const pidsBefore = d.qemuPids().length;
    const err = (await rejection(vmAction(d.api, next, 'start'))) as NfError & { details: Shortfall };
    expect(err.code).toBe('insufficient_capacity');
    expect(err.details).toEqual({
      host: host.name,
      asked: { vcpus: 1, memoryMiB: 64 },
      free: { vcpus: 0, memoryMiB: Math.floor(host.memoryTotalBytes / MiB) - RESERVE_MIB - cpus * 64 },
      limit: { vcpus: cpus, memoryMiB: Math.floor(host.memoryTotalBytes / MiB) - RESERVE_MIB },
      poweredOnVms: cpus,
    });
    expect(err.message).toContain(`1 vCPU asked, 0 of ${cpus} free`);
    // nothing changed: same record, no QEMU started
    const after = await getVm(d.api, next);
    expect(after).toEqual(before);
    expect(after.state).toBe('stopped');
    expect(d.qemuPids()).toHaveLength(pidsBefore);

    // stopping one makes room for exactly one
    await vmAction(d.api, picks[0]!, 'stop', '?force=true');
    expect((await vmAction(d.api, next, 'start')).state).toBe('running');
    await vmAction(d.api, next, 'stop', '?force=true');
  });

  it('refuses a start for memory with what is free and asked; the CLI says so and exits non-zero', async () => {
    const free = (await node()).allocation;
    const limitMiB = Math.floor(host.memoryTotalBytes / MiB) - RESERVE_MIB;
    const freeMiB = limitMiB - free.memoryBytes / MiB;
    await d.api.request('PATCH', '/api/v1/cluster', { policy: { vcpuOvercommit: 4 } });
    const big = await d.api.request<VmView>(
      'POST',
      '/api/v1/vms',
      tinyVm('cap-big', { memoryMiB: freeMiB + 1 }),
    );
    expect(big.state).toBe('stopped');
    const err = (await rejection(vmAction(d.api, 'cap-big', 'start'))) as NfError & { details: Shortfall };
    expect(err.code).toBe('insufficient_capacity');
    expect(err.details.asked.memoryMiB).toBe(freeMiB + 1);
    expect(err.details.free.memoryMiB).toBe(freeMiB);
    expect(err.message).toContain(`${freeMiB + 1} MiB asked, ${freeMiB} of ${limitMiB} MiB free`);

    const [bin, ...pre] = neuroflowCommand();
    const cli = spawnSync(bin!, [...pre, 'vm', 'start', 'cap-big', '--data-dir', d.dataDir], {
      encoding: 'utf8',
    });
    expect(cli.status).not.toBe(0);
    expect(cli.stderr).toContain('lacks room');
    expect((await getVm(d.api, 'cap-big')).state).toBe('stopped');
  });
});
