import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { launchChromium, signIn } from '../harness/browser';
import { addRbdPool, sharedCephLab } from '../harness/ceph';
import { TestDaemon } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { BOOTED, testGuest } from '../harness/guest';
import { guestRun, startAndBoot, waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm, type VmView, vmAction } from '../harness/vms';

interface Task {
  id: string;
  type: string;
  status: 'running' | 'ok' | 'error';
  progress: number;
  error?: { code: string; message: string };
}

describe('moving a disk between pools (local ⇄ Ceph RBD)', () => {
  let d: TestDaemon;
  let vm: VmView;
  let patternSum = '';
  beforeAll(async () => {
    d = await TestDaemon.start({ demoIso: testGuest().iso });
    await addRbdPool(d.api, await sharedCephLab());
    vm = await createVm(d.api, kernelVm('mover', { disks: [{ sizeGiB: 1 }] }));
  }, 300_000);
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  const volumes = async (pool: string) =>
    (await d.api.request<{ name: string }[]>('GET', `/api/v1/pools/${pool}/volumes`)).map((v) => v.name);
  const move = (pool: string, disk = 'disk0') =>
    d.api.request<Task>('POST', `/api/v1/vms/mover/disks/${disk}/move`, { pool });
  /** Polls the task to its end, and every progress figure seen on the way. */
  const finish = async (t: Task) => {
    const seen: number[] = [];
    const end = await waitFor(
      async () => {
        const cur = await d.api.request<Task>('GET', `/api/v1/tasks/${t.id}`);
        seen.push(cur.progress);
        return cur.status === 'running' ? undefined : cur;
      },
      { timeoutMs: 180_000, intervalMs: 100, what: 'the move task to end' },
    );
    return { end, seen };
  };
  const run = (cmd: string) => guestRun(d.api, d.dataDir, vm.id, cmd, 60_000);

  it('refuses bad moves with a clear error, before any task starts, and changes nothing', async () => {
    expect((await rejection(move('local'))).message).toMatch(/already in pool local/);
    const nopool = await rejection(move('nope'));
    expect(nopool.code).toBe('not_found');
    expect((await rejection(move('ceph', 'disk7'))).code).toBe('not_found');
    await d.api.request('POST', '/api/v1/vms/mover/snapshots', { name: 's1' });
    const snap = await rejection(move('ceph'));
    expect(snap.code).toBe('invalid_state');
    expect(snap.message).toMatch(/snapshots \(s1\).*delete them first/);
    await d.api.request('DELETE', '/api/v1/vms/mover/snapshots/s1');
    const tasks = await d.api.request<Task[]>('GET', '/api/v1/tasks');
    expect(tasks.some((t) => t.type === 'vm.disk.move')).toBe(false);
    expect((await getVm(d.api, 'mover')).disks[0]).toMatchObject({ pool: 'local' });
  });

  it('moves the disk of a running VM live to Ceph: the guest keeps running, writing, and its data', async () => {
    const started = await vmAction(d.api, 'mover', 'start');
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    const sum = (
      await run(
        'dd if=/dev/urandom of=/tmp/p bs=1M count=8 2>/dev/null; dd if=/tmp/p of=/dev/vda bs=1M oflag=direct conv=fsync 2>/dev/null; md5sum < /tmp/p',
      )
    ).trim();
    expect(sum).toMatch(/^[0-9a-f]{32}/);
    patternSum = sum;
    // The guest writes elsewhere on the disk all through the mirror.
    await run(
      "touch /tmp/go; (n=0; while [ -e /tmp/go ]; do n=$((n+1)); dd if=/dev/urandom of=/dev/vda bs=64k count=1 seek=2000 oflag=direct 2>/dev/null || echo W''ERR; done; echo WR''-DONE $n) & true",
    );
    const t = await move('ceph');
    expect(t).toMatchObject({ type: 'vm.disk.move', status: 'running' });
    const { end } = await finish(t);
    expect(end.error).toBeUndefined();
    expect(end).toMatchObject({ status: 'ok', progress: 1 });
    await run('rm /tmp/go');
    await waitConsole(d.api, vm.id, /WR-DONE \d+/);
    const after = await getVm(d.api, 'mover');
    expect(after.state).toBe('running');
    expect(after.pid).toBe(started.pid); // the same QEMU process all along
    expect(after.disks[0]).toMatchObject({ pool: 'ceph', volume: vm.disks[0]!.volume });
    expect(await volumes('ceph')).toContain(vm.disks[0]!.volume);
    expect(await volumes('local')).not.toContain(vm.disks[0]!.volume);
    expect((await d.api.request<string>('GET', `/api/v1/vms/${vm.id}/console-log`)) ?? '').not.toMatch(
      /WERR|I\/O error/,
    );
    // the data written before the move, read from the disk (now RBD)
    expect((await run('dd if=/dev/vda bs=1M count=8 iflag=direct 2>/dev/null | md5sum')).trim()).toBe(sum);
    // the disk is still the guest's: it grows online on its new pool
    await d.api.request('POST', `/api/v1/vms/mover/disks/disk0/resize`, { sizeGiB: 2 });
    expect((await run('cat /sys/block/vda/size')).trim()).toBe(String((2 * 1024 ** 3) / 512));
  });

  it('moves it back to local with the CLI while the VM is stopped; it boots with its data', async () => {
    await vmAction(d.api, 'mover', 'stop', '?force=true');
    const out = await d.cli(['vm', 'move-disk', 'mover', 'disk0', 'local']);
    expect(out).toMatch(/moving mover\/disk0 to local: \d+%/);
    const back = await getVm(d.api, 'mover');
    expect(back.disks[0]).toMatchObject({ pool: 'local', sizeBytes: 2 * 1024 ** 3 });
    expect(await volumes('ceph')).not.toContain(vm.disks[0]!.volume);
    await startAndBoot(d.api, vm.id, () => vmAction(d.api, 'mover', 'start'), new RegExp(BOOTED));
    // a new boot: the pattern is only on the disk now, intact after two moves
    expect((await run('test -e /tmp/p && echo still-there || echo gone')).trim()).toBe('gone');
    const disk = (await run('dd if=/dev/vda bs=1M count=8 iflag=direct 2>/dev/null | md5sum')).trim();
    expect(disk).toBe(patternSum);
    expect((await run('cat /sys/block/vda/size')).trim()).toBe(String((2 * 1024 ** 3) / 512));
  });

  it('boots a VM from an ISO copied into the shared pool (a CD-ROM any host can open)', async () => {
    const iso = await d.api.request<{ name: string; kind: string; shared?: boolean }>(
      'POST',
      '/api/v1/images/demo/copy',
      { pool: 'ceph' },
    );
    expect(iso).toMatchObject({ name: 'demo-ceph', kind: 'iso', shared: true });
    const cd = await createVm(d.api, {
      name: 'fromcd',
      vcpus: 1,
      memoryMiB: 256,
      disks: [],
      networks: [],
      boot: { cdrom: 'demo-ceph' },
    });
    await startAndBoot(d.api, cd.id, () => vmAction(d.api, 'fromcd', 'start'), new RegExp(BOOTED));
    await d.api.request('DELETE', '/api/v1/vms/fromcd?force=true');
  });

  it('moves a disk from the VM page in the browser, with the progress shown', async () => {
    const browser = await launchChromium();
    try {
      const { page, pageErrors } = await signIn(
        browser,
        d.url,
        readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim(),
      );
      await page.goto(`${d.url}/#/vms/${vm.id}`);
      const disk = page.locator('.disk[data-disk=disk0]');
      await disk.locator('.move-disk').click();
      await disk.locator('.move-form select[name=pool]').selectOption('ceph');
      await disk.locator('.move-form button[type=submit]').click();
      await page.waitForFunction(
        () => document.querySelector('.disk[data-disk=disk0]')?.textContent?.includes('on ceph'),
        undefined,
        { timeout: 120_000, polling: 250 },
      );
      expect((await getVm(d.api, 'mover')).disks[0]).toMatchObject({ pool: 'ceph' });

      // The Storage page lists images; a disk image is copied into the shared pool from there.
      await d.api.request('POST', '/api/v1/images/import', { name: 'nfdata', path: testGuest().dataDisk });
      await page.click('.topbar a[href="#/storage"]');
      const row = page.locator('.images tr[data-image=nfdata]');
      await row.waitFor({ timeout: 20_000 });
      await row.locator('[data-action=copy-image]').click();
      await row.locator('.copy-image-form select[name=pool]').selectOption('ceph');
      await row.locator('.copy-image-form button.primary').click();
      const copied = page.locator('.images tr[data-image=nfdata-ceph]');
      await copied.waitFor({ timeout: 60_000 });
      expect(await copied.textContent()).toContain('every host');
      const img = await d.api.request<{ shared?: boolean; pool: string }>(
        'GET',
        '/api/v1/images/nfdata-ceph',
      );
      expect(img).toMatchObject({ shared: true, pool: 'ceph' });
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
