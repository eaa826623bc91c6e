/**
 * VM placement: the controller leader asks which host should run a VM. Hosts that cannot take it are
 * filtered out (each exclusion counted under the first filter it failed), the rest are scored by the
 * policy's strategy and the best one wins. Pure logic, no I/O: the caller feeds in hosts and the VMs
 * already placed, and keeps the state current as VMs come and go.
 *
 * Cost per placement is O(hosts) with O(1) work per host; group membership is indexed by group and host.
 */

/** A host as the scheduler sees it. */
export interface SchedNode {
  name: string;
  ready: boolean;
  maintenance: boolean;
  /** Host logical CPUs. */
  cpus: number;
  /** Memory usable for VMs (host total minus a reserve; the caller computes it). */
  memoryBytes: number;
  /** Storage pools present on the host. */
  pools: string[];
  /** Networks present on the host. */
  networks: string[];
  accelerator: 'kvm' | 'tcg';
  /** E.g. "Intel Xeon ..."; compared exactly when a VM asks for a CPU model. */
  cpuModel: string;
  /** The portable CPU levels it runs (x86-64-v2..v4); absent: not known (not judged). */
  cpuLevels?: string[];
}

/** A VM to place, or one already placed. */
export interface SchedVm {
  id: string;
  name: string;
  vcpus: number;
  memoryMiB: number;
  /** Pools its disks need. */
  pools: string[];
  /** Networks its NICs need. */
  networks: string[];
  /** The VM must run with KVM. */
  requireKvm?: boolean;
  /** When set, only hosts with this exact cpuModel are compatible. */
  cpuModel?: string;
  /** A portable CPU level (x86-64-v3): only hosts that run it are compatible. */
  cpuLevel?: string;
  /** Pinned host: only this one is considered (and it still has to pass every filter). */
  node?: string;
  /** VMs sharing this name must be on the same host. */
  affinityGroup?: string;
  /** VMs sharing this name must be on different hosts. */
  antiAffinityGroup?: string;
}

/** How hosts are chosen and how far they may be overcommitted. */
export interface SchedPolicy {
  /** `spread`: the host with most room left after placement; `pack`: the fullest host that fits. */
  strategy: 'spread' | 'pack';
  /** Memory that may be allocated per byte of host memory (1.0: no overcommit). */
  memoryOvercommit: number;
  /** vCPUs that may be allocated per host logical CPU. */
  vcpuOvercommit: number;
  /** The CPU model of new VMs that name none (controller/cpu-default.ts); not a placement setting. */
  defaultCpuModel: string;
}

/** Spread, no memory overcommit, 4 vCPUs per host CPU. */
export const DEFAULT_POLICY: Readonly<SchedPolicy> = Object.freeze({
  strategy: 'spread',
  memoryOvercommit: 1,
  vcpuOvercommit: 4,
  defaultCpuModel: 'auto',
});

/**
 * The outcome of a placement: the chosen host and its score (higher is better), or why no host fits
 * with the number of hosts each filter excluded (only filters that excluded at least one host appear).
 */
export type Placement =
  | { ok: true; node: string; score: number }
  | { ok: false; reason: string; excluded: Record<string, number> };

/** Filter names in the order they run. */
export const FILTERS = [
  'pinned',
  'not-ready',
  'maintenance',
  'memory',
  'vcpu',
  'storage',
  'network',
  'accelerator',
  'cpu-model',
  'affinity',
  'anti-affinity',
] as const;

/** The name of one placement filter. */
export type FilterName = (typeof FILTERS)[number];

const PINNED = 0;
const NOT_READY = 1;
const MAINTENANCE = 2;
const MEMORY = 3;
const VCPU = 4;
const STORAGE = 5;
const NETWORK = 6;
const ACCELERATOR = 7;
const CPU_MODEL = 8;
const AFFINITY = 9;
const ANTI_AFFINITY = 10;
const PASS = -1;

const MiB = 1024 * 1024;

/**
 * What is allocated on a host (known to the cluster or not yet). Only powered-on VMs hold CPU and memory;
 * every VM assigned there (a stopped one is bound by its local disks) counts in `defined`.
 */
interface Usage {
  vcpus: number;
  memoryBytes: number;
  defined: { vcpus: number; memoryBytes: number };
  /** Ids of the VMs assigned there. */
  vms: Set<string>;
}

/** How a VM is judged: `power-on` (the default) counts what powered-on VMs hold; `define` only asks that
 * the VM could ever run there (a stopped VM holds no CPU or memory) and prefers hosts with fewer defined. */
export interface PlaceOptions {
  mode?: 'power-on' | 'define';
}

interface Host {
  node: SchedNode;
  pools: Set<string>;
  networks: Set<string>;
  usage: Usage;
  /** Memory that may be allocated under the policy's overcommit. */
  memoryLimit: number;
  /** vCPUs that may be allocated under the policy's overcommit. */
  vcpuLimit: number;
}

/** What assign() accounted for a VM, so that unassign() can take exactly that back. */
interface Assigned {
  node: string;
  vcpus: number;
  memoryBytes: number;
  poweredOn: boolean;
  affinityGroup: string | undefined;
  antiAffinityGroup: string | undefined;
}

/** Group name → host name → number of the group's VMs on that host. */
type GroupIndex = Map<string, Map<string, number>>;

/** Per-placement inputs the filters need, computed once before looping over hosts. */
interface Request {
  vm: SchedVm;
  memoryBytes: number;
  /** Judge capacity against powered-on VMs (true) or only the VM's size against the host's (false). */
  powerOn: boolean;
  /** The VM's own earlier assignment, which is not counted against it, and the host it is on. */
  self: Assigned | undefined;
  selfHost: Host | undefined;
  /** undefined: no affinity constraint; null: no host can pass (members on several or unknown hosts). */
  affinityHost: Host | null | undefined;
  /** Hosts already running another VM of the VM's anti-affinity group. */
  antiAffinityHosts: Set<Host> | undefined;
}

/**
 * The scheduler's view of the cluster: hosts, what is allocated on each, and group membership.
 * Hosts are keyed by name, VMs by id.
 */
export class ClusterState {
  /** The policy in force: DEFAULT_POLICY overridden by the constructor's argument. */
  readonly policy: Readonly<SchedPolicy>;
  private readonly hosts: Host[] = [];
  private readonly byName = new Map<string, Host>();
  private readonly usage = new Map<string, Usage>();
  private readonly vms = new Map<string, Assigned>();
  private readonly affinity: GroupIndex = new Map();
  private readonly antiAffinity: GroupIndex = new Map();

  constructor(nodes: SchedNode[], policy?: Partial<SchedPolicy>) {
    const p = { ...DEFAULT_POLICY, ...policy };
    if (p.strategy !== 'spread' && p.strategy !== 'pack')
      throw new Error(`scheduler strategy must be "spread" or "pack", not "${p.strategy}"`);
    if (!(p.memoryOvercommit > 0) || !Number.isFinite(p.memoryOvercommit))
      throw new Error(`memoryOvercommit must be a positive number, not ${p.memoryOvercommit}`);
    if (!(p.vcpuOvercommit > 0) || !Number.isFinite(p.vcpuOvercommit))
      throw new Error(`vcpuOvercommit must be a positive number, not ${p.vcpuOvercommit}`);
    this.policy = Object.freeze(p);
    for (const n of nodes) this.upsertNode(n);
  }

  /** Adds a host or replaces its description; what is allocated on it is kept. */
  upsertNode(n: SchedNode): void {
    checkNode(n);
    const host: Host = {
      node: n,
      pools: new Set(n.pools),
      networks: new Set(n.networks),
      usage: this.usageOf(n.name),
      memoryLimit: n.memoryBytes * this.policy.memoryOvercommit,
      vcpuLimit: n.cpus * this.policy.vcpuOvercommit,
    };
    const old = this.byName.get(n.name);
    if (old) this.hosts[this.hosts.indexOf(old)] = host;
    else this.hosts.push(host);
    this.byName.set(n.name, host);
  }

  /** Removes a host together with the accounting of every VM assigned to it. */
  removeNode(name: string): void {
    const host = this.byName.get(name);
    if (host) {
      this.hosts.splice(this.hosts.indexOf(host), 1);
      this.byName.delete(name);
    }
    const u = this.usage.get(name);
    if (u) for (const id of [...u.vms]) this.unassign(id);
    this.usage.delete(name);
  }

  /**
   * Accounts a VM already placed on a node; idempotent by vm.id (moves if node changes, and takes the VM's
   * current size and groups). The node need not be known yet. A VM that is not powered on
   * (`poweredOn: false`) holds no CPU or memory there, but still counts for groups and `define` placements.
   */
  assign(vm: SchedVm, node: string, opts: { poweredOn?: boolean } = {}): void {
    checkVm(vm);
    if (!node) throw new Error(`cannot assign VM "${vm.name}" to a host without a name`);
    this.unassign(vm.id);
    const a: Assigned = {
      node,
      vcpus: vm.vcpus,
      memoryBytes: vm.memoryMiB * MiB,
      poweredOn: opts.poweredOn ?? true,
      affinityGroup: vm.affinityGroup,
      antiAffinityGroup: vm.antiAffinityGroup,
    };
    const u = this.usageOf(node);
    addUsage(u, a, 1);
    u.vms.add(vm.id);
    if (a.affinityGroup !== undefined) addMember(this.affinity, a.affinityGroup, node, 1);
    if (a.antiAffinityGroup !== undefined) addMember(this.antiAffinity, a.antiAffinityGroup, node, 1);
    this.vms.set(vm.id, a);
  }

  /** Forgets a VM's accounting; unknown ids are ignored. */
  unassign(vmId: string): void {
    const a = this.vms.get(vmId);
    if (!a) return;
    this.vms.delete(vmId);
    const u = this.usageOf(a.node);
    addUsage(u, a, -1);
    u.vms.delete(vmId);
    if (u.vms.size === 0 && !this.byName.has(a.node)) this.usage.delete(a.node);
    if (a.affinityGroup !== undefined) addMember(this.affinity, a.affinityGroup, a.node, -1);
    if (a.antiAffinityGroup !== undefined) addMember(this.antiAffinity, a.antiAffinityGroup, a.node, -1);
  }

  /**
   * Chooses a host for vm without assigning it. A VM already assigned is judged as if it were not: its
   * own usage and group membership do not count against it.
   */
  place(vm: SchedVm, opts: PlaceOptions = {}): Placement {
    checkVm(vm);
    const self = this.vms.get(vm.id);
    const powerOn = opts.mode !== 'define';
    const req: Request = {
      vm,
      memoryBytes: vm.memoryMiB * MiB,
      powerOn,
      self,
      selfHost: self && this.byName.get(self.node),
      affinityHost: this.affinityHost(vm, self),
      antiAffinityHosts: this.antiAffinityHosts(vm, self),
    };
    const excluded = new Array<number>(FILTERS.length).fill(0);
    let candidates = this.hosts;
    if (vm.node !== undefined) {
      const pinned = this.byName.get(vm.node);
      candidates = pinned ? [pinned] : [];
      excluded[PINNED] = this.hosts.length - candidates.length;
    }
    const pack = this.policy.strategy === 'pack';
    let best: Host | undefined;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (const h of candidates) {
      // What the host would hold with the VM on it: powered-on VMs, or every VM defined there.
      const own = h === req.selfHost ? req.self : undefined;
      const held = powerOn ? h.usage : h.usage.defined;
      const ownHeld = own && (!powerOn || own.poweredOn) ? own : undefined;
      const memoryBytes = held.memoryBytes + req.memoryBytes - (ownHeld ? ownHeld.memoryBytes : 0);
      const vcpus = held.vcpus + vm.vcpus - (ownHeld ? ownHeld.vcpus : 0);
      const failed = check(h, req, memoryBytes, vcpus);
      if (failed !== PASS) {
        excluded[failed]!++;
        continue;
      }
      const s = score(memoryBytes / h.memoryLimit, vcpus / h.vcpuLimit, pack);
      if (s > bestScore || (s === bestScore && h.node.name < best!.node.name)) {
        best = h;
        bestScore = s;
      }
    }
    if (best) return { ok: true, node: best.node.name, score: bestScore };
    return this.unschedulable(vm, excluded);
  }

  /** place() then assign() on success. */
  placeAndAssign(vm: SchedVm): Placement {
    const p = this.place(vm);
    if (p.ok) this.assign(vm, p.node);
    return p;
  }

  /** What the powered-on VMs on a node hold, and how many VMs are assigned there (zeros for none). */
  allocation(node: string): { vcpus: number; memoryBytes: number; vms: number } {
    const u = this.usage.get(node);
    return { vcpus: u?.vcpus ?? 0, memoryBytes: u?.memoryBytes ?? 0, vms: u?.vms.size ?? 0 };
  }

  /**
   * What a known node could still give to powered-on VMs under the policy (negative when overcommitted
   * beyond it), with the limits; undefined for an unknown node.
   */
  headroom(
    node: string,
  ): { vcpus: number; memoryBytes: number; vcpuLimit: number; memoryLimit: number } | undefined {
    const h = this.byName.get(node);
    if (!h) return undefined;
    return {
      vcpus: h.vcpuLimit - h.usage.vcpus,
      memoryBytes: h.memoryLimit - h.usage.memoryBytes,
      vcpuLimit: h.vcpuLimit,
      memoryLimit: h.memoryLimit,
    };
  }

  /**
   * The host the VM's affinity group is on: undefined when no other member is placed (any host will do),
   * null when members are on several hosts or on one not in the cluster (no host can pass).
   */
  private affinityHost(vm: SchedVm, self: Assigned | undefined): Host | null | undefined {
    const group = vm.affinityGroup;
    const members = group === undefined ? undefined : this.affinity.get(group);
    if (!members) return undefined;
    let node: string | null | undefined;
    for (const [name, count] of members) {
      const others = self?.node === name && self.affinityGroup === group ? count - 1 : count;
      if (others > 0) node = node === undefined ? name : null;
    }
    if (node === undefined || node === null) return node;
    return this.byName.get(node) ?? null;
  }

  /** The hosts already running another VM of vm's anti-affinity group (undefined: none). */
  private antiAffinityHosts(vm: SchedVm, self: Assigned | undefined): Set<Host> | undefined {
    const group = vm.antiAffinityGroup;
    const members = group === undefined ? undefined : this.antiAffinity.get(group);
    if (!members) return undefined;
    const hosts = new Set<Host>();
    for (const [name, count] of members) {
      const others = self?.node === name && self.antiAffinityGroup === group ? count - 1 : count;
      const h = this.byName.get(name);
      if (others > 0 && h) hosts.add(h);
    }
    return hosts.size > 0 ? hosts : undefined;
  }

  private unschedulable(vm: SchedVm, counts: number[]): Placement {
    const head = `no host fits VM "${vm.name}" (${vm.vcpus} vCPU, ${vm.memoryMiB} MiB)`;
    if (this.hosts.length === 0)
      return { ok: false, reason: `${head}: no hosts in the cluster`, excluded: {} };
    const excluded: Record<string, number> = {};
    const parts: string[] = [];
    FILTERS.forEach((f, i) => {
      const c = counts[i]!;
      if (c === 0) return;
      excluded[f] = c;
      parts.push(`${c} ${this.describe(f, vm)}`);
    });
    const hosts = this.hosts.length === 1 ? '1 host' : `${this.hosts.length} hosts`;
    return { ok: false, reason: `${head}: ${hosts}: ${parts.join(', ')}`, excluded };
  }

  /** What hosts excluded by filter f have in common, for an administrator. */
  private describe(f: FilterName, vm: SchedVm): string {
    switch (f) {
      case 'pinned':
        return this.byName.has(vm.node!)
          ? `not the pinned host "${vm.node}"`
          : `not the pinned host "${vm.node}" (no such host)`;
      case 'not-ready':
        return 'not ready';
      case 'maintenance':
        return 'in maintenance';
      case 'memory':
        return 'insufficient memory';
      case 'vcpu':
        return 'insufficient vCPUs';
      case 'storage':
        return `missing storage pool (needs ${quoted(vm.pools)})`;
      case 'network':
        return `missing network (needs ${quoted(vm.networks)})`;
      case 'accelerator':
        return 'without KVM';
      case 'cpu-model':
        return vm.cpuLevel
          ? `that cannot run CPU level ${vm.cpuLevel}`
          : `with a CPU model other than "${vm.cpuModel}"`;
      case 'affinity':
        return `not the host of affinity group "${vm.affinityGroup}"`;
      case 'anti-affinity':
        return `already running a VM of anti-affinity group "${vm.antiAffinityGroup}"`;
    }
  }

  private usageOf(node: string): Usage {
    let u = this.usage.get(node);
    if (!u) {
      u = { vcpus: 0, memoryBytes: 0, defined: { vcpus: 0, memoryBytes: 0 }, vms: new Set() };
      this.usage.set(node, u);
    }
    return u;
  }
}

/** The first filter host h fails, or PASS; memoryBytes and vcpus are what h would hold with the VM on it. */
function check(h: Host, req: Request, memoryBytes: number, vcpus: number): number {
  const n = h.node;
  const vm = req.vm;
  if (!n.ready) return NOT_READY;
  if (n.maintenance) return MAINTENANCE;
  // A VM larger than the host never runs there; what others hold counts only for a power-on.
  if (req.memoryBytes > n.memoryBytes || (req.powerOn && memoryBytes > h.memoryLimit)) return MEMORY;
  if (vm.vcpus > n.cpus || (req.powerOn && vcpus > h.vcpuLimit)) return VCPU;
  for (const p of vm.pools) if (!h.pools.has(p)) return STORAGE;
  for (const net of vm.networks) if (!h.networks.has(net)) return NETWORK;
  if (vm.requireKvm && n.accelerator !== 'kvm') return ACCELERATOR;
  if (vm.cpuModel !== undefined && vm.cpuModel !== n.cpuModel) return CPU_MODEL;
  if (vm.cpuLevel !== undefined && n.cpuLevels && !n.cpuLevels.includes(vm.cpuLevel)) return CPU_MODEL;
  if (req.affinityHost !== undefined && req.affinityHost !== h) return AFFINITY;
  if (req.antiAffinityHosts?.has(h)) return ANTI_AFFINITY;
  return PASS;
}

/**
 * Scores a host that passed every filter from its memory and CPU use after placement, each as a share of
 * what the policy allows (0..1). Spread scores 1 − (mean + difference/4): the most room left, with the
 * scarcer resource weighing 3/4. Pack scores mean − difference/4: the most used, with the less used
 * resource weighing 3/4. Either way more room (spread) or use (pack) of either resource raises the score,
 * and an imbalance between CPU and memory use lowers it.
 */
function score(memoryUse: number, cpuUse: number, pack: boolean): number {
  const mean = (memoryUse + cpuUse) / 2;
  const imbalance = Math.abs(memoryUse - cpuUse) / 4;
  return pack ? mean - imbalance : 1 - mean - imbalance;
}

/** Adds (sign 1) or takes back (-1) what an assigned VM holds on its host. */
function addUsage(u: Usage, a: Assigned, sign: 1 | -1): void {
  u.defined.vcpus += sign * a.vcpus;
  u.defined.memoryBytes += sign * a.memoryBytes;
  if (!a.poweredOn) return;
  u.vcpus += sign * a.vcpus;
  u.memoryBytes += sign * a.memoryBytes;
}

function addMember(index: GroupIndex, group: string, node: string, delta: number): void {
  let byNode = index.get(group);
  if (!byNode) {
    byNode = new Map();
    index.set(group, byNode);
  }
  const count = (byNode.get(node) ?? 0) + delta;
  if (count > 0) byNode.set(node, count);
  else byNode.delete(node);
  if (byNode.size === 0) index.delete(group);
}

function checkVm(vm: SchedVm): void {
  if (!vm.id) throw new Error(`VM "${vm.name}" has no id`);
  if (!Number.isInteger(vm.vcpus) || vm.vcpus <= 0)
    throw new Error(`VM "${vm.name}": vcpus must be a positive integer, not ${vm.vcpus}`);
  if (!Number.isFinite(vm.memoryMiB) || vm.memoryMiB <= 0)
    throw new Error(`VM "${vm.name}": memoryMiB must be a positive number, not ${vm.memoryMiB}`);
}

function checkNode(n: SchedNode): void {
  if (!n.name) throw new Error('a host needs a name');
  if (!Number.isFinite(n.cpus) || n.cpus < 0)
    throw new Error(`host "${n.name}": cpus must be a non-negative number, not ${n.cpus}`);
  if (!Number.isFinite(n.memoryBytes) || n.memoryBytes < 0)
    throw new Error(`host "${n.name}": memoryBytes must be a non-negative number, not ${n.memoryBytes}`);
}

function quoted(names: string[]): string {
  return names.map((s) => `"${s}"`).join(', ');
}
