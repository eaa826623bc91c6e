import { NfError, toNfError } from '../errors';
import type { VolumeBacking } from '../node/types';
import type { Store, Versioned } from '../store/store';
import { createLogger } from '../util/log';
import { CPU_LEVELS } from '../vmm/types';
import type { NodeRegistry } from './node-registry';
import type { NodeRouter } from './node-router';
import {
  type ImageRecord,
  isoImagesOf,
  isPoweredOn,
  keys,
  type NetworkRecord,
  type VmRecord,
} from './records';
import { ClusterState, type SchedPolicy, type SchedVm } from './scheduler';

const log = createLogger('placement');

/** Records per transaction (etcd allows 128 operations; each VM is a compare and a put). */
const BATCH = 50;

/**
 * Runs on the leader: gives every pending VM a host (scheduler), creates its disks there, then writes the
 * host into the record with compare-and-swap. A VM that fits nowhere keeps `pending` with the reason.
 * A stopped VM costs its disks, not CPU or memory: it only needs a host it could ever run on (hosts with
 * fewer VMs defined are preferred). Only powered-on VMs hold capacity; admission happens at power-on
 * (Admission).
 */
export class Placement {
  private pendingPass = false;
  private running = false;
  private active = false;
  private timer?: Timer;
  private cancelWatch?: () => Promise<void>;
  /** Passes done and VMs placed (for benchmarks and logs). */
  readonly stats = { passes: 0, placed: 0 };

  constructor(
    private readonly store: Store,
    private readonly router: NodeRouter,
    private readonly registry: NodeRegistry,
    private readonly resyncMs = 10_000,
  ) {}

  /** Starts placing (on becoming leader). */
  async start(): Promise<void> {
    if (this.active) return;
    this.active = true;
    this.cancelWatch = await this.store.watchPrefix(keys.vms, () => this.wake());
    const cancelNodes = await this.store.watchPrefix(keys.nodes, () => this.wake());
    const cancelHealth = await this.store.watchPrefix(keys.nodeHealths, () => this.wake());
    const cancelVms = this.cancelWatch;
    this.cancelWatch = async () => {
      await Promise.all([cancelVms(), cancelNodes(), cancelHealth()]);
    };
    this.timer = setInterval(() => this.wake(), this.resyncMs);
    this.wake();
  }

  /** Stops placing (on losing leadership or shutdown). */
  async stop(): Promise<void> {
    this.active = false;
    if (this.timer) clearInterval(this.timer);
    await this.cancelWatch?.().catch(() => {});
    this.cancelWatch = undefined;
  }

  wake(): void {
    if (!this.active) return;
    this.pendingPass = true;
    if (!this.running) void this.loop();
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.pendingPass && this.active) {
        this.pendingPass = false;
        try {
          await this.pass();
        } catch (err) {
          log.warn('placement pass failed; will retry', { err: (err as Error).message });
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** One pass over every VM; returns how many were placed. */
  async pass(): Promise<number> {
    const vms = await this.store.list<VmRecord>(keys.vms);
    const unplaced = vms.filter((v) => !v.value.node);
    if (unplaced.length === 0) return 0;
    this.stats.passes++;
    const { state, images, imageNode } = await loadClusterState(this.store, this.router, this.registry, vms);
    unplaced.sort((a, b) => a.value.createdAt.localeCompare(b.value.createdAt));
    let placed = 0;
    // VMs without disks need nothing on the host: their records are written in batches.
    const batch: { cur: Versioned<VmRecord>; node: string }[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      placed += await this.bindRecords(batch.splice(0));
    };
    for (const cur of unplaced) {
      let sched: SchedVm;
      try {
        sched = toSched(cur.value, imageNode);
      } catch (err) {
        await this.markPending(cur, toNfError(err).message);
        continue;
      }
      const poweredOn = isPoweredOn(cur.value, (id) => this.router.hasProcess(id));
      let p: ReturnType<ClusterState['place']>;
      try {
        p = state.place(sched, { mode: poweredOn ? 'power-on' : 'define' });
      } catch (err) {
        await this.markPending(cur, `the VM record is not valid for placement: ${(err as Error).message}`);
        continue;
      }
      if (!p.ok) {
        await this.markPending(cur, p.reason);
        continue;
      }
      if (cur.value.disks.length === 0) {
        state.assign(sched, p.node, { poweredOn });
        batch.push({ cur, node: p.node });
        if (batch.length >= BATCH) await flush();
        continue;
      }
      try {
        await this.bind(cur, p.node, images);
        state.assign(sched, p.node, { poweredOn });
        placed++;
      } catch (err) {
        log.warn('could not place VM on the chosen host', {
          vm: cur.value.name,
          node: p.node,
          err: (err as Error).message,
        });
        await this.markPending(cur, `host ${p.node} was chosen but failed: ${(err as Error).message}`);
      }
    }
    await flush();
    this.stats.placed += placed;
    if (placed) log.info('VMs placed', { placed, pending: unplaced.length - placed });
    return placed;
  }

  /**
   * Writes the chosen hosts of diskless VMs in one transaction (each record compared on its revision);
   * when any record changed meanwhile, falls back to one transaction per VM. Returns how many were written.
   */
  private async bindRecords(items: { cur: Versioned<VmRecord>; node: string }[]): Promise<number> {
    const now = new Date().toISOString();
    const next = items.map(({ cur, node }) => {
      const v: VmRecord = { ...cur.value, node, updatedAt: now };
      delete v.pending;
      return { cur, v };
    });
    try {
      await this.store.txn({
        when: next.map(({ cur }) => ({ key: cur.key, revision: cur.revision })),
        put: next.map(({ cur, v }) => ({ key: cur.key, value: v })),
      });
      for (const { v } of next) this.router.locate(v.id, v.node);
      return next.length;
    } catch (err) {
      if (!NfError.isCode(err, 'conflict')) throw err;
    }
    let n = 0;
    for (const { cur, v } of next) {
      try {
        await this.store.txn({
          when: [{ key: cur.key, revision: cur.revision }],
          put: [{ key: cur.key, value: v }],
        });
        this.router.locate(v.id, v.node);
        n++;
      } catch (err) {
        if (!NfError.isCode(err, 'conflict')) throw err; // changed meanwhile: the next pass sees it
      }
    }
    return n;
  }

  /** Creates the VM's disks on the host, then writes the host into the record (undoing the disks on failure). */
  private async bind(
    cur: Versioned<VmRecord>,
    node: string,
    images: Versioned<ImageRecord>[],
  ): Promise<void> {
    const api = this.router.on(node);
    const created: { pool: string; volume: string }[] = [];
    try {
      for (const d of cur.value.disks) {
        let backing: VolumeBacking | undefined;
        if (d.image) {
          const img = images.find((i) => i.value.id === d.image);
          if (!img) throw new NfError('not_found', `image ${d.image} of disk ${d.id} is gone`);
          backing = { file: img.value.file, format: img.value.format === 'raw' ? 'raw' : 'qcow2' };
        } else if (d.cloneOf) {
          backing = await this.templateDisk(d.cloneOf, d.pool);
        }
        await api.createVolume(d.pool, d.volume, d.sizeBytes, backing);
        created.push(d);
      }
      const next: VmRecord = { ...cur.value, node, updatedAt: new Date().toISOString() };
      delete next.pending;
      await this.store.txn({
        when: [{ key: cur.key, revision: cur.revision }],
        put: [{ key: cur.key, value: next }],
      });
      this.router.locate(next.id, node);
    } catch (err) {
      // A lost reply may hide a commit: delete the disks only when the record surely does not name the host.
      const now = await this.store.get<VmRecord>(cur.key).catch(() => 'unknown' as const);
      if (now !== 'unknown' && now?.value.node !== node) {
        for (const d of created) await api.deleteVolume(d.pool, d.volume).catch(() => {});
      }
      if (now !== 'unknown' && now?.value.node === node) {
        this.router.locate(cur.value.id, node); // the write went through; only its reply was lost
        return;
      }
      throw err;
    }
  }

  /** The template disk a linked clone hangs off, as a backing volume of the same pool. */
  private async templateDisk(of: { vm: string; disk: string }, pool: string): Promise<VolumeBacking> {
    const tpl = (await this.store.get<VmRecord>(keys.vm(of.vm)))?.value;
    const disk = tpl?.disks.find((x) => x.id === of.disk);
    if (!tpl?.template || !disk || disk.pool !== pool)
      throw new NfError('not_found', `template disk ${of.vm}/${of.disk} is gone`);
    // qcow2 files in a dir pool; raw images in a shared (RBD) one
    const shared = !!(await this.store.get(keys.pool(pool)));
    return { file: disk.volume, format: shared ? 'raw' : 'qcow2', volume: true };
  }

  private async markPending(cur: Versioned<VmRecord>, reason: string): Promise<void> {
    if (cur.value.pending?.reason === reason) return;
    const next: VmRecord = { ...cur.value, pending: { reason, at: new Date().toISOString() } };
    await this.store
      .txn({ when: [{ key: cur.key, revision: cur.revision }], put: [{ key: cur.key, value: next }] })
      .catch(() => {}); // changed meanwhile: the next pass sees it
  }
}

/**
 * The scheduler's view of the cluster now: ready hosts under the policy, and every placed VM of `vms`
 * accounted on its host (powered on or only defined there). `skip` leaves one VM out (the one judged).
 */
export async function loadClusterState(
  store: Store,
  router: NodeRouter,
  registry: NodeRegistry,
  vms: Versioned<VmRecord>[],
  skip?: string,
): Promise<{ state: ClusterState; images: Versioned<ImageRecord>[]; imageNode: Map<string, string> }> {
  const [policy, networks, images] = await Promise.all([
    store.get<Partial<SchedPolicy>>(keys.policy),
    store.list<NetworkRecord>(keys.networks),
    store.list<ImageRecord>(keys.images),
  ]);
  // Images on one host's pool pin the VMs made from them there; images in a shared pool do not. So do
  // templates (their linked clones hang off their disks) with disks in a host's pool.
  const imageNode = new Map(
    images.filter((i) => !i.value.shared).map((i) => [i.value.id, i.value.node ?? router.localName]),
  );
  const shared = new Set((await store.list<{ name: string }>(keys.pools)).map((p) => p.value.name));
  for (const v of vms)
    if (v.value.template && v.value.node && v.value.disks.some((d) => !shared.has(d.pool)))
      imageNode.set(`template:${v.value.id}`, v.value.node);
  const state = new ClusterState(
    await registry.schedNodes(
      networks.map((n) => n.value.name),
      (name) => router.reachable(name),
    ),
    policy?.value,
  );
  // Placed VMs only count for capacity and groups: their pins do not matter any more.
  const hasProcess = (id: string) => router.hasProcess(id);
  for (const v of vms) {
    if (!v.value.node || v.value.id === skip) continue;
    try {
      state.assign(toSched(v.value, imageNode, { pins: false }), v.value.node, {
        poweredOn: isPoweredOn(v.value, hasProcess),
      });
    } catch (err) {
      log.warn('a placed VM cannot be accounted for', { vm: v.value.name, err: (err as Error).message });
    }
  }
  return { state, images, imageNode };
}

/** A VM as the scheduler sees it; images on one host's pool pin the VM to that host. */
export function toSched(vm: VmRecord, imageNode: Map<string, string>, opts = { pins: true }): SchedVm {
  const s: SchedVm = {
    id: vm.id,
    name: vm.name,
    vcpus: vm.vcpus,
    memoryMiB: vm.memoryMiB,
    pools: [...new Set(vm.disks.map((d) => d.pool))],
    networks: [...new Set(vm.networks.map((n) => n.network))],
  };
  if (vm.cpu && CPU_LEVELS.includes(vm.cpu.model)) s.cpuLevel = vm.cpu.model;
  if (vm.placement?.affinityGroup) s.affinityGroup = vm.placement.affinityGroup;
  if (vm.placement?.antiAffinityGroup) s.antiAffinityGroup = vm.placement.antiAffinityGroup;
  if (!opts.pins) return s;
  const pins = new Set<string>();
  if (vm.placement?.node) pins.add(vm.placement.node);
  for (const d of vm.disks) {
    if (d.image && imageNode.has(d.image)) pins.add(imageNode.get(d.image)!);
    const tpl = d.cloneOf && imageNode.get(`template:${d.cloneOf.vm}`);
    if (tpl) pins.add(tpl);
  }
  for (const iso of isoImagesOf(vm)) if (imageNode.has(iso)) pins.add(imageNode.get(iso)!);
  if (pins.size > 1)
    throw new NfError(
      'validation_failed',
      `VM "${vm.name}" needs images or a host on different hosts (${[...pins].join(', ')}); images live in one host's pool`,
    );
  if (pins.size === 1) s.node = [...pins][0]!;
  return s;
}
