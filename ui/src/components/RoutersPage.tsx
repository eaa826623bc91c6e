import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { when } from '../format';
import type { Network } from '../networks';
import { usePolled } from '../poll';
import { go } from '../route';
import {
  EMPTY_ROUTER_FORM,
  floatingIpLabel,
  floatingIpProblem,
  floatingIpTargets,
  type Router,
  type RouterForm,
  routeLabel,
  routerBody,
  routerChange,
  routerForm,
  routerHref,
  routerProblems,
  routerReady,
  uplinkLabel,
} from '../routers';
import { toast, useStore } from '../store';
import { ConfirmDialog } from './ConfirmDialog';
import { FormActions } from './FormActions';
import { NetworkTabs } from './NetworkTabs';
import { RouterFields } from './RouterFields';

const none = <span class="muted">—</span>;

/**
 * Routers: OVN logical routers joining overlay networks, with their uplink (a provider network), static
 * routes and floating IPs; add one, open one (#/routers/<name>) to change its networks, uplink and routes
 * or to give a VM's NIC a floating IP (and release it), delete one (the API's refusal stays in the dialog).
 */
export function RoutersPage({ open }: { open?: string }) {
  const routers = usePolled<Router[]>('/routers', 5000);
  const networks = usePolled<Network[]>('/networks', 10_000);
  const [adding, setAdding] = useState(false);
  const [remove, setRemove] = useState<{ name: string; error?: string; busy?: boolean } | undefined>();
  const list = routers.data;

  async function confirmRemove() {
    if (!remove) return;
    setRemove({ ...remove, busy: true });
    try {
      await api('DELETE', `/routers/${encodeURIComponent(remove.name)}`);
      toast(`router ${remove.name} deleted`, 'info');
      if (open === remove.name) go('/routers');
      setRemove(undefined);
      await routers.reload();
    } catch (e) {
      setRemove({ ...remove, busy: false, error: (e as Error).message });
    }
  }

  return (
    <div class="routers-page">
      <div class="vm-head">
        <h2>Routers</h2>
        <button type="button" data-action="add-router" onClick={() => setAdding(true)}>
          Add router…
        </button>
      </div>
      <NetworkTabs active="routers" />
      <p class="hint">
        A router joins overlay networks (its port on each takes the network's gateway, so guests reach the
        other networks through their DHCP default route). An <b>uplink</b> on a provider network takes them
        out (SNAT); a <b>floating IP</b> of the uplink network leads to one NIC. A network joins one router.
      </p>
      {routers.error && (
        <div class="form-error" role="alert">
          {routers.error}
        </div>
      )}
      {!list && !routers.error && <div class="muted">Loading…</div>}
      {list && list.length === 0 && <p class="muted">No routers yet.</p>}
      {list && list.length > 0 && (
        <table class="grid routers">
          <thead>
            <tr>
              <th>Router</th>
              <th>Networks</th>
              <th>Uplink</th>
              <th>Routes</th>
              <th>Floating IPs</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((r) => (
              <tr key={r.name} data-router={r.name} class={open === r.name ? 'open' : undefined}>
                <td>
                  <a class="router-name" href={routerHref(open === r.name ? undefined : r.name)}>
                    {r.name}
                  </a>
                </td>
                <td class="router-networks">{r.networks.length ? r.networks.join(', ') : none}</td>
                <td class="mono router-uplink">{uplinkLabel(r.uplink) || none}</td>
                <td class="mono router-routes">
                  {r.routes.length ? r.routes.map(routeLabel).join('; ') : none}
                </td>
                <td class="mono router-fips">
                  {r.floatingIps.length ? r.floatingIps.map((f) => f.ip).join(', ') : none}
                </td>
                <td class="muted">{when(r.createdAt)}</td>
                <td class="row-actions">
                  <button
                    type="button"
                    data-action="delete-router"
                    onClick={() => setRemove({ name: r.name })}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {open && list && !list.some((r) => r.name === open) && (
        <p class="warning-text">
          No router named {open}. <a href={routerHref()}>All routers</a>
        </p>
      )}
      {open && list?.some((r) => r.name === open) && (
        <RouterDetail
          key={open}
          name={open}
          list={list}
          networks={networks.data}
          version={JSON.stringify(list.find((r) => r.name === open))}
          onChanged={routers.reload}
        />
      )}
      {adding && (
        <AddRouterDialog
          networks={networks.data}
          routers={list}
          onClose={() => setAdding(false)}
          onAdded={(name) => {
            routers.reload();
            go(`/routers/${encodeURIComponent(name)}`);
          }}
        />
      )}
      {remove && (
        <ConfirmDialog
          title={`Delete router ${remove.name}?`}
          confirm="Delete"
          onConfirm={confirmRemove}
          onCancel={() => setRemove(undefined)}
          error={remove.error}
          busy={remove.busy}
        >
          The networks it joins stop reaching each other and the outside. It is refused while it has floating
          IPs: release them first.
        </ConfirmDialog>
      )}
    </div>
  );
}

/** Add router…: name, networks, uplink, routes; checked as typed, the API's refusal inline. */
function AddRouterDialog(props: {
  networks: Network[] | undefined;
  routers: Router[] | undefined;
  onClose: () => void;
  onAdded: (name: string) => void;
}) {
  const [f, setF] = useState<RouterForm>(EMPTY_ROUTER_FORM);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const problems = routerProblems(f, props.networks);
  const ready = routerReady(f, props.networks);
  async function submit(e: Event) {
    e.preventDefault();
    if (!ready) return;
    setBusy(true);
    setError('');
    try {
      const r = await api<Router>('POST', '/routers', routerBody(f));
      toast(`router ${r.name} added`, 'info');
      props.onAdded(r.name);
      props.onClose();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="modal-backdrop">
      <form class="modal add-router" role="dialog" aria-label="Add a router" noValidate onSubmit={submit}>
        <h3>Add a router</h3>
        <div class="modal-body form">
          <label>
            Name
            <input
              name="name"
              class={problems.name ? 'invalid' : undefined}
              value={f.name}
              placeholder="edge"
              autoComplete="off"
              onInput={(e) => setF({ ...f, name: (e.target as HTMLInputElement).value })}
            />
            {problems.name ? (
              <span class="field-error" data-field="name">
                {problems.name}
              </span>
            ) : (
              <span class="hint">Lowercase letters, digits and -</span>
            )}
          </label>
          <RouterFields
            f={f}
            setF={setF}
            problems={problems}
            networks={props.networks}
            routers={props.routers}
          />
        </div>
        <FormActions
          error={error}
          busy={busy}
          label="Add router"
          busyLabel="Adding…"
          onCancel={props.onClose}
          disabled={!ready}
        />
      </form>
    </div>
  );
}

/**
 * One router: GET /routers/{name} (the floating IPs' inside addresses, the uplink's hosts), the Edit form
 * (PATCH of what changed) and its floating IPs. `version` changes when the list shows the router changed.
 */
function RouterDetail(props: {
  name: string;
  list: Router[];
  networks: Network[] | undefined;
  version: string;
  onChanged: () => void;
}) {
  const [r, setR] = useState<Router | undefined>();
  const [error, setError] = useState('');
  const path = `/routers/${encodeURIComponent(props.name)}`;
  const load = () =>
    api<Router>('GET', path)
      .then((x) => {
        setR(x);
        setError('');
      })
      .catch((e) => setError((e as Error).message));
  useEffect(() => {
    load();
  }, [props.version]);
  const changed = (x: Router) => {
    setR(x);
    props.onChanged();
  };
  return (
    <div class="card section router-detail" data-router-detail={props.name}>
      <h3>Router {props.name}</h3>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
      {!r && !error && <div class="muted">Loading…</div>}
      {r && (
        <>
          {r.uplink && (
            <p class="hint router-gateways">
              Uplink {uplinkLabel(r.uplink)}; active on{' '}
              {r.gatewayHosts?.length ? r.gatewayHosts.join(', then ') : 'no host yet'}.
            </p>
          )}
          <RouterEdit
            key={JSON.stringify(r)}
            r={r}
            list={props.list}
            networks={props.networks}
            onSaved={changed}
          />
          <FloatingIps r={r} networks={props.networks} onChanged={load} onListChanged={props.onChanged} />
        </>
      )}
    </div>
  );
}

/** A router's networks, uplink and routes: Save sends what changed. */
function RouterEdit(props: {
  r: Router;
  list: Router[];
  networks: Network[] | undefined;
  onSaved: (r: Router) => void;
}) {
  const [f, setF] = useState<RouterForm>(routerForm(props.r));
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const problems = routerProblems(f, props.networks);
  const change = routerChange(props.r, f);
  const dirty = Object.keys(change).length > 0;
  async function save(e: Event) {
    e.preventDefault();
    if (!dirty || Object.keys(problems).length > 0) return;
    setBusy(true);
    setError('');
    try {
      const r = await api<Router>('PATCH', `/routers/${encodeURIComponent(props.r.name)}`, change);
      toast(`router ${r.name} changed`, 'info');
      props.onSaved(r);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form class="form router-edit" noValidate onSubmit={save}>
      <RouterFields
        f={f}
        setF={setF}
        problems={problems}
        networks={props.networks}
        routers={props.list}
        self={props.r.name}
      />
      <FormActions
        error={error}
        busy={busy}
        label="Save"
        busyLabel="Saving…"
        onCancel={() => {
          setF(routerForm(props.r));
          setError('');
        }}
        disabled={!dirty || Object.keys(problems).length > 0}
      />
    </form>
  );
}

/** A router's floating IPs with Release, and Add: a VM with a NIC on its networks, an optional address. */
function FloatingIps(props: {
  r: Router;
  networks: Network[] | undefined;
  onChanged: () => void;
  onListChanged: () => void;
}) {
  const { r } = props;
  const s = useStore();
  const targets = floatingIpTargets(s.vms, r);
  const [pick, setPick] = useState({ vm: '', nic: '', ip: '' });
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const target = targets.find((t) => t.vmId === pick.vm);
  const uplink = props.networks?.find((n) => n.name === r.uplink?.network);
  const problem = floatingIpProblem(pick.ip, uplink);
  const base = `/routers/${encodeURIComponent(r.name)}/floating-ips`;
  async function add(e: Event) {
    e.preventDefault();
    if (!target || problem) return;
    setBusy(true);
    setError('');
    try {
      const x = await api<Router>('POST', base, {
        vm: target.vmId,
        ...(pick.nic ? { nic: pick.nic } : {}),
        ...(pick.ip.trim() ? { ip: pick.ip.trim() } : {}),
      });
      const f = x.floatingIps.find((y) => y.vmId === target.vmId && (!pick.nic || y.nic === pick.nic));
      toast(`floating IP ${f?.ip ?? ''} leads to ${target.vm}`, 'info');
      setPick({ vm: '', nic: '', ip: '' });
      props.onChanged();
      props.onListChanged();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  async function release(ip: string) {
    setError('');
    try {
      await api('DELETE', `${base}/${encodeURIComponent(ip)}`);
      toast(`floating IP ${ip} released`, 'info');
      props.onChanged();
      props.onListChanged();
    } catch (err) {
      setError((err as Error).message);
    }
  }
  return (
    <div class="floating-ips">
      <h4>Floating IPs</h4>
      {r.floatingIps.length === 0 && <p class="muted">None.</p>}
      {r.floatingIps.length > 0 && (
        <table class="grid fips">
          <thead>
            <tr>
              <th>Address</th>
              <th>VM</th>
              <th>NIC</th>
              <th>Inside address</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {r.floatingIps.map((f) => (
              <tr key={f.ip} data-fip={f.ip} title={floatingIpLabel(f)}>
                <td class="mono">{f.ip}</td>
                <td>{f.vm ? <a href={`#/vms/${f.vmId}`}>{f.vm}</a> : <span class="muted">{f.vmId}</span>}</td>
                <td class="mono">{f.nic}</td>
                <td class="mono">{f.internalIp ?? none}</td>
                <td class="row-actions">
                  <button type="button" data-action="release-fip" onClick={() => release(f.ip)}>
                    Release
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {!r.uplink ? (
        <p class="hint">Floating IPs are addresses of the uplink network: give the router an uplink first.</p>
      ) : (
        <form class="form fip-add form-row" noValidate onSubmit={add}>
          <label>
            VM
            <select
              name="fipVm"
              value={pick.vm}
              onChange={(e) => setPick({ ...pick, vm: (e.target as HTMLSelectElement).value, nic: '' })}
            >
              <option value="">{targets.length ? 'pick a VM…' : 'no VM has a NIC on its networks'}</option>
              {targets.map((t) => (
                <option key={t.vmId} value={t.vmId}>
                  {t.vm}
                </option>
              ))}
            </select>
          </label>
          {target && target.nics.length > 1 && (
            <label>
              NIC
              <select
                name="fipNic"
                value={pick.nic}
                onChange={(e) => setPick({ ...pick, nic: (e.target as HTMLSelectElement).value })}
              >
                <option value="">its first on these networks</option>
                {target.nics.map((n) => (
                  <option key={n.id} value={n.id}>
                    {n.id} ({n.network})
                  </option>
                ))}
              </select>
            </label>
          )}
          <label>
            Address (optional)
            <input
              name="fipIp"
              class={problem ? 'mono invalid' : 'mono'}
              value={pick.ip}
              placeholder="the highest free one"
              autoComplete="off"
              onInput={(e) => setPick({ ...pick, ip: (e.target as HTMLInputElement).value })}
            />
            {problem && (
              <span class="field-error" data-field="fipIp">
                {problem}
              </span>
            )}
          </label>
          <label class="check">
            <button type="submit" data-action="add-fip" disabled={!target || !!problem || busy}>
              {busy ? 'Adding…' : 'Add floating IP'}
            </button>
          </label>
        </form>
      )}
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
    </div>
  );
}
