/**
 * Web UI figures: first render of the dashboard, the VM list with 1,000 VMs (windowed rows), scrolling
 * to its end, and the size of the UI bundle gzipped. Headless Chromium against a real daemon.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { launchChromium } from '../test/harness/browser';
import { TestDaemon } from '../test/harness/daemon';
import { testGuest } from '../test/harness/guest';
import { benchSize, record, summary } from './lib';

const N = benchSize('BENCH_VMS', 1000, 50);
const RUNS = benchSize('BENCH_UI_RUNS', 5, 1);
const ROOT = join(import.meta.dirname, '..');

// The bundle as served: dist/ui/ (index.html, app.js, app.css, the lazy noVNC chunk).
const uiDir = join(ROOT, 'dist', 'ui');
let gzipBytes = 0;
let initialGzipBytes = 0;
for (const f of readdirSync(uiDir)) {
  const gz = gzipSync(readFileSync(join(uiDir, f)), { level: 9 }).length;
  gzipBytes += gz;
  if (!f.startsWith('chunk-')) initialGzipBytes += gz;
}
const kib = (b: number) => Math.round((b / 1024) * 10) / 10;

await using d = await TestDaemon.start();
const g = testGuest();
for (let i = 0; i < N; i += 10) {
  await Promise.all(
    Array.from({ length: Math.min(10, N - i) }, (_, j) =>
      d.api.request('POST', '/api/v1/vms', {
        name: `bench-${i + j}`,
        vcpus: 1,
        memoryMiB: 64,
        boot: { kernel: g.vmlinux },
      }),
    ),
  );
}

const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 860 } });
  await page.goto(d.url);
  await page.fill('input[name=password]', readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim());
  await page.click('button[type=submit]');
  await page.locator('.dashboard').waitFor({ timeout: 30_000 });

  // Navigation start → the dashboard shows the host and the count of all VMs (performance.now() is
  // relative to the navigation's start).
  const dashboard: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    // A fresh document each time (a hash-only goto would not reload, and performance.now() would run on).
    await page.goto('about:blank');
    await page.goto(`${d.url}/#/`, { waitUntil: 'commit' });
    const ms = await page.waitForFunction(
      (n) => {
        const h = [...document.querySelectorAll('.dashboard .card h3')].map((e) => e.textContent ?? '');
        return h.some((t) => t.includes(`Virtual machines: ${n}`)) && document.querySelector('.dashboard dt')
          ? performance.now()
          : 0;
      },
      N,
      { polling: 'raf', timeout: 60_000 },
    );
    dashboard.push(Number(await ms.jsonValue()));
  }

  // Click on "Virtual machines" → the count label says N and the first rows are in the DOM.
  const list: number[] = [];
  let rowsInDom = 0;
  for (let i = 0; i < RUNS; i++) {
    await page.goto(`${d.url}/#/`);
    await page.locator('.dashboard dt').first().waitFor();
    const ms = await page.evaluate(
      (n) =>
        new Promise<number>((resolve) => {
          const t0 = performance.now();
          document.querySelector<HTMLAnchorElement>('.topbar nav a[href="#/vms"]')!.click();
          const check = () => {
            const c = document.querySelector('.vm-count');
            if (c?.getAttribute('data-count') === String(n) && document.querySelector('.vm-list tr.row'))
              resolve(performance.now() - t0);
            else requestAnimationFrame(check);
          };
          check();
        }),
      N,
    );
    list.push(ms);
    rowsInDom = await page.locator('.vm-list tr.row').count();
  }

  // Scroll to the end: the last VM's row appears (windowing renders the rows in view).
  const scroll: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const ms = await page.evaluate(
      (last) =>
        new Promise<number>((resolve) => {
          const el = document.querySelector<HTMLElement>('.vm-scroll')!;
          el.scrollTop = 0;
          requestAnimationFrame(() => {
            const t0 = performance.now();
            el.scrollTop = el.scrollHeight;
            const check = () => {
              const rows = [...el.querySelectorAll('tr.row td:first-child')];
              if (rows.some((r) => r.textContent === last)) resolve(performance.now() - t0);
              else requestAnimationFrame(check);
            };
            check();
          });
        }),
      `bench-${N - 1}`,
    );
    scroll.push(ms);
  }

  const figures = {
    vms: N,
    dashboardFirstRenderMs: summary(dashboard),
    vmListRenderMs: summary(list),
    vmListRowsInDom: rowsInDom,
    scrollToEndMs: summary(scroll),
    bundleGzipKiB: kib(gzipBytes),
    initialBundleGzipKiB: kib(initialGzipBytes),
  };
  const f = figures;
  record('web-ui', figures, [
    `dashboard first render (navigation start → content, ${N} VMs) p50 ${f.dashboardFirstRenderMs.p50} ms, max ${f.dashboardFirstRenderMs.max} ms`,
    `VM list of ${N} VMs (click → count and first rows) p50 ${f.vmListRenderMs.p50} ms, max ${f.vmListRenderMs.max} ms; ${rowsInDom} rows in the DOM (windowed); scroll to the end p50 ${f.scrollToEndMs.p50} ms`,
    `UI bundle ${f.bundleGzipKiB} KiB gzipped in total, ${f.initialBundleGzipKiB} KiB before the lazy noVNC chunk (target < 400 KiB)`,
  ]);
} finally {
  await browser.close();
}
