import { dismissToast, useStore } from '../store';

export function Toasts() {
  const s = useStore();
  return (
    <div class="toasts">
      {s.toasts.map((t) => (
        <div key={t.id} class={`toast ${t.kind}`} role="alert">
          {t.text}
          <button type="button" class="toast-x" aria-label="dismiss" onClick={() => dismissToast(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
