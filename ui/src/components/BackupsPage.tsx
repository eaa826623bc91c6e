import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { api, fmtBytes, type Task } from '../api';
import { keyFilePath, keyProblem, repositoryBody } from '../backup-jobs';
import {
  type Backup,
  type BackupRepository,
  filterBackups,
  GC,
  groupByVm,
  maintenanceLine,
  REPO_NAME,
  repositoryHint,
  repositoryTask,
  VERIFY,
} from '../backups';
import { when } from '../format';
import { usePolled } from '../poll';
import { hostHref } from '../route';
import { attempt, putTask, toast, useStore } from '../store';
import { BackupJobsCard } from './BackupJobs';
import { BACKUP_TASK_TYPES, BackupTable, useReloadOnBackupTasks } from './Backups';
import { ConfirmDialog } from './ConfirmDialog';
import { FormActions } from './FormActions';

/**
 * Backups: the repositories (a directory on a host: local disk or an NFS mount) with what they hold, add
 * or remove one; every backup of every VM, newest first, narrowed to a repository or a VM; restore one
 * into a new VM or delete it.
 */
export function BackupsPage() {
  const s = useStore();
  const repos = usePolled<BackupRepository[]>('/backup/repositories', 10_000);
  const backups = usePolled<Backup[]>('/backups', 10_000);
  const [adding, setAdding] = useState(false);
  const [remove, setRemove] = useState<{ r: BackupRepository; error?: string; busy?: boolean } | undefined>();
  const [filter, setFilter] = useState({ repository: '', vm: '' });
  const reload = () => {
    repos.reload();
    backups.reload();
  };
  useReloadOnBackupTasks(reload, BACKUP_TASK_TYPES);

  async function confirmRemove() {
    if (!remove) return;
    const { r } = remove;
    setRemove({ r, busy: true });
    try {
      await api('DELETE', `/backup/repositories/${encodeURIComponent(r.name)}`);
      toast(`repository ${r.name} removed; its directory ${r.path} is untouched`, 'info');
      setRemove(undefined);
      if (filter.repository === r.name) setFilter({ ...filter, repository: '' });
      reload();
    } catch (e) {
      setRemove({ r, error: (e as Error).message });
    }
  }

  async function maintain(r: BackupRepository, what: 'verify' | 'gc') {
    const t = await attempt(`${what === 'gc' ? 'Garbage-collect' : 'Verify'} ${r.name}`, () =>
      api<Task>('POST', `/backup/repositories/${encodeURIComponent(r.name)}/${what}`),
    );
    if (t) putTask(t);
  }

  const all = backups.data ?? [];
  const groups = groupByVm(all);
  const shown = filterBackups(all, filter);
  return (
    <div class="backups-page">
      <div class="vm-head">
        <h2>Backups</h2>
      </div>
      <div class="card section repositories-card">
        <div class="toolbar">
          <h3>Repositories</h3>
          <button type="button" data-action="add-repository" onClick={() => setAdding(true)}>
            Add repository…
          </button>
        </div>
        {repos.error && (
          <div class="form-error" role="alert">
            {repos.error}
          </div>
        )}
        {!repos.data && !repos.error && <div class="muted">Loading…</div>}
        {repos.data && (
          <table class="grid repositories cells-top">
            <thead>
              <tr>
                <th>Name</th>
                <th>Path</th>
                <th>Host</th>
                <th>Backups</th>
                <th title="What the chunks take on disk (compressed, each stored once)">Space used</th>
                <th>Added</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {repos.data.map((r) => {
                // the newest verify or GC of the repository (the store lists the newest task first)
                const checks = [
                  repositoryTask(s.tasks, VERIFY, r.name),
                  repositoryTask(s.tasks, GC, r.name),
                ].filter((t): t is Task => !!t);
                const busy = checks.some((t) => t.status === 'running');
                const readable = !r.error && r.backups !== undefined;
                const cls = [r.error ? 'repo-error' : '', checks.length ? 'has-check' : ''].join(' ').trim();
                return (
                  <Fragment key={r.name}>
                    <tr data-repository={r.name} class={cls || undefined}>
                      <td>
                        <button
                          type="button"
                          class="link"
                          title="Show this repository's backups"
                          onClick={() =>
                            setFilter({ ...filter, repository: filter.repository === r.name ? '' : r.name })
                          }
                        >
                          {r.name}
                        </button>
                        {r.encrypted && (
                          <>
                            {' '}
                            <span
                              class="tag encrypted-badge"
                              title={`Encrypted on this side (AES-256-GCM): its key is a file on host ${r.node}, never in the API (${keyFilePath(r)}); without it nothing can be read: keep a copy elsewhere`}
                            >
                              encrypted
                            </span>
                          </>
                        )}
                        {r.shared && (
                          <>
                            {' '}
                            <span
                              class="tag shared-badge"
                              title={`Shared storage (an NFS mount, say) at this path on every host: VMs of every host can be backed up into it, and every host reads it (added on host ${r.node})`}
                            >
                              shared
                            </span>
                          </>
                        )}
                      </td>
                      <td class="mono">
                        {r.path}
                        {r.keyFile && (
                          <div
                            class="hint repo-key-file"
                            title="The key of this encrypted repository, on its host"
                          >
                            key: {r.keyFile}
                          </div>
                        )}
                      </td>
                      <td>
                        <a href={hostHref(r.node)}>{r.node}</a>
                      </td>
                      {r.error ? (
                        <td colSpan={2} class="repo-problem">
                          <span class="reason" role="alert">
                            Unreadable: {r.error}
                          </span>
                        </td>
                      ) : r.backups === undefined ? (
                        <td colSpan={2} class="muted">
                          on host {r.node}: its figures are shown through that host
                        </td>
                      ) : (
                        <>
                          <td class="repo-backups">{r.backups}</td>
                          <td class="repo-usage" title={`${r.usage?.chunks ?? 0} chunks`}>
                            {fmtBytes(r.usage?.bytes ?? 0)}
                          </td>
                        </>
                      )}
                      <td class="nowrap">{when(r.createdAt)}</td>
                      <td class="row-actions nowrap">
                        {readable && (
                          <>
                            <button
                              type="button"
                              data-action="verify-repository"
                              disabled={busy}
                              title="Re-read and re-hash every chunk of every backup: damaged or missing chunks and the backups they break"
                              onClick={() => maintain(r, 'verify')}
                            >
                              Verify
                            </button>{' '}
                            <button
                              type="button"
                              data-action="gc-repository"
                              disabled={busy}
                              title="Remove the chunks no backup needs any more (deleted backups free their space this way)"
                              onClick={() => maintain(r, 'gc')}
                            >
                              Collect garbage
                            </button>{' '}
                          </>
                        )}
                        <button
                          type="button"
                          data-action="remove-repository"
                          onClick={() => setRemove({ r })}
                        >
                          Remove
                        </button>
                      </td>
                    </tr>
                    {checks.length > 0 && (
                      <tr class={`check-row ${r.error ? 'repo-error' : ''}`} data-checks-for={r.name}>
                        <td colSpan={7}>
                          {checks.map((t) => {
                            const l = maintenanceLine(t);
                            return (
                              <div
                                key={t.id}
                                class={`repo-check ${l.bad ? 'reason' : 'muted'}`}
                                data-testid="repo-check"
                                data-task-type={t.type}
                                data-status={t.status}
                                role={l.bad ? 'alert' : undefined}
                              >
                                {l.text}
                              </div>
                            );
                          })}
                        </td>
                      </tr>
                    )}
                  </Fragment>
                );
              })}
              {repos.data.length === 0 && (
                <tr>
                  <td colSpan={7} class="muted">
                    No repositories yet: add a directory of a host (local disk or an NFS mount) to back VMs up
                    into.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        )}
      </div>

      <BackupJobsCard repos={repos.data} onChanged={reload} />

      <div class="card section backups-card">
        <div class="toolbar">
          <h3>Backups</h3>
          <label>
            Repository{' '}
            <select
              name="repository"
              value={filter.repository}
              onChange={(e) => setFilter({ ...filter, repository: (e.target as HTMLSelectElement).value })}
            >
              <option value="">all</option>
              {(repos.data ?? []).map((r) => (
                <option key={r.name} value={r.name}>
                  {r.name}
                </option>
              ))}
            </select>
          </label>
          <label>
            VM{' '}
            <select
              name="vm"
              value={filter.vm}
              onChange={(e) => setFilter({ ...filter, vm: (e.target as HTMLSelectElement).value })}
            >
              <option value="">all</option>
              {groups.map((g) => (
                <option key={g.vm.id} value={g.vm.id}>
                  {g.vm.name} ({g.count})
                </option>
              ))}
            </select>
          </label>
          {backups.data && (
            <span class="muted backup-count">
              {shown.length === all.length ? `${all.length}` : `${shown.length} of ${all.length}`} backup
              {all.length === 1 ? '' : 's'}
            </span>
          )}
        </div>
        {backups.error && (
          <div class="form-error" role="alert">
            {backups.error}
          </div>
        )}
        {!backups.data && !backups.error && <div class="muted">Loading…</div>}
        {backups.data && (
          <BackupTable
            backups={shown}
            showVm
            showRepository={(repos.data?.length ?? 0) > 1 || new Set(all.map((b) => b.repository)).size > 1}
            onChanged={reload}
            empty={
              all.length === 0
                ? 'No backups yet: back a VM up from its Backups tab.'
                : 'No backups of this repository and VM.'
            }
          />
        )}
      </div>

      {adding && <AddRepositoryDialog onClose={() => setAdding(false)} onAdded={reload} />}
      {remove && (
        <ConfirmDialog
          title={`Remove repository ${remove.r.name}?`}
          confirm="Remove"
          onConfirm={confirmRemove}
          onCancel={() => setRemove(undefined)}
          error={remove.error}
          busy={remove.busy}
        >
          NeuroFlow forgets the repository. Its directory <span class="mono">{remove.r.path}</span> on host{' '}
          {remove.r.node} and the backups in it stay on disk: add the same path again to use them.
        </ConfirmDialog>
      )}
    </div>
  );
}

/**
 * Add a repository: a name and an absolute directory of this host (made if missing or empty), encrypted
 * if asked; a key to encrypt with one the admin holds or to open an encrypted one. An encrypted one's
 * key file is named after it is added, with the warning to keep a copy of it elsewhere.
 */
function AddRepositoryDialog({ onClose, onAdded }: { onClose: () => void; onAdded: () => void }) {
  const [f, setF] = useState({ name: '', path: '', shared: false, encrypt: false, key: '' });
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [added, setAdded] = useState<BackupRepository | undefined>();
  const set = (k: keyof typeof f) => (e: Event) => {
    const el = e.target as HTMLInputElement;
    setF({ ...f, [k]: el.type === 'checkbox' ? el.checked : el.value });
  };
  const hint = repositoryHint(f);
  const badKey = keyProblem(f.key);
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const r = await api<BackupRepository>('POST', '/backup/repositories', repositoryBody(f));
      toast(
        `repository ${r.name} added (${r.path} ${r.shared ? 'shared by every host' : `on ${r.node}`})`,
        'info',
      );
      onAdded();
      if (r.encrypted) setAdded(r);
      else onClose();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  if (added)
    return (
      <div class="modal-backdrop">
        <div class="modal add-repository" role="dialog" aria-label="Add a backup repository">
          <h3>Repository {added.name} added: encrypted</h3>
          <div class="modal-body">
            <div class="key-warning" role="alert" data-testid="key-warning">
              <p>
                <b>Keep a copy of its key elsewhere, off this host.</b> Without the key nothing in the
                repository can be read: no restore, not even by NeuroFlow after this host is reinstalled.
              </p>
              <p>The key is this file on host {added.node}:</p>
              <p class="mono key-file">{keyFilePath(added)}</p>
              {added.keyFile ? (
                <p class="hint">
                  Copy it off the host, e.g.{' '}
                  <span class="mono">
                    scp {added.node}:{added.keyFile} …
                  </span>
                  . The API never returns the key itself.
                </p>
              ) : (
                <p class="hint">
                  <span class="mono">&lt;data dir&gt;</span>: the <span class="mono">--data-dir</span> of{' '}
                  <span class="mono">neuroflow serve</span> (<span class="mono">/var/lib/neuroflow</span> on
                  an installed host). The API never returns the key.
                </p>
              )}
              <p class="hint">
                To open this repository on another host, or after a reinstall: Add repository… with its path
                and the key as base64 (<span class="mono">base64 -w0 &lt;key file&gt;</span>).
              </p>
            </div>
          </div>
          <div class="modal-actions">
            <button type="button" class="primary" data-action="key-noted" onClick={onClose}>
              I have kept a copy
            </button>
          </div>
        </div>
      </div>
    );
  return (
    <div class="modal-backdrop">
      <form
        class="modal add-repository"
        role="dialog"
        aria-label="Add a backup repository"
        noValidate
        onSubmit={submit}
      >
        <h3>Add a backup repository</h3>
        <div class="modal-body form">
          <label>
            Name
            <input name="name" value={f.name} placeholder="nas1" onInput={set('name')} />
            <span class="hint">Lowercase letters, digits and -</span>
          </label>
          <label>
            Path
            <input name="path" class="mono" value={f.path} placeholder="/srv/backups" onInput={set('path')} />
            <span class="hint">
              An absolute directory of this host (a local disk or an NFS mount): made if missing or empty; a
              directory that is a repository already is opened with its backups.
            </span>
          </label>
          {hint && <div class="hint field-hint">{hint}</div>}
          <label class="check">
            <input name="shared" type="checkbox" checked={f.shared} onChange={set('shared')} /> Shared storage
            (the same path on every host, e.g. NFS)
          </label>
          <div class="hint shared-hint">
            {f.shared
              ? 'VMs of every host can be backed up into it, and every host reads it: mount it at this path on every host.'
              : 'Unticked, the repository belongs to this host: only its VMs are backed up into it.'}
          </div>
          <label class="check">
            <input name="encrypt" type="checkbox" checked={f.encrypt} onChange={set('encrypt')} /> Encrypt
            (AES-256-GCM, on this side: the directory holds no readable data)
          </label>
          <label>
            Key (base64, optional)
            <input
              name="key"
              class={`mono ${badKey ? 'invalid' : ''}`}
              value={f.key}
              autoComplete="off"
              spellcheck={false}
              placeholder={f.encrypt ? 'empty: a new key is made on the host' : ''}
              onInput={set('key')}
            />
            {badKey ? (
              <span class="field-error">{badKey}</span>
            ) : (
              <span class="hint">
                To encrypt with a key you hold, or to open an existing encrypted repository (a wrong key is
                refused; nothing is written). Without a key, Encrypt makes one on the host.
              </span>
            )}
          </label>
        </div>
        <FormActions
          error={error}
          busy={busy}
          label="Add"
          busyLabel="Adding…"
          onCancel={onClose}
          disabled={!f.name.trim() || !f.path.trim() || !REPO_NAME.test(f.name.trim()) || !!badKey}
          testId="add-repository-submit"
        />
      </form>
    </div>
  );
}
