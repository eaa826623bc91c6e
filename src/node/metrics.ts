import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createLogger } from '../util/log';
import { procRssBytes } from '../util/proc';
import { type Point, Series } from './series';

const log = createLogger('metrics');
const CLK_TCK = 100; // Linux USER_HZ on every architecture we run on

export interface VmSampleSource {
  id: string;
  pid: number;
  vcpus: number;
  /** Cumulative bytes read/written by all disks (QMP query-blockstats). */
  blockStats(): Promise<{ rd: number; wr: number }>;
  /** Cumulative rx/tx bytes from the guest agent, when one answers. */
  netStats(): Promise<{ rx: number; tx: number } | null>;
}

interface Last {
  t: number;
  cpuTicks?: number;
  rd?: number;
  wr?: number;
  rx?: number;
  tx?: number;
}

/**
 * Samples every running VM and the host at a fixed interval (10 s; NEUROFLOW_METRICS_INTERVAL_MS for
 * tests) and keeps an hour at full resolution and a day of 5-minute averages in memory. Rates come from
 * deltas of cumulative counters, so a missed sample costs resolution, not correctness.
 */
export class MetricsCollector {
  readonly intervalMs = Number(process.env.NEUROFLOW_METRICS_INTERVAL_MS ?? 10_000);
  private readonly vmSeries = new Map<string, Series>();
  private readonly vmLast = new Map<string, Last>();
  private readonly host = new Series();
  private hostLast?: { t: number; busy: number; total: number };
  private timer?: Timer;
  private running = false;

  constructor(private readonly sources: () => VmSampleSource[]) {}

  start(): void {
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    void this.sample();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  vm(id: string, range: 'fine' | 'coarse'): Point[] {
    return this.vmSeries.get(id)?.points(range) ?? [];
  }

  hostPoints(range: 'fine' | 'coarse'): Point[] {
    return this.host.points(range);
  }

  forget(id: string): void {
    this.vmSeries.delete(id);
    this.vmLast.delete(id);
  }

  private async sample(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const now = Date.now();
      await this.sampleHost(now);
      for (const src of this.sources()) {
        try {
          await this.sampleVm(src, now);
        } catch (err) {
          log.debug('VM sample failed', { id: src.id, err: (err as Error).message });
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async sampleVm(src: VmSampleSource, now: number): Promise<void> {
    const ticks = cpuTicks(src.pid);
    const blk = await src.blockStats().catch(() => undefined);
    const net = await src.netStats().catch(() => null);
    const last = this.vmLast.get(src.id);
    const cur: Last = { t: now };
    if (ticks !== undefined) cur.cpuTicks = ticks;
    if (blk) Object.assign(cur, { rd: blk.rd, wr: blk.wr });
    if (net) Object.assign(cur, { rx: net.rx, tx: net.tx });
    this.vmLast.set(src.id, cur);
    if (!last) return; // rates need two samples
    const dt = (now - last.t) / 1000;
    const rate = (a?: number, b?: number) =>
      a !== undefined && b !== undefined && a >= b ? (a - b) / dt : null;
    const cpuRate = rate(cur.cpuTicks, last.cpuTicks);
    const point: Point = {
      t: now,
      cpuPercent: cpuRate === null ? null : Math.min(100, (cpuRate / CLK_TCK / src.vcpus) * 100),
      memoryBytes: procRssBytes(src.pid) ?? null,
      diskReadBps: rate(cur.rd, last.rd),
      diskWriteBps: rate(cur.wr, last.wr),
      netRxBps: rate(cur.rx, last.rx),
      netTxBps: rate(cur.tx, last.tx),
    };
    let series = this.vmSeries.get(src.id);
    if (!series) {
      series = new Series();
      this.vmSeries.set(src.id, series);
    }
    series.add(point);
  }

  private async sampleHost(now: number): Promise<void> {
    const stat = (await readFile('/proc/stat', 'utf8'))
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const idle = (stat[3] ?? 0) + (stat[4] ?? 0);
    const total = stat.slice(0, 8).reduce((a, b) => a + b, 0);
    const mem = await readFile('/proc/meminfo', 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(mem)?.[1] ?? 0) * 1024;
    const last = this.hostLast;
    this.hostLast = { t: now, busy: total - idle, total };
    if (!last || total === last.total) return;
    this.host.add({
      t: now,
      cpuPercent: ((total - idle - last.busy) / (total - last.total)) * 100,
      memoryUsedBytes: kb('MemTotal') - kb('MemAvailable'),
      memoryTotalBytes: kb('MemTotal'),
    });
  }
}

/**
 * A VM's traffic from its NICs' tap devices on this host (a tap receives what the guest sends): the
 * guest's rx and tx bytes summed, or null when no tap is there. `root` is /sys/class/net (tests).
 */
export async function tapCounters(
  taps: string[],
  root = '/sys/class/net',
): Promise<{ rx: number; tx: number } | null> {
  let rx = 0;
  let tx = 0;
  let seen = 0;
  for (const t of taps) {
    const read = async (f: string) => Number((await readFile(`${root}/${t}/statistics/${f}`, 'utf8')).trim());
    try {
      const [hostRx, hostTx] = await Promise.all([read('rx_bytes'), read('tx_bytes')]);
      tx += hostRx;
      rx += hostTx;
      seen++;
    } catch {
      // gone (the VM stopping): counted as absent
    }
  }
  return seen > 0 ? { rx, tx } : null;
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}
