import { alarms } from '../alarms';
import { fmtBytes, type VmState } from '../api';
import { useStore } from '../store';
import { AlarmList } from './Alarms';
import { HostCharts } from './Metrics';
import { StateBadge } from './StateBadge';

const STATES: VmState[] = ['running', 'stopped', 'paused', 'starting', 'stopping', 'error'];

export function Dashboard() {
  const s = useStore();
  const n = s.nodes[0];
  const count = (st: VmState) => s.vms.filter((v) => v.state === st).length;
  const usedMem = n ? n.memoryTotalBytes - n.memoryAvailableBytes : 0;
  return (
    <div class="dashboard">
      <h2>Dashboard</h2>
      <div class="cards">
        <div class="card">
          <h3>Host {n?.name}</h3>
          {n ? (
            <dl>
              <dt>CPU</dt>
              <dd>
                {n.cpus} × {n.cpuModel}
              </dd>
              <dt>Load</dt>
              <dd>{n.loadAvg.map((l) => l.toFixed(2)).join(' ')}</dd>
              <dt>Memory</dt>
              <dd>
                {fmtBytes(usedMem)} used of {fmtBytes(n.memoryTotalBytes)}
                <Meter value={usedMem / n.memoryTotalBytes} />
              </dd>
              <dt>Allocated to VMs</dt>
              <dd>{n.allocatedMemoryMiB} MiB</dd>
              <dt>Accelerator</dt>
              <dd title={n.acceleratorReason}>
                {n.accelerator.toUpperCase()} <span class="muted">({n.acceleratorReason})</span>
              </dd>
              <dt>QEMU</dt>
              <dd>{n.qemuVersion}</dd>
            </dl>
          ) : (
            <p class="muted">Loading…</p>
          )}
        </div>
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
      {n && <HostCharts key={n.name} node={n} />}
    </div>
  );
}

function Meter({ value }: { value: number }) {
  return (
    <div class="meter">
      <div style={{ width: `${Math.min(100, Math.round(value * 100))}%` }} />
    </div>
  );
}
