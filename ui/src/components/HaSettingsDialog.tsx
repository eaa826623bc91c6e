import { useState } from 'preact/hooks';
import { ApiError, api, type HaSettings, type HaStatus } from '../api';
import { DETECTION_MAX_SEC, DETECTION_MIN_SEC } from '../ha';
import { toast } from '../store';
import { FormActions } from './FormActions';

/** The cluster's HA settings: detection time and host failures to tolerate; the API's refusal stays in it. */
export function HaSettingsDialog({
  settings,
  onSaved,
  onClose,
}: {
  settings: HaSettings;
  onSaved: (s: HaStatus) => void;
  onClose: () => void;
}) {
  const [f, setF] = useState({
    detectionSec: String(settings.detectionSec),
    tolerateHostFailures: String(settings.tolerateHostFailures),
    monitoringTimeoutSec: String(settings.monitoringTimeoutSec),
  });
  const [error, setError] = useState('');
  const [badField, setBadField] = useState('');
  const [busy, setBusy] = useState(false);
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  // Left as typed when not a number: the API says what is wrong with it.
  const num = (v: string) => (v.trim() === '' || Number.isNaN(Number(v)) ? v : Number(v));

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    setBadField('');
    try {
      const next = await api<HaStatus>('PUT', '/ha', {
        detectionSec: num(f.detectionSec),
        tolerateHostFailures: num(f.tolerateHostFailures),
        monitoringTimeoutSec: num(f.monitoringTimeoutSec),
      });
      toast(
        `HA settings saved: detection ${next.settings.detectionSec} s, tolerates ${next.settings.tolerateHostFailures} host failure(s)`,
        'info',
      );
      onSaved(next);
    } catch (err) {
      setError((err as Error).message);
      if (err instanceof ApiError) setBadField(err.details?.[0]?.path ?? '');
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="modal-backdrop">
      <form
        class="modal ha-settings-dialog"
        role="dialog"
        aria-label="HA settings"
        noValidate
        onSubmit={submit}
      >
        <h3>High availability settings</h3>
        <div class="modal-body form">
          <label>
            Detection time (s)
            <input
              name="detectionSec"
              type="number"
              min={DETECTION_MIN_SEC}
              max={DETECTION_MAX_SEC}
              step={1}
              class={badField === 'detectionSec' ? 'invalid' : ''}
              value={f.detectionSec}
              onInput={set('detectionSec')}
            />
            <span class="hint">
              Silence (no heartbeat, no answer to probes) before a host is declared failed and its VMs are
              restarted elsewhere; hosts fence themselves a second before ({DETECTION_MIN_SEC} to{' '}
              {DETECTION_MAX_SEC} s).
            </span>
          </label>
          <label>
            Host failures to tolerate
            <input
              name="tolerateHostFailures"
              type="number"
              min={0}
              max={16}
              step={1}
              class={badField === 'tolerateHostFailures' ? 'invalid' : ''}
              value={f.tolerateHostFailures}
              onInput={set('tolerateHostFailures')}
            />
            <span class="hint">
              Admission control refuses power-ons that would leave the HA VMs no room after this many hosts
              fail (0: off).
            </span>
          </label>
          <label>
            VM monitoring timeout (s)
            <input
              name="monitoringTimeoutSec"
              type="number"
              min={20}
              max={3600}
              step={1}
              class={badField === 'monitoringTimeoutSec' ? 'invalid' : ''}
              value={f.monitoringTimeoutSec}
              onInput={set('monitoringTimeoutSec')}
            />
            <span class="hint">
              A monitored VM whose agent is silent this long, with no disk I/O, is reset (3 times an hour at
              most).
            </span>
          </label>
        </div>
        <FormActions error={error} busy={busy} label="Save" busyLabel="Saving…" onCancel={onClose} />
      </form>
    </div>
  );
}
