import { hostHref } from '../route';
import { useStore } from '../store';
import { VmMonitor } from './Metrics';
import { StateBadge } from './StateBadge';
import { VmActions } from './VmActions';
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
] as const;

export function VmPage({ id, tab }: { id: string; tab: string }) {
  const s = useStore();
  const vm = s.vms.find((v) => v.id === id || v.name === id);
  if (!vm) return <div class="muted">{s.vms.length ? 'No such VM.' : 'Loading…'}</div>;
  return (
    <div class="vm-page">
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
      </div>
    </div>
  );
}
