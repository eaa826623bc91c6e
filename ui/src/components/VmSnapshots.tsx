import { useState } from 'preact/hooks';
import { api, type Vm } from '../api';
import { attempt, refreshAll, toast } from '../store';
import { CloneDialog } from './CloneDialog';
import { ConfirmDialog } from './ConfirmDialog';

export function VmSnapshots({ vm }: { vm: Vm }) {
  const [name, setName] = useState('');
  const [confirm, setConfirm] = useState<{ kind: 'revert' | 'delete'; snap: string } | undefined>();
  // The snapshot a new VM is being cloned from (the dialog stays open if the snapshot goes meanwhile).
  const [cloning, setCloning] = useState<string | undefined>();

  async function create(e: Event) {
    e.preventDefault();
    const ok = await attempt('Snapshot', () => api('POST', `/vms/${vm.id}/snapshots`, { name }));
    if (ok) {
      toast(`Snapshot ${name} taken`, 'info');
      setName('');
    }
    refreshAll().catch(() => {});
  }
  async function act() {
    if (!confirm) return;
    const { kind, snap } = confirm;
    setConfirm(undefined);
    const path = `/vms/${vm.id}/snapshots/${encodeURIComponent(snap)}`;
    await attempt(`${kind} ${snap}`, () =>
      kind === 'revert' ? api('POST', `${path}/revert`) : api('DELETE', path),
    );
    refreshAll().catch(() => {});
  }

  return (
    <div class="snapshots">
      <form class="toolbar" onSubmit={create}>
        <input
          placeholder="snapshot name"
          value={name}
          onInput={(e) => setName((e.target as HTMLInputElement).value)}
        />
        <button type="submit" class="primary" disabled={!name}>
          Take snapshot
        </button>
      </form>
      <table class="grid">
        <thead>
          <tr>
            <th>Name</th>
            <th>VM state</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {vm.snapshots.map((s) => (
            <tr key={s.name}>
              <td>{s.name}</td>
              <td>{s.vmState}</td>
              <td>{s.createdAt ? new Date(s.createdAt).toLocaleString() : ''}</td>
              <td>
                <button type="button" onClick={() => setConfirm({ kind: 'revert', snap: s.name })}>
                  Revert
                </button>{' '}
                <button
                  type="button"
                  data-action="clone-snapshot"
                  disabled={!!vm.migration}
                  title={
                    vm.migration
                      ? 'Refused while the VM is being migrated'
                      : 'A new VM with full copies of the disks as they were at this snapshot'
                  }
                  onClick={() => setCloning(s.name)}
                >
                  Clone…
                </button>{' '}
                <button
                  type="button"
                  class="danger"
                  onClick={() => setConfirm({ kind: 'delete', snap: s.name })}
                >
                  Delete
                </button>
              </td>
            </tr>
          ))}
          {vm.snapshots.length === 0 && (
            <tr>
              <td colSpan={4} class="muted">
                No snapshots.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {cloning && <CloneDialog vm={vm} snapshot={cloning} onClose={() => setCloning(undefined)} />}
      {confirm && (
        <ConfirmDialog
          title={`${confirm.kind === 'revert' ? 'Revert to' : 'Delete'} snapshot ${confirm.snap}?`}
          confirm={confirm.kind === 'revert' ? 'Revert' : 'Delete'}
          onConfirm={act}
          onCancel={() => setConfirm(undefined)}
        >
          {confirm.kind === 'revert'
            ? 'The disks go back to this snapshot; later changes are lost.'
            : 'The snapshot is removed.'}
        </ConfirmDialog>
      )}
    </div>
  );
}
