import type { Network } from '../networks';
import {
  insideChoices,
  type Router,
  type RouterForm,
  type RouterProblems,
  type StaticRoute,
  uplinkChoices,
} from '../routers';

/**
 * A router's networks, uplink and static routes, as the Add router dialog and a router's Edit form ask
 * them: overlay networks to join (one on another router with its router named: the API refuses it), a
 * provider network as uplink with an optional address and SNAT, static routes as rows.
 */
export function RouterFields(props: {
  f: RouterForm;
  setF: (f: RouterForm) => void;
  problems: RouterProblems;
  networks: Network[] | undefined;
  routers: Router[] | undefined;
  /** The router being edited (its own networks are not "taken"). */
  self?: string;
}) {
  const { f, setF, problems } = props;
  const inside = insideChoices(props.networks, props.routers, props.self);
  const uplinks = uplinkChoices(props.networks);
  const toggle = (name: string) => (e: Event) => {
    const on = (e.target as HTMLInputElement).checked;
    setF({ ...f, networks: on ? [...f.networks, name] : f.networks.filter((n) => n !== name) });
  };
  const setRoute = (i: number, k: keyof StaticRoute) => (e: Event) =>
    setF({
      ...f,
      routes: f.routes.map((r, j) => (j === i ? { ...r, [k]: (e.target as HTMLInputElement).value } : r)),
    });
  const known = new Set(inside.map((n) => n.name));
  const taken = inside.filter((n) => n.router && f.networks.includes(n.name));
  const unknown = f.networks.filter((n) => !known.has(n));
  return (
    <>
      <fieldset class="router-networks">
        <legend>Networks (overlay)</legend>
        {inside.length === 0 && unknown.length === 0 && (
          <p class="hint">No overlay networks yet: add one on the Networks tab.</p>
        )}
        {inside.map((n) => (
          <label key={n.name} class="check" title={n.router ? `On router ${n.router}` : undefined}>
            <input
              type="checkbox"
              name="network"
              value={n.name}
              checked={f.networks.includes(n.name)}
              onChange={toggle(n.name)}
            />{' '}
            {n.name} <span class="muted mono">{n.subnet}</span>
            {n.router && <span class="muted"> (on router {n.router})</span>}
          </label>
        ))}
        {taken.length > 0 && (
          <span class="warning-text" data-field="taken">
            {taken.map((n) => `${n.name} is on router ${n.router}`).join('; ')}: a network joins one router
            (its gateway is that router's), so this is refused.
          </span>
        )}
        {unknown.map((n) => (
          <label key={n} class="check">
            <input type="checkbox" name="network" value={n} checked onChange={toggle(n)} /> {n}{' '}
            <span class="muted">(not an overlay network now)</span>
          </label>
        ))}
        {problems.networks && (
          <span class="field-error" data-field="networks">
            {problems.networks}
          </span>
        )}
        <p class="hint">Its port on each network takes the network's gateway address.</p>
      </fieldset>
      <div class="form-row">
        <label>
          Uplink (optional)
          <select
            name="uplink"
            value={f.uplink}
            onChange={(e) => setF({ ...f, uplink: (e.target as HTMLSelectElement).value })}
          >
            <option value="">none</option>
            {uplinks.map((n) => (
              <option key={n.name} value={n.name}>
                {n.name} ({n.subnet}
                {n.vlan ? `, VLAN ${n.vlan}` : ''})
              </option>
            ))}
            {f.uplink && !uplinks.some((n) => n.name === f.uplink) && (
              <option value={f.uplink}>{f.uplink}</option>
            )}
          </select>
          {uplinks.length === 0 && <span class="hint">No provider networks.</span>}
        </label>
        <label>
          Uplink address (optional)
          <input
            name="uplinkIp"
            class={problems.uplinkIp ? 'mono invalid' : 'mono'}
            value={f.uplinkIp}
            disabled={!f.uplink}
            placeholder="the highest free one"
            autoComplete="off"
            onInput={(e) => setF({ ...f, uplinkIp: (e.target as HTMLInputElement).value })}
          />
          {problems.uplinkIp && (
            <span class="field-error" data-field="uplinkIp">
              {problems.uplinkIp}
            </span>
          )}
        </label>
      </div>
      <label class="check">
        <input
          name="snat"
          type="checkbox"
          checked={f.snat}
          disabled={!f.uplink}
          onChange={(e) => setF({ ...f, snat: (e.target as HTMLInputElement).checked })}
        />{' '}
        SNAT: the inside networks go out with the uplink address
      </label>
      <fieldset class="router-routes">
        <legend>Static routes</legend>
        {f.routes.map((r, i) => (
          <div class="route-row" key={i} data-route={i}>
            <input
              name="destination"
              class={problems.routes?.[i] ? 'mono invalid' : 'mono'}
              value={r.destination}
              placeholder="10.99.0.0/16"
              autoComplete="off"
              onInput={setRoute(i, 'destination')}
            />
            <span class="muted">via</span>
            <input
              name="nexthop"
              class={problems.routes?.[i] ? 'mono invalid' : 'mono'}
              value={r.nexthop}
              placeholder="10.77.0.254"
              autoComplete="off"
              onInput={setRoute(i, 'nexthop')}
            />
            <button
              type="button"
              class="link"
              data-action="remove-route"
              onClick={() => setF({ ...f, routes: f.routes.filter((_, j) => j !== i) })}
            >
              Remove
            </button>
            {problems.routes?.[i] && (
              <span class="field-error" data-field="route">
                {problems.routes[i]}
              </span>
            )}
          </div>
        ))}
        <button
          type="button"
          data-action="add-route"
          onClick={() => setF({ ...f, routes: [...f.routes, { destination: '', nexthop: '' }] })}
        >
          Add route
        </button>
        <p class="hint">A next hop lies on one of the router's networks (or its uplink).</p>
      </fieldset>
    </>
  );
}
