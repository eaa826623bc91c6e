import { Fragment } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, fmtBytes, type Task } from '../api';
import { JOB } from '../backup-jobs';
import {
  type Backup,
  BOOT_TIMEOUT,
  BOOT_VERIFY,
  type BootVerify,
  backupTask,
  backupTotals,
  bootTimeoutProblem,
  bootVerifyBody,
  bootVerifyDetails,
  bootVerifyLine,
  bootVerifyProgress,
  bootVerifyResult,
  bootVerifyTitle,
  consistencyLabel,
  consistencyTitle,
  count,
  diskModeLine,
  diskModeReason,
  inPlacePlan,
  maintenanceLine,
  RESTORE,
  type RestoreForm,
  restoreBody,
  restoreFormProblem,
  restoreName,
  restoreResult,
  restoreToast,
  VERIFY,
} from '../backups';
import { ago, when } from '../format';
import { go } from '../route';
import { attempt, putTask, refreshAll, sinceTaskEvent, toast, useStore } from '../store';
import { BackupFilesDialog } from './BackupFiles';
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
 * mode (why a full one was full), data read and stored, the last boot verification (or the one running);
 * Restore…, Files… (file restore), Verify, Boot-verify… and Delete on each.
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
  const [booting, setBooting] = useState<Backup | undefined>();
  const [browsing, setBrowsing] = useState<Backup | undefined>();
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
  const cols = 8 + (showVm ? 1 : 0) + (showRepository ? 1 : 0);
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
              <th title="The last boot verification: restored into an isolated VM, started, passed when its guest agent answered">
                Boots
              </th>
              <th>Notes</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {backups.map((b) => {
              const t = backupTotals(b);
              const live = s.vms.find((v) => v.id === b.vm.id);
              const check = backupTask(s.tasks, VERIFY, b);
              const checked = check && maintenanceLine(check);
              const bootTask = backupTask(s.tasks, BOOT_VERIFY, b);
              const bootRunning = bootTask?.status === 'running';
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
                    <td class="boot-verify-cell">
                      <BootVerifyCell backup={b} task={bootTask} />
                    </td>
                    <td class="backup-notes">{b.notes ?? ''}</td>
                    <td class="row-actions">
                      <div class="backup-actions">
                        <button type="button" data-action="restore-backup" onClick={() => setRestoring(b)}>
                          Restore…
                        </button>
                        <button
                          type="button"
                          data-action="backup-files"
                          title="Browse the backup's file systems and download single files (read from the repository; nothing is restored)"
                          onClick={() => setBrowsing(b)}
                        >
                          Files…
                        </button>
                        <button
                          type="button"
                          data-action="verify-backup"
                          disabled={check?.status === 'running'}
                          title="Re-read and re-hash every chunk the backup needs"
                          onClick={() => verify(b)}
                        >
                          Verify
                        </button>
                        <button
                          type="button"
                          data-action="boot-verify-backup"
                          disabled={bootRunning}
                          title="Restore it into an isolated VM (no network), start it and wait for its guest agent; the VM is deleted afterwards"
                          onClick={() => setBooting(b)}
                        >
                          Boot-verify…
                        </button>
                        <button
                          type="button"
                          class="danger"
                          data-action="delete-backup"
                          onClick={() => setRemove({ b })}
                        >
                          Delete
                        </button>
                      </div>
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
      {booting && <BootVerifyDialog backup={booting} onClose={() => setBooting(undefined)} />}
      {browsing && <BackupFilesDialog backup={browsing} onClose={() => setBrowsing(undefined)} />}
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
 * A backup's boot verification in its row: the one running (its phase), else the newest outcome (the
 * backup's own, or that of a task that ended after it was listed): passed with when the guest agent
 * answered, or failed with the reason.
 */
function BootVerifyCell({ backup, task }: { backup: Backup; task: Task | undefined }) {
  if (task?.status === 'running') {
    const d = bootVerifyDetails(task) ?? {};
    return (
      <div class="boot-verify" data-testid="boot-verify" data-status="running" data-phase={d.phase ?? ''}>
        {bootVerifyProgress(d)}
        <Meter value={task.progress} warn={2} />
      </div>
    );
  }
  const ended = task && bootVerifyResult(task);
  const last: BootVerify | undefined =
    ended && (!backup.bootVerify || ended.at > backup.bootVerify.at) ? ended : backup.bootVerify;
  if (!last)
    return (
      <span class="muted" data-testid="boot-verify" data-status="never">
        not verified
      </span>
    );
  return (
    <div
      class={`boot-verify ${last.passed ? 'boot-passed' : 'boot-failed reason'}`}
      data-testid="boot-verify"
      data-status={last.passed ? 'passed' : 'failed'}
      title={bootVerifyTitle(last, when(last.at))}
    >
      <span class="boot-verify-line">{bootVerifyLine(last)}</span>
      <div class="muted">{ago(last.at)}</div>
    </div>
  );
}

/**
 * Boot-verify a backup: how long its guest agent has to answer (the API's default when empty); the
 * verification runs as a task (its phase in the row and in Recent tasks).
 */
function BootVerifyDialog({ backup, onClose }: { backup: Backup; onClose: () => void }) {
  const [timeout, setTimeout_] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const problem = bootTimeoutProblem(timeout);
  async function submit(e: Event) {
    e.preventDefault();
    if (problem) return;
    setBusy(true);
    setError('');
    try {
      const t = await api<Task>(
        'POST',
        `/backups/${encodeURIComponent(backup.id)}/boot-verify`,
        bootVerifyBody(backup.repository, timeout),
      );
      putTask(t);
      onClose();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  const title = `Boot-verify the backup of ${backup.vm.name} from ${when(backup.pointInTime)}`;
  return (
    <div class="modal-backdrop">
      <form
        class="modal boot-verify-dialog"
        role="dialog"
        aria-label={title}
        data-backup={backup.id}
        noValidate
        onSubmit={submit}
      >
        <h3>{title}</h3>
        <div class="modal-body form">
          <p>
            The backup is restored into a VM of its own ({backup.config.vcpus} vCPU, {backup.config.memoryMiB}{' '}
            MiB, {fmtBytes(backup.sizeBytes)} of disks) with no network, which is started; it passes when its
            guest agent answers. The VM is deleted afterwards, whatever happened; {backup.vm.name} is not
            touched.
          </p>
          <label>
            Time for the guest agent to answer (seconds)
            <input
              name="timeoutSec"
              inputMode="numeric"
              class={problem ? 'invalid' : ''}
              value={timeout}
              placeholder={String(BOOT_TIMEOUT.default)}
              onInput={(e) => setTimeout_((e.target as HTMLInputElement).value)}
            />
            {problem ? (
              <span class="field-error">{problem}</span>
            ) : (
              <span class="hint">
                After the start; empty: {BOOT_TIMEOUT.default}. A guest without an agent cannot pass.
              </span>
            )}
          </label>
        </div>
        <FormActions
          error={error}
          busy={busy}
          label="Boot-verify"
          busyLabel="Starting…"
          onCancel={onClose}
          disabled={!!problem}
          testId="boot-verify-submit"
        />
      </form>
    </div>
  );
}

/**
 * Restore a backup: into a new VM (new id and MAC addresses; its name, a free one suggested; the pool its
 * disks go into, default where they were; started once restored if asked), or in place over the VM it is
 * of, which must be stopped (its disks in the backup are replaced, its snapshots dropped; confirmed). The
 * restore runs as a task, its progress here and in Recent tasks; the VM opens when it is done.
 */
export function RestoreDialog({ backup, onClose }: { backup: Backup; onClose: () => void }) {
  const s = useStore();
  const source = s.vms.find((v) => v.id === backup.vm.id);
  const [f, setF] = useState<RestoreForm>(() => ({
    target: 'new',
    name: restoreName(
      backup.vm.name,
      s.vms.map((v) => v.name),
    ),
    pool: '',
    start: false,
    confirmed: false,
  }));
  const [pools, setPools] = useState<string[]>([]);
  const [error, setError] = useState('');
  const set = (patch: Partial<RestoreForm>) => {
    setF({ ...f, ...patch });
    setError('');
  };
  const [busy, setBusy] = useState(false);
  const [taskId, setTaskId] = useState<string | undefined>();
  const task = useTask(taskId);
  const result = task && restoreResult(task);
  useEffect(() => {
    api<{ name: string }[]>('GET', '/pools')
      .then((all) => setPools(all.map((p) => p.name)))
      .catch(() => {});
  }, []);

  // done: open the VM (the new one, or the one restored in place)
  const opened = useRef(false);
  useEffect(() => {
    if (task?.status !== 'ok' || !result || opened.current) return;
    opened.current = true;
    const told = restoreToast(backup.vm.name, result);
    toast(told.text, told.error ? 'error' : 'info');
    refreshAll()
      .catch(() => {})
      .then(() => {
        onClose();
        go(`/vms/${result.id}`);
      });
  }, [task?.status, result?.id]);

  const inPlace = f.target === 'in-place';
  const vmName = source?.name ?? backup.vm.name;
  const plan = inPlacePlan(backup, source);
  const problem = restoreFormProblem(f, source);
  async function submit(e: Event) {
    e.preventDefault();
    if (problem || (taskId && task?.status !== 'error')) return;
    setBusy(true);
    setError('');
    try {
      const t = await api<Task>(
        'POST',
        `/backups/${encodeURIComponent(backup.id)}/restore`,
        restoreBody(f, backup.repository),
      );
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
  const disk = typeof task?.details?.disk === 'string' ? ` ${task.details.disk}` : '';
  return (
    <div class="modal-backdrop">
      <form
        class="modal restore-dialog"
        role="dialog"
        aria-label={title}
        data-backup={backup.id}
        data-status={task?.status}
        data-target={f.target}
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
          <fieldset class="restore-target" disabled={locked}>
            <label class="check">
              <input
                type="radio"
                name="target"
                value="new"
                checked={!inPlace}
                onChange={() => set({ target: 'new' })}
              />{' '}
              As a new VM
            </label>
            {!inPlace && (
              <div class="restore-target-body">
                <label>
                  Name of the new VM
                  <input
                    name="name"
                    value={f.name}
                    onInput={(e) => set({ name: (e.target as HTMLInputElement).value })}
                  />
                </label>
                <label>
                  Storage pool
                  <select
                    name="pool"
                    value={f.pool}
                    onChange={(e) => set({ pool: (e.target as HTMLSelectElement).value })}
                  >
                    <option value="">as backed up (each disk to its own pool)</option>
                    {pools.map((p) => (
                      <option key={p} value={p}>
                        {p}
                      </option>
                    ))}
                  </select>
                </label>
                <label class="check">
                  <input
                    type="checkbox"
                    name="start"
                    checked={f.start}
                    onChange={(e) => set({ start: (e.target as HTMLInputElement).checked })}
                  />{' '}
                  Start it once restored
                </label>
                <p class="hint">
                  A new VM with a new id and new MAC addresses,{' '}
                  {f.start ? 'started once restored' : 'stopped'}; the VM {vmName} is not touched.
                </p>
              </div>
            )}
            <label class="check" title={source ? undefined : `VM ${backup.vm.name} no longer exists`}>
              <input
                type="radio"
                name="target"
                value="in-place"
                checked={inPlace}
                disabled={!source}
                onChange={() => set({ target: 'in-place' })}
              />{' '}
              <span>
                Over VM {vmName} (it must be stopped; its disks are replaced and its snapshots are dropped)
                {!source && <span class="muted"> — deleted since</span>}
              </span>
            </label>
            {inPlace && source && (
              <div class="restore-target-body in-place-plan" data-testid="in-place-plan">
                {plan.state ? (
                  <p class="field-error in-place-state" data-state={source.state}>
                    {plan.state}
                  </p>
                ) : (
                  <p class="hint in-place-state" data-state={source.state}>
                    VM {vmName} is stopped.
                  </p>
                )}
                <p class="hint">
                  {plan.replaced.length > 0
                    ? `Replaced by the backup's: ${plan.replaced.join(', ')}.`
                    : "It has none of the backup's disks now: nothing to restore in place."}
                  {plan.skipped.length > 0 &&
                    ` Not in the VM any more (left out): ${plan.skipped.join(', ')}.`}{' '}
                  Its hardware and its other disks stay as they are.
                </p>
                <p class="hint in-place-snapshots">
                  {plan.snapshots.length > 0
                    ? `Its snapshots are dropped: ${plan.snapshots.join(', ')}.`
                    : 'It has no snapshots.'}
                </p>
                <label class="check">
                  <input
                    type="checkbox"
                    name="confirm-in-place"
                    checked={f.confirmed}
                    onChange={(e) => set({ confirmed: (e.target as HTMLInputElement).checked })}
                  />{' '}
                  Replace the disks of {vmName}
                  {plan.snapshots.length > 0 ? ' and drop its snapshots' : ''}: what it holds since the backup
                  is lost
                </label>
              </div>
            )}
          </fieldset>
          {taskId && (
            <div class="restore-progress" data-testid="restore-progress">
              {running && (
                <>
                  Restoring{disk}
                  {inPlace ? ` over ${vmName}` : ''}…
                  <Meter value={task?.progress ?? 0} warn={2} />
                  <p class="hint">You can close this: the restore goes on in Recent tasks.</p>
                </>
              )}
              {task?.status === 'ok' && <p>Restored; opening {result?.vm ?? 'the VM'}…</p>}
            </div>
          )}
          {!locked && !inPlace && f.name && problem && (
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
            label={inPlace ? `Restore over ${vmName}` : 'Restore'}
            busyLabel="Starting…"
            onCancel={onClose}
            disabled={!!problem}
            danger={inPlace}
            testId="restore-submit"
          />
        )}
      </form>
    </div>
  );
}

/** The types of the tasks that change what lists of backups show. */
export const BACKUP_TASK_TYPES = ['vm.backup', RESTORE, VERIFY, 'backup.gc', JOB, BOOT_VERIFY];
