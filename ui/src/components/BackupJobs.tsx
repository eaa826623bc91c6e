import { Fragment } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type Task } from '../api';
import {
  type BackupJob,
  createJobBody,
  editJobBody,
  formRetention,
  formSelection,
  JOB,
  type JobForm,
  jobForm,
  jobFormProblems,
  jobRunDetails,
  jobRunOutcome,
  jobRunProgress,
  jobRunResult,
  jobTask,
  jobVmLine,
  lastRunClass,
  newJobForm,
  RETENTION_RULES,
  type RetentionKey,
  retentionSummary,
  SCHEDULE_PRESETS,
  scheduleHint,
  selectionLine,
  taggedVms,
  tagsInUse,
  until,
} from '../backup-jobs';
import { type BackupRepository, gcOutcome, usableRepositories } from '../backups';
import { ago, when } from '../format';
import { usePolled } from '../poll';
import { attempt, putTask, toast, useStore } from '../store';
import { useTask } from './Backups';
import { ConfirmDialog } from './ConfirmDialog';
import { FormActions } from './FormActions';

const RULE_LABELS: Record<RetentionKey, string> = {
  keepLast: 'Last',
  keepHourly: 'Hourly',
  keepDaily: 'Daily',
  keepWeekly: 'Weekly',
  keepMonthly: 'Monthly',
  keepYearly: 'Yearly',
};

/**
 * Backup jobs (as Proxmox's Datacenter → Backup): each job's schedule (UTC), repository, VMs, retention,
 * next and last run; Run now (its progress in Recent tasks, each VM's outcome under the row when it
 * ends), Edit…, Enable/Disable, Delete (the backups stay).
 */
export function BackupJobsCard({
  repos,
  onChanged,
}: {
  repos: BackupRepository[] | undefined;
  onChanged: () => void;
}) {
  const s = useStore();
  const jobs = usePolled<BackupJob[]>('/backup/jobs', 10_000);
  const [dialog, setDialog] = useState<{ job?: BackupJob } | undefined>();
  const [remove, setRemove] = useState<{ job: BackupJob; error?: string; busy?: boolean } | undefined>();
  // a job's run starting or ending (here, by its schedule, elsewhere): its running flag, last run and next
  const runs = s.tasks
    .filter((t) => t.type === JOB)
    .map((t) => `${t.id}:${t.status}`)
    .join(' ');
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    jobs.reload();
  }, [runs]);

  async function toggle(job: BackupJob) {
    const saved = await attempt(`${job.enabled ? 'Disable' : 'Enable'} backup job ${job.name}`, () =>
      api<BackupJob>('PATCH', `/backup/jobs/${encodeURIComponent(job.name)}`, { enabled: !job.enabled }),
    );
    if (saved) {
      toast(`Backup job ${job.name} ${saved.enabled ? 'enabled' : 'disabled'}`, 'info');
      jobs.reload();
    }
  }

  async function confirmRemove() {
    if (!remove) return;
    const { job } = remove;
    setRemove({ job, busy: true });
    try {
      await api('DELETE', `/backup/jobs/${encodeURIComponent(job.name)}`);
      toast(`Backup job ${job.name} deleted; its backups stay in ${job.repository}`, 'info');
      setRemove(undefined);
      jobs.reload();
    } catch (e) {
      setRemove({ job, error: (e as Error).message });
    }
  }

  const list = [...(jobs.data ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  const noRepo = !!repos && repos.length === 0;
  return (
    <div class="card section jobs-card">
      <div class="toolbar">
        <h3>Jobs</h3>
        <button
          type="button"
          data-action="add-job"
          disabled={!repos || noRepo}
          title={noRepo ? 'Add a repository first' : 'Back VMs up on a schedule'}
          onClick={() => setDialog({})}
        >
          Add job…
        </button>
      </div>
      {jobs.error && (
        <div class="form-error" role="alert">
          {jobs.error}
        </div>
      )}
      {!jobs.data && !jobs.error && <div class="muted">Loading…</div>}
      {jobs.data && (
        <div class="table-scroll">
          <table class="grid backup-jobs cells-top">
            <thead>
              <tr>
                <th>Name</th>
                <th>Schedule (UTC)</th>
                <th>Repository</th>
                <th>VMs</th>
                <th title="Per VM, after each run: the backups no rule keeps are deleted">Retention</th>
                <th>Next run</th>
                <th>Last run</th>
                <th>Enabled</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.map((job) => (
                <JobRow
                  key={job.name}
                  job={job}
                  onEdit={() => setDialog({ job })}
                  onToggle={() => toggle(job)}
                  onDelete={() => setRemove({ job })}
                  onStarted={() => jobs.reload()}
                />
              ))}
              {list.length === 0 && (
                <tr>
                  <td colSpan={9} class="muted">
                    No jobs: add one to back VMs up on a schedule, with old backups pruned.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
      {dialog && repos && (
        <JobDialog
          job={dialog.job}
          repos={repos}
          onClose={() => setDialog(undefined)}
          onSaved={() => {
            jobs.reload();
            onChanged();
          }}
        />
      )}
      {remove && (
        <ConfirmDialog
          title={`Delete backup job ${remove.job.name}?`}
          confirm="Delete"
          onConfirm={confirmRemove}
          onCancel={() => setRemove(undefined)}
          error={remove.error}
          busy={remove.busy}
        >
          The job stops backing up on its schedule. The backups it made stay in repository{' '}
          {remove.job.repository}: delete them from the list below if they are not wanted.
          {remove.job.running && ' A run under way goes on to its end.'}
        </ConfirmDialog>
      )}
    </div>
  );
}

function JobRow({
  job,
  onEdit,
  onToggle,
  onDelete,
  onStarted,
}: {
  job: BackupJob;
  onEdit: () => void;
  onToggle: () => void;
  onDelete: () => void;
  onStarted: () => void;
}) {
  const s = useStore();
  const [taskId, setTaskId] = useState<string | undefined>();
  const [starting, setStarting] = useState(false);
  // the run started here, fetched while the events stay away; else the job's newest run the store knows
  const mine = useTask(taskId);
  const task = jobTask(s.tasks, job, mine);
  const running = job.running || task?.status === 'running';

  async function runNow() {
    setStarting(true);
    const t = await attempt(`Run backup job ${job.name}`, () =>
      api<Task>('POST', `/backup/jobs/${encodeURIComponent(job.name)}/run`),
    );
    setStarting(false);
    if (!t) return;
    putTask(t);
    setTaskId(t.id);
    onStarted();
  }

  // the run started here ended: say so
  const told = useRef('');
  useEffect(() => {
    if (!mine || mine.status === 'running' || told.current === mine.id) return;
    told.current = mine.id;
    const r = jobRunResult(mine);
    if (mine.status === 'ok') toast(`Backup job ${job.name} done: ${r ? jobRunOutcome(r) : 'ok'}`, 'info');
    else toast(`Backup job ${job.name}: ${mine.error?.message ?? 'the run failed'}`);
  }, [mine?.status]);

  const hint = scheduleHint(job.schedule);
  const details = task?.status === 'running' ? jobRunDetails(task) : undefined;
  const result = task && task.status !== 'running' ? jobRunResult(task) : undefined;
  const showRun = !!details || !!result || (task?.status === 'error' && !!task.error);
  return (
    <Fragment>
      <tr
        data-job={job.name}
        data-enabled={String(job.enabled)}
        data-running={String(running)}
        data-last-status={job.lastStatus ?? ''}
        class={[showRun ? 'has-check' : '', job.enabled ? '' : 'job-disabled'].join(' ').trim() || undefined}
      >
        <td>
          <button type="button" class="link" title="Edit this job" onClick={onEdit}>
            {job.name}
          </button>
          {job.notes && <div class="hint job-notes">{job.notes}</div>}
        </td>
        <td>
          <span class="mono job-schedule">{job.schedule}</span>
          {hint && <div class="hint schedule-hint">{hint}</div>}
        </td>
        <td>{job.repository}</td>
        <td
          class="job-vms"
          data-pick={job.selection.all ? 'all' : job.selection.tags?.length ? 'tags' : 'vms'}
        >
          {selectionLine(job.selection, s.vms)}
        </td>
        <td class="job-retention">{retentionSummary(job.retention)}</td>
        <td class="nowrap job-next" title={job.nextRunAt ? when(job.nextRunAt) : undefined}>
          {job.enabled ? (
            <>
              {when(job.nextRunAt)}
              <div class="muted">{until(job.nextRunAt)}</div>
            </>
          ) : (
            <span class="muted">disabled</span>
          )}
        </td>
        <td class="job-last">
          {running ? (
            <span class="run-running">running…</span>
          ) : job.lastRunAt ? (
            <>
              <span class={`run-status ${lastRunClass(job.lastStatus)}`}>{job.lastStatus ?? 'ran'}</span>{' '}
              <span class="nowrap" title={when(job.lastRunAt)}>
                {ago(job.lastRunAt)}
              </span>
              {job.lastMessage && (
                <div class={`hint job-message ${job.lastStatus === 'ok' ? '' : 'reason'}`}>
                  {job.lastMessage}
                </div>
              )}
            </>
          ) : (
            <span class="muted">never</span>
          )}
        </td>
        <td>
          <span class={`state-badge ${job.enabled ? 'job-on' : 'job-off'}`}>
            {job.enabled ? 'yes' : 'no'}
          </span>
        </td>
        <td class="row-actions nowrap">
          <button
            type="button"
            data-action="run-job"
            disabled={running || starting}
            title="Back the job's VMs up now, then prune by its retention (its schedule stays)"
            onClick={runNow}
          >
            {running ? 'Running…' : 'Run now'}
          </button>{' '}
          <button type="button" data-action="edit-job" onClick={onEdit}>
            Edit…
          </button>{' '}
          <button type="button" data-action="toggle-job" onClick={onToggle}>
            {job.enabled ? 'Disable' : 'Enable'}
          </button>{' '}
          <button type="button" class="danger" data-action="delete-job" onClick={onDelete}>
            Delete
          </button>
        </td>
      </tr>
      {showRun && task && (
        <tr class="check-row" data-run-for={job.name}>
          <td colSpan={9}>
            <div class="job-run" data-testid="job-run" data-status={task.status}>
              {details && <span class="muted">running: {jobRunProgress(details)}</span>}
              {result && (
                <>
                  <div class={result.status === 'ok' ? 'muted' : 'reason'}>
                    {task.endedAt ? `${when(task.endedAt)}: ` : ''}
                    {jobRunOutcome(result)}
                    {result.gc ? `; garbage collection: ${gcOutcome(result.gc)}` : ''}
                  </div>
                  <ul class="job-run-vms">
                    {result.vms.map((o) => (
                      <li
                        key={o.vm}
                        data-vm={o.vm}
                        data-status={o.status}
                        class={o.status === 'error' ? 'reason' : o.status === 'skipped' ? 'warning-text' : ''}
                      >
                        {jobVmLine(o)}
                      </li>
                    ))}
                  </ul>
                </>
              )}
              {!result && task.status === 'error' && (
                <div class="reason" role="alert">
                  {task.error?.message}
                </div>
              )}
            </div>
          </td>
        </tr>
      )}
    </Fragment>
  );
}

/**
 * Add or edit a job: name (fixed once made), schedule (free text, presets, its reading), repository, VMs
 * (all, some, or those with tags at each run), retention (empty: not set), notes, enabled; the API's
 * refusal inline.
 */
export function JobDialog({
  job,
  repos,
  onClose,
  onSaved,
}: {
  job?: BackupJob;
  repos: BackupRepository[];
  onClose: () => void;
  onSaved: () => void;
}) {
  const s = useStore();
  const vms = s.vms.filter((v) => !v.template).sort((a, b) => a.name.localeCompare(b.name));
  // readable repositories first: a new job goes to the first
  const ordered = [...usableRepositories(repos), ...repos.filter((r) => !usableRepositories([r]).length)];
  const [f, setF] = useState<JobForm>(() => (job ? jobForm(job, s.vms) : newJobForm(ordered)));
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const creating = !job;
  const problems = jobFormProblems(f, creating);
  const set =
    <K extends keyof JobForm>(k: K) =>
    (e: Event) => {
      const el = e.target as HTMLInputElement;
      setF({ ...f, [k]: el.type === 'checkbox' ? el.checked : el.value });
    };
  const setKeep = (k: RetentionKey) => (e: Event) =>
    setF({ ...f, retention: { ...f.retention, [k]: (e.target as HTMLInputElement).value } });
  const pick = (id: string) => (e: Event) => {
    const on = (e.target as HTMLInputElement).checked;
    setF({ ...f, vms: on ? [...f.vms.filter((x) => x !== id), id] : f.vms.filter((x) => x !== id) });
  };
  // refs of the job no VM answers to now (a VM deleted): shown so they can be unticked
  const unknown = f.vms.filter((ref) => !vms.some((v) => v.id === ref));
  // the tags' VMs now (the job takes those carrying them when it runs), and the tags VMs carry
  const byTags = f.pick === 'tags' ? (formSelection(f).tags ?? []) : [];
  const tagged = taggedVms(byTags, vms);
  const inUse = tagsInUse(vms);

  async function submit(e: Event) {
    e.preventDefault();
    if (Object.keys(problems).length) return;
    setBusy(true);
    setError('');
    try {
      if (!job) {
        const saved = await api<BackupJob>('POST', '/backup/jobs', createJobBody(f));
        toast(
          `Backup job ${saved.name} added${saved.nextRunAt ? `: next run ${when(saved.nextRunAt)}` : ''}`,
          'info',
        );
      } else {
        const body = editJobBody(f, job);
        if (Object.keys(body).length > 0) {
          await api<BackupJob>('PATCH', `/backup/jobs/${encodeURIComponent(job.name)}`, body);
          toast(`Backup job ${job.name} saved`, 'info');
        }
      }
      onSaved();
      onClose();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const hint = scheduleHint(f.schedule);
  const title = job ? `Edit backup job ${job.name}` : 'Add a backup job';
  const keepErrors = RETENTION_RULES.filter(([k]) => problems[k]);
  return (
    <div class="modal-backdrop">
      <form class="modal job-dialog" role="dialog" aria-label={title} noValidate onSubmit={submit}>
        <h3>{title}</h3>
        <div class="modal-body form">
          <label>
            Name
            <input
              name="name"
              value={f.name}
              placeholder="nightly"
              disabled={!creating}
              class={f.name && problems.name ? 'invalid' : undefined}
              onInput={set('name')}
            />
            {f.name && problems.name && <span class="field-error">{problems.name}</span>}
          </label>
          <div class="job-schedule-field">
            <label>
              Schedule
              <input
                name="schedule"
                class="mono"
                value={f.schedule}
                placeholder="0 2 * * *"
                onInput={set('schedule')}
              />
            </label>
            <div class="schedule-presets">
              {SCHEDULE_PRESETS.map((p) => (
                <button
                  key={p.schedule}
                  type="button"
                  class={`preset ${f.schedule.trim() === p.schedule ? 'chosen' : ''}`}
                  data-preset={p.schedule}
                  onClick={() => setF({ ...f, schedule: p.schedule })}
                >
                  {p.label}
                </button>
              ))}
            </div>
            <span class="hint schedule-hint" data-testid="schedule-hint">
              {hint
                ? `${hint}.`
                : 'A cron expression (minute hour day month weekday; a seconds field first allowed) or @hourly, @daily, @weekly, @monthly. Times are UTC.'}
            </span>
          </div>
          <label>
            Repository
            <select name="repository" value={f.repository} onChange={set('repository')}>
              {f.repository && !repos.some((r) => r.name === f.repository) && (
                <option value={f.repository}>{f.repository} (no such repository now)</option>
              )}
              {ordered.map((r) => (
                <option key={r.name} value={r.name}>
                  {r.name}: {r.path}
                  {r.encrypted ? ' (encrypted)' : ''}
                  {r.error ? ' (unreadable now)' : r.backups === undefined ? ` (on host ${r.node})` : ''}
                </option>
              ))}
            </select>
          </label>
          <fieldset class="job-vms-field">
            <legend>VMs</legend>
            <label class="check">
              <input
                type="radio"
                name="selection"
                value="all"
                checked={f.pick === 'all'}
                onChange={() => setF({ ...f, pick: 'all' })}
              />{' '}
              All VMs (templates excluded; VMs made later too)
            </label>
            <label class="check">
              <input
                type="radio"
                name="selection"
                value="some"
                checked={f.pick === 'vms'}
                onChange={() => setF({ ...f, pick: 'vms' })}
              />{' '}
              These VMs:
            </label>
            <div class="vm-picks">
              {vms.map((v) => (
                <label key={v.id} class="check">
                  <input
                    type="checkbox"
                    name="vm"
                    value={v.id}
                    data-vm-name={v.name}
                    disabled={f.pick !== 'vms'}
                    checked={f.vms.includes(v.id)}
                    onChange={pick(v.id)}
                  />{' '}
                  {v.name}
                </label>
              ))}
              {unknown.map((ref) => (
                <label key={ref} class="check">
                  <input
                    type="checkbox"
                    name="vm"
                    value={ref}
                    disabled={f.pick !== 'vms'}
                    checked
                    onChange={pick(ref)}
                  />{' '}
                  {ref} <span class="muted">(no such VM now)</span>
                </label>
              ))}
              {vms.length === 0 && unknown.length === 0 && <span class="muted">No VMs yet.</span>}
            </div>
            {problems.vms && <span class="hint">{problems.vms}</span>}
            <label class="check">
              <input
                type="radio"
                name="selection"
                value="tags"
                checked={f.pick === 'tags'}
                onChange={() => setF({ ...f, pick: 'tags' })}
              />{' '}
              VMs with tags (any of them, when the job runs):
            </label>
            <div class="job-tags">
              <input
                name="tags"
                class={`mono${f.pick === 'tags' && f.tags.trim() && problems.tags ? ' invalid' : ''}`}
                value={f.tags}
                placeholder="env:prod, nightly"
                disabled={f.pick !== 'tags'}
                aria-label="Tags"
                onInput={set('tags')}
              />
              {f.pick === 'tags' &&
                (problems.tags ? (
                  <span class={f.tags.trim() ? 'field-error' : 'hint'} data-field="tags">
                    {problems.tags}
                  </span>
                ) : (
                  <span class="hint job-tagged" data-testid="job-tagged">
                    {tagged.length
                      ? `Now: ${tagged.join(', ')}.`
                      : 'No VM carries these tags now: the job backs up those that do when it runs.'}
                  </span>
                ))}
              {f.pick === 'tags' && inUse.length > 0 && (
                <span class="hint tags-in-use">Tags in use: {inUse.join(', ')}.</span>
              )}
            </div>
          </fieldset>
          <fieldset class="job-retention-field">
            <legend>Retention per VM</legend>
            <div class="retention-grid">
              {RETENTION_RULES.map(([k]) => (
                <label key={k}>
                  {RULE_LABELS[k]}
                  <input
                    name={k}
                    inputMode="numeric"
                    value={f.retention[k]}
                    placeholder="—"
                    class={problems[k] ? 'invalid' : undefined}
                    onInput={setKeep(k)}
                  />
                </label>
              ))}
            </div>
            {keepErrors.map(([k]) => (
              <div key={k} class="field-error" data-field={k}>
                {RULE_LABELS[k]}: {problems[k]}
              </div>
            ))}
            <p class="hint retention-summary">
              Keeps {retentionSummary(formRetention(f))}. Last N: the N newest; daily N: the newest of each of
              the N newest days that have one (likewise hourly, weekly, monthly, yearly; UTC); empty: not set.
              After each run, every backup of the job's VMs in the repository that no rule keeps is deleted
              (those backed up by hand too), then the repository's space is collected.
            </p>
          </fieldset>
          <label>
            Notes
            <input
              name="notes"
              value={f.notes}
              maxLength={500}
              placeholder={`on each backup (default: job ${f.name || '<name>'})`}
              onInput={set('notes')}
            />
          </label>
          <label class="check">
            <input name="enabled" type="checkbox" checked={f.enabled} onChange={set('enabled')} /> Enabled:
            run on the schedule
          </label>
        </div>
        <FormActions
          error={error}
          busy={busy}
          label={job ? 'Save' : 'Add'}
          busyLabel={job ? 'Saving…' : 'Adding…'}
          onCancel={onClose}
          disabled={Object.keys(problems).length > 0}
          testId="job-submit"
        />
      </form>
    </div>
  );
}
