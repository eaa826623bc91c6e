import { selfFenceMs } from '../../src/controller/ha/policy';
import type { HaPolicy, HaProtection, HaRecovery, HaSettings, HostHaState, HostNode, Task } from './api';
import { clock } from './format';

export { DEFAULT_HA_POLICY, DETECTION_MAX_SEC, DETECTION_MIN_SEC } from '../../src/controller/ha/policy';

export const HA_PRIORITIES: { value: HaPolicy['priority']; label: string }[] = [
  { value: 'high', label: 'high: restarted first' },
  { value: 'medium', label: 'medium' },
  { value: 'low', label: 'low: restarted last' },
];

export const ISOLATION_RESPONSES: { value: HaPolicy['isolationResponse']; label: string; hint: string }[] = [
  {
    value: 'poweroff',
    label: 'power off (default)',
    hint: 'The isolated host kills the VM before the others restart it (the default).',
  },
  {
    value: 'shutdown',
    label: 'shut down',
    hint: 'Asks the guest to shut down; its disk writes are fenced meanwhile.',
  },
  {
    value: 'leave',
    label: 'leave running',
    hint: 'Keeps running on the isolated host; storage fencing alone stops its writes.',
  },
];

export function isolationLabel(v: HaPolicy['isolationResponse']): string {
  return ISOLATION_RESPONSES.find((x) => x.value === v)?.label ?? v;
}

export function isolationHint(v: HaPolicy['isolationResponse']): string {
  return ISOLATION_RESPONSES.find((x) => x.value === v)?.hint ?? '';
}

/** "Protected: …", "Unprotected: <why>", "Off: …": a VM's protection in one line. */
export function protectionLine(p: HaProtection): string {
  switch (p.state) {
    case 'protected':
      return 'Protected: restarted on another host if its host fails';
    case 'unprotected':
      return `Unprotected: ${p.reason ?? 'HA cannot restart it elsewhere'}`;
    case 'disabled':
      return 'Off: not restarted when its host fails';
  }
}

/** "10 s (a host cut off fences itself after 9 s)". */
export function detectionLine(s: Pick<HaSettings, 'detectionSec'>): string {
  return `${s.detectionSec} s (a host cut off from the cluster fences itself after ${selfFenceMs(s) / 1000} s)`;
}

/** "1 host failure", "0 (admission control off)". */
export function tolerateLine(n: number): string {
  if (n === 0) return '0 (admission control off)';
  return `${n} host failure${n === 1 ? '' : 's'}`;
}

/** How each HA host state reads, and its badge's colour class. */
export const HOST_HA_STATES: Record<HostHaState, { cls: string; hint: string }> = {
  online: { cls: 'ha-online', hint: 'heartbeats arrive' },
  degraded: { cls: 'ha-degraded', hint: 'heartbeats stopped but it answers probes: not failed' },
  suspect: { cls: 'ha-suspect', hint: 'silent, within the detection time' },
  failed: { cls: 'ha-failed', hint: 'declared failed: its VMs are restarted elsewhere' },
};

/** "+1.2 s": from the detection of the failure to `iso`. */
export function sinceDetection(r: Pick<HaRecovery, 'detectedAt'>, iso: string): string {
  return `+${((Date.parse(iso) - Date.parse(r.detectedAt)) / 1000).toFixed(1)} s`;
}

/** One step of a recovery's timeline; `vm` and `state` for the steps of a VM. */
export interface RecoveryStep {
  step: 'detected' | 'fencing' | 'fenced' | 'vm' | 'host-back';
  text: string;
  vm?: string;
  state?: HaRecovery['vms'][number]['state'];
}

/**
 * The steps of a recovery in time order: "detected", "fenced +1.2 s", "db running on h1 +8.4 s",
 * "host back +40.0 s"; steps without a time (fencing under way, VMs waiting or failed) come last.
 */
export function recoverySteps(r: HaRecovery): RecoveryStep[] {
  const timed: { at: number; s: RecoveryStep }[] = [];
  const last: RecoveryStep[] = [];
  const at = (iso: string, s: RecoveryStep) =>
    timed.push({ at: Date.parse(iso), s: { ...s, text: `${s.text} ${sinceDetection(r, iso)}` } });
  if (r.fencedAt) at(r.fencedAt, { step: 'fenced', text: 'fenced' });
  else if (r.status === 'fencing')
    last.push({
      step: 'fencing',
      text: r.fenceError
        ? `fencing (attempt ${r.fenceAttempts} failed: ${r.fenceError})`
        : `fencing${r.fenceAttempts > 1 ? ` (attempt ${r.fenceAttempts})` : ''}`,
    });
  for (const v of r.vms) {
    const on = v.target ? ` on ${v.target}` : '';
    const step = { step: 'vm', vm: v.name, state: v.state } as const;
    if (v.state === 'running' && v.runningAt) at(v.runningAt, { ...step, text: `${v.name} running${on}` });
    else if ((v.state === 'restarting' || v.state === 'starting') && v.restartedAt)
      at(v.restartedAt, { ...step, text: `${v.name} ${v.state}${on}` });
    else if (v.state === 'failed')
      last.push({ ...step, text: `${v.name} failed${v.error ? `: ${v.error}` : ''}` });
    else if (v.state === 'gone') last.push({ ...step, text: `${v.name} gone (deleted meanwhile)` });
    else {
      const retry = v.attempts && v.error ? ` (attempt ${v.attempts} failed: ${v.error})` : '';
      last.push({ ...step, text: `${v.name} ${v.state}${on}${retry}` });
    }
  }
  if (r.returnedAt) at(r.returnedAt, { step: 'host-back', text: 'host back' });
  timed.sort((a, b) => a.at - b.at);
  return [{ step: 'detected', text: 'detected' }, ...timed.map((x) => x.s), ...last];
}

/** "h3 failed at 12:01:02", the head of a recovery's timeline. */
export function recoveryHead(r: HaRecovery): string {
  return `${r.host} failed at ${clock(r.detectedAt)}`;
}

/** "h3 failed at 12:01:02 — detected, fenced +1.2 s, db running on h1 +8.4 s". */
export function recoveryTimeline(r: HaRecovery): string {
  return `${recoveryHead(r)} — ${recoverySteps(r)
    .map((s) => s.text)
    .join(', ')}`;
}

/** The task type of an HA restart; its details (and result) are {from, to}. */
export const HA_RESTART = 'vm.ha-restart';

export function haRestartDetails(t: Task): { from: string; to: string } | undefined {
  if (t.type !== HA_RESTART) return undefined;
  const d = (t.result ?? t.details) as { from?: unknown; to?: unknown } | undefined;
  return typeof d?.from === 'string' && typeof d.to === 'string' ? { from: d.from, to: d.to } : undefined;
}

const TASK_LABELS: Record<string, string> = {
  [HA_RESTART]: 'HA restart',
  'ha.settings': 'HA settings',
  'vm.ha': 'HA policy',
  'vm.ha-reset': 'HA reset (VM monitoring)',
  'vm.backup': 'Backup',
  'backup.restore': 'Restore from backup',
  'backup.verify': 'Verify backups',
  'backup.gc': 'Backup garbage collection',
  'backup.job': 'Backup job',
  'backup.boot-verify': 'Boot-verify backup',
};

/** A readable name for the HA and backup task types; other types as they are. */
export function taskLabel(type: string): string {
  return TASK_LABELS[type] ?? type;
}

/** A host's watchdog on its page: what serve feeds, and whether a hung serve would reset the host now. */
export function watchdogText(w: HostNode['watchdog']): string {
  if (!w) return 'none';
  return w.armed ? `${w.device}: armed (HA VMs run here)` : `${w.device}: idle (armed while HA VMs run here)`;
}

export function watchdogTitle(w: HostNode['watchdog']): string {
  if (!w)
    return 'serve was started without --watchdog: a host whose serve hangs keeps its VMs running (only the storage blocklist stops their writes)';
  return 'serve feeds the device every second while an HA VM that its isolation response powers off or shuts down runs here; a hung serve stops feeding it and the device resets the host';
}
