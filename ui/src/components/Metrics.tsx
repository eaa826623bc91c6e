import { useEffect, useState } from 'preact/hooks';
import { api, type HostNode, type Vm } from '../api';
import { Chart } from './Chart';

export type Range = '1h' | '24h';
type Point = { t: number } & Record<string, number | null>;
export interface Metrics {
  range: Range;
  intervalSec: number;
  points: Point[];
}

const WINDOW: Record<Range, number> = { '1h': 3600_000, '24h': 86_400_000 };

/**
 * Polls GET <path>?range= every intervalSec (at least 1 s). The data object is replaced, the charts
 * are not: they stay mounted and redraw in place.
 */
export function useMetrics(path: string, range: Range): { data?: Metrics; error: string } {
  const [data, setData] = useState<Metrics | undefined>();
  const [error, setError] = useState('');
  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      let next = 10_000;
      try {
        const m = await api<Metrics>('GET', `${path}?range=${range}`);
        if (stop) return;
        setData(m);
        setError('');
        next = Math.max(1000, m.intervalSec * 1000);
      } catch (e) {
        if (!stop) setError((e as Error).message);
      }
      if (!stop) timer = setTimeout(load, next);
    };
    load();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [path, range]);
  return { data, error };
}

export function RangeSwitch({ range, onChange }: { range: Range; onChange: (r: Range) => void }) {
  return (
    <div class="range-switch">
      {(['1h', '24h'] as const).map((r) => (
        <button
          type="button"
          key={r}
          data-range={r}
          class={range === r ? 'active' : ''}
          onClick={() => onChange(r)}
        >
          {r === '1h' ? '1 h' : '24 h'}
        </button>
      ))}
    </div>
  );
}

const col = (m: Metrics | undefined, k: string) => (m?.points ?? []).map((p) => p[k]);

/** The Monitor tab: CPU, memory, disk and network of one VM. */
export function VmMonitor({ vm }: { vm: Vm }) {
  const [range, setRange] = useState<Range>('1h');
  const { data, error } = useMetrics(`/vms/${vm.id}/metrics`, range);
  const t = (data?.points ?? []).map((p) => p.t);
  const w = WINDOW[range];
  return (
    <div class="monitor">
      <div class="toolbar">
        <RangeSwitch range={range} onChange={setRange} />
        <span class="muted">
          {data
            ? `${data.points.length} samples, every ${data.intervalSec} s${vm.state !== 'running' ? ` (VM is ${vm.state})` : ''}`
            : 'Loading…'}
        </span>
        {error && <span class="task-error">{error}</span>}
      </div>
      <div class="charts">
        <Chart
          title="CPU"
          unit="percent"
          t={t}
          windowMs={w}
          series={[{ label: 'CPU', color: '#1a66c2', values: col(data, 'cpuPercent') }]}
        />
        <Chart
          title="Memory"
          unit="bytes"
          t={t}
          windowMs={w}
          series={[{ label: 'QEMU RSS', color: '#7b3fb8', values: col(data, 'memoryBytes') }]}
        />
        <Chart
          title="Disk"
          unit="rate"
          t={t}
          windowMs={w}
          series={[
            { label: 'read', color: '#1e7d3a', values: col(data, 'diskReadBps') },
            { label: 'write', color: '#d9822b', values: col(data, 'diskWriteBps') },
          ]}
        />
        <Chart
          title="Network"
          unit="rate"
          t={t}
          windowMs={w}
          series={[
            { label: 'rx', color: '#1a66c2', values: col(data, 'netRxBps') },
            { label: 'tx', color: '#b42318', values: col(data, 'netTxBps') },
          ]}
        />
      </div>
    </div>
  );
}

/** Host CPU and memory on the dashboard. */
export function HostCharts({ node }: { node: HostNode }) {
  const [range, setRange] = useState<Range>('1h');
  const { data, error } = useMetrics(`/nodes/${encodeURIComponent(node.name)}/metrics`, range);
  const t = (data?.points ?? []).map((p) => p.t);
  const w = WINDOW[range];
  return (
    <div class="card host-charts">
      <div class="toolbar">
        <h3>Host {node.name}: usage</h3>
        <RangeSwitch range={range} onChange={setRange} />
        {error && <span class="task-error">{error}</span>}
      </div>
      <div class="charts">
        <Chart
          title="Host CPU"
          unit="percent"
          t={t}
          windowMs={w}
          series={[{ label: 'CPU', color: '#1a66c2', values: col(data, 'cpuPercent') }]}
        />
        <Chart
          title="Host memory"
          unit="bytes"
          t={t}
          windowMs={w}
          series={[
            { label: 'used', color: '#7b3fb8', values: col(data, 'memoryUsedBytes') },
            { label: 'total', color: '#9aa5b1', values: col(data, 'memoryTotalBytes') },
          ]}
        />
      </div>
    </div>
  );
}
