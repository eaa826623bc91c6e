/** Renders rows as an aligned text table, the way `qm list` or `esxcli` print. */
export function table(rows: Record<string, unknown>[], columns: { key: string; title: string }[]): string {
  const cells = rows.map((r) => columns.map((c) => fmt(r[c.key])));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.title.toUpperCase())), ...cells.map(line)].join('\n');
}

function fmt(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (Array.isArray(v)) return v.join(',');
  return String(v);
}

export { bytes } from '../util/format';
