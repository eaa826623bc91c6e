import { useState } from 'preact/hooks';
import { ApiError, api, fmtBytes, type HostNode } from '../api';
import { ago, duration, when } from '../format';
import { watchdogText, watchdogTitle } from '../ha';
import { evacuationDetails, evacuationOf, evacuationProgress } from '../migration';
import { go } from '../route';
import { attempt, getState, refreshAll, setState, toast, useStore } from '../store';
import { collator } from '../window';
import { ConfirmDialog } from './ConfirmDialog';
import { Meter } from './Meter';
import { HostCharts } from './Metrics';
import { HostBadge, LeaderMark, StateBadge } from './StateBadge';

/** VMs listed on a host's page; the VM list filters all of them. */
const MAX_VMS = 200;

/** A host: summary, capacity and allocation, storage, etcd membership, graphs, its VMs; maintenance, removal. */
export function HostPage({ name }: { name: string }) {
  const s = useStore();
  const n = s.nodes.find((x) => x.name === name);
  if (!n) return <div class="muted">{s.nodes.length ? `No host named ${name}.` : 'Loading…'}</div>;
  const vms = s.vms.filter((v) => v.node === name).sort((a, b) => collator.compare(a.name, b.name));
  const waiting = s.vms.filter((v) => v.state === 'pending' && v.placement?.node === name);
  const policy = s.cluster?.policy;
  const usedMem = n.memoryAvailableBytes != null ? n.memoryTotalBytes - n.memoryAvailableBytes : undefined;
  const vcpuCap = policy ? n.cpus * policy.vcpuOvercommit : 0;
  const memCap = policy ? n.memoryTotalBytes * policy.memoryOvercommit : n.memoryTotalBytes;
  const evacuation = evacuationOf(s.tasks, name);
  const evacuating = evacuation && evacuationDetails(evacuation);
  return (
    <div class="host-page">
      <div class="vm-head host-head">
        <h2>{n.name}</h2>
        <HostBadge state={n.state} />
        {n.leader && (
          <span class="tag leader">
            <LeaderMark /> leader
          </span>
        )}
        <span class="tag">{n.role}</span>
      </div>
      <HostActions n={n} single={s.cluster?.mode === 'single-host'} />
      {n.state !== 'maintenance' && (
        <p class="hint maintenance-hint">
          Entering maintenance mode live-migrates this host's running VMs to other hosts (progress in Recent
          tasks); leaving it moves nothing back (DRS may rebalance).
        </p>
      )}
      {n.state === 'maintenance' && (
        <p class="note maintenance-note">
          In maintenance mode: no new VMs are placed on this host. Entering it live-migrated the host's
          running VMs to other hosts (the node.evacuate task in Recent tasks lists what moved, and what stayed
          and why); a VM that could not move keeps running here. Leaving maintenance mode moves nothing back
          (DRS may rebalance later).
          {evacuation && (
            <span class="evacuation-progress" data-testid="host-evacuation">
              {' '}
              Evacuating now: {evacuating ? evacuationProgress(evacuating) : 'starting'}.
            </span>
          )}
        </p>
      )}
      {n.state === 'not-ready' && (
        <p class="note critical">
          No heartbeat from this host since {when(n.lastHeartbeat)}: its VMs show as unknown and are not
          started elsewhere.
        </p>
      )}
      <div class="cards">
        <div class="card">
          <h3>Summary</h3>
          <dl>
            <dt>State</dt>
            <dd>
              <HostBadge state={n.state} />
            </dd>
            <dt>Role</dt>
            <dd>
              {n.role}
              {n.leader ? ' (leader)' : ''}
            </dd>
            <dt>Last heartbeat</dt>
            <dd title={when(n.lastHeartbeat)} class="heartbeat">
              {ago(n.lastHeartbeat)}
            </dd>
            {n.connected !== undefined && (
              <>
                <dt>Connection</dt>
                <dd class={n.connected ? '' : 'reason'}>
                  {n.connected ? 'connected' : 'this controller cannot reach the host'}
                </dd>
              </>
            )}
            <dt>Addresses</dt>
            <dd class="mono">{n.addresses.join(', ') || '—'}</dd>
            {n.joinedAt && (
              <>
                <dt>Joined</dt>
                <dd>{when(n.joinedAt)}</dd>
              </>
            )}
            {n.uptimeSec != null && (
              <>
                <dt>Uptime</dt>
                <dd>{duration(n.uptimeSec)}</dd>
              </>
            )}
            <dt>Accelerator</dt>
            <dd title={n.acceleratorReason}>
              {n.accelerator?.toUpperCase() ?? '—'}{' '}
              {n.acceleratorReason && <span class="muted">({n.acceleratorReason})</span>}
            </dd>
            {n.qemuVersion && (
              <>
                <dt>QEMU</dt>
                <dd>{n.qemuVersion}</dd>
              </>
            )}
            {n.kernel && (
              <>
                <dt>Kernel</dt>
                <dd>{n.kernel}</dd>
              </>
            )}
            {n.connected !== false && (
              <>
                <dt>Watchdog</dt>
                <dd class="watchdog" title={watchdogTitle(n.watchdog)}>
                  {watchdogText(n.watchdog)}
                </dd>
              </>
            )}
          </dl>
        </div>
        <div class="card">
          <h3>Capacity and allocation</h3>
          <dl>
            <dt>CPU</dt>
            <dd>
              {n.cpus} × {n.cpuModel || 'CPU'}
              {n.loadAvg && <span class="muted"> (load {n.loadAvg.map((l) => l.toFixed(2)).join(' ')})</span>}
            </dd>
            <dt>vCPU allocated</dt>
            <dd title="Only powered-on VMs hold vCPUs and memory; a stopped VM costs its disks">
              {n.allocation.vcpus}
              {vcpuCap > 0 && (
                <>
                  {' '}
                  of {+vcpuCap.toFixed(1)}{' '}
                  <span class="muted">
                    ({n.cpus} CPUs × {policy!.vcpuOvercommit})
                  </span>
                  <Meter value={n.allocation.vcpus / vcpuCap} />
                </>
              )}
            </dd>
            <dt>Memory used</dt>
            <dd>
              {usedMem === undefined ? (
                `— of ${fmtBytes(n.memoryTotalBytes)}`
              ) : (
                <>
                  {fmtBytes(usedMem)} of {fmtBytes(n.memoryTotalBytes)}
                  <Meter value={n.memoryTotalBytes ? usedMem / n.memoryTotalBytes : 0} />
                </>
              )}
            </dd>
            <dt>Memory reserved</dt>
            <dd>
              {fmtBytes(n.allocation.memoryBytes)} of {fmtBytes(memCap)}
              {policy && policy.memoryOvercommit !== 1 && (
                <span class="muted"> (overcommit × {policy.memoryOvercommit})</span>
              )}
              <Meter value={memCap ? n.allocation.memoryBytes / memCap : 0} />
            </dd>
            <dd class="muted">by {n.allocation.poweredOn} powered-on VM(s); stopped VMs hold none</dd>
            <dt>VMs</dt>
            <dd>
              {n.vms.total} placed, {n.vms.running} running
            </dd>
          </dl>
        </div>
        <div class="card">
          <h3>Storage and etcd</h3>
          <dl>
            {n.pools.map((p) => (
              <>
                <dt>Pool {p.name}</dt>
                <dd>
                  {fmtBytes(p.totalBytes - p.freeBytes)} used of {fmtBytes(p.totalBytes)}{' '}
                  <span class="muted">({p.type})</span>
                  <Meter value={p.totalBytes ? 1 - p.freeBytes / p.totalBytes : 0} />
                </dd>
              </>
            ))}
            {n.pools.length === 0 && (
              <>
                <dt>Pools</dt>
                <dd>—</dd>
              </>
            )}
            <dt>etcd</dt>
            {n.etcd ? (
              <dd class="etcd-role">
                {n.etcd.learner ? 'learner (catching up)' : 'voting member'}{' '}
                {n.etcd.memberId && <span class="mono muted">{n.etcd.memberId}</span>}
              </dd>
            ) : (
              <dd class="etcd-role">
                {s.cluster?.mode === 'single-host'
                  ? 'embedded, loopback only (single host)'
                  : 'none (worker)'}
              </dd>
            )}
            {n.etcd && (
              <>
                <dt>Peer URL</dt>
                <dd class="mono">{n.etcd.peerUrl}</dd>
                <dt>Client URL</dt>
                <dd class="mono">{n.etcd.clientUrl}</dd>
              </>
            )}
          </dl>
        </div>
      </div>
      <HostCharts key={n.name} node={n} />
      <div class="card host-vms">
        <h3>Virtual machines on {n.name}</h3>
        <table class="grid">
          <thead>
            <tr>
              <th>Name</th>
              <th>State</th>
              <th>vCPU</th>
              <th>Memory</th>
            </tr>
          </thead>
          <tbody>
            {vms.slice(0, MAX_VMS).map((v) => (
              <tr key={v.id} class="clickable" onClick={() => go(`/vms/${v.id}`)}>
                <td>
                  <a href={`#/vms/${v.id}`}>{v.name}</a>
                </td>
                <td>
                  <StateBadge state={v.state} reason={v.reason} />
                </td>
                <td>{v.vcpus}</td>
                <td>{v.memoryMiB} MiB</td>
              </tr>
            ))}
            {vms.length === 0 && (
              <tr>
                <td colSpan={4} class="muted">
                  No VMs on this host.
                </td>
              </tr>
            )}
            {vms.length > MAX_VMS && (
              <tr>
                <td colSpan={4} class="muted">
                  and {vms.length - MAX_VMS} more (see Virtual machines)
                </td>
              </tr>
            )}
          </tbody>
        </table>
        {waiting.length > 0 && (
          <p class="muted">
            Pinned here, waiting for a place:{' '}
            {waiting.map((v, i) => (
              <>
                {i > 0 && ', '}
                <a href={`#/vms/${v.id}`}>{v.name}</a>
              </>
            ))}
          </p>
        )}
      </div>
    </div>
  );
}

function HostActions({ n, single }: { n: HostNode; single: boolean }) {
  const [busy, setBusy] = useState(false);
  const [remove, setRemove] = useState<{ error?: string; force: boolean; busy?: boolean } | undefined>();
  const inMaintenance = n.state === 'maintenance';

  async function maintenance(on: boolean) {
    setBusy(true);
    const answer = await attempt(`${on ? 'Enter' : 'Exit'} maintenance mode on ${n.name}`, () =>
      api<HostNode>('PATCH', `/nodes/${encodeURIComponent(n.name)}`, { maintenance: on }),
    );
    setBusy(false);
    if (!answer) return;
    const { evacuationTask, ...next } = answer;
    setState({ nodes: getState().nodes.map((x) => (x.name === next.name ? next : x)) });
    if (!on) {
      toast(`${n.name} left maintenance mode; VMs that moved away stay where they are`, 'info');
      return;
    }
    if (!evacuationTask) {
      toast(`${n.name} is in maintenance mode`, 'info');
      return;
    }
    // The node.evacuate task's events bring it into Recent tasks and keep it current.
    toast(
      `${n.name} is in maintenance mode: its VMs are being live-migrated away (progress in Recent tasks)`,
      'info',
    );
  }

  async function doRemove() {
    if (!remove) return;
    const force = remove.force;
    setRemove({ ...remove, busy: true });
    try {
      await api('DELETE', `/nodes/${encodeURIComponent(n.name)}${force ? '?force=true' : ''}`);
      setRemove(undefined);
      toast(`Host ${n.name} removed from the cluster`, 'info');
      go('/cluster');
      refreshAll().catch(() => {});
    } catch (e) {
      // VMs placed there: the API refuses; say so and offer to remove anyway.
      const inUse = e instanceof ApiError && e.code === 'in_use';
      setRemove({ error: (e as Error).message, force: force || inUse });
    }
  }

  return (
    <div class="actions">
      {inMaintenance ? (
        <button
          type="button"
          data-action="maintenance-exit"
          disabled={busy}
          title="New VMs may be placed on this host again; VMs that moved away are not moved back (DRS may rebalance)"
          onClick={() => maintenance(false)}
        >
          Exit maintenance mode
        </button>
      ) : (
        <button
          type="button"
          data-action="maintenance-enter"
          disabled={busy}
          title="No new VMs are placed on this host, and its running VMs are live-migrated to other hosts (progress in Recent tasks)"
          onClick={() => maintenance(true)}
        >
          Enter maintenance mode
        </button>
      )}
      <button
        type="button"
        data-action="remove"
        class="danger"
        disabled={single}
        title={
          single ? 'This host runs alone (serve --dev): there is no cluster to remove it from' : undefined
        }
        onClick={() => setRemove({ force: false })}
      >
        Remove from cluster
      </button>
      {remove && (
        <ConfirmDialog
          title={`Remove ${n.name} from the cluster?`}
          confirm={remove.force ? 'Force remove' : 'Remove'}
          error={remove.error}
          busy={remove.busy}
          onConfirm={doRemove}
          onCancel={() => setRemove(undefined)}
        >
          {remove.force ? (
            <p>
              Removing anyway leaves its VMs' records pointing at a host that is gone; their disks stay on{' '}
              {n.name}. The host's certificate and etcd member are dropped.
            </p>
          ) : (
            <p>
              The host leaves the cluster{n.etcd ? ' and its etcd member is removed' : ''}. Joining it again
              takes a new join token.
            </p>
          )}
        </ConfirmDialog>
      )}
    </div>
  );
}
