import { randomBytes, randomUUID } from 'node:crypto';
import type { CreateVmInput, EditVmInput } from '../api/schemas';
import { NfError, toNfError } from '../errors';
import { checkNicAddresses } from '../network/service';
import type { VmStatus } from '../node/types';
import { findByRef } from '../store/lookup';
import type { Store, Versioned } from '../store/store';
import type { HostPaths } from '../util/host-paths';
import { createLogger } from '../util/log';
import { type CpuRun, MEMORY_SLOTS, type VmRunSpec } from '../vmm/types';
import { type CloudInitView, cloudInitRecord, cloudInitView, renderCloudInit } from './cloud-init';
import { type CpuDefault, clusterCpuModel } from './cpu-default';
import { DEFAULT_HA_POLICY } from './ha/policy';
import { isolationResponseFor } from './ha/protection';
import { checkDiskIo, checkHardware, diskRun, hardwareOf, hardwareView, MEMORY_BLOCK_MIB } from './hardware';
import type { ImageService } from './images';
import { HOST_RESERVE_BYTES } from './node-registry';
import type { NodeRouter } from './node-router';
import type { Reconciler } from './reconciler';
import {
  type BootRecord,
  type DiskRecord,
  type ImageRecord,
  keys,
  type NetworkRecord,
  type NodeRecord,
  notMigrating,
  type PendingChanges,
  type PlacementRecord,
  type VmRecord,
} from './records';
import type { SchedPolicy } from './scheduler';

const GiB = 1024 ** 3;
/** Empty PCIe root ports a new q35 VM gets for disks and NICs added while it runs. */
export const HOTPLUG_SLOTS = 4;
const log = createLogger('vms');

export type VmState =
  | 'pending'
  | 'stopped'
  | 'starting'
  | 'running'
  | 'stopping'
  | 'paused'
  | 'error'
  | 'unknown';

export interface VmView
  extends Omit<
      VmRecord,
      | 'power'
      | 'generation'
      | 'runningGeneration'
      | 'lastError'
      | 'pending'
      | 'boot'
      | 'agent'
      | 'cloudInit'
      | keyof ReturnType<typeof hardwareView>
    >,
    ReturnType<typeof hardwareView> {
  cloudInit?: CloudInitView;
  state: VmState;
  powerState: VmRecord['power'];
  reason?: string;
  /** Something of the running VM is broken (its TPM emulator died): shown as an alarm. */
  warning?: string;
  pid?: number;
  startedAt?: string;
  boot: Record<string, unknown>;
  agent: {
    enabled: boolean;
    status: 'connected' | 'absent' | 'disabled';
    version?: string;
    flavour?: 'neuroflow' | 'qemu-ga';
  };
}

/** Creates, finds and deletes VMs: validation first, then work, and rollback of that work on failure. */
export class VmService {
  constructor(
    readonly store: Store,
    /** Every host as one NodeApi: VM calls go to the VM's host. */
    readonly node: NodeRouter,
    readonly images: ImageService,
    readonly reconciler: Reconciler,
    private readonly hostPaths: HostPaths,
    /** Overlay networks: a NIC on one is an OVN logical port, made before the VM starts. */
    private readonly networkPorts?: {
      ensurePorts(vm: VmRecord): Promise<Map<string, string>>;
      central(): Promise<string>;
      bindPorts(vm: VmRecord, chassis: string[], migrating: boolean): Promise<void>;
      dropPorts(vmId: string, nicIds: string[]): Promise<void>;
      /** Its tags changed: security groups follow. */
      vmChanged(): Promise<void>;
    },
  ) {}

  async list(): Promise<VmView[]> {
    const all = await this.store.list<VmRecord>(keys.vms);
    return all.map((v) => this.view(v.value)).sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(ref: string): Promise<VmView> {
    return this.view((await this.find(ref)).value);
  }

  /** Looks a VM up by id or name. */
  async find(ref: string): Promise<Versioned<VmRecord>> {
    const rec = await findByRef<VmRecord>(this.store, ref, 'VM', keys.vm, keys.vmName);
    this.node.locate(rec.value.id, rec.value.node);
    return rec;
  }

  view(vm: VmRecord): VmView {
    this.node.locate(vm.id, vm.node);
    const status = this.node.vmStatus(vm.id);
    const transition = this.reconciler.transition(vm.id);
    let state: VmState = transition ?? status.state;
    let reason: string | undefined;
    if (!transition && status.state === 'error') reason = status.reason;
    if (!transition && status.state === 'stopped' && vm.lastError) {
      state = 'error';
      reason = vm.lastError.message;
    }
    // What we cannot know wins over what we last knew.
    if (!vm.node) {
      state = 'pending';
      reason = vm.pending?.reason ?? 'waiting for the scheduler to choose a host';
    } else if (!this.node.reachable(vm.node)) {
      state = 'unknown';
      reason = `host ${vm.node} is not reachable`;
    }
    const {
      power,
      generation: _g,
      runningGeneration: _r,
      lastError: _e,
      pending: _p,
      boot,
      agent: enabled,
      cloudInit,
      memoryDimmsMiB: _d,
      ...rest
    } = vm;
    const agent: VmView['agent'] =
      enabled === false ? { enabled: false, status: 'disabled' } : { enabled: true, status: 'absent' };
    const live = status.agent;
    if (enabled !== false && live && (state === 'running' || state === 'paused')) {
      agent.status = live.status === 'connected' ? 'connected' : 'absent';
      if (live.version) agent.version = live.version;
      if (live.flavour) agent.flavour = live.flavour;
    }
    const view: VmView = {
      ...rest,
      ...hardwareView(vm),
      state,
      powerState: power,
      boot: bootView(boot),
      agent,
    };
    if (cloudInit) view.cloudInit = cloudInitView(cloudInit);
    if (reason) view.reason = reason;
    if (status.pid && (state === 'running' || state === 'paused' || state === 'stopping')) {
      view.pid = status.pid;
      if (status.startedAt) view.startedAt = status.startedAt;
      if (status.warning) view.warning = status.warning;
    }
    return view;
  }

  /**
   * Creates a VM. VMs made from the same image at once each re-write the image record (so that a delete
   * racing them fails instead); the one that loses that compare-and-swap is validated and written again.
   */
  async create(input: CreateVmInput): Promise<VmView> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.createOnce(input);
      } catch (err) {
        if (!(err instanceof ImageRaced) || attempt >= 8) throw err instanceof ImageRaced ? err.cause : err;
      }
    }
  }

  private async createOnce(input: CreateVmInput): Promise<VmView> {
    // 1. Validate everything that can be checked without side effects.
    if (await this.store.get(keys.vmName(input.name))) {
      throw new NfError('already_exists', `a VM named "${input.name}" already exists; pick another name`);
    }
    const hosts = (await this.store.list<NodeRecord>(keys.nodes)).map((n) => n.value);
    const known = hosts.filter((h) => h.info);
    if (input.placement?.node && !hosts.some((h) => h.name === input.placement?.node))
      throw new NfError('validation_failed', `placement.node: no host named "${input.placement.node}"`);
    const candidates = known.filter((h) => !input.placement?.node || h.name === input.placement.node);
    checkSize(input, candidates);
    const cpu = await this.withDefaultModel(input.cpu);
    checkHardware({
      machine: input.machine,
      vcpus: input.vcpus,
      maxVcpus: input.maxVcpus,
      memoryMiB: input.memoryMiB,
      maxMemoryMiB: input.maxMemoryMiB,
      firmware: input.firmware,
      secureBoot: input.secureBoot,
      tpm: input.tpm,
      cpu,
      diskBuses: input.disks.map((d) => d.bus),
      cdrom: 'cdrom' in input.boot,
      cloudInit: !!input.cloudInit,
      media: !!input.media,
      bootOrder: input.bootOrder,
      deviceIds: [...input.disks.map((_, i) => `disk${i}`), ...input.networks.map((_, i) => `net${i}`)],
    });
    for (const n of input.networks) {
      if (!(await this.store.get<NetworkRecord>(keys.network(n.network)))) {
        throw new NfError('validation_failed', `network "${n.network}" does not exist (try "default")`);
      }
    }
    await checkNicAddresses(this.store, undefined, input.networks);
    const poolNames = new Set(known.flatMap((h) => h.info!.pools.map((p) => p.name)));
    // a shared pool just added is known before the hosts' next heartbeat reports it
    for (const p of await this.store.list<{ name: string }>(keys.pools)) poolNames.add(p.value.name);
    // Images the new VM uses: the create transaction re-writes them, so an image delete racing this
    // create loses its compare-and-swap instead of removing a backing file under the new VM.
    const used = new Map<string, Versioned<ImageRecord>>();
    const boot = await this.resolveBoot(input.boot, input.disks.length, used);
    const id = randomUUID();
    const disks: DiskRecord[] = [];
    for (const [i, d] of input.disks.entries()) {
      const poolName = d.pool ?? 'local';
      if (known.length > 0 && !poolNames.has(poolName))
        throw new NfError('validation_failed', `storage pool "${poolName}" does not exist (try "local")`);
      const disk: DiskRecord = {
        id: `disk${i}`,
        pool: poolName,
        volume: `vm-${id}-disk${i}.qcow2`,
        sizeBytes: 0,
      };
      if (d.bus && d.bus !== 'virtio-blk') disk.bus = d.bus;
      checkDiskIo(`disk ${i}`, d, !!(await this.store.get(keys.pool(poolName))));
      if (d.cache) disk.cache = d.cache;
      if (d.aio) disk.aio = d.aio;
      if (d.image) {
        const img = await this.images.find(d.image);
        used.set(img.key, img);
        if (img.value.kind !== 'disk')
          throw new NfError(
            'validation_failed',
            `image "${d.image}" is an ISO; use it as boot.cdrom, not as a disk`,
          );
        if (img.value.pool !== poolName)
          throw new NfError(
            'validation_failed',
            `image "${d.image}" is in pool ${img.value.pool}, the disk in ${poolName}`,
          );
        if (d.sizeGiB !== undefined && d.sizeGiB * GiB < img.value.virtualSizeBytes) {
          throw new NfError(
            'validation_failed',
            `disk ${i} (${d.sizeGiB} GiB) is smaller than image "${d.image}" (${(img.value.virtualSizeBytes / GiB).toFixed(2)} GiB)`,
          );
        }
        disk.image = img.value.id;
        disk.sizeBytes = d.sizeGiB !== undefined ? Math.ceil(d.sizeGiB * GiB) : img.value.virtualSizeBytes;
      } else {
        disk.sizeBytes = Math.ceil(((d.sizeGiB ?? 0) * GiB) / 512) * 512;
      }
      // Thin disks may overcommit a pool as a whole, but one disk larger than the free space of every
      // host's pool of that name can never be written full.
      const free = Math.max(
        -1,
        ...candidates.flatMap((h) =>
          // a pool whose size is not known yet (0: Ceph's manager reports a new pool late) is not judged
          h.info!.pools.filter((p) => p.name === poolName && p.totalBytes > 0).map((p) => p.freeBytes),
        ),
      );
      if (free >= 0 && disk.sizeBytes > free)
        throw new NfError(
          'insufficient_resources',
          `disk ${i} (${(disk.sizeBytes / GiB).toFixed(1)} GiB) is larger than the free space of pool ${poolName} (${(free / GiB).toFixed(1)} GiB)`,
        );
      disks.push(disk);
    }

    // 2. Write the record, pending: the leader's scheduler picks a host and creates the disks there.
    const now = new Date().toISOString();
    const vm: VmRecord = {
      id,
      name: input.name,
      node: '',
      vcpus: input.vcpus,
      memoryMiB: input.memoryMiB,
      machine: input.machine,
      disks,
      networks: input.networks.map((n, i) => ({
        id: `net${i}`,
        network: n.network,
        mac: n.mac?.toLowerCase() ?? randomMac(),
        ...(n.ip ? { ip: n.ip } : {}),
        ...(n.model && n.model !== 'virtio' ? { model: n.model } : {}),
      })),
      boot,
      snapshots: [],
      power: 'stopped',
      generation: 1,
      createdAt: now,
      updatedAt: now,
    };
    if (input.placement && Object.keys(input.placement).length > 0) vm.placement = { ...input.placement };
    if (input.ha) vm.ha = { ...DEFAULT_HA_POLICY, ...input.ha };
    if (input.description !== undefined) vm.description = input.description;
    if (input.tags?.length) vm.tags = [...new Set(input.tags)].sort();
    if (!input.agent) vm.agent = false;
    if (cpu) vm.cpu = cpu;
    if (input.maxVcpus !== undefined && input.maxVcpus > input.vcpus) vm.maxVcpus = input.maxVcpus;
    if (input.maxMemoryMiB !== undefined && input.maxMemoryMiB > input.memoryMiB)
      vm.maxMemoryMiB = input.maxMemoryMiB;
    if (input.bootOrder?.length) vm.bootOrder = input.bootOrder;
    if (input.firmware === 'uefi') {
      vm.firmware = 'uefi';
      // beside the first disk, so it lives where the VM's data lives (shared storage: on every host)
      vm.efiVars = { pool: disks[0]?.pool ?? 'local', volume: `vm-${id}-efivars.qcow2` };
      if (input.secureBoot) vm.secureBoot = true;
    }
    if (input.tpm) vm.tpm = true;
    if (input.video !== 'std') vm.video = input.video;
    if (input.tablet) vm.tablet = true;
    if (input.machine === 'q35') vm.hotplugSlots = HOTPLUG_SLOTS;
    if (input.onBoot?.enabled) vm.onBoot = { ...input.onBoot };
    if (input.cloudInit) vm.cloudInit = await cloudInitRecord(input.cloudInit);
    if (input.media) {
      vm.media = {};
      if (input.media.image) {
        const img = await this.images.find(input.media.image);
        if (img.value.kind !== 'iso')
          throw new NfError('validation_failed', `image "${input.media.image}" is a disk image, not an ISO`);
        used.set(img.key, img);
        vm.media.image = img.value.id;
      }
    }
    try {
      await this.store.txn(
        {
          when: [
            { key: keys.vmName(vm.name), absent: true },
            { key: keys.vm(id), absent: true },
            ...[...used.values()].map((img) => ({ key: img.key, revision: img.revision })),
          ],
          put: [
            { key: keys.vm(id), value: vm },
            { key: keys.vmName(vm.name), value: id },
            ...[...used.values()].map((img) => ({ key: img.key, value: img.value })),
          ],
        },
        `a VM named "${vm.name}" was just created by someone else; pick another name`,
      );
    } catch (err) {
      // etcd retries a transaction whose reply was lost: it may have committed after all.
      if (!(await this.store.get<VmRecord>(keys.vm(id)).catch(() => undefined))) {
        if (NfError.isCode(err, 'conflict')) {
          // The name still free: an image the VM uses changed (another VM from it, just now). Again.
          if (!(await this.store.get(keys.vmName(vm.name)))) throw new ImageRaced(err);
          throw new NfError('already_exists', err.message);
        }
        throw err;
      }
    }
    this.onCreated?.();
    return this.view(await this.waitPlaced(id, this.placeWaitMs));
  }

  /** Called after a VM record is written (the leader's placement wakes up). */
  onCreated?: () => void;
  placeWaitMs = 15_000;

  /** Waits until the scheduler placed the VM or said why it cannot, up to a deadline. */
  private async waitPlaced(id: string, timeoutMs: number): Promise<VmRecord> {
    const done = (v: Versioned<VmRecord> | undefined) => !v || !!v.value.node || !!v.value.pending;
    let rec = await this.store.get<VmRecord>(keys.vm(id));
    if (done(rec)) return (rec ?? (await this.find(id))).value;
    let wake: () => void = () => {};
    const cancel = await this.store.watchPrefix(keys.vm(id), () => wake());
    try {
      const deadline = Date.now() + timeoutMs;
      while (!done(rec) && Date.now() < deadline) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now())));
        });
        rec = await this.store.get<VmRecord>(keys.vm(id));
      }
    } finally {
      await cancel().catch(() => {});
    }
    if (rec?.value.node) this.node.locate(id, rec.value.node);
    return (rec ?? (await this.find(id))).value;
  }

  /**
   * Changes a VM (PATCH). Name and description change at once; hardware changes at once on a stopped
   * VM, and on a running one waits in `pendingChanges` for its next cold start (the reconciler folds it
   * in before it starts QEMU). The result is checked as a whole first; nothing is written on a refusal.
   * `ifMatch` (the ETag the client read) refuses an edit made on a stale copy with 412.
   */
  async edit(ref: string, input: EditVmInput, ifMatch?: string): Promise<{ vm: VmView; etag: string }> {
    const id = (await this.find(ref)).value.id;
    return this.reconciler.lock.run(id, async () => {
      const cur = await this.find(id);
      const vm = cur.value;
      if (ifMatch && ifMatch !== '*' && ifMatch.replace(/^W\//, '') !== vmEtag(cur))
        throw new NfError(
          'precondition_failed',
          `VM "${vm.name}" changed since it was read (ETag ${vmEtag(cur)}, If-Match ${ifMatch}); read it again`,
        );
      notMigrating(vm);
      const running = vm.power !== 'stopped' || this.node.hasProcess(vm.id);
      // What the VM will be at its next cold start: record, earlier pending changes, this edit.
      const next: VmRecord = structuredClone({ ...vm, ...vm.pendingChanges });
      const used = new Map<string, Versioned<ImageRecord>>();
      const hw: PendingChanges = {};
      if (input.vcpus !== undefined) hw.vcpus = input.vcpus;
      if (input.memoryMiB !== undefined) hw.memoryMiB = input.memoryMiB;
      if (input.machine !== undefined) hw.machine = input.machine;
      if (input.maxVcpus !== undefined) hw.maxVcpus = input.maxVcpus;
      if (input.maxMemoryMiB !== undefined) hw.maxMemoryMiB = input.maxMemoryMiB;
      // [] = no explicit order (null would not survive as a pending change)
      if (input.bootOrder !== undefined) hw.bootOrder = input.bootOrder ?? [];
      if (input.boot !== undefined) hw.boot = await this.resolveBoot(input.boot, vm.disks.length, used);
      if (input.cpu !== undefined) hw.cpu = (await this.withDefaultModel(input.cpu)) ?? { model: 'host' };
      if (input.video !== undefined) hw.video = input.video;
      if (input.tablet !== undefined) hw.tablet = input.tablet;
      if (input.tpm !== undefined) hw.tpm = input.tpm;
      if (input.firmware !== undefined) hw.firmware = input.firmware;
      if (input.secureBoot !== undefined) hw.secureBoot = input.secureBoot;
      // BIOS has no Secure Boot: going back to it drops the flag (the variable store stays for a return)
      if (input.firmware === 'bios' && input.secureBoot === undefined && next.secureBoot)
        hw.secureBoot = false;
      Object.assign(next, hw);
      if (next.firmware === 'uefi' && !next.efiVars) {
        hw.efiVars = { pool: vm.disks[0]?.pool ?? 'local', volume: `vm-${vm.id}-efivars.qcow2` };
        next.efiVars = hw.efiVars;
      } else if (
        next.firmware === 'uefi' &&
        hw.secureBoot !== undefined &&
        vm.efiVars &&
        (vm.secureBoot ?? false) !== hw.secureBoot
      )
        // the store was made from one template or the other; its keys cannot be swapped under the guest
        throw new NfError(
          'validation_failed',
          `VM "${vm.name}"'s UEFI variable store was made ${vm.secureBoot ? 'with' : 'without'} Secure Boot keys; secureBoot is chosen when UEFI is first given to a VM`,
        );
      checkHardware({
        ...hardwareOf(next),
        cloudInit: input.cloudInit === undefined ? !!vm.cloudInit : !!input.cloudInit,
      });
      const hosts = (await this.store.list<NodeRecord>(keys.nodes)).map((n) => n.value).filter((h) => h.info);
      checkSize(next, vm.node ? hosts.filter((h) => h.name === vm.node) : hosts);

      const after = structuredClone(vm);
      if (input.description !== undefined) after.description = input.description;
      if (input.tags !== undefined) {
        if (input.tags.length > 0) after.tags = [...new Set(input.tags)].sort();
        else delete after.tags;
      }
      if (input.cloudInit === null) delete after.cloudInit;
      else if (input.cloudInit !== undefined) after.cloudInit = await cloudInitRecord(input.cloudInit);
      if (input.onBoot !== undefined) {
        if (input.onBoot.enabled) after.onBoot = { ...input.onBoot };
        else delete after.onBoot;
      }
      const rename = input.name !== undefined && input.name !== vm.name ? input.name : undefined;
      if (rename) after.name = rename;
      // vCPUs added to a running VM within its maximum go in at once (hot-add); fewer wait
      const hotAdd =
        running &&
        hw.vcpus !== undefined &&
        hw.vcpus > vm.vcpus &&
        vm.maxVcpus &&
        hw.vcpus <= vm.maxVcpus &&
        (vm.pendingChanges?.maxVcpus ?? vm.maxVcpus) === vm.maxVcpus
          ? hw.vcpus
          : undefined;
      if (hotAdd !== undefined) {
        delete hw.vcpus;
        after.vcpus = hotAdd;
        if (after.pendingChanges) delete after.pendingChanges.vcpus;
      }
      // memory likewise, one DIMM per edit, in whole 128 MiB blocks (what a Linux guest can online)
      const hotMemory =
        running &&
        hw.memoryMiB !== undefined &&
        hw.memoryMiB > vm.memoryMiB &&
        (hw.memoryMiB - vm.memoryMiB) % MEMORY_BLOCK_MIB === 0 &&
        vm.maxMemoryMiB &&
        hw.memoryMiB <= vm.maxMemoryMiB &&
        (vm.pendingChanges?.maxMemoryMiB ?? vm.maxMemoryMiB) === vm.maxMemoryMiB &&
        (vm.memoryDimmsMiB?.length ?? 0) < MEMORY_SLOTS
          ? hw.memoryMiB
          : undefined;
      if (hotMemory !== undefined) {
        delete hw.memoryMiB;
        after.memoryMiB = hotMemory;
        after.memoryDimmsMiB = [...(vm.memoryDimmsMiB ?? []), hotMemory - vm.memoryMiB];
        if (after.pendingChanges) delete after.pendingChanges.memoryMiB;
      }
      if (running) {
        // only what differs from what runs is pending (a hot-add took its field out of the earlier ones)
        const pending: PendingChanges = { ...after.pendingChanges, ...hw };
        for (const k of Object.keys(pending) as (keyof PendingChanges)[])
          if (JSON.stringify(pending[k]) === JSON.stringify(after[k])) delete pending[k];
        if (Object.keys(pending).length > 0) after.pendingChanges = pending;
        else delete after.pendingChanges;
      } else {
        // a stopped VM takes its earlier pending changes too (what was checked above)
        Object.assign(after, vm.pendingChanges, hw);
        delete after.pendingChanges;
      }
      after.updatedAt = new Date().toISOString();
      await this.store.txn(
        {
          when: [
            { key: cur.key, revision: cur.revision },
            ...(rename ? [{ key: keys.vmName(rename), absent: true as const }] : []),
            ...[...used.values()].map((img) => ({ key: img.key, revision: img.revision })),
          ],
          put: [
            { key: cur.key, value: after },
            ...(rename ? [{ key: keys.vmName(rename), value: vm.id }] : []),
            ...[...used.values()].map((img) => ({ key: img.key, value: img.value })),
          ],
          delete: rename ? [keys.vmName(vm.name)] : [],
        },
        rename
          ? `a VM named "${rename}" exists, or VM "${vm.name}" changed meanwhile; read it again`
          : `VM "${vm.name}" changed meanwhile; read it again`,
      );
      if (hotAdd !== undefined) {
        try {
          await this.node.addVcpus(vm.id, hotAdd);
        } catch (err) {
          // QEMU did not take them all: the record says what the guest has (as the host counted)
          const have = (toNfError(err).details as { vcpus?: number } | undefined)?.vcpus ?? vm.vcpus;
          await this.reconciler.update(await this.find(id), (v) => {
            if (v.vcpus !== hotAdd) return false;
            v.vcpus = have;
            return true;
          });
          throw err;
        }
      }
      if (hotMemory !== undefined) {
        try {
          await this.node.addMemory(vm.id, hotMemory);
        } catch (err) {
          // the DIMM did not go in (QEMU takes it whole or not at all): the record says so again
          await this.reconciler.update(await this.find(id), (v) => {
            if (v.memoryMiB !== hotMemory) return false;
            v.memoryMiB = vm.memoryMiB;
            if (vm.memoryDimmsMiB) v.memoryDimmsMiB = vm.memoryDimmsMiB;
            else delete v.memoryDimmsMiB;
            return true;
          });
          throw err;
        }
      }
      log.info('VM edited', {
        vm: vm.id,
        pending: running ? Object.keys(hw) : [],
        hotAddedVcpus: hotAdd,
        hotAddedMemoryMiB: hotMemory,
      });
      // security groups follow tags: a NIC enters or leaves a group at once (the change is saved: if OVN
      // cannot take it now, every controller's repair brings it there within 30 s; no error for a done edit)
      if (input.tags !== undefined && JSON.stringify(vm.tags ?? []) !== JSON.stringify(after.tags ?? []))
        await this.networkPorts?.vmChanged().catch((err) =>
          log.warn('security groups will follow the tags at the next repair', {
            vm: vm.id,
            err: (err as Error).message,
          }),
        );
      const saved = await this.find(id);
      return { vm: this.view(saved.value), etag: vmEtag(saved) };
    });
  }

  /**
   * A new VM with a template's hardware and linked clones of its disks (new MAC addresses). Placed like
   * any new VM: anywhere the pools reach for shared disks, on the template's host for local ones.
   */
  async clone(
    ref: string,
    input: {
      name: string;
      description?: string;
      placement?: PlacementRecord;
      full?: boolean;
      snapshot?: string;
    },
  ): Promise<VmView> {
    const src = await this.find(ref);
    const t = src.value;
    if (input.snapshot !== undefined) return this.cloneAt(t.id, input.snapshot, input);
    if (!t.template)
      throw new NfError(
        'invalid_state',
        `VM "${t.name}" is not a template; make it one first (POST /api/v1/vms/${t.id}/template), or clone it from one of its snapshots (snapshot)`,
      );
    if (await this.store.get(keys.vmName(input.name)))
      throw new NfError('already_exists', `a VM named "${input.name}" already exists; pick another name`);
    const pin = input.placement?.node;
    if (pin && !(await this.store.get(keys.node(pin))))
      throw new NfError('validation_failed', `placement.node: no host named "${pin}"`);
    const id = randomUUID();
    const vm = cloneRecord(t, id, input, { node: '', linked: true });
    await this.store.txn(
      {
        // the template as it was read: a delete or a change of it meanwhile fails this clone
        when: [
          { key: keys.vmName(vm.name), absent: true },
          { key: src.key, revision: src.revision },
        ],
        put: [
          { key: keys.vm(id), value: vm },
          { key: keys.vmName(vm.name), value: id },
        ],
      },
      `a VM named "${vm.name}" was just created, or template "${t.name}" changed; retry`,
    );
    this.onCreated?.();
    const placed = await this.waitPlaced(id, this.placeWaitMs);
    if (!input.full) return this.view(placed);
    // A full clone: the linked clones, made independent of the template before anyone can start it.
    try {
      if (!placed.node)
        throw new NfError(
          'invalid_state',
          `the clone could not be placed (${placed.pending?.reason ?? 'no host yet'}); nothing was kept`,
        );
      await this.flatten(id);
    } catch (err) {
      await this.delete(id, true).catch((e) =>
        log.error('a failed full clone could not be removed', { vm: id, err: (e as Error).message }),
      );
      throw err;
    }
    return this.get(id);
  }

  /**
   * A new VM from a VM's snapshot, running or not: its hardware, new MAC addresses, and full copies of
   * its disks as they were at the snapshot (what the guest had on disk then; a snapshot with memory
   * gives its disks only, so the clone boots as after a power cut, or clean when it was quiesced).
   * Made on the source's host; the source's lock keeps the snapshot from going meanwhile.
   */
  private cloneAt(
    sourceId: string,
    snapshot: string,
    input: { name: string; description?: string; placement?: PlacementRecord; full?: boolean },
  ): Promise<VmView> {
    return this.reconciler.lock.run(sourceId, async () => {
      const t = (await this.find(sourceId)).value;
      notMigrating(t);
      if (!t.snapshots.some((s) => s.name === snapshot))
        throw new NfError('not_found', `VM "${t.name}" has no snapshot "${snapshot}"`);
      if (!t.node) throw new NfError('invalid_state', `VM "${t.name}" is not placed on a host yet`);
      if (input.full === false)
        throw new NfError(
          'validation_failed',
          'a clone from a snapshot is always a full copy (leave full out)',
        );
      if (input.placement?.node && input.placement.node !== t.node)
        throw new NfError(
          'validation_failed',
          `a clone from a snapshot is made on the source's host ${t.node}; move it afterwards`,
        );
      if (await this.store.get(keys.vmName(input.name)))
        throw new NfError('already_exists', `a VM named "${input.name}" already exists; pick another name`);
      const id = randomUUID();
      const vm = cloneRecord(t, id, input, { node: t.node, linked: false });
      const api = this.node.on(t.node);
      const made: DiskRecord[] = [];
      const drop = async () => {
        for (const d of made)
          await api
            .deleteVolume(d.pool, d.volume)
            .catch((e: Error) =>
              log.warn('cannot delete a copied volume', { volume: d.volume, err: e.message }),
            );
      };
      try {
        for (const [i, d] of vm.disks.entries()) {
          const from = t.disks[i]!;
          const shared = !!(await this.store.get(keys.pool(d.pool)));
          await api.createVolume(d.pool, d.volume, d.sizeBytes, {
            file: from.volume,
            format: shared ? 'raw' : 'qcow2',
            volume: true,
            snapshot,
          });
          made.push(d);
        }
        await this.store.txn(
          {
            when: [{ key: keys.vmName(vm.name), absent: true }],
            put: [
              { key: keys.vm(id), value: vm },
              { key: keys.vmName(vm.name), value: id },
            ],
          },
          `a VM named "${vm.name}" was just created; pick another name`,
        );
      } catch (err) {
        await drop();
        const e = toNfError(err);
        if (e.code === 'not_found' && /has no snapshot/.test(e.message))
          throw new NfError(
            'not_found',
            `${e.message}: a disk added after snapshot "${snapshot}" has no state to copy; nothing was kept`,
          );
        throw err;
      }
      this.onCreated?.();
      log.info('VM cloned from a snapshot', { vm: id, from: t.id, snapshot });
      return this.view(vm);
    });
  }

  /**
   * Makes a VM's linked-clone disks independent (their parents' data copied in), under the VM's lock;
   * the record then names no parent. The VM must be stopped.
   */
  async flatten(id: string): Promise<void> {
    await this.reconciler.lock.run(id, async () => this.flattenDisks(await this.find(id)));
  }

  /** flatten() for a caller that holds the VM's lock already; `only` picks the disks. */
  async flattenDisks(cur: Versioned<VmRecord>, only?: (d: DiskRecord) => boolean): Promise<void> {
    const vm = cur.value;
    if (vm.power !== 'stopped' || this.node.hasProcess(vm.id))
      throw new NfError('invalid_state', `VM "${vm.name}" must be stopped to flatten its disks`);
    const disks = vm.disks.filter((d) => (d.cloneOf || d.image) && (!only || only(d)));
    for (const d of disks) await this.node.on(vm.node).flattenVolume(d.pool, d.volume);
    await this.reconciler.update(cur, (v) => {
      for (const d of v.disks)
        if (disks.some((x) => x.id === d.id)) {
          delete d.cloneOf;
          delete d.image;
        }
      return disks.length > 0;
    });
  }

  /** How many parents a disk's chain has (an image, templates' disks): what a clone of it adds to. */
  async cloneDepth(d: DiskRecord): Promise<number> {
    let depth = 0;
    let cur: DiskRecord | undefined = d;
    while (cur && depth < 64) {
      if (cur.image) return depth + 1;
      if (!cur.cloneOf) return depth;
      depth++;
      const of: { vm: string; disk: string } = cur.cloneOf;
      cur = (await this.store.get<VmRecord>(keys.vm(of.vm)))?.value.disks.find((x) => x.id === of.disk);
    }
    return depth;
  }

  async delete(ref: string, force: boolean): Promise<void> {
    const first = await this.find(ref);
    await this.reconciler.lock.run(first.value.id, async () => {
      const cur = await this.find(first.value.id);
      const vm = cur.value;
      notMigrating(vm);
      if (vm.template) {
        const clones = (await this.store.list<VmRecord>(keys.vms))
          .filter((v) => v.value.disks.some((d) => d.cloneOf?.vm === vm.id))
          .map((v) => v.value.name);
        if (clones.length > 0)
          throw new NfError(
            'in_use',
            `template "${vm.name}" has ${clones.length} linked clone(s): ${clones.slice(0, 10).join(', ')}; delete them first`,
          );
      }
      // A host removed from the cluster (forced) took the VM's disks with it: only the record is left.
      const hostGone = !!vm.node && !(await this.store.get(keys.node(vm.node)));
      if (vm.node && !hostGone && !(await this.node.reach(vm.node)))
        throw new NfError(
          'unavailable',
          `host ${vm.node} of VM "${vm.name}" is not reachable; its disks cannot be deleted now (nothing was deleted)`,
        );
      // Decide by the process, not the state label: a VM in error can still have a live QEMU.
      if (this.node.hasProcess(vm.id)) {
        if (!force) {
          const state = this.node.vmStatus(vm.id).state;
          throw new NfError(
            'invalid_state',
            `VM "${vm.name}" is ${state} and its QEMU runs; stop it first or delete with force=true`,
          );
        }
        await this.node.stopVm(vm.id, { force: true });
        if (this.node.hasProcess(vm.id))
          throw new NfError('invalid_state', `QEMU of VM "${vm.name}" did not exit; nothing was deleted`);
      }
      // The record goes first: a failure after this leaves at worst an orphan file, never a VM pointing at
      // disks that are gone.
      try {
        await this.store.txn({
          when: [{ key: cur.key, revision: cur.revision }],
          delete: [cur.key, keys.vmName(vm.name)],
        });
      } catch (err) {
        // A retried transaction may have gone through already: only a record still there is a conflict.
        if (!NfError.isCode(err, 'conflict') || (await this.store.get(cur.key))) throw err;
      }
      await this.networkPorts?.dropPorts(
        vm.id,
        vm.networks.map((n) => n.id),
      );
      if (vm.node && !hostGone) {
        for (const d of vm.disks) await this.node.on(vm.node).deleteVolume(d.pool, d.volume);
        if (vm.efiVars) await this.node.on(vm.node).deleteVolume(vm.efiVars.pool, vm.efiVars.volume);
        await this.node.forgetVm(vm.id);
      }
      this.node.forget(vm.id);
    });
  }

  /** The CPU model new VMs get when they name none (the cluster's setting and its hosts), and why. */
  async cpuDefault(): Promise<CpuDefault> {
    const [policy, nodes] = await Promise.all([
      this.store.get<Partial<SchedPolicy>>(keys.policy),
      this.store.list<NodeRecord>(keys.nodes),
    ]);
    return clusterCpuModel(
      policy?.value.defaultCpuModel,
      nodes.map((n) => n.value),
    );
  }

  /** A VM's CPU settings with the cluster's default model when they name none (nothing for the host CPU). */
  private async withDefaultModel(cpu: Partial<CpuRun> | undefined): Promise<CpuRun | undefined> {
    if (cpu?.model) return { ...cpu, model: cpu.model };
    const { model } = await this.cpuDefault();
    if (!cpu && model === 'host') return undefined; // as before: the host's best
    return { ...cpu, model };
  }

  /** A NIC's OVN port, made (or updated) for the VM as it will be: its name and where OVN's databases are. */
  async nicPort(vm: VmRecord, nicId: string): Promise<{ port: string; central?: string }> {
    const port = (await this.networkPorts?.ensurePorts(vm))?.get(nicId);
    if (!port) throw new NfError('internal', `NIC ${nicId} of VM "${vm.name}" got no OVN port`);
    const central = await this.networkPorts!.central();
    return { port, ...(central ? { central } : {}) };
  }

  /** Removed NICs' OVN ports (and what followed them: floating IPs, group membership). */
  async dropNicPorts(vmId: string, nicIds: string[]): Promise<void> {
    await this.networkPorts?.dropPorts(vmId, nicIds);
  }

  /** A migration's NIC ports on overlay networks: bound on these hosts (see NetworkService.bindPorts). */
  async bindPorts(vm: VmRecord, chassis: string[], migrating: boolean): Promise<void> {
    await this.networkPorts?.bindPorts(vm, chassis, migrating);
  }

  /** The node-level spec: every reference resolved to a host path. */
  async runSpec(vm: VmRecord): Promise<VmRunSpec> {
    const ports = (await this.networkPorts?.ensurePorts(vm)) ?? new Map<string, string>();
    const central = ports.size > 0 ? await this.networkPorts!.central() : '';
    const spec: VmRunSpec = {
      id: vm.id,
      name: vm.name,
      vcpus: vm.vcpus,
      memoryMiB: vm.memoryMiB,
      machine: vm.machine,
      // The host resolves pool volumes and image files to its own paths.
      disks: vm.disks.map(diskRun),
      nics: vm.networks.map((n) => ({
        id: n.id,
        network: n.network,
        ...(ports.has(n.id)
          ? { type: 'ovn' as const, port: ports.get(n.id)!, ...(central ? { central } : {}) }
          : { type: 'nat' as const }),
        mac: n.mac,
        ...(n.model ? { model: n.model } : {}),
        ...(n.slot ? { slot: n.slot } : {}),
        ...(n.linkDown ? { linkDown: true } : {}),
      })),
      boot: { kind: 'disk', index: 0 },
      agent: vm.agent !== false,
    };
    if (vm.cpu) spec.cpu = vm.cpu;
    if (vm.maxVcpus && vm.maxVcpus > vm.vcpus) spec.maxVcpus = vm.maxVcpus;
    if (vm.maxMemoryMiB && vm.maxMemoryMiB > vm.memoryMiB) spec.maxMemoryMiB = vm.maxMemoryMiB;
    if (vm.memoryDimmsMiB?.length) spec.memoryDimmsMiB = [...vm.memoryDimmsMiB];
    if (vm.bootOrder?.length) spec.bootOrder = vm.bootOrder;
    if (vm.firmware === 'uefi' && vm.efiVars)
      spec.firmware = { type: 'uefi', secureBoot: vm.secureBoot ?? false, vars: { ...vm.efiVars } };
    if (vm.tpm) spec.tpm = true;
    if (vm.video) spec.video = vm.video;
    if (vm.tablet) spec.tablet = true;
    if (vm.hotplugSlots && vm.machine === 'q35') spec.hotplugSlots = vm.hotplugSlots;
    if (vm.cloudInit) spec.cloudInit = renderCloudInit(vm, vm.cloudInit);
    if (vm.media) {
      spec.media = {};
      if (vm.media.image) {
        const img = (await this.images.find(vm.media.image)).value;
        spec.media.iso = { pool: img.pool, file: img.file };
      }
    }
    if (vm.epoch) spec.epoch = vm.epoch;
    if (vm.ha?.enabled) {
      const [nodes, images] = await Promise.all([
        this.store.list<NodeRecord>(keys.nodes).then((l) => l.map((n) => n.value)),
        this.store.list<ImageRecord>(keys.images).then((l) => l.map((i) => i.value)),
      ]);
      const response = isolationResponseFor(vm, nodes, images);
      if (response) spec.isolationResponse = response;
    }
    const b = vm.boot;
    if ('kernel' in b) {
      spec.boot = { kind: 'kernel', kernel: b.kernel };
      if (b.initrd) spec.boot.initrd = b.initrd;
      if (b.cmdline) spec.boot.cmdline = b.cmdline;
    } else if ('cdrom' in b) {
      spec.boot = { kind: 'cdrom' };
      if ('path' in b.cdrom) spec.cdrom = { path: b.cdrom.path };
      else {
        const img = (await this.images.find(b.cdrom.image)).value;
        spec.cdrom = { path: '', pool: img.pool, file: img.file };
      }
    } else {
      spec.boot = { kind: 'disk', index: b.disk };
    }
    return spec;
  }

  private async resolveBoot(
    b: CreateVmInput['boot'],
    diskCount: number,
    used: Map<string, Versioned<ImageRecord>>,
  ): Promise<BootRecord> {
    if ('kernel' in b) {
      this.hostPaths.file(b.kernel, 'boot.kernel');
      if (b.initrd) this.hostPaths.file(b.initrd, 'boot.initrd');
      return b;
    }
    if ('cdrom' in b) {
      if (b.cdrom.startsWith('/')) {
        this.hostPaths.file(b.cdrom, 'boot.cdrom');
        return { cdrom: { path: b.cdrom } };
      }
      const img = await this.images.find(b.cdrom);
      used.set(img.key, img);
      if (img.value.kind !== 'iso')
        throw new NfError('validation_failed', `image "${b.cdrom}" is a disk image, not an ISO`);
      return { cdrom: { image: img.value.id } };
    }
    if (b.disk >= diskCount) {
      throw new NfError('validation_failed', `boot.disk is ${b.disk} but the VM has ${diskCount} disk(s)`);
    }
    return b;
  }
}

export type { VmStatus };

/**
 * A new stopped VM with its source's hardware and new MAC addresses: disks that are linked clones of a
 * template's (`linked`), or volumes of its own to be filled from a snapshot (with the media drive and boot
 * order too).
 */
function cloneRecord(
  t: VmRecord,
  id: string,
  input: { name: string; description?: string; placement?: PlacementRecord },
  opts: { node: string; linked: boolean },
): VmRecord {
  const now = new Date().toISOString();
  const vm: VmRecord = {
    id,
    name: input.name,
    node: opts.node,
    vcpus: t.vcpus,
    memoryMiB: t.memoryMiB,
    machine: t.machine,
    disks: t.disks.map((d) => ({
      id: d.id,
      pool: d.pool,
      volume: `vm-${id}-${d.id}.qcow2`,
      sizeBytes: d.sizeBytes,
      ...(opts.linked ? { cloneOf: { vm: t.id, disk: d.id } } : {}),
      ...(d.bus ? { bus: d.bus } : {}),
      ...(d.cache ? { cache: d.cache } : {}),
      ...(d.aio ? { aio: d.aio } : {}),
    })),
    networks: t.networks.map((n) => ({ ...n, mac: randomMac() })),
    boot: structuredClone(t.boot),
    snapshots: [],
    power: 'stopped',
    generation: 1,
    createdAt: now,
    updatedAt: now,
  };
  copyHardware(t, vm);
  if (!opts.linked) {
    if (t.media) vm.media = structuredClone(t.media);
    if (t.bootOrder) vm.bootOrder = [...t.bootOrder];
  }
  if (input.description !== undefined) vm.description = input.description;
  const placement = input.placement ?? t.placement;
  if (placement && Object.keys(placement).length > 0) vm.placement = { ...placement };
  return vm;
}

/**
 * A new VM's record (id `id`) from a backed-up VM's (a restore): its hardware, new MAC addresses,
 * independent disks and a UEFI variable store of its own (named after `id`, into `pool` when given), no
 * snapshots; placed by the caller.
 */
export function restoredRecord(
  source: VmRecord,
  id: string,
  input: { name: string; description?: string },
  pool: string | undefined,
): VmRecord {
  const vm = cloneRecord(source, id, input, { node: '', linked: false });
  if (pool) for (const d of vm.disks) d.pool = pool;
  if (vm.efiVars && pool) vm.efiVars.pool = pool;
  return vm;
}

/** A clone's virtual hardware as its source's; a UEFI variable store and a TPM of its own, made new at its first start. */
function copyHardware(t: VmRecord, vm: VmRecord): void {
  if (t.agent === false) vm.agent = false;
  for (const k of [
    'cpu',
    'firmware',
    'secureBoot',
    'tpm',
    'video',
    'tablet',
    'hotplugSlots',
    'cloudInit',
    'maxVcpus',
    'maxMemoryMiB',
  ] as const)
    if (t[k] !== undefined) Object.assign(vm, { [k]: structuredClone(t[k]) });
  if (t.efiVars) vm.efiVars = { pool: t.efiVars.pool, volume: `vm-${vm.id}-efivars.qcow2` };
}

/** A VM's memory and vCPUs must fit the largest of the hosts it may run on. */
function checkSize(vm: { vcpus: number; memoryMiB: number }, candidates: NodeRecord[]): void {
  if (candidates.length === 0) return;
  const maxMiB = Math.max(
    ...candidates.map((h) => Math.floor((h.info!.memoryTotalBytes - HOST_RESERVE_BYTES) / 1024 ** 2)),
  );
  if (vm.memoryMiB > maxMiB) {
    throw new NfError(
      'insufficient_resources',
      `memoryMiB ${vm.memoryMiB} exceeds the ${maxMiB} MiB the largest host has for VMs`,
    );
  }
  const maxCpus = Math.max(...candidates.map((h) => h.info!.cpus));
  if (vm.vcpus > maxCpus * 4) {
    throw new NfError(
      'insufficient_resources',
      `vcpus ${vm.vcpus} exceeds 4x the largest host's ${maxCpus} CPUs`,
    );
  }
}

/** The ETag of a VM record: its etcd revision (any change of the record changes it). */
export function vmEtag(rec: Versioned<VmRecord>): string {
  return `"${rec.revision}"`;
}

/** A create lost its compare-and-swap on an image record, not on the name: it is tried again. */
class ImageRaced extends Error {
  constructor(override readonly cause: NfError) {
    super(cause.message);
  }
}

function bootView(b: BootRecord): Record<string, unknown> {
  if ('cdrom' in b) return { cdrom: 'image' in b.cdrom ? { image: b.cdrom.image } : { path: b.cdrom.path } };
  return { ...b };
}

/** A locally administered unicast MAC in QEMU's 52:54:00 range. */
export function randomMac(): string {
  const b = randomBytes(3);
  return `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}
