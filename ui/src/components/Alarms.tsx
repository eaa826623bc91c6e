import type { Alarm } from '../alarms';

export function AlarmList({ items }: { items: Alarm[] }) {
  if (items.length === 0) return <p class="muted">No alarms.</p>;
  return (
    <ul class="alarms">
      {items.map((a) => (
        <li key={a.text} class={`alarm alarm-${a.level}`} data-level={a.level}>
          {a.href ? <a href={a.href}>{a.text}</a> : a.text}
        </li>
      ))}
    </ul>
  );
}
