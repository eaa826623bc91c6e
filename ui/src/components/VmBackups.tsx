import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type Task, type Vm } from '../api';
import {
  BACKUP,
  type Backup,
  type BackupRepository,
  backupDetails,
  backupOutcome,
  backupProgress,
  backupResult,
  repositoryLine,
  usableRepositories,
} from '../backups';
import { usePolled } from '../poll';
import { putTask, toast, useStore } from '../store';
import { BACKUP_TASK_TYPES, BackupTable, useReloadOnBackupTasks, useTask } from './Backups';
import { Meter } from './Meter';

/**
 * A VM's Backups tab: Back up now (into a repository, with notes), its progress here and in Recent
 * tasks; the VM's backups, newest first, each restorable into a new VM.
 */
export function VmBackups({ vm }: { vm: Vm }) {
  const s = useStore();
  const repos = usePolled<BackupRepository[]>('/backup/repositories', 15_000);
  const backups = usePolled<Backup[]>(`/backups?${new URLSearchParams({ vm: vm.id })}`, 15_000);
  const usable = usableRepositories(repos.data ?? []);
  const [repository, setRepository] = useState('');
  const [notes, setNotes] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [taskId, setTaskId] = useState<string | undefined>();
  const mine = useTask(taskId);
  // a backup of this VM started elsewhere (the CLI, another tab) shows here too
  const other = s.tasks.find(
    (t) => t.type === BACKUP && t.status === 'running' && (t.target === vm.name || t.target === vm.id),
  );
  const task = mine?.status === 'running' || !other ? mine : other;
  const running = task?.status === 'running';
  useReloadOnBackupTasks(() => {
    backups.reload();
    repos.reload();
  }, BACKUP_TASK_TYPES);

  // the repository offered first: the one this VM's newest backup went to, else the first one
  const chosen = usable.some((r) => r.name === repository)
    ? repository
    : (usable.find((r) => r.name === backups.data?.[0]?.repository)?.name ?? usable[0]?.name ?? '');

  // the backup this tab started ended: say how it went
  const told = useRef('');
  useEffect(() => {
    if (!mine || mine.status === 'running' || told.current === mine.id) return;
    told.current = mine.id;
    const r = backupResult(mine);
    if (mine.status === 'ok' && r) {
      toast(`Backup of ${vm.name} done: ${backupOutcome(r)}`, 'info');
      setNotes('');
    } else if (mine.status === 'error') setError(mine.error?.message ?? 'the backup failed');
  }, [mine?.status]);

  async function backUp(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const body: Record<string, string> = { repository: chosen };
      if (notes.trim()) body.notes = notes.trim();
      const t = await api<Task>('POST', `/vms/${encodeURIComponent(vm.id)}/backup`, body);
      putTask(t);
      setTaskId(t.id);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const details = task && backupDetails(task);
  const refusal = vm.migration
    ? 'Refused while the VM is being migrated'
    : !vm.node
      ? 'The VM has no host yet'
      : '';
  return (
    <div class="vm-backups">
      <form class="card backup-now" noValidate onSubmit={backUp}>
        <h3>Back up now</h3>
        {repos.data && usable.length === 0 && (
          <p class="hint no-repositories">
            No backup repository {repos.data.length > 0 ? 'readable from this host ' : ''}yet: add one on the{' '}
            <a href="#/backups">Backups</a> page.
          </p>
        )}
        <div class="toolbar">
          <label>
            Repository{' '}
            <select
              name="repository"
              value={chosen}
              disabled={usable.length === 0}
              onChange={(e) => setRepository((e.target as HTMLSelectElement).value)}
            >
              {usable.map((r) => (
                <option key={r.name} value={r.name}>
                  {r.name}: {r.path} ({r.encrypted ? 'encrypted, ' : ''}
                  {repositoryLine(r)})
                </option>
              ))}
            </select>
          </label>
          <input
            name="notes"
            class="backup-notes-input"
            placeholder="notes (optional)"
            maxLength={500}
            value={notes}
            onInput={(e) => setNotes((e.target as HTMLInputElement).value)}
          />
          <button
            type="submit"
            class="primary"
            data-action="backup-now"
            disabled={busy || running || !chosen || !!refusal}
            title={
              refusal ||
              (vm.state === 'running'
                ? 'The disks are captured at one instant while the VM runs; the guest agent freezes the file systems for it'
                : 'The disks are read while the VM is off')
            }
          >
            {busy ? 'Starting…' : running ? 'Backing up…' : 'Back up now'}
          </button>
        </div>
        <p class="hint">
          Incremental when the repository has an earlier backup of this VM: only the chunks changed since are
          read.
        </p>
        {running && details && (
          <div class="backup-progress" data-testid="backup-progress" data-phase={details.phase ?? 'starting'}>
            {backupProgress(details)}
            <Meter value={task?.progress ?? 0} warn={2} />
          </div>
        )}
        {error && (
          <div class="form-error" role="alert">
            {error}
          </div>
        )}
      </form>
      <div class="card section">
        <h3>Backups of {vm.name}</h3>
        {backups.error && (
          <div class="form-error" role="alert">
            {backups.error}
          </div>
        )}
        {!backups.data && !backups.error && <div class="muted">Loading…</div>}
        {backups.data && (
          <BackupTable
            backups={backups.data}
            showVm={false}
            showRepository={
              (repos.data?.length ?? 0) > 1 || new Set(backups.data.map((b) => b.repository)).size > 1
            }
            onChanged={() => {
              backups.reload();
              repos.reload();
            }}
            empty="No backups of this VM yet."
          />
        )}
      </div>
    </div>
  );
}
