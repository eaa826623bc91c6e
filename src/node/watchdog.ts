import { closeSync, openSync, writeSync } from 'node:fs';
import { NfError } from '../errors';
import { createLogger } from '../util/log';

const log = createLogger('watchdog');

/**
 * Feeds a Linux watchdog device (`/dev/watchdog`: a hardware one, `softdog`, or QEMU's i6300esb) from the
 * daemon's event loop: a `serve` that hangs stops feeding it and the kernel resets the host when the
 * device's timeout runs out, so a hung host cannot keep HA VMs alive that the cluster restarts elsewhere.
 * A clean stop writes the magic 'V' so the device is disarmed (with drivers that allow it).
 */
export class WatchdogFeeder {
  private fd?: number;
  private timer?: Timer;

  constructor(
    readonly path: string,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    try {
      this.fd = openSync(this.path, 'w');
    } catch (err) {
      throw new NfError('validation_failed', `--watchdog ${this.path}: ${(err as Error).message}`);
    }
    this.feed();
    this.timer = setInterval(() => this.feed(), this.intervalMs);
    log.info('feeding the watchdog', { device: this.path, everyMs: this.intervalMs });
  }

  private feed(): void {
    if (this.fd === undefined) return;
    try {
      writeSync(this.fd, '.');
    } catch (err) {
      log.error('cannot feed the watchdog', { device: this.path, err: (err as Error).message });
    }
  }

  /** Disarms (magic close) and closes the device. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.fd === undefined) return;
    try {
      writeSync(this.fd, 'V');
    } catch {}
    closeSync(this.fd);
    this.fd = undefined;
  }
}
