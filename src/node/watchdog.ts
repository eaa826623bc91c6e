import { closeSync, openSync, writeSync } from 'node:fs';
import { createLogger } from '../util/log';

const log = createLogger('watchdog');

/**
 * Feeds a Linux watchdog device (`/dev/watchdog`: a hardware one, `softdog`, or QEMU's i6300esb) from the
 * daemon's event loop while `armed()` says so: a `serve` that hangs stops feeding it and the kernel
 * resets the host when the device's timeout runs out, so a hung host cannot keep HA VMs alive that the
 * cluster restarts elsewhere.
 *
 * Armed only while it protects something (as Proxmox's HA arms its watchdog only while a host runs HA
 * services): `serve` arms it while this host runs an HA VM whose isolation response powers it off or shuts
 * it down. A host without one is never reset for a hung daemon (its VMs keep running; nobody restarts them
 * elsewhere). Disarming writes the magic 'V' and closes the device (drivers without "nowayout" stop).
 * The device is opened at the first tick that wants it, and each check runs every `intervalMs`.
 */
export class WatchdogFeeder {
  private fd?: number;
  private timer?: Timer;
  /** An open that failed (logged once until it works again). */
  private openError?: string;

  constructor(
    readonly path: string,
    private readonly armed: () => boolean = () => true,
    private readonly intervalMs = 1000,
  ) {}

  /** Whether the device is open and fed now. */
  get active(): boolean {
    return this.fd !== undefined;
  }

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    log.info('watchdog: armed while HA VMs with an isolation response run here', {
      device: this.path,
      everyMs: this.intervalMs,
    });
  }

  private tick(): void {
    let want: boolean;
    try {
      want = this.armed();
    } catch {
      want = this.fd !== undefined; // no answer: keep what is
    }
    if (want && this.fd === undefined) this.open();
    else if (!want && this.fd !== undefined) {
      this.disarm();
      log.info('watchdog disarmed: nothing here to protect', { device: this.path });
      return;
    }
    if (this.fd === undefined) return;
    try {
      writeSync(this.fd, '.');
    } catch (err) {
      log.error('cannot feed the watchdog', { device: this.path, err: (err as Error).message });
    }
  }

  private open(): void {
    try {
      this.fd = openSync(this.path, 'w');
      this.openError = undefined;
      log.info('watchdog armed: HA VMs run here', { device: this.path });
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== this.openError) log.error('cannot open the watchdog', { device: this.path, err: msg });
      this.openError = msg;
    }
  }

  /** Magic close: the driver stops the timer. */
  private disarm(): void {
    if (this.fd === undefined) return;
    try {
      writeSync(this.fd, 'V');
    } catch {}
    try {
      closeSync(this.fd);
    } catch (err) {
      log.error('cannot close the watchdog', { device: this.path, err: (err as Error).message });
    }
    this.fd = undefined;
  }

  /** Stops checking; disarms (magic close) and closes the device. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.disarm();
  }
}
