import type { ComponentChildren } from 'preact';

export function ConfirmDialog(props: {
  title: string;
  children: ComponentChildren;
  confirm: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  return (
    <div class="modal-backdrop">
      <div class="modal" role="dialog" aria-label={props.title}>
        <h3>{props.title}</h3>
        <div class="modal-body">{props.children}</div>
        <div class="modal-actions">
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="button" class="danger" onClick={props.onConfirm}>
            {props.confirm}
          </button>
        </div>
      </div>
    </div>
  );
}
