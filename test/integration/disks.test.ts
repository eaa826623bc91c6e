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

  it('clones a running VM from one of its snapshots: the clone has the disk as it was then', async () => {
    const src = await createVm(d.api, kernelVm('snapsrc'));
    await vmAction(d.api, src.id, 'start');
    await waitConsole(d.api, src.id, new RegExp(BOOTED));
    const run = (id: string, cmd: string) => guestRun(d.api, d.dataDir, id, cmd);
    const mark = (id: string, text: string) =>
      run(id, `printf ${text} | dd of=/dev/vda bs=6 count=1 conv=fsync 2>/dev/null; echo done`);
    const read = async (id: string) =>
      (await run(id, 'dd if=/dev/vda bs=6 count=1 2>/dev/null; echo')).trim();
    await mark(src.id, 'before');
    await d.api.request('POST', `/api/v1/vms/${src.id}/snapshots`, { name: 's1' });
    await mark(src.id, 'after_');

    // while the source runs on, and writes
    const clone = await d.api.request<{
      id: string;
      node: string;
      state: string;
      disks: { volume: string }[];
    }>('POST', `/api/v1/vms/${src.id}/clone`, { name: 'snapclone', snapshot: 's1' });
    expect(clone).toMatchObject({ state: 'stopped', node: src.node });
    expect(clone.disks[0]!.volume).toBe(`vm-${clone.id}-disk0.qcow2`);
    await vmAction(d.api, clone.id, 'start');
    await waitConsole(d.api, clone.id, new RegExp(BOOTED));
    expect(await read(clone.id)).toBe('before');
    expect(await read(src.id)).toBe('after_');
    // the copy is independent: the source's snapshot can go
    await d.api.request('DELETE', `/api/v1/vms/${src.id}/snapshots/s1`);
    expect(await read(clone.id)).toBe('before');

    // refusals name the cause and leave nothing behind
    const volumes = async () =>
      (await d.api.request<{ name: string }[]>('GET', '/api/v1/pools/local/volumes')).length;
    const before = await volumes();
    const missing = await rejection(
      d.api.request('POST', `/api/v1/vms/${src.id}/clone`, { name: 'snapclone2', snapshot: 'nope' }),
    );
    expect([missing.code, missing.message]).toEqual([
      'not_found',
      expect.stringMatching(/no snapshot "nope"/),
    ]);
    const notTemplate = await rejection(
      d.api.request('POST', `/api/v1/vms/${src.id}/clone`, { name: 'snapclone3' }),
    );
    expect(notTemplate.code).toBe('invalid_state');
    const taken = await rejection(
      d.api
        .request('POST', `/api/v1/vms/${src.id}/snapshots`, { name: 's2' })
        .then(() =>
          d.api.request('POST', `/api/v1/vms/${src.id}/clone`, { name: 'snapclone', snapshot: 's2' }),
        ),
    );
    expect(taken.code).toBe('already_exists');
    expect(await volumes()).toBe(before);
    await vmAction(d.api, clone.id, 'stop', '?force=true');
    await vmAction(d.api, src.id, 'stop', '?force=true');
  });
});
