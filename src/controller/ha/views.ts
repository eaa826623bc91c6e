/**
 * What the API shows of HA (GET /ha, GET /vms/{id}/ha): plain types, shared with the web UI and the CLI.
 */
import type { HostHaState, Recovery } from './manager';
import type { MonitorView } from './monitor';
import type { HaPolicy, HaSettings } from './policy';

/** Whether a VM is protected by HA now, and why not. */
export interface HaProtection {
  state: 'protected' | 'unprotected' | 'disabled';
  reason?: string;
}

/** A recovery as saved and shown: times as ISO strings, plus the task of each restart. */
export interface RecoveryRecord
  extends Omit<Recovery, 'detectedAt' | 'fencedAt' | 'returnedAt' | 'endedAt' | 'vms'> {
  detectedAt: string;
  fencedAt?: string;
  returnedAt?: string;
  endedAt?: string;
  /** Seconds from detection to the last VM running again. */
  durationSec?: number;
  vms: (Omit<Recovery['vms'][number], 'restartedAt' | 'runningAt' | 'retryAt'> & {
    restartedAt?: string;
    runningAt?: string;
    taskId?: string;
  })[];
}

export interface HaStatus {
  settings: HaSettings;
  /** Each host as HA judges it (the leader's view; `online` on other controllers). */
  hosts: { name: string; state: HostHaState }[];
  /** Admission control: would the HA VMs still fit after `tolerateHostFailures` hosts fail? */
  admission: { ok: boolean; message: string };
  protectedVms: number;
  unprotectedVms: { id: string; name: string; reason: string }[];
  recoveries: RecoveryRecord[];
}

/** GET/PUT /vms/{id}/ha. */
export interface VmHaView {
  policy: HaPolicy;
  protection: HaProtection;
  /** VM monitoring's view of the guest (monitored VMs, from the leader). */
  monitoring?: MonitorView;
}
