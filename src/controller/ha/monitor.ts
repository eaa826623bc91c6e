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
  /** The last look at the disks' I/O, and whether they were idle. */
  lastCheck?: { at: number; idle: boolean };
}

/** What VM monitoring knows of a guest now (GET /vms/{id}/ha, on the leader). */
export interface MonitorView {
  /** Seconds its agent has been silent after it had answered. */
  agentSilentForSec?: number;
  /** The last look at its disks (made once the silence lasted the timeout). */
  lastIoCheck?: { at: string; diskIdle: boolean };
  resetsLastHour: number;
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

  /** A reset was made (its disks were idle): the agent must answer again before its silence counts. */
  reset(id: string, now: number): void {
    const t = this.tracks.get(id) ?? { answered: false, resets: [] };
    t.resets.push(now);
    t.answered = false;
    t.lastCheck = { at: now, idle: true };
    delete t.silentSince;
    this.tracks.set(id, t);
  }

  /** The guest did I/O: its silence starts again (an agent may be gone while the workload runs). */
  busy(id: string, now: number): void {
    const t = this.tracks.get(id);
    if (!t) return;
    t.lastCheck = { at: now, idle: false };
    if (t.silentSince !== undefined) t.silentSince = now;
  }

  view(id: string, now: number): MonitorView {
    const t = this.tracks.get(id);
    const v: MonitorView = { resetsLastHour: t?.resets.filter((r) => now - r < HOUR_MS).length ?? 0 };
    if (t?.silentSince !== undefined) v.agentSilentForSec = Math.round((now - t.silentSince) / 1000);
    if (t?.lastCheck)
      v.lastIoCheck = { at: new Date(t.lastCheck.at).toISOString(), diskIdle: t.lastCheck.idle };
    return v;
  }

  forget(keep: Set<string>): void {
    for (const id of this.tracks.keys()) if (!keep.has(id)) this.tracks.delete(id);
  }
}
