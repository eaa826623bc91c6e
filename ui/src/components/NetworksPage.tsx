import { Fragment } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { when } from '../format';
import {
  defaultGateway,
  EMPTY_NETWORK_FORM,
  MAX_DNS,
  MTU_MAX,
  MTU_MIN,
  type Network,
  type NetworkForm,
  networkBody,
  networkHref,
  networkProblems,
  networkReady,
  nicSignature,
  OVERLAY_MTU,
  PROVIDER_MTU,
  PROVIDER_MTU_MAX,
  portAddress,
  VLAN_MAX,
  VLAN_MIN,
  vlanLabel,
} from '../networks';
import { usePolled } from '../poll';
import { go } from '../route';
import { toast, useStore } from '../store';
import { ConfirmDialog } from './ConfirmDialog';
import { FormActions } from './FormActions';
import { NetworkTabs } from './NetworkTabs';

/** The columns of the networks table (the open network's NICs span them). */
const COLUMNS = 10;

const TYPE_TITLE: Record<string, string> = {
  nat: 'Outbound NAT through passt, one per NIC',
  overlay: 'An OVN logical switch: its own subnet, DHCP and address management',
  provider: 'An OVN logical switch on a physical network of the hosts (VLAN tagged or not)',
};

/**
 * Networks: the built-in NAT network, the overlay and provider networks (OVN) with their subnet, VLAN,
 * gateway, DNS, MTU and NIC count; an OVN network opens (#/networks/<name>) on its NICs with their VMs,
 * MACs and the addresses OVN gave them; add an overlay or provider network, delete one (refused while NICs are on it: the API's
 * reason stays in the dialog). The list reads again whenever the VMs' NICs change.
 */
export function NetworksPage({ open }: { open?: string }) {
  const s = useStore();
  const { data: networks, error, reload } = usePolled<Network[]>('/networks', 5000);
  const [adding, setAdding] = useState(false);
  const [remove, setRemove] = useState<{ name: string; error?: string; busy?: boolean } | undefined>();
  const nics = nicSignature(s.vms);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    reload();
  }, [nics]);

  async function confirmRemove() {
    if (!remove) return;
    setRemove({ ...remove, busy: true });
    try {
      await api('DELETE', `/networks/${encodeURIComponent(remove.name)}`);
      toast(`network ${remove.name} deleted`, 'info');
      if (open === remove.name) go('/networks');
      setRemove(undefined);
      await reload();
    } catch (e) {
      setRemove({ ...remove, busy: false, error: (e as Error).message });
    }
  }

  return (
    <div class="networks-page">
      <div class="vm-head">
        <h2>Networks</h2>
        <button type="button" data-action="add-network" onClick={() => setAdding(true)}>
          Add network…
        </button>
      </div>
      <NetworkTabs active="networks" />
      <p class="hint">
        A VM's NIC attaches to a network. <b>default</b> (NAT): outbound NAT, one per NIC, no service of the
        host reachable. <b>Overlay</b>: a virtual switch (OVN) with its own subnet; OVN's DHCP gives each NIC
        an address, and guests on it reach each other only (a router joins overlay networks). <b>Provider</b>:
        a virtual switch on a physical network of the hosts (VLAN tagged or not): a router's uplink, or guests
        straight on that network.
      </p>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
      {!networks && !error && <div class="muted">Loading…</div>}
      {networks && (
        <table class="grid networks">
          <thead>
            <tr>
              <th>Network</th>
              <th>Type</th>
              <th>VLAN</th>
              <th>Subnet</th>
              <th>Gateway</th>
              <th>DNS</th>
              <th>MTU</th>
              <th>NICs</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {networks.map((n) => {
              const overlay = n.type === 'overlay' || n.type === 'provider';
              const isOpen = overlay && open === n.name;
              return (
                <Fragment key={n.name}>
                  <tr data-network={n.name} class={isOpen ? 'open' : undefined}>
                    <td>
                      {overlay ? (
                        <button
                          type="button"
                          class="link net-name"
                          aria-expanded={isOpen}
                          title={isOpen ? 'Hide its NICs' : 'Show its NICs and their addresses'}
                          onClick={() => go(isOpen ? '/networks' : `/networks/${encodeURIComponent(n.name)}`)}
                        >
                          {isOpen ? '▾' : '▸'} {n.name}
                        </button>
                      ) : (
                        <span class="net-name">{n.name}</span>
                      )}
                    </td>
                    <td>
                      <span class={`tag net-type net-${n.type}`} title={TYPE_TITLE[n.type]}>
                        {n.type}
                      </span>
                    </td>
                    <td
                      class="net-vlan"
                      title={
                        n.type === 'provider'
                          ? `Physical network ${n.physicalNetwork ?? 'provider'}; OVN ${n.dhcp ? 'answers' : 'does not answer'} DHCP`
                          : undefined
                      }
                    >
                      {vlanLabel(n) || <span class="muted">—</span>}
                    </td>
                    <td class="mono net-subnet">{n.subnet ?? <span class="muted">—</span>}</td>
                    <td class="mono net-gateway">{n.gateway ?? <span class="muted">—</span>}</td>
                    <td class="mono net-dns">
                      {n.dns?.length ? n.dns.join(', ') : <span class="muted">—</span>}
                    </td>
                    <td class="net-mtu">{n.mtu ?? <span class="muted">—</span>}</td>
                    <td class="net-nics">{n.nics}</td>
                    <td class="muted">{n.createdAt ? when(n.createdAt) : 'built in'}</td>
                    <td class="row-actions">
                      {n.name !== 'default' && (
                        <button
                          type="button"
                          data-action="delete-network"
                          onClick={() => setRemove({ name: n.name })}
                        >
                          Delete
                        </button>
                      )}
                    </td>
                  </tr>
                  {isOpen && (
                    <tr class="network-detail" data-network-detail={n.name}>
                      <td colSpan={COLUMNS}>
                        <NetworkPorts network={n} nics={nics} />
                      </td>
                    </tr>
                  )}
                </Fragment>
              );
            })}
          </tbody>
        </table>
      )}
      {open && networks && !networks.some((n) => n.name === open) && (
        <p class="warning-text">
          No network named {open}. <a href={networkHref()}>All networks</a>
        </p>
      )}
      {adding && (
        <AddNetworkDialog
          onClose={() => setAdding(false)}
          onAdded={(name) => {
            reload();
            go(`/networks/${encodeURIComponent(name)}`);
          }}
        />
      )}
      {remove && (
        <ConfirmDialog
          title={`Delete network ${remove.name}?`}
          confirm="Delete"
          onConfirm={confirmRemove}
          onCancel={() => setRemove(undefined)}
          error={remove.error}
          busy={remove.busy}
        >
          Its virtual switch and DHCP settings go. It is refused while a VM has a NIC on it or a router joins
          it: remove those NICs (or the VMs), or take it off the router, first.
        </ConfirmDialog>
      )}
    </div>
  );
}

/** An overlay network's NICs (GET /networks/{name} ports): read again when the NIC count changes. */
function NetworkPorts({ network, nics }: { network: Network; nics: string }) {
  const [detail, setDetail] = useState<Network | undefined>();
  const [error, setError] = useState('');
  useEffect(() => {
    let live = true;
    api<Network>('GET', `/networks/${encodeURIComponent(network.name)}`)
      .then((d) => {
        if (!live) return;
        setDetail(d);
        setError('');
      })
      .catch((e) => live && setError((e as Error).message));
    return () => {
      live = false;
    };
  }, [network.name, network.nics, nics]);
  const ports = detail?.ports ?? [];
  return (
    <div class="network-ports" data-network-ports={network.name}>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
      {!detail && !error && <div class="muted">Loading…</div>}
      {detail && ports.length === 0 && (
        <p class="muted">
          No NICs on {network.name} yet: give a VM one (New VM, or Add NIC… while it is stopped).
        </p>
      )}
      {ports.length > 0 && (
        <table class="grid ports">
          <thead>
            <tr>
              <th>VM</th>
              <th>NIC</th>
              <th>MAC</th>
              <th title="The address OVN's DHCP gives the NIC">IP address</th>
            </tr>
          </thead>
          <tbody>
            {ports.map((p) => (
              <tr key={`${p.vmId}-${p.nic}`} data-port={`${p.vm}/${p.nic}`}>
                <td>
                  <a class="port-vm" href={`#/vms/${p.vmId}`}>
                    {p.vm}
                  </a>
                </td>
                <td class="mono port-nic">{p.nic}</td>
                <td class="mono port-mac">{p.mac}</td>
                <td
                  class="mono port-ip"
                  title={p.ip ? undefined : 'OVN gives the NIC an address when its VM starts'}
                >
                  {portAddress(p)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/**
 * Add network…: an overlay or a provider network (its physical network, VLAN and whether OVN answers
 * DHCP); each field checked as typed, the API's refusal inline.
 */
function AddNetworkDialog({ onClose, onAdded }: { onClose: () => void; onAdded: (name: string) => void }) {
  const [f, setF] = useState<NetworkForm>(EMPTY_NETWORK_FORM);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const set = (k: keyof NetworkForm) => (e: Event) =>
    setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const provider = f.type === 'provider';
  const problems = networkProblems(f);
  const ready = networkReady(f);
  async function submit(e: Event) {
    e.preventDefault();
    if (!ready) return;
    setBusy(true);
    setError('');
    try {
      const n = await api<Network>('POST', '/networks', networkBody(f));
      toast(`${n.type} network ${n.name} (${n.subnet}) added`, 'info');
      onAdded(n.name);
      onClose();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  const field = (k: keyof NetworkForm) =>
    problems[k] ? (
      <span class="field-error" data-field={k}>
        {problems[k]}
      </span>
    ) : undefined;
  const gateway = defaultGateway(f.subnet);
  return (
    <div class="modal-backdrop">
      <form class="modal add-network" role="dialog" aria-label="Add a network" noValidate onSubmit={submit}>
        <h3>Add a network</h3>
        <div class="modal-body form">
          <fieldset class="net-type-choice">
            <legend>Type</legend>
            <label class="check">
              <input
                type="radio"
                name="type"
                value="overlay"
                checked={!provider}
                onChange={() => setF({ ...f, type: 'overlay' })}
              />{' '}
              Overlay: a virtual switch across the hosts, its own subnet
            </label>
            <label class="check">
              <input
                type="radio"
                name="type"
                value="provider"
                checked={provider}
                onChange={() => setF({ ...f, type: 'provider' })}
              />{' '}
              Provider: on a physical network of the hosts
            </label>
          </fieldset>
          <label>
            Name
            <input
              name="name"
              class={problems.name ? 'invalid' : undefined}
              value={f.name}
              placeholder="web"
              autoComplete="off"
              onInput={set('name')}
            />
            {field('name') ?? <span class="hint">Lowercase letters, digits and -</span>}
          </label>
          <label>
            Subnet
            <input
              name="subnet"
              class={problems.subnet ? 'mono invalid' : 'mono'}
              value={f.subnet}
              placeholder="10.10.0.0/24"
              autoComplete="off"
              onInput={set('subnet')}
            />
            {field('subnet') ?? (
              <span class="hint">
                IPv4, /8 to /29: OVN's DHCP hands out its addresses (the gateway's excepted).
              </span>
            )}
          </label>
          <div class="form-row">
            <label>
              Gateway (optional)
              <input
                name="gateway"
                class={problems.gateway ? 'mono invalid' : 'mono'}
                value={f.gateway}
                placeholder={gateway || 'the first address'}
                autoComplete="off"
                onInput={set('gateway')}
              />
              {field('gateway')}
            </label>
            <label>
              MTU (optional)
              <input
                name="mtu"
                type="number"
                min={MTU_MIN}
                class={problems.mtu ? 'invalid' : undefined}
                value={f.mtu}
                max={provider ? PROVIDER_MTU_MAX : MTU_MAX}
                placeholder={String(provider ? PROVIDER_MTU : OVERLAY_MTU)}
                onInput={set('mtu')}
              />
              {field('mtu')}
            </label>
          </div>
          <label>
            DNS servers (optional)
            <input
              name="dns"
              class={problems.dns ? 'mono invalid' : 'mono'}
              value={f.dns}
              placeholder="10.10.0.53, 9.9.9.9"
              autoComplete="off"
              onInput={set('dns')}
            />
            {field('dns') ?? (
              <span class="hint">Up to {MAX_DNS}, comma- or space-separated: DHCP hands them out.</span>
            )}
          </label>
          {provider && (
            <>
              <div class="form-row">
                <label>
                  Physical network
                  <input
                    name="physicalNetwork"
                    class={problems.physicalNetwork ? 'invalid' : undefined}
                    value={f.physicalNetwork}
                    placeholder="provider"
                    autoComplete="off"
                    onInput={set('physicalNetwork')}
                  />
                  {field('physicalNetwork')}
                </label>
                <label>
                  VLAN (optional)
                  <input
                    name="vlan"
                    type="number"
                    min={VLAN_MIN}
                    max={VLAN_MAX}
                    class={problems.vlan ? 'invalid' : undefined}
                    value={f.vlan}
                    placeholder="untagged"
                    onInput={set('vlan')}
                  />
                  {field('vlan')}
                </label>
              </div>
              <label class="check">
                <input
                  name="dhcp"
                  type="checkbox"
                  checked={!!f.dhcp}
                  onChange={(e) => setF({ ...f, dhcp: (e.target as HTMLInputElement).checked })}
                />{' '}
                OVN answers DHCP (leave off when the physical network has its own DHCP server)
              </label>
              <p class="hint">
                Every host that should carry it maps the physical network to an interface (serve
                --provider-network {(f.physicalNetwork ?? '').trim() || 'provider'}=IFACE). The gateway is the
                network's router; {PROVIDER_MTU} is the default MTU.
              </p>
            </>
          )}
          {!provider && (
            <p class="hint">
              The gateway is the address a router joining this network takes. {OVERLAY_MTU} (the default)
              leaves room for the Geneve header on a 1500-byte network.
            </p>
          )}
        </div>
        <FormActions
          error={error}
          busy={busy}
          label="Add network"
          busyLabel="Adding…"
          onCancel={onClose}
          disabled={!ready}
        />
      </form>
    </div>
  );
}
