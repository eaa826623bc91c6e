/**
 * Cluster figures with real hosts (network namespaces, each its own `neuroflow serve`, TLS etcd members):
 * join time of a host (token to ready), leader failover time (leader's serve killed → another controller
 * reports a new leader; target < 5 s), and VMs placed per second end to end through etcd (records written
 * pending, the leader's scheduler places them; target ≥ 500/s), and integrated Ceph on the three hosts
 * to HEALTH_OK (target < 60 s; not at smoke size). BENCH_PLACE_VMS changes the count.
 */
import { randomUUID } from 'node:crypto';
import type { ApiClient } from '../src/cli/client';
import { CONTROLLER_SAN } from '../src/cluster/pki';
import { keys, type VmRecord } from '../src/controller/records';
import { EtcdStore } from '../src/store/store';
import { waitFor } from '../src/util/wait';
import { ClusterHost, NetLab } from '../test/harness/cluster';
import { testGuest } from '../test/harness/guest';
import { benchSize, record, summary } from './lib';

const PLACE_VMS = benchSize('BENCH_PLACE_VMS', 5000, 200);

testGuest(); // fails early with a clear message when the guest is not built
const lab = new NetLab();
const hosts = [1, 2, 3].map((i) => {
  const h = lab.addHost();
  return new ClusterHost(`h${i}`, h.ns, h.ip);
});
try {
  const [h1, h2, h3] = hosts as [ClusterHost, ClusterHost, ClusterHost];
  const tFound = performance.now();
  await h1.start();
  const token = h1.file('admin.token').trim();
  const ca = h1.file('cluster/pki/ca.crt');
  const api = h1.api(token, ca);
  const ready = (a: ApiClient, name: string) =>
    waitFor(
      async () =>
        (await a.request<{ name: string; state: string }[]>('GET', '/api/v1/nodes')).find(
          (n) => n.name === name,
        )?.state === 'ready',
      { timeoutMs: 120_000, intervalMs: 50, what: `${name} ready` },
    );
  await ready(api, 'h1');
  const foundMs = performance.now() - tFound;

  // Join: from `serve --join` to the host listed ready by the API.
  const joinMs: number[] = [];
  for (const h of [h2, h3]) {
    const { token: jt } = await api.request<{ token: string }>('POST', '/api/v1/cluster/join-tokens', {
      ttlSec: 600,
      role: 'controller',
    });
    const t0 = performance.now();
    await h.start({ join: jt });
    await ready(api, h.name);
    joinMs.push(performance.now() - t0);
  }

  // Placement through etcd: pending records written straight into etcd, placed by the leader. Three
  // 2-CPU hosts hold thousands of 1-vCPU VMs only with a lab-sized vCPU overcommit.
  await api.request('PATCH', '/api/v1/cluster', { policy: { vcpuOvercommit: 1000 } });
  const etcd = new EtcdStore(`https://${h1.ip}:2379`, {
    credentials: {
      rootCertificate: Buffer.from(ca),
      certChain: Buffer.from(h1.file('cluster/pki/host.crt')),
      privateKey: Buffer.from(h1.file('cluster/pki/host.key')),
    },
    grpcOptions: { 'grpc.ssl_target_name_override': CONTROLLER_SAN },
  });
  const g = testGuest();
  const now = new Date().toISOString();
  const ids: string[] = [];
  for (let i = 0; i < PLACE_VMS; i += 50) {
    const put = [];
    for (let j = i; j < Math.min(PLACE_VMS, i + 50); j++) {
      const id = randomUUID();
      ids.push(id);
      const vm: VmRecord = {
        id,
        name: `bench-${j}`,
        node: '',
        vcpus: 1,
        memoryMiB: 1,
        machine: 'q35',
        disks: [],
        networks: [],
        boot: { kernel: g.vmlinux },
        snapshots: [],
        power: 'stopped',
        generation: 1,
        createdAt: now,
        updatedAt: now,
      };
      put.push({ key: keys.vm(id), value: vm }, { key: keys.vmName(vm.name), value: id });
    }
    await etcd.txn({ put });
  }
  const tPlace = performance.now();
  await waitFor(
    async () => {
      const all = await etcd.list<VmRecord>(keys.vms);
      return all.length >= PLACE_VMS && all.every((v) => v.value.node !== '');
    },
    { timeoutMs: 600_000, intervalMs: 200, what: `${PLACE_VMS} VMs placed` },
  );
  const placeMs = performance.now() - tPlace;
  const spread = new Map<string, number>();
  for (const v of await etcd.list<VmRecord>(keys.vms))
    spread.set(v.value.node, (spread.get(v.value.node) ?? 0) + 1);
  // Remove them again (in batches) so the failover below runs on a light cluster.
  for (let i = 0; i < ids.length; i += 60) {
    await etcd.txn({
      delete: ids.slice(i, i + 60).flatMap((id, k) => [keys.vm(id), keys.vmName(`bench-${i + k}`)]),
    });
  }
  etcd.close();
  await api.request('PATCH', '/api/v1/cluster', { policy: { vcpuOvercommit: 4 } });

  // Failover: kill the leader's serve; another controller reports a new leader.
  const failoverMs: number[] = [];
  for (let round = 0; round < benchSize('BENCH_FAILOVERS', 2, 1); round++) {
    const before = await api.request<{ leader: string }>('GET', '/api/v1/cluster');
    const old = hosts.find((h) => h.name === before.leader)!;
    const other = hosts.find((h) => h !== old)!;
    const a2 = other.api(token, ca);
    const t0 = performance.now();
    await old.kill9();
    await waitFor(
      async () => {
        const c = await a2
          .request<{ leader: string | null }>('GET', '/api/v1/cluster')
          .catch(() => undefined);
        return !!c?.leader && c.leader !== old.name;
      },
      { timeoutMs: 60_000, intervalMs: 20, what: 'a new leader' },
    );
    failoverMs.push(performance.now() - t0);
    await old.start(); // back as a candidate for the next round
  }

  // Integrated Ceph on the three hosts: a monitor and a manager on each, an OSD on an 8 GiB sparse file on
  // each, 3 copies with 2 for I/O; from POST /api/v1/ceph to HEALTH_OK with every PG active+clean
  // (MON_DISK_LOW tolerated: the machine's disk). Not at smoke size (the e2e test does the same).
  let cephMs: number | undefined;
  if (benchSize('BENCH_CEPH', 1, 0) > 0) {
    const t0 = performance.now();
    await api.request('POST', '/api/v1/ceph', { size: 3, minSize: 2 });
    await Promise.all(
      hosts.map((h) =>
        api.request('POST', '/api/v1/ceph/osds', {
          node: h.name,
          device: `${h.dataDir}/import/osd.img`,
          sizeGiB: 8,
        }),
      ),
    );
    type Health = {
      status: string;
      checks: { name: string }[];
      pgs: { total: number; byState: Record<string, number> };
    };
    await waitFor(
      async () => {
        const hh = (await api.request<{ health?: Health }>('GET', '/api/v1/ceph')).health;
        const ok = hh?.status === 'HEALTH_OK' || hh?.checks.every((c) => c.name === 'MON_DISK_LOW');
        return ok && hh && hh.pgs.total > 0 && hh.pgs.byState['active+clean'] === hh.pgs.total;
      },
      { timeoutMs: 300_000, intervalMs: 250, what: 'Ceph HEALTH_OK' },
    );
    cephMs = performance.now() - t0;
  }

  const perSecond = Math.round(PLACE_VMS / (placeMs / 1000));
  const figures = {
    foundMs: Math.round(foundMs),
    joinMs: joinMs.map(Math.round),
    placeVms: PLACE_VMS,
    placeMs: Math.round(placeMs),
    placedPerSecond: perSecond,
    spread: Object.fromEntries(spread),
    failoverMs: summary(failoverMs),
    ...(cephMs === undefined ? {} : { cephBootstrapMs: Math.round(cephMs) }),
  };
  record('cluster', figures, [
    `first host founds a cluster and is ready in ${Math.round(foundMs)} ms (CA, TLS etcd, HTTPS API)`,
    `join time (serve --join TOKEN to ready): ${joinMs.map((m) => `${Math.round(m)} ms`).join(', ')} (2nd, 3rd host; learner then voter)`,
    `${perSecond} VMs placed/s end to end through etcd (${PLACE_VMS} pending records, 3 hosts; target ≥ 500/s)`,
    `leader failover (serve killed → new leader reported): ${failoverMs.map((m) => `${Math.round(m)} ms`).join(', ')} (target < 5 s; election lease 3 s)`,
    ...(cephMs === undefined
      ? []
      : [
          `integrated Ceph on the 3 hosts (3 mons + mgrs, 3 OSDs on sparse files, 3 copies) to HEALTH_OK: ${(cephMs / 1000).toFixed(1)} s (target < 60 s)`,
        ]),
  ]);
} finally {
  await Promise.all(hosts.map((h) => h[Symbol.asyncDispose]()));
  await lab[Symbol.asyncDispose]();
}
