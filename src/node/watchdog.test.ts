import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../util/wait';
import { WatchdogFeeder } from './watchdog';

const dir = mkdtempSync(join(tmpdir(), 'nf-watchdog-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('WatchdogFeeder', () => {
  it('feeds the device while the event loop runs and disarms it with the magic V on stop', async () => {
    // A file stands in for /dev/watchdog: each feed is a byte written.
    const dev = join(dir, 'watchdog');
    const w = new WatchdogFeeder(dev, 20);
    w.start();
    await waitFor(() => readFileSync(dev, 'utf8').length >= 3, { timeoutMs: 5000, what: 'three feeds' });
    w.stop();
    const all = readFileSync(dev, 'utf8');
    expect(all.endsWith('V')).toBe(true);
    expect(all.slice(0, -1)).toMatch(/^\.+$/);
  });

  it('refuses a device it cannot open, naming it', () => {
    const w = new WatchdogFeeder(join(dir, 'no', 'such'));
    expect(() => w.start()).toThrow(/--watchdog .*no\/such/);
  });
});
