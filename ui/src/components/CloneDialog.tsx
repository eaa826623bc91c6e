import { useState } from 'preact/hooks';
import { api, type Vm } from '../api';
import { go } from '../route';
import { refreshAll, toast, useStore } from '../store';
import { FormActions } from './FormActions';

/** A VM name is at most 63 characters (letters, digits, . _ -). */
const MAX_NAME = 63;

/**
 * A new VM, opened on it once made. From a template: its name, where it may run, linked (instant) or
 * full (a copy). From a snapshot of any VM (`snapshot`): its name only; full copies of the disks as they
 * were then, made stopped on the source's host.
 */
export function CloneDialog({ vm, snapshot, onClose }: { vm: Vm; snapshot?: string; onClose: () => void }) {
  const s = useStore();
  const [name, setName] = useState(snapshot ? `${vm.name}-${snapshot}`.slice(0, MAX_NAME) : `${vm.name}-1`);
  const [node, setNode] = useState('');
  const [full, setFull] = useState(false);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const from = snapshot ? `${vm.name} at snapshot ${snapshot}` : vm.name;
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const body: Record<string, unknown> = { name };
      if (snapshot) body.snapshot = snapshot;
      if (node) body.placement = { node };
      if (full) body.full = true;
      const made = await api<Vm>('POST', `/vms/${vm.id}/clone`, body);
      toast(`${name} made from ${from}`, 'info');
      onClose();
      await refreshAll().catch(() => {});
      go(`/vms/${made.id}`);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="modal-backdrop">
      <form
        class="modal clone-dialog"
        role="dialog"
        aria-label={`Clone ${from}`}
        data-snapshot={snapshot}
        onSubmit={submit}
      >
        <h3>Clone {from}</h3>
        <div class="modal-body form">
          <label>
            Name
            <input name="name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          </label>
          {snapshot ? (
            <p class="hint clone-hint">
              Full copies of the disks as they were at snapshot {snapshot}; the clone starts stopped on host{' '}
              {vm.node}.
            </p>
          ) : (
            <>
              <label>
                Host
                <select
                  name="node"
                  value={node}
                  onChange={(e) => setNode((e.target as HTMLSelectElement).value)}
                >
                  <option value="">any (the scheduler picks)</option>
                  {s.nodes.map((n) => (
                    <option value={n.name}>{n.name}</option>
                  ))}
                </select>
              </label>
              <label class="check">
                <input
                  type="checkbox"
                  name="full"
                  checked={full}
                  onChange={(e) => setFull((e.target as HTMLInputElement).checked)}
                />
                Full clone: copy the disks (independent of the template; slower)
              </label>
            </>
          )}
        </div>
        <FormActions
          error={error}
          busy={busy}
          label="Clone"
          busyLabel="Cloning…"
          onCancel={onClose}
          disabled={!name}
        />
      </form>
    </div>
  );
}
