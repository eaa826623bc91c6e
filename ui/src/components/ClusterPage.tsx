import { useEffect, useState } from 'preact/hooks';
import {
  ApiError,
  api,
  type ClusterInfo,
  type DrsMode,
  type DrsRecommendation,
  type DrsStatus,
  fmtBytes,
  type JoinToken,
  type Policy,
  type Task,
} from '../api';
import { DRS_MODES, DRS_THRESHOLDS, hostsByLoad, loadPct, modeHint, thresholdLabel } from '../drs';
import { ago, when } from '../format';
import { cpuModelChoices } from '../hardware';
import { usePolled } from '../poll';
import { hostHref } from '../route';
import { putTask, refreshCluster, refreshNodes, toast, useStore } from '../store';
import { ConfirmDialog } from './ConfirmDialog';
import { HaCard } from './HaCard';
import { Meter } from './Meter';
import { HostBadge, LeaderMark } from './StateBadge';

/** The cluster: summary, hosts, DRS, HA, etcd members, placement policy, join tokens. */
export function ClusterPage() {
  const s = useStore();
  const [error, setError] = useState('');
  useEffect(() => {
    // Leader and etcd membership (a learner's promotion) change without events: reload while open.
    const load = () =>
      refreshCluster()
        .then(() => setError(''))
        .catch((e) => setError((e as Error).message));
    load();
    refreshNodes().catch(() => {});
    const timer = setInterval(() => {
      if (!document.hidden) load();
    }, 5000);
    return () => clearInterval(timer);
  }, []);
  const c = s.cluster;
  if (!c) return error ? <div class="form-error">{error}</div> : <div class="muted">Loading…</div>;
  const single = c.mode === 'single-host';
  const ready = s.nodes.filter((n) => n.state === 'ready').length;
  return (
    <div class="cluster-page">
      <div class="vm-head">
        <h2>Cluster {c.name}</h2>
        <span class="tag">{single ? 'single host' : 'cluster'}</span>
      </div>
      {error && <div class="form-error">{error}</div>}
      {single && (
        <p class="note single-host">
          This host runs alone (<span class="mono">serve --dev</span>): embedded etcd on a local socket, plain
          HTTP, no certificates. Other hosts cannot join it; a cluster starts from{' '}
          <span class="mono">neuroflow serve</span> without <span class="mono">--dev</span> on a new data
          directory.
        </p>
      )}
      <div class="cards">
        <div class="card">
          <h3>Summary</h3>
          <dl>
            <dt>Name</dt>
            <dd>{c.name}</dd>
            <dt>Mode</dt>
            <dd class="cluster-mode">{c.mode}</dd>
            <dt>Leader</dt>
            <dd>
              {c.leader ? (
                <a href={hostHref(c.leader)}>
                  {c.leader}
                  <LeaderMark />
                </a>
              ) : (
                <span class="reason">none (no etcd quorum?)</span>
              )}
            </dd>
            <dt>Hosts</dt>
            <dd>
              {ready} of {s.nodes.length} ready
            </dd>
            <dt>etcd members</dt>
            <dd>{single ? '1 (embedded)' : c.etcdMembers.length}</dd>
            <dt>CA fingerprint</dt>
            <dd class="mono fingerprint">{c.caFingerprint ?? '— (no CA: single host)'}</dd>
          </dl>
        </div>
        <PolicyForm key={JSON.stringify([c.policy, c.cpu])} policy={c.policy} cpu={c.cpu} />
      </div>
      <Hosts />
      <DrsCard />
      <HaCard />
      <EtcdMembers c={c} />
      <JoinTokens single={single} />
    </div>
  );
}

function Hosts() {
  const s = useStore();
  return (
    <div class="card section">
      <h3>Hosts</h3>
      <table class="grid hosts-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>State</th>
            <th>Role</th>
            <th>Last heartbeat</th>
            <th>VMs</th>
            <th>vCPU</th>
            <th>Memory reserved</th>
          </tr>
        </thead>
        <tbody>
          {s.nodes.map((n) => (
            <tr key={n.name} data-host={n.name}>
              <td>
                <a href={hostHref(n.name)}>{n.name}</a>
                {n.leader && <LeaderMark />}
              </td>
              <td>
                <HostBadge state={n.state} />
              </td>
              <td>
                {n.role}
                {n.etcd?.learner ? <span class="muted"> (etcd learner)</span> : ''}
              </td>
              <td title={when(n.lastHeartbeat)}>{ago(n.lastHeartbeat)}</td>
              <td>
                {n.vms.running} / {n.vms.total}
              </td>
              <td>
                {n.allocation.vcpus} / {n.cpus} CPUs
              </td>
              <td class="mem-cell">
                {fmtBytes(n.allocation.memoryBytes)} / {fmtBytes(n.memoryTotalBytes)}
                <Meter value={n.memoryTotalBytes ? n.allocation.memoryBytes / n.memoryTotalBytes : 0} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Shown history entries (the API keeps more). */
const DRS_HISTORY_ROWS = 20;

/**
 * DRS: mode and threshold (saved at once), a pass on demand, the hosts' loads, the current
 * recommendations with Apply, and the moves made; reloaded every 10 s while the page is open.
 */
function DrsCard() {
  const { data: d, setData: setD, error, setError, reload: load } = usePolled<DrsStatus>('/drs', 10_000);
  // what is under way: 'save', 'run' or the id of a recommendation being applied
  const [busy, setBusy] = useState('');

  async function save(patch: { mode?: DrsMode; threshold?: number }) {
    if (!d) return;
    setD({ ...d, ...patch });
    setBusy('save');
    setError('');
    try {
      const next = await api<DrsStatus>('PUT', '/drs', patch);
      setD(next);
      toast(`DRS saved: ${next.mode}, threshold ${next.threshold}`, 'info');
    } catch (e) {
      setError(`Saving DRS settings: ${(e as Error).message}`);
      await load();
    } finally {
      setBusy('');
    }
  }

  async function run() {
    setBusy('run');
    setError('');
    try {
      const next = await api<DrsStatus>('POST', '/drs/run');
      setD(next);
      const n = next.recommendations.length;
      toast(`DRS pass done: ${n ? `${n} recommendation(s)` : 'no move recommended'}`, 'info');
    } catch (e) {
      setError(`DRS pass: ${(e as Error).message}`);
    } finally {
      setBusy('');
    }
  }

  async function apply(r: DrsRecommendation) {
    setBusy(r.id);
    setError('');
    try {
      const task = await api<Task>('POST', `/drs/recommendations/${encodeURIComponent(r.id)}/apply`);
      putTask(task);
      toast(`Migrating ${r.vmName} from ${r.from} to ${r.to} (progress in Recent tasks)`, 'info');
      await load();
    } catch (e) {
      setError(`Applying the move of ${r.vmName}: ${(e as Error).message}`);
      await load();
    } finally {
      setBusy('');
    }
  }

  return (
    <div class="card section drs-card" data-testid="drs-card">
      <h3>DRS (load balancing)</h3>
      {!d ? (
        error ? (
          <div class="form-error" role="alert">
            {error}
          </div>
        ) : (
          <p class="muted">Loading…</p>
        )
      ) : (
        <>
          <div class="toolbar drs-settings">
            <label>
              Mode{' '}
              <select
                name="drsMode"
                data-testid="drs-mode"
                value={d.mode}
                disabled={busy === 'save'}
                onChange={(e) => save({ mode: (e.target as HTMLSelectElement).value as DrsMode })}
              >
                {DRS_MODES.map((m) => (
                  <option key={m.value} value={m.value}>
                    {m.label}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Threshold{' '}
              <select
                name="drsThreshold"
                data-testid="drs-threshold"
                value={String(d.threshold)}
                disabled={busy === 'save'}
                onChange={(e) => save({ threshold: Number((e.target as HTMLSelectElement).value) })}
              >
                {DRS_THRESHOLDS.map((n) => (
                  <option key={n} value={String(n)}>
                    {thresholdLabel(n)}
                  </option>
                ))}
              </select>
            </label>
            <button type="button" data-testid="drs-run" disabled={busy !== ''} onClick={run}>
              {busy === 'run' ? 'Running…' : 'Run now'}
            </button>
            <span class="muted drs-last-run" title={when(d.lastRunAt)}>
              Last run {d.lastRunAt ? ago(d.lastRunAt) : 'never'}; every {d.intervalSec} s
            </span>
          </div>
          <p class="hint drs-mode-hint">{modeHint(d.mode)}</p>
          {error && (
            <div class="form-error" role="alert">
              {error}
            </div>
          )}
          <table class="grid drs-hosts" data-testid="drs-hosts">
            <thead>
              <tr>
                <th>Host</th>
                <th title="CPU the VMs' QEMU processes use, over the host's CPUs">CPU load</th>
                <th title="Memory of the powered-on VMs, over the host's memory">Memory load</th>
                <th>VMs</th>
              </tr>
            </thead>
            <tbody>
              {hostsByLoad(d).map((h) => (
                <tr key={h.node} data-node={h.node}>
                  <td>
                    <a href={hostHref(h.node)}>{h.node}</a>
                  </td>
                  <td class="load-cell drs-cpu">
                    {loadPct(h.cpuLoad)}
                    <Meter value={h.cpuLoad} />
                  </td>
                  <td class="load-cell drs-memory">
                    {loadPct(h.memoryLoad)}
                    <Meter value={h.memoryLoad} />
                  </td>
                  <td>{h.vms}</td>
                </tr>
              ))}
              {d.hosts.length === 0 && (
                <tr>
                  <td colSpan={4} class="muted">
                    No measure yet{d.mode === 'off' ? ' (DRS is off)' : ''}.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
          <h4>Recommendations</h4>
          {d.recommendations.length === 0 ? (
            <p class="muted drs-none">
              {d.mode === 'off'
                ? 'None: DRS is off.'
                : d.hosts.length < 2
                  ? 'None: fewer than two hosts to balance.'
                  : 'None: the hosts are within the threshold, or no move would even them.'}
            </p>
          ) : (
            <ul class="drs-recommendations">
              {d.recommendations.map((r) => (
                <li key={r.id} data-testid="drs-recommendation" data-id={r.id} data-vm={r.vmName}>
                  <span class="drs-move">
                    Move <a href={`#/vms/${r.vm}`}>{r.vmName}</a> from <a href={hostHref(r.from)}>{r.from}</a>{' '}
                    to <a href={hostHref(r.to)}>{r.to}</a>
                  </span>{' '}
                  <span class="drs-reason">{r.reason}</span>{' '}
                  <button
                    type="button"
                    class="primary"
                    data-testid="drs-apply"
                    disabled={busy !== ''}
                    onClick={() => apply(r)}
                  >
                    {busy === r.id ? 'Applying…' : 'Apply'}
                  </button>
                </li>
              ))}
            </ul>
          )}
          <h4>History</h4>
          <table class="grid drs-history" data-testid="drs-history">
            <thead>
              <tr>
                <th>When</th>
                <th>VM</th>
                <th>Move</th>
                <th>Why</th>
                <th>By</th>
                <th>Status</th>
              </tr>
            </thead>
            <tbody>
              {d.history.slice(0, DRS_HISTORY_ROWS).map((h) => (
                <tr key={h.id} data-id={h.id} data-status={h.status} data-automatic={String(h.automatic)}>
                  <td title={when(h.at)}>{ago(h.at)}</td>
                  <td>
                    <a href={`#/vms/${h.vm}`}>{h.vmName}</a>
                  </td>
                  <td>
                    {h.from} → {h.to}
                  </td>
                  <td class="drs-reason">{h.reason}</td>
                  <td class="drs-by">{h.automatic ? 'automatic' : 'manual'}</td>
                  <td class="drs-status">
                    {h.status}
                    {h.error && <span class="reason"> {h.error}</span>}
                  </td>
                </tr>
              ))}
              {d.history.length === 0 && (
                <tr>
                  <td colSpan={6} class="muted">
                    No moves yet.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}

function EtcdMembers({ c }: { c: ClusterInfo }) {
  return (
    <div class="card section">
      <h3>etcd members</h3>
      {c.mode === 'single-host' ? (
        <p class="muted">One embedded etcd on a local unix socket, not shared with other hosts.</p>
      ) : (
        <table class="grid etcd-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Member ID</th>
              <th>Role</th>
              <th>Peer URLs</th>
            </tr>
          </thead>
          <tbody>
            {c.etcdMembers.map((m) => (
              <tr key={m.id} data-member={m.name}>
                <td>
                  {m.name ? <a href={hostHref(m.name)}>{m.name}</a> : <span class="muted">(starting)</span>}
                </td>
                <td class="mono">{m.id}</td>
                <td>{m.learner ? 'learner (catching up)' : 'voter'}</td>
                <td class="mono">{m.peerUrls.join(', ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

type PolicyField = keyof Policy;

/**
 * Strategy, overcommit ratios and the default CPU model of new VMs (with the model it stands for now and
 * why); the API validates, its messages appear next to the field.
 */
function PolicyForm({ policy, cpu }: { policy: Policy; cpu: ClusterInfo['cpu'] }) {
  const [f, setF] = useState({
    strategy: policy.strategy as string,
    memoryOvercommit: String(policy.memoryOvercommit),
    vcpuOvercommit: String(policy.vcpuOvercommit),
    defaultCpuModel: policy.defaultCpuModel,
  });
  const [errors, setErrors] = useState<Partial<Record<PolicyField | 'form', string>>>({});
  const [busy, setBusy] = useState(false);
  const set = (k: PolicyField) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const num = (v: string) => (v.trim() === '' ? v : Number(v));

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    try {
      await api<Policy>('PATCH', '/cluster', {
        policy: {
          strategy: f.strategy,
          memoryOvercommit: num(f.memoryOvercommit),
          vcpuOvercommit: num(f.vcpuOvercommit),
          defaultCpuModel: f.defaultCpuModel,
        },
      });
      toast('Policy saved', 'info');
      // The form is keyed by the policy: it shows the saved values once the cluster is reloaded.
      await refreshCluster().catch(() => {});
    } catch (err) {
      const out: typeof errors = {};
      if (err instanceof ApiError && err.details?.length) {
        for (const d of err.details) {
          const field = d.path?.replace(/^policy\./, '') as PolicyField | undefined;
          if (field && field in f) out[field] = d.message;
          else out.form = d.message;
        }
      } else out.form = (err as Error).message;
      setErrors(out);
    } finally {
      setBusy(false);
    }
  }

  const fieldError = (k: PolicyField) =>
    errors[k] && (
      <span class="field-error" data-field={k} role="alert">
        {errors[k]}
      </span>
    );
  return (
    <form class="card form policy-form" noValidate onSubmit={submit}>
      <h3>Placement and CPU policy</h3>
      <label>
        Strategy
        <select name="strategy" value={f.strategy} onChange={set('strategy')}>
          <option value="spread">spread: least loaded host first</option>
          <option value="pack">pack: fullest host first</option>
        </select>
        {fieldError('strategy')}
      </label>
      <label>
        Memory overcommit
        <input
          name="memoryOvercommit"
          type="number"
          step="0.1"
          value={f.memoryOvercommit}
          class={errors.memoryOvercommit ? 'invalid' : ''}
          onInput={set('memoryOvercommit')}
        />
        <span class="hint">1 = no overcommit (1 to 4)</span>
        {fieldError('memoryOvercommit')}
      </label>
      <label>
        vCPU overcommit
        <input
          name="vcpuOvercommit"
          type="number"
          step="0.5"
          value={f.vcpuOvercommit}
          class={errors.vcpuOvercommit ? 'invalid' : ''}
          onInput={set('vcpuOvercommit')}
        />
        <span class="hint">vCPUs per host CPU (0.1 to 1000)</span>
        {fieldError('vcpuOvercommit')}
      </label>
      <label>
        Default CPU model
        <select name="defaultCpuModel" value={f.defaultCpuModel} onChange={set('defaultCpuModel')}>
          {cpuModelChoices(policy.defaultCpuModel).map(([v, l]) => (
            <option key={v} value={v}>
              {l}
            </option>
          ))}
        </select>
        <span class="hint cpu-default-model">
          New VMs without a CPU model get <b class="mono">{cpu.model}</b>: {cpu.why}.
        </span>
        {fieldError('defaultCpuModel')}
      </label>
      {errors.form && (
        <div class="form-error" role="alert">
          {errors.form}
        </div>
      )}
      <div>
        <button type="submit" class="primary" disabled={busy}>
          Save policy
        </button>{' '}
        <span class="muted">Applies to new placements and new VMs.</span>
      </div>
    </form>
  );
}

const TTLS: [number, string][] = [
  [900, '15 minutes'],
  [3600, '1 hour'],
  [6 * 3600, '6 hours'],
  [86_400, '24 hours'],
  [7 * 86_400, '7 days'],
];

/** Create (the token is shown once), list with status, revoke. */
function JoinTokens({ single }: { single: boolean }) {
  const [tokens, setTokens] = useState<JoinToken[] | undefined>();
  const [listError, setListError] = useState('');
  const [ttl, setTtl] = useState(3600);
  const [description, setDescription] = useState('');
  const controllers = useStore().nodes.filter((n) => n.role === 'controller').length;
  const [role, setRole] = useState<'controller' | 'worker' | undefined>();
  // a controller while the cluster has fewer than three (an etcd quorum that survives a host), else a worker
  const chosenRole = role ?? (controllers < 3 ? 'controller' : 'worker');
  const [created, setCreated] = useState<JoinToken | undefined>();
  const [createError, setCreateError] = useState('');
  const [busy, setBusy] = useState(false);
  const [revoke, setRevoke] = useState<{ t: JoinToken; error?: string; busy?: boolean } | undefined>();

  async function load() {
    try {
      setTokens(await api<JoinToken[]>('GET', '/cluster/join-tokens'));
      setListError('');
    } catch (e) {
      setTokens(undefined);
      setListError((e as Error).message);
    }
  }
  useEffect(() => {
    load();
  }, []);

  async function create(e: Event) {
    e.preventDefault();
    setBusy(true);
    setCreateError('');
    try {
      const body: { ttlSec: number; description?: string; role: string } = { ttlSec: ttl, role: chosenRole };
      if (description.trim()) body.description = description.trim();
      const t = await api<JoinToken>('POST', '/cluster/join-tokens', body);
      setCreated(t);
      setDescription('');
      await load();
    } catch (err) {
      setCreateError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  async function doRevoke() {
    if (!revoke) return;
    setRevoke({ ...revoke, busy: true });
    try {
      await api('DELETE', `/cluster/join-tokens/${encodeURIComponent(revoke.t.id)}`);
      if (created?.id === revoke.t.id) setCreated(undefined);
      toast(`Join token ${revoke.t.id} ${revoke.t.status === 'valid' ? 'revoked' : 'deleted'}`, 'info');
      setRevoke(undefined);
      await load();
    } catch (err) {
      setRevoke({ t: revoke.t, error: (err as Error).message });
    }
  }

  return (
    <div class="card section join-tokens">
      <h3>Join tokens</h3>
      {single || (listError && !tokens) ? (
        <p class="note tokens-unavailable" role="status">
          Join tokens are unavailable: {listError}
        </p>
      ) : (
        <form class="toolbar token-form" onSubmit={create}>
          <label>
            Valid for{' '}
            <select
              name="ttl"
              value={String(ttl)}
              onChange={(e) => setTtl(Number((e.target as HTMLSelectElement).value))}
            >
              {TTLS.map(([sec, label]) => (
                <option key={sec} value={String(sec)}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <label>
            The host becomes{' '}
            <select
              name="role"
              value={chosenRole}
              onChange={(e) => setRole((e.target as HTMLSelectElement).value as 'controller' | 'worker')}
            >
              <option value="controller" disabled={controllers >= 3}>
                a controller (etcd, API; receives the CA key)
              </option>
              <option value="worker">a worker (runs VMs)</option>
            </select>
          </label>
          <input
            name="description"
            placeholder="Description (e.g. the new host's name)"
            maxLength={256}
            value={description}
            onInput={(e) => setDescription((e.target as HTMLInputElement).value)}
          />
          <button type="submit" class="primary" disabled={busy}>
            Create join token
          </button>
        </form>
      )}
      {createError && (
        <div class="form-error" role="alert">
          {createError}
        </div>
      )}
      {created?.token && <NewToken t={created} onDone={() => setCreated(undefined)} />}
      {tokens && (
        <table class="grid tokens-table">
          <thead>
            <tr>
              <th>Status</th>
              <th>ID</th>
              <th>Role</th>
              <th>Description</th>
              <th>Created</th>
              <th>Expires</th>
              <th>Used by</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => (
              <tr key={t.id} data-id={t.id} data-status={t.status}>
                <td>
                  <span class={`state-badge tk-${t.status}`}>{t.status}</span>
                </td>
                <td class="mono">{t.id}</td>
                <td class="token-role">{t.role}</td>
                <td>{t.description ?? ''}</td>
                <td title={when(t.createdAt)}>
                  {ago(t.createdAt)} <span class="muted">by {t.createdBy}</span>
                </td>
                <td>{when(t.expiresAt)}</td>
                <td>
                  {t.usedBy ? (
                    <>
                      <a href={hostHref(t.usedBy)}>{t.usedBy}</a>{' '}
                      <span class="muted" title={when(t.usedAt)}>
                        {ago(t.usedAt)}
                      </span>
                    </>
                  ) : (
                    ''
                  )}
                </td>
                <td>
                  <button type="button" class="danger" data-action="revoke" onClick={() => setRevoke({ t })}>
                    {t.status === 'valid' ? 'Revoke' : 'Delete'}
                  </button>
                </td>
              </tr>
            ))}
            {tokens.length === 0 && (
              <tr>
                <td colSpan={8} class="muted">
                  No join tokens.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
      {revoke && (
        <ConfirmDialog
          title={`${revoke.t.status === 'valid' ? 'Revoke' : 'Delete'} join token ${revoke.t.id}?`}
          confirm={revoke.t.status === 'valid' ? 'Revoke' : 'Delete'}
          error={revoke.error}
          busy={revoke.busy}
          onConfirm={doRevoke}
          onCancel={() => setRevoke(undefined)}
        >
          {revoke.t.status === 'valid'
            ? 'A host can no longer join with this token.'
            : 'The record of this token is removed.'}
        </ConfirmDialog>
      )}
    </div>
  );
}

/** The token, once: copyable, with the command for the new host. */
function NewToken({ t, onDone }: { t: JoinToken; onDone: () => void }) {
  const [copied, setCopied] = useState('');
  const token = t.token!;
  async function copy(e: Event) {
    const area = (e.currentTarget as HTMLElement).parentElement!.querySelector('textarea')!;
    try {
      await navigator.clipboard.writeText(token);
    } catch {
      // No clipboard API (plain HTTP on another address): select it and use the old command.
      area.select();
      document.execCommand('copy');
    }
    setCopied('Copied');
  }
  return (
    <div class="token-once" role="status">
      <b>New join token: copy it now, it is not shown again.</b>
      <div class="copy-row">
        <textarea
          class="mono token-value"
          readOnly
          rows={3}
          value={token}
          onFocus={(e) => (e.target as HTMLTextAreaElement).select()}
        />
        <button type="button" data-action="copy" onClick={copy}>
          Copy
        </button>
        <span class="muted">{copied}</span>
      </div>
      <p>
        On the new host (single use, valid until {when(t.expiresAt)}):
        <code class="mono join-hint">
          neuroflow serve --data-dir /var/lib/neuroflow --listen IP:8006 --name NAME --join &lt;token&gt;
        </code>
        <span class="hint">
          Or pass it as NEUROFLOW_JOIN_TOKEN=… to keep it out of <span class="mono">ps</span>.
        </span>
      </p>
      <button type="button" onClick={onDone}>
        Done
      </button>
    </div>
  );
}
