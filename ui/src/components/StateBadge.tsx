import type { VmState } from '../api';

const ICON: Record<VmState, string> = {
  running: '▶',
  stopped: '■',
  starting: '◔',
  stopping: '◕',
  paused: '❚❚',
  error: '!',
};

export function StateIcon({ state }: { state: VmState }) {
  return (
    <span class={`state-icon st-${state}`} title={state}>
      {ICON[state] ?? '?'}
    </span>
  );
}

export function StateBadge({ state }: { state: VmState }) {
  return <span class={`state-badge st-${state}`}>{state}</span>;
}
