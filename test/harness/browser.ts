import { type Browser, chromium } from 'playwright-core';

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
