import { Component } from 'preact';
import { useMemo } from 'preact/hooks';
import type { Vm } from '../api';
import type { Route } from '../route';
import { useStore } from '../store';
import { collator, useWindow } from '../window';
import { StateIcon } from './StateBadge';

/** Must match `.tree-list li` in app.css. */
const ROW = 24;

class TreeRow extends Component<{ vm: Vm; sel: boolean }> {
  override shouldComponentUpdate(next: { vm: Vm; sel: boolean }) {
    return next.vm !== this.props.vm || next.sel !== this.props.sel;
  }
  override render({ vm, sel }: { vm: Vm; sel: boolean }) {
    return (
      <li>
        <a class={sel ? 'sel' : ''} href={`#/vms/${vm.id}`}>
          <StateIcon state={vm.state} /> {vm.name}
        </a>
      </li>
    );
  }
}

/** Left inventory: host → VMs, sorted by name, with state icons; only the rows in view are rendered. */
export function Tree({ route }: { route: Route }) {
  const s = useStore();
  const host = s.nodes[0]?.name ?? 'host';
  const vms = useMemo(() => [...s.vms].sort((a, b) => collator.compare(a.name, b.name)), [s.vms]);
  const w = useWindow(ROW, vms.length);
  return (
    <aside class="tree">
      <div class="tree-title">Inventory</div>
      <a class={`tree-host ${route.view === 'dashboard' ? 'sel' : ''}`} href="#/">
        ▣ {host}
      </a>
      <div class="tree-list" ref={w.ref} onScroll={w.onScroll}>
        <ul style={{ paddingTop: `${w.padTop}px`, paddingBottom: `${w.padBottom}px` }}>
          {vms.slice(w.start, w.end).map((vm) => (
            <TreeRow key={vm.id} vm={vm} sel={route.id === vm.id} />
          ))}
        </ul>
      </div>
    </aside>
  );
}
