import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, apiFull, type Vm } from '../api';
import {
  cloudInitLocked,
  passwordNeeded,
  type StartupForm,
  startupEditBody,
  startupForm,
  startupProblem,
} from '../startup';
import { refreshVms, toast } from '../store';
import { FormActions } from './FormActions';
import { STALE_EDIT } from './VmHardwareDialogs';

/**
 * Autostart and cloud-init fields, shared by the create dialog and the edit dialog. `passwordSet` (edit):
 * the VM has a password, offered to keep; `locked` (edit): its cloud-init holds a document the UI cannot
 * show, so only removing it is offered.
 */
export function StartupFields({
  f,
  onChange,
  passwordSet = false,
  locked = false,
  editing = false,
  passwordNote,
}: {
  f: StartupForm;
  onChange: (f: StartupForm) => void;
  passwordSet?: boolean;
  locked?: boolean;
  editing?: boolean;
  /** Shown under the password field. */
  passwordNote?: ComponentChildren;
}) {
  const set = (k: keyof StartupForm) => (e: Event) => {
    const el = e.target as HTMLInputElement;
    onChange({ ...f, [k]: el.type === 'checkbox' ? el.checked : el.value });
  };
  const ci = f.cloudInit && !locked;
  return (
    <>
      <label class="check">
        <input name="onBoot" type="checkbox" checked={f.onBoot} onChange={set('onBoot')} /> Start when the
        host boots
      </label>
      <div class="form-row">
        <label>
          Order
          <input
            name="order"
            type="number"
            min={0}
            max={1000}
            step={1}
            value={f.order}
            disabled={!f.onBoot}
            onInput={set('order')}
          />
        </label>
        <label>
          Delay (s)
          <input
            name="delaySec"
            type="number"
            min={0}
            max={600}
            step={1}
            value={f.delaySec}
            disabled={!f.onBoot}
            onInput={set('delaySec')}
          />
        </label>
      </div>
      <p class="hint">
        When its host comes back from a restart or a planned shutdown, the VM starts again if it was running:
        lower order first, the host's next VM the delay later.
      </p>
      <label class="check">
        <input name="cloudInit" type="checkbox" checked={f.cloudInit} onChange={set('cloudInit')} />{' '}
        Cloud-init
      </label>
      {locked && (
        <p class="hint warning-text cloud-init-locked">
          This VM's cloud-init has a user-data or network-config document set through the API, which the UI
          cannot show: change it through the API. Unticking Cloud-init removes it.
        </p>
      )}
      <label>
        Host name
        <input
          name="hostname"
          placeholder="the VM's name"
          value={f.hostname}
          disabled={!ci}
          onInput={set('hostname')}
        />
      </label>
      <label>
        SSH public keys
        <textarea
          name="sshKeys"
          rows={3}
          placeholder="ssh-ed25519 AAAA… user@host (one a line)"
          value={f.sshKeys}
          disabled={!ci}
          onInput={set('sshKeys')}
        />
      </label>
      {passwordSet && (
        <label class="check">
          <input
            name="keepPassword"
            type="checkbox"
            checked={f.keepPassword}
            disabled={!ci}
            onChange={set('keepPassword')}
          />{' '}
          Keep the current password
        </label>
      )}
      <label>
        Root password
        <input
          name="password"
          type="password"
          autocomplete="new-password"
          placeholder={
            passwordSet ? (f.keepPassword ? 'leave empty to keep' : 'leave empty for none') : 'none'
          }
          value={f.password}
          disabled={!ci}
          onInput={set('password')}
        />
      </label>
      {passwordNote}
      <p class="hint">
        {editing
          ? 'The guest sees a cloud-init change at its next start (many guests apply keys and passwords on their first boot only). '
          : 'The guest reads these at each start from a seed CD-ROM (NoCloud). '}
        The password is kept only as a hash, never shown.
      </p>
    </>
  );
}

/**
 * Autostart and cloud-init of a VM; both apply at once (nothing pending). The VM is read with its ETag when
 * the dialog opens and only what changed is sent, with If-Match (a change made meanwhile is refused, 412).
 * A PATCH replaces the whole cloud-init and the password exists only as a hash: it is kept by sending no
 * cloud-init at all, so a change of the other cloud-init fields needs it typed again (or dropped).
 */
export function EditStartupDialog({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const [loaded, setLoaded] = useState<{ vm: Vm; etag?: string } | undefined>();
  const [f, setF] = useState<StartupForm | undefined>();
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    let live = true;
    apiFull<Vm>('GET', `/vms/${vm.id}`)
      .then(({ data, etag }) => {
        if (!live) return;
        setLoaded({ vm: data, etag });
        setF(startupForm(data));
      })
      .catch((e) => live && setError((e as Error).message));
    return () => {
      live = false;
    };
  }, [vm.id]);
  const cur = loaded?.vm;
  const retype = !!cur && !!f && passwordNeeded(cur, f);

  async function submit(e: Event) {
    e.preventDefault();
    if (!f || !cur || retype) return;
    setError('');
    const problem = startupProblem(f);
    if (problem) {
      setError(problem);
      return;
    }
    const body = startupEditBody(cur, f);
    if (Object.keys(body).length === 0) {
      onClose();
      return;
    }
    setBusy(true);
    try {
      const { data } = await apiFull<Vm>(
        'PATCH',
        `/vms/${vm.id}`,
        body,
        loaded?.etag ? { 'if-match': loaded.etag } : {},
      );
      const said = [
        body.onBoot && `start at host boot ${body.onBoot.enabled ? 'on' : 'off'}`,
        body.cloudInit === null && 'cloud-init removed',
        body.cloudInit && 'cloud-init saved; the guest sees it at its next start',
      ].filter(Boolean);
      toast(`${data.name}: ${said.join(', ')}`, 'info');
      onClose();
      await refreshVms().catch(() => {});
    } catch (err) {
      setError(err instanceof ApiError && err.status === 412 ? STALE_EDIT : (err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="modal-backdrop">
      <form
        class="modal edit-startup-dialog"
        role="dialog"
        aria-label={`Startup and cloud-init of ${vm.name}`}
        noValidate
        onSubmit={submit}
      >
        <h3>Startup and cloud-init of {vm.name}</h3>
        {!f || !cur ? (
          <div class="modal-body">{!error && <p class="muted">Loading…</p>}</div>
        ) : (
          <div class="modal-body form">
            <StartupFields
              f={f}
              onChange={setF}
              passwordSet={!!cur.cloudInit?.passwordSet}
              locked={cloudInitLocked(cur)}
              editing
              passwordNote={
                retype && (
                  <p class="hint warning-text password-needed">
                    Saving replaces all cloud-init settings and the current password is kept only as a hash:
                    type the password again (or a new one), or untick "Keep the current password" to remove
                    it.
                  </p>
                )
              }
            />
          </div>
        )}
        <FormActions
          error={error}
          busy={busy}
          label="Save"
          busyLabel="Saving…"
          onCancel={onClose}
          disabled={!f || retype}
        />
      </form>
    </div>
  );
}
