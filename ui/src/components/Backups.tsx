import { Fragment } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, fmtBytes, type Task } from '../api';
import { JOB } from '../backup-jobs';
import {
  type Backup,
  backupTotals,
  consistencyLabel,
  consistencyTitle,
  count,
  diskModeLine,
  diskModeReason,
  lastTask,
  maintenanceLine,
  RESTORE,
  restoreName,
  restoreProblem,
  restoreResult,
  VERIFY,
} from '../backups';
import { ago, when } from '../format';
import { go } from '../route';
import { attempt, putTask, refreshAll, sinceTaskEvent, toast, useStore } from '../store';
import { ConfirmDialog } from './ConfirmDialog';
import { FormActions } from './FormActions';
import { Meter } from './Meter';

/** A running task without an event for this long is fetched instead (ms). */
const QUIET_MS = 3000;

/**
 * The store's copy of a task this page started: its events keep it current; while they stay away (the
 * event stream is down) it is fetched every 2 s.
 */
export function useTask(id: string | undefined): Task | undefined {
  const s = useStore();
  const task = id ? s.tasks.find((t) => t.id === id) : undefined;
  const running = !!id && (!task || task.status === 'running');
  useEffect(() => {
    if (!id || !running) return;
    const timer = setInterval(() => {
      if (document.hidden || sinceTaskEvent(id) < QUIET_MS) return;
      api<Task>('GET', `/tasks/${encodeURIComponent(id)}`)
        .then(putTask)
        .catch(() => {});
    }, 2000);
    return () => clearInterval(timer);
  }, [id, running]);
  return task;
}

/**
 * Calls `reload` whenever a backup, restore or other backup task ends (here or anywhere the events
 * reach), so lists of backups and repository figures follow.
 */
export function useReloadOnBackupTasks(reload: () => void, types: string[]): void {
  const s = useStore();
  const ended = s.tasks
    .filter((t) => types.includes(t.type) && t.status !== 'running')
    .map((t) => t.id)
    .join(' ');
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    reload();
  }, [ended]);
}

/**
 * Backups in a table, newest first: when the disks were captured, how consistent, the size, each disk's
 * mode (why a full one was full), data read and stored; Restore… and Delete on each.
 */
export function BackupTable({
  backups,
  showVm,
  showRepository,
  onChanged,
  empty,
}: {
  backups: Backup[];
  showVm: boolean;
  showRepository: boolean;
  onChanged: () => void;
  empty: string;
}) {
  const s = useStore();
  const [restoring, setRestoring] = useState<Backup | undefined>();
  const [remove, setRemove] = useState<{ b: Backup; error?: string; busy?: boolean } | undefined>();
  async function confirmRemove() {
    if (!remove) return;
    const { b } = remove;
    setRemove({ b, busy: true });
    try {
      await api(
        'DELETE',
        `/backups/${encodeURIComponent(b.id)}?${new URLSearchParams({ repository: b.repository })}`,
      );
      toast(`Backup of ${b.vm.name} from ${when(b.pointInTime)} deleted`, 'info');
      setRemove(undefined);
      onChanged();
    } catch (e) {
      setRemove({ b, error: (e as Error).message });
    }
  }
  async function verify(b: Backup) {
    const q = new URLSearchParams({ repository: b.repository });
    const t = await attempt(`Verify the backup of ${b.vm.name}`, () =>
      api<Task>('POST', `/backups/${encodeURIComponent(b.id)}/verify?${q}`),
    );
    if (t) putTask(t);
  }
  const cols = 7 + (showVm ? 1 : 0) + (showRepository ? 1 : 0);
  return (
    <>
      <div class="table-scroll">
        <table class="grid backups cells-top">
          <thead>
            <tr>
              {showVm && <th>VM</th>}
              <th>Point in time</th>
              <th>Consistency</th>
              <th>Size</th>
              <th>Disks</th>
              <th title="Read from the VM's disks / taken in by the repository (new chunks, compressed)">
                Read / stored
              </th>
              {showRepository && <th>Repository</th>}
              <th>Notes</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {backups.map((b) => {
              const t = backupTotals(b);
              const live = s.vms.find((v) => v.id === b.vm.id);
              const check = lastTask(s.tasks, VERIFY, b.id);
              const checked = check && maintenanceLine(check);
              return (
                <Fragment key={`${b.repository}/${b.id}`}>
                  <tr
                    class={checked ? 'has-check' : undefined}
                    data-backup={b.id}
                    data-vm={b.vm.name}
                    data-mode={b.disks.map((d) => d.mode).join(',')}
                  >
                    {showVm && (
                      <td>
                        {live ? (
                          <a href={`#/vms/${live.id}/backups`}>{live.name}</a>
                        ) : (
                          <>
                            {b.vm.name} <span class="muted">(deleted)</span>
                          </>
                        )}
                      </td>
                    )}
                    <td
                      class="nowrap"
                      title={`backup ${b.id}\nstarted ${when(b.startedAt)}, ended ${when(b.endedAt)}`}
                    >
                      {when(b.pointInTime)}
                      <div class="muted">{ago(b.pointInTime)}</div>
                    </td>
                    <td>
                      <span class={`consistency consistency-${b.consistency}`} title={consistencyTitle(b)}>
                        {consistencyLabel(b.consistency)}
                      </span>
                      {b.consistencyNote && <div class="hint">{b.consistencyNote}</div>}
                    </td>
                    <td class="nowrap">{fmtBytes(b.sizeBytes)}</td>
                    <td>
                      {b.disks.map((d) => (
                        <div
                          key={d.id}
                          class={`backup-disk mode-${d.mode}`}
                          data-disk={d.id}
                          data-mode={d.mode}
                          title={`${diskModeReason(d)}\n${count(d.chunksRead, 'chunk')} read, ${d.newChunks} new, ${d.zeroChunks} of zeros`}
                        >
                          {diskModeLine(d)}
                          {d.mode === 'full' && d.fullReason && (
                            <div class="hint full-reason">{d.fullReason}</div>
                          )}
                        </div>
                      ))}
                    </td>
                    <td class="nowrap backup-data">
                      {fmtBytes(t.read)} / {fmtBytes(t.stored)}
                    </td>
                    {showRepository && <td>{b.repository}</td>}
                    <td class="backup-notes">{b.notes ?? ''}</td>
                    <td class="row-actions nowrap">
                      <button type="button" data-action="restore-backup" onClick={() => setRestoring(b)}>
                        Restore…
                      </button>{' '}
                      <button
                        type="button"
                        data-action="verify-backup"
                        disabled={check?.status === 'running'}
                        title="Re-read and re-hash every chunk the backup needs"
                        onClick={() => verify(b)}
                      >
                        Verify
                      </button>{' '}
                      <button
                        type="button"
                        class="danger"
                        data-action="delete-backup"
                        onClick={() => setRemove({ b })}
                      >
                        Delete
                      </button>
                    </td>
                  </tr>
                  {checked && (
                    <tr class="check-row" data-check-for={b.id}>
                      <td colSpan={cols}>
                        <div
                          class={`backup-check ${checked.bad ? 'reason' : 'muted'}`}
                          data-testid="backup-check"
                          data-status={check.status}
                          role={checked.bad ? 'alert' : undefined}
                        >
                          {checked.text}
                        </div>
                      </td>
                    </tr>
                  )}
                </Fragment>
              );
            })}
            {backups.length === 0 && (
              <tr>
                <td colSpan={cols} class="muted">
                  {empty}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {restoring && <RestoreDialog backup={restoring} onClose={() => setRestoring(undefined)} />}
      {remove && (
        <ConfirmDialog
          title={`Delete the backup of ${remove.b.vm.name} from ${when(remove.b.pointInTime)}?`}
          confirm="Delete"
          onConfirm={confirmRemove}
          onCancel={() => setRemove(undefined)}
          error={remove.error}
          busy={remove.busy}
        >
          The backup goes from repository {remove.b.repository}; it cannot be restored after. Other backups of{' '}
          {remove.b.vm.name} stay restorable: the chunks they share with it stay.
        </ConfirmDialog>
      )}
    </>
  );
}

/**
 * Restore a backup into a new VM (new id and MAC addresses): its name (a free one suggested), the pool
 * its disks go into (default: where they were). The restore runs as a task, its progress here and in
 * Recent tasks; the new VM opens when it is done.
 */
export function RestoreDialog({ backup, onClose }: { backup: Backup; onClose: () => void }) {
  const s = useStore();
  const [name, setName] = useState(() =>
    restoreName(
      backup.vm.name,
      s.vms.map((v) => v.name),
    ),
  );
  const [pool, setPool] = useState('');
  const [pools, setPools] = useState<string[]>([]);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [taskId, setTaskId] = useState<string | undefined>();
  const task = useTask(taskId);
  const result = task && restoreResult(task);
  useEffect(() => {
    api<{ name: string }[]>('GET', '/pools')
      .then((all) => setPools(all.map((p) => p.name)))
      .catch(() => {});
  }, []);

  // done: open the new VM
  const opened = useRef(false);
  useEffect(() => {
    if (task?.status !== 'ok' || !result || opened.current) return;
    opened.current = true;
    toast(`Backup of ${backup.vm.name} restored as VM ${result.vm}`, 'info');
    refreshAll()
      .catch(() => {})
      .then(() => {
        onClose();
        go(`/vms/${result.id}`);
      });
  }, [task?.status, result?.id]);

  const problem = restoreProblem(name);
  async function submit(e: Event) {
    e.preventDefault();
    if (problem || (taskId && task?.status !== 'error')) return;
    setBusy(true);
    setError('');
    try {
      const body: Record<string, string> = { name, repository: backup.repository };
      if (pool) body.pool = pool;
      const t = await api<Task>('POST', `/backups/${encodeURIComponent(backup.id)}/restore`, body);
      putTask(t);
      setTaskId(t.id);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  const running = !!taskId && task?.status !== 'ok' && task?.status !== 'error';
  // the inputs are locked while the restore runs and once it is done; a failed one can be tried again
  const locked = running || task?.status === 'ok';
  const title = `Restore ${backup.vm.name} from ${when(backup.pointInTime)}`;
  return (
    <div class="modal-backdrop">
      <form
        class="modal restore-dialog"
        role="dialog"
        aria-label={title}
        data-backup={backup.id}
        data-status={task?.status}
        noValidate
        onSubmit={submit}
      >
        <h3>{title}</h3>
        <div class="modal-body form">
          <dl class="restore-source">
            <dt>Backup</dt>
            <dd>
              <span class="mono">{backup.id}</span> in {backup.repository}
            </dd>
            <dt>Hardware</dt>
            <dd>
              {backup.config.vcpus} vCPU, {backup.config.memoryMiB} MiB, {backup.disks.length} disk
              {backup.disks.length === 1 ? '' : 's'} ({fmtBytes(backup.sizeBytes)})
            </dd>
            <dt>Consistency</dt>
            <dd title={consistencyTitle(backup)}>{consistencyLabel(backup.consistency)}</dd>
          </dl>
          <label>
            Name of the new VM
            <input
              name="name"
              value={name}
              disabled={locked}
              onInput={(e) => setName((e.target as HTMLInputElement).value)}
            />
          </label>
          <label>
            Storage pool
            <select
              name="pool"
              value={pool}
              disabled={locked}
              onChange={(e) => setPool((e.target as HTMLSelectElement).value)}
            >
              <option value="">as backed up (each disk to its own pool)</option>
              {pools.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          </label>
          <p class="hint">
            A new VM with a new id and new MAC addresses, stopped; the VM {backup.vm.name} is not touched.
          </p>
          {taskId && (
            <div class="restore-progress" data-testid="restore-progress">
              {running && (
                <>
                  Restoring
                  {typeof task?.details?.disk === 'string' ? ` ${task.details.disk}` : ''}…
                  <Meter value={task?.progress ?? 0} warn={2} />
                  <p class="hint">You can close this: the restore goes on in Recent tasks.</p>
                </>
              )}
              {task?.status === 'ok' && <p>Restored; opening {result?.vm ?? 'the VM'}…</p>}
            </div>
          )}
          {!locked && name && problem && (
            <div class="form-error" role="alert">
              {problem}
            </div>
          )}
          {task?.error && (
            <div class="form-error" role="alert">
              {task.error.message}
            </div>
          )}
        </div>
        {locked ? (
          <div class="modal-actions">
            <button type="button" onClick={onClose}>
              Close
            </button>
          </div>
        ) : (
          <FormActions
            error={error}
            busy={busy}
            label="Restore"
            busyLabel="Starting…"
            onCancel={onClose}
            disabled={!!problem}
            testId="restore-submit"
          />
        )}
      </form>
    </div>
  );
}

/** The types of the tasks that change what lists of backups show. */
export const BACKUP_TASK_TYPES = ['vm.backup', RESTORE, VERIFY, 'backup.gc', JOB];
