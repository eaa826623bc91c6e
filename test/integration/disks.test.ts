import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { neuroflowCommand, TestDaemon } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { BOOTED } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { templateAndClones } from '../harness/templates';
import { createVm, getVm, kernelVm, vmAction } from '../harness/vms';

const GiB = 1024 ** 3;

describe('VM disks: grow online and offline', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  const volumeSize = async (volume: string) =>
    (
      await d.api.request<{ name: string; virtualBytes: number }[]>('GET', '/api/v1/pools/local/volumes')
    ).find((v) => v.name === volume)?.virtualBytes;

  it('grows the disk of a running VM: the guest sees the new size at once; shrinking is refused', async () => {
    const vm = await createVm(d.api, kernelVm('grow1'));
    await vmAction(d.api, vm.id, 'start');
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    const sectors = async () =>
      Number((await guestRun(d.api, d.dataDir, vm.id, 'cat /sys/block/vda/size')).trim());
    expect(await sectors()).toBe((1 * GiB) / 512);

    const grown = await d.api.request<{ disks: { sizeBytes: number }[] }>(
      'POST',
      `/api/v1/vms/${vm.id}/disks/disk0/resize`,
      { sizeGiB: 2 },
    );
    expect(grown.disks[0]!.sizeBytes).toBe(2 * GiB);
    await waitFor(async () => (await sectors()) === (2 * GiB) / 512, {
      timeoutMs: 20_000,
      what: 'the guest to see the 2 GiB disk',
    });
    expect(await volumeSize(vm.disks[0]!.volume)).toBe(2 * GiB);

    const shrink = await rejection(
      d.api.request('POST', `/api/v1/vms/${vm.id}/disks/disk0/resize`, { sizeGiB: 1 }),
    );
    expect(shrink.code).toBe('validation_failed');
    expect(shrink.message).toMatch(/can grow, not shrink/);
    const missing = await rejection(
      d.api.request('POST', `/api/v1/vms/${vm.id}/disks/disk7/resize`, { sizeGiB: 9 }),
    );
    expect(missing.code).toBe('not_found');
    const fraction = await rejection(
      d.api.request('POST', `/api/v1/vms/${vm.id}/disks/disk0/resize`, { sizeGiB: 2.0001 }),
    );
    expect(fraction.code).toBe('validation_failed');
    expect((await getVm(d.api, vm.id)).disks[0]!.sizeBytes).toBe(2 * GiB);
    await vmAction(d.api, vm.id, 'stop', '?force=true');
  });

  it('grows the disk of a stopped VM in its pool, also from the CLI', async () => {
    const vm = await createVm(d.api, kernelVm('grow2'));
    const [bin, ...pre] = neuroflowCommand();
    const cli = spawnSync(bin!, [...pre, 'vm', 'resize', 'grow2', 'disk0', '3', '--data-dir', d.dataDir], {
      encoding: 'utf8',
    });
    expect(cli.status, cli.stderr).toBe(0);
    expect((await getVm(d.api, vm.id)).disks[0]!.sizeBytes).toBe(3 * GiB);
    expect(await volumeSize(vm.disks[0]!.volume)).toBe(3 * GiB);
    // and the guest boots with it
    await vmAction(d.api, vm.id, 'start');
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    expect((await guestRun(d.api, d.dataDir, vm.id, 'cat /sys/block/vda/size')).trim()).toBe(
      String((3 * GiB) / 512),
    );
    await vmAction(d.api, vm.id, 'stop', '?force=true');
  });

  it('makes a template of a VM on the local pool, and linked clones of it on the same host', async () => {
    await templateAndClones(d, 'local');
  });
});
