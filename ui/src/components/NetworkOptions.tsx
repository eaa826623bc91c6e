import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { type Network, networkChoices } from '../networks';

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
