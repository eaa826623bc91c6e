import { fmtBytes } from '../api';

export interface Series {
  label: string;
  color: string;
  values: (number | null | undefined)[];
}

export type Unit = 'percent' | 'bytes' | 'rate';

const W = 480;
const H = 150;
const PAD = { l: 64, r: 10, t: 8, b: 20 };

export function fmtValue(v: number, unit: Unit): string {
  if (unit === 'percent') return `${v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)} %`;
  const b = fmtBytes(v).replace('.0 ', ' ');
  return unit === 'rate' ? `${b}/s` : b;
}

/**
 * The y axis: a gridline step of 1, 2, 2.5 or 5 × 10^k (byte units scaled by 1024 so lines land on round
 * KiB/MiB/GiB), 3 to 5 lines above zero; percent is 0–100 % in steps of 25 unless values exceed it.
 */
export function yAxis(max: number, unit: Unit): { max: number; step: number } {
  if (unit === 'percent' && max <= 100) return { max: 100, step: 25 };
  if (!(max > 0)) return { max: 1024, step: 256 };
  let scale = 1;
  if (unit !== 'percent') while (max / scale >= 1024) scale *= 1024;
  const raw = max / scale / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  const step = (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p * scale;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

function clock(t: number, seconds: boolean): string {
  const d = new Date(t);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}${seconds ? `:${p(d.getSeconds())}` : ''}`;
}

/**
 * A small SVG line chart. It stays mounted while its data changes: Preact only rewrites the path and
 * label attributes. `data-points` carries how many samples the first series has drawn (for tests).
 */
export function Chart(props: {
  title: string;
  unit: Unit;
  t: number[];
  series: Series[];
  /**
   * The x-axis window in ms, ending at the newest point (1 h or 24 h). While there is less data than
   * that (a VM started minutes ago), the axis spans the data only (at least a minute).
   */
  windowMs: number;
}) {
  const { t, series, unit } = props;
  const end = t.length ? t[t.length - 1]! : Date.now();
  const start = Math.max(end - props.windowMs, Math.min(t[0] ?? end, end - 60_000));
  const span = end - start;
  let max = 0;
  for (const s of series) for (const v of s.values) if (v != null && v > max) max = v;
  const axis = yAxis(max, unit);
  const yMax = axis.max;
  const x = (tt: number) => PAD.l + ((tt - start) / span) * (W - PAD.l - PAD.r);
  const y = (v: number) => PAD.t + (1 - Math.min(v, yMax) / yMax) * (H - PAD.t - PAD.b);
  const paths = series.map((s) => {
    let d = '';
    let pen = false;
    let n = 0;
    for (let i = 0; i < t.length; i++) {
      const v = s.values[i];
      if (v == null || t[i]! < start) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${x(t[i]!).toFixed(1)} ${y(v).toFixed(1)}`;
      pen = true;
      n++;
    }
    return { d, n };
  });
  const ticks: number[] = [];
  for (let v = 0; v <= yMax + axis.step / 2; v += axis.step) ticks.push(v / yMax);
  const last = (s: Series) => {
    for (let i = s.values.length - 1; i >= 0; i--) {
      const v = s.values[i];
      if (v != null) return fmtValue(v, unit);
    }
    return '—';
  };
  return (
    <figure class="chart" data-title={props.title} data-points={paths[0]?.n ?? 0}>
      <figcaption>
        <b>{props.title}</b>
        {series.map((s) => (
          <span key={s.label} class="legend">
            <i style={{ background: s.color }} />
            {s.label} <span class="mono">{last(s)}</span>
          </span>
        ))}
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={props.title}>
        {ticks.map((f) => {
          const yy = y(yMax * f);
          return (
            <g key={f} class="grid-line">
              <line x1={PAD.l} x2={W - PAD.r} y1={yy} y2={yy} />
              <text x={PAD.l - 6} y={yy + 4} text-anchor="end">
                {fmtValue(yMax * f, unit)}
              </text>
            </g>
          );
        })}
        {[0, 0.5, 1].map((f) => (
          <text
            key={f}
            class="x-label"
            x={PAD.l + f * (W - PAD.l - PAD.r)}
            y={H - 5}
            text-anchor={f === 0 ? 'start' : f === 1 ? 'end' : 'middle'}
          >
            {clock(start + f * span, span < 600_000)}
          </text>
        ))}
        {paths.map((p, i) => (
          <path key={series[i]!.label} class="series" d={p.d || 'M0 0'} stroke={series[i]!.color} />
        ))}
      </svg>
    </figure>
  );
}
