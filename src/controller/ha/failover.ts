/**
 * Admission control as vSphere's "host failures to tolerate": after `tolerate` hosts fail (each host in
 * turn for one failure, the largest ones for more),
 * the survivors must hold every powered-on VM that would still run: their own, and the HA VMs restarted
 * from the failed hosts (the others' non-HA VMs are simply down). Memory decides (CPU overcommits).
 */
export interface FailoverHost {
  name: string;
  /** Memory the host gives VMs. */
  memoryBytes: number;
}

export interface FailoverVm {
  node: string;
  memoryMiB: number;
  ha: boolean;
}

export interface FailoverCheck {
  ok: boolean;
  message: string;
  /** Memory the surviving VMs need and the survivors have, in the worst case. */
  needBytes: number;
  leftBytes: number;
}

const GiB = 1024 ** 3;
const gib = (b: number) => `${(b / GiB).toFixed(b < 10 * GiB ? 1 : 0)} GiB`;

/** `vms`: the powered-on VMs. Hosts in maintenance are left out by the caller. */
export function failoverCheck(tolerate: number, hosts: FailoverHost[], vms: FailoverVm[]): FailoverCheck {
  if (tolerate <= 0)
    return {
      ok: true,
      message: 'admission control is off (0 host failures tolerated)',
      needBytes: 0,
      leftBytes: 0,
    };
  const bySize = [...hosts].sort((a, b) => b.memoryBytes - a.memoryBytes || a.name.localeCompare(b.name));
  if (bySize.length <= tolerate)
    return {
      ok: false,
      message: `${tolerate} host failure(s) tolerated but the cluster has ${bySize.length} host(s) outside maintenance: HA needs at least ${tolerate + 1}`,
      needBytes: 0,
      leftBytes: 0,
    };
  // The failure sets judged: every single host for one failure; the largest hosts for more.
  const sets = tolerate === 1 ? bySize.map((h) => [h]) : [bySize.slice(0, tolerate)];
  let worst: { failed: Set<string>; needBytes: number; leftBytes: number } | undefined;
  for (const set of sets) {
    const failed = new Set(set.map((h) => h.name));
    const leftBytes = hosts.filter((h) => !failed.has(h.name)).reduce((a, h) => a + h.memoryBytes, 0);
    const needBytes = vms
      .filter((v) => v.ha || !failed.has(v.node))
      .reduce((a, v) => a + v.memoryMiB * 1024 ** 2, 0);
    if (!worst || needBytes - leftBytes > worst.needBytes - worst.leftBytes)
      worst = { failed, needBytes, leftBytes };
  }
  const { failed, needBytes, leftBytes } = worst!;
  const names = [...failed].join(', ');
  const verb = failed.size === 1 ? 'fails' : 'fail';
  return needBytes <= leftBytes
    ? {
        ok: true,
        message: `if ${names} ${verb}, the other hosts hold the VMs still running and the HA VMs restarted (${gib(needBytes)} of ${gib(leftBytes)})`,
        needBytes,
        leftBytes,
      }
    : {
        ok: false,
        message: `if ${names} ${verb}, the VMs still running and the HA VMs to restart need ${gib(needBytes)} but the other hosts have ${gib(leftBytes)}`,
        needBytes,
        leftBytes,
      };
}
