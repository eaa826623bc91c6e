import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, type Task } from '../api';
import { useStore } from '../store';

/**
 * The audit trail: every task (who did what to which target, when, with which result), newest first.
 * Loads the last 500 from the API once; live task events from the store (SSE) are merged in.
 */
export function Events() {
  const s = useStore();
  const [base, setBase] = useState<Task[]>([]);
  const [error, setError] = useState('');
  const [text, setText] = useState('');
  const [status, setStatus] = useState('');
  useEffect(() => {
    api<Task[]>('GET', '/tasks?limit=500')
      .then(setBase)
      .catch((e) => setError((e as Error).message));
  }, []);

  const names = useMemo(() => new Map(s.vms.map((v) => [v.id, v.name])), [s.vms]);
  const target = (t: string) => {
    const [vm, snap] = t.split('@');
    const n = names.get(vm!) ?? vm;
    return snap === undefined ? n : `${n}@${snap}`;
  };
  // Every task seen while the view is open stays listed, even after it left the store's recent 100.
  const seen = useRef(new Map<string, Task>());
  const all = useMemo(() => {
    const byId = seen.current;
    for (const t of base) byId.set(t.id, { ...byId.get(t.id), ...t });
    for (const t of s.tasks) byId.set(t.id, { ...byId.get(t.id), ...t });
    return [...byId.values()].sort((a, b) => time(b) - time(a));
  }, [base, s.tasks]);
  const q = text.trim().toLowerCase();
  const rows = all.filter(
    (t) =>
      (!status || t.status === status) &&
      (!q ||
        [t.type, t.target, target(t.target), t.user ?? '', t.error?.message ?? '', t.error?.code ?? '']
          .join(' ')
          .toLowerCase()
          .includes(q)),
  );
  return (
    <div class="events">
      <div class="toolbar">
        <h2>Events</h2>
        <input
          name="filter"
          placeholder="Filter: user, action, target, error"
          value={text}
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
        />
        <select
          name="status"
          value={status}
          onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}
        >
          <option value="">All results</option>
          <option value="ok">ok</option>
          <option value="error">error</option>
          <option value="running">running</option>
        </select>
        <span class="muted count" data-count={rows.length}>
          {rows.length} of {all.length}
        </span>
      </div>
      {error && <div class="form-error">{error}</div>}
      <table class="grid events-table">
        <thead>
          <tr>
            <th>Time</th>
            <th>User</th>
            <th>Action</th>
            <th>Target</th>
            <th>Result</th>
            <th>Error</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((t) => (
            <tr key={t.id} class={`task-${t.status}`} data-type={t.type} data-status={t.status}>
              <td class="nowrap">{t.startedAt ? new Date(t.startedAt).toLocaleString() : ''}</td>
              <td class="user">{t.user ?? ''}</td>
              <td class="mono">{t.type}</td>
              <td>{target(t.target)}</td>
              <td class="result">
                {t.status === 'running' ? `running ${Math.round(t.progress * 100)}%` : t.status}
              </td>
              <td class="task-error">
                {t.error ? `${t.error.message}${t.error.code !== 'error' ? ` (${t.error.code})` : ''}` : ''}
              </td>
            </tr>
          ))}
          {rows.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                No events.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

function time(t: Task): number {
  return t.startedAt ? Date.parse(t.startedAt) : Number.POSITIVE_INFINITY;
}
