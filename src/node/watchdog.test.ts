import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
    const w = new WatchdogFeeder(dev, () => true, 20);
    w.start();
    await waitFor(() => readFileSync(dev, 'utf8').length >= 3, { timeoutMs: 5000, what: 'three feeds' });
    w.stop();
    const all = readFileSync(dev, 'utf8');
    expect(all.endsWith('V')).toBe(true);
    expect(all.slice(0, -1)).toMatch(/^\.+$/);
  });

  it('opens the device only while armed() holds, and disarms it as soon as it stops holding', async () => {
    const dev = join(dir, 'gated');
    let armed = false;
    let checks = 0;
    const w = new WatchdogFeeder(
      dev,
      () => {
        checks++;
        return armed;
      },
      10,
    );
    w.start();
    try {
      // the feeder asked a few times: nothing opened (no file made)
      await waitFor(() => checks > 5, { timeoutMs: 5000, intervalMs: 5, what: 'a few checks' });
      expect(w.active).toBe(false);
      expect(() => readFileSync(dev)).toThrow(/ENOENT/);
      armed = true;
      await waitFor(() => existsSync(dev) && readFileSync(dev, 'utf8').length >= 2, {
        timeoutMs: 5000,
        what: 'feeds',
      });
      expect(w.active).toBe(true);
      armed = false;
      await waitFor(() => !w.active, { timeoutMs: 5000, what: 'the disarm' });
      expect(readFileSync(dev, 'utf8')).toMatch(/^\.+V$/);
    } finally {
      w.stop();
    }
  });

  it('keeps trying a device it cannot open, and does not throw from the event loop', async () => {
    let checks = 0;
    const w = new WatchdogFeeder(
      join(dir, 'no', 'such'),
      () => {
        checks++;
        return true;
      },
      10,
    );
    w.start();
    // it tried to open the device at several ticks without throwing out of the timer
    await waitFor(() => checks > 3, { timeoutMs: 5000, intervalMs: 5, what: 'a few checks' });
    expect(w.active).toBe(false);
    w.stop();
  });
});
