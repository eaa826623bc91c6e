import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { defaultGateway, fixedIpProblem, type Network, networkChoices } from '../networks';

/**
 * GET /networks once, for a dialog that picks a network: undefined until it answers (and if it fails:
 * the pickers offer "default" then, which every host has).
 */
export function useNetworks(): Network[] | undefined {
  const [list, setList] = useState<Network[] | undefined>();
  useEffect(() => {
    let live = true;
    api<Network[]>('GET', '/networks')
      .then((l) => live && setList(l))
      .catch(() => {});
    return () => {
      live = false;
    };
  }, []);
  return list;
}

/** The options of a network picker: every network (name, type and subnet), "default" first. */
export function NetworkOptions({ networks, value }: { networks: Network[] | undefined; value: string }) {
  return (
    <>
      {networkChoices(networks, value).map((o) => (
        <option key={o.value} value={o.value}>
          {o.label}
        </option>
      ))}
    </>
  );
}

/**
 * The optional fixed address of a NIC on an overlay network (`network`: that network; nothing shows for
 * another), checked as typed (fixedIpProblem): a host address of its subnet other than the gateway.
 */
export function FixedIpField({
  network,
  value,
  onInput,
}: {
  network: Network | undefined;
  value: string;
  onInput: (value: string) => void;
}) {
  if (!network) return null;
  const problem = fixedIpProblem(value, network);
  const gateway = network.gateway || defaultGateway(network.subnet ?? '');
  return (
    <label class="fixed-ip">
      Fixed address (optional)
      <input
        name="ip"
        class={problem ? 'mono invalid' : 'mono'}
        value={value}
        placeholder="OVN picks one"
        autocomplete="off"
        onInput={(e) => onInput((e.target as HTMLInputElement).value)}
      />
      {problem ? (
        <span class="field-error" data-field="ip">
          {problem}
        </span>
      ) : (
        <span class="hint">
          An address of {network.subnet}
          {gateway ? ` other than the gateway ${gateway}` : ''}, which OVN's DHCP hands out; empty: OVN picks
          a free one.
        </span>
      )}
    </label>
  );
}
