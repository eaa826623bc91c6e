import { type Browser, chromium, type Page } from 'playwright-core';

/**
 * Debian's Chromium, headless, with everything that would call out to the network turned off (this
 * machine has no network but Debian's mirrors; each attempt would be refused and slow the test).
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A page signed in as root (the password from a host's data dir) at `url`, with the page errors it
 * collects; HTTPS with a cluster's own CA, which Chromium does not know, is accepted.
 */
export async function signIn(
  browser: Browser,
  url: string,
  password: string,
): Promise<{ page: Page; pageErrors: string[] }> {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1360, height: 900 },
  });
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(url);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.locator('.topbar .user', { hasText: 'root' }).waitFor({ timeout: 15_000 });
  return { page, pageErrors };
}
