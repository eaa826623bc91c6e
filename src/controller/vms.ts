import { randomBytes, randomUUID } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import type { CreateVmInput } from '../api/schemas';
import { NfError } from '../errors';
import type { NodeApi, VmStatus } from '../node/types';
import type { DirPool } from '../storage/dir-pool';
import { findByRef } from '../store/lookup';
import type { Store, Versioned } from '../store/store';
import type { HostPaths } from '../util/host-paths';
import type { VmRunSpec } from '../vmm/types';
import type { ImageService } from './images';
import type { Reconciler } from './reconciler';
import {
  type BootRecord,
  type DiskRecord,
  type ImageRecord,
  keys,
  type NetworkRecord,
  type VmRecord,
} from './records';

const GiB = 1024 ** 3;

export type VmState = 'stopped' | 'starting' | 'running' | 'stopping' | 'paused' | 'error';

export interface VmView
  extends Omit<VmRecord, 'power' | 'generation' | 'runningGeneration' | 'lastError' | 'boot' | 'agent'> {
  state: VmState;
  powerState: VmRecord['power'];
  reason?: string;
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
    readonly node: NodeApi,
    readonly nodeName: string,
    readonly pools: Map<string, DirPool>,
    readonly images: ImageService,
    readonly reconciler: Reconciler,
    private readonly hostPaths: HostPaths,
  ) {}

  async list(): Promise<VmView[]> {
    const all = await this.store.list<VmRecord>(keys.vms);
    return all.map((v) => this.view(v.value)).sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(ref: string): Promise<VmView> {
    return this.view((await this.find(ref)).value);
  }

  /** Looks a VM up by id or name. */
  find(ref: string): Promise<Versioned<VmRecord>> {
    return findByRef<VmRecord>(this.store, ref, 'VM', keys.vm, keys.vmName);
  }

  view(vm: VmRecord): VmView {
    const status = this.node.vmStatus(vm.id);
    const transition = this.reconciler.transition(vm.id);
    let state: VmState = transition ?? status.state;
    let reason: string | undefined;
    if (!transition && status.state === 'error') reason = status.reason;
    if (!transition && status.state === 'stopped' && vm.lastError) {
      state = 'error';
      reason = vm.lastError.message;
    }
    const { power, generation: _g, runningGeneration: _r, lastError: _e, boot, agent: enabled, ...rest } = vm;
    const agent: VmView['agent'] =
      enabled === false ? { enabled: false, status: 'disabled' } : { enabled: true, status: 'absent' };
    const live = status.agent;
    if (enabled !== false && live && (state === 'running' || state === 'paused')) {
      agent.status = live.status === 'connected' ? 'connected' : 'absent';
      if (live.version) agent.version = live.version;
      if (live.flavour) agent.flavour = live.flavour;
    }
    const view: VmView = { ...rest, state, powerState: power, boot: bootView(boot), agent };
    if (reason) view.reason = reason;
    if (status.pid && (state === 'running' || state === 'paused' || state === 'stopping')) {
      view.pid = status.pid;
      if (status.startedAt) view.startedAt = status.startedAt;
    }
    return view;
  }

  async create(input: CreateVmInput): Promise<VmView> {
    // 1. Validate everything that can be checked without side effects.
    if (await this.store.get(keys.vmName(input.name))) {
      throw new NfError('already_exists', `a VM named "${input.name}" already exists; pick another name`);
    }
    const hostMiB = Math.floor(totalmem() / 1024 ** 2);
    if (input.memoryMiB > hostMiB) {
      throw new NfError(
        'insufficient_resources',
        `memoryMiB ${input.memoryMiB} exceeds this host's ${hostMiB} MiB of RAM`,
      );
    }
    if (input.vcpus > cpus().length * 4) {
      throw new NfError(
        'insufficient_resources',
        `vcpus ${input.vcpus} exceeds 4x this host's ${cpus().length} CPUs`,
      );
    }
    for (const n of input.networks) {
      if (!(await this.store.get<NetworkRecord>(keys.network(n.network)))) {
        throw new NfError('validation_failed', `network "${n.network}" does not exist (try "default")`);
      }
    }
    // Images the new VM uses: the create transaction re-writes them, so an image delete racing this
    // create loses its compare-and-swap instead of removing a backing file under the new VM.
    const used = new Map<string, Versioned<ImageRecord>>();
    const boot = await this.resolveBoot(input, used);
    const id = randomUUID();
    const planned: { disk: DiskRecord; backing?: { path: string; format: 'qcow2' | 'raw' } }[] = [];
    for (const [i, d] of input.disks.entries()) {
      const pool = this.pool(d.pool ?? 'local');
      const disk: DiskRecord = {
        id: `disk${i}`,
        pool: pool.name,
        volume: `vm-${id}-disk${i}.qcow2`,
        sizeBytes: 0,
      };
      let backing: { path: string; format: 'qcow2' | 'raw' } | undefined;
      if (d.image) {
        const img = await this.images.find(d.image);
        used.set(img.key, img);
        if (img.value.kind !== 'disk')
          throw new NfError(
            'validation_failed',
            `image "${d.image}" is an ISO; use it as boot.cdrom, not as a disk`,
          );
        if (img.value.pool !== pool.name)
          throw new NfError(
            'validation_failed',
            `image "${d.image}" is in pool ${img.value.pool}, the disk in ${pool.name}`,
          );
        if (d.sizeGiB !== undefined && d.sizeGiB * GiB < img.value.virtualSizeBytes) {
          throw new NfError(
            'validation_failed',
            `disk ${i} (${d.sizeGiB} GiB) is smaller than image "${d.image}" (${(img.value.virtualSizeBytes / GiB).toFixed(2)} GiB)`,
          );
        }
        disk.image = img.value.id;
        disk.sizeBytes = d.sizeGiB !== undefined ? Math.ceil(d.sizeGiB * GiB) : img.value.virtualSizeBytes;
        backing = {
          path: pool.imagePath(img.value.file),
          format: img.value.format === 'raw' ? 'raw' : 'qcow2',
        };
      } else {
        disk.sizeBytes = Math.ceil(((d.sizeGiB ?? 0) * GiB) / 512) * 512;
      }
      planned.push(backing ? { disk, backing } : { disk });
    }

    // 2. Do the work, undoing it if any step fails.
    const created: DiskRecord[] = [];
    try {
      for (const p of planned) {
        await this.pool(p.disk.pool).createDisk(p.disk.volume, p.disk.sizeBytes, p.backing);
        created.push(p.disk);
      }
      const now = new Date().toISOString();
      const vm: VmRecord = {
        id,
        name: input.name,
        node: this.nodeName,
        vcpus: input.vcpus,
        memoryMiB: input.memoryMiB,
        machine: input.machine,
        disks: planned.map((p) => p.disk),
        networks: input.networks.map((n, i) => ({
          id: `net${i}`,
          network: n.network,
          mac: n.mac?.toLowerCase() ?? randomMac(),
        })),
        boot,
        snapshots: [],
        power: 'stopped',
        generation: 1,
        createdAt: now,
        updatedAt: now,
      };
      if (input.description !== undefined) vm.description = input.description;
      if (!input.agent) vm.agent = false;
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
      return this.view(vm);
    } catch (err) {
      // etcd retries a transaction whose reply was lost: it may have committed after all. Only delete
      // the new disks when the record is surely not there; when unsure, leave them (orphans, not loss).
      const outcome = await this.store.get<VmRecord>(keys.vm(id)).then(
        (r) => (r ? 'committed' : 'absent'),
        () => 'unknown',
      );
      if (outcome === 'committed') return this.view((await this.find(id)).value);
      if (outcome === 'absent') {
        for (const d of created)
          await this.pool(d.pool)
            .deleteDisk(d.volume)
            .catch(() => {});
      }
      if (NfError.isCode(err, 'conflict')) throw new NfError('already_exists', err.message);
      throw err;
    }
  }

  async delete(ref: string, force: boolean): Promise<void> {
    const first = await this.find(ref);
    await this.reconciler.lock.run(first.value.id, async () => {
      const cur = await this.find(first.value.id);
      const vm = cur.value;
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
      for (const d of vm.disks) await this.pool(d.pool).deleteDisk(d.volume);
      await this.node.forgetVm(vm.id);
    });
  }

  /** The node-level spec: every reference resolved to a host path. */
  async runSpec(vm: VmRecord): Promise<VmRunSpec> {
    const spec: VmRunSpec = {
      id: vm.id,
      name: vm.name,
      vcpus: vm.vcpus,
      memoryMiB: vm.memoryMiB,
      machine: vm.machine,
      disks: vm.disks.map((d) => ({ id: d.id, path: this.pool(d.pool).diskPath(d.volume), format: 'qcow2' })),
      nics: vm.networks.map((n) => ({ id: n.id, network: n.network, type: 'nat', mac: n.mac })),
      boot: { kind: 'disk', index: 0 },
      agent: vm.agent !== false,
    };
    const b = vm.boot;
    if ('kernel' in b) {
      spec.boot = { kind: 'kernel', kernel: b.kernel };
      if (b.initrd) spec.boot.initrd = b.initrd;
      if (b.cmdline) spec.boot.cmdline = b.cmdline;
    } else if ('cdrom' in b) {
      spec.boot = { kind: 'cdrom' };
      spec.cdrom = { path: 'path' in b.cdrom ? b.cdrom.path : await this.images.path(b.cdrom.image) };
    } else {
      spec.boot = { kind: 'disk', index: b.disk };
    }
    return spec;
  }

  pool(name: string): DirPool {
    const pool = this.pools.get(name);
    if (!pool) throw new NfError('validation_failed', `storage pool "${name}" does not exist (try "local")`);
    return pool;
  }

  private async resolveBoot(
    input: CreateVmInput,
    used: Map<string, Versioned<ImageRecord>>,
  ): Promise<BootRecord> {
    const b = input.boot;
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
    if (b.disk >= input.disks.length) {
      throw new NfError(
        'validation_failed',
        `boot.disk is ${b.disk} but the VM has ${input.disks.length} disk(s)`,
      );
    }
    return b;
  }
}

export type { VmStatus };

function bootView(b: BootRecord): Record<string, unknown> {
  if ('cdrom' in b) return { cdrom: 'image' in b.cdrom ? { image: b.cdrom.image } : { path: b.cdrom.path } };
  return { ...b };
}

/** A locally administered unicast MAC in QEMU's 52:54:00 range. */
function randomMac(): string {
  const b = randomBytes(3);
  return `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}
