/** High availability: the per-VM policy and the cluster's settings, as kept in etcd and shown by the API. */

export type HaPriority = 'high' | 'medium' | 'low';

import type { IsolationResponse } from '../../vmm/types';

export type { IsolationResponse };

/** A VM's HA policy (`ha` in its record). */
export interface HaPolicy {
  enabled: boolean;
  /** Restarted first: every VM of a higher priority runs (or 30 s pass) before the next class starts. */
  priority: HaPriority;
  /** Within a priority, lower numbers are restarted first. */
  restartOrder: number;
  /**
   * What the VM's host does with it when the host loses the cluster (no heartbeat acknowledged for the
   * detection time minus a second): `poweroff` kills QEMU at once (the default: the copy the cluster
   * restarts is then the only one), `shutdown` asks the guest to shut down (its RBD writes are fenced by
   * the blocklist meanwhile), `leave` keeps it running (storage fencing alone stops its writes).
   */
  isolationResponse: IsolationResponse;
  /**
   * VM monitoring: reset the guest when its agent, having answered, stays silent and its disks see no
   * I/O for the cluster's monitoring timeout (at most 3 resets an hour). Absent: off.
   */
  monitoring?: boolean;
}

export const DEFAULT_HA_POLICY: Readonly<HaPolicy> = Object.freeze({
  enabled: false,
  priority: 'medium',
  restartOrder: 0,
  isolationResponse: 'poweroff',
});

/** Cluster-wide HA settings (`/neuroflow/v1/ha/settings`). */
export interface HaSettings {
  /**
   * Seconds of silence (no heartbeat acknowledged, no probe answered) after which a host is declared
   * failed. Its health lease lasts this long; hosts fence themselves a second before.
   */
  detectionSec: number;
  /** Host failures the cluster should survive: GET /ha warns when the HA VMs would not fit after them. */
  tolerateHostFailures: number;
  /** VM monitoring: how long a guest's agent must be silent, with no disk I/O, before a reset. */
  monitoringTimeoutSec: number;
}

export const DEFAULT_HA_SETTINGS: Readonly<HaSettings> = Object.freeze({
  detectionSec: 10,
  tolerateHostFailures: 1,
  monitoringTimeoutSec: 60,
});

export const MONITORING_MIN_SEC = 20;
export const MONITORING_MAX_SEC = 3600;

export const DETECTION_MIN_SEC = 6;
export const DETECTION_MAX_SEC = 120;

/** How long before the leader may declare it failed a host that lost the cluster fences itself. */
export const SELF_FENCE_MARGIN_MS = 1000;

/** The self-fence window a host is told: the detection time minus the margin. */
export function selfFenceMs(s: Pick<HaSettings, 'detectionSec'>): number {
  return s.detectionSec * 1000 - SELF_FENCE_MARGIN_MS;
}

export const PRIORITY_RANK: Record<HaPriority, number> = { high: 0, medium: 1, low: 2 };
