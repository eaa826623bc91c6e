import { NfError } from '../errors';
import { capabilitiesOf } from '../storage/registry';
import type { Condition, Store, Versioned } from '../store/store';
import { type FailoverHost, type FailoverVm, failoverCheck } from './ha/failover';
import { DEFAULT_HA_SETTINGS, type HaSettings } from './ha/policy';
import type { NodeRegistry } from './node-registry';
import { HOST_RESERVE_BYTES } from './node-registry';
import type { NodeRouter } from './node-router';
import { loadClusterState, toSched } from './placement';
import { type ImageRecord, isoImagesOf, isPoweredOn, keys, type NodeRecord, type VmRecord } from './records';
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
    await this.checkFailover(vms, nodes, written);
    const targetTicket =
      target === vm.node ? ticket : await this.store.get<{ count: number }>(keys.admission(target));
    const bump = admissionBump(target, targetTicket);
    await this.store.txn({
      when: [{ key: cur.key, revision: cur.revision }, bump.when],
      put: [{ key: cur.key, value: written }, bump.put],
    });
    if (target !== vm.node) this.router.locate(vm.id, target);
    return written;
  }

  /**
   * HA admission control: once any powered-on VM has HA on, a power-on that would leave too little
   * room to restart the HA VMs after `tolerateHostFailures` hosts fail is refused (vSphere's "host
   * failures to tolerate"). A cluster with too few hosts for the setting is only warned about (GET /ha).
   */
  private async checkFailover(vms: Versioned<VmRecord>[], nodes: Versioned<NodeRecord>[], written: VmRecord) {
    const hasProcess = (id: string) => this.router.hasProcess(id);
    const on = vms
      .map((v) => v.value)
      .filter((v) => v.id !== written.id && v.node && isPoweredOn(v, hasProcess));
    on.push(written);
    if (!on.some((v) => v.ha?.enabled)) return;
    const settings = {
      ...DEFAULT_HA_SETTINGS,
      ...(await this.store.get<Partial<HaSettings>>(keys.haSettings))?.value,
    };
    const hosts = failoverHosts(nodes.map((n) => n.value));
    if (hosts.length <= settings.tolerateHostFailures) return;
    const check = failoverCheck(settings.tolerateHostFailures, hosts, on.map(failoverVm));
    if (!check.ok)
      throw new NfError(
        'insufficient_capacity',
        `cannot power on VM "${written.name}": HA admission control (${settings.tolerateHostFailures} host failure(s) tolerated): ${check.message}; stop a VM, add a host, or lower the failures to tolerate (PUT /api/v1/ha)`,
        { needBytes: check.needBytes, leftBytes: check.leftBytes },
      );
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
    return !tiedToHost(
      vm,
      nodes.map((n) => n.value),
      images.map((i) => i.value),
    );
  }

  /** Another host with room for the VM, chosen by the scheduler as for a new placement. */
  private elsewhere(state: ClusterState, vm: VmRecord, imageNode: Map<string, string>): string | undefined {
    const p = state.place(toSched({ ...vm, node: '' }, imageNode, { pins: false }));
    return p.ok && p.node !== vm.node ? p.node : undefined;
  }
}

/** The hosts outside maintenance with the memory they give VMs, as failoverCheck takes them. */
export function failoverHosts(nodes: NodeRecord[]): FailoverHost[] {
  return nodes
    .filter((n) => !n.maintenance)
    .map((n) => ({
      name: n.name,
      memoryBytes: Math.max(0, (n.info?.memoryTotalBytes ?? 0) - HOST_RESERVE_BYTES),
    }));
}

/** A powered-on VM as failoverCheck takes it. */
export function failoverVm(v: VmRecord): FailoverVm {
  return { node: v.node, memoryMiB: v.memoryMiB, ha: !!v.ha?.enabled };
}

export type AdmissionTicket = Versioned<{ count: number }> | undefined;

/**
 * The compare and the bump of a host's admission key, for the transaction that powers a VM on there:
 * any power-on on the host committed since `ticket` was read makes it fail. Read the ticket before the
 * VMs the decision is based on.
 */
export function admissionBump(
  node: string,
  ticket: AdmissionTicket,
): { when: Condition; put: { key: string; value: { count: number } } } {
  const key = keys.admission(node);
  return {
    when: ticket ? { key, revision: ticket.revision } : { key, absent: true },
    put: { key, value: { count: (ticket?.value.count ?? 0) + 1 } },
  };
}

/** Every host's admission ticket, read at once (before the VMs, see admissionBump). */
export async function admissionTickets(store: Store): Promise<Map<string, AdmissionTicket>> {
  const all = await store.list<{ count: number }>(keys.admission(''));
  return new Map(all.map((t) => [t.key.slice(keys.admission('').length), t]));
}

/**
 * Why a VM cannot run on another host than its own (pinned, a disk on a host's pool, an image file of a
 * host's pool), or undefined when it can: every disk on shared storage.
 */
export function tiedToHost(vm: VmRecord, nodes: NodeRecord[], images: ImageRecord[]): string | undefined {
  if (vm.placement?.node) return `pinned to host ${vm.placement.node}`;
  const shared = new Set<string>();
  for (const n of nodes)
    for (const p of n.info?.pools ?? []) if (capabilitiesOf(p.type)?.shared) shared.add(p.name);
  if (vm.disks.length === 0) return 'it has no disk on shared storage';
  const local = vm.disks.find((d) => !shared.has(d.pool));
  if (local) return `disk ${local.id} is on pool ${local.pool} of its host, not on shared storage`;
  if (vm.efiVars && !shared.has(vm.efiVars.pool))
    return `its UEFI variable store is on pool ${vm.efiVars.pool} of its host, not on shared storage`;
  if (vm.tpm) return 'its TPM state is kept on its host';
  const hostImages = new Set(images.filter((i) => !shared.has(i.pool)).map((i) => i.id));
  if (isoImagesOf(vm).some((i) => hostImages.has(i))) return 'its CD-ROM image is in a pool of its host';
  if (vm.disks.some((d) => d.image && hostImages.has(d.image)))
    return 'a disk hangs off an image in a pool of its host';
  return undefined;
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
