import type { VmStatus } from '../node/types';
import type { VmRecord } from './records';

/**
 * Autostart (onBoot): the VMs of each host that went down with it (a restart, or stop-vms at a planned
 * shutdown), ran before and are marked onBoot, in the order they start again: `onBoot.order`, then
 * name. The reconciler starts the first of a host's queue, waits its `delaySec`, then the next.
 */
export function autostartQueues(vms: VmRecord[], status: (id: string) => VmStatus): Map<string, VmRecord[]> {
  const queues = new Map<string, VmRecord[]>();
  for (const vm of vms) {
    const st = status(vm.id);
    const waiting =
      vm.onBoot?.enabled &&
      vm.node &&
      vm.power !== 'stopped' &&
      vm.runningGeneration === vm.generation &&
      st.state === 'stopped' &&
      st.hostDown;
    if (!waiting) continue;
    const q = queues.get(vm.node) ?? [];
    q.push(vm);
    queues.set(vm.node, q);
  }
  for (const q of queues.values())
    q.sort((a, b) => a.onBoot!.order - b.onBoot!.order || a.name.localeCompare(b.name));
  return queues;
}
