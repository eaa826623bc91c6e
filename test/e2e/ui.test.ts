import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytes } from '../../src/util/format';
import { waitFor } from '../../src/util/wait';
import { launchChromium, signIn } from '../harness/browser';
import { sharedCephLab } from '../harness/ceph';
import { neuroflowCommand, TestDaemon } from '../harness/daemon';
import { BOOTED, testGuest } from '../harness/guest';
import { guestRun, startAndBoot, waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm, vmAction, waitTask } from '../harness/vms';

/**
 * The embedded web UI in a headless Chromium against a real daemon and a real (ISO-booted) guest.
 * Screenshots of each view land in docs/screenshots/.
 */
const SHOTS = join(import.meta.dirname, '..', '..', 'docs', 'screenshots');

describe('web UI', () => {
  let d: TestDaemon;
  let browser: Browser;
  let page: Page;
  let vmId = '';
  const pageErrors: string[] = [];

  const shot = (name: string) => page.screenshot({ path: join(SHOTS, name) });
  const badge = (state: string, timeout = 60_000) =>
    page.locator('.vm-head .state-badge', { hasText: new RegExp(`^${state}$`) }).waitFor({ timeout });

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    // Samples every 500 ms instead of 10 s, so the Monitor graphs fill within seconds.
    d = await TestDaemon.start({ demoIso: testGuest().iso, env: { NEUROFLOW_METRICS_INTERVAL_MS: '500' } });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1360, height: 860 } });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
  });

  afterAll(async () => {
    await browser?.close();
    await d?.[Symbol.asyncDispose]();
  });

  it('serves the UI from the binary itself', async () => {
    const res = await fetch(`${d.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    // The compiled binary carries the bundle (nf:ui-assets); only a run from sources reads dist/ui/.
    expect(res.headers.get('x-neuroflow-ui')).toBe(neuroflowCommand().length === 1 ? 'embedded' : 'disk');
    const js = await fetch(`${d.url}/ui/app.js`);
    expect(js.headers.get('content-type')).toContain('javascript');
  });

  it('rejects a wrong password, then logs in and shows the dashboard', async () => {
    await page.goto(d.url);
    await page.fill('input[name=password]', 'not-the-password');
    await page.click('button[type=submit]');
    const err = page.locator('.login .form-error');
    await err.waitFor({ timeout: 10_000 });
    expect((await err.textContent())?.length).toBeGreaterThan(3);

    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    await page.fill('input[name=password]', password);
    await page.click('button[type=submit]');
    await page.locator('.dashboard dt', { hasText: 'Accelerator' }).waitFor({ timeout: 15_000 });
    await page.locator('.topbar .live.on').waitFor({ timeout: 15_000 });
    expect(await page.locator('.topbar .user').textContent()).toBe('root');
    // This host runs without KVM: the dashboard says so as an alarm, with the probe's reason.
    await page.locator('.alarms .alarm-warning', { hasText: 'TCG' }).waitFor({ timeout: 15_000 });
    await shot('dashboard.png');
  });

  it('creates a VM in the dialog, starts it and sees it running without a reload', async () => {
    await page.click('.topbar button.primary');
    await page.fill('.modal input[name=name]', 'web1');
    await page.fill('.modal input[name=memoryMiB]', '256');
    await page.fill('.modal input[name=diskGiB]', '1');
    await page.locator('.modal select[name=iso] option[value=demo]').waitFor({ state: 'attached' });
    await page.selectOption('.modal select[name=iso]', 'demo');
    await page.click('.modal button[type=submit]');
    await page.locator('.vm-head h2', { hasText: 'web1' }).waitFor({ timeout: 15_000 });
    vmId = /#\/vms\/([^/]+)/.exec(page.url())![1]!;
    await badge('stopped');
    await page.locator('.tree a', { hasText: 'web1' }).waitFor();

    await page.click('[data-action=start]');
    await badge('running');
    await page.locator('.card dt', { hasText: 'vCPU' }).waitFor();
    await shot('vm-summary.png');
  });

  it('shows the VGA console in noVNC', async () => {
    await page.click('.tabs a:has-text("Console")');
    await page.locator('.console-status.connected').waitFor({ timeout: 30_000 });
    await page.waitForFunction(
      () => {
        const c = document.querySelector<HTMLCanvasElement>('.console-screen canvas');
        if (!c || c.width === 0 || c.height === 0) return false;
        const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < px.length; i += 4) if (px[i]! + px[i + 1]! + px[i + 2]! > 0) return true;
        return false;
      },
      undefined,
      { timeout: 60_000, polling: 500 },
    );
    await shot('console.png');
  });

  it('shows the serial log of the booted guest', async () => {
    await page.click('.tabs a:has-text("Serial")');
    await page.locator('.serial-log', { hasText: BOOTED }).waitFor({ timeout: 120_000 });
  });

  it('draws live CPU, memory, disk and network graphs on the Monitor tab, updated in place', async () => {
    await page.click('.tabs a:has-text("Monitor")');
    const points = () =>
      page.evaluate(() =>
        Number(document.querySelector('.monitor .chart[data-title="CPU"]')?.getAttribute('data-points') ?? 0),
      );
    await page.waitForFunction(
      () =>
        Number(document.querySelector('.monitor .chart[data-title="CPU"]')?.getAttribute('data-points')) >= 2,
      undefined,
      { timeout: 20_000, polling: 200 },
    );
    expect(await page.locator('.monitor .chart').count()).toBe(4);
    // The path has a segment per sample after the first; the same SVG element gets redrawn.
    const path = await page.locator('.monitor .chart[data-title="CPU"] path.series').elementHandle();
    expect(await path!.getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+L/);
    const before = await points();
    await page.waitForFunction(
      (n) =>
        Number(document.querySelector('.monitor .chart[data-title="CPU"]')?.getAttribute('data-points')) > n,
      before,
      { timeout: 20_000, polling: 200 },
    );
    expect(await path!.evaluate((el) => el.isConnected)).toBe(true);
    // Axes carry units.
    expect(await page.locator('.monitor .chart[data-title="CPU"] text').allTextContents()).toContain('100 %');
    expect(
      (await page.locator('.monitor .chart[data-title="Network"] text').allTextContents()).join(' '),
    ).toMatch(/B\/s/);
    await page.click('.monitor .range-switch button[data-range="24h"]');
    await page.locator('.monitor .range-switch button.active[data-range="24h"]').waitFor();
    await page.click('.monitor .range-switch button[data-range="1h"]');
    await page.waitForFunction(
      () =>
        Number(document.querySelector('.monitor .chart[data-title="CPU"]')?.getAttribute('data-points')) >= 2,
      undefined,
      { timeout: 20_000, polling: 200 },
    );
    await shot('monitor.png');
  });

  it('shows the API error of a failing action and of a duplicate name', async () => {
    // The UI disables Start while running; force the button on to provoke the API's invalid_state error.
    await page.evaluate(() => {
      const b = document.querySelector<HTMLButtonElement>('[data-action=start]')!;
      b.disabled = false;
      b.click();
    });
    const toastEl = page.locator('.toast.error', { hasText: /running/i });
    await toastEl.waitFor({ timeout: 15_000 });

    await page.click('.topbar button.primary');
    await page.fill('.modal input[name=name]', 'web1');
    await page.click('.modal button[type=submit]');
    const formErr = page.locator('.modal .form-error');
    await formErr.waitFor({ timeout: 15_000 });
    expect(await formErr.textContent()).toMatch(/web1|exist/i);
    await page.click('.modal button:has-text("Cancel")');
  });

  it('lists the audit trail in Events (who, what, result), newest first and live', async () => {
    await page.click('.topbar nav a:has-text("Events")');
    // Rows come from GET /tasks plus live task events; the user arrives with the next refresh.
    const row = (type: string, status: string, text = '') =>
      page.locator(`.events tr[data-type="${type}"][data-status="${status}"]`, { hasText: text }).first();
    await row('vm.create', 'ok', 'web1')
      .locator('td.user', { hasText: /^root$/ })
      .waitFor({ timeout: 15_000 });
    await row('vm.start', 'ok')
      .locator('td.user', { hasText: /^root$/ })
      .waitFor({ timeout: 15_000 });
    // The failed start of the previous test, with the API's message.
    await page.selectOption('.events select[name=status]', 'error');
    await row('vm.start', 'error')
      .locator('td.task-error', { hasText: /running/i })
      .waitFor({ timeout: 15_000 });
    expect(await page.locator('.events tbody tr:not([data-status="error"])').count()).toBe(0);
    await page.selectOption('.events select[name=status]', '');
    // Live: a failing call by the admin token shows up on top without a reload.
    await d.api.request('POST', `/api/v1/vms/${vmId}/start`).catch(() => {});
    await page.locator('.events tbody tr').first().filter({ hasText: 'admin' }).waitFor({ timeout: 15_000 });
    await page.fill('.events input[name=filter]', 'admin');
    await page.locator('.events tbody tr', { hasText: 'root' }).first().waitFor({ state: 'detached' });
    await page.fill('.events input[name=filter]', '');
    while ((await page.locator('.toast-x').count()) > 0) await page.locator('.toast-x').first().click();
    await shot('events.png');

    // The dashboard's host graphs.
    await page.click('.topbar nav a:has-text("Dashboard")');
    await page.waitForFunction(
      () =>
        Number(
          document.querySelector('.host-charts .chart[data-title="Host CPU"]')?.getAttribute('data-points'),
        ) >= 2,
      undefined,
      { timeout: 20_000, polling: 200 },
    );
    await page.locator('.tree a', { hasText: 'web1' }).click();
    await badge('running');
  });

  it('pauses and resumes the VM', async () => {
    await page.click('[data-action=pause]');
    await badge('paused');
    await page.click('[data-action=resume]');
    await badge('running');
  });

  it('force-stops the VM and sees stopped live, lists it, deletes it', async () => {
    await page.click('[data-action=force-stop]');
    await badge('stopped');

    await page.click('.tabs a:has-text("Snapshots")');
    await page.fill('.snapshots input', 'before-change');
    await page.click('.snapshots button[type=submit]');
    await page.locator('.snapshots td', { hasText: 'before-change' }).waitFor({ timeout: 30_000 });
    await page.click('.snapshots tr:has-text("before-change") button.danger');
    await page.click('.modal button.danger');
    await page
      .locator('.snapshots td', { hasText: 'before-change' })
      .waitFor({ state: 'detached', timeout: 30_000 });

    await page.goto(`${d.url}/#/vms`);
    await page.locator('.vm-list tr', { hasText: 'web1' }).waitFor({ timeout: 15_000 });
    await page.fill('.vm-list input', 'nomatch');
    await page.locator('.vm-list td', { hasText: 'No virtual machines.' }).waitFor();
    await page.fill('.vm-list input', 'web');
    await page.selectOption('.vm-list select', 'stopped');
    await page.locator('.vm-list tr', { hasText: 'web1' }).waitFor();
    await page.selectOption('.vm-list select', '');
    while ((await page.locator('.toast-x').count()) > 0) await page.locator('.toast-x').first().click();
    await shot('vm-list.png');

    await page.click('.vm-list tr:has-text("web1")');
    await page.locator('.vm-head h2', { hasText: 'web1' }).waitFor();
    await page.click('[data-action=delete]');
    await page.click('.modal button.danger');
    await page.waitForFunction(() => location.hash === '#/vms', undefined, { timeout: 30_000 });
    await page.locator('.tree a', { hasText: 'web1' }).waitFor({ state: 'detached', timeout: 30_000 });
    const left = await d.api.request<{ id: string }[]>('GET', '/api/v1/vms');
    expect(left.find((v) => v.id === vmId)).toBeUndefined();
  });

  it('shows guest agent facts (OS, IPs) of a running VM created through the API', async () => {
    const vm = await createVm(d.api, kernelVm('agent1', { start: true }));
    await page.locator('.tree a', { hasText: 'agent1' }).click();
    await badge('running');
    // exactly: hasText matches any dt holding "os" (Host, Start at host boot)
    await page.locator('.card dt', { hasText: /^OS$/ }).waitFor({ timeout: 120_000 });
    await page.locator('.card dt', { hasText: /^IPs$/ }).waitFor();
    expect(await page.locator('.card', { hasText: 'Guest' }).textContent()).toContain('connected');
    await d.api.request('DELETE', `/api/v1/vms/${vm.id}?force=true`);
    await page.locator('.tree a', { hasText: 'agent1' }).waitFor({ state: 'detached', timeout: 30_000 });
    expect(pageErrors).toEqual([]);
  });

  let host = '';
  const hostBadge = (state: string) =>
    page
      .locator('.host-head .state-badge', { hasText: new RegExp(`^${state}$`) })
      .waitFor({ timeout: 15_000 });
  const closeToasts = async () => {
    while ((await page.locator('.toast-x').count()) > 0) await page.locator('.toast-x').first().click();
  };

  it('shows the host page (summary, capacity, graphs) and turns maintenance mode on and off', async () => {
    host = (await d.api.request<{ name: string }[]>('GET', '/api/v1/nodes'))[0]!.name;
    // Inventory: cluster → host (with the leader mark) → VMs.
    await page.locator('.tree a.tree-cluster', { hasText: '(single host)' }).waitFor({ timeout: 15_000 });
    await page.locator(`.tree a.tree-host[data-host="${host}"] .leader-mark`).waitFor();
    await page.click(`.tree a.tree-host[data-host="${host}"]`);
    await page.locator('.host-head h2', { hasText: host }).waitFor({ timeout: 15_000 });
    await hostBadge('ready');
    for (const dt of ['Last heartbeat', 'Addresses', 'vCPU allocated', 'Memory reserved', 'etcd'])
      await page.locator('.host-page dt', { hasText: dt }).first().waitFor();
    expect(await page.locator('.host-page .heartbeat').textContent()).toMatch(/\d+ s ago/);
    // Removing the only host is not offered.
    expect(await page.locator('[data-action=remove]').isDisabled()).toBe(true);

    await page.click('[data-action=maintenance-enter]');
    await hostBadge('maintenance');
    await page.locator('.host-page .note', { hasText: 'maintenance mode' }).waitFor();
    await page.locator(`.tree a.tree-host[data-state="maintenance"]`).waitFor();
    await page.click('[data-action=maintenance-exit]');
    await hostBadge('ready');
    await page.locator(`.tree a.tree-host[data-state="ready"]`).waitFor();
    const state = await d.api.request<{ state: string }>('GET', `/api/v1/nodes/${host}`);
    expect(state.state).toBe('ready');

    await page.waitForFunction(
      () =>
        Number(
          document.querySelector('.host-charts .chart[data-title="Host CPU"]')?.getAttribute('data-points'),
        ) >= 2,
      undefined,
      { timeout: 20_000, polling: 200 },
    );
    await closeToasts();
    await shot('hosts.png');
  });

  it('keeps a VM pinned to a host in maintenance pending with the reason, and places it after', async () => {
    await page.click('[data-action=maintenance-enter]');
    await hostBadge('maintenance');

    await page.click('.topbar button.primary');
    await page.fill('.modal input[name=name]', 'pinned1');
    await page.fill('.modal input[name=memoryMiB]', '128');
    await page.fill('.modal input[name=diskGiB]', '1');
    await page.click('.modal details.placement summary');
    await page.locator(`.modal select[name=node] option[value="${host}"]`).waitFor({ state: 'attached' });
    await page.selectOption('.modal select[name=node]', host);
    await page.fill('.modal input[name=antiAffinityGroup]', 'web');
    await page.click('.modal button[type=submit]');
    await page.locator('.vm-head h2', { hasText: 'pinned1' }).waitFor({ timeout: 15_000 });
    await badge('pending', 15_000);
    expect(await page.locator('.vm-head .reason').textContent()).toMatch(
      /no host fits VM "pinned1".*in maintenance/,
    );
    expect(await page.locator('.vm-head .vm-host').textContent()).toBe('no host yet');
    expect(await page.locator('.card dd.placement').textContent()).toBe(
      `pinned to ${host}; anti-affinity group web`,
    );
    // The tree lists it under "Pending"; the dashboard raises an alarm with the reason.
    await page.locator('.tree .tree-group', { hasText: 'Pending (1)' }).waitFor();
    await page.click('.topbar nav a:has-text("Dashboard")');
    await page
      .locator('.alarms .alarm-warning', { hasText: /VM pinned1 is pending: no host fits/ })
      .waitFor({ timeout: 15_000 });
    await page.locator('.tree a', { hasText: 'pinned1' }).click();
    await badge('pending');

    // Maintenance off: the scheduler places it on the host, the page follows without a reload.
    await page.click(`.tree a.tree-host[data-host="${host}"]`);
    await page.click('[data-action=maintenance-exit]');
    await hostBadge('ready');
    await page.locator('.tree a', { hasText: 'pinned1' }).click();
    await badge('stopped', 30_000);
    await page.locator('.vm-head .vm-host a', { hasText: host }).waitFor();
    expect(await page.locator('.card dd.vm-node').textContent()).toBe(host);
    await page.locator('.tree .tree-group', { hasText: 'Pending' }).waitFor({ state: 'detached' });
    // The host page lists it; the VM list links the host.
    await page.click('.vm-head .vm-host a');
    await page.locator('.host-vms td', { hasText: 'pinned1' }).waitFor({ timeout: 15_000 });
    await page.click('.topbar nav a:has-text("Virtual machines")');
    await page
      .locator('.vm-list tr:has-text("pinned1") td a', { hasText: host })
      .waitFor({ timeout: 15_000 });
    const vm = (await d.api.request<{ id: string; name: string }[]>('GET', '/api/v1/vms')).find(
      (v) => v.name === 'pinned1',
    )!;
    await d.api.request('DELETE', `/api/v1/vms/${vm.id}`);
    await page.locator('.tree a', { hasText: 'pinned1' }).waitFor({ state: 'detached', timeout: 30_000 });
  });

  it('shows the cluster page: single-host note, policy errors inline, the default CPU model, join tokens unavailable', async () => {
    await page.click('.topbar nav a:has-text("Cluster")');
    await page
      .locator('.cluster-page .note.single-host', { hasText: 'runs alone' })
      .waitFor({ timeout: 15_000 });
    expect(await page.locator('.cluster-page .cluster-mode').textContent()).toBe('single-host');
    await page.locator('.hosts-table tr[data-host]').first().waitFor();
    expect(await page.locator('.hosts-table tr[data-host]').count()).toBe(1);
    // The API's own answer (invalid_state) says why there are no tokens.
    await page
      .locator('.join-tokens .tokens-unavailable', { hasText: /this host runs alone \(serve --dev\)/ })
      .waitFor({ timeout: 15_000 });
    expect(await page.locator('.join-tokens button', { hasText: 'Create join token' }).count()).toBe(0);

    // The default CPU model of new VMs: auto, which on one host is its CPU whole; the page says why.
    interface CpuCluster {
      policy: Record<string, unknown>;
      cpu: { defaultModel: string; model: string; why: string };
    }
    const auto = await d.api.request<CpuCluster>('GET', '/api/v1/cluster');
    expect(auto.policy.defaultCpuModel).toBe('auto');
    expect(auto.cpu).toMatchObject({ defaultModel: 'auto', model: 'host' });
    const cpuSelect = page.locator('.policy-form select[name=defaultCpuModel]');
    expect(await cpuSelect.inputValue()).toBe('auto');
    expect(await page.locator('.policy-form .cpu-default-model').textContent()).toBe(
      `New VMs without a CPU model get host: ${auto.cpu.why}.`,
    );

    // Placement policy: the API's validation message lands next to the field.
    await page.fill('.policy-form input[name=memoryOvercommit]', '9');
    await page.click('.policy-form button[type=submit]');
    await page
      .locator('.policy-form .field-error[data-field=memoryOvercommit]', { hasText: /4/ })
      .waitFor({ timeout: 15_000 });
    await page.fill('.policy-form input[name=memoryOvercommit]', '1.5');
    await page.selectOption('.policy-form select[name=strategy]', 'pack');
    await cpuSelect.selectOption('x86-64-v2');
    await page.click('.policy-form button[type=submit]');
    await page.locator('.toast', { hasText: 'Policy saved' }).waitFor({ timeout: 15_000 });
    await page.locator('.policy-form .field-error').waitFor({ state: 'detached' });
    const c = await d.api.request<CpuCluster>('GET', '/api/v1/cluster');
    expect(c.policy).toEqual({
      strategy: 'pack',
      memoryOvercommit: 1.5,
      vcpuOvercommit: 4,
      defaultCpuModel: 'x86-64-v2',
    });
    expect(c.cpu).toEqual({ defaultModel: 'x86-64-v2', model: 'x86-64-v2', why: 'set by an administrator' });
    await page
      .locator('.policy-form .cpu-default-model', {
        hasText: 'New VMs without a CPU model get x86-64-v2: set by an administrator.',
      })
      .waitFor({ timeout: 15_000 });

    // The create dialog offers it as the cluster's default, and then sends no model: the VM gets it.
    await page.click('.topbar button.primary');
    const create = page.getByRole('dialog', { name: 'New virtual machine' });
    await create.locator('input[name=name]').fill('cpudefault1');
    await create.locator('input[name=memoryMiB]').fill('256');
    await create.locator('input[name=diskGiB]').fill('1');
    await create.locator('details.hardware summary').click();
    expect(await create.getByLabel('CPU model').inputValue()).toBe('');
    expect(await create.locator('select[name=cpuModel] option[value=""]').textContent()).toBe(
      'Cluster default (x86-64-v2)',
    );
    const sent = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/api/v1/vms'));
    await create.locator('button[type=submit]').click();
    expect((await sent).postDataJSON().cpu).toBeUndefined();
    await page.locator('.vm-head h2', { hasText: 'cpudefault1' }).waitFor({ timeout: 15_000 });
    const made = await d.api.request<{ id: string; cpu: { model: string } }>(
      'GET',
      '/api/v1/vms/cpudefault1',
    );
    expect(made.cpu.model).toBe('x86-64-v2');
    await page.locator('.card.vm-hardware .hw-cpu', { hasText: /^x86-64-v2, / }).waitFor();
    await d.api.request('DELETE', `/api/v1/vms/${made.id}`);
    await page.click('.topbar nav a:has-text("Cluster")');

    await d.api.request('PATCH', '/api/v1/cluster', {
      policy: { strategy: 'spread', memoryOvercommit: 1, defaultCpuModel: 'auto' },
    });
    // The page reloads the cluster every 5 s; the form follows.
    await page.waitForFunction(
      () =>
        document.querySelector<HTMLSelectElement>('.policy-form select[name=strategy]')?.value === 'spread' &&
        document.querySelector<HTMLSelectElement>('.policy-form select[name=defaultCpuModel]')?.value ===
          'auto',
      undefined,
      { timeout: 15_000, polling: 200 },
    );
    await page.locator('.policy-form .cpu-default-model', { hasText: 'get host:' }).waitFor();
    await closeToasts();
    await page.click('.tasks-head');
    await shot('cluster.png');
    await page.click('.tasks-head');
    expect(pageErrors).toEqual([]);
  });

  it("shows and edits HA: detection time and admission on the cluster page, a VM's policy and protection", async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const closeAllToasts = async () => {
      while ((await p.locator('.toast-x').count()) > 0) await p.locator('.toast-x').first().click();
    };
    let haVmId = '';
    try {
      await p.goto(`${d.url}/#/cluster`);
      const card = p.locator('.ha-status');
      await card.locator('.ha-detection', { hasText: /^10 s / }).waitFor({ timeout: 15_000 });
      await card.locator('.ha-admission', { hasText: /\w{3}/ }).waitFor();
      await card.locator('.ha-recoveries, .ha-none').first().waitFor();

      // Detection time 15 s through the dialog.
      await card.locator('button', { hasText: 'Edit…' }).click();
      const settings = p.locator('.ha-settings-dialog');
      expect(await settings.locator('input[name=detectionSec]').inputValue()).toBe('10');
      await settings.locator('input[name=detectionSec]').fill('15');
      await settings.locator('button[type=submit]').click();
      await settings.waitFor({ state: 'detached', timeout: 15_000 });
      await card.locator('.ha-detection', { hasText: /^15 s / }).waitFor({ timeout: 15_000 });
      const ha = await d.api.request<{ settings: { detectionSec: number } }>('GET', '/api/v1/ha');
      expect(ha.settings.detectionSec).toBe(15);
      await d.api.request('PUT', '/api/v1/ha', { detectionSec: 10 });
      // The card reloads while the page is open.
      await card.locator('.ha-detection', { hasText: /^10 s / }).waitFor({ timeout: 15_000 });

      // A VM's policy: HA on, high priority, isolation response shutdown.
      const vm = await createVm(d.api, kernelVm('haui'));
      haVmId = vm.id;
      await p.goto(`${d.url}/#/vms/${vm.id}`);
      const haCard = p.locator('.ha-card');
      await haCard.locator('.protection[data-state=disabled]').waitFor({ timeout: 15_000 });
      await haCard.locator('button', { hasText: 'Edit HA…' }).click();
      const dialog = p.locator('.ha-dialog');
      await dialog.locator('input[name=enabled]').check();
      await dialog.locator('select[name=priority]').selectOption('high');
      await dialog.locator('select[name=isolationResponse]').selectOption('shutdown');
      await dialog.locator('.isolation-hint', { hasText: 'fenced' }).waitFor();
      expect(await dialog.locator('input[name=restartOrder]').inputValue()).toBe('0');
      await dialog.locator('button[type=submit]').click();
      await dialog.waitFor({ state: 'detached', timeout: 15_000 });
      const vmHa = await d.api.request<{
        policy: Record<string, unknown>;
        protection: { state: string; reason?: string };
      }>('GET', `/api/v1/vms/${vm.id}/ha`);
      expect(vmHa.policy).toEqual({
        enabled: true,
        priority: 'high',
        restartOrder: 0,
        isolationResponse: 'shutdown',
        monitoring: false,
      });
      // One host, a disk on its local pool: nowhere else to restart it, and the card says why.
      expect(vmHa.protection.state).toBe('unprotected');
      expect(vmHa.protection.reason).toMatch(/disk0 is on pool local .*not on shared storage/);
      await haCard
        .locator('.protection[data-state=unprotected]', { hasText: vmHa.protection.reason! })
        .waitFor({ timeout: 15_000 });
      expect(await haCard.locator('.protection').textContent()).toBe(
        `Unprotected: ${vmHa.protection.reason}`,
      );
      expect(await haCard.locator('.ha-enabled').textContent()).toBe('on');
      expect(await haCard.locator('.ha-priority').textContent()).toBe('high');
      expect(await haCard.locator('.ha-isolation').textContent()).toBe('shut down');

      // The cluster page lists it among the HA VMs not protected, with the reason.
      await p.goto(`${d.url}/#/cluster`);
      await card
        .locator('.ha-unprotected li[data-vm=haui]', { hasText: 'not on shared storage' })
        .waitFor({ timeout: 15_000 });
      await card.locator('.ha-detection', { hasText: /^10 s / }).waitFor();
      await closeAllToasts();
      await card.screenshot({ path: join(SHOTS, 'ha.png') });
      expect(errors).toEqual([]);
    } finally {
      await d.api.request('PUT', '/api/v1/ha', { detectionSec: 10 }).catch(() => {});
      if (haVmId) await d.api.request('DELETE', `/api/v1/vms/${haVmId}`).catch(() => {});
      await p.context().close();
    }
  });

  it('creates a UEFI VM with a TPM in the wizard and shows its hardware', async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    let id = '';
    try {
      await p.click('.topbar button.primary');
      const dialog = p.getByRole('dialog', { name: 'New virtual machine' });
      await dialog.locator('input[name=name]').fill('uefi1');
      await dialog.locator('input[name=memoryMiB]').fill('256');
      await dialog.locator('input[name=diskGiB]').fill('1');
      await dialog.locator('details.hardware summary').click();
      // Secure Boot needs UEFI: off and disabled while the firmware is BIOS (the default).
      const secureBoot = dialog.getByLabel('Secure Boot');
      expect(await dialog.getByLabel('Firmware').inputValue()).toBe('bios');
      expect(await secureBoot.isDisabled()).toBe(true);
      expect(await secureBoot.isChecked()).toBe(false);
      await dialog.getByLabel('Firmware').selectOption('uefi');
      await dialog.locator('input[name=secureBoot]:enabled').waitFor({ timeout: 5_000 });
      await dialog.getByLabel('TPM 2.0').check();
      await dialog.getByLabel('CPU model').selectOption('x86-64-v2');
      await dialog.getByLabel('Disk bus').selectOption('sata');
      await dialog.getByLabel('NIC model').selectOption('e1000e');
      // Native AIO needs O_DIRECT: said beside the choice until the cache mode is none.
      await dialog.getByLabel('Disk AIO').selectOption('native');
      await dialog.locator('.aio-hint', { hasText: 'native needs cache none or directsync' }).waitFor();
      await dialog.getByLabel('Disk cache').selectOption('none');
      await dialog.locator('.aio-hint').waitFor({ state: 'detached' });
      expect(await dialog.getByLabel('USB tablet').isChecked()).toBe(true);
      // A memory maximum below the memory is refused before anything is sent.
      await dialog.getByLabel('Max memory (MiB)').fill('128');
      await dialog.locator('button[type=submit]').click();
      await dialog
        .locator('.form-error', {
          hasText: 'Max memory: a whole number of MiB, at least the memory (256 MiB)',
        })
        .waitFor({ timeout: 5_000 });
      await dialog.getByLabel('Max memory (MiB)').fill('1024');
      await dialog.locator('button[type=submit]').click();
      await p.locator('.vm-head h2', { hasText: 'uefi1' }).waitFor({ timeout: 15_000 });

      const vm = await d.api.request<{
        id: string;
        machine: string;
        firmware: string;
        secureBoot: boolean;
        efiVars?: unknown;
        tpm: boolean;
        cpu: { model: string; sockets: number; cores: number; threads: number };
        tablet: boolean;
        maxMemoryMiB?: number;
        disks: { bus?: string; cache?: string; aio?: string }[];
        networks: { model?: string; mac: string }[];
      }>('GET', '/api/v1/vms/uefi1');
      id = vm.id;
      expect(vm.firmware).toBe('uefi');
      expect(vm.secureBoot).toBe(false);
      expect(vm.efiVars).toBeDefined();
      expect(vm.tpm).toBe(true);
      expect(vm.cpu.model).toBe('x86-64-v2');
      expect(vm.tablet).toBe(true);
      expect(vm.disks[0]!.bus).toBe('sata');
      expect(vm.disks[0]!.cache).toBe('none');
      expect(vm.disks[0]!.aio).toBe('native');
      expect(vm.maxMemoryMiB).toBe(1024);
      expect(vm.networks[0]!.model).toBe('e1000e');

      // The summary's Hardware card says the same.
      const card = p.locator('.card.vm-hardware');
      await card.locator('.hw-firmware', { hasText: /^UEFI$/ }).waitFor({ timeout: 15_000 });
      expect(await card.locator('.hw-machine').textContent()).toBe(vm.machine);
      expect(await card.locator('.hw-tpm').textContent()).toBe('TPM 2.0');
      expect(await card.locator('.hw-cpu').textContent()).toBe('x86-64-v2, 1 socket × 1 core × 1 thread');
      expect(await card.locator('.disk-bus').textContent()).toBe('SATA (AHCI)');
      expect(await card.locator('.disk-io-line').textContent()).toBe('cache none, aio native');
      expect(await card.locator('.hw-max-memory').textContent()).toBe('1024 MiB (hot-add)');
      expect(await card.locator('.nic').textContent()).toContain('Intel e1000e');
      expect(await card.locator('.nic').textContent()).toContain(vm.networks[0]!.mac);
      expect(errors).toEqual([]);
    } finally {
      if (id) await d.api.request('DELETE', `/api/v1/vms/${id}`).catch(() => {});
      await p.context().close();
    }
  });

  it('edits the hardware of a running VM (memory hot-added, the rest pending until a cold start), hot-plugs a disk and removes it; a stale edit is refused; a stopped disk gets another cache mode', async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    interface HwVm {
      state: string;
      memoryMiB: number;
      maxMemoryMiB?: number;
      description?: string;
      pendingChanges?: Record<string, unknown>;
      disks: { id: string; slot?: string; cache?: string; aio?: string }[];
    }
    const get = () => d.api.request<HwVm>('GET', `/api/v1/vms/${id}`);
    let id = '';
    try {
      const vm = await createVm(d.api, kernelVm('hwedit', { maxMemoryMiB: 512 }));
      id = vm.id;
      // Booted, so the guest takes part in the hot-plug (and lets the disk go again).
      await startAndBoot(d.api, id, () => vmAction(d.api, id, 'start'), new RegExp(BOOTED), 240_000);
      expect((await getVm(d.api, id)).state).toBe('running');
      await p.goto(`${d.url}/#/vms/${id}`);
      await p.locator('.vm-head .state-badge', { hasText: /^running$/ }).waitFor({ timeout: 30_000 });
      const card = p.locator('.card.vm-hardware');
      expect(await card.locator('.hw-max-memory').textContent()).toBe('512 MiB (hot-add)');

      // Memory 256 → 384 MiB: one 128 MiB block within the maximum, so the running VM gets it at once
      // (a DIMM) and nothing waits.
      await card.locator('button', { hasText: 'Edit hardware' }).click();
      const dialog = p.locator('.edit-hardware-dialog');
      const memory = dialog.getByLabel('Memory (MiB)', { exact: true });
      const maxMemory = dialog.getByLabel('Max memory (MiB)');
      await memory.waitFor({ timeout: 15_000 });
      expect(await memory.inputValue()).toBe('256');
      expect(await maxMemory.inputValue()).toBe('512');
      expect(await dialog.getByLabel('Name').inputValue()).toBe('hwedit');
      await dialog.locator('.running-hint').waitFor();
      expect(await dialog.locator('.memory-hint').textContent()).toBe(
        'Memory grows at once in whole 128 MiB steps from 256 MiB up to the maximum, 512 MiB; less, or other sizes, wait for the next stop and start.',
      );
      await memory.fill('384');
      await dialog.screenshot({ path: join(SHOTS, 'vm-edit-hardware.png') });
      await dialog.locator('button[type=submit]').click();
      await dialog.waitFor({ state: 'detached', timeout: 60_000 });
      await p.locator('.toast', { hasText: 'hwedit saved; now running with memory 384 MiB' }).waitFor();
      await p.locator('.vm-general .vm-memory', { hasText: /^384 MiB$/ }).waitFor({ timeout: 15_000 });
      expect(await card.locator('.pending-changes').count()).toBe(0);
      const grown = await get();
      expect(grown.state).toBe('running');
      expect(grown.memoryMiB).toBe(384);
      expect(grown.pendingChanges).toBeUndefined();

      // 384 → 448 MiB is not a whole block: it waits for the next stop and start.
      await card.locator('button', { hasText: 'Edit hardware' }).click();
      await memory.waitFor({ timeout: 15_000 });
      expect(await memory.inputValue()).toBe('384');
      await dialog.locator('.memory-hint', { hasText: 'from 384 MiB up to the maximum, 512 MiB' }).waitFor();
      await memory.fill('448');
      await dialog.locator('button[type=submit]').click();
      await dialog.waitFor({ state: 'detached', timeout: 15_000 });
      await card
        .locator('.pending-changes', { hasText: 'Pending until the next stop and start: memory 448 MiB' })
        .waitFor({ timeout: 15_000 });
      const edited = await get();
      expect(edited.memoryMiB).toBe(384);
      expect(edited.pendingChanges).toEqual({ memoryMiB: 448 });

      // A 1 GiB write-through disk, hot-plugged into a slot.
      await card.locator('button', { hasText: 'Add disk' }).click();
      const add = p.locator('.add-disk-dialog');
      expect(await add.getByLabel('Bus').inputValue()).toBe('virtio-blk');
      expect(await add.locator('select[name=cache]').inputValue()).toBe('writeback');
      expect(await add.locator('select[name=aio]').inputValue()).toBe('threads');
      await add.getByLabel('Size (GiB)').fill('1');
      await add.locator('select[name=cache]').selectOption('writethrough');
      await add.locator('button[type=submit]').click();
      await add.waitFor({ state: 'detached', timeout: 60_000 });
      await card
        .locator('.disk[data-disk=disk1] .disk-io-line', { hasText: /^cache writethrough$/ })
        .waitFor({ timeout: 15_000 });
      const plugged = await get();
      expect(plugged.disks.map((x) => x.id)).toEqual(['disk0', 'disk1']);
      expect(plugged.disks[1]!.slot).toBeTruthy();
      expect(plugged.disks[1]!.cache).toBe('writethrough');
      expect(plugged.disks[1]!.aio).toBeUndefined();
      expect(await card.locator('.disk[data-disk=disk0] .disk-io-line').textContent()).toBe(
        'cache writeback',
      );
      // A running VM's disks keep their cache mode: I/O mode… is off, and says why.
      const ioMode = card.locator('.disk[data-disk=disk0] button[data-action=disk-io]');
      expect(await ioMode.isDisabled()).toBe(true);
      expect(await ioMode.getAttribute('title')).toMatch(/^Stop the VM/);
      await card.screenshot({ path: join(SHOTS, 'vm-hardware.png') });

      // Out again through Remove… and the confirmation, the volume deleted too.
      await card.locator('.disk[data-disk=disk1] button', { hasText: 'Remove' }).click();
      const confirm = p.getByRole('dialog', { name: 'Remove disk1 from hwedit?' });
      await confirm.locator('input[name=deleteVolume]').check();
      await confirm.locator('button', { hasText: /^Remove$/ }).click();
      await confirm.waitFor({ state: 'detached', timeout: 60_000 });
      await card.locator('.disk[data-disk=disk1]').waitFor({ state: 'detached', timeout: 15_000 });
      expect((await get()).disks.map((x) => x.id)).toEqual(['disk0']);
      const volumes = await d.api.request<{ name: string }[]>('GET', '/api/v1/pools/local/volumes');
      expect(volumes.map((v) => v.name)).not.toContain(`vm-${id}-disk1.qcow2`);

      // A stale edit: the VM changes through the API while the dialog is open; saving is refused (412).
      await card.locator('button', { hasText: 'Edit hardware' }).click();
      await memory.waitFor({ timeout: 15_000 });
      // the pending change fills the dialog
      expect(await memory.inputValue()).toBe('448');
      await d.api.request('PATCH', `/api/v1/vms/${id}`, { description: 'changed meanwhile' });
      await memory.fill('512');
      await dialog.locator('button[type=submit]').click();
      await dialog
        .locator('.form-error', { hasText: 'changed since you opened this dialog; reopen it' })
        .waitFor({ timeout: 15_000 });
      expect(await dialog.isVisible()).toBe(true);
      await dialog.locator('button', { hasText: 'Cancel' }).click();
      await dialog.waitFor({ state: 'detached' });
      const kept = await get();
      expect(kept.description).toBe('changed meanwhile');
      expect(kept.pendingChanges).toEqual({ memoryMiB: 448 });
      await p
        .locator('.vm-general .vm-description', { hasText: 'changed meanwhile' })
        .waitFor({ timeout: 15_000 });

      // A new maximum is a cold change: it waits. One below the memory is refused in the dialog first.
      await card.locator('button', { hasText: 'Edit hardware' }).click();
      await maxMemory.waitFor({ timeout: 15_000 });
      await maxMemory.fill('300');
      await dialog.locator('button[type=submit]').click();
      await dialog
        .locator('.form-error', {
          hasText: 'Max memory: a whole number of MiB, at least the memory (448 MiB)',
        })
        .waitFor({ timeout: 5_000 });
      await maxMemory.fill('1024');
      await dialog.locator('button[type=submit]').click();
      await dialog.waitFor({ state: 'detached', timeout: 15_000 });
      await card
        .locator('.pending-changes', {
          hasText: 'Pending until the next stop and start: memory 448 MiB, max memory 1024 MiB',
        })
        .waitFor({ timeout: 15_000 });
      expect(await card.locator('.hw-max-memory').textContent()).toBe('512 MiB (hot-add)');
      expect((await get()).pendingChanges).toEqual({ memoryMiB: 448, maxMemoryMiB: 1024 });

      // Stopped: I/O mode… of disk0. Native AIO with the page cache is refused by the API, inline.
      await vmAction(d.api, id, 'stop', '?force=true');
      await p.locator('.vm-head .state-badge', { hasText: /^stopped$/ }).waitFor({ timeout: 30_000 });
      await ioMode.click();
      const io = p.getByRole('dialog', { name: 'I/O mode of disk0' });
      expect(await io.locator('select[name=cache]').inputValue()).toBe('writeback');
      await io.locator('select[name=aio]').selectOption('native');
      await io.locator('.aio-hint').waitFor();
      await io.locator('button[type=submit]').click();
      await io
        .locator('.form-error', { hasText: 'aio "native" needs cache "none" or "directsync"' })
        .waitFor({ timeout: 15_000 });
      await io.locator('select[name=cache]').selectOption('none');
      await io.locator('.aio-hint').waitFor({ state: 'detached' });
      // The VM starts while the dialog is open: the dialog says so, and the API refuses the change.
      await vmAction(d.api, id, 'start');
      await io.locator('.running-hint').waitFor({ timeout: 15_000 });
      await io.locator('button[type=submit]').click();
      await io
        .locator('.form-error', {
          hasText: "runs: a disk's cache mode and AIO engine change while the VM is stopped",
        })
        .waitFor({ timeout: 15_000 });
      await io.screenshot({ path: join(SHOTS, 'vm-disk-io.png') });
      await io.locator('button', { hasText: 'Cancel' }).click();
      await vmAction(d.api, id, 'stop', '?force=true');
      await p.locator('.vm-head .state-badge', { hasText: /^stopped$/ }).waitFor({ timeout: 30_000 });
      await ioMode.click();
      await io.locator('select[name=cache]').selectOption('none');
      await io.locator('select[name=aio]').selectOption('native');
      await io.locator('button[type=submit]').click();
      await io.waitFor({ state: 'detached', timeout: 15_000 });
      await card
        .locator('.disk[data-disk=disk0] .disk-io-line', { hasText: /^cache none, aio native$/ })
        .waitFor({ timeout: 15_000 });
      const tuned = await get();
      expect(tuned.disks).toMatchObject([{ id: 'disk0', cache: 'none', aio: 'native' }]);
      // the start in between took the pending memory and maximum
      expect(tuned).toMatchObject({ memoryMiB: 448, maxMemoryMiB: 1024 });
      expect(tuned.pendingChanges).toBeUndefined();
      await card
        .locator('.hw-max-memory', { hasText: /^1024 MiB \(hot-add\)$/ })
        .waitFor({ timeout: 15_000 });
      expect(errors).toEqual([]);
    } finally {
      if (id) {
        await vmAction(d.api, id, 'stop', '?force=true').catch(() => {});
        await d.api.request('DELETE', `/api/v1/vms/${id}?force=true`).catch(() => {});
      }
      await p.context().close();
    }
  });

  it('changes the CD/DVD of a running VM, limits a disk, pulls a NIC cable and sends keys on the console', async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    interface DevVm {
      state: string;
      media?: { image?: string };
      disks: { id: string; limits?: Record<string, number> }[];
      networks: { id: string; linkDown?: boolean }[];
    }
    const get = () => d.api.request<DevVm>('GET', `/api/v1/vms/${id}`);
    let id = '';
    try {
      const vm = await createVm(d.api, kernelVm('devui', { media: {} }));
      id = vm.id;
      await startAndBoot(d.api, id, () => vmAction(d.api, id, 'start'), new RegExp(BOOTED), 240_000);
      await p.goto(`${d.url}/#/vms/${id}`);
      await p.locator('.vm-head .state-badge', { hasText: /^running$/ }).waitFor({ timeout: 30_000 });
      const card = p.locator('.card.vm-hardware');

      // The empty drive; Insert… the demo ISO, live.
      const media = card.locator('.media');
      await media.locator('.media-image', { hasText: /^empty$/ }).waitFor({ timeout: 15_000 });
      await media.locator('button', { hasText: 'Insert' }).click();
      const iso = media.locator('select[name=image]');
      await iso.locator('option', { hasText: 'demo' }).waitFor({ state: 'attached', timeout: 15_000 });
      await iso.selectOption({ label: 'demo' });
      await media.locator('button[type=submit]').click();
      await media.locator('.media-image', { hasText: /^demo$/ }).waitFor({ timeout: 60_000 });
      const images = await d.api.request<{ id: string; name: string }[]>('GET', '/api/v1/images');
      expect((await get()).media).toEqual({ image: images.find((i) => i.name === 'demo')!.id });
      await card.screenshot({ path: join(SHOTS, 'vm-hardware-devices.png') });

      // Eject: empty again.
      await media.locator('button', { hasText: 'Eject' }).click();
      await media.locator('.media-image', { hasText: /^empty$/ }).waitFor({ timeout: 60_000 });
      expect((await get()).media).toEqual({});

      // 100 IOPS on disk0 through Limits…; shown in its row.
      const disk = card.locator('.disk[data-disk=disk0]');
      await disk.locator('button', { hasText: 'Limits' }).click();
      const limits = p.getByRole('dialog', { name: 'I/O limits of disk0' });
      expect(await limits.getByLabel('IOPS').inputValue()).toBe('');
      await limits.getByLabel('IOPS').fill('100');
      await limits.locator('button[type=submit]').click();
      await limits.waitFor({ state: 'detached', timeout: 30_000 });
      await disk.locator('.disk-limits-line', { hasText: 'limits 100 IOPS' }).waitFor({ timeout: 15_000 });
      expect((await get()).disks[0]!.limits).toEqual({ iops: 100 });

      // net0's cable pulled, then plugged back in.
      const nic = card.locator('.nic[data-nic=net0]');
      await nic.locator('button', { hasText: 'Disconnect' }).click();
      await nic.locator('.nic-link-down', { hasText: 'disconnected' }).waitFor({ timeout: 15_000 });
      expect((await get()).networks[0]!.linkDown).toBe(true);
      await nic.locator('button', { hasText: /^Connect$/ }).click();
      await nic.locator('.nic-link-down').waitFor({ state: 'detached', timeout: 15_000 });
      expect((await get()).networks[0]!.linkDown).toBeFalsy();

      // The console: text typed as keys, then Ctrl+Alt+Del from Send keys (busybox init reboots the guest).
      await p.click('.tabs a:has-text("Console")');
      await p.locator('.console-status.connected').waitFor({ timeout: 30_000 });
      await p.locator('button[data-action=paste-text]').click();
      const paste = p.getByRole('dialog', { name: 'Paste text' });
      // Typed into the shell on tty1 (the VGA console); Shift for the capitals and symbols. Its output goes
      // to the serial console, whose log the API serves.
      const text = 'echo Paste-OK:$((6*7)) >/dev/ttyS0\n';
      await paste.getByLabel('Text to type').fill(text);
      await paste.locator('button[type=submit]').click();
      await paste.waitFor({ state: 'detached', timeout: 5_000 });
      await p.locator('.console-sent', { hasText: `${text.length} keys typed` }).waitFor({ timeout: 5_000 });
      await waitConsole(d.api, id, /Paste-OK:42/, 30_000);
      await startAndBoot(
        d.api,
        id,
        async () => {
          await p.locator('button[data-action=send-keys]').click();
          await p.getByRole('menuitem', { name: 'Ctrl+Alt+Del', exact: true }).click();
        },
        new RegExp(BOOTED),
        240_000,
      );
      await p.locator('.console-sent', { hasText: 'Ctrl+Alt+Del sent' }).waitFor({ timeout: 5_000 });
      await p.locator('button[data-action=send-keys]').click();
      expect(await p.getByRole('menuitem').allTextContents()).toEqual([
        'Ctrl+Alt+Del',
        ...Array.from({ length: 12 }, (_, i) => `Ctrl+Alt+F${i + 1}`),
      ]);
      await p.screenshot({ path: join(SHOTS, 'console-send-keys.png') });
      await p.getByRole('menuitem', { name: 'Ctrl+Alt+F2', exact: true }).click();
      await p.locator('.console-sent', { hasText: 'Ctrl+Alt+F2 sent' }).waitFor({ timeout: 5_000 });
      expect((await get()).state).toBe('running');

      // Stopped: boot order (the CD/DVD drive first, then disk0) and a vCPU maximum in Edit hardware.
      await vmAction(d.api, id, 'stop', '?force=true');
      await p.click('.tabs a:has-text("Summary")');
      await p.locator('.vm-head .state-badge', { hasText: /^stopped$/ }).waitFor({ timeout: 30_000 });
      await card.locator('button', { hasText: 'Edit hardware' }).click();
      const edit = p.locator('.edit-hardware-dialog');
      const boot = edit.locator('fieldset.boot-order');
      await boot.waitFor({ timeout: 15_000 });
      expect(
        await boot.locator('li').evaluateAll((li) => li.map((x) => x.getAttribute('data-boot'))),
      ).toEqual(['disk0', 'cd1', 'net0']);
      await boot.locator('input[name=boot-disk0]').check();
      await boot.locator('input[name=boot-cd1]').check();
      await boot.getByRole('button', { name: 'Move cd1 up' }).click();
      await edit.getByLabel('Max vCPUs (hot-add)').fill('2');
      await edit.locator('button[type=submit]').click();
      await edit.waitFor({ state: 'detached', timeout: 15_000 });
      await card.locator('.hw-boot-order', { hasText: 'cd1 → disk0' }).waitFor({ timeout: 15_000 });
      expect(await card.locator('.hw-max-vcpus').textContent()).toBe('2 (hot-add)');
      const edited = await d.api.request<{ bootOrder?: string[]; maxVcpus?: number }>(
        'GET',
        `/api/v1/vms/${id}`,
      );
      expect(edited.bootOrder).toEqual(['cd1', 'disk0']);
      expect(edited.maxVcpus).toBe(2);
      expect(errors).toEqual([]);
    } finally {
      if (id) {
        await vmAction(d.api, id, 'stop', '?force=true').catch(() => {});
        await d.api.request('DELETE', `/api/v1/vms/${id}?force=true`).catch(() => {});
      }
      await p.context().close();
    }
  });

  it('creates a VM with tags, autostart and cloud-init in the wizard, shows them and turns autostart off', async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJp2o0ZyFz0fY7rXc6cXo6Yq1bGd8bq3vX1U5vYk0C1a ui@test';
    const secret = 'Ui-Cloud-Init-Secret-4711';
    interface StartupVm {
      id: string;
      tags?: string[];
      onBoot?: { enabled: boolean; order: number; delaySec: number };
      cloudInit?: {
        hostname?: string;
        sshKeys?: string[];
        passwordSet: boolean;
        userData: boolean;
        networkConfig: boolean;
      };
    }
    let id = '';
    try {
      await p.click('.topbar button.primary');
      const dialog = p.getByRole('dialog', { name: 'New virtual machine' });
      await dialog.locator('input[name=name]').fill('boot1');
      await dialog.locator('input[name=memoryMiB]').fill('256');
      await dialog.locator('input[name=diskGiB]').fill('1');
      await dialog.locator('input[name=tags]').fill('web env:test,');
      await dialog.locator('details.startup summary').click();
      // Order and delay wait for the autostart box; the cloud-init fields for theirs.
      expect(await dialog.getByLabel('Order').isDisabled()).toBe(true);
      await dialog.getByLabel('Start when the host boots').check();
      await dialog.getByLabel('Order').fill('2');
      await dialog.getByLabel('Delay (s)').fill('5');
      expect(await dialog.getByLabel('Host name').isDisabled()).toBe(true);
      await dialog.getByLabel('Cloud-init').check();
      await dialog.getByLabel('Host name').fill('ui-ci');
      await dialog.getByLabel('SSH public keys').fill(`${key}\n\n`);
      await dialog.getByLabel('Root password').fill(secret);
      await dialog.locator('button[type=submit]').click();
      await p.locator('.vm-head h2', { hasText: 'boot1' }).waitFor({ timeout: 15_000 });

      const res = await d.api.request<StartupVm>('GET', '/api/v1/vms/boot1');
      id = res.id;
      expect(res.tags).toEqual(['env:test', 'web']);
      expect(res.onBoot).toEqual({ enabled: true, order: 2, delaySec: 5 });
      expect(res.cloudInit).toMatchObject({ hostname: 'ui-ci', sshKeys: [key], passwordSet: true });
      // The password is nowhere in the API's answer (the server keeps a hash and shows neither).
      expect(JSON.stringify(res)).not.toContain(secret);

      // The General card says the same.
      const general = p.locator('.card.vm-general');
      await general.locator('.vm-onboot', { hasText: 'order 2, then 5 s' }).waitFor({ timeout: 15_000 });
      expect(await general.locator('.vm-cloud-init').textContent()).toBe(
        'host name ui-ci, 1 SSH key, password set',
      );
      expect(await general.locator('.vm-tags-field .vm-tag').allTextContents()).toEqual(['env:test', 'web']);

      // The edit dialog, filled from the VM: the password empty and kept.
      await general.locator('button[data-action=edit-startup]').click();
      const edit = p.locator('.edit-startup-dialog');
      const order = edit.getByLabel('Order');
      await order.waitFor({ timeout: 15_000 });
      expect(await edit.getByLabel('Start when the host boots').isChecked()).toBe(true);
      expect(await order.inputValue()).toBe('2');
      expect(await edit.getByLabel('Delay (s)').inputValue()).toBe('5');
      expect(await edit.getByLabel('Host name').inputValue()).toBe('ui-ci');
      expect(await edit.getByLabel('SSH public keys').inputValue()).toBe(key);
      expect(await edit.getByLabel('Root password').inputValue()).toBe('');
      expect(await edit.getByLabel('Keep the current password').isChecked()).toBe(true);
      // Another host name while keeping the password: it has to be typed again, Save waits for it.
      const save = edit.locator('button[type=submit]');
      await edit.getByLabel('Host name').fill('ui-ci2');
      await edit.locator('.password-needed').waitFor({ timeout: 5_000 });
      expect(await save.isDisabled()).toBe(true);
      await edit.getByLabel('Host name').fill('ui-ci');
      await edit.locator('.password-needed').waitFor({ state: 'detached', timeout: 5_000 });
      expect(await save.isEnabled()).toBe(true);
      // Autostart off: only onBoot is sent, the cloud-init (and its password) stays.
      await edit.getByLabel('Start when the host boots').uncheck();
      expect(await order.isDisabled()).toBe(true);
      await save.click();
      await edit.waitFor({ state: 'detached', timeout: 15_000 });
      await general.locator('.vm-onboot', { hasText: /^off$/ }).waitFor({ timeout: 15_000 });
      const off = await d.api.request<StartupVm>('GET', `/api/v1/vms/${id}`);
      expect(off.onBoot).toBeUndefined();
      expect(off.cloudInit).toMatchObject({ hostname: 'ui-ci', sshKeys: [key], passwordSet: true });
      expect(JSON.stringify(off)).not.toContain(secret);
      expect(errors).toEqual([]);
    } finally {
      if (id) await d.api.request('DELETE', `/api/v1/vms/${id}`).catch(() => {});
      await p.context().close();
    }
  });

  it('converts a stopped VM into a template and makes a linked clone of it', async () => {
    const vm = await createVm(d.api, kernelVm('tplui'));
    await page.goto(`${d.url}/#/vms/${vm.id}`);
    await page.click('[data-action=template]');
    await page.locator('.actions .template-tag').waitFor({ timeout: 15_000 });
    expect(await page.locator('[data-action=start]').count()).toBe(0);
    await page.click('[data-action=clone]');
    await page.fill('.clone-dialog input[name=name]', 'tplui-1');
    await page.click('.clone-dialog button[type=submit]');
    await page.locator('.vm-head h2', { hasText: 'tplui-1' }).waitFor({ timeout: 15_000 });
    await badge('stopped');
    const clone = await d.api.request<{ id: string; disks: { cloneOf?: { vm: string } }[] }>(
      'GET',
      '/api/v1/vms/tplui-1',
    );
    expect(clone.disks[0]!.cloneOf?.vm).toBe(vm.id);
    // a full clone: its disk hangs off nothing
    await page.goto(`${d.url}/#/vms/${vm.id}`);
    await page.click('[data-action=clone]');
    await page.fill('.clone-dialog input[name=name]', 'tplui-full');
    await page.check('.clone-dialog input[name=full]');
    await page.click('.clone-dialog button[type=submit]');
    await page.locator('.vm-head h2', { hasText: 'tplui-full' }).waitFor({ timeout: 30_000 });
    const full = await d.api.request<{ id: string; disks: { cloneOf?: unknown }[] }>(
      'GET',
      '/api/v1/vms/tplui-full',
    );
    expect(full.disks[0]!.cloneOf).toBeUndefined();
    await d.api.request('DELETE', `/api/v1/vms/${full.id}`);
    await d.api.request('DELETE', `/api/v1/vms/${clone.id}`);
    await d.api.request('DELETE', `/api/v1/vms/${vm.id}`);
    expect(pageErrors).toEqual([]);
  });

  it("clones a running VM from one of its snapshots (the API's refusals inline), and shows its dead TPM emulator as a warning", async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const state = (st: string, timeout = 60_000) =>
      p.locator('.vm-head .state-badge', { hasText: new RegExp(`^${st}$`) }).waitFor({ timeout });
    interface CloneVm {
      id: string;
      node: string;
      state: string;
      tpm: boolean;
      warning?: string;
      disks: { pool: string; volume: string; cloneOf?: unknown }[];
      networks: { mac: string }[];
      snapshots: unknown[];
    }
    // A TPM (swtpm beside QEMU) on the BIOS: the guest need not boot for its emulator to run.
    const src = await createVm(d.api, kernelVm('snapui', { tpm: true, start: true }));
    let cloneId = '';
    try {
      await p.goto(`${d.url}/#/vms/${src.id}/snapshots`);
      await state('running');
      const node = (await d.api.request<CloneVm>('GET', `/api/v1/vms/${src.id}`)).node;
      await p.fill('.snapshots input', 's1');
      await p.click('.snapshots button[type=submit]');
      await p.locator('.snapshots td', { hasText: /^s1$/ }).waitFor({ timeout: 30_000 });

      // Clone… on the snapshot's row: the name prefilled, what the clone gets said
      await p.click('.snapshots tr:has-text("s1") [data-action=clone-snapshot]');
      const dialog = p.getByRole('dialog', { name: 'Clone snapui at snapshot s1' });
      expect(await dialog.locator('input[name=name]').inputValue()).toBe('snapui-s1');
      expect(await dialog.locator('.clone-hint').textContent()).toBe(
        `Full copies of the disks as they were at snapshot s1; the clone starts stopped on host ${node}.`,
      );
      // a taken name: the API's refusal in the dialog, which stays open
      await dialog.locator('input[name=name]').fill('snapui');
      await dialog.locator('button[type=submit]').click();
      await dialog.locator('.form-error', { hasText: 'already exists' }).waitFor({ timeout: 15_000 });
      await dialog.locator('input[name=name]').fill('snapui-s1');
      await dialog.locator('button[type=submit]').click();
      await p.locator('.vm-head h2', { hasText: 'snapui-s1' }).waitFor({ timeout: 60_000 });
      await p.locator('.toast', { hasText: 'snapui-s1 made from snapui at snapshot s1' }).waitFor();
      await state('stopped');
      const clone = await d.api.request<CloneVm>('GET', '/api/v1/vms/snapui-s1');
      cloneId = clone.id;
      expect(p.url()).toContain(`#/vms/${clone.id}`);
      expect(clone).toMatchObject({ state: 'stopped', node, tpm: true, snapshots: [] });
      // its disk is a volume of its own (a full copy, no parent), its MAC a new one
      expect(clone.disks.map((x) => x.volume)).toEqual([`vm-${clone.id}-disk0.qcow2`]);
      expect(clone.disks[0]!.cloneOf).toBeUndefined();
      const volumes = await d.api.request<{ name: string }[]>(
        'GET',
        `/api/v1/pools/${clone.disks[0]!.pool}/volumes`,
      );
      expect(volumes.map((v) => v.name)).toContain(`vm-${clone.id}-disk0.qcow2`);
      const macs = (await d.api.request<CloneVm>('GET', `/api/v1/vms/${src.id}`)).networks.map((n) => n.mac);
      expect(macs).not.toContain(clone.networks[0]!.mac);

      // a snapshot gone while the dialog is open: the API's not_found in the dialog
      await d.api.request('POST', `/api/v1/vms/${src.id}/snapshots`, { name: 's2' });
      await p.goto(`${d.url}/#/vms/${src.id}/snapshots`);
      await p.locator('.snapshots td', { hasText: /^s2$/ }).waitFor({ timeout: 15_000 });
      await p.click('.snapshots tr:has-text("s2") [data-action=clone-snapshot]');
      const gone = p.getByRole('dialog', { name: 'Clone snapui at snapshot s2' });
      await d.api.request('DELETE', `/api/v1/vms/${src.id}/snapshots/s2`);
      await p.locator('.snapshots td', { hasText: /^s2$/ }).waitFor({ state: 'detached', timeout: 15_000 });
      await gone.locator('button[type=submit]').click();
      await gone.locator('.form-error', { hasText: 'has no snapshot "s2"' }).waitFor({ timeout: 15_000 });
      await gone.locator('button', { hasText: 'Cancel' }).click();
      expect(
        (await d.api.request<{ name: string }[]>('GET', '/api/v1/vms')).map((v) => v.name),
      ).not.toContain('snapui-s2');

      // swtpm killed under the running VM: a banner on the VM page, an alarm on the dashboard
      const pidfile = join(d.dataDir, 'node', 'vms', src.id, 'swtpm.pid');
      process.kill(Number(readFileSync(pidfile, 'utf8').trim()), 'SIGKILL');
      await p.goto(`${d.url}/#/vms/${src.id}`);
      const banner = p.locator('[data-testid=vm-warning]');
      await banner.filter({ hasText: "the VM's TPM emulator (swtpm) exited" }).waitFor({ timeout: 30_000 });
      const warning = (await d.api.request<CloneVm>('GET', `/api/v1/vms/${src.id}`)).warning;
      expect(warning).toMatch(/stop and start the VM/);
      expect(await banner.textContent()).toBe(`Warning: ${warning}`);
      await p.goto(`${d.url}/#/`);
      const alarm = p.locator('.alarms .alarm-warning', { hasText: `VM snapui: ${warning}` });
      await alarm.waitFor({ timeout: 15_000 });
      expect(await alarm.locator('a').getAttribute('href')).toBe(`#/vms/${src.id}`);
      await alarm.locator('a').click();
      await banner.waitFor({ timeout: 15_000 });
      // a cold stop ends it
      await p.click('[data-action=force-stop]');
      await state('stopped');
      await banner.waitFor({ state: 'detached', timeout: 15_000 });
      expect((await d.api.request<CloneVm>('GET', `/api/v1/vms/${src.id}`)).warning).toBeUndefined();
      await p.goto(`${d.url}/#/`);
      await p.locator('.dashboard h3', { hasText: 'Alarms' }).waitFor();
      expect(await p.locator('.alarm', { hasText: 'VM snapui' }).count()).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      if (cloneId) await d.api.request('DELETE', `/api/v1/vms/${cloneId}`).catch(() => {});
      await d.api.request('DELETE', `/api/v1/vms/${src.id}?force=true`).catch(() => {});
      await p.context().close();
    }
  });

  it('shows storage pools; adds a Ceph pool (a wrong key is refused inline), lists its volumes, removes it', async () => {
    const ceph = await (await sharedCephLab()).newPool();
    await page.click('.topbar a[href="#/storage"]');
    await page.locator('.storage-page tr[data-pool=local]').waitFor({ timeout: 15_000 });
    expect(await page.locator('.storage-page tr[data-pool=local] td').nth(2).textContent()).toBe('per host');
    const fill = async (key: string) => {
      await page.fill('.add-pool input[name=name]', 'ceph');
      await page.fill('.add-pool input[name=pool]', ceph.pool);
      await page.fill('.add-pool input[name=monitors]', (await sharedCephLab()).ip);
      await page.fill('.add-pool input[name=user]', ceph.user);
      await page.fill('.add-pool input[name=key]', key);
      await page.click('.add-pool button[type=submit]');
    };
    await fill('AQBSdVRnAAAAABAAt7ZKy2wPwp8RZQcTvv0Dmw==');
    await page
      .locator('.add-pool .form-error', { hasText: 'nothing was stored' })
      .waitFor({ timeout: 60_000 });
    await fill(ceph.key);
    const row = page.locator('.storage-page tr[data-pool=ceph]');
    await row.waitFor({ timeout: 60_000 });
    expect(await row.locator('td').nth(2).textContent()).toBe('shared');
    // the key went in, and never comes back out
    expect(await page.content()).not.toContain(ceph.key);
    // the host reports the pool with its capacity
    await row.locator('.meter').waitFor({ timeout: 20_000 });
    await createVm(d.api, kernelVm('onceph', { disks: [{ sizeGiB: 1, pool: 'ceph' }] }));
    await row.locator('button.link').click();
    await page
      .locator('.volumes[data-volumes=ceph] td.mono', { hasText: /^vm-.*-disk0/ })
      .waitFor({ timeout: 15_000 });
    await closeToasts();
    await shot('storage.png');
    // removing a pool that holds a VM's disk is refused, with the VM named
    await row.locator('[data-action=remove-pool]').click();
    await page.click('.modal button.danger');
    await page.locator('.modal .form-error', { hasText: 'onceph' }).waitFor({ timeout: 15_000 });
    await page.click('.modal button:not(.danger)');
    await d.api.request('DELETE', '/api/v1/vms/onceph?force=true');
    await row.locator('[data-action=remove-pool]').click();
    await page.click('.modal button.danger');
    await row.waitFor({ state: 'detached', timeout: 15_000 });
    expect(pageErrors).toEqual([]);
  });

  it('sets up the integrated Ceph on this host from the Storage page, with an OSD, offered as pool "ceph"', async () => {
    const mon = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
    await page.goto(`${d.url}/#/storage`);
    await page.locator('.ceph-bootstrap').waitFor({ timeout: 15_000 });
    await page.fill('.ceph-bootstrap input[name=size]', '1');
    await page.fill('.ceph-bootstrap input[name=minSize]', '1');
    await page.fill('.ceph-bootstrap input[name=monitorAddress]', mon);
    await page.click('.ceph-bootstrap button[type=submit]');
    await page.locator('.ceph-card .warning-text', { hasText: 'one copy' }).waitFor({ timeout: 90_000 });
    await page.locator('.storage-page tr[data-pool=ceph]').waitFor({ timeout: 15_000 });
    await page.fill('.add-osd input[name=device]', join(d.dataDir, 'osd0.img'));
    await page.fill('.add-osd input[name=sizeGiB]', '4');
    await page.click('.add-osd button[type=submit]');
    await page.locator('.ceph-card .osds', { hasText: '1 up, 1 in, of 1' }).waitFor({ timeout: 120_000 });
    await closeToasts();
    await page.locator('.ceph-card').screenshot({ path: join(SHOTS, 'ceph.png') });
    expect(pageErrors).toEqual([]);
  });

  it('imports a vSphere OVA in the wizard: uploaded, its mapping reviewed and changed (a taken name refused inline), imported and started', async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const g = testGuest();
    const dir = mkdtempSync(join(tmpdir(), 'nf-e2e-import-'));
    const taken = await createVm(d.api, kernelVm('imp-taken'));
    try {
      // An OVA as ovftool writes it (test/integration/import.test.ts): the bootable demo ISO and the data
      // disk as streamOptimized VMDKs, the vSphere OVF, a SHA256 manifest, the OVF first in the tar.
      const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: dir, stdio: 'pipe' });
      const vmdk = (raw: string, out: string) =>
        sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, out]);
      vmdk(g.iso, 'web01-disk1.vmdk');
      vmdk(g.dataDisk, 'web01-disk2.vmdk');
      const isoBytes = statSync(g.iso).size;
      const vars = { SIZE1: '0', SIZE2: '0', CAP1: String(isoBytes) };
      let ovf = readFileSync(join(import.meta.dirname, '../fixtures/ovf/vsphere.ovf'), 'utf8');
      for (const [k, v] of Object.entries(vars)) ovf = ovf.replaceAll(`@${k}@`, v);
      writeFileSync(join(dir, 'web01.ovf'), ovf);
      const files = ['web01.ovf', 'web01-disk1.vmdk', 'web01-disk2.vmdk'];
      const sha256 = (f: string) =>
        createHash('sha256')
          .update(readFileSync(join(dir, f)))
          .digest('hex');
      writeFileSync(join(dir, 'web01.mf'), files.map((f) => `SHA256(${f})= ${sha256(f)}\n`).join(''));
      sh('tar', ['-cf', 'web01.ova', 'web01.ovf', 'web01.mf', 'web01-disk1.vmdk', 'web01-disk2.vmdk']);

      // Import… next to New VM; a host path outside the allowed directories is refused in the source step
      await p.goto(`${d.url}/#/vms`);
      await p.click('.vm-list [data-action=import]');
      const dialog = p.getByRole('dialog', { name: 'Import from VMware' });
      const next = dialog.locator('button[type=submit]');
      await dialog.locator('input[name=sourceKind][value=path]').check();
      await dialog.locator('input[name=path]').fill('/etc/passwd');
      await next.click();
      await dialog.locator('.form-error', { hasText: 'outside the directories this host allows' }).waitFor({
        timeout: 15_000,
      });
      // the OVA uploaded from the browser, then the API's plan
      await dialog.locator('input[name=sourceKind][value=upload]').check();
      await dialog.locator('input[name=file]').setInputFiles(join(dir, 'web01.ova'));
      await next.click();
      await dialog.locator('.plan-hardware').waitFor({ timeout: 60_000 });
      expect(await dialog.getAttribute('data-step')).toBe('review');
      expect(await dialog.locator('input[name=name]').inputValue()).toBe('web01-prod');
      expect(await dialog.locator('.plan-os').textContent()).toBe('debian11_64Guest');
      expect(await dialog.locator('.plan-ignored').textContent()).toMatch(
        /USB xHCI controller.*CD\/DVD drive 1.*Video card.*VMCI device/,
      );
      expect(await dialog.locator('.plan-cpu').textContent()).toBe('2 vCPU (2 sockets)');
      expect(await dialog.locator('.plan-memory').textContent()).toBe('384 MiB');
      expect(await dialog.locator('.plan-firmware').textContent()).toBe('BIOS, machine q35');
      expect(await dialog.locator('.plan-disk').allTextContents()).toEqual([
        `Hard disk 1: scsi (virtualscsi) → virtio-blk, ${bytes(isoBytes)}`,
        'Hard disk 2: scsi (virtualscsi) → virtio-blk, 64.0 MiB',
      ]);
      expect(await dialog.locator('.plan-nic').allTextContents()).toEqual([
        'Network adapter 1: VmxNet3 on "VM Network" → virtio on default',
      ]);
      expect(await dialog.locator('.plan-verified').allTextContents()).toEqual(
        files.map((f) => `✓ ${f} (SHA256)`),
      );
      expect(await dialog.locator('select[data-ovf-network="VM Network"]').inputValue()).toBe('default');
      expect(await dialog.locator('.plan-notes').textContent()).toMatch(/virtio-blk and NICs virtio/);
      await dialog.screenshot({ path: join(SHOTS, 'import.png') });

      // each change is checked again: emulated devices, then a taken name (refused inline, no import)
      await dialog.locator('select[name=devices]').selectOption('emulated');
      await dialog.locator('.plan-nic', { hasText: '→ e1000e on default' }).waitFor({ timeout: 30_000 });
      expect(await dialog.locator('.plan-disk').first().textContent()).toMatch(/→ sata,/);
      await dialog.locator('select[name=devices]').selectOption('auto');
      await dialog.locator('.plan-nic', { hasText: '→ virtio on default' }).waitFor({ timeout: 30_000 });
      await dialog.locator('input[name=name]').fill('imp-taken');
      await dialog
        .locator('.form-error', { hasText: 'a VM named "imp-taken" already exists' })
        .waitFor({ timeout: 30_000 });
      expect(await dialog.locator('button[type=submit]').isDisabled()).toBe(true);
      await dialog.locator('input[name=name]').fill('web01 copy');
      await dialog.locator('.form-error', { hasText: /^Name: letters/ }).waitFor();
      await dialog.locator('input[name=name]').fill('web01-imported');
      await dialog.locator('.form-error').waitFor({ state: 'detached', timeout: 30_000 });
      await dialog.locator('button[type=submit]:not([disabled])', { hasText: 'Import' }).waitFor({
        timeout: 30_000,
      });

      // import with a start: progress, then the new VM's page
      await dialog.locator('input[name=start]').check();
      await dialog.locator('button[type=submit]').click();
      await p.locator('.vm-head h2', { hasText: 'web01-imported' }).waitFor({ timeout: 120_000 });
      await dialog.waitFor({ state: 'detached' });
      await p.locator('.vm-head .state-badge', { hasText: /^running$/ }).waitFor({ timeout: 60_000 });
      await p.locator('.toast', { hasText: 'VM web01-imported imported and started' }).waitFor();
      const row = p.locator('.tasks tr[data-task-type="vm.import"].task-ok');
      expect(await row.locator('[data-testid=task-result]').textContent()).toBe('VM web01-imported');

      const vm = await d.api.request<{
        id: string;
        state: string;
        vcpus: number;
        memoryMiB: number;
        disks: { id: string; bus?: string; volume: string }[];
        networks: { network: string; model?: string }[];
      }>('GET', '/api/v1/vms/web01-imported');
      expect(p.url()).toContain(`#/vms/${vm.id}`);
      expect(vm).toMatchObject({
        state: 'running',
        vcpus: 2,
        memoryMiB: 384,
        firmware: 'bios',
        cpu: { sockets: 2 },
        description: 'imported from OVA (debian11_64Guest)',
      });
      expect(vm.disks.map((x) => [x.id, x.bus ?? 'virtio-blk', x.volume])).toEqual([
        ['disk0', 'virtio-blk', `vm-${vm.id}-disk0.qcow2`],
        ['disk1', 'virtio-blk', `vm-${vm.id}-disk1.qcow2`],
      ]);
      expect(vm.networks.map((n) => [n.network, n.model ?? 'virtio'])).toEqual([['default', 'virtio']]);
      const tasks = await d.api.request<{ type: string; target: string }[]>('GET', '/api/v1/tasks?limit=50');
      const task = tasks.find((t) => t.type === 'vm.import' && t.target === 'web01-imported');
      expect(task).toMatchObject({
        status: 'ok',
        user: 'root',
        details: { kind: 'ova', bytesTotal: isoBytes + 64 * 1024 ** 2 },
        result: { vm: vm.id, name: 'web01-imported' },
      });
      // the upload went with its import
      expect(readdirSync(join(d.dataDir, 'import'))).toEqual([]);

      // the wizard is on the Storage page too; when the OVF's own name is taken, the review opens on
      // the refusal with the name to change, and the plan comes with another
      await createVm(d.api, kernelVm('web01-prod'));
      await p.click('.topbar a[href="#/storage"]');
      await p.click('.storage-page [data-action=import]');
      await dialog.locator('input[name=file]').setInputFiles(join(dir, 'web01.ova'));
      await next.click();
      await dialog
        .locator('.form-error', { hasText: 'a VM named "web01-prod" already exists' })
        .waitFor({ timeout: 60_000 });
      expect(await dialog.getAttribute('data-step')).toBe('review');
      expect(await dialog.locator('.plan-hardware').count()).toBe(0);
      expect(await dialog.locator('input[name=name]').inputValue()).toBe('web01-prod');
      await dialog.locator('input[name=name]').fill('web01-second');
      await dialog.locator('.plan-cpu', { hasText: '2 vCPU' }).waitFor({ timeout: 30_000 });
      await dialog.locator('.form-error').waitFor({ state: 'detached' });
      expect(readdirSync(join(d.dataDir, 'import'))).toHaveLength(1); // the upload, until the wizard ends
      await dialog.locator('button', { hasText: 'Cancel' }).click();
      await dialog.waitFor({ state: 'detached' });
      // cancelled: the upload goes with the wizard
      await waitFor(() => readdirSync(join(d.dataDir, 'import')).length === 0, {
        timeoutMs: 10_000,
        what: 'the cancelled upload to be deleted',
      });
      expect(errors).toEqual([]);
    } finally {
      await d.api.request('DELETE', '/api/v1/vms/web01-prod').catch(() => {});
      await d.api.request('DELETE', '/api/v1/vms/web01-imported?force=true').catch(() => {});
      await d.api.request('DELETE', `/api/v1/vms/${taken.id}?force=true`).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      await p.context().close();
    }
  });

  it('lists networks, adds an overlay network (host bits and a taken name refused inline), shows its NICs, adds one with a fixed address (outside the subnet refused inline), refuses to delete it while a VM has one, deletes it', async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const net = 'e2e-ovl';
    let vmId = '';
    try {
      await p.click('.topbar a[href="#/networks"]');
      const def = p.locator('.networks-page tr[data-network=default]');
      await def.waitFor({ timeout: 15_000 });
      expect(await def.locator('.net-type').textContent()).toBe('nat');
      expect(await def.locator('[data-action=delete-network]').count()).toBe(0);

      // Add network…: a subnet with host bits set is refused as typed, a taken name by the API (409)
      await p.click('.networks-page [data-action=add-network]');
      const dialog = p.getByRole('dialog', { name: 'Add a network' });
      const submit = dialog.locator('button[type=submit]');
      await dialog.locator('input[name=name]').fill('default');
      await dialog.locator('input[name=subnet]').fill('10.77.0.1/24');
      await dialog
        .locator('.field-error[data-field=subnet]', {
          hasText: 'Subnet: 10.77.0.1/24 has host bits set (10.77.0.0/24?)',
        })
        .waitFor({ timeout: 5_000 });
      expect(await submit.isDisabled()).toBe(true);
      await dialog.locator('input[name=subnet]').fill('10.77.0.0/24');
      await dialog.locator('.field-error').waitFor({ state: 'detached' });
      expect(await dialog.locator('input[name=gateway]').getAttribute('placeholder')).toBe('10.77.0.1');
      await dialog.locator('input[name=dns]').fill('10.77.0.53, 9.9.9.9');
      await dialog.locator('input[name=mtu]').fill('1400');
      await submit.click();
      await dialog
        .locator('.form-error', { hasText: 'a network named "default" exists' })
        .waitFor({ timeout: 15_000 });
      await dialog.locator('input[name=name]').fill(net);
      await submit.click();
      await dialog.waitFor({ state: 'detached', timeout: 60_000 });
      const row = p.locator(`.networks-page tr[data-network=${net}]`);
      await row.waitFor({ timeout: 15_000 });
      expect(await row.locator('.net-type').textContent()).toBe('overlay');
      expect(await row.locator('.net-subnet').textContent()).toBe('10.77.0.0/24');
      expect(await row.locator('.net-gateway').textContent()).toBe('10.77.0.1');
      expect(await row.locator('.net-dns').textContent()).toBe('10.77.0.53, 9.9.9.9');
      expect(await row.locator('.net-mtu').textContent()).toBe('1400');
      expect(await row.locator('.net-nics').textContent()).toBe('0');
      // the new network opens on its NICs: none yet
      const detail = p.locator(`.network-ports[data-network-ports=${net}]`);
      await detail.locator('p', { hasText: `No NICs on ${net} yet` }).waitFor({ timeout: 15_000 });

      // a VM with a NIC on it (stopped: OVN gives the address when it starts)
      const vm = await d.api.request<{ id: string; networks: { id: string; mac: string }[] }>(
        'POST',
        '/api/v1/vms',
        kernelVm('netvm', { networks: [{ network: net }] }),
      );
      vmId = vm.id;
      await row.locator('.net-nics', { hasText: /^1$/ }).waitFor({ timeout: 15_000 });
      const port = detail.locator('tr[data-port="netvm/net0"]');
      await port.waitFor({ timeout: 15_000 });
      expect(await port.locator('a.port-vm').getAttribute('href')).toBe(`#/vms/${vm.id}`);
      expect(await port.locator('.port-nic').textContent()).toBe('net0');
      expect(await port.locator('.port-mac').textContent()).toBe(vm.networks[0]!.mac);
      expect(await port.locator('.port-ip').textContent()).toBe('—');
      while ((await p.locator('.toast-x').count()) > 0) await p.locator('.toast-x').first().click();
      await p.screenshot({ path: join(SHOTS, 'networks.png') });

      // the pickers offer it: the new-VM wizard, and Add NIC… on the VM's page (its link from the NIC)
      await p.click('.topbar button.primary');
      const wizard = p.getByRole('dialog', { name: 'New virtual machine' });
      await wizard
        .locator(`select[name=network] option[value=${net}]`, { hasText: `${net} (overlay, 10.77.0.0/24)` })
        .waitFor({ state: 'attached', timeout: 10_000 });
      expect(await wizard.locator('select[name=network]').inputValue()).toBe('default');
      // a fixed address is asked on an overlay network only
      expect(await wizard.locator('input[name=ip]').count()).toBe(0);
      await wizard.locator('select[name=network]').selectOption(net);
      await wizard.locator('input[name=ip][placeholder="OVN picks one"]').waitFor({ timeout: 5_000 });
      await wizard.locator('button', { hasText: 'Cancel' }).click();
      await port.locator('a.port-vm').click();
      await p.locator('.vm-head h2', { hasText: 'netvm' }).waitFor({ timeout: 15_000 });
      expect(await p.locator('.card .nic a.nic-network').textContent()).toBe(net);
      await p.click('[data-action=add-nic]');
      const addNic = p.getByRole('dialog', { name: 'Add a NIC to netvm' });
      await addNic
        .locator('select[name=network] option[value=default]', { hasText: 'default (NAT)' })
        .waitFor({ state: 'attached', timeout: 10_000 });
      expect(await addNic.locator('select[name=network]').inputValue()).toBe(net);
      // on the overlay network a fixed address: outside its subnet refused as typed, then one of it (ip)
      const ip = addNic.locator('input[name=ip]');
      expect(await ip.getAttribute('placeholder')).toBe('OVN picks one');
      await ip.fill('10.78.0.9');
      await addNic
        .locator('.field-error[data-field=ip]', {
          hasText: `10.78.0.9 is not a host address of network "${net}" (10.77.0.0/24)`,
        })
        .waitFor({ timeout: 5_000 });
      expect(await addNic.locator('button[type=submit]').isDisabled()).toBe(true);
      await ip.fill('10.77.0.50');
      await addNic.locator('.field-error').waitFor({ state: 'detached' });
      await addNic.locator('button[type=submit]').click();
      await addNic.waitFor({ state: 'detached', timeout: 30_000 });
      const withIp = await d.api.request<{ networks: { id: string; network: string; ip?: string }[] }>(
        'GET',
        `/api/v1/vms/${vm.id}`,
      );
      expect(withIp.networks.find((n) => n.id === 'net1')).toMatchObject({ network: net, ip: '10.77.0.50' });
      await p
        .locator('.card .nic[data-nic=net1] .nic-ip', { hasText: '· 10.77.0.50 (fixed)' })
        .waitFor({ timeout: 15_000 });
      await p.click('.card .nic[data-nic=net0] a.nic-network');
      await detail.locator('tr[data-port="netvm/net1"]').waitFor({ timeout: 15_000 });

      // Delete is refused while the VM has a NIC on it, with the VM named; then it goes
      await row.locator('[data-action=delete-network]').click();
      const confirm = p.getByRole('dialog', { name: `Delete network ${net}?` });
      await confirm.locator('button.danger').click();
      await confirm
        .locator('.form-error', { hasText: /has NICs of 1 VM\(s\): netvm/ })
        .waitFor({ timeout: 15_000 });
      await confirm.locator('button', { hasText: 'Cancel' }).click();
      await d.api.request('DELETE', `/api/v1/vms/${vm.id}`);
      vmId = '';
      await row.locator('.net-nics', { hasText: /^0$/ }).waitFor({ timeout: 15_000 });
      await row.locator('[data-action=delete-network]').click();
      await confirm.locator('button.danger').click();
      await row.waitFor({ state: 'detached', timeout: 15_000 });
      await confirm.waitFor({ state: 'detached' });
      expect(await d.api.request<{ name: string }[]>('GET', '/api/v1/networks')).toEqual([
        expect.objectContaining({ name: 'default', type: 'nat' }),
      ]);
      expect(errors).toEqual([]);
    } finally {
      if (vmId) await d.api.request('DELETE', `/api/v1/vms/${vmId}?force=true`).catch(() => {});
      await d.api.request('DELETE', `/api/v1/networks/${net}`).catch(() => {});
      await p.context().close();
    }
  });

  it('adds a router joining two overlay networks (a bad route refused inline, a network on another router refused by the API), edits it, deletes it; adds a security group with a tag and an ssh rule (a bad CIDR refused inline), edits its rules and tags, shows its members, deletes it (refused while another group names it)', async () => {
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const [netA, netB] = ['e2e-ra', 'e2e-rb'];
    const router = 'e2e-r1';
    const [sg, sg2] = ['e2e-sg', 'e2e-sg2'];
    let vmId = '';
    type RouterView = {
      name: string;
      networks: string[];
      routes: { destination: string; nexthop: string }[];
    };
    type GroupView = { name: string; tags: string[]; rules: Record<string, unknown>[] };
    const closeToasts = async () => {
      while ((await p.locator('.toast-x').count()) > 0) await p.locator('.toast-x').first().click();
    };
    try {
      await d.api.request('POST', '/api/v1/networks', {
        name: netA,
        type: 'overlay',
        subnet: '10.81.0.0/24',
      });
      await d.api.request('POST', '/api/v1/networks', {
        name: netB,
        type: 'overlay',
        subnet: '10.82.0.0/24',
      });

      // Routers, a tab of the Networks page
      await p.click('.topbar a[href="#/networks"]');
      await p.locator(`.networks-page tr[data-network=${netA}]`).waitFor({ timeout: 15_000 });
      await p.click('.network-tabs a[data-tab=routers]');
      await p.locator('.routers-page p.muted', { hasText: 'No routers yet.' }).waitFor({ timeout: 15_000 });

      // Add router…: both networks, a static route (host bits refused as typed)
      await p.click('.routers-page [data-action=add-router]');
      const dialog = p.getByRole('dialog', { name: 'Add a router' });
      const submit = dialog.locator('button[type=submit]');
      await dialog.locator('input[name=name]').fill(router);
      await dialog.locator(`input[name=network][value=${netA}]`).check();
      await dialog.locator(`input[name=network][value=${netB}]`).check();
      expect(await dialog.locator('select[name=uplink]').inputValue()).toBe('');
      await dialog.locator('[data-action=add-route]').click();
      await dialog.locator('[data-route="0"] input[name=destination]').fill('10.99.0.1/16');
      await dialog.locator('[data-route="0"] input[name=nexthop]').fill('10.81.0.254');
      await dialog
        .locator('.field-error[data-field=route]', {
          hasText: 'Destination: 10.99.0.1/16 has host bits set (10.99.0.0/16?)',
        })
        .waitFor({ timeout: 5_000 });
      expect(await submit.isDisabled()).toBe(true);
      await dialog.locator('[data-route="0"] input[name=destination]').fill('10.99.0.0/16');
      await dialog.locator('.field-error').waitFor({ state: 'detached' });
      await submit.click();
      await dialog.waitFor({ state: 'detached', timeout: 30_000 });
      const row = p.locator(`.routers-page tr[data-router=${router}]`);
      await row.waitFor({ timeout: 15_000 });
      expect(await row.locator('.router-networks').textContent()).toBe(`${netA}, ${netB}`);
      expect(await row.locator('.router-routes').textContent()).toBe('10.99.0.0/16 via 10.81.0.254');
      expect(await d.api.request<RouterView>('GET', `/api/v1/routers/${router}`)).toMatchObject({
        networks: [netA, netB],
        routes: [{ destination: '10.99.0.0/16', nexthop: '10.81.0.254' }],
      });
      // it opens on its detail: no uplink, so no floating IPs
      const detail = p.locator(`.router-detail[data-router-detail=${router}]`);
      await detail.locator('.floating-ips .hint', { hasText: 'give the router an uplink first' }).waitFor();
      await closeToasts();
      await p.screenshot({ path: join(SHOTS, 'routers.png') });

      // a second router on a network of the first: marked in the form, refused by the API (409)
      await p.click('.routers-page [data-action=add-router]');
      await dialog.locator('input[name=name]').fill('e2e-r2');
      await dialog
        .locator(`label:has(input[value=${netA}]) .muted`, { hasText: `on router ${router}` })
        .waitFor();
      await dialog.locator(`input[name=network][value=${netA}]`).check();
      await dialog.locator('.warning-text[data-field=taken]').waitFor();
      await submit.click();
      await dialog
        .locator('.form-error', { hasText: `network "${netA}" is connected to router "${router}" already` })
        .waitFor({ timeout: 15_000 });
      await dialog.locator('button', { hasText: 'Cancel' }).click();
      expect((await d.api.request<RouterView[]>('GET', '/api/v1/routers')).map((r) => r.name)).toEqual([
        router,
      ]);

      // Edit: off network B, the route removed
      await detail.locator(`input[name=network][value=${netB}]`).uncheck();
      await detail.locator('[data-action=remove-route]').click();
      await detail.locator('.router-edit button[type=submit]').click();
      await row
        .locator('.router-networks', { hasText: new RegExp(`^${netA}$`) })
        .waitFor({ timeout: 15_000 });
      expect(await d.api.request<RouterView>('GET', `/api/v1/routers/${router}`)).toMatchObject({
        networks: [netA],
        routes: [],
      });

      // network A cannot go while the router joins it (the API's reason in the dialog)
      await p.click('.network-tabs a[data-tab=networks]');
      await p.locator(`.networks-page tr[data-network=${netA}] [data-action=delete-network]`).click();
      const confirmNet = p.getByRole('dialog', { name: `Delete network ${netA}?` });
      await confirmNet.locator('button.danger').click();
      await confirmNet
        .locator('.form-error', { hasText: `network "${netA}" is connected to router(s) "${router}"` })
        .waitFor({ timeout: 15_000 });
      await confirmNet.locator('button', { hasText: 'Cancel' }).click();

      // Delete the router
      await p.click('.network-tabs a[data-tab=routers]');
      await row.locator('[data-action=delete-router]').click();
      const confirm = p.getByRole('dialog', { name: `Delete router ${router}?` });
      await confirm.locator('button.danger').click();
      await row.waitFor({ state: 'detached', timeout: 15_000 });
      expect(await d.api.request<RouterView[]>('GET', '/api/v1/routers')).toEqual([]);

      // Security groups: a VM tagged e2e-web with a NIC on network A will be a member
      const vm = await d.api.request<{ id: string }>(
        'POST',
        '/api/v1/vms',
        kernelVm('sgvm', { networks: [{ network: netA }], tags: ['e2e-web'] }),
      );
      vmId = vm.id;
      await p.click('.network-tabs a[data-tab=security-groups]');
      await p.click('.security-groups-page [data-action=add-group]');
      const add = p.getByRole('dialog', { name: 'Add a security group' });
      await add.locator('input[name=name]').fill(sg);
      await add.locator('input[name=description]').fill('web servers');
      await add.locator('input[name=tags]').fill('e2e-web');
      // the default rule (everything out) is there; a second: in tcp 22 from 10.0.0.0/8
      expect(await add.locator('tr[data-rule]').count()).toBe(1);
      await add.locator('[data-action=add-rule]').click();
      const rule = add.locator('tr[data-rule="1"]');
      expect(await rule.locator('select[name=direction]').inputValue()).toBe('in');
      expect(await rule.locator('select[name=protocol]').inputValue()).toBe('tcp');
      await rule.locator('input[name=ports]').fill('22');
      await rule.locator('select[name=remoteKind]').selectOption('cidr');
      await rule.locator('input[name=remote]').fill('10.0.0.1/8');
      await add
        .locator('.field-error[data-rule-error="1"]', {
          hasText: 'Rule 2: Remote: 10.0.0.1/8 has host bits set (10.0.0.0/8?)',
        })
        .waitFor({ timeout: 5_000 });
      expect(await add.locator('button[type=submit]').isDisabled()).toBe(true);
      await rule.locator('input[name=remote]').fill('10.0.0.0/8');
      await add.locator('.field-error').waitFor({ state: 'detached' });
      await add.locator('button[type=submit]').click();
      await add.waitFor({ state: 'detached', timeout: 30_000 });
      const gRow = p.locator(`.security-groups-page tr[data-group=${sg}]`);
      await gRow.waitFor({ timeout: 15_000 });
      expect(await gRow.locator('.group-rules').textContent()).toBe('2');
      expect(await gRow.locator('.group-tags').textContent()).toBe('e2e-web');
      await gRow.locator('.group-members', { hasText: /^1$/ }).waitFor({ timeout: 15_000 });
      expect(await d.api.request<GroupView>('GET', `/api/v1/security-groups/${sg}`)).toMatchObject({
        description: 'web servers',
        tags: ['e2e-web'],
        rules: [
          { direction: 'out', protocol: 'any' },
          { direction: 'in', protocol: 'tcp', ports: '22', remote: '10.0.0.0/8' },
        ],
        members: [{ vm: 'sgvm', nic: 'net0', network: netA }],
      });
      const gDetail = p.locator(`.group-detail[data-group-detail=${sg}]`);
      await gDetail.locator('tr[data-member="sgvm/net0"]').waitFor({ timeout: 15_000 });

      // the rules editor: a third rule (a bad port range refused as typed), saved
      await gDetail.locator('[data-action=add-rule]').click();
      const third = gDetail.locator('tr[data-rule="2"]');
      await third.locator('select[name=protocol]').selectOption('udp');
      await third.locator('input[name=ports]').fill('8080-8000');
      await gDetail
        .locator('.field-error[data-rule-error="2"]', {
          hasText: 'Rule 3: Ports: a port 1-65535 or a range such as 8000-8080',
        })
        .waitFor({ timeout: 5_000 });
      expect(await gDetail.getByTestId('save-rules').isDisabled()).toBe(true);
      await third.locator('input[name=ports]').fill('8000-8080');
      await third.locator('select[name=action]').selectOption('deny');
      await third.locator('input[name=log]').check();
      await gDetail.getByTestId('save-rules').click();
      await gRow.locator('.group-rules', { hasText: /^3$/ }).waitFor({ timeout: 15_000 });
      expect((await d.api.request<GroupView>('GET', `/api/v1/security-groups/${sg}`)).rules).toEqual([
        { direction: 'out', protocol: 'any' },
        { direction: 'in', protocol: 'tcp', ports: '22', remote: '10.0.0.0/8' },
        { direction: 'in', protocol: 'udp', ports: '8000-8080', action: 'deny', log: true },
      ]);
      // its tags: one more
      await gDetail.locator('.group-settings input[name=tags]').fill('e2e-web, e2e-db');
      await gDetail.getByTestId('save-group').click();
      await gRow.locator('.group-tags', { hasText: 'e2e-dbe2e-web' }).waitFor({ timeout: 15_000 });
      expect((await d.api.request<GroupView>('GET', `/api/v1/security-groups/${sg}`)).tags).toEqual([
        'e2e-db',
        'e2e-web',
      ]);
      await closeToasts();
      await p.screenshot({ path: join(SHOTS, 'security-groups.png') });

      // Delete: refused while another group's rules name it, then done
      await d.api.request('POST', '/api/v1/security-groups', {
        name: sg2,
        rules: [{ direction: 'in', protocol: 'tcp', ports: '5432', remoteGroup: sg }],
      });
      await gRow.locator('[data-action=delete-group]').click();
      const confirmSg = p.getByRole('dialog', { name: `Delete security group ${sg}?` });
      await confirmSg.locator('button.danger').click();
      await confirmSg
        .locator('.form-error', {
          hasText: `security group "${sg}" is the remote group of rules of "${sg2}"`,
        })
        .waitFor({ timeout: 15_000 });
      await confirmSg.locator('button', { hasText: 'Cancel' }).click();
      await d.api.request('DELETE', `/api/v1/security-groups/${sg2}`);
      await gRow.locator('[data-action=delete-group]').click();
      await confirmSg.locator('button.danger').click();
      await gRow.waitFor({ state: 'detached', timeout: 15_000 });
      expect(await d.api.request<GroupView[]>('GET', '/api/v1/security-groups')).toEqual([]);

      await d.api.request('DELETE', `/api/v1/vms/${vm.id}`);
      vmId = '';
      await d.api.request('DELETE', `/api/v1/networks/${netA}`);
      await d.api.request('DELETE', `/api/v1/networks/${netB}`);
      expect(await d.api.request<{ name: string }[]>('GET', '/api/v1/networks')).toEqual([
        expect.objectContaining({ name: 'default', type: 'nat' }),
      ]);
      expect(errors).toEqual([]);
    } finally {
      if (vmId) await d.api.request('DELETE', `/api/v1/vms/${vmId}?force=true`).catch(() => {});
      for (const r of ['e2e-r2', router])
        await d.api.request('DELETE', `/api/v1/routers/${r}`).catch(() => {});
      for (const g of [sg2, sg])
        await d.api.request('DELETE', `/api/v1/security-groups/${g}`).catch(() => {});
      for (const n of [netA, netB]) await d.api.request('DELETE', `/api/v1/networks/${n}`).catch(() => {});
      await p.context().close();
    }
  });

  it("draws the topology: a router joining two overlay networks (links labelled with its gateway addresses), a VM with its address and security group on one, the NAT network; each box leads to its page, the VM page shows its NIC's OVN address", async () => {
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const [netA, netB] = ['e2e-ta', 'e2e-tb'];
    const router = 'e2e-tr';
    const sg = 'e2e-tsg';
    let vmId = '';
    try {
      await d.api.request('POST', '/api/v1/networks', {
        name: netA,
        type: 'overlay',
        subnet: '10.91.0.0/24',
      });
      await d.api.request('POST', '/api/v1/networks', {
        name: netB,
        type: 'overlay',
        subnet: '10.92.0.0/24',
      });
      await d.api.request('POST', '/api/v1/routers', { name: router, networks: [netA, netB] });
      await d.api.request('POST', '/api/v1/security-groups', { name: sg, tags: ['e2e-topo'] });
      // stopped, with a fixed address: OVN has none for it until it starts
      const vm = await createVm(
        d.api,
        kernelVm('topovm', { networks: [{ network: netA, ip: '10.91.0.50' }], tags: ['e2e-topo'] }),
      );
      vmId = vm.id;

      await p.click('.topbar a[href="#/networks"]');
      await p.click('.network-tabs a[data-tab=topology]');
      await p.waitForURL(/#\/topology$/);
      const svg = p.locator('.topology-page svg.topology');
      await svg.locator(`[data-topo-router=${router}]`).waitFor({ timeout: 15_000 });
      expect(await svg.locator(`[data-topo-router=${router}] text`).first().textContent()).toBe(router);
      for (const n of [netA, netB, 'default'])
        await svg.locator(`[data-topo-network=${n}]`).waitFor({ timeout: 15_000 });
      expect(await svg.locator(`[data-topo-network=${netA}] .topo-detail`).textContent()).toBe(
        'overlay · 10.91.0.0/24',
      );
      expect(await svg.locator('[data-topo-network=default] .topo-detail').textContent()).toBe('NAT');
      // the router's links: its address on each network is the network's gateway
      expect(await svg.locator(`[data-link="${router}/${netA}"] .topo-link-label`).textContent()).toBe(
        '10.91.0.1',
      );
      expect(await svg.locator(`[data-link="${router}/${netB}"] .topo-link-label`).textContent()).toBe(
        '10.92.0.1',
      );
      // the VM under network A: its NIC's address and its security group
      const box = svg.locator(`[data-topo-vm="topovm/${netA}"]`);
      await box.locator('.topo-nic', { hasText: 'net0 10.91.0.50' }).waitFor({ timeout: 15_000 });
      await box.locator(`[data-topo-group=${sg}]`).waitFor({ timeout: 15_000 });
      expect(await svg.locator('[data-topo-vm^="topovm/"]').count()).toBe(1);
      expect(await box.getAttribute('href')).toBe(`#/vms/${vm.id}`);
      while ((await p.locator('.toast-x').count()) > 0) await p.locator('.toast-x').first().click();
      await p.screenshot({ path: join(SHOTS, 'topology.png') });

      // the VM's box opens its page, where the NIC on the overlay network has its fixed address (the VM
      // never ran: OVN has no port for it yet)
      await box.click();
      await p.locator('.vm-head h2', { hasText: 'topovm' }).waitFor({ timeout: 15_000 });
      await p
        .locator('.card .nic[data-nic=net0] .nic-address', { hasText: '10.91.0.50' })
        .waitFor({ timeout: 15_000 });
      expect(await p.locator('.card .nic[data-nic=net0] .nic-ip').textContent()).toBe(
        ' · 10.91.0.50 (fixed)',
      );

      // the network's bar opens its page; the router's box its own
      await p.goBack();
      await svg.locator(`[data-topo-network=${netA}]`).click();
      await p.waitForURL(new RegExp(`#/networks/${netA}$`));
      await p.locator(`.network-ports[data-network-ports=${netA}] tr[data-port="topovm/net0"]`).waitFor({
        timeout: 15_000,
      });
      await p.click('.network-tabs a[data-tab=topology]');
      await svg.locator(`[data-topo-router=${router}]`).click();
      await p.locator(`.router-detail[data-router-detail=${router}]`).waitFor({ timeout: 15_000 });

      await d.api.request('DELETE', `/api/v1/vms/${vm.id}`);
      vmId = '';
      await d.api.request('DELETE', `/api/v1/security-groups/${sg}`);
      await d.api.request('DELETE', `/api/v1/routers/${router}`);
      await d.api.request('DELETE', `/api/v1/networks/${netA}`);
      await d.api.request('DELETE', `/api/v1/networks/${netB}`);
      expect(await d.api.request<{ name: string }[]>('GET', '/api/v1/networks')).toEqual([
        expect.objectContaining({ name: 'default', type: 'nat' }),
      ]);
      expect(errors).toEqual([]);
    } finally {
      if (vmId) await d.api.request('DELETE', `/api/v1/vms/${vmId}?force=true`).catch(() => {});
      await d.api.request('DELETE', `/api/v1/security-groups/${sg}`).catch(() => {});
      await d.api.request('DELETE', `/api/v1/routers/${router}`).catch(() => {});
      for (const n of [netA, netB]) await d.api.request('DELETE', `/api/v1/networks/${n}`).catch(() => {});
      await p.context().close();
    }
  });

  it('backs a running VM up from its page into a new repository (a relative path refused inline), full then incremental, restores it as a new VM; deletes, collects garbage, verifies, shows an unreadable repository', async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const dir = mkdtempSync(join(tmpdir(), 'nf-e2e-backup-'));
    const repoPath = join(dir, 'nas1');
    interface BackupVm {
      id: string;
      name: string;
      state: string;
      disks: { volume: string }[];
      networks: { mac: string }[];
    }
    interface BackupView {
      id: string;
      consistency: string;
      notes?: string;
      disks: { id: string; mode: string; base?: string; fullReason?: string; chunksRead: number }[];
    }
    const vm = await createVm(d.api, kernelVm('bkui'));
    let restoredId = '';
    try {
      // Backups in the main navigation: Add repository…, a relative path refused by the API inline
      await p.click('.topbar a[href="#/backups"]');
      await p.locator('.backups-page .repositories-card').waitFor({ timeout: 15_000 });
      await p.click('[data-action=add-repository]');
      const add = p.getByRole('dialog', { name: 'Add a backup repository' });
      await add.locator('input[name=name]').fill('nas1');
      await add.locator('input[name=path]').fill('backups/nas1');
      await add.locator('button[type=submit]').click();
      await add
        .locator('.form-error', { hasText: 'the repository path must be an absolute, normalised directory' })
        .waitFor({ timeout: 15_000 });
      // an absolute path: made, listed with its host, no backups yet
      await add.locator('input[name=path]').fill(repoPath);
      await add.locator('button[type=submit]').click();
      await add.waitFor({ state: 'detached', timeout: 15_000 });
      const repoRow = p.locator('tr[data-repository=nas1]');
      await repoRow.locator('.repo-backups', { hasText: /^0$/ }).waitFor({ timeout: 15_000 });
      expect(await repoRow.locator('td.mono').textContent()).toBe(repoPath);
      const host = (await d.api.request<{ name: string }[]>('GET', '/api/v1/nodes'))[0]!.name;
      expect(await repoRow.locator('td').nth(2).textContent()).toBe(host);
      expect(readdirSync(repoPath).sort()).toEqual(['backups', 'chunks', 'repo.json']);

      // the VM runs; Back up now on its Backups tab, into the one repository, with notes
      await startAndBoot(d.api, vm.id, () => vmAction(d.api, vm.id, 'start'), new RegExp(BOOTED), 150_000);
      // 4 MiB of data on the blank disk, so the first backup reads something
      await guestRun(
        d.api,
        d.dataDir,
        vm.id,
        'dd if=/dev/urandom of=/dev/vda bs=1M count=4 seek=16 oflag=direct conv=fsync 2>/dev/null',
      );
      await p.goto(`${d.url}/#/vms/${vm.id}/backups`);
      const tab = p.locator('.vm-backups');
      await tab
        .locator('.backups td', { hasText: 'No backups of this VM yet.' })
        .waitFor({ timeout: 15_000 });
      // the repositories come in their own request: the "no backups" line may come first
      await expect
        .poll(() => tab.locator('select[name=repository]').inputValue(), { timeout: 15_000 })
        .toBe('nas1');
      await tab.locator('input[name=notes]').fill('before the upgrade');
      await tab.locator('[data-action=backup-now]').click();
      const rows = tab.locator('tr[data-backup]');
      await rows.first().waitFor({ timeout: 120_000 });
      await p.locator('.toast', { hasText: 'Backup of bkui done: full, read' }).waitFor({ timeout: 15_000 });
      const b1 = (await d.api.request<BackupView[]>('GET', `/api/v1/backups?vm=${vm.id}`))[0]!;
      expect(b1).toMatchObject({ notes: 'before the upgrade', disks: [{ id: 'disk0', mode: 'full' }] });
      expect(await rows.count()).toBe(1);
      expect(await rows.first().getAttribute('data-mode')).toBe('full');
      expect(await rows.first().locator('.backup-disk').textContent()).toBe('disk0: full');
      expect(await rows.first().locator('.backup-notes').textContent()).toBe('before the upgrade');
      const label = {
        filesystem: 'file-system consistent',
        crash: 'crash consistent',
        stopped: 'VM powered off',
      };
      expect(await rows.first().locator('.consistency').textContent()).toBe(
        label[b1.consistency as keyof typeof label],
      );
      // the task in Recent tasks, with what it did
      const done = p.locator('.tasks tr[data-task-type="vm.backup"].task-ok');
      expect(await done.first().locator('[data-testid=task-result]').textContent()).toMatch(
        /^full, read [\d.]+ [KMG]?i?B, stored [\d.]+ [KMG]?i?B in [\d.]+ s$/,
      );

      // 4 MiB written in the guest, backed up again: incremental, one 4 MiB chunk read
      await guestRun(
        d.api,
        d.dataDir,
        vm.id,
        'dd if=/dev/urandom of=/dev/vda bs=1M count=4 seek=64 oflag=direct conv=fsync 2>/dev/null',
      );
      await tab.locator('[data-action=backup-now]:not([disabled])').click();
      await tab.locator('tr[data-backup][data-mode=incremental]').waitFor({ timeout: 120_000 });
      expect(await rows.count()).toBe(2);
      const b2 = (await d.api.request<BackupView[]>('GET', `/api/v1/backups?vm=${vm.id}`))[0]!;
      expect(b2.disks[0]).toMatchObject({ mode: 'incremental', base: b1.id, chunksRead: 1 });
      const inc = tab.locator(`tr[data-backup="${b2.id}"]`);
      expect(await inc.locator('.backup-disk').textContent()).toBe('disk0: incremental');
      expect(await inc.locator('.backup-disk').getAttribute('title')).toMatch(
        new RegExp(`^changes since backup ${b1.id}\n1 chunk read, 1 new`),
      );
      expect(await inc.locator('.backup-data').textContent()).toMatch(/^4\.0 MiB \/ /);
      // newest first
      expect(await rows.evaluateAll((r) => r.map((x) => x.getAttribute('data-backup')))).toEqual([
        b2.id,
        b1.id,
      ]);
      await p.locator('.toast').first().waitFor({ state: 'detached', timeout: 15_000 });
      await p.screenshot({ path: join(SHOTS, 'vm-backups.png') });

      // the Backups page: the repository's count and space, both backups with the VM and their modes
      await p.click('.topbar a[href="#/backups"]');
      await repoRow.locator('.repo-backups', { hasText: /^2$/ }).waitFor({ timeout: 15_000 });
      expect(await repoRow.locator('.repo-usage').textContent()).toMatch(/^[\d.]+ [KMG]?i?B$/);
      const list = p.locator('.backups-card tr[data-backup]');
      await list.nth(1).waitFor({ timeout: 15_000 });
      expect(await list.evaluateAll((r) => r.map((x) => x.getAttribute('data-mode')))).toEqual([
        'incremental',
        'full',
      ]);
      expect(await list.first().locator('td').first().textContent()).toBe('bkui');

      // Restore… the newest: a taken name refused inline, then a new VM that opens when it is made
      await p.click(`.backups-card tr[data-backup="${b2.id}"] [data-action=restore-backup]`);
      const restore = p.locator('.restore-dialog');
      expect(await restore.locator('input[name=name]').inputValue()).toBe('bkui-restored');
      await restore.locator('select[name=pool] option[value=local]').waitFor({ state: 'attached' });
      await restore.locator('input[name=name]').fill('bkui');
      await restore.locator('button[type=submit]').click();
      await restore.locator('.form-error', { hasText: 'a VM named "bkui" already exists' }).waitFor({
        timeout: 15_000,
      });
      await restore.locator('input[name=name]').fill('bkui-restored');
      await restore.locator('select[name=pool]').selectOption('local');
      await restore.locator('button[type=submit]').click();
      await p.locator('.vm-head h2', { hasText: 'bkui-restored' }).waitFor({ timeout: 120_000 });
      await restore.waitFor({ state: 'detached' });
      await p.locator('.toast', { hasText: 'Backup of bkui restored as VM bkui-restored' }).waitFor();
      await p.locator('.tree a', { hasText: 'bkui-restored' }).waitFor({ timeout: 15_000 });
      const restored = await d.api.request<BackupVm>('GET', '/api/v1/vms/bkui-restored');
      restoredId = restored.id;
      expect(p.url()).toContain(`#/vms/${restored.id}`);
      expect(restored.id).not.toBe(vm.id);
      expect(restored.state).toBe('stopped');
      expect(restored.disks.map((x) => x.volume)).toEqual([`vm-${restored.id}-disk0.qcow2`]);
      const src = await d.api.request<BackupVm>('GET', `/api/v1/vms/${vm.id}`);
      expect(restored.networks[0]!.mac).not.toBe(src.networks[0]!.mac);
      const rt = p.locator('.tasks tr[data-task-type="backup.restore"].task-ok').first();
      expect(await rt.locator('[data-testid=task-result]').textContent()).toBe('VM bkui-restored');

      // Delete the newer backup (confirmed): the older one stays, and so does the chunk they share
      await p.click('.topbar a[href="#/backups"]');
      await p.click(`.backups-card tr[data-backup="${b2.id}"] [data-action=delete-backup]`);
      const del = p.getByRole('dialog', { name: /^Delete the backup of bkui from / });
      await del.locator('button.danger').click();
      await p
        .locator(`.backups-card tr[data-backup="${b2.id}"]`)
        .waitFor({ state: 'detached', timeout: 15_000 });
      expect(
        (await d.api.request<BackupView[]>('GET', `/api/v1/backups?vm=${vm.id}`)).map((b) => b.id),
      ).toEqual([b1.id]);
      // Collect garbage: the chunk only the deleted backup used goes (4 MiB of random data); what it did
      // under the repository's row
      const repoChecks = p.locator('tr[data-checks-for=nas1]');
      await repoRow.locator('[data-action=gc-repository]').click();
      await repoChecks
        .locator('[data-testid=repo-check][data-task-type="backup.gc"][data-status=ok]')
        .waitFor({ timeout: 60_000 });
      expect(
        await repoChecks.locator('[data-testid=repo-check][data-task-type="backup.gc"]').textContent(),
      ).toBe('garbage collection: removed 1 chunk, freed 4.0 MiB (kept 1)');
      await repoRow.locator('.repo-backups', { hasText: /^1$/ }).waitFor({ timeout: 15_000 });
      // Verify the repository: intact
      await repoRow.locator('[data-action=verify-repository]:not([disabled])').click();
      await repoChecks
        .locator('[data-testid=repo-check][data-task-type="backup.verify"][data-status=ok]')
        .waitFor({ timeout: 60_000 });
      expect(
        await repoChecks.locator('[data-testid=repo-check][data-task-type="backup.verify"]').textContent(),
      ).toBe('verify: 1 backup, 1 chunk: all intact');
      // backed up again: full, since the change bitmap followed the deleted backup; the reason is shown
      // under the disk's mode (and as its tooltip)
      await p.goto(`${d.url}/#/vms/${vm.id}/backups`);
      await tab.locator(`tr[data-backup="${b1.id}"]`).waitFor({ timeout: 15_000 });
      await tab.locator('[data-action=backup-now]:not([disabled])').click();
      await rows.nth(1).waitFor({ timeout: 120_000 });
      const b3 = (await d.api.request<BackupView[]>('GET', `/api/v1/backups?vm=${vm.id}`))[0]!;
      expect(b3.disks[0]).toMatchObject({ mode: 'full', fullReason: expect.stringContaining(b1.id) });
      const again = tab.locator(`tr[data-backup="${b3.id}"]`);
      expect(await again.locator('.full-reason').textContent()).toBe(b3.disks[0]!.fullReason);
      const tip = await again.locator('.backup-disk').getAttribute('title');
      expect(tip?.startsWith(`${b3.disks[0]!.fullReason}\n`)).toBe(true);
      await p.click('.topbar a[href="#/backups"]');

      // a chunk damaged on disk: Verify on the backup's row says which backup it breaks (the newest
      // backup names it too: verified alone, the older one is the one broken)
      // the one chunk of data the older backup names (its index: a chunk id, or null for zeros)
      const index = JSON.parse(
        readFileSync(join(repoPath, 'backups', vm.id, b1.id, 'disk0.index.json'), 'utf8'),
      ) as { chunks: (string | null)[] };
      const [id] = index.chunks.filter((c): c is string => c !== null);
      const chunk = join(repoPath, 'chunks', id!.slice(0, 2), id!);
      writeFileSync(chunk, 'not the data');
      await p.click(`.backups-card tr[data-backup="${b1.id}"] [data-action=verify-backup]`);
      const check = p.locator(
        `.backups-card tr[data-check-for="${b1.id}"] [data-testid=backup-check][data-status=ok]`,
      );
      await check.waitFor({ timeout: 60_000 });
      expect(await check.textContent()).toBe(
        `verify: 1 backup, 1 chunk: 1 damaged chunk; broken: bkui (${b1.id})`,
      );
      expect(await check.getAttribute('role')).toBe('alert');

      // the directory gone (an NFS mount lost): the row says why it cannot be read, and offers no upkeep
      renameSync(repoPath, `${repoPath}-away`);
      await p.reload();
      await repoRow.locator('.repo-problem', { hasText: `Unreadable: ` }).waitFor({ timeout: 15_000 });
      expect(await repoRow.locator('.repo-problem').textContent()).toContain(repoPath);
      expect(await repoRow.locator('[data-action=verify-repository]').count()).toBe(0);
      renameSync(`${repoPath}-away`, repoPath);
      await p.reload();
      await repoRow.locator('.repo-backups', { hasText: /^2$/ }).waitFor({ timeout: 15_000 });

      // Remove the repository: the confirmation says its data stays, and it does
      await repoRow.locator('[data-action=remove-repository]').click();
      const rm = p.getByRole('dialog', { name: 'Remove repository nas1?' });
      expect(await rm.locator('.modal-body').textContent()).toMatch(/backups in it stay on disk/);
      await rm.locator('button.danger').click();
      await repoRow.waitFor({ state: 'detached', timeout: 15_000 });
      await p.locator('.backups-card td', { hasText: 'No backups yet' }).waitFor({ timeout: 15_000 });
      expect(readdirSync(join(repoPath, 'backups', vm.id)).sort()).toEqual([b1.id, b3.id]);
      expect(errors).toEqual([]);
    } finally {
      if (restoredId) await d.api.request('DELETE', `/api/v1/vms/${restoredId}`).catch(() => {});
      await d.api.request('DELETE', `/api/v1/vms/${vm.id}?force=true`).catch(() => {});
      await d.api.request('DELETE', '/api/v1/backup/repositories/nas1').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      await p.context().close();
    }
  }, 420_000);

  it('boot-verifies a backup of a running VM from the Backups page (its VM gone after); restores it in place, refused inline while the VM runs, done once it is stopped (its snapshot dropped); restores it as a new VM that starts', async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const dir = mkdtempSync(join(tmpdir(), 'nf-e2e-bootverify-'));
    interface VmView {
      id: string;
      name: string;
      state: string;
      disks: { volume: string }[];
      snapshots: { name: string }[];
    }
    interface BackupView {
      id: string;
      bootVerify?: { passed: boolean; at: string; agentAfterMs?: number; totalMs?: number };
    }
    const vmNames = async () =>
      (await d.api.request<VmView[]>('GET', '/api/v1/vms')).map((v) => v.name).sort();
    const vm = await createVm(d.api, kernelVm('bkv'));
    let restoredId = '';
    try {
      // the same set-up as the backup test, through the API: a repository, the VM running, one backup
      await d.api.request('POST', '/api/v1/backup/repositories', { name: 'nas2', path: join(dir, 'nas2') });
      await startAndBoot(d.api, vm.id, () => vmAction(d.api, vm.id, 'start'), new RegExp(BOOTED), 150_000);
      const t0 = await d.api.request<{ id: string }>('POST', `/api/v1/vms/${vm.id}/backup`, {
        repository: 'nas2',
      });
      expect((await waitTask(d.api, t0.id, 120_000)).status).toBe('ok');
      const [b] = await d.api.request<BackupView[]>('GET', `/api/v1/backups?vm=${vm.id}`);
      const before = await vmNames();

      // Boot-verify… on the Backups page: a wait out of the API's bounds held back; then its phase in
      // the row while it runs (its VM in the tree meanwhile), then the outcome
      await p.click('.topbar a[href="#/backups"]');
      const row = p.locator(`.backups-card tr[data-backup="${b!.id}"]`);
      await row.waitFor({ timeout: 15_000 });
      const cell = row.locator('[data-testid=boot-verify]');
      expect(await cell.getAttribute('data-status')).toBe('never');
      expect(await cell.textContent()).toBe('not verified');
      await row.locator('[data-action=boot-verify-backup]').click();
      const bv = p.getByRole('dialog', { name: /^Boot-verify the backup of bkv from / });
      await bv.locator('input[name=timeoutSec]').fill('5');
      await bv.locator('.field-error', { hasText: 'from 10 to 3600' }).waitFor();
      expect(await bv.locator('[data-testid=boot-verify-submit]').isDisabled()).toBe(true);
      await bv.locator('input[name=timeoutSec]').fill('240');
      await bv.locator('[data-testid=boot-verify-submit]').click();
      await bv.waitFor({ state: 'detached', timeout: 15_000 });
      // booting, or an early failure (said at once, with the task's error, instead of a timeout)
      await row
        .locator(
          '[data-testid=boot-verify][data-phase=booting], [data-testid=boot-verify][data-status=failed]',
        )
        .waitFor({ timeout: 120_000 });
      if ((await cell.getAttribute('data-status')) === 'failed') {
        const tasks = await d.api.request<{ type: string; error?: { message: string } }[]>(
          'GET',
          '/api/v1/tasks',
        );
        throw new Error(
          `the boot verification failed early: ${tasks.find((x) => x.type === 'backup.boot-verify')?.error?.message}`,
        );
      }
      expect(await row.locator('[data-action=boot-verify-backup]').isDisabled()).toBe(true);
      expect(await cell.textContent()).toMatch(
        /^booting verify-bkv-[0-9a-f]{4}: waiting for its guest agent/,
      );
      await p.locator('.tree a', { hasText: /verify-bkv-[0-9a-f]{4}$/ }).waitFor({ timeout: 15_000 });
      await row.locator('[data-testid=boot-verify][data-status=passed]').waitFor({ timeout: 300_000 });
      expect(await row.locator('.boot-verify-line').textContent()).toMatch(/^✓ agent after [\d.]+ s$/);
      expect(await cell.getAttribute('title')).toMatch(/^Boot-verified .*its guest agent answered/);
      const verified = await d.api.request<BackupView>('GET', `/api/v1/backups/${b!.id}`);
      expect(verified.bootVerify).toMatchObject({ passed: true, agentAfterMs: expect.any(Number) });
      const bt = p.locator('.tasks tr[data-task-type="backup.boot-verify"].task-ok').first();
      expect(await bt.locator('[data-testid=task-result]').textContent()).toMatch(/^✓ agent after [\d.]+ s$/);
      // its VM deleted: gone from the tree and from the API
      await p
        .locator('.tree a', { hasText: /verify-bkv-/ })
        .first()
        .waitFor({ state: 'detached', timeout: 30_000 });
      expect(await vmNames()).toEqual(before);
      await p.screenshot({ path: join(SHOTS, 'backups.png') });

      // Restore… over the VM while it runs: its state said, and the API's refusal inline
      await row.locator('[data-action=restore-backup]').click();
      const restore = p.locator('.restore-dialog');
      await restore.locator('input[name=target][value=in-place]').check();
      const state = restore.locator('.in-place-state');
      expect(await state.getAttribute('data-state')).toBe('running');
      expect(await state.textContent()).toBe(
        'VM bkv is running now: stop it first (a restore in place is refused while it runs).',
      );
      expect(await restore.locator('.in-place-snapshots').textContent()).toBe('It has no snapshots.');
      const submit = restore.locator('[data-testid=restore-submit]');
      expect(await submit.isDisabled()).toBe(true); // not confirmed yet
      await restore.locator('input[name=confirm-in-place]').check();
      expect(await submit.textContent()).toBe('Restore over bkv');
      await submit.click();
      await restore
        .locator('.form-error', { hasText: 'VM "bkv" must be stopped to be restored in place' })
        .waitFor({ timeout: 15_000 });
      expect(await restore.getAttribute('data-status')).toBeNull(); // no task began
      // stopped, with a snapshot: the dialog follows (the snapshot it drops named); restored in place,
      // the VM's page opens again
      await vmAction(d.api, vm.id, 'stop', '?force=true');
      await d.api.request('POST', `/api/v1/vms/${vm.id}/snapshots`, { name: 'before-restore' });
      await restore.locator('.in-place-state[data-state=stopped]').waitFor({ timeout: 15_000 });
      expect(await state.textContent()).toBe('VM bkv is stopped.');
      await restore
        .locator('.in-place-snapshots', { hasText: 'Its snapshots are dropped: before-restore.' })
        .waitFor({ timeout: 15_000 });
      const oldVolume = (await d.api.request<VmView>('GET', `/api/v1/vms/${vm.id}`)).disks[0]!.volume;
      await submit.click();
      await restore.waitFor({ state: 'detached', timeout: 120_000 });
      await p.locator('.vm-head h2', { hasText: /^bkv$/ }).waitFor({ timeout: 15_000 });
      expect(p.url()).toMatch(new RegExp(`#/vms/${vm.id}$`));
      await p
        .locator('.toast', {
          hasText: 'Backup of bkv restored in place over VM bkv; snapshots dropped: before-restore',
        })
        .waitFor();
      const rt = p.locator('.tasks tr[data-task-type="backup.restore"].task-ok').first();
      expect(await rt.locator('[data-testid=task-result]').textContent()).toBe(
        'VM bkv restored in place (disk0); snapshots dropped: before-restore',
      );
      const after = await d.api.request<VmView>('GET', `/api/v1/vms/${vm.id}`);
      expect(after.snapshots).toEqual([]);
      expect(after.disks[0]!.volume).not.toBe(oldVolume);
      expect(after.state).toBe('stopped');
      await p.click('.tabs a:has-text("Snapshots")');
      await p.locator('.snapshots td', { hasText: 'No snapshots.' }).waitFor({ timeout: 15_000 });

      // Restore… as a new VM from the VM's Backups tab, started once restored: its page opens, running
      await p.goto(`${d.url}/#/vms/${vm.id}/backups`);
      const tabRow = p.locator(`.vm-backups tr[data-backup="${b!.id}"]`);
      await tabRow.locator('[data-testid=boot-verify][data-status=passed]').waitFor({ timeout: 15_000 });
      await tabRow.locator('[data-action=restore-backup]').click();
      expect(await restore.locator('input[name=target][value=new]').isChecked()).toBe(true);
      expect(await restore.locator('input[name=name]').inputValue()).toBe('bkv-restored');
      await restore.locator('input[name=start]').check();
      expect(await restore.locator('.restore-target-body .hint').textContent()).toContain(
        'started once restored',
      );
      await submit.click();
      await p.locator('.vm-head h2', { hasText: 'bkv-restored' }).waitFor({ timeout: 120_000 });
      await p.locator('.toast', { hasText: 'Backup of bkv restored as VM bkv-restored, started' }).waitFor();
      await p.locator('.vm-head .state-badge', { hasText: /^running$/ }).waitFor({ timeout: 60_000 });
      const made = await d.api.request<VmView>('GET', '/api/v1/vms/bkv-restored');
      restoredId = made.id;
      expect(made.state).toBe('running');
      expect(p.url()).toContain(`#/vms/${made.id}`);
      const nt = p.locator('.tasks tr[data-task-type="backup.restore"].task-ok').first();
      expect(await nt.locator('[data-testid=task-result]').textContent()).toBe('VM bkv-restored, started');
      expect(errors).toEqual([]);
    } finally {
      if (restoredId) await d.api.request('DELETE', `/api/v1/vms/${restoredId}?force=true`).catch(() => {});
      await d.api.request('DELETE', `/api/v1/vms/${vm.id}?force=true`).catch(() => {});
      await d.api.request('DELETE', '/api/v1/backup/repositories/nas2').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      await p.context().close();
    }
  }, 600_000);

  it("browses a backup's files from the Backups page (file restore): the data disk's ext4, its directories by name, .. and the breadcrumb, a symlink with its target, a file downloaded", async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const dir = mkdtempSync(join(tmpdir(), 'nf-e2e-files-'));
    // the test guest's data disk (ext4, label nfdata) with a few files written into it by debugfs, so no
    // boot is needed to have a directory, a file and a symbolic link in the backup
    const img = join(dir, 'data.img');
    copyFileSync(testGuest().dataDisk, img);
    writeFileSync(join(dir, 'hostname'), 'backed-up\n');
    writeFileSync(join(dir, 'report.bin'), Buffer.alloc(20_000, 7));
    const cmds = [
      'mkdir etc',
      `write ${join(dir, 'hostname')} etc/hostname`,
      `write ${join(dir, 'report.bin')} report.bin`,
      'symlink link etc/hostname',
    ];
    execFileSync('debugfs', ['-w', '-f', '-', img], {
      input: cmds.join('\n'),
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    });
    const image = await d.api.request<{ id: string }>('POST', '/api/v1/images/import', {
      name: 'files-data',
      path: img,
    });
    const vm = await createVm(
      d.api,
      kernelVm('bkfiles', { disks: [{ sizeGiB: 1 }, { image: 'files-data' }] }),
    );
    try {
      // backed up stopped (no boot: quicker), into a repository of its own, through the API
      await d.api.request('POST', '/api/v1/backup/repositories', {
        name: 'files1',
        path: join(dir, 'files1'),
      });
      const t = await d.api.request<{ id: string }>('POST', `/api/v1/vms/${vm.id}/backup`, {
        repository: 'files1',
      });
      expect((await waitTask(d.api, t.id, 120_000)).status).toBe('ok');
      const [b] = await d.api.request<{ id: string; consistency: string }[]>(
        'GET',
        `/api/v1/backups?vm=${vm.id}`,
      );
      expect(b!.consistency).toBe('stopped');

      // Files… on its row of the Backups page: the file systems (disk0 is blank: none there)
      await p.goto(`${d.url}/#/backups`);
      await p.click(`.backups-card tr[data-backup="${b!.id}"] [data-action=backup-files]`);
      const dialog = p.getByRole('dialog', { name: /^Files of the backup of bkfiles from / });
      const fsRow = dialog.locator('tr[data-fs=disk1]');
      await fsRow.waitFor({ timeout: 30_000 });
      expect(await dialog.locator('tr[data-fs]').count()).toBe(1);
      expect(await fsRow.getAttribute('data-readable')).toBe('true');
      expect(await fsRow.locator('.fs-type').textContent()).toBe('ext4');
      expect(await fsRow.locator('.fs-label').textContent()).toBe('nfdata');
      expect(await fsRow.locator('.fs-state').textContent()).toBe('readable');

      // its root: directories first, each entry's mode as ls -l writes it, the symlink with its target
      await fsRow.locator('[data-action=open-fs]').click();
      const entries = dialog.locator('table.files:not(.stale) tr[data-entry]');
      await dialog
        .locator('table.files:not(.stale) tr[data-entry="lost+found"]')
        .waitFor({ timeout: 30_000 });
      expect(await entries.evaluateAll((r) => r.map((x) => x.getAttribute('data-entry')))).toEqual([
        'etc',
        'lost+found',
        'link',
        'report.bin',
      ]);
      const entry = (name: string) => dialog.locator(`table.files:not(.stale) tr[data-entry="${name}"]`);
      expect(await entry('lost+found').locator('.file-mode').textContent()).toBe('drwx------');
      expect(await entry('etc').locator('.file-mode').textContent()).toBe('drwxr-xr-x');
      expect(await entry('report.bin').locator('.file-mode').textContent()).toBe('-rw-r--r--');
      expect(await entry('report.bin').locator('td.num').textContent()).toBe('19.5 KiB');
      expect(await entry('link').locator('.entry-name').textContent()).toBe('link → etc/hostname');
      expect(await entry('link').locator('button, a').count()).toBe(0);
      expect(await dialog.locator('tr[data-entry=".."]').count()).toBe(0);
      expect(
        await dialog
          .locator('[data-testid=breadcrumb] .crumb')
          .evaluateAll((c) => c.map((x) => x.textContent)),
      ).toEqual(['/']);

      // into lost+found (empty), back up through the breadcrumb
      await entry('lost+found').locator('button.entry-name').click();
      await dialog.locator('table.files:not(.stale) td', { hasText: 'Empty directory.' }).waitFor();
      expect(await dialog.getAttribute('data-path')).toBe('/lost+found');
      expect(
        await dialog
          .locator('[data-testid=breadcrumb] .crumb')
          .evaluateAll((c) => c.map((x) => x.textContent)),
      ).toEqual(['/', 'lost+found']);
      await dialog.locator('[data-testid=breadcrumb] button.crumb[data-path="/"]').click();
      await entry('etc').waitFor();
      expect(await dialog.getAttribute('data-path')).toBe('/');

      // into etc, up again by ..
      await entry('etc').click();
      await entry('hostname').waitFor();
      await dialog.locator('tr[data-entry=".."]').click();
      await entry('report.bin').waitFor();
      expect(await dialog.getAttribute('data-path')).toBe('/');
      await dialog.locator('.files-loading').waitFor({ state: 'detached' });
      await p.mouse.move(0, 0);
      await dialog.screenshot({ path: join(SHOTS, 'backup-files.png') });

      // a file's Download link: the API's download of it (the session cookie is enough), its bytes
      await entry('etc').click();
      const link = entry('hostname').locator('a[data-action=download-file]');
      expect(await link.getAttribute('href')).toBe(
        `/api/v1/backups/${b!.id}/files/disk1/download?path=%2Fetc%2Fhostname&repository=files1`,
      );
      const [download] = await Promise.all([p.waitForEvent('download'), link.click()]);
      expect(download.suggestedFilename()).toBe('hostname');
      expect(readFileSync((await download.path())!, 'utf8')).toBe('backed-up\n');

      // back to the file systems, and closed
      await dialog.locator('[data-action=files-back]').click();
      await fsRow.waitFor();
      await dialog.locator('[data-action=close-files]').click();
      await dialog.waitFor({ state: 'detached' });
      expect(errors).toEqual([]);
    } finally {
      await d.api.request('DELETE', `/api/v1/vms/${vm.id}?force=true`).catch(() => {});
      await d.api.request('DELETE', `/api/v1/images/${image.id}`).catch(() => {});
      await d.api.request('DELETE', '/api/v1/backup/repositories/files1').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      await p.context().close();
    }
  }, 180_000);

  it('adds a shared repository (badge, shared in the API) and an encrypted repository (badge, keep-the-key warning, a wrong key refused inline); schedules a backup job for one VM (a bad schedule refused inline), runs it now: backed up and pruned to keep-last 1; edits, disables and deletes it; tags a VM from its page (chips there and in the VM list) and runs a job for the VMs with that tag', async () => {
    // A page of its own, signed in here: the test also runs alone (-t).
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const { page: p, pageErrors: errors } = await signIn(browser, d.url, password);
    const dir = mkdtempSync(join(tmpdir(), 'nf-e2e-jobs-'));
    interface JobView {
      name: string;
      schedule: string;
      repository: string;
      selection: { all?: boolean; vms?: string[]; tags?: string[] };
      retention?: Record<string, number>;
      enabled: boolean;
      nextRunAt?: string;
      lastStatus?: string;
    }
    // two stopped VMs (a stopped VM's disks are read through qemu-nbd: quick); the job takes one
    const vm = await createVm(d.api, kernelVm('bkjob'));
    const other = await createVm(d.api, kernelVm('bkjob-other'));
    const backupsOf = (id: string) =>
      d.api.request<{ id: string }[]>('GET', `/api/v1/backups?repository=jobs1&vm=${id}`);
    try {
      await d.api.request('POST', '/api/v1/backup/repositories', { name: 'jobs1', path: join(dir, 'jobs1') });
      // a backup by hand first: the job's retention (keep the last 1) prunes it after the job's own
      const t0 = await d.api.request<{ id: string }>('POST', `/api/v1/vms/${vm.id}/backup`, {
        repository: 'jobs1',
      });
      expect((await waitTask(d.api, t0.id, 120_000)).status).toBe('ok');
      const [byHand] = await backupsOf(vm.id);

      // Edit tags on the other VM's page: a bad tag held back inline; saved, its chips (sorted, once
      // each), in the VM list too
      await p.goto(`${d.url}/#/vms/${other.id}`);
      const tagsField = p.locator('.vm-general .vm-tags-field');
      await tagsField.locator('[data-action=edit-tags]').click({ timeout: 15_000 });
      const tagsInput = tagsField.locator('input[name=tags]');
      await tagsInput.fill('nightly Env');
      await tagsField.locator('.field-error[data-field=tags]', { hasText: /^"Env" is not a tag/ }).waitFor();
      expect(await tagsField.locator('button[type=submit]').isDisabled()).toBe(true);
      await tagsInput.fill('nightly, env:test nightly');
      await tagsField.locator('button[type=submit]').click();
      await tagsField.locator('.vm-tag[data-tag=nightly]').waitFor({ timeout: 15_000 });
      expect(await tagsField.locator('.vm-tag').allTextContents()).toEqual(['env:test', 'nightly']);
      expect((await d.api.request<{ tags?: string[] }>('GET', `/api/v1/vms/${other.id}`)).tags).toEqual([
        'env:test',
        'nightly',
      ]);
      await p.goto(`${d.url}/#/vms`);
      await p.locator(`.vm-list tr[data-id="${other.id}"] .vm-tag[data-tag="env:test"]`).waitFor();
      expect(await p.locator(`.vm-list tr[data-id="${vm.id}"] .vm-tag`).count()).toBe(0);

      // Add repository… with Shared storage: the shared badge in its row, shared: true in the API
      await p.click('.topbar a[href="#/backups"]');
      await p.locator('tr[data-repository=jobs1]').waitFor({ timeout: 15_000 });
      await p.click('[data-action=add-repository]');
      const add = p.getByRole('dialog', { name: 'Add a backup repository' });
      await add.locator('input[name=name]').fill('nfs1');
      await add.locator('input[name=path]').fill(join(dir, 'nfs1'));
      await add.locator('input[name=shared]').check();
      await add.locator('.shared-hint', { hasText: /^VMs of every host/ }).waitFor();
      await add.locator('button[type=submit]').click();
      await add.waitFor({ state: 'detached', timeout: 15_000 });
      const nfsRow = p.locator('tr[data-repository=nfs1]');
      await nfsRow.locator('.shared-badge', { hasText: /^shared$/ }).waitFor({ timeout: 15_000 });
      expect(await nfsRow.locator('.shared-badge').getAttribute('title')).toMatch(
        /^Shared storage .*every host/,
      );
      expect(await p.locator('tr[data-repository=jobs1] .shared-badge').count()).toBe(0);
      const listed = await d.api.request<{ name: string; shared?: boolean }[]>(
        'GET',
        '/api/v1/backup/repositories',
      );
      expect(listed.find((r) => r.name === 'nfs1')?.shared).toBe(true);
      expect(listed.find((r) => r.name === 'jobs1')?.shared).toBeUndefined();

      // Add repository… with Encrypt: the key file named, with the warning to keep a copy of it
      await p.click('[data-action=add-repository]');
      await add.locator('input[name=name]').fill('vault');
      await add.locator('input[name=path]').fill(join(dir, 'vault'));
      await add.locator('input[name=encrypt]').check();
      await add.locator('button[type=submit]').click();
      const warning = add.locator('[data-testid=key-warning]');
      await warning.waitFor({ timeout: 15_000 });
      const vault = await d.api.request<{ id: string; encrypted?: boolean; keyFile?: string }>(
        'GET',
        '/api/v1/backup/repositories/vault',
      );
      expect(vault.encrypted).toBe(true);
      // the key file as the API names it (the path on the host, never the key)
      const keyFile = join(d.dataDir, 'backup-keys', `${vault.id}.key`);
      expect(vault.keyFile).toBe(keyFile);
      expect(await warning.locator('.key-file').textContent()).toBe(keyFile);
      expect(await warning.textContent()).toMatch(/^Keep a copy of its key elsewhere, off this host\./);
      expect(await warning.textContent()).not.toContain('<data dir>');
      const key = readFileSync(keyFile);
      expect(key).toHaveLength(32);
      await add.locator('[data-action=key-noted]').click();
      await add.waitFor({ state: 'detached' });
      const vaultRow = p.locator('tr[data-repository=vault]');
      await vaultRow.locator('.encrypted-badge', { hasText: /^encrypted$/ }).waitFor({ timeout: 15_000 });
      expect(await vaultRow.locator('.repo-key-file').textContent()).toBe(`key: ${keyFile}`);
      expect(await vaultRow.locator('.encrypted-badge').getAttribute('title')).toContain(keyFile);
      expect(await p.locator('tr[data-repository=jobs1] .encrypted-badge').count()).toBe(0);
      expect(await p.locator('tr[data-repository=jobs1] .repo-key-file').count()).toBe(0);

      // removed, its key gone from the host, added again: a malformed key is not sent, a wrong one is
      // refused inline, its own key opens it (and is kept on the host again)
      await vaultRow.locator('[data-action=remove-repository]').click();
      await p.getByRole('dialog', { name: 'Remove repository vault?' }).locator('button.danger').click();
      await vaultRow.waitFor({ state: 'detached', timeout: 15_000 });
      rmSync(keyFile);
      await p.click('[data-action=add-repository]');
      await add.locator('input[name=name]').fill('vault');
      await add.locator('input[name=path]').fill(join(dir, 'vault'));
      await add.locator('input[name=key]').fill('not-a-key');
      await add.locator('.field-error', { hasText: 'base64 of 32 bytes' }).waitFor();
      expect(await add.locator('[data-testid=add-repository-submit]').isDisabled()).toBe(true);
      await add.locator('input[name=key]').fill(Buffer.alloc(32, 7).toString('base64'));
      await add.locator('[data-testid=add-repository-submit]').click();
      await add.locator('.form-error', { hasText: /wrong key/ }).waitFor({ timeout: 15_000 });
      await add.locator('input[name=key]').fill(key.toString('base64'));
      await add.locator('[data-testid=add-repository-submit]').click();
      await warning.waitFor({ timeout: 15_000 });
      await add.locator('[data-action=key-noted]').click();
      await vaultRow.locator('.encrypted-badge').waitFor({ timeout: 15_000 });
      expect(readFileSync(keyFile).equals(key)).toBe(true);

      // Add job…: one VM, keep the last 1; a malformed number held back, a bad schedule refused inline
      const jobs = p.locator('.jobs-card');
      await jobs.locator('td', { hasText: 'No jobs' }).waitFor({ timeout: 15_000 });
      await jobs.locator('[data-action=add-job]').click();
      const dlg = p.getByRole('dialog', { name: 'Add a backup job' });
      await dlg.locator('input[name=name]').fill('nightly');
      await dlg.locator('input[name=schedule]').fill('every day');
      expect(await dlg.locator('[data-testid=schedule-hint]').textContent()).toMatch(/^A cron expression/);
      await dlg.locator('select[name=repository]').selectOption('jobs1');
      await dlg.locator('input[name=vm][data-vm-name=bkjob]').check();
      await dlg.locator('input[name=keepLast]').fill('x');
      await dlg.locator('.field-error[data-field=keepLast]').waitFor();
      expect(await dlg.locator('[data-testid=job-submit]').isDisabled()).toBe(true);
      await dlg.locator('input[name=keepLast]').fill('1');
      expect(await dlg.locator('.retention-summary').textContent()).toMatch(/^Keeps last 1\./);
      await dlg.locator('[data-testid=job-submit]').click();
      await dlg.locator('.form-error', { hasText: 'schedule "every day"' }).waitFor({ timeout: 15_000 });
      // the preset "daily 02:00", read out under the field
      await dlg.locator('button[data-preset="0 2 * * *"]').click();
      expect(await dlg.locator('input[name=schedule]').inputValue()).toBe('0 2 * * *');
      expect(await dlg.locator('[data-testid=schedule-hint]').textContent()).toBe('every day at 02:00 UTC.');
      await dlg.locator('[data-testid=job-submit]').click();
      await dlg.waitFor({ state: 'detached', timeout: 15_000 });
      const row = jobs.locator('tr[data-job=nightly]');
      await row.waitFor({ timeout: 15_000 });
      expect(await row.locator('.job-schedule').textContent()).toBe('0 2 * * *');
      expect(await row.locator('.schedule-hint').textContent()).toBe('every day at 02:00 UTC');
      expect(await row.locator('.job-vms').textContent()).toBe('bkjob');
      expect(await row.locator('.job-retention').textContent()).toBe('last 1');
      expect(await row.locator('.job-last').textContent()).toBe('never');
      expect(await d.api.request<JobView>('GET', '/api/v1/backup/jobs/nightly')).toMatchObject({
        schedule: '0 2 * * *',
        repository: 'jobs1',
        selection: { vms: [vm.id] },
        retention: { keepLast: 1 },
        enabled: true,
        nextRunAt: expect.stringMatching(/T02:00:00/),
      });

      // Run now: the VM backed up, the backup by hand pruned; each VM's outcome under the row, the run in
      // Recent tasks
      await row.locator('[data-action=run-job]').click();
      await jobs
        .locator('tr[data-job=nightly][data-last-status=ok][data-running=false]')
        .waitFor({ timeout: 180_000 });
      const run = jobs.locator('tr[data-run-for=nightly] [data-testid=job-run][data-status=ok]');
      await run.waitFor({ timeout: 15_000 });
      expect(await run.locator('li[data-vm=bkjob]').textContent()).toMatch(
        /^bkjob: ok \((full|incremental)\), 1 pruned$/,
      );
      expect(await run.locator('li').count()).toBe(1);
      expect(await row.locator('.job-last .run-ok').textContent()).toBe('ok');
      expect(await row.locator('.job-message').textContent()).toBe(
        '1 of 1 VM(s) backed up; 1 old backup(s) pruned',
      );
      await p
        .locator('.toast', { hasText: 'Backup job nightly done: 1 VM backed up, 1 backup pruned' })
        .waitFor();
      const jt = p.locator('.tasks tr[data-task-type="backup.job"].task-ok').first();
      expect(await jt.locator('[data-testid=task-result]').textContent()).toBe(
        '1 VM backed up, 1 backup pruned',
      );
      const left = await backupsOf(vm.id);
      expect(left).toHaveLength(1);
      expect(left[0]!.id).not.toBe(byHand!.id);
      expect(await backupsOf(other.id)).toEqual([]);
      await p
        .locator(`.backups-card tr[data-backup="${byHand!.id}"]`)
        .waitFor({ state: 'detached', timeout: 15_000 });
      await p.locator(`.backups-card tr[data-backup="${left[0]!.id}"]`).waitFor({ timeout: 15_000 });
      await p.locator('.toast').first().waitFor({ state: 'detached', timeout: 15_000 });
      await p.screenshot({ path: join(SHOTS, 'backup-jobs.png') });

      // Edit…: the dialog holds the job (its name fixed); a daily rule added
      await row.locator('[data-action=edit-job]').click();
      const edit = p.getByRole('dialog', { name: 'Edit backup job nightly' });
      expect(await edit.locator('input[name=name]').isDisabled()).toBe(true);
      expect(await edit.locator('input[name=schedule]').inputValue()).toBe('0 2 * * *');
      expect(await edit.locator('input[name=keepLast]').inputValue()).toBe('1');
      expect(await edit.locator('input[name=vm][data-vm-name=bkjob]').isChecked()).toBe(true);
      expect(await edit.locator('input[name=vm][data-vm-name=bkjob-other]').isChecked()).toBe(false);
      await edit.locator('input[name=keepDaily]').fill('7');
      await edit.locator('[data-testid=job-submit]').click();
      await edit.waitFor({ state: 'detached', timeout: 15_000 });
      await row.locator('.job-retention', { hasText: /^last 1, daily 7$/ }).waitFor({ timeout: 15_000 });

      // Disable: no next run; Enable offered
      await row.locator('[data-action=toggle-job]').click();
      await jobs.locator('tr[data-job=nightly][data-enabled=false]').waitFor({ timeout: 15_000 });
      expect(await row.locator('.job-next').textContent()).toBe('disabled');
      expect(await row.locator('[data-action=toggle-job]').textContent()).toBe('Enable');
      const off = await d.api.request<JobView>('GET', '/api/v1/backup/jobs/nightly');
      expect(off).toMatchObject({ enabled: false, retention: { keepLast: 1, keepDaily: 7 } });
      expect(off.nextRunAt).toBeUndefined();

      // Delete: the confirmation says the backups stay, and they do
      await row.locator('[data-action=delete-job]').click();
      const del = p.getByRole('dialog', { name: 'Delete backup job nightly?' });
      expect(await del.locator('.modal-body').textContent()).toMatch(
        /backups it made stay in repository jobs1/,
      );
      await del.locator('button.danger').click();
      await row.waitFor({ state: 'detached', timeout: 15_000 });
      await jobs.locator('td', { hasText: 'No jobs' }).waitFor();
      expect(await d.api.request('GET', '/api/v1/backup/jobs')).toEqual([]);
      expect(await backupsOf(vm.id)).toHaveLength(1);

      // Add job… for the VMs with tags: a bad tag held back inline, the VMs tagged now named; "tags:
      // nightly" in its row, {tags} in the API; Run now backs up the tagged VM only
      await jobs.locator('[data-action=add-job]').click();
      await dlg.locator('input[name=name]').fill('tagged');
      await dlg.locator('select[name=repository]').selectOption('jobs1');
      await dlg.locator('input[name=selection][value=tags]').check();
      expect(await dlg.locator('input[name=vm][data-vm-name=bkjob]').isDisabled()).toBe(true);
      await dlg.locator('input[name=tags]').fill('nightly Bad');
      await dlg.locator('.field-error[data-field=tags]', { hasText: /^"Bad" is not a tag/ }).waitFor();
      expect(await dlg.locator('[data-testid=job-submit]').isDisabled()).toBe(true);
      await dlg.locator('input[name=tags]').fill('nightly');
      expect(await dlg.locator('[data-testid=job-tagged]').textContent()).toBe('Now: bkjob-other.');
      await dlg.locator('[data-testid=job-submit]').click();
      await dlg.waitFor({ state: 'detached', timeout: 15_000 });
      const tagged = jobs.locator('tr[data-job=tagged]');
      await tagged.locator('.job-vms', { hasText: /^tags: nightly$/ }).waitFor({ timeout: 15_000 });
      expect((await d.api.request<JobView>('GET', '/api/v1/backup/jobs/tagged')).selection).toEqual({
        tags: ['nightly'],
      });
      await tagged.locator('[data-action=run-job]').click();
      const taggedRun = jobs.locator('tr[data-run-for=tagged] [data-testid=job-run][data-status=ok]');
      await taggedRun.waitFor({ timeout: 180_000 });
      expect(await taggedRun.locator('li').allTextContents()).toEqual(['bkjob-other: ok (full)']);
      expect(await backupsOf(other.id)).toHaveLength(1);
      expect(await backupsOf(vm.id)).toHaveLength(1);
      expect(errors).toEqual([]);
    } finally {
      await d.api.request('DELETE', '/api/v1/backup/jobs/nightly').catch(() => {});
      await d.api.request('DELETE', '/api/v1/backup/jobs/tagged').catch(() => {});
      await d.api.request('DELETE', `/api/v1/vms/${vm.id}?force=true`).catch(() => {});
      await d.api.request('DELETE', `/api/v1/vms/${other.id}?force=true`).catch(() => {});
      await d.api.request('DELETE', '/api/v1/backup/repositories/jobs1').catch(() => {});
      await d.api.request('DELETE', '/api/v1/backup/repositories/vault').catch(() => {});
      await d.api.request('DELETE', '/api/v1/backup/repositories/nfs1').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      await p.context().close();
    }
  }, 300_000);

  it('logs out: the session is gone, and the API refuses the old cookie', async () => {
    const cookiesBefore = await page.context().cookies();
    await page.locator('.topbar button', { hasText: 'Log out' }).click();
    await page.locator('.login-box').waitFor({ timeout: 15_000 });
    const old = cookiesBefore.find((c) => c.name === 'nf_session');
    expect(old).toBeDefined();
    const res = await fetch(`${d.url}/api/v1/vms`, { headers: { cookie: `nf_session=${old!.value}` } });
    expect(res.status).toBe(401);
  });
});
