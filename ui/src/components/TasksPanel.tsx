import { useEffect, useState } from 'preact/hooks';
import { api, type Task } from '../api';
import { jobRunDetails, jobRunOutcome, jobRunProgress, jobRunResult } from '../backup-jobs';
import {
  backupDetails,
  backupOutcome,
  backupProgress,
  backupResult,
  bootVerifyDetails,
  bootVerifyLine,
  bootVerifyProgress,
  bootVerifyResult,
  GC,
  maintenanceLine,
  restoreNote,
  restoreResult,
  VERIFY,
} from '../backups';
import { haRestartDetails, taskLabel } from '../ha';
import { importDetails, importProgress, importResult } from '../imports';
import {
  EVACUATE,
  evacuationDetails,
  evacuationOutcome,
  evacuationProgress,
  evacuationResult,
  MIGRATE,
  migrationDetails,
  migrationOutcome,
  migrationProgress,
  migrationResult,
} from '../migration';
import { cancelTask, putTask, sinceTaskEvent, useStore } from '../store';

/** A running task without an event for this long is fetched instead (ms). */
const QUIET_MS = 3000;

/**
 * Task events carry the details and result of the tasks this controller runs; a running migration or
 * evacuation run by another controller (a DRS move on the leader) has none here: fetch such a task
 * every second, while the tab is visible, as long as no event for it came in the last 3 s.
 */
function useMigrationFigures(tasks: Task[]): void {
  const ids = tasks
    .filter((t) => (t.type === MIGRATE || t.type === EVACUATE) && t.status === 'running')
    .map((t) => t.id)
    .join(' ');
  useEffect(() => {
    if (!ids) return;
    const timer = setInterval(() => {
      if (document.hidden) return;
      const now = Date.now();
      for (const id of ids.split(' '))
        if (sinceTaskEvent(id, now) >= QUIET_MS)
          api<Task>('GET', `/tasks/${encodeURIComponent(id)}`)
            .then(putTask)
            .catch(() => {});
    }, 1000);
    return () => clearInterval(timer);
  }, [ids]);
}

export function TasksPanel() {
  const s = useStore();
  const [open, setOpen] = useState(true);
  useMigrationFigures(s.tasks);
  // Targets are VM ids or names, snapshots "<vm>@<snapshot>", clones "<vm>-><new name>".
  const name = (target: string) => {
    const [from, to] = target.split('->');
    const [vm, snap] = from!.split('@');
    const n = s.vms.find((v) => v.id === vm)?.name ?? vm;
    return `${snap === undefined ? n : `${n}@${snap}`}${to === undefined ? '' : `->${to}`}`;
  };
  const cancel = (t: Task) => cancelTask(t.id, `${t.type} of ${name(t.target)}`);
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
              {s.tasks.slice(0, 30).map((t) => {
                const running = t.status === 'running';
                const d = migrationDetails(t);
                const r = migrationResult(t);
                const ha = haRestartDetails(t);
                const to = r?.target ?? d?.target ?? ha?.to;
                const ev = evacuationDetails(t);
                const evr = evacuationResult(t);
                const imp = importDetails(t);
                const impr = importResult(t);
                const bk = backupDetails(t);
                const bkr = backupResult(t);
                const rst = restoreResult(t);
                const boot = bootVerifyDetails(t);
                // a failed verification says why in its error already
                const bootr = t.status === 'ok' ? bootVerifyResult(t) : undefined;
                const job = jobRunDetails(t);
                const jobr = jobRunResult(t);
                const upkeep = !running && t.status === 'ok' && (t.type === VERIFY || t.type === GC);
                return (
                  <tr
                    key={t.id}
                    class={`task-${t.status}`}
                    data-testid="task-row"
                    data-task-type={t.type}
                    data-task-id={t.id}
                  >
                    <td>{taskLabel(t.type)}</td>
                    <td>
                      {name(t.target)}
                      {to ? ` → ${to}` : ''}
                    </td>
                    <td>{running ? `running ${Math.round(t.progress * 100)}%` : t.status}</td>
                    <td>{t.startedAt ? new Date(t.startedAt).toLocaleTimeString() : ''}</td>
                    <td class="task-details">
                      {t.error && <span class="task-error">{t.error.message}</span>}
                      {ha && (
                        <span class="task-ha" data-testid="task-ha">
                          from failed host {ha.from} → {ha.to}
                        </span>
                      )}
                      {t.type === 'vm.ha-reset' && typeof t.details?.why === 'string' && (
                        <span class="task-ha">{t.details.why}</span>
                      )}
                      {running && d && (
                        <span class="task-migration" data-testid="task-progress" data-phase={d.phase}>
                          {migrationProgress(d)}
                        </span>
                      )}
                      {!running && r && (
                        <span class="task-migration" data-testid="task-result">
                          {migrationOutcome(r)}
                        </span>
                      )}
                      {running && ev && (
                        <span class="task-evacuation" data-testid="task-progress" data-phase={ev.phase}>
                          {evacuationProgress(ev)}
                        </span>
                      )}
                      {running && ev && ev.stayed?.length > 0 && (
                        <span class="task-stayed" data-testid="task-stayed">
                          stayed:{' '}
                          {ev.stayed.map((x, i) => (
                            <span key={x.vm} data-vm={x.vm}>
                              {i > 0 && '; '}
                              <b>{x.vm}</b> ({x.reason})
                            </span>
                          ))}
                        </span>
                      )}
                      {!running && evr && (
                        <span class="task-evacuation" data-testid="task-result">
                          {evacuationOutcome(evr)}
                        </span>
                      )}
                      {running && imp && (
                        <span class="task-import" data-testid="task-progress">
                          {importProgress(imp)}
                        </span>
                      )}
                      {!running && impr && (
                        <span class="task-import" data-testid="task-result">
                          VM <a href={`#/vms/${impr.vm}`}>{impr.name}</a>
                        </span>
                      )}
                      {running && bk && (
                        <span class="task-backup" data-testid="task-progress" data-phase={bk.phase}>
                          {backupProgress(bk)}
                        </span>
                      )}
                      {!running && bkr && (
                        <span class="task-backup" data-testid="task-result">
                          {backupOutcome(bkr)}
                        </span>
                      )}
                      {!running && rst && (
                        <span class="task-restore" data-testid="task-result">
                          VM <a href={`#/vms/${rst.id}`}>{rst.vm}</a>
                          {restoreNote(rst)}
                        </span>
                      )}
                      {running && boot && (
                        <span class="task-backup" data-testid="task-progress" data-phase={boot.phase}>
                          {bootVerifyProgress(boot)}
                        </span>
                      )}
                      {!running && bootr && (
                        <span class="task-backup" data-testid="task-result">
                          {bootVerifyLine(bootr)}
                        </span>
                      )}
                      {running && job && (
                        <span class="task-backup" data-testid="task-progress" data-phase={job.phase}>
                          {jobRunProgress(job)}
                        </span>
                      )}
                      {!running && jobr && (
                        <span class="task-backup" data-testid="task-result">
                          {jobRunOutcome(jobr)}
                        </span>
                      )}
                      {upkeep && (
                        <span class="task-backup" data-testid="task-result">
                          {maintenanceLine(t).text}
                        </span>
                      )}
                      {running && t.cancelRequested && <span class="task-cancelling">cancelling…</span>}
                      {running && t.cancellable && !t.cancelRequested && (
                        <button
                          type="button"
                          class="link task-cancel"
                          data-testid="task-cancel"
                          onClick={() => cancel(t)}
                        >
                          Cancel
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
