import type { ComponentChildren } from 'preact';

export function ConfirmDialog(props: {
  title: string;
  children: ComponentChildren;
  confirm: string;
  onConfirm: () => void;
  onCancel: () => void;
  /** The API's answer to a failed attempt, shown in the dialog (which stays open). */
  error?: string;
  busy?: boolean;
}) {
  return (
    <div class="modal-backdrop">
      <div class="modal" role="dialog" aria-label={props.title}>
        <h3>{props.title}</h3>
        <div class="modal-body">{props.children}</div>
        {props.error && (
          <div class="form-error" role="alert">
            {props.error}
          </div>
        )}
        <div class="modal-actions">
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="button" class="danger" disabled={props.busy} onClick={props.onConfirm}>
            {props.confirm}
          </button>
        </div>
      </div>
    </div>
  );
}
