import { useEffect, useState } from 'preact/hooks';
import { api, type ClusterInfo, type HostNode, setUnauthenticatedHandler, type Task, type Vm } from './api';

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  text: string;
}

export interface State {
  user?: string;
  checked: boolean;
  vms: Vm[];
  tasks: Task[];
  nodes: HostNode[];
  /** GET /cluster (name, mode, leader, policy); loaded at login and by the cluster page. */
  cluster?: ClusterInfo;
  toasts: Toast[];
  live: boolean;
}

let state: State = { checked: false, vms: [], tasks: [], nodes: [], toasts: [], live: false };
const listeners = new Set<() => void>();

export function getState(): State {
  return state;
}

export function setState(patch: Partial<State>): void {
  state = { ...state, ...patch };
  for (const l of listeners) l();
}

/** Re-renders the calling component whenever the store changes. */
export function useStore(): State {
  const [, tick] = useState(0);
  useEffect(() => {
    const l = () => tick((n) => n + 1);
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
  return state;
}

/** POST /tasks/{id}/cancel (a running migration or evacuation); the answer replaces the task's copy. */
export async function cancelTask(id: string, what: string): Promise<void> {
  const r = await attempt(`Cancel ${what}`, () =>
    api<Task>('POST', `/tasks/${encodeURIComponent(id)}/cancel`),
  );
  if (r) putTask(r);
}

let toastSeq = 0;
export function toast(text: string, kind: Toast['kind'] = 'error'): void {
  const t = { id: ++toastSeq, kind, text };
  setState({ toasts: [...state.toasts, t] });
  setTimeout(() => dismissToast(t.id), kind === 'error' ? 10_000 : 4_000);
}

export function dismissToast(id: number): void {
  setState({ toasts: state.toasts.filter((t) => t.id !== id) });
}

/** Runs an API call; a failure becomes a visible toast with the API's message. Returns undefined then. */
export async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    toast(`${what}: ${(e as Error).message}`);
    return undefined;
  }
}

/**
 * Keeps the old object of every VM whose JSON did not change, so memoised rows (VM list, tree) skip
 * re-rendering: with 1,000 VMs a refresh re-renders only the VMs that changed.
 */
function shareVms(next: Vm[]): Vm[] {
  const old = new Map(state.vms.map((v) => [v.id, v]));
  let same = next.length === state.vms.length;
  const out = next.map((v, i) => {
    const o = old.get(v.id);
    if (o && JSON.stringify(o) === JSON.stringify(v)) {
      if (state.vms[i] !== o) same = false;
      return o;
    }
    same = false;
    return v;
  });
  return same ? state.vms : out;
}

export async function refreshVms(): Promise<void> {
  setState({ vms: shareVms(await api<Vm[]>('GET', '/vms')) });
}

export async function refreshNodes(): Promise<void> {
  setState({ nodes: await api<HostNode[]>('GET', '/nodes') });
}

export async function refreshCluster(): Promise<ClusterInfo> {
  const cluster = await api<ClusterInfo>('GET', '/cluster');
  setState({ cluster });
  return cluster;
}

export async function refreshAll(): Promise<void> {
  const [vms, tasks, nodes] = await Promise.all([
    api<Vm[]>('GET', '/vms'),
    api<Task[]>('GET', '/tasks?limit=50'),
    api<HostNode[]>('GET', '/nodes'),
  ]);
  setState({ vms: shareVms(vms), tasks, nodes });
}

/**
 * A task fetched or returned by the API: replaces its older copy in place (a new one goes on top). A late
 * answer saying "running" does not undo a task the live events already ended.
 */
export function putTask(t: Task): void {
  const i = state.tasks.findIndex((x) => x.id === t.id);
  if (i < 0) {
    setState({ tasks: [t, ...state.tasks].slice(0, 100) });
    return;
  }
  const old = state.tasks[i]!;
  if (old.status !== 'running' && t.status === 'running') return;
  const tasks = state.tasks.slice();
  tasks[i] = { ...old, ...t };
  setState({ tasks });
}

let source: EventSource | undefined;
let refreshTimer: ReturnType<typeof setTimeout> | undefined;
let pollTimer: ReturnType<typeof setInterval> | undefined;

const hostStates = (nodes: HostNode[]) => nodes.map((n) => `${n.name}:${n.state}`).join(' ');

/**
 * Host health, heartbeats and placements have no events: every 5 s the hosts are fetched again, and
 * the VMs too while some are pending or unknown, or when a host changed state (its VMs go unknown).
 */
async function poll(): Promise<void> {
  if (document.hidden || !state.user) return;
  const before = hostStates(state.nodes);
  await refreshNodes();
  if (
    before !== hostStates(state.nodes) ||
    state.vms.some((v) => v.state === 'pending' || v.state === 'unknown')
  )
    await refreshVms();
}

function refreshSoon(): void {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refreshAll().catch(() => {}), 300);
}

/** Subscribes to GET /api/v1/events; vm and task events patch the store, then a debounced refresh. */
export function startLive(): void {
  source?.close();
  clearInterval(pollTimer);
  pollTimer = setInterval(() => poll().catch(() => {}), 5000);
  source = new EventSource('/api/v1/events');
  source.addEventListener('open', () => setState({ live: true }));
  source.addEventListener('error', () => setState({ live: false }));
  source.addEventListener('hello', () => refreshSoon());
  source.addEventListener('vm', (ev) => {
    // The event carries the agent's status only (a string); patch only the VM that changed.
    const e = JSON.parse((ev as MessageEvent).data) as {
      id: string;
      state?: Vm['state'];
      reason?: string;
      agent?: string;
    };
    const i = state.vms.findIndex((v) => v.id === e.id);
    if (i >= 0) {
      const v = state.vms[i]!;
      const vms = state.vms.slice();
      vms[i] = {
        ...v,
        state: e.state ?? v.state,
        reason: e.reason,
        agent: e.agent ? { ...v.agent, status: e.agent } : v.agent,
      };
      setState({ vms });
    }
    refreshSoon();
  });
  source.addEventListener('task', (ev) => {
    const t = applyTaskEvent(JSON.parse((ev as MessageEvent).data) as TaskEvent);
    if (t.status !== 'running') refreshSoon();
  });
}

/** A `task` event as src/serve.ts publishes it: the type as taskType, the error as its message. */
export type TaskEvent = Omit<Task, 'error'> & { taskType?: string; error?: string | Task['error'] };

/**
 * When the last task event of each running task arrived (Date.now()). Only tasks run by this controller
 * have events; a running task without one lately is run elsewhere (a DRS move on the leader) or stalled.
 */
const taskEventAt = new Map<string, number>();

/** Milliseconds since the last event of the task; Infinity when none came (or it has ended). */
export function sinceTaskEvent(id: string, now = Date.now()): number {
  const at = taskEventAt.get(id);
  return at === undefined ? Number.POSITIVE_INFINITY : now - at;
}

/** Merges a task event into the store (the task goes on top) and notes when it came; returns the task. */
export function applyTaskEvent(e: TaskEvent, now = Date.now()): Task {
  const error = typeof e.error === 'string' ? { code: 'error', message: e.error } : e.error;
  const t: Task = { ...e, type: e.taskType ?? e.type, error };
  if (t.status !== 'running' && !t.endedAt) t.endedAt = new Date(now).toISOString();
  if (t.status === 'running') taskEventAt.set(t.id, now);
  else taskEventAt.delete(t.id);
  const old = state.tasks.find((x) => x.id === t.id);
  const merged = old ? { ...old, ...t } : { ...t, startedAt: new Date(now).toISOString() };
  setState({ tasks: [merged, ...state.tasks.filter((x) => x.id !== t.id)].slice(0, 100) });
  return merged;
}

export function stopLive(): void {
  clearInterval(pollTimer);
  source?.close();
  source = undefined;
  setState({ live: false });
}

setUnauthenticatedHandler(() => {
  if (!state.user) return;
  stopLive();
  setState({ user: undefined, vms: [], tasks: [], nodes: [], cluster: undefined });
  toast('Session expired: log in again');
});
