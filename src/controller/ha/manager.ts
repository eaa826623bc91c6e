/**
 * The HA manager's decisions, as pure logic over what the leader observes at each tick (its clock is
 * passed in, so the simulator in manager.test.ts drives it with a virtual one). The runner
 * (src/controller/ha/service.ts) observes the hosts and VMs, carries out the actions it returns
 * (probe results come back in the next observation, fencing and restarts through fenced()/restarted())
 * and saves the recoveries it is handed.
 *
 * A host is declared failed only when both paths are silent: its health lease expired (no heartbeat for
 * the detection time) and the leader's direct probe of its node service fails. A new leader waits one
 * detection time before declaring anything (an earlier leader's probe may have kept a host's
 * self-fence timer going). Nothing restarts before the failed host's storage is fenced.
 */
import { type HaPolicy, type HaPriority, PRIORITY_RANK } from './policy';

/** What the leader sees of a host at one tick. */
export interface HostSeen {
  name: string;
  /** Its health lease is alive: heartbeats reach the leader. */
  leased: boolean;
  /**
   * Whether the leader's probe of its node service answered this tick (asked when heartbeats are
   * overdue or the lease expired; undefined when not asked).
   */
  probeOk?: boolean;
}

/** A VM as HA sees it. */
export interface HaVm {
  id: string;
  name: string;
  /** The host its record names. */
  node: string;
  /** Asked to run (or be paused). */
  poweredOn: boolean;
  /** QEMU runs it on `node` now (as the leader's view of that host says). */
  running: boolean;
  ha?: HaPolicy;
  /** Why it cannot run elsewhere (local disks, pinned to the host, a migration under way). */
  unprotected?: string;
}

export type RecoveryVmState = 'waiting' | 'restarting' | 'starting' | 'running' | 'failed' | 'gone';

export interface RecoveryVm {
  id: string;
  name: string;
  priority: HaPriority;
  restartOrder: number;
  state: RecoveryVmState;
  target?: string;
  /** When its record was handed to the target (ms, the leader's clock; ISO in the saved record). */
  restartedAt?: number;
  runningAt?: number;
  error?: string;
  /** Attempts that failed (no room, the target refused). */
  attempts: number;
  /** Not before this time (ms) after a failed attempt. */
  retryAt?: number;
}

export type RecoveryStatus = 'fencing' | 'restarting' | 'done';

/** One host failure and what HA did about it: the timeline the API shows. */
export interface Recovery {
  id: string;
  host: string;
  status: RecoveryStatus;
  detectedAt: number;
  /** Why it was declared failed. */
  reason: string;
  fencedAt?: number;
  /** What fencing did (client addresses blocklisted, locks taken). */
  fence?: string;
  fenceAttempts: number;
  fenceError?: string;
  vms: RecoveryVm[];
  /** Powered-on VMs of the host that HA does not restart, with why. */
  unprotected: { id: string; name: string; reason: string }[];
  /** The host answered again (its lease came back) while or after its VMs were restarted. */
  returnedAt?: number;
  endedAt?: number;
}

export type HaAction =
  | { kind: 'fence'; recovery: string; host: string; vms: string[] }
  | { kind: 'restart'; recovery: string; vm: string; host: string }
  | { kind: 'save'; recovery: Recovery }
  /**
   * The failed host answers again: any QEMU it still has of these VMs (a `serve` that was killed while
   * its QEMUs lived on, a `leave` isolation response) is a stale copy, blocklisted since the fencing:
   * stop it there, unless the VM's record names that host again.
   */
  | { kind: 'reap'; recovery: string; host: string; vms: string[] };

export type HostHaState = 'online' | 'suspect' | 'degraded' | 'failed';

/** Time a priority class gets to run before the next one starts anyway. */
export const PRIORITY_WAIT_MS = 30_000;
/** Wait after a failed restart attempt or fence before trying again. */
export const RETRY_MS = 5_000;

interface HostTrack {
  state: HostHaState;
  since: number;
  /** Last time its probe answered (this leader's clock). */
  lastProbeOk?: number;
}

export class HaManager {
  private readonly hosts = new Map<string, HostTrack>();
  private readonly recoveries = new Map<string, Recovery>();
  private readonly inflight = new Set<string>();
  private seq = 0;

  constructor(
    /** The detection time (ms). */
    private detectionMs: number,
    /** When this controller became the leader (ms, its clock). */
    private readonly leaderSince: number,
    private readonly newId: () => string = () => `r${++this.seq}`,
  ) {}

  setDetection(ms: number): void {
    this.detectionMs = ms;
  }

  /** Recoveries an earlier leader saved and did not finish: this one carries them on. */
  load(open: Recovery[]): void {
    for (const r of open) {
      this.recoveries.set(r.id, structuredClone(r));
      if (r.status !== 'done') this.hosts.set(r.host, { state: 'failed', since: r.detectedAt });
    }
  }

  hostState(name: string): HostHaState {
    return this.hosts.get(name)?.state ?? 'online';
  }

  /** A host with a recovery not yet done: the reconciler leaves its VMs alone. */
  recovering(host: string): boolean {
    return [...this.recoveries.values()].some((r) => r.host === host && r.status !== 'done');
  }

  list(): Recovery[] {
    return [...this.recoveries.values()].map((r) => structuredClone(r));
  }

  /** One decision pass. */
  tick(now: number, hosts: HostSeen[], vms: HaVm[]): HaAction[] {
    const actions: HaAction[] = [];
    for (const h of hosts) this.judge(now, h, vms, actions);
    for (const r of this.recoveries.values()) {
      if (r.status === 'done') continue;
      if (r.status === 'fencing') this.fence(now, r, actions);
      else this.restart(now, r, vms, actions);
    }
    return actions;
  }

  /** The runner's answer to a `fence` action. */
  fenced(
    now: number,
    recoveryId: string,
    result: { ok: true; detail: string } | { ok: false; error: string },
  ) {
    this.inflight.delete(`fence:${recoveryId}`);
    const r = this.recoveries.get(recoveryId);
    if (!r || r.status !== 'fencing') return [];
    if (result.ok) {
      r.status = 'restarting';
      r.fencedAt = now;
      r.fence = result.detail;
      delete r.fenceError;
    } else {
      r.fenceAttempts++;
      r.fenceError = result.error;
    }
    return [{ kind: 'save', recovery: structuredClone(r) } as HaAction];
  }

  /** The runner's answer to a `restart` action: the record now names `target`, or why not. */
  restarted(
    now: number,
    recoveryId: string,
    vmId: string,
    result: { ok: true; target: string } | { ok: false; error: string; gone?: boolean },
  ): HaAction[] {
    this.inflight.delete(`restart:${vmId}`);
    const r = this.recoveries.get(recoveryId);
    const v = r?.vms.find((x) => x.id === vmId);
    if (!r || !v || v.state !== 'restarting') return [];
    if (result.ok) {
      v.state = 'starting';
      v.target = result.target;
      v.restartedAt = now;
      delete v.error;
    } else if (result.gone) {
      v.state = 'gone';
      v.error = result.error;
    } else {
      v.state = 'waiting';
      v.attempts++;
      v.error = result.error;
      v.retryAt = now + RETRY_MS;
    }
    this.finish(now, r);
    const out: HaAction[] = [{ kind: 'save', recovery: structuredClone(r) }];
    // Handed over after the failed host came back: the copy it may still have is stale from now on.
    if (result.ok && r.returnedAt !== undefined)
      out.push({ kind: 'reap', recovery: r.id, host: r.host, vms: [vmId] });
    return out;
  }

  private judge(now: number, h: HostSeen, vms: HaVm[], actions: HaAction[]): void {
    const t = this.hosts.get(h.name) ?? { state: 'online' as HostHaState, since: now };
    this.hosts.set(h.name, t);
    const set = (state: HostHaState) => {
      if (t.state !== state) {
        t.state = state;
        t.since = now;
      }
    };
    // An answered probe is contact for the host's self-fence: it may not be declared failed for a
    // detection time after it, whatever its lease does.
    if (h.probeOk) t.lastProbeOk = now;
    if (h.leased) {
      if (t.state === 'failed') this.returned(now, h.name, actions);
      set('online');
      return;
    }
    if (t.state === 'failed') return;
    if (h.probeOk) {
      set('degraded');
      return;
    }
    set('suspect');
    // A new leader, or a probe that answered lately: the host's self-fence timer may still run.
    if (now - this.leaderSince < this.detectionMs) return;
    if (t.lastProbeOk !== undefined && now - t.lastProbeOk < this.detectionMs) return;
    set('failed');
    this.declare(now, h.name, vms, actions);
  }

  private declare(now: number, host: string, vms: HaVm[], actions: HaAction[]): void {
    const mine = vms.filter((v) => v.node === host && v.poweredOn);
    const r: Recovery = {
      id: this.newId(),
      host,
      status: 'fencing',
      detectedAt: now,
      reason: `no heartbeat for ${Math.round(this.detectionMs / 1000)} s (its health lease expired) and its node service does not answer`,
      fenceAttempts: 0,
      vms: [],
      unprotected: [],
    };
    for (const v of mine) {
      if (!v.ha?.enabled) r.unprotected.push({ id: v.id, name: v.name, reason: 'HA is off for this VM' });
      else if (v.unprotected) r.unprotected.push({ id: v.id, name: v.name, reason: v.unprotected });
      else
        r.vms.push({
          id: v.id,
          name: v.name,
          priority: v.ha.priority,
          restartOrder: v.ha.restartOrder,
          state: 'waiting',
          attempts: 0,
        });
    }
    r.vms.sort(
      (a, b) =>
        PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] ||
        a.restartOrder - b.restartOrder ||
        a.name.localeCompare(b.name),
    );
    this.recoveries.set(r.id, r);
    actions.push({ kind: 'save', recovery: structuredClone(r) });
    if (r.vms.length === 0) {
      // Nothing to restart: nothing to fence either (the host's other VMs wait for it).
      r.status = 'done';
      r.endedAt = now;
      actions.push({ kind: 'save', recovery: structuredClone(r) });
    }
  }

  private fence(now: number, r: Recovery, actions: HaAction[]): void {
    const key = `fence:${r.id}`;
    if (this.inflight.has(key)) return;
    if (r.fenceError && r.fenceAttempts > 0 && now - (this.lastTry.get(key) ?? 0) < RETRY_MS) return;
    this.inflight.add(key);
    this.lastTry.set(key, now);
    actions.push({ kind: 'fence', recovery: r.id, host: r.host, vms: r.vms.map((v) => v.id) });
  }

  private readonly lastTry = new Map<string, number>();

  private restart(now: number, r: Recovery, vms: HaVm[], actions: HaAction[]): void {
    const byId = new Map(vms.map((v) => [v.id, v]));
    let changed = false;
    for (const v of r.vms) {
      const cur = byId.get(v.id);
      if (v.state === 'waiting' && (!cur || cur.node !== r.host || !cur.poweredOn)) {
        // Deleted, stopped or moved by someone else meanwhile: not ours to restart any more.
        v.state = 'gone';
        v.error = !cur ? 'deleted meanwhile' : !cur.poweredOn ? 'stopped meanwhile' : `moved to ${cur.node}`;
        changed = true;
      } else if (v.state === 'starting' && cur?.running && cur.node === v.target) {
        v.state = 'running';
        v.runningAt = now;
        changed = true;
      } else if (v.state === 'starting' && (!cur || cur.node !== v.target || !cur.poweredOn)) {
        v.state = 'gone';
        v.error = !cur
          ? 'deleted meanwhile'
          : `changed meanwhile (host ${cur.node}, ${cur.poweredOn ? 'on' : 'off'})`;
        changed = true;
      }
    }
    for (const v of r.vms) {
      if (v.state !== 'waiting' || (v.retryAt !== undefined && now < v.retryAt)) continue;
      if (!this.higherDone(now, r, v)) continue;
      v.state = 'restarting';
      this.inflight.add(`restart:${v.id}`);
      actions.push({ kind: 'restart', recovery: r.id, vm: v.id, host: r.host });
    }
    if (this.finish(now, r) || changed) actions.push({ kind: 'save', recovery: structuredClone(r) });
  }

  /** Every VM of a higher priority class is running, gone, or had its time. */
  private higherDone(now: number, r: Recovery, v: RecoveryVm): boolean {
    return r.vms.every(
      (o) =>
        PRIORITY_RANK[o.priority] >= PRIORITY_RANK[v.priority] ||
        o.state === 'running' ||
        o.state === 'gone' ||
        o.state === 'failed' ||
        (o.restartedAt !== undefined && now - o.restartedAt >= PRIORITY_WAIT_MS),
    );
  }

  /** Ends a recovery whose VMs all run again (or are no longer its business). */
  private finish(now: number, r: Recovery): boolean {
    if (r.status !== 'restarting') return false;
    if (!r.vms.every((v) => v.state === 'running' || v.state === 'gone' || v.state === 'failed'))
      return false;
    r.status = 'done';
    r.endedAt = now;
    return true;
  }

  private returned(now: number, host: string, actions: HaAction[]): void {
    for (const r of this.recoveries.values()) {
      if (r.host !== host || r.returnedAt !== undefined) continue;
      r.returnedAt = now;
      if (r.vms.length) actions.push({ kind: 'reap', recovery: r.id, host, vms: r.vms.map((v) => v.id) });
      actions.push({ kind: 'save', recovery: structuredClone(r) });
    }
  }
}
