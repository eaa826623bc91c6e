import { useState } from 'preact/hooks';
import type { Task, VmMigration } from '../api';
import { migrationBanner, migrationDetails, migrationProgress, migrationTask } from '../migration';
import { hostHref } from '../route';
import { cancelTask, useStore } from '../store';
import { VmMonitor } from './Metrics';
import { StateBadge } from './StateBadge';
import { VmActions } from './VmActions';
import { VmBackups } from './VmBackups';
import { VmConsole } from './VmConsole';
import { VmSerial } from './VmSerial';
import { VmSnapshots } from './VmSnapshots';
import { VmSummary } from './VmSummary';

const TABS = [
  ['summary', 'Summary'],
  ['monitor', 'Monitor'],
  ['console', 'Console'],
  ['serial', 'Serial'],
  ['snapshots', 'Snapshots'],
  ['backups', 'Backups'],
] as const;

export function VmPage({ id, tab }: { id: string; tab: string }) {
  const s = useStore();
  const vm = s.vms.find((v) => v.id === id || v.name === id);
  if (!vm) return <div class="muted">{s.vms.length ? 'No such VM.' : 'Loading…'}</div>;
  return (
    <div class="vm-page">
      {vm.migration && (
        <MigrationBanner vmName={vm.name} m={vm.migration} task={migrationTask(s.tasks, vm.migration)} />
      )}
      <div class="vm-head">
        <h2>{vm.name}</h2>
        <StateBadge state={vm.state} reason={vm.reason} />
        <span class="vm-host">
          {vm.node ? (
            <>
              on <a href={hostHref(vm.node)}>{vm.node}</a>
            </>
          ) : (
            'no host yet'
          )}
        </span>
        {vm.reason && <span class={`reason reason-${vm.state}`}>{vm.reason}</span>}
      </div>
      {vm.warning && (
        <div class="vm-warning" role="alert" data-testid="vm-warning">
          <b>Warning:</b> {vm.warning}
        </div>
      )}
      <VmActions vm={vm} />
      <nav class="tabs">
        {TABS.map(([key, label]) => (
          <a key={key} class={tab === key ? 'active' : ''} href={`#/vms/${vm.id}/${key}`}>
            {label}
          </a>
        ))}
      </nav>
      <div class="tab-body">
        {tab === 'summary' && <VmSummary vm={vm} />}
        {tab === 'monitor' && <VmMonitor vm={vm} />}
        {tab === 'console' && <VmConsole vm={vm} />}
        {tab === 'serial' && <VmSerial vm={vm} />}
        {tab === 'snapshots' && <VmSnapshots vm={vm} />}
        {tab === 'backups' && <VmBackups vm={vm} />}
      </div>
    </div>
  );
}

/** A live migration under way: hosts, start, phase and percentage (when the task is known), Cancel. */
function MigrationBanner({ vmName, m, task }: { vmName: string; m: VmMigration; task?: Task }) {
  const [busy, setBusy] = useState(false);
  const d = task?.status === 'running' ? migrationDetails(task) : undefined;
  async function cancel() {
    setBusy(true);
    await cancelTask(m.taskId, `the migration of ${vmName}`);
    setBusy(false);
  }
  const disks = m.localDisks.length ? `local disks copied: ${m.localDisks.join(', ')}` : '';
  return (
    <div
      class="vm-migrating"
      role="status"
      data-testid="vm-migrating"
      data-task-id={m.taskId}
      data-phase={d?.phase}
      title={[d && migrationProgress(d), disks].filter(Boolean).join(' · ') || undefined}
    >
      <span>{migrationBanner(m, task)}</span>
      {task?.cancelRequested ? (
        <span class="task-cancelling">cancelling…</span>
      ) : (
        <button
          type="button"
          class="link task-cancel"
          data-testid="vm-migrating-cancel"
          disabled={busy}
          onClick={cancel}
        >
          Cancel
        </button>
      )}
    </div>
  );
}
