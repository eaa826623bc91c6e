/**
 * The end of a dialog: the API's refusal (if any), then Cancel and the action button, which reads
 * `busyLabel` and is disabled while the request runs. It submits the dialog's form, or calls `onConfirm`
 * in a dialog without one (ConfirmDialog).
 */
export function FormActions(props: {
  error?: string;
  busy: boolean;
  label: string;
  busyLabel: string;
  onCancel: () => void;
  /** Also disabled while the form is incomplete. */
  disabled?: boolean;
  testId?: string;
  onConfirm?: () => void;
  /** A destructive action (delete, force stop). */
  danger?: boolean;
}) {
  return (
    <>
      {props.error && (
        <div class="form-error" role="alert">
          {props.error}
        </div>
      )}
      <div class="modal-actions">
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button
          type={props.onConfirm ? 'button' : 'submit'}
          class={props.danger ? 'danger' : 'primary'}
          data-testid={props.testId}
          disabled={props.busy || props.disabled}
          onClick={props.onConfirm}
        >
          {props.busy ? props.busyLabel : props.label}
        </button>
      </div>
    </>
  );
}
