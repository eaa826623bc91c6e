import { useState } from 'preact/hooks';
import type { HaRecovery, HaStatus } from '../api';
import { detectionLine, HOST_HA_STATES, recoveryHead, recoverySteps, tolerateLine } from '../ha';
import { usePolled } from '../poll';
import { hostHref } from '../route';
import { HaSettingsDialog } from './HaSettingsDialog';

/** Reload interval of the card: a host failure's timeline moves by the second. */
const HA_POLL_MS = 3000;
/** Shown recoveries (the API keeps more). */
const HA_RECOVERY_ROWS = 20;

/**
 * High availability on the cluster page: detection time and tolerated host failures (Edit…), admission
 * control, protected and unprotected VMs, each host as HA judges it, and the recovery timelines;
 * reloaded every 3 s while the page is open.
 */
export function HaCard() {
  const { data: h, setData: setH, error } = usePolled<HaStatus>('/ha', HA_POLL_MS);
  const [editing, setEditing] = useState(false);

  return (
    <div class="card section ha-status" data-testid="ha-card">
      <h3>High availability</h3>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
      {!h ? (
        !error && <p class="muted">Loading…</p>
      ) : (
        <>
          <dl>
            <dt>Detection time</dt>
            <dd class="ha-detection" data-sec={h.settings.detectionSec}>
              {detectionLine(h.settings)}{' '}
              <button
                type="button"
                class="link"
                data-action="edit-ha-settings"
                onClick={() => setEditing(true)}
              >
                Edit…
              </button>
            </dd>
            <dt>Tolerates</dt>
            <dd class="ha-tolerate">{tolerateLine(h.settings.tolerateHostFailures)}</dd>
            <dt>VM monitoring</dt>
            <dd class="ha-monitoring-timeout">
              reset after {h.settings.monitoringTimeoutSec} s of a silent agent and idle disks
            </dd>
            <dt>Admission control</dt>
            <dd
              class={`ha-admission ${h.admission.ok ? 'ok' : 'warning-text'}`}
              data-ok={String(h.admission.ok)}
            >
              {h.admission.ok ? '' : '⚠ '}
              {h.admission.message}
            </dd>
            <dt>Protected VMs</dt>
            <dd class="ha-protected">{h.protectedVms}</dd>
            <dt>Hosts</dt>
            <dd class="ha-hosts">
              {h.hosts.map((x) => (
                <span key={x.name} class="ha-host" data-host={x.name} data-state={x.state}>
                  <a href={hostHref(x.name)}>{x.name}</a>{' '}
                  <span
                    class={`state-badge ${HOST_HA_STATES[x.state]?.cls ?? ''}`}
                    title={HOST_HA_STATES[x.state]?.hint}
                  >
                    {x.state}
                  </span>
                </span>
              ))}
            </dd>
          </dl>
          {h.unprotectedVms.length > 0 && (
            <>
              <h4>HA VMs not protected</h4>
              <ul class="ha-unprotected">
                {h.unprotectedVms.map((v) => (
                  <li key={v.id} data-vm={v.name}>
                    <a href={`#/vms/${v.id}`}>{v.name}</a>: <span class="drs-reason">{v.reason}</span>
                  </li>
                ))}
              </ul>
            </>
          )}
          <h4>Recoveries</h4>
          {h.recoveries.length === 0 ? (
            <p class="muted ha-none">No host has failed.</p>
          ) : (
            <ul class="ha-recoveries">
              {h.recoveries.slice(0, HA_RECOVERY_ROWS).map((r) => (
                <Recovery key={r.id} r={r} />
              ))}
            </ul>
          )}
        </>
      )}
      {editing && h && (
        <HaSettingsDialog
          settings={h.settings}
          onClose={() => setEditing(false)}
          onSaved={(next) => {
            setH(next);
            setEditing(false);
          }}
        />
      )}
    </div>
  );
}

/** One host failure: "h3 failed at 12:01:02 — detected, fenced +1.2 s, db running on h1 +8.4 s", and more. */
function Recovery({ r }: { r: HaRecovery }) {
  const steps = recoverySteps(r);
  return (
    <li class="ha-recovery" data-recovery={r.id} data-status={r.status} data-host={r.host}>
      <div class="ha-recovery-head">
        <span class={`state-badge ha-rs-${r.status}`}>{r.status}</span>{' '}
        <span class="ha-timeline">
          <b>{recoveryHead(r)}</b> —{' '}
          {steps.map((s, i) => (
            <span
              key={`${s.step}:${s.vm ?? ''}`}
              class="ha-step"
              data-step={s.step}
              data-vm={s.vm}
              data-state={s.state}
            >
              {i > 0 && ', '}
              {s.text}
            </span>
          ))}
        </span>
        {r.status === 'done' && r.durationSec !== undefined && (
          <span class="muted ha-duration"> · VMs back in {r.durationSec.toFixed(1)} s</span>
        )}
      </div>
      <div class="hint ha-reason">Declared failed: {r.reason}</div>
      {r.fence && <div class="ha-fence">Storage fencing: {r.fence}</div>}
      {r.unprotected.length > 0 && (
        <div class="ha-not-restarted warning-text">
          Not restarted:{' '}
          {r.unprotected.map((v, i) => (
            <span key={v.id} data-vm={v.name}>
              {i > 0 && '; '}
              <a href={`#/vms/${v.id}`}>{v.name}</a> ({v.reason})
            </span>
          ))}
        </div>
      )}
    </li>
  );
}
