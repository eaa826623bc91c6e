import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { type Network, type NetworkPort, nicSignature } from '../networks';
import { usePolled } from '../poll';
import type { Router } from '../routers';
import type { SecurityGroup } from '../security-groups';
import { useStore } from '../store';
import { hasPorts, layoutTopology, type VmBox } from '../topology';
import { NetworkTabs } from './NetworkTabs';

/** How often the OVN networks' ports (their NICs' addresses) are read again. */
const PORTS_EVERY_MS = 10_000;

/**
 * The logical network drawn (#/topology): routers, the networks they join and their uplinks (each link
 * labelled with the router's address there), the VMs on each network with their NICs' addresses,
 * floating IPs and security groups. Every box leads to its page. The geometry is topology.ts's.
 */
export function TopologyPage() {
  const s = useStore();
  const networks = usePolled<Network[]>('/networks', 10_000);
  const routers = usePolled<Router[]>('/routers', 10_000);
  const groups = usePolled<SecurityGroup[]>('/security-groups', 15_000);
  const ports = usePorts(networks.data, nicSignature(s.vms));
  const box = useRef<HTMLDivElement>(null);
  const width = useWidth(box);
  const error = networks.error || routers.error || groups.error;
  const l =
    networks.data &&
    layoutTopology({
      networks: networks.data,
      ports,
      routers: routers.data ?? [],
      groups: groups.data ?? [],
      vms: s.vms,
      width,
    });
  return (
    <div class="topology-page">
      <div class="vm-head">
        <h2>Topology</h2>
      </div>
      <NetworkTabs active="topology" />
      <p class="hint">
        Routers on the left, each link labelled with the router's address on that network (the gateway inside,
        its uplink address outside); each network a row with its VMs under it, their NICs' addresses, floating
        IPs and security groups. A VM on two networks shows under both. Click a box to open it.
      </p>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
      <div class="topology-wrap" ref={box}>
        {!l && !error && <div class="muted">Loading…</div>}
        {l && (
          <svg
            class="topology"
            width={l.width}
            height={l.height}
            viewBox={`0 0 ${l.width} ${l.height}`}
            role="img"
            aria-label="Network topology"
          >
            {l.buses.map((b) => (
              <g key={`bus-${b.network}`} class="topo-bus">
                {b.lines.map(([x1, y1, x2, y2], i) => (
                  <line key={i} x1={x1} y1={y1} x2={x2} y2={y2} />
                ))}
              </g>
            ))}
            {l.routers.map((r) => (
              <g key={`wires-${r.name}`} class="topo-wire">
                {r.wires.map(([x1, y1, x2, y2], i) => (
                  <line key={i} x1={x1} y1={y1} x2={x2} y2={y2} />
                ))}
              </g>
            ))}
            {l.links.map((k) => (
              <g
                key={`${k.router}-${k.network}`}
                class={`topo-link topo-${k.kind}`}
                data-link={`${k.router}/${k.network}`}
              >
                <polyline points={k.points.map((p) => p.join(',')).join(' ')} />
                <text class="topo-link-label" x={k.labelX} y={k.labelY}>
                  {k.label}
                </text>
              </g>
            ))}
            {l.networks.map((n) => (
              <a key={n.name} href={n.href} class={`topo-network net-${n.type}`} data-topo-network={n.name}>
                <title>
                  {n.name} ({n.detail})
                </title>
                <rect x={n.x} y={n.y} width={n.w} height={n.h} rx={3} />
                <text x={n.x + 10} y={n.y + 17}>
                  <tspan class="topo-name">{n.name}</tspan>
                  <tspan class="topo-detail" dx={10}>
                    {n.detail}
                  </tspan>
                </text>
              </a>
            ))}
            {l.routers.map((r) => (
              <a key={r.name} href={r.href} class="topo-router" data-topo-router={r.name}>
                <title>Router {r.name}</title>
                <rect x={r.x} y={r.y} width={r.w} height={r.h} rx={4} />
                <text class="topo-name" x={r.x + 10} y={r.y + 17}>
                  {r.name}
                </text>
                <text class="topo-detail" x={r.x + 10} y={r.y + 32}>
                  {r.detail}
                </text>
              </a>
            ))}
            {l.vms.map((v) => (
              <VmNode key={`${v.vmId}-${v.network}`} v={v} />
            ))}
          </svg>
        )}
      </div>
    </div>
  );
}

/** One VM's box under one network: name, NICs there with addresses, floating IPs, group badges. */
function VmNode({ v }: { v: VmBox }) {
  const lines = [...v.nics, ...v.floatingIps];
  return (
    <a href={v.href} class={`topo-vm state-${v.state ?? 'unknown'}`} data-topo-vm={`${v.name}/${v.network}`}>
      <title>{v.title}</title>
      <rect x={v.x} y={v.y} width={v.w} height={v.h} rx={3} />
      <circle class="topo-state" cx={v.x + 10} cy={v.y + 11} r={3.5} />
      <text class="topo-name" x={v.x + 18} y={v.y + 15}>
        {v.text}
      </text>
      {lines.map((t, i) => (
        <text
          key={t}
          class={i < v.nics.length ? 'topo-nic' : 'topo-fip'}
          x={v.x + 8}
          y={v.y + 20 + (i + 1) * 14 - 3}
        >
          {t}
        </text>
      ))}
      {v.groups.map((g) => (
        <g key={g.name} class="topo-group" data-topo-group={g.name}>
          <rect x={v.x + g.x} y={v.y + v.h - 20} width={g.w} height={14} rx={2} />
          <text x={v.x + g.x + 4} y={v.y + v.h - 9.5}>
            {g.name}
          </text>
        </g>
      ))}
      {v.moreGroups > 0 && (
        <text class="topo-more" x={v.x + v.w - 24} y={v.y + v.h - 9.5}>
          +{v.moreGroups}
        </text>
      )}
    </a>
  );
}

/**
 * GET /networks/{name} for each OVN network: its ports (NICs with their addresses), by network; read
 * again when the networks or the VMs' NICs change, and every few seconds (addresses come as VMs start).
 */
function usePorts(networks: Network[] | undefined, nics: string): Record<string, NetworkPort[]> {
  const [ports, setPorts] = useState<Record<string, NetworkPort[]>>({});
  const names = (networks ?? [])
    .filter(hasPorts)
    .map((n) => n.name)
    .join(',');
  useEffect(() => {
    let live = true;
    const read = async () => {
      const list = names ? names.split(',') : [];
      const got = await Promise.all(
        list.map((n) =>
          api<Network>('GET', `/networks/${encodeURIComponent(n)}`)
            .then((d) => [n, d.ports ?? []] as const)
            .catch(() => [n, undefined] as const),
        ),
      );
      if (!live) return;
      setPorts((old) => {
        const next: Record<string, NetworkPort[]> = {};
        for (const [n, p] of got) {
          const keep = p ?? old[n];
          if (keep) next[n] = keep;
        }
        return next;
      });
    };
    read();
    const t = setInterval(() => !document.hidden && read(), PORTS_EVERY_MS);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [names, nics]);
  return ports;
}

/** The width the drawing gets: its container's, followed as the window resizes. */
function useWidth(ref: { current: HTMLElement | null }): number {
  const [width, setWidth] = useState(1100);
  useEffect(() => {
    const measure = () => {
      if (ref.current) setWidth(Math.max(640, Math.floor(ref.current.clientWidth)));
    };
    measure();
    addEventListener('resize', measure);
    return () => removeEventListener('resize', measure);
  }, []);
  return width;
}
