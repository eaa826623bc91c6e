import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NfError } from '../../src/errors';
import { waitFor } from '../../src/util/wait';
import { type SharedLab, sharedCephLab } from '../harness/ceph';
import { TestDaemon } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { BOOTED, testGuest } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { templateAndClones } from '../harness/templates';
import { createVm, kernelVm, vmAction } from '../harness/vms';

interface Pool {
  name: string;
  type: string;
  capabilities: { shared: boolean };
  hosts: { name: string; totalBytes: number }[];
  totalBytes: number;
  vms: number;
}

describe('shared storage: an existing Ceph RBD pool, used by VMs', () => {
  let lab: SharedLab;
  let ceph: Awaited<ReturnType<SharedLab['newPool']>>;
  let d: TestDaemon;
  let key: string;
  beforeAll(async () => {
    d = await TestDaemon.start();
    lab = await sharedCephLab();
    ceph = await lab.newPool();
    key = ceph.key;
  }, 300_000);
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  const body = (over: Record<string, unknown> = {}) => ({
    name: 'ceph',
    type: 'rbd',
    pool: ceph.pool,
    monitors: [lab.ip],
    user: ceph.user,
    key,
    ...over,
  });
  const pools = () => d.api.request<Pool[]>('GET', '/api/v1/pools');

  it('refuses a wrong key or Ceph pool with a clear error and stores nothing', async () => {
    const wrongKey = await rejection(
      d.api.request('POST', '/api/v1/pools', body({ key: 'AQBSdVRnAAAAABAAt7ZKy2wPwp8RZQcTvv0Dmw==' })),
    );
    expect(wrongKey.code).toBe('validation_failed');
    expect(wrongKey.message).toMatch(/cannot use Ceph pool "nf-\w+" as user nf-\w+.*nothing was stored/);
    const wrongPool = await rejection(d.api.request('POST', '/api/v1/pools', body({ pool: 'nope' })));
    expect(wrongPool.message).toMatch(/Ceph pool nope does not exist/);
    expect((await pools()).map((p) => p.name)).toEqual(['local']);
  });

  it('adds the pool; every host reaches it; the key is never shown', async () => {
    const created = await d.api.request<Pool>('POST', '/api/v1/pools', body());
    expect(created).toMatchObject({ name: 'ceph', type: 'rbd', capabilities: { shared: true } });
    expect(JSON.stringify(created)).not.toContain(key);
    const dup = await rejection(d.api.request('POST', '/api/v1/pools', body()));
    expect(dup.code).toBe('already_exists');
    const reached = await waitFor(
      async () => (await pools()).find((p) => p.name === 'ceph' && p.hosts.length === 1),
      { timeoutMs: 15_000, what: 'the host to report the ceph pool' },
    );
    expect(reached.totalBytes).toBeGreaterThan(0);
    expect(JSON.stringify(await pools())).not.toContain(key);
  });

  it('runs a VM with a disk on the RBD pool, and refuses to remove the pool while it is used', async () => {
    const vm = await createVm(d.api, kernelVm('rbd1', { disks: [{ sizeGiB: 1, pool: 'ceph' }] }));
    expect(vm.state).toBe('stopped');
    const volumes = await d.api.request<{ name: string; virtualBytes: number }[]>(
      'GET',
      '/api/v1/pools/ceph/volumes',
    );
    expect(volumes).toEqual([
      expect.objectContaining({ name: vm.disks[0]!.volume, virtualBytes: 1024 ** 3 }),
    ]);

    await vmAction(d.api, vm.id, 'start');
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    // the guest sees a 1 GiB disk and keeps what it writes on it
    expect((await guestRun(d.api, d.dataDir, vm.id, 'cat /sys/block/vda/size')).trim()).toBe(
      String(2 * 1024 * 1024),
    );
    expect(
      (
        await guestRun(d.api, d.dataDir, vm.id, 'echo nf-rbd-data > /dev/vda && sync && head -c 11 /dev/vda')
      ).trim(),
    ).toBe('nf-rbd-data');

    // grown online on RBD: the guest sees 2 GiB
    await d.api.request('POST', `/api/v1/vms/${vm.id}/disks/disk0/resize`, { sizeGiB: 2 });
    await waitFor(
      async () =>
        (await guestRun(d.api, d.dataDir, vm.id, 'cat /sys/block/vda/size')).trim() ===
        String(4 * 1024 * 1024),
      { timeoutMs: 20_000, what: 'the guest to see the grown RBD disk' },
    );
    expect((await ceph.rbdPool().volumeInfo(vm.disks[0]!.volume))?.virtualBytes).toBe(2 * 1024 ** 3);

    // a disk image copied into the pool: two VMs are linked clones of it, and one boots with its data
    await d.api.request('POST', '/api/v1/images/import', { name: 'data', path: testGuest().dataDisk });
    const img = await d.api.request<{ id: string; name: string; pool: string; shared: boolean }>(
      'POST',
      '/api/v1/images/data/copy',
      { pool: 'ceph' },
    );
    expect(img).toMatchObject({ name: 'data-ceph', pool: 'ceph', shared: true });
    const clones = await Promise.all(
      ['clone1', 'clone2'].map((name) =>
        createVm(d.api, kernelVm(name, { disks: [{ image: 'data-ceph', pool: 'ceph' }] })),
      ),
    );
    const vols = await d.api.request<{ name: string; parent?: string }[]>(
      'GET',
      '/api/v1/pools/ceph/volumes',
    );
    for (const c of clones) expect(vols.find((v) => v.name === c.disks[0]!.volume)?.parent).toMatch(/^img-/);
    await vmAction(d.api, clones[0]!.id, 'start');
    await waitConsole(d.api, clones[0]!.id, /NEUROFLOW-TEST-GUEST: data=\/data/);
    const imgDelete = await rejection(d.api.request('DELETE', '/api/v1/images/data-ceph'));
    expect(imgDelete.code).toBe('in_use');
    for (const c of clones) await d.api.request('DELETE', `/api/v1/vms/${c.id}?force=true`);
    await d.api.request('DELETE', '/api/v1/images/data-ceph');

    // a template on the pool, and two linked clones of it that see its data
    await templateAndClones(d, 'ceph');

    const inUse = (await rejection(d.api.request('DELETE', '/api/v1/pools/ceph'))) as NfError;
    expect(inUse.code).toBe('in_use');
    expect(inUse.message).toContain('rbd1');

    await d.api.request('DELETE', `/api/v1/vms/${vm.id}?force=true`);
    expect(await d.api.request('GET', '/api/v1/pools/ceph/volumes')).toEqual([]);
    await d.api.request('DELETE', '/api/v1/pools/ceph');
    expect((await pools()).map((p) => p.name)).toEqual(['local']);
  });
});
