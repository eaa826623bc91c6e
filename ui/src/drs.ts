import { TOLERANCE } from '../../src/controller/drs-policy';
import type { DrsMode, DrsStatus } from './api';

export const DRS_THRESHOLDS = [1, 2, 3, 4, 5];

/** "3: moves when hosts differ by more than 20 points" (1 conservative .. 5 aggressive). */
export function thresholdLabel(n: number): string {
  const kind = n === 1 ? ' (conservative)' : n === 5 ? ' (aggressive)' : '';
  const tolerance = TOLERANCE[n];
  return `${n}${kind}${tolerance ? `: moves when hosts differ by more than ${Math.round(tolerance * 100)} points` : ''}`;
}

/** A load (0..1, above 1 when overloaded) as "45%". */
export function loadPct(x: number): string {
  return `${Math.round(x * 100)}%`;
}

export const DRS_MODES: { value: DrsMode; label: string }[] = [
  { value: 'off', label: 'off' },
  { value: 'manual', label: 'manual: recommend' },
  { value: 'automatic', label: 'automatic: move' },
];

/** One sentence on what the mode does. */
export function modeHint(mode: DrsMode): string {
  switch (mode) {
    case 'off':
      return 'Off: DRS measures the hosts but recommends and moves nothing.';
    case 'manual':
      return 'Manual: DRS recommends moves; apply them here (or with neuroflow drs apply).';
    case 'automatic':
      return 'Automatic: DRS live-migrates the VMs it recommends moving; a VM moves at most once in 30 minutes.';
  }
}

/** The hosts, busiest first (by the larger of CPU and memory load), for the load table. */
export function hostsByLoad(d: Pick<DrsStatus, 'hosts'>): DrsStatus['hosts'] {
  const key = (h: DrsStatus['hosts'][number]) => Math.max(h.cpuLoad, h.memoryLoad);
  return [...d.hosts].sort((a, b) => key(b) - key(a) || a.node.localeCompare(b.node));
}
