import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/cli/client';
import { waitFor } from '../../src/util/wait';
import { launchChromium, signIn } from '../harness/browser';
import { ClusterHost, NetLab } from '../harness/cluster';
import { rejection } from '../harness/errors';
import { BOOTED, testGuest } from '../harness/guest';
import { guestRun, startAndBoot } from '../harness/serial';
import { TICKER, TickWatch } from '../harness/ticks';
import { kernelVm, type VmView, waitTask } from '../harness/vms';

interface CephStatus {
  configured: boolean;
  health?: {
    status: string;
    recovery?: { degradedRatio: number };
    checks: { name: string; summary: string }[];
    mons: { total: number; inQuorum: string[] };
    osds: { total: number; up: number; in: number };
    pgs: { total: number; byState: Record<string, number> };
  };
  error?: string;
  monitors: { name: string; ip: string; inQuorum: boolean }[];
  osds: { id: number; node: string; up?: boolean }[];
  daemons: { host: string; entity: string; pid?: number }[];
  pool?: { size: number; minSize: number; warning?: string };
}

/**
 * Integrated Ceph across three hosts (network namespaces, each its own `serve`): a monitor, a manager and
 * one OSD on a sparse file per host, the pool `ceph` with 3 copies (2 for I/O) on different hosts. VMs
 * use it from any host; one host dies while a guest writes and verifies a pattern, and comes back.
 */
describe('integrated Ceph on three hosts', () => {
  let lab: NetLab;
  const hosts: ClusterHost[] = [];
  let api: ApiClient;
  const h = (n: number) => hosts[n - 1]!;
  const status = () => api.request<CephStatus>('GET', '/api/v1/ceph');
  /** Health OK (MON_DISK_LOW tolerated: this machine's disk, not the cluster) with every PG active+clean. */
  const healthy = (timeoutMs = 180_000) =>
    waitFor(
      async () => {
        const s = await status().catch(() => undefined);
        const hh = s?.health;
        const ok = hh?.status === 'HEALTH_OK' || hh?.checks.every((c) => c.name === 'MON_DISK_LOW');
        return ok && hh && hh.pgs.total > 0 && hh.pgs.byState['active+clean'] === hh.pgs.total
          ? s
          : undefined;
      },
      { timeoutMs, intervalMs: 1000, what: 'Ceph HEALTH_OK with every PG active+clean' },
    );
  const vmOf = (name: string) => api.request<VmView>('GET', `/api/v1/vms/${name}`);
  const dataDirOf = (vm: VmView) => hosts.find((x) => x.name === vm.node)!.dataDir;
  const run = async (name: string, cmd: string, timeoutMs = 60_000) => {
    const vm = await vmOf(name);
    try {
      return await guestRun(api, dataDirOf(vm), vm.id, cmd, timeoutMs);
    } catch (err) {
      const tail = (await consoleLog(name).catch(() => '')).slice(-1500);
      throw new Error(`${(err as Error).message}\n--- console of ${name} ---\n${tail}`);
    }
  };
  const start = async (name: string) => {
    const id = (await vmOf(name)).id;
    await startAndBoot(
      api,
      id,
      () => api.request<VmView>('POST', `/api/v1/vms/${id}/start`),
      new RegExp(BOOTED),
    );
  };
  const consoleLog = async (name: string) =>
    (await api.request<string>('GET', `/api/v1/vms/${(await vmOf(name)).id}/console-log`)) ?? '';

  beforeAll(async () => {
    lab = new NetLab();
    for (let i = 1; i <= 3; i++) {
      const x = lab.addHost();
      hosts.push(new ClusterHost(`h${i}`, x.ns, x.ip));
    }
    await h(1).start();
    api = h(1).api(h(1).file('admin.token').trim(), h(1).file('cluster/pki/ca.crt'));
    for (const n of [2, 3]) {
      const { token } = await api.request<{ token: string }>('POST', '/api/v1/cluster/join-tokens', {
        ttlSec: 600,
        role: 'controller',
      });
      await h(n).start({ join: token });
    }
    await waitFor(
      async () =>
        (await api.request<{ state: string; connected: boolean }[]>('GET', '/api/v1/nodes')).filter(
          (n) => n.state === 'ready' && n.connected,
        ).length === 3,
      { timeoutMs: 90_000, what: 'three ready hosts' },
    );
  }, 300_000);

  afterAll(async () => {
    for (const x of hosts) {
      const report = x.crashReport();
      if (report) console.error(report);
    }
    await Promise.all(hosts.map((x) => x[Symbol.asyncDispose]()));
    await lab?.[Symbol.asyncDispose]();
  });

  it('bootstraps monitors on two controllers, adds the third, then an OSD on each host; health reaches OK', async () => {
    const t0 = Date.now();
    const boot = await api.request<CephStatus>('POST', '/api/v1/ceph', {
      size: 3,
      minSize: 2,
      monitors: ['h1', 'h2'],
    });
    expect(boot.monitors.map((m) => [m.name, m.ip, m.inQuorum])).toEqual(
      hosts.slice(0, 2).map((x) => [x.name, x.ip, true]),
    );
    // The third monitor joins with the cluster's monmap; the shared pool and every host then name it.
    const added = await api.request<CephStatus>('POST', '/api/v1/ceph/mons', { node: 'h3' });
    expect(added.monitors.map((m) => [m.name, m.ip, m.inQuorum])).toEqual(
      hosts.map((x) => [x.name, x.ip, true]),
    );
    expect(added.daemons.map((d) => `${d.host}:${d.entity}`).sort()).toEqual(
      hosts.flatMap((x) => [`${x.name}:mgr.${x.name}`, `${x.name}:mon.${x.name}`]).sort(),
    );
    const again = await rejection(api.request('POST', '/api/v1/ceph/mons', { node: 'h3' }));
    expect(again.code).toBe('already_exists');
    const pool = await api.request<{ rbd?: { monitors: string[] } }>('GET', '/api/v1/pools/ceph');
    expect(pool.rbd?.monitors.sort()).toEqual(hosts.map((x) => x.ip).sort());
    // No OSDs yet: the pool says what that risks.
    expect(added.pool?.warning).toMatch(/3 copies wanted but 0 OSD/);
    // A device outside the host's allowed paths is refused by the host, before anything is made.
    const outside = await api
      .request('POST', '/api/v1/ceph/osds', { node: 'h2', device: '/var/tmp/osd.img', sizeGiB: 8 })
      .then(
        () => undefined,
        (e: { code: string }) => e,
      );
    expect(outside?.code).toBe('forbidden');

    for (const x of hosts) {
      const s = await api.request<CephStatus>('POST', '/api/v1/ceph/osds', {
        node: x.name,
        device: join(x.dataDir, 'import', 'osd.img'),
        sizeGiB: 8,
      });
      expect(s.osds.find((o) => o.node === x.name)).toBeDefined();
    }
    const s = await healthy();
    console.log(`Ceph on three hosts, bootstrap to HEALTH_OK through the API: ${(Date.now() - t0) / 1000} s`);
    expect(s.health!.mons.inQuorum.sort()).toEqual(['h1', 'h2', 'h3']);
    expect(s.health!.osds).toEqual({ total: 3, up: 3, in: 3 });
    expect(s.pool).toMatchObject({ size: 3, minSize: 2 });
    expect(s.pool?.warning).toBeUndefined();
    expect(s.osds.map((o) => o.node).sort()).toEqual(['h1', 'h2', 'h3']);
    // Every host reaches the shared pool.
    await waitFor(
      async () =>
        (await api.request<{ name: string; hosts: unknown[] }[]>('GET', '/api/v1/pools')).some(
          (p) => p.name === 'ceph' && p.hosts.length === 3,
        ),
      { timeoutMs: 30_000, what: 'all three hosts to report the pool ceph' },
    );
  }, 420_000);

  it('boots a VM from an image on the pool on h2; its data disk grows online; a snapshot rolls back', async () => {
    const g = testGuest();
    await api.request('POST', '/api/v1/images/import', { name: 'nfdata', path: g.dataDisk });
    const img = await api.request<{ name: string; shared?: boolean }>('POST', '/api/v1/images/nfdata/copy', {
      pool: 'ceph',
    });
    expect(img.shared).toBe(true);
    const vm = await api.request<VmView>(
      'POST',
      '/api/v1/vms',
      kernelVm('writer', {
        disks: [
          { sizeGiB: 1, pool: 'ceph' },
          { image: img.name, pool: 'ceph' },
        ],
        placement: { node: 'h2' },
      }),
    );
    expect(vm.node).toBe('h2');
    await start('writer');
    expect((await run('writer', 'cat /sys/block/vdb/size')).trim()).toBe(String((64 * 1024 ** 2) / 512));
    await waitFor(async () => (await run('writer', 'mount')).includes('/data'), {
      timeoutMs: 30_000,
      what: 'the guest to mount its data disk',
    });

    // Online resize: the guest sees the new size at once.
    const disk = vm.disks[1]!.id;
    await api.request('POST', `/api/v1/vms/writer/disks/${disk}/resize`, { sizeGiB: 1 });
    expect((await run('writer', 'cat /sys/block/vdb/size')).trim()).toBe(String(1024 ** 3 / 512));

    // Snapshot (running, quiesced by the agent), change, roll back: the data inside says which.
    await run('writer', 'echo before-snap > /data/marker && sync');
    await api.request('POST', '/api/v1/vms/writer/snapshots', { name: 's1' });
    await run('writer', 'echo after-snap > /data/marker && sync');
    await api.request('POST', '/api/v1/vms/writer/stop?force=true');
    await api.request('POST', '/api/v1/vms/writer/snapshots/s1/revert');
    await start('writer');
    await waitFor(async () => (await run('writer', 'cat /data/marker')).includes('-snap'), {
      timeoutMs: 30_000,
      what: 'the marker to be readable',
    });
    expect((await run('writer', 'cat /data/marker')).trim()).toBe('before-snap');
    expect((await vmOf('writer')).node).toBe('h2');
  }, 420_000);

  it('makes a template and two linked clones that boot on two different hosts', async () => {
    const tpl = await api.request<VmView>(
      'POST',
      '/api/v1/vms',
      kernelVm('golden', { disks: [{ sizeGiB: 1, pool: 'ceph' }], placement: { node: 'h1' } }),
    );
    await start('golden');
    await run('golden', 'echo golden-data > /dev/vda && sync');
    await api.request('POST', '/api/v1/vms/golden/stop?force=true');
    await api.request('POST', `/api/v1/vms/${tpl.id}/template`);
    const clones: VmView[] = [];
    for (const node of ['h1', 'h3'])
      clones.push(
        await api.request<VmView>('POST', `/api/v1/vms/${tpl.id}/clone`, {
          name: `clone-${node}`,
          placement: { node },
        }),
      );
    expect(clones.map((c) => c.node)).toEqual(['h1', 'h3']);
    for (const c of clones) {
      await start(c.name);
      expect((await run(c.name, 'head -c 11 /dev/vda')).trim()).toBe('golden-data');
      await api.request('POST', `/api/v1/vms/${c.name}/stop?force=true`);
    }
  }, 420_000);

  it('keeps a guest writing without an I/O error while a whole OSD host is down; every block verifies', async () => {
    // A pattern kept in guest RAM: one region written once before the failure, one rewritten and read
    // back in a loop during it (O_DIRECT both ways, so the disk answers, not the page cache).
    await run(
      'writer',
      'dd if=/dev/urandom of=/tmp/p bs=1M count=4 2>/dev/null; dd if=/dev/urandom of=/tmp/q bs=1M count=4 2>/dev/null; ' +
        'dd if=/tmp/q of=/dev/vda bs=1M seek=16 oflag=direct conv=fsync 2>/dev/null && echo q-written',
    );
    await run(
      'writer',
      'touch /tmp/go; (i=0; while [ -e /tmp/go ]; do i=$((i+1)); ' +
        "dd if=/tmp/p of=/dev/vda bs=1M oflag=direct conv=fsync 2>/dev/null || echo IO''ERR-w-$i; " +
        "dd if=/dev/vda of=/tmp/r bs=1M count=4 iflag=direct 2>/dev/null || echo IO''ERR-r-$i; " +
        "if cmp -s /tmp/p /tmp/r; then echo PASS-$i; else echo BAD-$i; fi; done; echo LOOP''-DONE) & true",
    );
    const passes = async () => [...(await consoleLog('writer')).matchAll(/PASS-(\d+)/g)].length;
    await waitFor(async () => (await passes()) >= 2, { timeoutMs: 60_000, what: 'the write loop to run' });

    // h3 dies with everything on it: serve, etcd, its monitor, manager and OSD.
    await h(3).powerOff();
    const atKill = await passes();
    const degraded = await waitFor(
      async () => {
        const s = await status().catch(() => undefined);
        return s?.health && s.health.osds.up === 2 ? s : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 1000, what: 'Ceph to see the OSD of h3 down' },
    );
    expect(degraded.health!.status).not.toBe('HEALTH_OK');
    expect(degraded.health!.mons.inQuorum.sort()).toEqual(['h1', 'h2']);
    // I/O goes on with two copies.
    await waitFor(async () => (await passes()) >= atKill + 3, {
      timeoutMs: 120_000,
      what: 'the guest to keep writing and verifying with h3 down',
    });
    // The status says how much is degraded (a third of every object's copies are gone).
    const deg = await waitFor(async () => (await status()).health?.recovery, {
      timeoutMs: 60_000,
      intervalMs: 1000,
      what: 'Ceph to report degraded objects',
    });
    expect(deg.degradedRatio).toBeGreaterThan(0);

    // h3 comes back: its daemons start again, the OSD catches up, health returns to OK.
    await h(3).start();
    const back = await healthy(240_000);
    expect(back.health!.osds).toEqual({ total: 3, up: 3, in: 3 });
    expect(back.health!.mons.inQuorum.sort()).toEqual(['h1', 'h2', 'h3']);
    const atBack = await passes();
    await waitFor(async () => (await passes()) >= atBack + 2, { timeoutMs: 60_000, what: 'more passes' });

    await run('writer', 'rm /tmp/go');
    await waitFor(async () => (await consoleLog('writer')).includes('LOOP-DONE'), {
      timeoutMs: 60_000,
      what: 'the loop to end',
    });
    const log = await consoleLog('writer');
    expect(log).not.toMatch(/BAD-\d|IOERR-[wr]-\d|I\/O error|blk_update_request/);
    // The region written before the failure is intact too.
    const q = await run(
      'writer',
      'dd if=/dev/vda of=/tmp/q2 bs=1M skip=16 count=4 iflag=direct 2>/dev/null; cmp -s /tmp/q /tmp/q2 && echo SAME',
    );
    expect(q.trim()).toBe('SAME');
  }, 600_000);

  it('live-migrates a guest on the shared pool to another host: only RAM moves, its counter keeps ticking', async () => {
    const created = await api.request<VmView>(
      'POST',
      '/api/v1/vms',
      kernelVm('mover', { disks: [{ sizeGiB: 1, pool: 'ceph' }] }),
    );
    await start('mover');
    const sum = (
      await run(
        'mover',
        'dd if=/dev/urandom of=/tmp/p bs=1M count=4 2>/dev/null; dd if=/tmp/p of=/dev/vda bs=1M seek=16 oflag=direct conv=fsync 2>/dev/null; md5sum </tmp/p',
      )
    ).trim();
    const before = await vmOf('mover');
    expect(before.id).toBe(created.id);
    const target = hosts.map((x) => x.name).find((n) => n !== before.node)!;
    await run('mover', TICKER);
    const logs = () =>
      [before.node, target].map((n) =>
        join(hosts.find((x) => x.name === n)!.dataDir, 'node', 'vms', before.id, 'console.log'),
      );
    const ticks = new TickWatch(logs);
    ticks.start();
    try {
      await waitFor(() => ticks.count >= 20, { timeoutMs: 30_000, what: 'the guest counter to tick' });
      const t = await api.request<{ id: string }>('POST', '/api/v1/vms/mover/migrate', { node: target });
      const done = await waitTask(api, t.id, 120_000);
      expect(done.error).toBeUndefined();
      expect(done.details?.disks).toBeUndefined(); // a shared disk is not copied
      const seen = ticks.count;
      await waitFor(() => ticks.count >= seen + 20, { timeoutMs: 30_000, what: 'ticks on the target' });
      const gap = ticks.maxGap();
      console.log(
        `migration on RBD: QEMU downtime ${done.result?.downtimeMs} ms, guest-visible ${gap.ms} ms, total ${done.result?.totalMs} ms`,
      );
    } finally {
      ticks.stop();
    }
    const after = await vmOf('mover');
    expect(after.node).toBe(target);
    // The data written on the source is read back on the new host, from the same RBD image.
    await run('mover', 'kill %1 2>/dev/null; true');
    const again = await run(
      'mover',
      'dd if=/dev/vda bs=1M skip=16 count=4 iflag=direct 2>/dev/null | md5sum',
    );
    // a last counter line may still sit among the output: compare the sums
    expect(/[0-9a-f]{32}/.exec(again)?.[0]).toBe(/[0-9a-f]{32}/.exec(sum)?.[0]);
    await api.request('POST', '/api/v1/vms/mover/stop?force=true');
  }, 240_000);

  it('shows monitors, OSDs and daemons of every host in the web UI', async () => {
    const browser = await launchChromium();
    try {
      const { page, pageErrors } = await signIn(browser, h(1).url, h(1).file('root.password').trim());
      await page.click('.topbar nav a:has-text("Storage")');
      const rows = page.locator('.ceph-daemons tr[data-host]');
      await page.waitForFunction(
        () => document.querySelectorAll('.ceph-daemons tr[data-host]').length === 3,
        undefined,
        {
          timeout: 30_000,
        },
      );
      expect(await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-host')))).toEqual([
        'h1',
        'h2',
        'h3',
      ]);
      for (const n of ['h1', 'h2', 'h3']) {
        const text = await page.locator(`.ceph-daemons tr[data-host="${n}"]`).textContent();
        expect(text).toContain('in quorum');
        expect(text).toMatch(/osd\.\d+ up/);
        expect(text).toContain(`mon.${n}`);
      }
      expect(await page.locator('.ceph-card .health').textContent()).toMatch(/HEALTH_(OK|WARN)/);
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
