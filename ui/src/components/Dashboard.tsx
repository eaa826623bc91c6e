import { alarms } from '../alarms';
import { fmtBytes, type HostNode, type HostState, type VmState } from '../api';
import { hostHref } from '../route';
import { useStore } from '../store';
import { AlarmList } from './Alarms';
import { Meter } from './Meter';
import { HostCharts } from './Metrics';
import { HostBadge, HostIcon, LeaderMark, StateBadge } from './StateBadge';

const STATES: VmState[] = [
  'running',
  'stopped',
  'paused',
  'starting',
  'stopping',
  'pending',
  'unknown',
  'error',
];
const HOST_STATES: HostState[] = ['ready', 'maintenance', 'not-ready'];
/** Hosts listed by name on the dashboard; the cluster page lists them all. */
const MAX_HOSTS = 8;

export function Dashboard() {
  const s = useStore();
  const count = (st: VmState) => s.vms.filter((v) => v.state === st).length;
  // One host (--dev, or a cluster of one): its details and graphs; several: a summary of the hosts.
  const single = s.nodes.length <= 1;
  const n = s.nodes[0];
  return (
    <div class="dashboard">
      <h2>Dashboard</h2>
      <div class="cards">
        {single ? <HostCard n={n} /> : <HostsCard nodes={s.nodes} />}
        <div class="card">
          <h3>Virtual machines: {s.vms.length}</h3>
          <ul class="counts">
            {STATES.map((st) => (
              <li key={st}>
                <StateBadge state={st} /> <b>{count(st)}</b>
              </li>
            ))}
          </ul>
          <a href="#/vms">All virtual machines →</a>
        </div>
        <div class="card">
          <h3>Alarms</h3>
          <AlarmList items={alarms(s.vms, s.nodes)} />
        </div>
        <div class="card">
          <h3>Recent tasks</h3>
          <ul class="recent">
            {s.tasks.slice(0, 8).map((t) => (
              <li key={t.id} class={`task-${t.status}`}>
                {t.type} <span class="muted">{t.status}</span>
                {t.error && <div class="task-error">{t.error.message}</div>}
              </li>
            ))}
          </ul>
        </div>
      </div>
      {single && n && <HostCharts key={n.name} node={n} />}
    </div>
  );
}

function HostCard({ n }: { n: HostNode | undefined }) {
  const usedMem =
    n && n.memoryAvailableBytes != null ? n.memoryTotalBytes - n.memoryAvailableBytes : undefined;
  return (
    <div class="card">
      <h3>Host {n ? <a href={hostHref(n.name)}>{n.name}</a> : ''}</h3>
      {n ? (
        <dl>
          <dt>CPU</dt>
          <dd>
            {n.cpus} × {n.cpuModel}
          </dd>
          {n.loadAvg && (
            <>
              <dt>Load</dt>
              <dd>{n.loadAvg.map((l) => l.toFixed(2)).join(' ')}</dd>
            </>
          )}
          <dt>Memory</dt>
          <dd>
            {usedMem === undefined ? (
              `${fmtBytes(n.memoryTotalBytes)} (usage not reported)`
            ) : (
              <>
                {fmtBytes(usedMem)} used of {fmtBytes(n.memoryTotalBytes)}
                <Meter value={usedMem / n.memoryTotalBytes} />
              </>
            )}
          </dd>
          <dt>Allocated to VMs</dt>
          <dd>
            {n.allocatedMemoryMiB} MiB, {n.allocation.vcpus} vCPU
          </dd>
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
        </dl>
      ) : (
        <p class="muted">Loading…</p>
      )}
    </div>
  );
}

/** Several hosts: ready of total, maintenance and not-ready counts, cluster capacity, the hosts by name. */
function HostsCard({ nodes }: { nodes: HostNode[] }) {
  const by = (st: HostState) => nodes.filter((n) => n.state === st).length;
  let cpus = 0;
  let vcpus = 0;
  let mem = 0;
  let used = 0;
  let reserved = 0;
  for (const n of nodes) {
    cpus += n.cpus;
    vcpus += n.allocation.vcpus;
    mem += n.memoryTotalBytes;
    reserved += n.allocation.memoryBytes;
    if (n.memoryAvailableBytes != null) used += n.memoryTotalBytes - n.memoryAvailableBytes;
  }
  return (
    <div class="card hosts-card">
      <h3>
        Hosts: {by('ready')} / {nodes.length} ready
      </h3>
      <ul class="counts">
        {HOST_STATES.map((st) => (
          <li key={st} class={st === 'not-ready' && by(st) > 0 ? 'alarmed' : ''}>
            <HostBadge state={st} /> <b>{by(st)}</b>
          </li>
        ))}
      </ul>
      <dl>
        <dt>CPU</dt>
        <dd>
          {cpus} CPUs, {vcpus} vCPU allocated
        </dd>
        <dt>Memory</dt>
        <dd>
          {fmtBytes(used)} used, {fmtBytes(reserved)} reserved of {fmtBytes(mem)}
          <Meter value={mem ? used / mem : 0} />
        </dd>
      </dl>
      <ul class="host-rows">
        {nodes.slice(0, MAX_HOSTS).map((n) => (
          <li key={n.name}>
            <a href={hostHref(n.name)}>
              <HostIcon state={n.state} /> {n.name}
              {n.leader && <LeaderMark />}
            </a>
            <span class="muted">
              {n.vms.running}/{n.vms.total} VMs running
            </span>
          </li>
        ))}
      </ul>
      <a href="#/cluster">{nodes.length > MAX_HOSTS ? `All ${nodes.length} hosts →` : 'Cluster →'}</a>
    </div>
  );
}
