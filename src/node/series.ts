/**
 * Time series in two fixed rings: fine points (one per sample, the last hour at 10 s) and coarse points
 * (averages of `perCoarse` fine points, a day at 5 min). Memory stays constant whatever the uptime.
 */
export type Point = { t: number } & Record<string, number | null>;

export class Series {
  private readonly fine: Point[] = [];
  private readonly coarse: Point[] = [];
  private pending: Point[] = [];

  constructor(
    private readonly fineSize = 360,
    private readonly coarseSize = 288,
    private readonly perCoarse = 30,
  ) {}

  add(p: Point): void {
    push(this.fine, p, this.fineSize);
    this.pending.push(p);
    if (this.pending.length >= this.perCoarse) {
      push(this.coarse, average(this.pending), this.coarseSize);
      this.pending = [];
    }
  }

  points(range: 'fine' | 'coarse'): Point[] {
    return range === 'fine' ? [...this.fine] : [...this.coarse];
  }
}

function push(ring: Point[], p: Point, size: number): void {
  ring.push(p);
  if (ring.length > size) ring.shift();
}

/** Mean of each field (nulls ignored), stamped with the last point's time. */
export function average(points: Point[]): Point {
  const out: Point = { t: points.at(-1)!.t };
  const keys = new Set(points.flatMap((p) => Object.keys(p)).filter((k) => k !== 't'));
  for (const k of keys) {
    const vals = points.map((p) => p[k]).filter((v): v is number => typeof v === 'number');
    out[k] = vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
  }
  return out;
}
