import type { ComponentChildren } from 'preact';
import { FormActions } from './FormActions';

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
        <FormActions
          error={props.error}
          busy={!!props.busy}
          label={props.confirm}
          busyLabel={props.confirm}
          onCancel={props.onCancel}
          onConfirm={props.onConfirm}
          danger
        />
      </div>
    </div>
  );
}
