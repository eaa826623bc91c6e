import { Component } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import type { HostNode, Vm, VmMigration } from '../api';
import { hostHref, type Route } from '../route';
import { useStore } from '../store';
import { collator, useWindow } from '../window';
import { HostIcon, LeaderMark, StateIcon } from './StateBadge';

/** Must match `.tree-list li` in app.css. */
const ROW = 24;
const PENDING = '\u0000pending';

type Row =
  | { k: 'cluster' }
  | { k: 'host'; name: string; node?: HostNode; count: number; open: boolean }
  | { k: 'pending'; count: number; open: boolean }
  | { k: 'vm'; vm: Vm };

class VmRow extends Component<{ vm: Vm; sel: boolean }> {
  override shouldComponentUpdate(next: { vm: Vm; sel: boolean }) {
    return next.vm !== this.props.vm || next.sel !== this.props.sel;
  }
  override render({ vm, sel }: { vm: Vm; sel: boolean }) {
    return (
      <li class="d2">
        <a class={sel ? 'sel' : ''} href={`#/vms/${vm.id}`} title={vm.reason}>
          <StateIcon state={vm.state} title={vm.reason ? `${vm.state}: ${vm.reason}` : vm.state} /> {vm.name}
          {vm.migration && <MigratingMark m={vm.migration} />}
        </a>
      </li>
    );
  }
}

/** "⇄" beside a VM whose live migration is under way. */
export function MigratingMark({ m }: { m: VmMigration }) {
  return (
    <span
      class="migrating-mark"
      data-testid="vm-migrating-mark"
      title={`migrating ${m.source} → ${m.target}`}
    >
      {' '}
      ⇄
    </span>
  );
}

function Twisty({ open, onClick, label }: { open: boolean; onClick: () => void; label: string }) {
  return (
    <button
      type="button"
      class="twisty"
      aria-expanded={open}
      aria-label={`${open ? 'collapse' : 'expand'} ${label}`}
      onClick={onClick}
    >
      {open ? '▾' : '▸'}
    </button>
  );
}

/**
 * Left inventory: cluster → hosts (state icon, leader mark) → their VMs, then VMs waiting for a host
 * under "Pending". Sorted by name; only the rows in view are rendered (one flat list of rows).
 */
export function Tree({ route }: { route: Route }) {
  const s = useStore();
  const [closed, setClosed] = useState<ReadonlySet<string>>(new Set());
  const toggle = (key: string) => {
    const next = new Set(closed);
    if (!next.delete(key)) next.add(key);
    setClosed(next);
  };
  const rows = useMemo(() => {
    const vms = [...s.vms].sort((a, b) => collator.compare(a.name, b.name));
    const byHost = new Map<string, Vm[]>();
    const pending: Vm[] = [];
    for (const n of s.nodes) byHost.set(n.name, []);
    for (const vm of vms) {
      if (!vm.node) pending.push(vm);
      else {
        const list = byHost.get(vm.node);
        if (list) list.push(vm);
        else byHost.set(vm.node, [vm]);
      }
    }
    const nodes = new Map(s.nodes.map((n) => [n.name, n]));
    const out: Row[] = [{ k: 'cluster' }];
    for (const name of [...byHost.keys()].sort(collator.compare)) {
      const list = byHost.get(name)!;
      const open = !closed.has(name);
      out.push({ k: 'host', name, node: nodes.get(name), count: list.length, open });
      if (open) for (const vm of list) out.push({ k: 'vm', vm });
    }
    if (pending.length > 0) {
      const open = !closed.has(PENDING);
      out.push({ k: 'pending', count: pending.length, open });
      if (open) for (const vm of pending) out.push({ k: 'vm', vm });
    }
    return out;
  }, [s.vms, s.nodes, closed]);
  const w = useWindow(ROW, rows.length);
  const c = s.cluster;
  const vmSel = route.view === 'vm' ? route.id : undefined;
  return (
    <aside class="tree">
      <div class="tree-title">Inventory</div>
      <div class="tree-list" ref={w.ref} onScroll={w.onScroll}>
        <ul style={{ paddingTop: `${w.padTop}px`, paddingBottom: `${w.padBottom}px` }}>
          {rows.slice(w.start, w.end).map((r) => {
            if (r.k === 'vm')
              return <VmRow key={r.vm.id} vm={r.vm} sel={vmSel === r.vm.id || vmSel === r.vm.name} />;
            if (r.k === 'cluster')
              return (
                <li key="\u0000cluster" class="d0">
                  <a class={`tree-cluster ${route.view === 'cluster' ? 'sel' : ''}`} href="#/cluster">
                    ▣ {c?.name ?? 'Cluster'}
                    {c?.mode === 'single-host' && <span class="muted"> (single host)</span>}
                  </a>
                </li>
              );
            if (r.k === 'pending')
              return (
                <li key={PENDING} class="d1">
                  <Twisty open={r.open} label="pending VMs" onClick={() => toggle(PENDING)} />
                  <span class="tree-group" title="VMs waiting for a host">
                    <span class="state-icon st-pending">◌</span> Pending ({r.count})
                  </span>
                </li>
              );
            const sel = route.view === 'host' && route.id === r.name;
            return (
              <li key={`\u0000host:${r.name}`} class="d1">
                {r.count > 0 ? (
                  <Twisty open={r.open} label={r.name} onClick={() => toggle(r.name)} />
                ) : (
                  <span class="twisty" />
                )}
                <a
                  class={`tree-host ${sel ? 'sel' : ''}`}
                  href={hostHref(r.name)}
                  data-host={r.name}
                  data-state={r.node?.state ?? 'absent'}
                  title={
                    r.node ? `${r.name}: ${r.node.state}, ${r.count} VMs` : `${r.name}: not in the cluster`
                  }
                >
                  {r.node ? (
                    <HostIcon state={r.node.state} />
                  ) : (
                    <span class="state-icon hs-not-ready">?</span>
                  )}{' '}
                  {r.name}
                  {r.node?.leader && <LeaderMark />}
                </a>
              </li>
            );
          })}
        </ul>
      </div>
    </aside>
  );
}
