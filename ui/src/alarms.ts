import type { HostNode, Vm } from './api';
import { hostHref } from './route';

export interface Alarm {
  level: 'critical' | 'warning';
  text: string;
  href?: string;
}

/** Per kind of VM alarm, at most this many lines; the rest become one summary line. */
const MAX_PER_KIND = 5;

/**
 * Conditions an administrator must see on the dashboard, derived from live state: hosts not ready,
 * VMs in error (with QEMU's reason), VMs paused by QEMU itself (disk full), VMs whose host is unreachable
 * (unknown), VMs no host fits (pending, with the scheduler's reason), running VMs with a warning (their
 * TPM emulator died), host memory pressure, TCG instead of KVM.
 */
export function alarms(vms: Vm[], nodes: HostNode[]): Alarm[] {
  const out: Alarm[] = [];
  for (const n of nodes)
    if (n.state === 'not-ready')
      out.push({
        level: 'critical',
        text: `Host ${n.name} is not ready: no heartbeat${n.lastHeartbeat ? ` since ${new Date(n.lastHeartbeat).toLocaleString()}` : ''}`,
        href: hostHref(n.name),
      });
  const unknown: Vm[] = [];
  const pending: Vm[] = [];
  const warned: Vm[] = [];
  for (const v of vms) {
    if (v.warning) warned.push(v);
    if (v.state === 'error')
      out.push({
        level: 'critical',
        text: `VM ${v.name} is in error: ${v.reason ?? 'unknown reason'}`,
        href: `#/vms/${v.id}`,
      });
    else if (v.state === 'paused' && v.reason)
      out.push({ level: 'critical', text: `VM ${v.name}: ${v.reason}`, href: `#/vms/${v.id}` });
    else if (v.state === 'unknown') unknown.push(v);
    else if (v.state === 'pending') pending.push(v);
  }
  capped(
    out,
    unknown,
    'critical',
    (v) => `VM ${v.name} is unknown: ${v.reason ?? 'its host is not reachable'}`,
    'unknown (host not reachable)',
  );
  capped(
    out,
    pending,
    'warning',
    (v) => `VM ${v.name} is pending: ${v.reason ?? 'waiting for a host'}`,
    'pending (no host fits)',
  );
  capped(out, warned, 'warning', (v) => `VM ${v.name}: ${v.warning}`, 'with a warning');
  for (const n of nodes) {
    if (n.state === 'not-ready') continue;
    if (n.memoryAvailableBytes != null && n.memoryTotalBytes > 0) {
      const used = 1 - n.memoryAvailableBytes / n.memoryTotalBytes;
      if (used > 0.9)
        out.push({
          level: 'warning',
          text: `Host ${n.name}: memory ${Math.round(used * 100)} % used`,
          href: hostHref(n.name),
        });
    }
    if (n.accelerator === 'tcg')
      out.push({
        level: 'warning',
        text: `Host ${n.name} runs VMs without KVM (TCG)${n.acceleratorReason ? `: ${n.acceleratorReason}` : ''}`,
      });
  }
  return out;
}

function capped(out: Alarm[], list: Vm[], level: Alarm['level'], text: (v: Vm) => string, what: string) {
  for (const v of list.slice(0, MAX_PER_KIND)) out.push({ level, text: text(v), href: `#/vms/${v.id}` });
  if (list.length > MAX_PER_KIND)
    out.push({ level, text: `${list.length - MAX_PER_KIND} more VMs ${what}`, href: '#/vms' });
}
