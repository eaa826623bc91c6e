import { useEffect, useState } from 'preact/hooks';
import { api, type Vm, type VmHa } from '../api';
import { DEFAULT_HA_POLICY, isolationHint, isolationLabel, protectionLine } from '../ha';
import { refreshVms, useStore } from '../store';
import { VmHaDialog } from './VmHaDialog';

/**
 * A VM's HA policy and whether HA can restart it elsewhere now (and why not), with Edit HA…. The
 * protection is fetched again when the policy, the VM's host, disks or placement, or the hosts change.
 */
export function VmHaCard({ vm }: { vm: Vm }) {
  const nodes = useStore().nodes;
  const [ha, setHa] = useState<VmHa | undefined>();
  const [error, setError] = useState('');
  const [editing, setEditing] = useState(false);
  const key = JSON.stringify([
    vm.id,
    vm.ha,
    vm.node,
    vm.placement,
    vm.disks.map((d) => d.pool),
    nodes.map((n) => `${n.name}:${n.state}`),
  ]);
  useEffect(() => {
    let live = true;
    api<VmHa>('GET', `/vms/${vm.id}/ha`)
      .then((x) => {
        if (!live) return;
        setHa(x);
        setError('');
      })
      .catch((e) => live && setError((e as Error).message));
    return () => {
      live = false;
    };
  }, [key]);

  const policy = ha?.policy ?? { ...DEFAULT_HA_POLICY, ...vm.ha };
  const p = ha?.protection;
  return (
    <div class="card ha-card">
      <h3>High availability</h3>
      <dl>
        <dt>HA</dt>
        <dd class="ha-enabled">{policy.enabled ? 'on' : 'off'}</dd>
        <dt>Priority</dt>
        <dd class="ha-priority">{policy.priority}</dd>
        <dt>Restart order</dt>
        <dd class="ha-restart-order">{policy.restartOrder}</dd>
        <dt>VM monitoring</dt>
        <dd class="ha-monitoring">{policy.monitoring ? 'on' : 'off'}</dd>
        <dt>Isolation response</dt>
        <dd class="ha-isolation" title={isolationHint(policy.isolationResponse)}>
          {isolationLabel(policy.isolationResponse)}
        </dd>
        <dt>Protection</dt>
        <dd class={`protection prot-${p?.state ?? 'loading'}`} data-state={p?.state}>
          {p ? protectionLine(p) : '…'}
        </dd>
      </dl>
      {error && <p class="task-error">{error}</p>}
      <p>
        <button type="button" data-action="edit-ha" onClick={() => setEditing(true)}>
          Edit HA…
        </button>
      </p>
      {editing && (
        <VmHaDialog
          vm={vm}
          policy={policy}
          onClose={() => setEditing(false)}
          onSaved={(x) => {
            setHa(x);
            setEditing(false);
            refreshVms().catch(() => {});
          }}
        />
      )}
    </div>
  );
}
