import { NfError } from '../errors';
import { capabilitiesOf } from '../storage/registry';
import type { Store, Versioned } from '../store/store';
import type { NodeRegistry } from './node-registry';
import type { NodeRouter } from './node-router';
import { loadClusterState, toSched } from './placement';
import { type ImageRecord, isPoweredOn, keys, type NodeRecord, type VmRecord } from './records';
import type { ClusterState } from './scheduler';

const MiB = 1024 ** 2;

/** What a refused power-on reports in the error's details. */
export interface CapacityShortfall {
  host: string;
  asked: { vcpus: number; memoryMiB: number };
  free: { vcpus: number; memoryMiB: number };
  limit: { vcpus: number; memoryMiB: number };
  poweredOnVms: number;
}

/**
 * Admission control at power-on, as vSphere and Proxmox do it: defining a VM costs no CPU or memory;
 * powering it on needs room on its host under the cluster policy (vCPU and memory overcommit). The check
 * and the write of `power: running` are one compare-and-swap together with a per-host admission key that
 * every power-on bumps, so two controllers (or two calls) cannot both take the last room on a host.
 */
export class Admission {
  constructor(
    private readonly store: Store,
    private readonly router: NodeRouter,
    private readonly registry: NodeRegistry,
  ) {}

  /**
   * Writes `next` (the VM record asking to be powered on) if its host has room, and returns the record
   * written. A VM whose disks are all on shared storage goes to another host with room when its own has
   * none. Refused with `insufficient_capacity` and the figures otherwise; nothing is written then.
   */
  async powerOn(cur: Versioned<VmRecord>, next: VmRecord): Promise<VmRecord> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.tryPowerOn(cur, next);
      } catch (err) {
        // Another power-on on the host (the admission key moved): judge again with it counted.
        if (!NfError.isCode(err, 'conflict') || attempt >= 5) throw err;
        const now = await this.store.get<VmRecord>(cur.key);
        if (!now || now.revision !== cur.revision) throw err; // the VM itself changed: the caller decides
      }
    }
  }

  private async tryPowerOn(cur: Versioned<VmRecord>, next: VmRecord): Promise<VmRecord> {
    const vm = cur.value;
    const admissionKey = keys.admission(vm.node);
    // Read the key before the VMs: any power-on committed after this read moves it and fails our write.
    const ticket = await this.store.get<{ count: number }>(admissionKey);
    const [vms, nodes] = await Promise.all([this.store.list<VmRecord>(keys.vms), this.registry.list()]);
    const { state, images, imageNode } = await loadClusterState(
      this.store,
      this.router,
      this.registry,
      vms,
      vm.id,
    );
    const poweredOnVms = vms.filter(
      (v) =>
        v.value.node === vm.node &&
        v.value.id !== vm.id &&
        isPoweredOn(v.value, (id) => this.router.hasProcess(id)),
    ).length;
    const shortfall = this.shortfall(state, vm, poweredOnVms);
    let target = vm.node;
    if (shortfall) {
      const elsewhere = this.movable(vm, nodes, images) && this.elsewhere(state, vm, imageNode);
      if (!elsewhere) throw refusal(vm, shortfall);
      target = elsewhere;
    }
    const written: VmRecord = { ...next, node: target };
    const targetKey = keys.admission(target);
    const targetTicket = target === vm.node ? ticket : await this.store.get<{ count: number }>(targetKey);
    await this.store.txn({
      when: [
        { key: cur.key, revision: cur.revision },
        targetTicket ? { key: targetKey, revision: targetTicket.revision } : { key: targetKey, absent: true },
      ],
      put: [
        { key: cur.key, value: written },
        { key: targetKey, value: { count: (targetTicket?.value.count ?? 0) + 1 } },
      ],
    });
    if (target !== vm.node) this.router.locate(vm.id, target);
    return written;
  }

  /** What the VM's own host lacks to power it on, or undefined when it fits. */
  private shortfall(state: ClusterState, vm: VmRecord, poweredOnVms: number): CapacityShortfall | undefined {
    const room = state.headroom(vm.node);
    if (!room) return undefined; // a host without a record (removed): the start fails on its own terms
    const askedBytes = vm.memoryMiB * MiB;
    if (vm.vcpus <= room.vcpus && askedBytes <= room.memoryBytes) return undefined;
    return {
      host: vm.node,
      asked: { vcpus: vm.vcpus, memoryMiB: vm.memoryMiB },
      free: {
        vcpus: Math.max(0, room.vcpus),
        memoryMiB: Math.max(0, Math.floor(room.memoryBytes / MiB)),
      },
      limit: { vcpus: room.vcpuLimit, memoryMiB: Math.floor(room.memoryLimit / MiB) },
      poweredOnVms,
    };
  }

  /** The VM needs nothing of its current host: every disk on shared storage, no image from a host pool. */
  private movable(vm: VmRecord, nodes: Versioned<NodeRecord>[], images: Versioned<ImageRecord>[]): boolean {
    if (vm.placement?.node) return false;
    const shared = new Set<string>();
    for (const n of nodes)
      for (const p of n.value.info?.pools ?? []) if (capabilitiesOf(p.type)?.shared) shared.add(p.name);
    if (vm.disks.length === 0 || !vm.disks.every((d) => shared.has(d.pool))) return false;
    const local = new Set(images.filter((i) => !shared.has(i.value.pool)).map((i) => i.value.id));
    const cdrom = 'cdrom' in vm.boot && 'image' in vm.boot.cdrom ? vm.boot.cdrom.image : undefined;
    return !(cdrom && local.has(cdrom)) && !vm.disks.some((d) => d.image && local.has(d.image));
  }

  /** Another host with room for the VM, chosen by the scheduler as for a new placement. */
  private elsewhere(state: ClusterState, vm: VmRecord, imageNode: Map<string, string>): string | undefined {
    const p = state.place(toSched({ ...vm, node: '' }, imageNode, { pins: false }));
    return p.ok && p.node !== vm.node ? p.node : undefined;
  }
}

function refusal(vm: VmRecord, s: CapacityShortfall): NfError {
  const lacks: string[] = [];
  if (s.asked.vcpus > s.free.vcpus)
    lacks.push(`${s.asked.vcpus} vCPU asked, ${s.free.vcpus} of ${s.limit.vcpus} free`);
  if (s.asked.memoryMiB > s.free.memoryMiB)
    lacks.push(`${s.asked.memoryMiB} MiB asked, ${s.free.memoryMiB} of ${s.limit.memoryMiB} MiB free`);
  return new NfError(
    'insufficient_capacity',
    `cannot power on VM "${vm.name}": host ${s.host} lacks room (${lacks.join('; ')}; ` +
      `${s.poweredOnVms} VM(s) powered on there); stop a VM on it or raise the overcommit policy`,
    s,
  );
}
