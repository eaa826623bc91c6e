import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../../src/util/proc';
import { waitFor } from '../../src/util/wait';
import { TestDaemon } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { BOOTED } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm, vmAction } from '../harness/vms';

interface CephStatus {
  configured: boolean;
  health?: {
    status: string;
    checks: { name: string }[];
    mons: { total: number };
    osds: { total: number; up: number };
    pgs: { total: number; byState: Record<string, number> };
  };
  monitors: { name: string; ip: string; inQuorum: boolean }[];
  osds: { id: number; node: string; up?: boolean }[];
  daemons: { host: string; entity: string; pid?: number; restarts: number }[];
  pool?: { size: number; warning?: string };
}

describe('integrated Ceph: set up by NeuroFlow, supervised by serve', () => {
  let d: TestDaemon;
  let host = '';
  // a loopback address of its own: no clash with the shared lab or a real Ceph on this machine
  const mon = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  beforeAll(async () => {
    d = await TestDaemon.start();
    host = (await d.api.request<{ name: string }[]>('GET', '/api/v1/nodes'))[0]!.name;
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  const status = () => d.api.request<CephStatus>('GET', '/api/v1/ceph');
  const healthy = () =>
    waitFor(
      async () => {
        const s = await status().catch(() => undefined);
        const h = s?.health;
        // MON_DISK_LOW is this machine's disk (Ceph warns below 30% free), not the cluster: it is the
        // only warning tolerated
        const ok = h?.status === 'HEALTH_OK' || h?.checks.every((c) => c.name === 'MON_DISK_LOW');
        return ok && h && h.pgs.byState['active+clean'] === h.pgs.total ? s : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 'Ceph HEALTH_OK with every PG active+clean' },
    );

  it('bootstraps a monitor and a manager on this host and says what one copy risks', async () => {
    expect(await status()).toEqual({
      configured: false,
      monitors: [],
      osds: [],
      daemons: [],
      unreachableHosts: [],
    });
    const s = await d.api.request<CephStatus>('POST', '/api/v1/ceph', {
      monitorAddress: mon,
      size: 1,
      minSize: 1,
    });
    expect(s.configured).toBe(true);
    expect(s.health?.mons.total).toBe(1);
    expect(s.daemons.map((x) => x.entity).sort()).toEqual([`mgr.${host}`, `mon.${host}`]);
    expect(s.daemons.every((x) => x.host === host)).toBe(true);
    expect(s.monitors).toEqual([{ name: host, ip: mon, inQuorum: true }]);
    expect(s.pool?.warning).toMatch(/one copy/);
    expect(
      (await rejection(d.api.request('POST', '/api/v1/ceph', { monitorAddress: mon, size: 1, minSize: 1 })))
        .code,
    ).toBe('already_exists');
  });

  it('makes an OSD on a file; refuses what is not a disk, an unknown host or a path outside the host paths', async () => {
    const bad = await rejection(
      d.api.request('POST', '/api/v1/ceph/osds', { node: host, device: '/dev/null' }),
    );
    expect(bad.code).toBe('validation_failed');
    const elsewhere = await rejection(
      d.api.request('POST', '/api/v1/ceph/osds', {
        node: 'other-host',
        device: join(d.dataDir, 'x.img'),
        sizeGiB: 4,
      }),
    );
    expect(elsewhere.code).toBe('not_found');
    const outside = await rejection(
      d.api.request('POST', '/api/v1/ceph/osds', { node: host, device: '/etc/osd.img', sizeGiB: 4 }),
    );
    expect(outside.code).toBe('forbidden');
    const s = await d.api.request<CephStatus>('POST', '/api/v1/ceph/osds', {
      node: host,
      device: join(d.dataDir, 'osd0.img'),
      sizeGiB: 4,
    });
    expect(s.daemons.map((x) => x.entity)).toContain('osd.0');
    // nothing half-done by the refusals: one OSD, the one asked for
    expect(s.osds).toMatchObject([{ id: 0, node: host, device: join(d.dataDir, 'osd0.img') }]);
    const h = await healthy();
    expect(h.health?.osds).toMatchObject({ total: 1, up: 1 });
    // the CLI says the same
    const cli = await d.cli(['ceph', 'status']);
    expect(cli).toMatch(/health HEALTH_(OK|WARN)/);
    expect(cli).toMatch(new RegExp(`osd\\.0\\s+${host}`));
  });

  it('gives VMs the shared pool "ceph": a VM boots with its disk there', async () => {
    await waitFor(
      async () =>
        (await d.api.request<{ name: string; hosts: unknown[] }[]>('GET', '/api/v1/pools')).some(
          (p) => p.name === 'ceph' && p.hosts.length === 1,
        ),
      { timeoutMs: 20_000, what: 'the host to report the pool ceph' },
    );
    const vm = await createVm(d.api, kernelVm('onceph', { disks: [{ sizeGiB: 1, pool: 'ceph' }] }));
    await vmAction(d.api, vm.id, 'start');
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    expect((await guestRun(d.api, d.dataDir, vm.id, 'cat /sys/block/vda/size')).trim()).toBe(
      String(2 * 1024 * 1024),
    );
  });

  it('keeps the Ceph daemons running across kill -9 of serve, and adopts them again', async () => {
    const before = (await status()).daemons;
    await d.kill9();
    for (const x of before) expect(pidAlive(x.pid!)).toBe(true);
    await d.launch();
    const after = (await status()).daemons;
    expect(after.map((x) => [x.entity, x.pid])).toEqual(before.map((x) => [x.entity, x.pid]));
    expect((await getVm(d.api, 'onceph')).state).toBe('running');
  });

  it('restarts a killed OSD, and health returns to OK', async () => {
    const osd = (await status()).daemons.find((x) => x.entity === 'osd.0')!;
    process.kill(osd.pid!, 'SIGKILL');
    const back = await waitFor(
      async () => (await status()).daemons.find((x) => x.entity === 'osd.0' && x.pid && x.pid !== osd.pid),
      { timeoutMs: 15_000, what: 'the OSD to be restarted' },
    );
    expect(back.restarts).toBeGreaterThanOrEqual(1);
    await healthy();
    // the guest still reads and writes its disk
    const id = (await getVm(d.api, 'onceph')).id;
    const echoed = await guestRun(d.api, d.dataDir, id, 'echo after-osd > /dev/vda && head -c 9 /dev/vda');
    expect(echoed.trim()).toBe('after-osd');
    await vmAction(d.api, 'onceph', 'stop', '?force=true');
  });
});
