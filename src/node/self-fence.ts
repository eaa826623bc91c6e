import type { IsolationResponse } from '../vmm/types';

/** What the self-fence acts on: the VMs of this host that have an isolation response, and how to apply it. */
export interface FenceTarget {
  /** Running VMs of this host with an HA isolation response. */
  haVms(): { id: string; name: string; isolationResponse: IsolationResponse }[];
  /** Applies the response to one VM (kill for poweroff, ACPI for shutdown). */
  isolate(id: string, response: 'poweroff' | 'shutdown', why: string): Promise<void>;
}

/**
 * A host's half of HA fencing. The leader acknowledges each heartbeat only after renewing the host's
 * health lease, and a probe from a controller proves the cluster still sees the host; both are contact.
 * When no contact came for the window the leader sends (its detection time minus a second), the host
 * is cut off and the leader may soon restart its HA VMs elsewhere: it powers them off first (or shuts
 * them down, or leaves them, per their isolation response). Times come from a monotonic clock: a wall
 * clock jump changes nothing.
 */
export class SelfFence {
  private lastContact: number;
  private windowMs = 0;
  private isolated = false;
  private timer?: Timer;
  private readonly done = new Set<string>();

  constructor(
    private readonly target: FenceTarget,
    private readonly now: () => number = () => performance.now(),
    private readonly log: (msg: string, fields?: Record<string, unknown>) => void = () => {},
  ) {
    this.lastContact = now();
  }

  /**
   * Proof that the cluster saw this host at `at` (the send time of an acknowledged report, or when a
   * probe arrived). `windowMs` (from the leader; 0 = HA fencing off) replaces the current window.
   */
  contact(at: number, windowMs?: number, source = 'ack'): void {
    const silent = this.now() - this.lastContact;
    if (silent > 3000 && at > this.lastContact)
      this.log('contact with the cluster after a silence', {
        source,
        silentMs: Math.round(silent),
        contactAgoMs: Math.round(this.now() - at),
      });
    if (at > this.lastContact) this.lastContact = at;
    if (windowMs !== undefined) this.windowMs = windowMs;
    if (this.isolated && this.now() - this.lastContact < this.windowMs) {
      this.isolated = false;
      this.done.clear();
      this.log('contact with the cluster is back; HA VMs that were isolated wait for the cluster to decide');
    }
  }

  /** Isolated now: no contact for longer than the window. */
  get cutOff(): boolean {
    return this.isolated;
  }

  start(intervalMs = 200): void {
    this.timer ??= setInterval(() => void this.check(), intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check (the timer calls it; tests call it with their clock). */
  async check(): Promise<void> {
    if (this.windowMs <= 0) return;
    const silent = this.now() - this.lastContact;
    if (silent < this.windowMs) return;
    if (!this.isolated) {
      this.isolated = true;
      this.log('no contact with the cluster: applying the HA isolation response', {
        silentMs: Math.round(silent),
      });
    }
    const why = `isolation response: no contact with the cluster for ${(silent / 1000).toFixed(1)} s`;
    for (const vm of this.target.haVms()) {
      if (vm.isolationResponse === 'leave' || this.done.has(vm.id)) continue;
      this.done.add(vm.id);
      await this.target.isolate(vm.id, vm.isolationResponse, why).catch((err: Error) => {
        this.done.delete(vm.id); // try again at the next check
        this.log('isolating a VM failed', { vm: vm.name, err: err.message });
      });
    }
  }
}
