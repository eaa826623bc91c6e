import type { HostState, VmState } from '../api';

const ICON: Record<VmState, string> = {
  pending: '◌',
  running: '▶',
  stopped: '■',
  starting: '◔',
  stopping: '◕',
  paused: '❚❚',
  error: '!',
  unknown: '?',
};

export function StateIcon({ state, title }: { state: VmState; title?: string }) {
  return (
    <span class={`state-icon st-${state}`} title={title ?? state}>
      {ICON[state] ?? '?'}
    </span>
  );
}

/** A VM's state; pending and unknown carry their reason as a tooltip. */
export function StateBadge({ state, reason }: { state: VmState; reason?: string }) {
  return (
    <span class={`state-badge st-${state}`} title={reason}>
      {state}
    </span>
  );
}

const HOST_ICON: Record<HostState, string> = { ready: '●', maintenance: '◐', 'not-ready': '✕' };

export function HostIcon({ state }: { state: HostState }) {
  return (
    <span class={`state-icon hs-${state}`} title={state}>
      {HOST_ICON[state] ?? '?'}
    </span>
  );
}

export function HostBadge({ state }: { state: HostState }) {
  return <span class={`state-badge hs-${state}`}>{state}</span>;
}

/** The leader of the controllers (scheduler, reconciler). */
export function LeaderMark() {
  return (
    <span class="leader-mark" title="leader (schedules VMs, runs the reconciler)">
      ★
    </span>
  );
}
