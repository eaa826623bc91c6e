import { useEffect, useState } from 'preact/hooks';
import { api, type Vm } from '../api';
import { type Network, nicAddresses, ovnNetworksOf } from '../networks';

/** How often the addresses are read again while the page is open (OVN gives one as the VM starts). */
const EVERY_MS = 10_000;

/**
 * The address OVN gave each of a VM's NICs on an OVN network, by NIC id ("(none yet)" without one; NAT
 * NICs absent): GET /networks/{name} of its networks, read again when its state or NICs change.
 */
export function useNicAddresses(vm: Vm): Record<string, string> {
  const [addresses, setAddresses] = useState<Record<string, string>>({});
  const networks = ovnNetworksOf(vm.networks).join(',');
  const nics = vm.networks.map((n) => `${n.id}=${n.network}`).join(',');
  useEffect(() => {
    if (!networks) {
      setAddresses({});
      return;
    }
    let live = true;
    const read = () =>
      Promise.all(
        networks
          .split(',')
          .map((n) => api<Network>('GET', `/networks/${encodeURIComponent(n)}`).catch(() => undefined)),
      ).then((got) => {
        if (live)
          setAddresses(
            nicAddresses(
              vm.id,
              got.filter((d): d is Network => !!d),
            ),
          );
      });
    read();
    const t = setInterval(() => !document.hidden && read(), EVERY_MS);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [vm.id, vm.state, networks, nics]);
  return addresses;
}
