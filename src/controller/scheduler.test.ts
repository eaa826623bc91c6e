import { describe, expect, it } from 'vitest';
import { ClusterState, DEFAULT_POLICY, type Placement, type SchedNode, type SchedVm } from './scheduler';

const GiB = 1024 ** 3;

/** A ready KVM host with 8 CPUs, 16 GiB, pool "local" and network "default". */
function host(name: string, over: Partial<SchedNode> = {}): SchedNode {
  return {
    name,
    ready: true,
    maintenance: false,
    cpus: 8,
    memoryBytes: 16 * GiB,
    pools: ['local'],
    networks: ['default'],
    accelerator: 'kvm',
    cpuModel: 'Intel Xeon Gold 6230',
    ...over,
  };
}

/** A 1 vCPU, 1024 MiB VM on pool "local" and network "default". */
function vm(id: string, over: Partial<SchedVm> = {}): SchedVm {
  return { id, name: id, vcpus: 1, memoryMiB: 1024, pools: ['local'], networks: ['default'], ...over };
}

function chosen(p: Placement): string {
  if (!p.ok) throw new Error(p.reason);
  return p.node;
}

function failure(p: Placement): { reason: string; excluded: Record<string, number> } {
  if (p.ok) throw new Error(`placed on ${p.node}`);
  return p;
}

describe('policy', () => {
  it('defaults to spread, no memory overcommit, 4 vCPUs per CPU', () => {
    expect(DEFAULT_POLICY).toEqual({
      strategy: 'spread',
      memoryOvercommit: 1,
      vcpuOvercommit: 4,
      defaultCpuModel: 'auto',
    });
    expect(new ClusterState([]).policy).toEqual(DEFAULT_POLICY);
    expect(new ClusterState([], { strategy: 'pack' }).policy.vcpuOvercommit).toBe(4);
  });

  it('rejects invalid policies', () => {
    expect(() => new ClusterState([], { memoryOvercommit: 0 })).toThrow(/memoryOvercommit/);
    expect(() => new ClusterState([], { vcpuOvercommit: -1 })).toThrow(/vcpuOvercommit/);
    expect(() => new ClusterState([], { strategy: 'random' as 'pack' })).toThrow(/strategy/);
  });
});

describe('input validation', () => {
  const s = new ClusterState([host('h1')]);
  it('throws on non-positive vcpus or memory', () => {
    expect(() => s.place(vm('a', { vcpus: 0 }))).toThrow(/vcpus must be a positive integer/);
    expect(() => s.place(vm('a', { vcpus: 1.5 }))).toThrow(/vcpus/);
    expect(() => s.place(vm('a', { memoryMiB: -1 }))).toThrow(/memoryMiB must be a positive/);
    expect(() => s.assign(vm('a', { memoryMiB: 0 }), 'h1')).toThrow(/memoryMiB/);
  });
  it('throws on a bad host', () => {
    expect(() => s.upsertNode(host('h2', { cpus: -1 }))).toThrow(/cpus/);
    expect(() => s.upsertNode(host('', {}))).toThrow(/name/);
  });
});

describe('filters', () => {
  it('counts no hosts', () => {
    const f = failure(new ClusterState([]).place(vm('web-1')));
    expect(f.reason).toBe('no host fits VM "web-1" (1 vCPU, 1024 MiB): no hosts in the cluster');
    expect(f.excluded).toEqual({});
  });

  it('not-ready and maintenance exclude, and admit once cleared', () => {
    const s = new ClusterState([host('h1', { ready: false }), host('h2', { maintenance: true })]);
    const f = failure(s.place(vm('a')));
    expect(f.excluded).toEqual({ 'not-ready': 1, maintenance: 1 });
    s.upsertNode(host('h1'));
    expect(chosen(s.place(vm('a')))).toBe('h1');
    s.upsertNode(host('h1', { ready: false }));
    s.upsertNode(host('h2'));
    expect(chosen(s.place(vm('a')))).toBe('h2');
  });

  it('memory excludes a host that would exceed its memory, admits one that fits exactly', () => {
    const s = new ClusterState([host('h1', { memoryBytes: 4 * GiB })]);
    s.assign(vm('x', { memoryMiB: 3072 }), 'h1');
    expect(chosen(s.place(vm('a', { memoryMiB: 1024 })))).toBe('h1');
    expect(failure(s.place(vm('a', { memoryMiB: 1025 }))).excluded).toEqual({ memory: 1 });
  });

  it('memory overcommit allows more, but never a VM larger than the host', () => {
    const s = new ClusterState([host('h1', { memoryBytes: 4 * GiB })], { memoryOvercommit: 1.5 });
    s.assign(vm('x', { memoryMiB: 4096 }), 'h1');
    expect(chosen(s.place(vm('a', { memoryMiB: 2048 })))).toBe('h1');
    expect(failure(s.place(vm('a', { memoryMiB: 2049 }))).excluded).toEqual({ memory: 1 });
    const empty = new ClusterState([host('h1', { memoryBytes: 4 * GiB })], { memoryOvercommit: 2 });
    expect(failure(empty.place(vm('big', { memoryMiB: 5000 }))).excluded).toEqual({ memory: 1 });
  });

  it('vcpu follows the overcommit ratio, and a VM needs no more vCPUs than host CPUs', () => {
    const s = new ClusterState([host('h1', { cpus: 2 })], { vcpuOvercommit: 2 });
    s.assign(vm('x', { vcpus: 2 }), 'h1');
    expect(chosen(s.place(vm('a', { vcpus: 2 })))).toBe('h1');
    expect(failure(s.place(vm('a', { vcpus: 3 }))).excluded).toEqual({ vcpu: 1 });
    s.assign(vm('y', { vcpus: 1 }), 'h1');
    expect(chosen(s.place(vm('a', { vcpus: 1 })))).toBe('h1');
    expect(failure(s.place(vm('a', { vcpus: 2 }))).excluded).toEqual({ vcpu: 1 });
    const one = new ClusterState([host('h1', { cpus: 1 })], { vcpuOvercommit: 1 });
    expect(failure(one.place(vm('a', { vcpus: 2 }))).excluded).toEqual({ vcpu: 1 });
    expect(chosen(new ClusterState([host('h1', { cpus: 4 })]).place(vm('a', { vcpus: 4 })))).toBe('h1');
  });

  it('storage and network need every pool and network', () => {
    const s = new ClusterState([
      host('h1', { pools: ['local'], networks: ['default', 'dmz'] }),
      host('h2', { pools: ['local', 'ceph'], networks: ['default'] }),
      host('h3', { pools: ['local', 'ceph'], networks: ['default', 'dmz'] }),
    ]);
    const v = vm('a', { pools: ['local', 'ceph'], networks: ['dmz', 'default'] });
    expect(chosen(s.place(v))).toBe('h3');
    s.removeNode('h3');
    const f = failure(s.place(v));
    expect(f.excluded).toEqual({ storage: 1, network: 1 });
    expect(f.reason).toContain('1 missing storage pool (needs "local", "ceph")');
    expect(f.reason).toContain('1 missing network (needs "dmz", "default")');
    expect(chosen(s.place(vm('b', { pools: [], networks: [] })))).toBe('h1');
  });

  it('accelerator excludes tcg hosts only for VMs that require KVM', () => {
    const s = new ClusterState([host('h1', { accelerator: 'tcg' })]);
    expect(chosen(s.place(vm('a')))).toBe('h1');
    expect(chosen(s.place(vm('a', { requireKvm: false })))).toBe('h1');
    expect(failure(s.place(vm('a', { requireKvm: true }))).excluded).toEqual({ accelerator: 1 });
    s.upsertNode(host('h2'));
    expect(chosen(s.place(vm('a', { requireKvm: true })))).toBe('h2');
  });

  it('cpu-model admits only the exact model when the VM sets one', () => {
    const s = new ClusterState([host('h1', { cpuModel: 'AMD EPYC 7543' }), host('h2')]);
    const v = vm('a', { cpuModel: 'AMD EPYC 7543' });
    expect(chosen(s.place(v))).toBe('h1');
    s.upsertNode(host('h1', { cpuModel: 'AMD EPYC 7763' }));
    const f = failure(s.place(v));
    expect(f.excluded).toEqual({ 'cpu-model': 2 });
    expect(f.reason).toContain('2 with a CPU model other than "AMD EPYC 7543"');
  });

  it("cpu-model admits only hosts that run the VM's CPU level; a host that did not report levels is not judged", () => {
    const s = new ClusterState([
      host('h1', { cpuLevels: ['x86-64-v2'] }),
      host('h2', { cpuLevels: ['x86-64-v2', 'x86-64-v3'] }),
    ]);
    expect(chosen(s.place(vm('a', { cpuLevel: 'x86-64-v3' })))).toBe('h2');
    const f = failure(s.place(vm('a', { cpuLevel: 'x86-64-v4' })));
    expect(f.reason).toContain('2 that cannot run CPU level x86-64-v4');
    s.upsertNode(host('h2', { cpuLevels: undefined }));
    expect(chosen(s.place(vm('a', { cpuLevel: 'x86-64-v4' })))).toBe('h2');
  });

  it('counts each host under the first filter it fails, in filter order', () => {
    const s = new ClusterState([
      host('h1', { ready: false, maintenance: true }),
      host('h2', { maintenance: true, memoryBytes: 0 }),
      host('h3', { memoryBytes: GiB / 2, cpus: 0 }),
      host('h4', { cpus: 0, pools: [] }),
      host('h5', { pools: [], networks: [] }),
    ]);
    const f = failure(s.place(vm('web-1', { vcpus: 2, memoryMiB: 4096 })));
    expect(f.excluded).toEqual({ 'not-ready': 1, maintenance: 1, memory: 1, vcpu: 1, storage: 1 });
    expect(f.reason).toBe(
      'no host fits VM "web-1" (2 vCPU, 4096 MiB): 5 hosts: 1 not ready, 1 in maintenance, ' +
        '1 insufficient memory, 1 insufficient vCPUs, 1 missing storage pool (needs "local")',
    );
  });

  it('says "1 host" for a single host', () => {
    const s = new ClusterState([host('h1', { ready: false })]);
    expect(failure(s.place(vm('a'))).reason).toBe(
      'no host fits VM "a" (1 vCPU, 1024 MiB): 1 host: 1 not ready',
    );
  });
});

describe('pinned host', () => {
  const nodes = [host('h1'), host('h2', { memoryBytes: 2 * GiB }), host('h3')];

  it('places on the pinned host when it fits, even if another scores better', () => {
    const s = new ClusterState(nodes);
    s.assign(vm('x', { memoryMiB: 8192 }), 'h3');
    expect(chosen(s.place(vm('a', { node: 'h3' })))).toBe('h3');
  });

  it('still filters the pinned host', () => {
    const s = new ClusterState(nodes);
    const f = failure(s.place(vm('a', { node: 'h2', memoryMiB: 4096 })));
    expect(f.excluded).toEqual({ pinned: 2, memory: 1 });
    expect(f.reason).toBe(
      'no host fits VM "a" (1 vCPU, 4096 MiB): 3 hosts: 2 not the pinned host "h2", 1 insufficient memory',
    );
  });

  it('says when the pinned host does not exist', () => {
    const f = failure(new ClusterState(nodes).place(vm('a', { node: 'h9' })));
    expect(f.excluded).toEqual({ pinned: 3 });
    expect(f.reason).toContain('3 not the pinned host "h9" (no such host)');
  });
});

describe('scoring', () => {
  it('spread picks the emptiest host, pack the fullest that fits', () => {
    const nodes = [host('h1'), host('h2'), host('h3')];
    const spread = new ClusterState(nodes);
    const pack = new ClusterState(nodes, { strategy: 'pack' });
    for (const s of [spread, pack]) {
      s.assign(vm('x1', { vcpus: 4, memoryMiB: 4096 }), 'h1');
      s.assign(vm('x2', { vcpus: 8, memoryMiB: 8192 }), 'h2');
    }
    expect(chosen(spread.place(vm('a')))).toBe('h3');
    expect(chosen(pack.place(vm('a')))).toBe('h2');
    // When the fullest host cannot take it, pack falls back to the next fullest.
    expect(chosen(pack.place(vm('a', { memoryMiB: 9000 })))).toBe('h1');
  });

  it('scores relative to host size', () => {
    const s = new ClusterState([host('small', { cpus: 4, memoryBytes: 8 * GiB }), host('big', { cpus: 32 })]);
    s.assign(vm('x', { vcpus: 8, memoryMiB: 4096 }), 'big');
    // big: 9/128 vCPU, 5/16 memory; small: 1/16 vCPU, 1/8 memory.
    expect(chosen(s.place(vm('a')))).toBe('small');
  });

  it('spread and pack both prefer the host where CPU and memory stay balanced', () => {
    // vcpuOvercommit 1 so that shares are simple: 8 vCPUs and 8 GiB per host.
    const nodes = [host('cpu-heavy', { memoryBytes: 8 * GiB }), host('mem-heavy', { memoryBytes: 8 * GiB })];
    for (const strategy of ['spread', 'pack'] as const) {
      const s = new ClusterState(nodes, { strategy, vcpuOvercommit: 1 });
      s.assign(vm('x1', { vcpus: 4, memoryMiB: 1024 }), 'cpu-heavy'); // 1/2 CPU, 1/8 memory
      s.assign(vm('x2', { vcpus: 2, memoryMiB: 3072 }), 'mem-heavy'); // 1/4 CPU, 3/8 memory
      // Same mean use after placement (7/16) on both; the imbalance decides.
      expect(chosen(s.place(vm('a', { vcpus: 1, memoryMiB: 1024 }))), strategy).toBe('mem-heavy');
      // A CPU-hungry VM goes where memory is the busier resource, a memory-hungry one the other way.
      expect(chosen(s.place(vm('b', { vcpus: 2, memoryMiB: 512 }))), strategy).toBe('mem-heavy');
      expect(chosen(s.place(vm('c', { vcpus: 1, memoryMiB: 3072 }))), strategy).toBe('cpu-heavy');
    }
  });

  it('returns higher scores for emptier hosts under spread', () => {
    const s = new ClusterState([host('h1')]);
    const before = s.place(vm('a'));
    s.assign(vm('x', { vcpus: 8, memoryMiB: 8192 }), 'h1');
    const after = s.place(vm('a'));
    expect(before.ok && after.ok && before.score > after.score).toBe(true);
  });

  it('breaks ties by host name, whatever the insertion order', () => {
    const s = new ClusterState([host('h3'), host('h1'), host('h2')]);
    expect(chosen(s.place(vm('a')))).toBe('h1');
    expect(chosen(new ClusterState([host('b'), host('a')], { strategy: 'pack' }).place(vm('a')))).toBe('a');
  });

  it('spreads successive placements over identical hosts', () => {
    const s = new ClusterState([host('h1'), host('h2'), host('h3')]);
    const order = [1, 2, 3, 4, 5, 6].map((i) => chosen(s.placeAndAssign(vm(`v${i}`))));
    expect(order).toEqual(['h1', 'h2', 'h3', 'h1', 'h2', 'h3']);
  });
});

describe('affinity', () => {
  it('admits any host while no member is placed, then only the members’ host', () => {
    const s = new ClusterState([host('h1'), host('h2'), host('h3')]);
    s.assign(vm('busy', { vcpus: 4, memoryMiB: 8192 }), 'h1');
    expect(chosen(s.placeAndAssign(vm('db-1', { affinityGroup: 'db' })))).toBe('h2');
    s.assign(vm('busy2', { vcpus: 8, memoryMiB: 8192 }), 'h2');
    // Spread alone would choose h3.
    expect(chosen(s.place(vm('db-2', { affinityGroup: 'db' })))).toBe('h2');
    expect(chosen(s.place(vm('other', { affinityGroup: 'web' })))).toBe('h3');
  });

  it('fails when the members’ host is full', () => {
    const s = new ClusterState([host('h1'), host('h2', { memoryBytes: 2 * GiB })]);
    s.assign(vm('db-1', { affinityGroup: 'db' }), 'h2');
    const f = failure(s.place(vm('db-2', { affinityGroup: 'db', memoryMiB: 2048 })));
    expect(f.excluded).toEqual({ memory: 1, affinity: 1 });
    expect(f.reason).toContain('1 not the host of affinity group "db"');
  });

  it('admits no host when members are split over several', () => {
    const s = new ClusterState([host('h1'), host('h2'), host('h3')]);
    s.assign(vm('db-1', { affinityGroup: 'db' }), 'h1');
    s.assign(vm('db-2', { affinityGroup: 'db' }), 'h2');
    expect(failure(s.place(vm('db-3', { affinityGroup: 'db' }))).excluded).toEqual({ affinity: 3 });
    s.unassign('db-2');
    expect(chosen(s.place(vm('db-3', { affinityGroup: 'db' })))).toBe('h1');
  });

  it('admits no host while the members are on a host not in the cluster', () => {
    const s = new ClusterState([host('h1')]);
    s.assign(vm('db-1', { affinityGroup: 'db' }), 'h9');
    expect(failure(s.place(vm('db-2', { affinityGroup: 'db' }))).excluded).toEqual({ affinity: 1 });
    s.upsertNode(host('h9'));
    expect(chosen(s.place(vm('db-2', { affinityGroup: 'db' })))).toBe('h9');
  });

  it('frees the group once its last member is unassigned', () => {
    const s = new ClusterState([host('h1'), host('h2')]);
    s.assign(vm('x', { vcpus: 4 }), 'h1');
    s.assign(vm('db-1', { affinityGroup: 'db' }), 'h1');
    s.unassign('db-1');
    expect(chosen(s.place(vm('db-2', { affinityGroup: 'db' })))).toBe('h2');
  });

  it('does not hold a lone member to its own host', () => {
    const s = new ClusterState([host('h1'), host('h2')]);
    s.assign(vm('x', { vcpus: 4 }), 'h1');
    s.assign(vm('db-1', { affinityGroup: 'db' }), 'h1');
    expect(chosen(s.place(vm('db-1', { affinityGroup: 'db' })))).toBe('h2');
  });
});

describe('anti-affinity', () => {
  it('keeps members on different hosts until hosts run out', () => {
    const s = new ClusterState([host('h1'), host('h2'), host('h3')], { strategy: 'pack' });
    const placed = [1, 2, 3].map((i) =>
      chosen(s.placeAndAssign(vm(`etcd-${i}`, { antiAffinityGroup: 'etcd' }))),
    );
    expect(new Set(placed).size).toBe(3);
    const f = failure(s.place(vm('etcd-4', { antiAffinityGroup: 'etcd' })));
    expect(f.excluded).toEqual({ 'anti-affinity': 3 });
    expect(f.reason).toBe(
      'no host fits VM "etcd-4" (1 vCPU, 1024 MiB): 3 hosts: 3 already running a VM of anti-affinity group "etcd"',
    );
    // Other groups and ungrouped VMs are not affected; pack puts them with the others.
    expect(chosen(s.place(vm('x', { antiAffinityGroup: 'web' })))).toBe('h1');
    s.unassign('etcd-2');
    expect(chosen(s.place(vm('etcd-4', { antiAffinityGroup: 'etcd' })))).toBe(placed[1]);
  });

  it('does not count a VM against itself', () => {
    const s = new ClusterState([host('h1')]);
    s.assign(vm('etcd-1', { antiAffinityGroup: 'etcd' }), 'h1');
    expect(chosen(s.place(vm('etcd-1', { antiAffinityGroup: 'etcd' })))).toBe('h1');
  });
});

describe('powered-on and defined VMs', () => {
  it('a stopped VM holds no CPU or memory against a power-on, but counts for groups', () => {
    const s = new ClusterState([host('h1', { cpus: 4, memoryBytes: 2 * GiB })]);
    s.assign(vm('off', { vcpus: 4, memoryMiB: 2048, antiAffinityGroup: 'g' }), 'h1', { poweredOn: false });
    expect(s.allocation('h1')).toEqual({ vcpus: 0, memoryBytes: 0, vms: 1 });
    expect(chosen(s.place(vm('x', { vcpus: 4, memoryMiB: 2048 })))).toBe('h1');
    expect(failure(s.place(vm('y', { antiAffinityGroup: 'g' }))).excluded).toEqual({ 'anti-affinity': 1 });
    s.assign(vm('on', { vcpus: 1, memoryMiB: 1024 }), 'h1');
    expect(failure(s.place(vm('z', { memoryMiB: 1025 }))).excluded).toEqual({ memory: 1 });
    expect(s.headroom('h1')).toEqual({ vcpus: 15, memoryBytes: GiB, vcpuLimit: 16, memoryLimit: 2 * GiB });
    expect(s.headroom('nope')).toBeUndefined();
  });

  it('define mode only asks that the VM could ever run on the host, and prefers fewer defined', () => {
    const s = new ClusterState([host('h1', { cpus: 2, memoryBytes: 4 * GiB }), host('h2')]);
    // h1 is full of powered-on VMs, h2 has many stopped ones defined
    s.assign(vm('on', { vcpus: 8, memoryMiB: 4096 }), 'h1');
    for (let i = 0; i < 4; i++)
      s.assign(vm(`off${i}`, { vcpus: 4, memoryMiB: 8192 }), 'h2', { poweredOn: false });
    expect(chosen(s.place(vm('x'), { mode: 'power-on' }))).toBe('h2');
    expect(chosen(s.place(vm('x'), { mode: 'define' }))).toBe('h1');
    // larger than the host itself: never
    expect(failure(s.place(vm('big', { vcpus: 16 }), { mode: 'define' })).excluded).toEqual({ vcpu: 2 });
    expect(failure(s.place(vm('huge', { memoryMiB: 32768 }), { mode: 'define' })).excluded).toEqual({
      memory: 2,
    });
  });

  it('unassign takes back exactly what a stopped VM was accounted with', () => {
    const s = new ClusterState([host('h1')]);
    s.assign(vm('off', { vcpus: 2 }), 'h1', { poweredOn: false });
    s.assign(vm('on', { vcpus: 3 }), 'h1');
    s.unassign('off');
    expect(s.allocation('h1')).toEqual({ vcpus: 3, memoryBytes: GiB, vms: 1 });
    s.assign(vm('on', { vcpus: 3 }), 'h1', { poweredOn: false });
    expect(s.allocation('h1')).toEqual({ vcpus: 0, memoryBytes: 0, vms: 1 });
  });
});

describe('accounting', () => {
  it('assign and unassign add and take back usage', () => {
    const s = new ClusterState([host('h1')]);
    expect(s.allocation('h1')).toEqual({ vcpus: 0, memoryBytes: 0, vms: 0 });
    s.assign(vm('a', { vcpus: 2, memoryMiB: 2048 }), 'h1');
    s.assign(vm('b', { vcpus: 1, memoryMiB: 512 }), 'h1');
    expect(s.allocation('h1')).toEqual({ vcpus: 3, memoryBytes: 2560 * 1024 ** 2, vms: 2 });
    s.unassign('a');
    s.unassign('unknown');
    expect(s.allocation('h1')).toEqual({ vcpus: 1, memoryBytes: 512 * 1024 ** 2, vms: 1 });
  });

  it('assign is idempotent, moves a VM and takes its new size', () => {
    const s = new ClusterState([host('h1'), host('h2')]);
    const a = vm('a', { vcpus: 2, memoryMiB: 2048, antiAffinityGroup: 'g' });
    s.assign(a, 'h1');
    s.assign(a, 'h1');
    expect(s.allocation('h1')).toEqual({ vcpus: 2, memoryBytes: 2 * GiB, vms: 1 });
    s.assign(a, 'h2');
    expect(s.allocation('h1')).toEqual({ vcpus: 0, memoryBytes: 0, vms: 0 });
    expect(s.allocation('h2')).toEqual({ vcpus: 2, memoryBytes: 2 * GiB, vms: 1 });
    expect(chosen(s.place(vm('b', { antiAffinityGroup: 'g' })))).toBe('h1');
    s.assign({ ...a, vcpus: 4 }, 'h2');
    expect(s.allocation('h2')).toEqual({ vcpus: 4, memoryBytes: 2 * GiB, vms: 1 });
  });

  it('place does not assign; placeAndAssign does, and not on failure', () => {
    const s = new ClusterState([host('h1', { memoryBytes: 2 * GiB })]);
    s.place(vm('a'));
    expect(s.allocation('h1').vms).toBe(0);
    expect(chosen(s.placeAndAssign(vm('a', { memoryMiB: 2048 })))).toBe('h1');
    expect(s.placeAndAssign(vm('b')).ok).toBe(false);
    expect(s.allocation('h1')).toEqual({ vcpus: 1, memoryBytes: 2 * GiB, vms: 1 });
  });

  it('does not count an assigned VM against itself when placed again', () => {
    const s = new ClusterState([host('h1', { memoryBytes: 2 * GiB })]);
    s.assign(vm('a', { memoryMiB: 2048 }), 'h1');
    expect(chosen(s.place(vm('a', { memoryMiB: 2048 })))).toBe('h1');
    expect(s.place(vm('b', { memoryMiB: 2048 })).ok).toBe(false);
  });

  it('keeps usage when a host is updated, and accepts VMs on hosts not yet known', () => {
    const s = new ClusterState([host('h1')]);
    s.assign(vm('a', { vcpus: 2 }), 'h1');
    s.upsertNode(host('h1', { maintenance: true }));
    expect(s.allocation('h1').vcpus).toBe(2);
    s.assign(vm('b', { memoryMiB: 16384 }), 'h2');
    s.upsertNode(host('h2'));
    s.upsertNode(host('h1'));
    expect(failure(s.place(vm('c', { node: 'h2' }))).excluded).toEqual({ pinned: 1, memory: 1 });
  });

  it('removeNode drops the host and the accounting of its VMs', () => {
    const s = new ClusterState([host('h1'), host('h2')]);
    s.assign(vm('a', { affinityGroup: 'db' }), 'h1');
    s.assign(vm('b', { antiAffinityGroup: 'etcd' }), 'h2');
    s.removeNode('h1');
    expect(s.allocation('h1')).toEqual({ vcpus: 0, memoryBytes: 0, vms: 0 });
    // The affinity group no longer points at the removed host.
    expect(chosen(s.place(vm('c', { affinityGroup: 'db' })))).toBe('h2');
    s.removeNode('h2');
    s.removeNode('h2');
    expect(failure(s.place(vm('c'))).reason).toContain('no hosts in the cluster');
    s.upsertNode(host('h2'));
    expect(chosen(s.place(vm('d', { antiAffinityGroup: 'etcd' })))).toBe('h2');
  });
});
