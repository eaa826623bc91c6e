import { NfError } from '../errors';
import type { NodeInfo } from '../node/types';
import type { Store, Versioned } from '../store/store';
import { createLogger } from '../util/log';
import { isPoweredOn, keys, type NodeHealthRecord, type NodeRecord, type VmRecord } from './records';
import type { SchedNode } from './scheduler';

const log = createLogger('nodes');

/** Memory kept back from VMs on every host (the daemon, QEMU overheads, page cache). */
export const HOST_RESERVE_BYTES = 512 * 1024 ** 2;

export type NodeStatus = 'ready' | 'not-ready' | 'maintenance';

export interface NodeView {
  name: string;
  role: NodeRecord['role'];
  status: NodeStatus;
  maintenance: boolean;
  leader: boolean;
  lastHeartbeat: string | null;
  /** From the last heartbeat; null when the host is not ready. */
  memoryAvailableBytes: number | null;
  addresses: string[];
  apiAddress?: string;
  joinedAt: string;
  capacity: {
    cpus: number;
    memoryBytes: number;
    accelerator: string;
    cpuModel: string;
    cpuLevels: string[];
  } | null;
  /** VMs placed on the host; vCPUs, memory and count of those powered on (stopped VMs hold none). */
  allocation: { vms: number; poweredOn: number; vcpus: number; memoryBytes: number };
  pools: NonNullable<NodeRecord['info']>['pools'];
  etcd?: NodeRecord['etcd'];
}

/** The controllers that are members of the cluster, as a node's Node service needs them. */
export interface ControllerList {
  /** The store revision the list was read at: grows with every change, removals included. */
  revision: number;
  /** Sorted by name. */
  controllers: { name: string; addresses: string[] }[];
}

/** A lease-backed liveness key per node, kept alive by the leader as heartbeats arrive. */
export interface HealthLeases {
  beat(node: string, value: NodeHealthRecord): Promise<void>;
  drop(node: string): Promise<void>;
  close(): void;
}

/** Node records (desired: role, maintenance, addresses) and health (the leader's lease-backed keys). */
export class NodeRegistry {
  constructor(
    private readonly store: Store,
    private readonly leaderName: () => Promise<string | undefined>,
  ) {}

  list(): Promise<Versioned<NodeRecord>[]> {
    return this.store.list<NodeRecord>(keys.nodes);
  }

  async find(name: string): Promise<Versioned<NodeRecord>> {
    const rec = await this.store.get<NodeRecord>(keys.node(name));
    if (!rec) throw new NfError('not_found', `no host named "${name}" in the cluster`);
    return rec;
  }

  /** The controllers that are members now (records with role controller), read at one revision. */
  async controllers(): Promise<ControllerList> {
    const { items, revision } = await this.store.listWithRevision<NodeRecord>(keys.nodes);
    return {
      revision: Number(revision),
      controllers: items
        .filter((n) => n.value.role === 'controller')
        .map((n) => ({ name: n.value.name, addresses: [...n.value.addresses] }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    };
  }

  private controllersCache?: { at: number; list: Promise<ControllerList> };

  /** controllers(), read at most once per maxAgeMs: every heartbeat of every node asks for it. */
  cachedControllers(maxAgeMs = 1000): Promise<ControllerList> {
    const now = Date.now();
    const cur = this.controllersCache;
    if (cur && now - cur.at < maxAgeMs) return cur.list;
    const list = this.controllers();
    this.controllersCache = { at: now, list };
    list.catch(() => {
      if (this.controllersCache?.list === list) this.controllersCache = undefined; // do not keep a failure
    });
    return list;
  }

  /**
   * Refuses (forbidden) a heartbeat report unless `name` is a member host (its record exists: a removed
   * host's is gone) and reports from one of its recorded addresses (a copied certificate and key used
   * from another machine is refused). A store failure is passed on as it is, not taken as a removal.
   */
  async checkReporter(name: string, address: string): Promise<NodeRecord> {
    const rec = await this.store.get<NodeRecord>(keys.node(name));
    if (!rec) throw new NfError('forbidden', `host ${name} is not a member of this cluster (removed?)`);
    if (!rec.value.addresses.includes(address))
      throw new NfError(
        'forbidden',
        `the certificate of host ${name} was presented from ${address}, not from its address ${rec.value.addresses.join(', ')}`,
      );
    return rec.value;
  }

  async health(): Promise<Map<string, NodeHealthRecord>> {
    const all = await this.store.list<NodeHealthRecord>(keys.nodeHealths);
    return new Map(all.map((h) => [h.key.slice(keys.nodeHealths.length), h.value]));
  }

  /** Creates or updates a node's record (at first start or join, and when its facts change). */
  async upsert(name: string, change: (cur: NodeRecord | undefined) => NodeRecord | undefined): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<NodeRecord>(keys.node(name));
      const next = change(cur ? structuredClone(cur.value) : undefined);
      if (!next) return;
      try {
        await this.store.txn({
          when: [cur ? { key: cur.key, revision: cur.revision } : { key: keys.node(name), absent: true }],
          put: [{ key: keys.node(name), value: next }],
        });
        return;
      } catch (err) {
        if (!NfError.isCode(err, 'conflict')) throw err;
      }
    }
    throw new NfError('conflict', `host ${name} record kept changing; retry`);
  }

  /**
   * A heartbeat's facts into the node record, written only when capacity or pools changed. `known`: the
   * record as the caller just read it (checkReporter): unchanged facts then cost no read.
   */
  async recordInfo(name: string, info: NodeInfo, known?: NodeRecord): Promise<void> {
    const facts: NonNullable<NodeRecord['info']> = {
      cpus: info.cpus,
      cpuModel: info.cpuModel,
      memoryTotalBytes: info.memoryTotalBytes,
      accelerator: info.accelerator,
      // free space in whole GiB, rounded down (fewer record writes; never more than there is)
      pools: info.pools.map((p) => ({ ...p, freeBytes: Math.floor(p.freeBytes / 1024 ** 3) * 1024 ** 3 })),
      qemuVersion: info.qemuVersion,
      cpuLevels: info.cpuLevels,
    };
    if (known && JSON.stringify(known.info) === JSON.stringify(facts)) return;
    await this.upsert(name, (cur) => {
      if (!cur) return undefined; // not a member (removed meanwhile)
      if (JSON.stringify(cur.info) === JSON.stringify(facts)) return undefined;
      return { ...cur, info: facts };
    });
  }

  async setMaintenance(name: string, on: boolean): Promise<void> {
    await this.find(name);
    await this.upsert(name, (cur) => (cur ? { ...cur, maintenance: on } : undefined));
    log.info(on ? 'host enters maintenance mode' : 'host leaves maintenance mode', { node: name });
  }

  async views(vms?: VmRecord[]): Promise<NodeView[]> {
    const [nodes, health, leader, allVms] = await Promise.all([
      this.list(),
      this.health(),
      this.leaderName().catch(() => undefined),
      vms ? Promise.resolve(vms) : this.store.list<VmRecord>(keys.vms).then((l) => l.map((v) => v.value)),
    ]);
    const alloc = new Map<string, NodeView['allocation']>();
    for (const vm of allVms) {
      if (!vm.node) continue;
      const a = alloc.get(vm.node) ?? { vms: 0, poweredOn: 0, vcpus: 0, memoryBytes: 0 };
      a.vms++;
      if (!isPoweredOn(vm)) {
        alloc.set(vm.node, a);
        continue;
      }
      a.poweredOn++;
      a.vcpus += vm.vcpus;
      a.memoryBytes += vm.memoryMiB * 1024 ** 2;
      alloc.set(vm.node, a);
    }
    return nodes
      .map(({ value: n }) => {
        const h = health.get(n.name);
        const view: NodeView = {
          name: n.name,
          role: n.role,
          status: n.maintenance ? 'maintenance' : h ? 'ready' : 'not-ready',
          maintenance: n.maintenance,
          leader: leader === n.name,
          lastHeartbeat: h?.at ?? null,
          memoryAvailableBytes: h?.memoryAvailableBytes ?? null,
          addresses: n.addresses,
          joinedAt: n.joinedAt,
          capacity: n.info
            ? {
                cpus: n.info.cpus,
                memoryBytes: n.info.memoryTotalBytes,
                accelerator: n.info.accelerator,
                cpuModel: n.info.cpuModel,
                cpuLevels: n.info.cpuLevels ?? [],
              }
            : null,
          allocation: alloc.get(n.name) ?? { vms: 0, poweredOn: 0, vcpus: 0, memoryBytes: 0 },
          pools: n.info?.pools ?? [],
        };
        if (n.apiAddress) view.apiAddress = n.apiAddress;
        if (n.etcd) view.etcd = n.etcd;
        return view;
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The scheduler's picture of the hosts. */
  async schedNodes(
    networks: string[],
    reachable: (name: string) => boolean = () => true,
  ): Promise<SchedNode[]> {
    const [nodes, health] = await Promise.all([this.list(), this.health()]);
    return nodes.map(({ value: n }) => ({
      name: n.name,
      // Ready: heartbeats arrive, facts are known, and the leader can reach it to create disks and start.
      ready: health.has(n.name) && !!n.info && reachable(n.name),
      maintenance: n.maintenance,
      cpus: n.info?.cpus ?? 0,
      memoryBytes: Math.max(0, (n.info?.memoryTotalBytes ?? 0) - HOST_RESERVE_BYTES),
      pools: n.info?.pools.map((p) => p.name) ?? [],
      // nat networks exist on every host; OVN networks will too.
      networks,
      accelerator: n.info?.accelerator ?? 'tcg',
      cpuModel: n.info?.cpuModel ?? '',
      cpuLevels: n.info?.cpuLevels,
    }));
  }
}
