import { Component } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import type { Vm } from '../api';
import { go, hostHref } from '../route';
import { useStore } from '../store';
import { collator, useWindow } from '../window';
import { StateBadge } from './StateBadge';
import { MigratingMark } from './Tree';
import { TagChips } from './VmTags';

type Key = 'name' | 'state' | 'memoryMiB' | 'node';

/** Must match `.vm-list tr.row` in app.css. */
const ROW = 30;

/** One row; re-renders only when its VM object changes (the store keeps unchanged VMs' objects). */
class VmRow extends Component<{ vm: Vm }> {
  override shouldComponentUpdate(next: { vm: Vm }) {
    return next.vm !== this.props.vm;
  }
  override render({ vm }: { vm: Vm }) {
    return (
      <tr class="clickable row" data-id={vm.id} onClick={() => go(`/vms/${vm.id}`)}>
        <td>
          {vm.name}
          {vm.migration && <MigratingMark m={vm.migration} />}
          {vm.tags?.length ? (
            <>
              {' '}
              <TagChips tags={vm.tags} max={3} quiet />
            </>
          ) : null}
        </td>
        <td>
          <StateBadge state={vm.state} reason={vm.reason} />
          {vm.reason && (vm.state === 'pending' || vm.state === 'unknown' || vm.state === 'error') && (
            <span class="row-reason" title={vm.reason}>
              {vm.reason}
            </span>
          )}
        </td>
        <td>{vm.vcpus}</td>
        <td>{vm.memoryMiB} MiB</td>
        <td>
          {vm.node ? (
            <a href={hostHref(vm.node)} onClick={(e) => e.stopPropagation()}>
              {vm.node}
            </a>
          ) : (
            <span class="muted">—</span>
          )}
        </td>
        <td>{vm.agent?.status}</td>
      </tr>
    );
  }
}

export function VmList({ onCreate, onImport }: { onCreate: () => void; onImport: () => void }) {
  const s = useStore();
  const [text, setText] = useState('');
  const [state, setStateFilter] = useState('');
  const [sort, setSort] = useState<{ key: Key; dir: 1 | -1 }>({ key: 'name', dir: 1 });
  const vms = useMemo(() => {
    const q = text.toLowerCase();
    return s.vms
      .filter(
        (v) =>
          (!q || v.name.toLowerCase().includes(q) || (v.tags ?? []).some((t) => t.includes(q))) &&
          (!state || v.state === state),
      )
      .sort((a, b) => cmp(a, b, sort.key) * sort.dir);
  }, [s.vms, text, state, sort]);
  const w = useWindow(ROW, vms.length);
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
          placeholder="Filter by name or tag"
          value={text}
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
        />
        <select value={state} onChange={(e) => setStateFilter((e.target as HTMLSelectElement).value)}>
          <option value="">All states</option>
          {['running', 'stopped', 'paused', 'starting', 'stopping', 'pending', 'unknown', 'error'].map(
            (st) => (
              <option key={st} value={st}>
                {st}
              </option>
            ),
          )}
        </select>
        <button type="button" class="primary" onClick={onCreate}>
          New VM
        </button>
        <button
          type="button"
          data-action="import"
          title="Import a VM exported from VMware"
          onClick={onImport}
        >
          Import…
        </button>
        <span class="muted vm-count" data-count={vms.length}>
          {vms.length === s.vms.length ? `${vms.length} VMs` : `${vms.length} of ${s.vms.length} VMs`}
        </span>
      </div>
      <div class="vm-scroll" ref={w.ref} onScroll={w.onScroll}>
        <table class="grid">
          <thead>
            <tr>
              {header('name', 'Name')}
              {header('state', 'State')}
              <th>vCPU</th>
              {header('memoryMiB', 'Memory')}
              {header('node', 'Host')}
              <th>Agent</th>
            </tr>
          </thead>
          <tbody>
            {w.padTop > 0 && <tr class="spacer" style={{ height: `${w.padTop}px` }} />}
            {vms.slice(w.start, w.end).map((vm) => (
              <VmRow key={vm.id} vm={vm} />
            ))}
            {w.padBottom > 0 && <tr class="spacer" style={{ height: `${w.padBottom}px` }} />}
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
    </div>
  );
}

function cmp(a: Vm, b: Vm, key: Key): number {
  if (key === 'memoryMiB') return a.memoryMiB - b.memoryMiB;
  return collator.compare(String(a[key]), String(b[key]));
}
