import { useState } from 'preact/hooks';
import type { Vm } from '../api';
import { go } from '../route';
import { useStore } from '../store';
import { StateBadge } from './StateBadge';

type Key = 'name' | 'state' | 'memoryMiB';

export function VmList({ onCreate }: { onCreate: () => void }) {
  const s = useStore();
  const [text, setText] = useState('');
  const [state, setStateFilter] = useState('');
  const [sort, setSort] = useState<{ key: Key; dir: 1 | -1 }>({ key: 'name', dir: 1 });
  const vms = s.vms
    .filter(
      (v) => (!text || v.name.toLowerCase().includes(text.toLowerCase())) && (!state || v.state === state),
    )
    .sort((a, b) => cmp(a, b, sort.key) * sort.dir);
  const header = (key: Key, label: string) => (
    <th class="sortable" onClick={() => setSort({ key, dir: sort.key === key ? (-sort.dir as 1 | -1) : 1 })}>
      {label} {sort.key === key ? (sort.dir === 1 ? '▲' : '▼') : ''}
    </th>
  );
  return (
    <div class="vm-list">
      <div class="toolbar">
        <h2>Virtual machines</h2>
        <input
          placeholder="Filter by name"
          value={text}
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
        />
        <select value={state} onChange={(e) => setStateFilter((e.target as HTMLSelectElement).value)}>
          <option value="">All states</option>
          {['running', 'stopped', 'paused', 'starting', 'stopping', 'error'].map((st) => (
            <option key={st} value={st}>
              {st}
            </option>
          ))}
        </select>
        <button type="button" class="primary" onClick={onCreate}>
          New VM
        </button>
      </div>
      <table class="grid">
        <thead>
          <tr>
            {header('name', 'Name')}
            {header('state', 'State')}
            <th>vCPU</th>
            {header('memoryMiB', 'Memory')}
            <th>Host</th>
            <th>Agent</th>
          </tr>
        </thead>
        <tbody>
          {vms.map((vm) => (
            <tr key={vm.id} class="clickable" onClick={() => go(`/vms/${vm.id}`)}>
              <td>{vm.name}</td>
              <td>
                <StateBadge state={vm.state} />
              </td>
              <td>{vm.vcpus}</td>
              <td>{vm.memoryMiB} MiB</td>
              <td>{vm.node}</td>
              <td>{vm.agent?.status}</td>
            </tr>
          ))}
          {vms.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                No virtual machines.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

function cmp(a: Vm, b: Vm, key: Key): number {
  if (key === 'memoryMiB') return a.memoryMiB - b.memoryMiB;
  return String(a[key]).localeCompare(String(b[key]));
}
