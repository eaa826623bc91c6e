import { useState } from 'preact/hooks';
import { api, type Task, type Vm } from '../api';
import { migrationDetails, migrationTargets } from '../migration';
import { putTask, toast, useStore } from '../store';
import { FormActions } from './FormActions';

/** Live migration of a running or paused VM: to a chosen host or where the scheduler says, bandwidth capped. */
export function MigrateDialog({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const s = useStore();
  const [node, setNode] = useState('');
  const [bandwidth, setBandwidth] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const targets = migrationTargets(s.nodes, vm);
  async function submit(e: Event) {
    e.preventDefault();
    setError('');
    const body: Record<string, unknown> = {};
    if (node) body.node = node;
    if (bandwidth.trim()) {
      const mib = Number(bandwidth);
      if (!Number.isInteger(mib) || mib < 1 || mib > 100_000) {
        setError('The bandwidth limit is a whole number of MiB/s from 1 to 100000 (or empty: no limit).');
        return;
      }
      body.maxBandwidthMiBps = mib;
    }
    setBusy(true);
    try {
      const task = await api<Task>('POST', `/vms/${vm.id}/migrate`, body);
      putTask(task);
      const d = migrationDetails(task);
      const to = d?.target || node;
      toast(
        `Migrating ${vm.name}${to ? ` to ${to}` : ''}${d?.why ? `: ${d.why}` : ''} (progress in Recent tasks)`,
        'info',
      );
      onClose();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="modal-backdrop">
      <form
        class="modal migrate-dialog"
        role="dialog"
        aria-label={`Migrate ${vm.name}`}
        data-testid="migrate-dialog"
        onSubmit={submit}
      >
        <h3>Migrate {vm.name}</h3>
        <div class="modal-body form">
          <p class="hint">
            Live: the guest keeps running on {vm.node} while its memory (and its disks on local pools) is
            copied, and pauses only briefly at the switch-over.
          </p>
          <label>
            Target host
            <select
              name="node"
              data-testid="migrate-target"
              value={node}
              onChange={(e) => setNode((e.target as HTMLSelectElement).value)}
            >
              {targets.map((t) => (
                <option key={t.value} value={t.value} disabled={t.disabled}>
                  {t.label}
                </option>
              ))}
            </select>
          </label>
          <label>
            Bandwidth limit (MiB/s, optional)
            <input
              name="bandwidth"
              type="number"
              min={1}
              max={100000}
              step={1}
              placeholder="no limit"
              data-testid="migrate-bandwidth"
              value={bandwidth}
              onInput={(e) => setBandwidth((e.target as HTMLInputElement).value)}
            />
          </label>
        </div>
        <FormActions
          error={error}
          busy={busy}
          label="Migrate"
          busyLabel="Migrating…"
          onCancel={onClose}
          testId="migrate-submit"
        />
      </form>
    </div>
  );
}
