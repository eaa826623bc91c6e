import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { TestDaemon } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { BOOTED } from '../harness/guest';
import { guestRun, startAndBoot } from '../harness/serial';
import { createVm, getVm, kernelVm, vmAction } from '../harness/vms';

interface Devices {
  disks: { id: string; volume: string; slot?: string }[];
  networks: { id: string; slot?: string }[];
  hotplug?: unknown;
}

describe('hot-plug of disks and NICs', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  const run = (id: string, cmd: string) => guestRun(d.api, d.dataDir, id, cmd);
  const boot = (id: string) =>
    startAndBoot(d.api, id, () => vmAction(d.api, id, 'start'), new RegExp(BOOTED), 240_000);
  /** Waits until the guest's listing of a sysfs directory has (or lacks) an entry. */
  const guestSees = (id: string, dir: string, entry: string, present = true) =>
    waitFor(async () => (await run(id, `ls ${dir}`)).split(/\s+/).includes(entry) === present, {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: `${entry} to ${present ? 'appear in' : 'leave'} ${dir}`,
    });
  const vmDevices = (id: string) => d.api.request<Devices>('GET', `/api/v1/vms/${id}`);

  it('plugs a disk and a NIC into a running guest and takes them out again; refuses what cannot be done', async () => {
    const vm = await createVm(d.api, kernelVm('hp1'));
    await boot(vm.id);

    const withDisk = await d.api.request<Devices>('POST', `/api/v1/vms/${vm.id}/disks`, { sizeGiB: 1 });
    expect(withDisk.disks.at(-1)).toMatchObject({ id: 'disk1', slot: 'hp0' });
    await guestSees(vm.id, '/sys/block', 'vdb');
    expect((await run(vm.id, 'cat /sys/block/vdb/size')).trim()).toBe(String(1024 ** 3 / 512));

    const withNic = await d.api.request<Devices>('POST', `/api/v1/vms/${vm.id}/networks`, {
      network: 'default',
    });
    expect(withNic.networks.at(-1)).toMatchObject({ id: 'net1', slot: 'hp1' });
    await guestSees(vm.id, '/sys/class/net', 'eth1');

    // what cannot be done live is refused, and nothing changes
    const sata = await rejection(
      d.api.request('POST', `/api/v1/vms/${vm.id}/disks`, { sizeGiB: 1, bus: 'sata' }),
    );
    expect(sata.code).toBe('invalid_state');
    const first = await rejection(d.api.request('DELETE', `/api/v1/vms/${vm.id}/disks/disk0`));
    expect(first.message).toMatch(/attached at its start/);
    await d.api.request('POST', `/api/v1/vms/${vm.id}/snapshots`, { name: 's1' });
    const needed = await rejection(d.api.request('DELETE', `/api/v1/vms/${vm.id}/disks/disk1`));
    expect(needed.code).toBe('in_use');
    await d.api.request('DELETE', `/api/v1/vms/${vm.id}/snapshots/s1`);
    expect((await vmDevices(vm.id)).disks.map((x) => x.id)).toEqual(['disk0', 'disk1']);

    await d.api.request('DELETE', `/api/v1/vms/${vm.id}/networks/net1`);
    await guestSees(vm.id, '/sys/class/net', 'eth1', false);
    const noDisk = await d.api.request<Devices>('DELETE', `/api/v1/vms/${vm.id}/disks/disk1`);
    expect(noDisk.disks.map((x) => x.id)).toEqual(['disk0']);
    expect(noDisk.networks.map((x) => x.id)).toEqual(['net0']);
    await guestSees(vm.id, '/sys/block', 'vdb', false);
    // the volume stays in the pool unless asked
    const volumes = await d.api.request<{ name: string }[]>('GET', '/api/v1/pools/local/volumes');
    expect(volumes.map((v) => v.name)).toContain(`vm-${vm.id}-disk1.qcow2`);
    // a new disk never takes the kept volume's name (its old data)
    const again = await d.api.request<Devices>('POST', `/api/v1/vms/${vm.id}/disks`, { sizeGiB: 1 });
    expect(again.disks.at(-1)?.id).toBe('disk2');
    await guestSees(vm.id, '/sys/block', 'vdb');
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    // stopped: the record changes, and the next start has it
    await d.api.request('DELETE', `/api/v1/vms/${vm.id}/disks/disk2?deleteVolume=true`);
    const left = await d.api.request<{ name: string }[]>('GET', '/api/v1/pools/local/volumes');
    expect(left.map((v) => v.name)).not.toContain(`vm-${vm.id}-disk2.qcow2`);
  });

  it('a serve killed in the middle of a hot-plug leaves the record and QEMU in agreement', async () => {
    const vm = await createVm(d.api, kernelVm('hp2'));
    await boot(vm.id);
    for (const [fault, kept] of [
      ['hotplug-after-qemu', true], // QEMU has the disk, the record still says "under way"
      ['hotplug-before-qemu', false], // the record names the disk, QEMU never got it
    ] as const) {
      d.env = { NEUROFLOW_FAULT: fault };
      await d.kill9();
      await d.launch();
      // the daemon dies (SIGKILL from itself) in the middle of the request
      await rejection(d.api.request('POST', `/api/v1/vms/${vm.id}/disks`, { sizeGiB: 1 }));
      d.env = {};
      await d.kill9();
      await d.launch();
      const settled = await waitFor(
        async () => {
          const v = await vmDevices(vm.id);
          return v.hotplug === undefined ? v : undefined;
        },
        { timeoutMs: 60_000, what: `the hot-plug cut by ${fault} to be settled` },
      );
      const ids = settled.disks.map((x) => x.id);
      expect(ids.includes('disk1'), fault).toBe(kept);
      // what the guest sees is what the record says
      if (kept) {
        await guestSees(vm.id, '/sys/block', 'vdb');
        await d.api.request('DELETE', `/api/v1/vms/${vm.id}/disks/disk1?deleteVolume=true`);
        await guestSees(vm.id, '/sys/block', 'vdb', false);
      } else expect((await run(vm.id, 'ls /sys/block')).split(/\s+/)).not.toContain('vdb');
      expect((await getVm(d.api, vm.id)).state).toBe('running');
    }
    await vmAction(d.api, vm.id, 'stop', '?force=true');
  });

  it("a disk's I/O limits and a NIC's link apply at once and at the next start", async () => {
    const vm = await createVm(d.api, kernelVm('tune1'));
    await boot(vm.id);
    const limited = await d.api.request<{ disks: { limits?: unknown }[] }>(
      'PATCH',
      `/api/v1/vms/${vm.id}/disks/disk0`,
      { limits: { bps: 1024 ** 2 } },
    );
    expect(limited.disks[0]!.limits).toEqual({ bps: 1024 ** 2 });
    // 4 MiB at 1 MiB/s (synced to the disk, so the page cache cannot hide it)
    const secs = Number(
      (
        await run(
          vm.id,
          's=$(date +%s); dd if=/dev/zero of=/dev/vda bs=64k count=64 conv=fsync 2>/dev/null; echo $(($(date +%s)-s))',
        )
      ).trim(),
    );
    expect(secs).toBeGreaterThanOrEqual(2);
    const both = await rejection(
      d.api.request('PATCH', `/api/v1/vms/${vm.id}/disks/disk0`, { limits: { iops: 100, iopsRead: 50 } }),
    );
    expect(both.code).toBe('validation_failed');
    const unlimited = await d.api.request<{ disks: { limits?: unknown }[] }>(
      'PATCH',
      `/api/v1/vms/${vm.id}/disks/disk0`,
      { limits: {} },
    );
    expect(unlimited.disks[0]!.limits).toBeUndefined();

    const carrier = async () => (await run(vm.id, 'cat /sys/class/net/eth0/carrier')).trim();
    await d.api.request('PATCH', `/api/v1/vms/${vm.id}/networks/net0`, { link: 'down' });
    await waitFor(async () => (await carrier()) === '0', {
      timeoutMs: 20_000,
      intervalMs: 500,
      what: 'no carrier',
    });
    // kept: the next start has the cable pulled from the first instruction
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    await boot(vm.id);
    expect(await carrier()).toBe('0');
    await d.api.request('PATCH', `/api/v1/vms/${vm.id}/networks/net0`, { link: 'up' });
    await waitFor(async () => (await carrier()) === '1', {
      timeoutMs: 20_000,
      intervalMs: 500,
      what: 'the carrier',
    });
    await vmAction(d.api, vm.id, 'stop', '?force=true');
  });
});
