import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/cli/client';
import type { DrsStatus as Drs } from '../../src/controller/drs';
import { waitFor } from '../../src/util/wait';
import { launchChromium, signIn } from '../harness/browser';
import { ClusterHost, NetLab, readyHosts, tearDown } from '../harness/cluster';
import { rejection } from '../harness/errors';
import { BOOTED } from '../harness/guest';
import { guestRun, startAndBoot, waitConsole } from '../harness/serial';
import { TICKER, TickWatch } from '../harness/ticks';
import { kernelVm, type TaskView, type VmView, waitTask } from '../harness/vms';

type Task = TaskView & { result?: { target: string; downtimeMs: number; totalMs: number } };

/**
 * Live migration between two hosts in network namespaces (each its own `serve`): a guest on local `dir`
 * disks moves with its disks (mirrored over NBD, TLS) while a counter keeps ticking on its serial line;
 * a cancel and a target whose daemon is killed -9 in the middle leave it running on its source.
 */
describe('live migration between two hosts', () => {
  let lab: NetLab;
  const hosts: ClusterHost[] = [];
  let api: ApiClient;
  const h = (n: string) => hosts.find((x) => x.name === n)!;
  const vmOf = (name: string) => api.request<VmView>('GET', `/api/v1/vms/${name}`);
  const other = (node: string) => (node === 'h1' ? 'h2' : 'h1');
  const run = async (name: string, cmd: string, timeoutMs = 60_000) => {
    const vm = await vmOf(name);
    return guestRun(api, h(vm.node).dataDir, vm.id, cmd, timeoutMs);
  };
  const task = (id: string) => api.request<Task>('GET', `/api/v1/tasks/${id}`);
  const ended = (id: string, timeoutMs = 180_000) => waitTask(api, id, timeoutMs) as Promise<Task>;
  /** Waits for a migration to copy memory (and fails with the task's error if it ended instead). */
  const inMemoryPhase = (id: string) =>
    waitFor(
      async () => {
        const t = await task(id);
        if (t.status !== 'running') throw new Error(`the migration ended: ${JSON.stringify(t)}`);
        return t.details?.phase === 'memory';
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'the memory copy to start' },
    );
  const bothReady = () => readyHosts(api, 2);
  /** A browser page signed in as root on h1. */
  const rootPage = (browser: Awaited<ReturnType<typeof launchChromium>>) =>
    signIn(browser, h('h1').url, h('h1').file('root.password').trim());
  // migrations on the lab's network, named as a migration network (the management one here too); every
  // start of a host passes it
  let env: Record<string, string> = {};
  /** QEMU processes of the VM on the machine (every host's). */
  const qemus = (id: string) =>
    spawnSync('pgrep', ['-f', `qemu-system.*${id}`], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean).length;
  /** The md5 of the 4 MiB the guest wrote at 16 MiB of its disk (by the migration test). */
  let dataSum = '';
  const volumePath = (host: string, volume: string) =>
    join(h(host).dataDir, 'pools', 'local', 'disks', volume);

  beforeAll(async () => {
    lab = new NetLab();
    for (let i = 1; i <= 2; i++) {
      const x = lab.addHost();
      hosts.push(new ClusterHost(`h${i}`, x.ns, x.ip));
    }
    env = { NEUROFLOW_MIGRATION_NETWORK: `${lab.subnet}.0/24`, NEUROFLOW_OVERLAY_INTERFACE: 'eth1' };
    await h('h1').start({ env });
    api = h('h1').api(h('h1').file('admin.token').trim(), h('h1').file('cluster/pki/ca.crt'));
    const { token } = await api.request<{ token: string }>('POST', '/api/v1/cluster/join-tokens', {
      ttlSec: 600,
    });
    await h('h2').start({ join: token, env });
    for (const x of hosts)
      await waitFor(() => x.output.includes('migrations use the migration network'), {
        timeoutMs: 5000,
        what: `${x.name} to say it uses the migration network`,
      });
    await bothReady();
    const vm = await api.request<VmView>('POST', '/api/v1/vms', kernelVm('mig'));
    await startAndBoot(
      api,
      vm.id,
      () => api.request('POST', `/api/v1/vms/${vm.id}/start`),
      new RegExp(BOOTED),
    );
  }, 300_000);

  afterAll(() => tearDown(hosts, lab));

  it('refuses what cannot migrate, naming why, and starts nothing', async () => {
    const vm = await vmOf('mig');
    const self = await rejection(api.request('POST', `/api/v1/vms/mig/migrate`, { node: vm.node }));
    expect(self.code).toBe('validation_failed');
    const nowhere = await rejection(api.request('POST', `/api/v1/vms/mig/migrate`, { node: 'h9' }));
    expect(nowhere.code).toBe('not_found');
    const bad = await rejection(api.request('POST', `/api/v1/vms/mig/migrate`, { maxBandwidthMiBps: 0 }));
    expect(bad.code).toBe('validation_failed');
    const stopped = await api.request<VmView>('POST', '/api/v1/vms', kernelVm('stopped-one'));
    const off = await rejection(api.request('POST', `/api/v1/vms/${stopped.id}/migrate`, {}));
    expect(off.code).toBe('invalid_state');
    expect(off.message).toMatch(/not running/);
    await api.request('DELETE', `/api/v1/vms/${stopped.id}`);
    expect((await vmOf('mig')).migration).toBeUndefined();
    expect(qemus(vm.id)).toBe(1);
  });

  it('moves a running guest with its local disk; the counter keeps ticking and the data checks out', async () => {
    const before = await vmOf('mig');
    const source = before.node;
    const target = other(source);
    const volume = before.disks[0]!.volume;
    // Known data on the disk, and the counter on the serial line (10 ms apart).
    const sum = (
      await run(
        'mig',
        'dd if=/dev/urandom of=/tmp/p bs=1M count=4 2>/dev/null; dd if=/tmp/p of=/dev/vda bs=1M seek=16 oflag=direct conv=fsync 2>/dev/null; md5sum </tmp/p',
      )
    ).trim();
    expect(sum).toMatch(/^[0-9a-f]{32}/);
    dataSum = /[0-9a-f]{32}/.exec(sum)![0];
    await run('mig', TICKER);
    const logs = () =>
      [source, target].map((n) => join(h(n).dataDir, 'node', 'vms', before.id, 'console.log'));
    const ticks = new TickWatch(logs);
    ticks.start();
    try {
      await waitFor(() => ticks.count >= 20, { timeoutMs: 30_000, what: 'the guest counter to tick' });
      const t0 = await api.request<Task>('POST', '/api/v1/vms/mig/migrate', {});
      expect(t0.cancellable).toBe(true);
      expect(t0.details?.target).toBe(target); // the scheduler's choice: the only other host
      expect(t0.details?.why).toMatch(/scheduler chose/);
      const done = await ended(t0.id);
      expect(done.error).toBeUndefined();
      expect(done.status).toBe('ok');
      expect(done.result?.target).toBe(target);
      expect(done.result?.downtimeMs).toBeTypeOf('number');
      const after = await vmOf('mig');
      expect(after.node).toBe(target);
      expect(after.migration).toBeUndefined();
      expect(after.state).toBe('running');
      const seenBefore = ticks.count;
      await waitFor(() => ticks.count >= seenBefore + 20, {
        timeoutMs: 30_000,
        what: 'the counter to tick on the target',
      });
      const gap = ticks.maxGap();
      console.log(
        `migration with a local disk: QEMU downtime ${done.result?.downtimeMs} ms, guest-visible ${gap.ms} ms (at tick ${gap.at}), total ${done.result?.totalMs} ms`,
      );
      // the guest cannot have been paused for less than QEMU measured
      expect(gap.ms).toBeGreaterThanOrEqual(done.result!.downtimeMs);
    } finally {
      ticks.stop();
    }
    // One QEMU (on the target), the data moved with the disk, and the source's volume is gone.
    expect(qemus(before.id)).toBe(1);
    await run('mig', 'kill %1 2>/dev/null; true');
    const again = await run('mig', 'dd if=/dev/vda bs=1M skip=16 count=4 iflag=direct 2>/dev/null | md5sum');
    // a last counter line may still sit among the output: compare the sums
    expect(/[0-9a-f]{32}/.exec(again)?.[0]).toBe(/[0-9a-f]{32}/.exec(sum)?.[0]);
    expect(existsSync(volumePath(source, volume))).toBe(false);
    expect(existsSync(volumePath(target, volume))).toBe(true);
  }, 240_000);

  it('backs up a running VM of h2 into a shared, encrypted repository through h1; h1 restores it, the data checks out', async () => {
    const vm = await vmOf('mig');
    expect(vm.node).toBe('h2'); // moved there by the test before
    // a repository of h1 that is not shared: h2 cannot write into it
    await api.request('POST', '/api/v1/backup/repositories', {
      name: 'h1only',
      path: join(h('h1').dataDir, 'backups', 'h1only'),
    });
    expect(
      await rejection(api.request('POST', '/api/v1/vms/mig/backup', { repository: 'h1only' })),
    ).toMatchObject({
      code: 'invalid_state',
      message: expect.stringMatching(/runs on host h2 .* not shared/),
    });
    // both namespace hosts see one file system: the path stands for an NFS mount on every host
    await api.request('POST', '/api/v1/backup/repositories', {
      name: 'shared',
      path: join(h('h1').dataDir, 'backups', 'shared'),
      shared: true,
      encrypt: true,
    });
    const t = await api.request<Task>('POST', '/api/v1/vms/mig/backup', { repository: 'shared' });
    const done = await ended(t.id);
    expect(done.error).toBeUndefined();
    const b = done.result as unknown as { id: string; node: string; disks: { mode: string }[] };
    expect(b).toMatchObject({ node: 'h2', disks: [{ mode: 'full' }] });
    expect(
      (await api.request<{ id: string }[]>('GET', '/api/v1/backups?repository=shared')).map((x) => x.id),
    ).toEqual([b.id]);

    // restored by h1 into its own pool: the 4 MiB written before the migration are there
    const r = await api.request<Task>('POST', `/api/v1/backups/${b.id}/restore`, { name: 'mig-restored' });
    expect((await ended(r.id)).error).toBeUndefined();
    const restored = await vmOf('mig-restored');
    expect(restored.node).toBe('h1');
    const raw = join(h('h1').dataDir, 'restored.raw');
    try {
      const conv = spawnSync('qemu-img', [
        'convert',
        '-O',
        'raw',
        volumePath('h1', restored.disks[0]!.volume),
        raw,
      ]);
      expect(conv.status).toBe(0);
      const data = readFileSync(raw).subarray(16 << 20, 20 << 20);
      expect(createHash('md5').update(data).digest('hex')).toBe(dataSum);
    } finally {
      rmSync(raw, { force: true });
    }
    await api.request('DELETE', `/api/v1/vms/${restored.id}`);
  }, 240_000);

  it('cancels in the middle: the VM runs on its source and the target keeps nothing', async () => {
    const before = await vmOf('mig');
    const target = other(before.node);
    const volume = before.disks[0]!.volume;
    // 1 MiB/s: the memory copy takes minutes, so the cancel lands in it
    const t = await api.request<Task>('POST', '/api/v1/vms/mig/migrate', {
      node: target,
      maxBandwidthMiBps: 1,
    });
    await inMemoryPhase(t.id);
    expect(existsSync(volumePath(target, volume))).toBe(true); // made on the target for the copy
    const busy = await rejection(api.request('POST', '/api/v1/vms/mig/stop'));
    expect(busy.code).toBe('invalid_state');
    expect(busy.message).toMatch(/being migrated/);
    // The VM page says it is migrating, with its actions disabled; its Cancel button stops the migration.
    const browser = await launchChromium();
    try {
      const { page, pageErrors } = await rootPage(browser);
      await page.goto(`${h('h1').url}/#/vms/${before.id}/summary`);
      const banner = page.locator('[data-testid=vm-migrating]');
      await banner.waitFor({ timeout: 15_000 });
      expect(await banner.textContent()).toContain(`from ${before.node} to ${target}`);
      expect(await page.locator('[data-testid=vm-migrate]').isDisabled()).toBe(true);
      await page.click('[data-testid=vm-migrating-cancel]');
      await waitFor(async () => (await task(t.id)).status !== 'running', {
        timeoutMs: 60_000,
        what: 'the cancel',
      });
      await banner.waitFor({ state: 'detached', timeout: 15_000 });
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
    }
    const done = await ended(t.id, 60_000);
    expect(done.status).toBe('error');
    expect(done.error?.code).toBe('cancelled');
    const after = await vmOf('mig');
    expect(after.node).toBe(before.node);
    expect(after.migration).toBeUndefined();
    expect(after.state).toBe('running');
    expect(qemus(before.id)).toBe(1);
    expect(existsSync(volumePath(target, volume))).toBe(false);
    expect(existsSync(volumePath(before.node, volume))).toBe(true);
    const ended2 = await rejection(api.request('POST', `/api/v1/tasks/${t.id}/cancel`));
    expect(ended2.code).toBe('invalid_state');
    // The guest is still alive and well on the source.
    expect((await run('mig', "echo al''ive")).trim()).toBe('alive');
  }, 180_000);

  it('gives up at the policy’s time limit with the reason, and the VM runs on', async () => {
    const before = await vmOf('mig');
    const target = other(before.node);
    const t = await api.request<Task>('POST', '/api/v1/vms/mig/migrate', {
      node: target,
      maxBandwidthMiBps: 1,
      policy: { timeLimitSec: 10 },
    });
    const done = await ended(t.id, 90_000);
    expect(done.status).toBe('error');
    expect(done.error?.code).toBe('timeout');
    expect(done.error?.message).toMatch(/within 10 s/);
    const after = await vmOf('mig');
    expect([after.node, after.state, after.migration]).toEqual([before.node, 'running', undefined]);
    expect(qemus(before.id)).toBe(1);
    expect(existsSync(volumePath(target, before.disks[0]!.volume))).toBe(false);
  }, 120_000);

  it('switches a guest that dirties memory faster than the link to post-copy when the policy allows it', async () => {
    const refused = await rejection(
      api.request('POST', '/api/v1/vms/mig/migrate', { policy: { postcopy: true } }),
    );
    expect(refused.message).toMatch(/post-copy needs every disk on shared storage/);
    const vm = await api.request<VmView>('POST', '/api/v1/vms', kernelVm('pc', { disks: [] }));
    try {
      await startAndBoot(
        api,
        vm.id,
        () => api.request('POST', `/api/v1/vms/${vm.id}/start`),
        new RegExp(BOOTED),
      );
      await run(
        'pc',
        "(while :; do dd if=/dev/urandom of=/dev/shm/d bs=1M count=64 2>/dev/null; done) & echo dirt''y",
      );
      const source = (await vmOf('pc')).node;
      const t = await api.request<Task>('POST', '/api/v1/vms/pc/migrate', {
        node: other(source),
        maxBandwidthMiBps: 4,
        policy: { postcopy: true, autoConvergeAfter: 1 },
      });
      const done = await ended(t.id, 180_000);
      expect(done.error).toBeUndefined();
      expect((done.result as { postcopy?: boolean }).postcopy).toBe(true);
      const after = await vmOf('pc');
      expect([after.node, after.state]).toEqual([other(source), 'running']);
      expect(qemus(vm.id)).toBe(1);
      expect((await run('pc', "kill %1 2>/dev/null; echo al''ive")).trim()).toMatch(/alive$/);
    } finally {
      // the guest dirties memory without end: never leave it running for the next tests
      await api.request('DELETE', `/api/v1/vms/${vm.id}?force=true`).catch(() => {});
    }
  }, 240_000);

  it('keeps the VM on its source when serve on the target is killed -9 during the copy', async () => {
    // the target must be the worker (h1 serves the API and is the only controller)
    if ((await vmOf('mig')).node !== 'h1') {
      const back = await api.request<Task>('POST', '/api/v1/vms/mig/migrate', { node: 'h1' });
      expect((await ended(back.id)).status).toBe('ok');
    }
    const before = await vmOf('mig');
    const target = other(before.node);
    const volume = before.disks[0]!.volume;
    const t = await api.request<Task>('POST', '/api/v1/vms/mig/migrate', {
      node: target,
      maxBandwidthMiBps: 1,
    });
    await inMemoryPhase(t.id);
    await h(target).kill9();
    const done = await ended(t.id, 120_000);
    expect(done.status).toBe('error');
    expect(done.error?.message).toMatch(new RegExp(`${target} went away|runs on ${before.node}`));
    const after = await vmOf('mig');
    expect(after.node).toBe(before.node);
    expect(after.migration).toBeUndefined();
    expect(after.state).toBe('running');
    expect((await run('mig', "echo al''ive")).trim()).toBe('alive');
    // Back up, the target's daemon ends the half-received QEMU and deletes what it made for it.
    await h(target).start({ env });
    await waitFor(() => qemus(before.id) === 1 && !existsSync(volumePath(target, volume)), {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: 'the target to drop its half of the migration',
    });
  }, 240_000);

  it('migrates from the VM page of the web UI, with the progress in the tasks panel', async () => {
    await bothReady();
    const before = await vmOf('mig');
    const target = other(before.node);
    const browser = await launchChromium();
    try {
      const { page, pageErrors } = await rootPage(browser);
      await page.goto(`${h('h1').url}/#/vms/${before.id}/summary`);
      await page.click('[data-testid=vm-migrate]');
      await page.locator('[data-testid=migrate-dialog]').waitFor({ timeout: 10_000 });
      await page.selectOption('[data-testid=migrate-target]', target);
      await page.click('[data-testid=migrate-submit]');
      await waitFor(async () => (await vmOf('mig')).node === target, {
        timeoutMs: 120_000,
        intervalMs: 500,
        what: 'the VM on the target',
      });
      // this migration's row (the newest) shows its result; older rows have results too. The record
      // points at the target a moment before the task is closed: wait for the task to end
      const newest = await waitFor(
        async () => {
          const [t] = await api
            .request<Task[]>('GET', '/api/v1/tasks?limit=20')
            .then((all) => all.filter((x) => x.type === 'vm.migrate'));
          return t && t.status !== 'running' ? t : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200, what: 'the migration task to end' },
      );
      expect(newest.status).toBe('ok');
      await page
        .locator(`[data-testid=task-row][data-task-id="${newest.id}"] [data-testid=task-result]`)
        .waitFor({ timeout: 30_000 });
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 240_000);

  it('empties a host put in maintenance mode: its three running VMs move away, live', async () => {
    await bothReady();
    // Three running VMs on h2 (the worker): 'mig' and two more.
    const made = await Promise.all(
      ['evac1', 'evac2'].map((n) =>
        api.request<VmView>('POST', '/api/v1/vms', kernelVm(n, { memoryMiB: 128 })),
      ),
    );
    await Promise.all(
      made.map((vm) =>
        startAndBoot(api, vm.id, () => api.request('POST', `/api/v1/vms/${vm.id}/start`), new RegExp(BOOTED)),
      ),
    );
    for (const name of ['mig', 'evac1', 'evac2']) {
      if ((await vmOf(name)).node === 'h2') continue;
      const t = await api.request<Task>('POST', `/api/v1/vms/${name}/migrate`, { node: 'h2' });
      expect((await ended(t.id)).status).toBe('ok');
    }
    const host = await api.request<{ state: string; evacuationTask?: string }>('PATCH', '/api/v1/nodes/h2', {
      maintenance: true,
    });
    expect(host.state).toBe('maintenance');
    expect(host.evacuationTask).toBeTruthy();
    const done = await ended(host.evacuationTask!, 240_000);
    expect(done.error).toBeUndefined();
    expect(done.status).toBe('ok');
    expect(
      (done.details as { moved?: { vm: string; to: string }[] }).moved?.map((m) => [m.vm, m.to]).sort(),
    ).toEqual([
      ['evac1', 'h1'],
      ['evac2', 'h1'],
      ['mig', 'h1'],
    ]);
    for (const name of ['mig', 'evac1', 'evac2']) {
      const vm = await vmOf(name);
      expect(vm.node).toBe('h1');
      expect(vm.state).toBe('running');
      expect(qemus(vm.id)).toBe(1);
    }
    // Leaving maintenance moves nothing back.
    const back = await api.request<{ state: string; evacuationTask?: string }>('PATCH', '/api/v1/nodes/h2', {
      maintenance: false,
    });
    expect(back.evacuationTask).toBeUndefined();
    expect((await vmOf('mig')).node).toBe('h1');
  }, 300_000);

  it('DRS in automatic mode moves a VM off a host made busy by CPU-burning guests, and says why', async () => {
    // After the evacuation every VM is on h1; two of them now burn their CPU.
    for (const name of ['evac1', 'evac2']) {
      expect((await vmOf(name)).node).toBe('h1');
      await run(name, "(while :; do :; done) & echo burn''ing");
    }
    try {
      const set = await api.request<Drs>('PUT', '/api/v1/drs', {
        mode: 'automatic',
        threshold: 3,
      });
      expect([set.mode, set.threshold]).toEqual(['automatic', 3]);
      // The hosts' VM metrics need two samples (10 s apart) before the burn shows: ask for passes until DRS acts.
      const acted = await waitFor(
        async () => {
          const d = await api.request<Drs>('POST', '/api/v1/drs/run');
          return d.history.length > 0 ? d : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 3000, what: 'DRS to move a VM' },
      );
      const move = acted.history[0]!;
      expect(['evac1', 'evac2']).toContain(move.vmName);
      expect([move.from, move.to, move.automatic]).toEqual(['h1', 'h2', true]);
      expect(move.reason).toMatch(/h1 is at \d+% load .* h2 at \d+% .* moving evac\d/);
      expect((await ended(move.taskId!)).status).toBe('ok');
      expect((await vmOf(move.vmName)).node).toBe('h2');
      // The history keeps it, with the outcome; the moved VM does not move again for 30 minutes.
      const after = await api.request<Drs>('GET', '/api/v1/drs');
      expect(after.history[0]?.status).toMatch(/ok|started/);
      // The cluster page shows the mode, the hosts' loads and the move with its reason.
      const browser = await launchChromium();
      try {
        const { page, pageErrors } = await rootPage(browser);
        await page.goto(`${h('h1').url}/#/cluster`);
        await page.locator('[data-testid=drs-card]').waitFor({ timeout: 15_000 });
        expect(await page.locator('[data-testid=drs-mode]').inputValue()).toBe('automatic');
        await page.locator('[data-testid=drs-hosts] [data-node="h2"]').waitFor({ timeout: 15_000 });
        const row = page.locator('[data-testid=drs-history] [data-automatic="true"]').first();
        await row.waitFor({ timeout: 15_000 });
        expect(await row.textContent()).toContain(move.vmName);
        // manual mode from the page: saved through the API
        await page.selectOption('[data-testid=drs-mode]', 'manual');
        await waitFor(
          async () => (await api.request<{ mode: string }>('GET', '/api/v1/drs')).mode === 'manual',
          {
            timeoutMs: 10_000,
            what: 'the mode saved',
          },
        );
        expect(pageErrors).toEqual([]);
      } finally {
        await browser.close();
      }
    } finally {
      // stop the burners whatever happened: they would slow every later test
      for (const name of ['evac1', 'evac2']) await run(name, 'kill %1 2>/dev/null; true').catch(() => {});
    }
  }, 240_000);

  it('an overlay network spans both hosts: guests on h1 and h2 get OVN DHCP addresses and reach each other over Geneve; a live migration keeps the traffic', async () => {
    const net = await api.request<{ subnet: string }>('POST', '/api/v1/networks', {
      name: 'span',
      type: 'overlay',
      subnet: '10.88.0.0/24',
    });
    expect(net.subnet).toBe('10.88.0.0/24');
    const addr: Record<string, string> = {};
    // ov1 where the scheduler puts it (it migrates below), ov2 pinned to the other host
    for (const name of ['ov1', 'ov2']) {
      const pin = name === 'ov2' ? { placement: { node: other((await vmOf('ov1')).node) } } : {};
      const vm = await api.request<VmView>(
        'POST',
        '/api/v1/vms',
        kernelVm(name, { networks: [{ network: 'span' }], ...pin }),
      );
      await startAndBoot(
        api,
        vm.id,
        () => api.request('POST', `/api/v1/vms/${vm.id}/start`),
        new RegExp(BOOTED),
      );
      const log = await waitConsole(api, vm.id, /NEUROFLOW-TEST-GUEST: ip=10\.88\.0\.\d+/, 60_000);
      addr[name] = /ip=(10\.88\.0\.\d+)/.exec(log)![1]!;
    }
    const [n1, n2] = [(await vmOf('ov1')).node, (await vmOf('ov2')).node];
    expect(n1).not.toBe(n2);
    expect(addr.ov1).not.toBe(addr.ov2);
    // across the hosts: Geneve between their OVS, OVN's databases on h1 reached by h2 over SSL
    expect(await run('ov1', `ping -c 3 -W 2 ${addr.ov2} >/dev/null && echo PING-OK`)).toContain('PING-OK');
    expect(await run('ov2', `ping -c 3 -W 2 ${addr.ov1} >/dev/null && echo PING-OK`)).toContain('PING-OK');
    const ports = (
      await api.request<{ ports: { vm: string; ip?: string }[] }>('GET', '/api/v1/networks/span')
    ).ports;
    expect(ports.map((p) => [p.vm, p.ip]).sort()).toEqual([
      ['ov1', addr.ov1],
      ['ov2', addr.ov2],
    ]);

    // a live migration keeps the address and the traffic: ov2 pings ov1 while ov1 moves to ov2's host
    // (the port is bound on both hosts meanwhile; the target's copy takes over at the guest's RARP)
    await run('ov2', `(ping -c 50 -i 0.2 ${addr.ov1} > /tmp/ping.out 2>&1 &); echo started`);
    const moved = await api.request<Task>('POST', '/api/v1/vms/ov1/migrate', { node: n2 });
    expect((await ended(moved.id)).status).toBe('ok');
    expect((await vmOf('ov1')).node).toBe(n2);
    const out = await waitFor(
      async () => {
        const o = await run('ov2', 'cat /tmp/ping.out');
        return /packet loss/.test(o) ? o : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: 'the pings to end' },
    );
    const loss = Number(/(\d+)% packet loss/.exec(out)?.[1]);
    console.log(`overlay ping across a live migration of its target: ${loss}% of 50 lost`);
    expect(loss).toBeLessThan(20);
    expect(await run('ov1', `ping -c 2 -W 2 ${addr.ov2} >/dev/null && echo PING-OK`)).toContain('PING-OK');
    for (const name of ['ov1', 'ov2']) await api.request('DELETE', `/api/v1/vms/${name}?force=true`);
    await api.request('DELETE', '/api/v1/networks/span');
  }, 240_000);

  // Last: QEMU 7.2 may be left unable to end the dead migration (cancel stuck with multifd), so the VM
  // runs on but may not migrate again until restarted; no test after this one needs it to.
  it('keeps the VM running on its source when serve on the source is killed -9 during the copy', async () => {
    await bothReady();
    // the source must be the worker (h1 serves the API and drives the migration)
    if ((await vmOf('mig')).node !== 'h2') {
      const there = await api.request<Task>('POST', '/api/v1/vms/mig/migrate', { node: 'h2' });
      expect((await ended(there.id)).status).toBe('ok');
    }
    const before = await vmOf('mig');
    const pid = before.pid;
    const t = await api.request<Task>('POST', '/api/v1/vms/mig/migrate', {
      node: 'h1',
      maxBandwidthMiBps: 1,
    });
    await inMemoryPhase(t.id);
    await h('h2').kill9();
    const done = await ended(t.id, 120_000);
    expect(done.status).toBe('error');
    // The guest never stopped: the same QEMU runs on h2, and h1 keeps nothing.
    expect(qemus(before.id)).toBe(1);
    expect(spawnSync('kill', ['-0', String(pid)]).status).toBe(0);
    expect(existsSync(volumePath('h1', before.disks[0]!.volume))).toBe(false);
    const rec = await vmOf('mig');
    expect(rec.node).toBe('h2');
    expect(rec.migration).toBeUndefined();
    // serve comes back, re-attaches, and the VM is running there
    await h('h2').start({ env });
    await waitFor(async () => (await vmOf('mig')).state === 'running', {
      timeoutMs: 60_000,
      what: 'the VM running on h2 again',
    });
    expect((await vmOf('mig')).pid).toBe(pid);
    expect((await run('mig', "echo al''ive")).trim()).toBe('alive');
  }, 240_000);
});
