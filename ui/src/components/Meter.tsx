/** A thin bar for a fraction (0–1); above `warn` it turns amber, above 1 (overcommitted) red. */
export function Meter({ value, warn = 0.9 }: { value: number; warn?: number }) {
  const pct = Math.min(100, Math.max(0, Math.round(value * 100)));
  return (
    <div
      class={`meter ${value > 1 ? 'over' : value > warn ? 'warn' : ''}`}
      data-value={Math.round(value * 100)}
    >
      <div style={{ width: `${pct}%` }} />
    </div>
  );
}
