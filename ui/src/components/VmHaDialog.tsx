import { useState } from 'preact/hooks';
import { ApiError, api, type HaPolicy, type Vm, type VmHa } from '../api';
import { HA_PRIORITIES, ISOLATION_RESPONSES, isolationHint } from '../ha';
import { toast } from '../store';
import { FormActions } from './FormActions';

/** A VM's HA policy: on/off, priority, restart order, isolation response; the API's refusal stays in it. */
export function VmHaDialog({
  vm,
  policy,
  onSaved,
  onClose,
}: {
  vm: Vm;
  policy: HaPolicy;
  onSaved: (ha: VmHa) => void;
  onClose: () => void;
}) {
  const [f, setF] = useState({ ...policy, restartOrder: String(policy.restartOrder) });
  const [error, setError] = useState('');
  const [badField, setBadField] = useState('');
  const [busy, setBusy] = useState(false);
  const set = (k: keyof typeof f) => (e: Event) => {
    const el = e.target as HTMLInputElement;
    setF({ ...f, [k]: el.type === 'checkbox' ? el.checked : el.value });
  };

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    setBadField('');
    try {
      const order = f.restartOrder.trim();
      const ha = await api<VmHa>('PUT', `/vms/${vm.id}/ha`, {
        enabled: f.enabled,
        priority: f.priority,
        // Left as typed when not a number: the API says what is wrong with it.
        restartOrder: order === '' || Number.isNaN(Number(order)) ? order : Number(order),
        isolationResponse: f.isolationResponse,
        monitoring: !!f.monitoring,
      });
      toast(
        `HA of ${vm.name} saved: ${ha.policy.enabled ? `on, ${ha.policy.priority} priority` : 'off'}`,
        'info',
      );
      onSaved(ha);
    } catch (err) {
      setError((err as Error).message);
      if (err instanceof ApiError) setBadField(err.details?.[0]?.path ?? '');
    } finally {
      setBusy(false);
    }
  }

  const invalid = (k: string) => (badField === k ? 'invalid' : '');
  return (
    <div class="modal-backdrop">
      <form
        class="modal ha-dialog"
        role="dialog"
        aria-label={`High availability of ${vm.name}`}
        noValidate
        onSubmit={submit}
      >
        <h3>High availability of {vm.name}</h3>
        <div class="modal-body form">
          <label class="check">
            <input name="enabled" type="checkbox" checked={f.enabled} onChange={set('enabled')} /> Restart on
            another host when its host fails
          </label>
          <label class="check">
            <input name="monitoring" type="checkbox" checked={!!f.monitoring} onChange={set('monitoring')} />{' '}
            VM monitoring: reset the guest when its agent stops answering and its disks are idle
          </label>
          <label>
            Priority
            <select name="priority" class={invalid('priority')} value={f.priority} onChange={set('priority')}>
              {HA_PRIORITIES.map((p) => (
                <option key={p.value} value={p.value}>
                  {p.label}
                </option>
              ))}
            </select>
            <span class="hint">Each priority runs (or 30 s pass) before the next one starts.</span>
          </label>
          <label>
            Restart order
            <input
              name="restartOrder"
              type="number"
              min={0}
              max={1000}
              step={1}
              class={invalid('restartOrder')}
              value={f.restartOrder}
              onInput={set('restartOrder')}
            />
            <span class="hint">Within a priority, lower first (0 to 1000).</span>
          </label>
          <label>
            Isolation response
            <select
              name="isolationResponse"
              class={invalid('isolationResponse')}
              value={f.isolationResponse}
              onChange={set('isolationResponse')}
            >
              {ISOLATION_RESPONSES.map((r) => (
                <option key={r.value} value={r.value} title={r.hint}>
                  {r.label}
                </option>
              ))}
            </select>
            <span class="hint isolation-hint">{isolationHint(f.isolationResponse)}</span>
          </label>
        </div>
        <FormActions error={error} busy={busy} label="Save" busyLabel="Saving…" onCancel={onClose} />
      </form>
    </div>
  );
}
