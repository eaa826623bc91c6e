import { useState } from 'preact/hooks';
import { useStore } from '../store';

export function TasksPanel() {
  const s = useStore();
  const [open, setOpen] = useState(true);
  // Targets are VM ids or names, snapshots "<vm>@<snapshot>".
  const name = (target: string) => {
    const [vm, snap] = target.split('@');
    const n = s.vms.find((v) => v.id === vm)?.name ?? vm;
    return snap === undefined ? n : `${n}@${snap}`;
  };
  return (
    <section class={`tasks ${open ? 'open' : ''}`}>
      <button type="button" class="tasks-head" onClick={() => setOpen(!open)}>
        Recent tasks {open ? '▾' : '▴'}
      </button>
      {open && (
        <div class="tasks-body">
          <table>
            <thead>
              <tr>
                <th>Task</th>
                <th>Target</th>
                <th>Status</th>
                <th>Started</th>
                <th>Details</th>
              </tr>
            </thead>
            <tbody>
              {s.tasks.slice(0, 30).map((t) => (
                <tr key={t.id} class={`task-${t.status}`}>
                  <td>{t.type}</td>
                  <td>{name(t.target)}</td>
                  <td>{t.status === 'running' ? `running ${Math.round(t.progress * 100)}%` : t.status}</td>
                  <td>{t.startedAt ? new Date(t.startedAt).toLocaleTimeString() : ''}</td>
                  <td class="task-error">{t.error?.message ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
