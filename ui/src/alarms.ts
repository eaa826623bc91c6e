import type { HostNode, Vm } from './api';

export interface Alarm {
  level: 'critical' | 'warning';
  text: string;
  href?: string;
}

/**
 * Conditions an administrator must see on the dashboard, derived from live state: VMs in error (with
 * QEMU's reason), VMs paused by QEMU itself (disk full), host memory pressure, TCG instead of KVM.
 */
export function alarms(vms: Vm[], nodes: HostNode[]): Alarm[] {
  const out: Alarm[] = [];
  for (const v of vms) {
    if (v.state === 'error')
      out.push({
        level: 'critical',
        text: `VM ${v.name} is in error: ${v.reason ?? 'unknown reason'}`,
        href: `#/vms/${v.id}`,
      });
    else if (v.state === 'paused' && v.reason)
      out.push({ level: 'critical', text: `VM ${v.name}: ${v.reason}`, href: `#/vms/${v.id}` });
  }
  for (const n of nodes) {
    const used = 1 - n.memoryAvailableBytes / n.memoryTotalBytes;
    if (used > 0.9)
      out.push({ level: 'warning', text: `Host ${n.name}: memory ${Math.round(used * 100)} % used` });
    if (n.accelerator === 'tcg')
      out.push({
        level: 'warning',
        text: `Host ${n.name} runs VMs without KVM (TCG): ${n.acceleratorReason}`,
      });
  }
  return out;
}
