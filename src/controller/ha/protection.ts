import type { IsolationResponse } from '../../vmm/types';
import { tiedToHost } from '../admission';
import type { ImageRecord, NodeRecord, VmRecord } from '../records';
import type { HaProtection } from './views';

export const NO_OTHER_HOST = 'no other host to restart it on';

/** Whether HA can restart the VM on another host: HA on, nothing ties it to its host, another host. */
export function protection(vm: VmRecord, nodes: NodeRecord[], images: ImageRecord[]): HaProtection {
  if (!vm.ha?.enabled) return { state: 'disabled' };
  const tied = tiedToHost(vm, nodes, images);
  if (tied) return { state: 'unprotected', reason: tied };
  if (nodes.filter((n) => !n.maintenance).length < 2) return { state: 'unprotected', reason: NO_OTHER_HOST };
  return { state: 'protected' };
}

/**
 * The isolation response a VM's host is handed (at start, or when its policy changes): only for a VM HA
 * protects; killing one the cluster cannot restart elsewhere would only take it down.
 */
export function isolationResponseFor(
  vm: VmRecord,
  nodes: NodeRecord[],
  images: ImageRecord[],
): IsolationResponse | undefined {
  return vm.ha && protection(vm, nodes, images).state === 'protected' ? vm.ha.isolationResponse : undefined;
}
