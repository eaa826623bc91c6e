/**
 * Which backups a retention policy keeps (the semantics of restic's and Proxmox Backup Server's `keep-*`):
 * keep-last N keeps the N newest; keep-hourly N keeps the newest backup of each of the N newest hours that
 * have one (likewise daily, weekly (ISO weeks), monthly, yearly). A backup kept by any rule is kept. With
 * no rule at all, everything is kept. Times are UTC.
 */
export interface Retention {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}

export interface Dated {
  id: string;
  /** ISO time of the backup's point in time. */
  at: string;
}

const RULES: [keyof Retention, (d: Date) => string][] = [
  ['keepHourly', (d) => d.toISOString().slice(0, 13)],
  ['keepDaily', (d) => d.toISOString().slice(0, 10)],
  ['keepWeekly', isoWeek],
  ['keepMonthly', (d) => d.toISOString().slice(0, 7)],
  ['keepYearly', (d) => d.toISOString().slice(0, 4)],
];

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day); // the Thursday of this week names its year
  const year = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/** The backups to keep (with the rules that keep each) and those to remove, newest first. */
export function applyRetention(
  backups: Dated[],
  r: Retention,
): { keep: { id: string; why: string[] }[]; remove: string[] } {
  const sorted = [...backups].sort((a, b) => b.at.localeCompare(a.at) || b.id.localeCompare(a.id));
  const active = (Object.values(r) as (number | undefined)[]).some((n) => (n ?? 0) > 0);
  const why = new Map<string, string[]>();
  const mark = (id: string, rule: string) => why.set(id, [...(why.get(id) ?? []), rule]);
  if (!active) for (const b of sorted) mark(b.id, 'no retention rule');
  for (const b of sorted.slice(0, r.keepLast ?? 0)) mark(b.id, 'last');
  for (const [rule, period] of RULES) {
    const n = r[rule] ?? 0;
    if (n <= 0) continue;
    const seen = new Set<string>();
    for (const b of sorted) {
      const p = period(new Date(b.at));
      if (seen.has(p)) continue;
      if (seen.size >= n) break;
      seen.add(p);
      mark(b.id, rule.slice(4).toLowerCase()); // the newest of its period
    }
  }
  return {
    keep: sorted.filter((b) => why.has(b.id)).map((b) => ({ id: b.id, why: why.get(b.id)! })),
    remove: sorted.filter((b) => !why.has(b.id)).map((b) => b.id),
  };
}
