import { useState } from 'preact/hooks';
import { api, type Vm } from '../api';
import { migrating } from '../migration';
import { go } from '../route';
import { attempt, refreshAll, toast, useStore } from '../store';
import { CloneDialog } from './CloneDialog';
import { ConfirmDialog } from './ConfirmDialog';
import { MigrateDialog } from './MigrateDialog';

const BEING_MIGRATED = 'Refused while the VM is being migrated';

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

/** Power buttons, enabled by state; snapshot; live migration; delete behind a confirmation. */
export function VmActions({ vm }: { vm: Vm }) {
  const s = useStore();
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [migrateOpen, setMigrateOpen] = useState(false);
  const inMigration = migrating(s.tasks, vm);
  // While the VM says a migration is under way the server refuses every action (409).
  const locked = !!vm.migration;
  const lockedTitle = locked ? BEING_MIGRATED : undefined;
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
  async function makeTemplate() {
    const ok = await attempt(`Convert ${vm.name} to a template`, () => api('POST', `/vms/${vm.id}/template`));
    if (ok !== undefined) toast(`${vm.name} is a template now`, 'info');
    refreshAll().catch(() => {});
  }
  const [cloning, setCloning] = useState(false);
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

  const deleteControl = (
    <>
      <button
        type="button"
        data-action="delete"
        class="danger"
        disabled={locked}
        title={lockedTitle}
        onClick={() => setConfirmDelete(true)}
      >
        Delete
      </button>
      {confirmDelete && (
        <ConfirmDialog
          title={`Delete ${vm.template ? 'template ' : ''}${vm.name}?`}
          confirm="Delete"
          onConfirm={remove}
          onCancel={() => setConfirmDelete(false)}
        >
          {vm.template
            ? 'This deletes the template and its disks (refused while linked clones of it exist).'
            : `This deletes the VM and its disks${live ? ', stopping it first' : ''}. It cannot be undone.`}
        </ConfirmDialog>
      )}
    </>
  );
  if (vm.template)
    return (
      <div class="actions">
        <span class="tag template-tag">template</span>
        <button
          type="button"
          class="primary"
          data-action="clone"
          disabled={locked}
          title={lockedTitle}
          onClick={() => setCloning(true)}
        >
          Clone…
        </button>
        {cloning && <CloneDialog vm={vm} onClose={() => setCloning(false)} />}
        {deleteControl}
      </div>
    );
  return (
    <div class="actions">
      {ACTIONS.map((a) => (
        <button
          type="button"
          key={a.key}
          data-action={a.key}
          disabled={locked || !a.when.includes(vm.state) || busy !== ''}
          title={lockedTitle}
          onClick={() => run(a)}
        >
          {busy === a.key ? `${a.label}…` : a.label}
        </button>
      ))}
      <button type="button" data-action="snapshot" disabled={locked} title={lockedTitle} onClick={snapshot}>
        Snapshot
      </button>
      <button
        type="button"
        data-action="migrate"
        data-testid="vm-migrate"
        disabled={(vm.state !== 'running' && vm.state !== 'paused') || inMigration || busy !== ''}
        title={
          locked
            ? BEING_MIGRATED
            : inMigration
              ? 'A migration of this VM is under way'
              : 'Move the running VM to another host'
        }
        onClick={() => setMigrateOpen(true)}
      >
        {inMigration ? 'Migrating…' : 'Migrate…'}
      </button>
      {migrateOpen && <MigrateDialog vm={vm} onClose={() => setMigrateOpen(false)} />}
      <button
        type="button"
        data-action="template"
        disabled={locked || vm.state !== 'stopped' || busy !== ''}
        title={lockedTitle ?? 'A template is never powered on; linked clones are made from it'}
        onClick={makeTemplate}
      >
        Convert to template
      </button>
      {deleteControl}
    </div>
  );
}
