import type { Route } from '../route';
import { useStore } from '../store';
import { StateIcon } from './StateBadge';

/** Left inventory: host → VMs, sorted by name, with state icons. */
export function Tree({ route }: { route: Route }) {
  const s = useStore();
  const host = s.nodes[0]?.name ?? 'host';
  const vms = [...s.vms].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <aside class="tree">
      <div class="tree-title">Inventory</div>
      <a class={`tree-host ${route.view === 'dashboard' ? 'sel' : ''}`} href="#/">
        ▣ {host}
      </a>
      <ul>
        {vms.map((vm) => (
          <li key={vm.id}>
            <a class={route.id === vm.id ? 'sel' : ''} href={`#/vms/${vm.id}`}>
              <StateIcon state={vm.state} /> {vm.name}
            </a>
          </li>
        ))}
      </ul>
    </aside>
  );
}
