/**
 * HA VM monitoring (opt-in per VM, as vSphere's): a guest whose agent answered once and then stopped
 * answering, with no disk I/O for the monitoring timeout, is taken as hung and reset, at most
 * MAX_RESETS times an hour. Pure logic over samples; the HA service samples and resets.
 */

export const MAX_RESETS_PER_HOUR = 3;
const HOUR_MS = 3_600_000;

export interface MonitorSample {
  /** QEMU runs the VM. */
  running: boolean;
  agent: 'connected' | 'absent' | 'disabled' | undefined;
}

export interface IoPoint {
  /** ms since the epoch. */
  t: number;
  diskReadBps: number | null;
  diskWriteBps: number | null;
}

export type MonitorVerdict =
  | { kind: 'ok' }
  /** The agent is silent long enough: the I/O of the window decides (the caller fetches it). */
  | { kind: 'check-io'; sinceMs: number }
  | { kind: 'limit'; message: string };

interface Track {
  /** The agent answered since the last start or reset: only then does its silence mean anything. */
  answered: boolean;
  silentSince?: number;
  resets: number[];
  limitSaid?: boolean;
}

export class VmMonitor {
  private readonly tracks = new Map<string, Track>();

  /** One look at a monitored VM (every second); `now` in ms since the epoch. */
  judge(id: string, s: MonitorSample, now: number, timeoutMs: number): MonitorVerdict {
    const t = this.tracks.get(id) ?? { answered: false, resets: [] };
    this.tracks.set(id, t);
    t.resets = t.resets.filter((r) => now - r < HOUR_MS);
    if (!s.running || s.agent === 'disabled' || s.agent === undefined) {
      t.answered = false;
      delete t.silentSince;
      return { kind: 'ok' };
    }
    if (s.agent === 'connected') {
      t.answered = true;
      delete t.silentSince;
      t.limitSaid = false;
      return { kind: 'ok' };
    }
    if (!t.answered) return { kind: 'ok' }; // still booting, or an agent that never ran
    t.silentSince ??= now;
    if (now - t.silentSince < timeoutMs) return { kind: 'ok' };
    if (t.resets.length >= MAX_RESETS_PER_HOUR) {
      if (t.limitSaid) return { kind: 'ok' };
      t.limitSaid = true;
      return {
        kind: 'limit',
        message: `${MAX_RESETS_PER_HOUR} resets in the last hour: no more until the hour has passed`,
      };
    }
    return { kind: 'check-io', sinceMs: now - timeoutMs };
  }

  /**
   * Whether the window since `sinceMs` shows no disk I/O at all (two samples at least: the host samples
   * every 10 s; a gap in the samples is no proof of silence).
   */
  static idle(points: IoPoint[], sinceMs: number): boolean {
    const inWindow = points.filter((p) => p.t >= sinceMs);
    return (
      inWindow.length >= 2 &&
      inWindow.every(
        (p) => p.diskReadBps !== null && p.diskWriteBps !== null && p.diskReadBps + p.diskWriteBps === 0,
      )
    );
  }

  /** A reset was made: the agent must answer again before its silence counts. */
  reset(id: string, now: number): void {
    const t = this.tracks.get(id) ?? { answered: false, resets: [] };
    t.resets.push(now);
    t.answered = false;
    delete t.silentSince;
    this.tracks.set(id, t);
  }

  /** The guest did I/O: its silence starts again (an agent may be gone while the workload runs). */
  busy(id: string, now: number): void {
    const t = this.tracks.get(id);
    if (t?.silentSince !== undefined) t.silentSince = now;
  }

  forget(keep: Set<string>): void {
    for (const id of this.tracks.keys()) if (!keep.has(id)) this.tracks.delete(id);
  }
}
