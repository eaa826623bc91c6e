import { useState } from 'preact/hooks';
import { api, type Vm } from '../api';
import { go } from '../route';
import { attempt, refreshAll, toast } from '../store';
import { ConfirmDialog } from './ConfirmDialog';

type Action = { key: string; label: string; path: string; when: Vm['state'][] };

const ACTIONS: Action[] = [
  { key: 'start', label: 'Start', path: 'start', when: ['stopped', 'error'] },
  { key: 'stop', label: 'Shut down', path: 'stop', when: ['running', 'paused'] },
  {
    key: 'force-stop',
    label: 'Force stop',
    path: 'stop?force=true',
    when: ['running', 'paused', 'starting', 'stopping', 'error'],
  },
  { key: 'reboot', label: 'Reboot', path: 'reboot', when: ['running'] },
  { key: 'pause', label: 'Pause', path: 'pause', when: ['running'] },
  { key: 'resume', label: 'Resume', path: 'resume', when: ['paused'] },
];

/** Power buttons, enabled by state; snapshot; delete behind a confirmation. */
export function VmActions({ vm }: { vm: Vm }) {
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [busy, setBusy] = useState('');

  async function run(a: Action) {
    setBusy(a.key);
    await attempt(`${a.label} ${vm.name}`, () => api('POST', `/vms/${vm.id}/${a.path}`));
    setBusy('');
  }
  async function snapshot() {
    const name = prompt(
      'Snapshot name',
      `snap-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}`,
    );
    if (!name) return;
    const ok = await attempt(`Snapshot ${vm.name}`, () => api('POST', `/vms/${vm.id}/snapshots`, { name }));
    if (ok) toast(`Snapshot ${name} taken`, 'info');
    refreshAll().catch(() => {});
  }
  // A pending VM has no host and no process: nothing to stop.
  const live = vm.state !== 'stopped' && vm.state !== 'pending';
  async function remove() {
    setConfirmDelete(false);
    const force = live ? '?force=true' : '';
    const ok = await attempt(`Delete ${vm.name}`, () => api('DELETE', `/vms/${vm.id}${force}`));
    if (ok !== undefined) {
      go('/vms');
      refreshAll().catch(() => {});
    }
  }

  return (
    <div class="actions">
      {ACTIONS.map((a) => (
        <button
          type="button"
          key={a.key}
          data-action={a.key}
          disabled={!a.when.includes(vm.state) || busy !== ''}
          onClick={() => run(a)}
        >
          {busy === a.key ? `${a.label}…` : a.label}
        </button>
      ))}
      <button type="button" data-action="snapshot" onClick={snapshot}>
        Snapshot
      </button>
      <button type="button" data-action="delete" class="danger" onClick={() => setConfirmDelete(true)}>
        Delete
      </button>
      {confirmDelete && (
        <ConfirmDialog
          title={`Delete ${vm.name}?`}
          confirm="Delete"
          onConfirm={remove}
          onCancel={() => setConfirmDelete(false)}
        >
          This deletes the VM and its disks{live ? ', stopping it first' : ''}. It cannot be undone.
        </ConfirmDialog>
      )}
    </div>
  );
}
