import { NfError } from '../errors';
import { checkNicAddresses } from '../network/service';
import type { NodeApi } from '../node/types';
import type { Store, Versioned } from '../store/store';
import { createLogger } from '../util/log';
import type {
  DiskAio,
  DiskBus,
  DiskCache,
  DiskRun,
  IoLimits,
  NicModel,
  NicRun,
  TuneDevice,
} from '../vmm/types';
import { checkDiskIo, checkHardware, diskRun, hardwareOf } from './hardware';
import type { ImageService } from './images';
import type { NodeRouter } from './node-router';
import type { Reconciler } from './reconciler';
import {
  type DiskRecord,
  keys,
  type NetworkRecord,
  type NicRecord,
  notMigrating,
  type VmRecord,
} from './records';
import { randomMac, type VmService, type VmView } from './vms';

const log = createLogger('vm-devices');
const GiB = 1024 ** 3;

export interface AddDiskInput {
  sizeGiB: number;
  pool?: string;
  bus?: DiskBus;
  cache?: DiskCache;
  aio?: DiskAio;
}

export interface AddNicInput {
  network: string;
  mac?: string;
  ip?: string;
  model?: NicModel;
}

/**
 * Adds and removes a VM's disks and NICs. On a stopped VM only the record (and the disk's volume)
 * changes; on a running one the device is hot-plugged too, in two steps around QEMU: the record first
 * names the device and the operation (`hotplug`), QEMU is asked, then the record is finished or rolled
 * back. A controller that dies in between leaves the marker, and `settleHotplug` makes the record match
 * what QEMU has, so a VM never keeps a device its record lacks, or the other way round.
 */
export class VmDevices {
  /** Test hook (NEUROFLOW_FAULT): dies at a named point, as a kill -9 would. */
  fault = process.env.NEUROFLOW_FAULT;

  constructor(
    private readonly store: Store,
    private readonly node: NodeRouter,
    private readonly vms: VmService,
    private readonly reconciler: Reconciler,
    private readonly images: ImageService,
  ) {}

  addDisk(ref: string, input: AddDiskInput): Promise<VmView> {
    return this.locked(ref, async (cur) => {
      const vm = cur.value;
      const pool = input.pool ?? vm.disks[0]?.pool ?? 'local';
      const bus = input.bus ?? 'virtio-blk';
      if (vm.disks.length >= 16)
        throw new NfError('validation_failed', `VM "${vm.name}" has 16 disks already`);
      const live = this.isLive(vm);
      if (live) this.hotpluggable(vm, bus);
      const sizeBytes = Math.ceil((input.sizeGiB * GiB) / 512) * 512;
      const n = await this.freeDiskIndex(vm, pool);
      const disk: DiskRecord = { id: `disk${n}`, pool, volume: `vm-${vm.id}-disk${n}.qcow2`, sizeBytes };
      if (bus !== 'virtio-blk') disk.bus = bus;
      checkDiskIo(disk.id, input, !!(await this.store.get(keys.pool(pool))));
      if (input.cache) disk.cache = input.cache;
      if (input.aio) disk.aio = input.aio;
      if (live && bus === 'virtio-blk') disk.slot = this.freeSlot(vm);
      // the VM with it still makes a machine QEMU can build (ports and units of its buses)
      checkHardware(hardwareOf({ ...vm, disks: [...vm.disks, disk] }));
      // the volume first: a failure here leaves nothing behind
      if (vm.node) await this.node.on(vm.node).createVolume(pool, disk.volume, sizeBytes);
      const drop = () =>
        vm.node
          ? this.node
              .on(vm.node)
              .deleteVolume(pool, disk.volume)
              .catch((e: Error) =>
                log.warn('cannot delete a new volume', { volume: disk.volume, err: e.message }),
              )
          : Promise.resolve();
      if (!live) {
        await this.write(cur, (v) => void v.disks.push(disk)).catch(async (err) => {
          await drop();
          throw err;
        });
        return;
      }
      await this.plug(cur, { kind: 'disk', id: disk.id }, (v) => v.disks.push(disk), {
        disk: diskRun(disk),
      }).catch(async (err) => {
        // the volume goes only if the record (settled from what QEMU has) does not keep the disk
        const now = (await this.store.get<VmRecord>(cur.key))?.value;
        if (now && !now.hotplug && !now.disks.some((d) => d.id === disk.id)) await drop();
        throw err;
      });
    });
  }

  removeDisk(ref: string, diskId: string, opts: { deleteVolume: boolean }): Promise<VmView> {
    return this.locked(ref, async (cur) => {
      const vm = cur.value;
      const index = vm.disks.findIndex((d) => d.id === diskId);
      const disk = vm.disks[index];
      if (!disk) throw new NfError('not_found', `VM "${vm.name}" has no disk ${diskId}`);
      if ('disk' in vm.boot && vm.boot.disk === index)
        throw new NfError(
          'invalid_state',
          `${diskId} is the boot disk of VM "${vm.name}"; boot from another first`,
        );
      if (vm.snapshots.length > 0)
        throw new NfError(
          'in_use',
          `VM "${vm.name}" has snapshots (${vm.snapshots.map((s) => s.name).join(', ')}) that need ${diskId}; delete them first`,
        );
      const clones = (await this.store.list<VmRecord>(keys.vms)).filter((v) =>
        v.value.disks.some((d) => d.cloneOf?.vm === vm.id && d.cloneOf.disk === diskId),
      );
      if (clones.length > 0)
        throw new NfError(
          'in_use',
          `${diskId} of template "${vm.name}" has linked clones (${clones.map((c) => c.value.name).join(', ')})`,
        );
      const forget = (v: VmRecord) => {
        const i = v.disks.findIndex((d) => d.id === diskId);
        if (i < 0) return;
        v.disks.splice(i, 1);
        // boot.disk is an index into the list
        if ('disk' in v.boot && v.boot.disk > i) v.boot = { disk: v.boot.disk - 1 };
        if (v.bootOrder) v.bootOrder = v.bootOrder.filter((d) => d !== diskId);
      };
      if (this.isLive(vm)) {
        if (!disk.slot && disk.bus !== 'virtio-scsi')
          throw new NfError(
            'invalid_state',
            `${diskId} of VM "${vm.name}" was attached at its start, where it cannot be unplugged; remove it while the VM is stopped`,
          );
        await this.unplug(cur, { kind: 'disk', id: diskId }, forget);
      } else await this.write(cur, forget);
      if (opts.deleteVolume && vm.node) await this.node.on(vm.node).deleteVolume(disk.pool, disk.volume);
      else log.info('disk removed, volume kept', { vm: vm.id, pool: disk.pool, volume: disk.volume });
    });
  }

  addNic(ref: string, input: AddNicInput): Promise<VmView> {
    return this.locked(ref, async (cur) => {
      const vm = cur.value;
      const net = await this.store.get<NetworkRecord>(keys.network(input.network));
      if (!net)
        throw new NfError('validation_failed', `network "${input.network}" does not exist (try "default")`);
      await checkNicAddresses(this.store, vm.id, [input]);
      if (vm.networks.length >= 8)
        throw new NfError('validation_failed', `VM "${vm.name}" has 8 NICs already`);
      const ids = new Set(vm.networks.map((n) => n.id));
      let n = 0;
      while (ids.has(`net${n}`)) n++;
      const nic: NicRecord = {
        id: `net${n}`,
        network: input.network,
        mac: input.mac?.toLowerCase() ?? randomMac(),
        ...(input.ip ? { ip: input.ip } : {}),
      };
      if (input.model && input.model !== 'virtio') nic.model = input.model;
      if (!this.isLive(vm)) return void (await this.write(cur, (v) => void v.networks.push(nic)));
      this.hotpluggable(vm, 'virtio-blk');
      nic.slot = this.freeSlot(vm);
      const run: NicRun = {
        id: nic.id,
        network: nic.network,
        type: 'nat',
        mac: nic.mac,
        slot: nic.slot,
        ...(nic.model ? { model: nic.model } : {}),
      };
      // on an OVN network: its logical port first (bound to the VM's host), then the tap and QEMU's device
      const ovn = net.value.type !== 'nat';
      if (ovn)
        Object.assign(
          run,
          { type: 'ovn' },
          await this.vms.nicPort({ ...vm, networks: [...vm.networks, nic] }, nic.id),
        );
      try {
        await this.plug(cur, { kind: 'nic', id: nic.id }, (v) => v.networks.push(nic), { nic: run });
      } catch (err) {
        // its port goes unless the record kept the NIC (QEMU has it after all)
        const now = await this.store.get<VmRecord>(cur.key);
        if (ovn && !now?.value.networks.some((x) => x.id === nic.id))
          await this.vms.dropNicPorts(vm.id, [nic.id]).catch(() => {});
        throw err;
      }
    });
  }

  removeNic(ref: string, nicId: string): Promise<VmView> {
    return this.locked(ref, async (cur) => {
      const vm = cur.value;
      const nic = vm.networks.find((n) => n.id === nicId);
      if (!nic) throw new NfError('not_found', `VM "${vm.name}" has no NIC ${nicId}`);
      const forget = (v: VmRecord) => {
        v.networks = v.networks.filter((n) => n.id !== nicId);
        if (v.bootOrder) v.bootOrder = v.bootOrder.filter((d) => d !== nicId);
      };
      if (!this.isLive(vm)) {
        await this.write(cur, forget);
        // its OVN port (and a floating IP leading to it) goes too
        await this.vms.dropNicPorts(vm.id, [nicId]);
        return;
      }
      if (!nic.slot)
        throw new NfError(
          'invalid_state',
          `${nicId} of VM "${vm.name}" was attached at its start, where it cannot be unplugged; remove it while the VM is stopped`,
        );
      await this.unplug(cur, { kind: 'nic', id: nicId }, forget);
      await this.vms.dropNicPorts(vm.id, [nicId]);
    });
  }

  /**
   * A disk's I/O limits (all zero or absent: none), at once while the VM runs; its cache mode and AIO
   * engine only while the VM is stopped (QEMU opens the disk with them).
   */
  async tuneDisk(
    ref: string,
    diskId: string,
    change: { limits?: IoLimits; cache?: DiskCache; aio?: DiskAio },
  ): Promise<VmView> {
    if (change.cache || change.aio) {
      // first: a running VM refuses it before anything changed
      const view = await this.setDiskIo(ref, diskId, change);
      if (!change.limits) return view;
    }
    const limits = change.limits ?? {};
    for (const [total, read, write] of [
      ['iops', 'iopsRead', 'iopsWrite'],
      ['bps', 'bpsRead', 'bpsWrite'],
    ] as const)
      if (limits[total] && (limits[read] || limits[write]))
        throw new NfError(
          'validation_failed',
          `limits: give ${total} (reads and writes together) or ${read}/${write}, not both`,
        );
    const set = Object.fromEntries(Object.entries(limits).filter(([, v]) => v)) as IoLimits;
    return this.tune(
      ref,
      (v) => {
        const d = v.disks.find((x) => x.id === diskId);
        if (!d) throw new NfError('not_found', `VM "${v.name}" has no disk ${diskId}`);
        if (Object.keys(set).length > 0) d.limits = set;
        else delete d.limits;
      },
      { disk: diskId, limits: set },
    );
  }

  private setDiskIo(
    ref: string,
    diskId: string,
    change: { cache?: DiskCache; aio?: DiskAio },
  ): Promise<VmView> {
    return this.locked(ref, async (cur) => {
      const vm = cur.value;
      const disk = vm.disks.find((x) => x.id === diskId);
      if (!disk) throw new NfError('not_found', `VM "${vm.name}" has no disk ${diskId}`);
      if (this.isLive(vm))
        throw new NfError(
          'invalid_state',
          `VM "${vm.name}" runs: a disk's cache mode and AIO engine change while the VM is stopped`,
        );
      const io = { cache: change.cache ?? disk.cache, aio: change.aio ?? disk.aio };
      checkDiskIo(diskId, io, !!(await this.store.get(keys.pool(disk.pool))));
      await this.write(cur, (v) => {
        const d = v.disks.find((x) => x.id === diskId)!;
        if (io.cache) d.cache = io.cache;
        if (io.aio) d.aio = io.aio;
      });
    });
  }

  /** Plugs a NIC's cable in or pulls it (the guest sees the carrier come and go). */
  setLink(ref: string, nicId: string, up: boolean): Promise<VmView> {
    return this.tune(
      ref,
      (v) => {
        const n = v.networks.find((x) => x.id === nicId);
        if (!n) throw new NfError('not_found', `VM "${v.name}" has no NIC ${nicId}`);
        if (up) delete n.linkDown;
        else n.linkDown = true;
      },
      { nic: nicId, linkUp: up },
    );
  }

  /** The record first, then QEMU while the VM runs; the record goes back if QEMU refuses. */
  private tune(ref: string, change: (v: VmRecord) => void, live: TuneDevice): Promise<VmView> {
    return this.locked(ref, async (cur) => {
      const before = cur.value;
      await this.write(cur, change);
      if (!this.isLive(before)) return;
      try {
        await this.node.tuneDevice(before.id, live);
      } catch (err) {
        await this.reconciler.update((await this.store.get<VmRecord>(cur.key))!, (v) => {
          v.disks = before.disks;
          v.networks = before.networks;
          return true;
        });
        throw err;
      }
    });
  }

  /**
   * Puts an ISO image into the VM's media drive, or ejects it (null). A stopped VM without one gets the
   * drive; a running VM changes the medium at once (the guest sees the tray open and close). The record
   * is written first and put back if QEMU refuses.
   */
  setMedia(ref: string, image: string | null): Promise<VmView> {
    return this.locked(ref, async (cur) => {
      const vm = cur.value;
      let iso: { id: string; pool: string; file: string; node?: string; shared?: boolean } | undefined;
      const when: { key: string; revision: string }[] = [];
      if (image !== null) {
        const img = await this.images.find(image);
        if (img.value.kind !== 'iso')
          throw new NfError('validation_failed', `image "${image}" is a disk image, not an ISO`);
        if (vm.node && !img.value.shared && img.value.node && img.value.node !== vm.node)
          throw new NfError(
            'validation_failed',
            `ISO "${img.value.name}" is in a pool of host ${img.value.node}, VM "${vm.name}" runs on ${vm.node}; copy it to a shared pool`,
          );
        iso = img.value;
        when.push({ key: img.key, revision: img.revision });
      }
      const live = this.isLive(vm);
      if (!vm.media) checkHardware(hardwareOf({ ...vm, media: {} }));
      if (live && !vm.media)
        throw new NfError(
          'invalid_state',
          `VM "${vm.name}" started without a media drive; stop it to add one (POST media while stopped)`,
        );
      const next = structuredClone(vm);
      next.media = iso ? { image: iso.id } : {};
      next.updatedAt = new Date().toISOString();
      await this.store.txn(
        { when: [{ key: cur.key, revision: cur.revision }, ...when], put: [{ key: cur.key, value: next }] },
        `VM "${vm.name}" or its ISO image changed meanwhile; try again`,
      );
      if (!live) return;
      try {
        await this.node.changeMedia(vm.id, iso && { pool: iso.pool, file: iso.file });
      } catch (err) {
        await this.reconciler.update((await this.store.get<VmRecord>(cur.key))!, (v) => {
          v.media = vm.media;
          return true;
        });
        throw err;
      }
    });
  }

  /** Runs under the VM's lock (no start, stop or other change meanwhile); answers the VM afterwards. */
  private async locked(ref: string, fn: (cur: Versioned<VmRecord>) => Promise<void>): Promise<VmView> {
    const id = (await this.vms.find(ref)).value.id;
    await this.reconciler.lock.run(id, async () => {
      const cur = await this.vms.find(id);
      notMigrating(cur.value);
      if (cur.value.node && !this.node.reachable(cur.value.node))
        throw new NfError('unavailable', `host ${cur.value.node} of VM "${cur.value.name}" is not reachable`);
      if (cur.value.hotplug) await settleHotplug(this.store, this.node, cur);
      await fn(await this.vms.find(id));
    });
    return this.vms.get(id);
  }

  /** A QEMU runs: devices change live (a VM meant to run but not up yet gets them at its start). */
  private isLive(vm: VmRecord): boolean {
    return !!vm.node && this.node.hasProcess(vm.id);
  }

  private hotpluggable(vm: VmRecord, bus: DiskBus): void {
    if (bus === 'sata' || bus === 'ide')
      throw new NfError(
        'invalid_state',
        `${bus} disks cannot be added while VM "${vm.name}" runs; stop it, or add a virtio-blk disk`,
      );
    if (bus === 'virtio-scsi' && !vm.disks.some((d) => d.bus === 'virtio-scsi'))
      throw new NfError(
        'invalid_state',
        `VM "${vm.name}" started without a virtio-scsi controller; add a virtio-blk disk, or stop it first`,
      );
    if (bus === 'virtio-blk' && (vm.machine !== 'q35' || !vm.hotplugSlots))
      throw new NfError(
        'invalid_state',
        vm.machine !== 'q35'
          ? `VM "${vm.name}" (machine pc) has no hot-plug slots; stop it to add devices`
          : `VM "${vm.name}" was made without hot-plug slots; stop it to add devices`,
      );
  }

  private freeSlot(vm: VmRecord): string {
    const used = new Set([...vm.disks, ...vm.networks].map((d) => d.slot).filter(Boolean));
    for (let i = 0; i < (vm.hotplugSlots ?? 0); i++) if (!used.has(`hp${i}`)) return `hp${i}`;
    throw new NfError(
      'insufficient_resources',
      `VM "${vm.name}" has no free hot-plug slot (${vm.hotplugSlots}); stop it to add more devices`,
    );
  }

  /** The next disk number that neither the VM nor a kept volume of the pool uses (never old data). */
  private async freeDiskIndex(vm: VmRecord, pool: string): Promise<number> {
    const taken = new Set(vm.disks.map((d) => d.id));
    const volumes = vm.node ? await this.node.on(vm.node).listVolumes(pool) : [];
    for (const v of volumes) {
      const m = new RegExp(`^vm-${vm.id}-disk(\\d+)\\.qcow2$`).exec(v.name);
      if (m) taken.add(`disk${m[1]}`);
    }
    let n = 0;
    while (taken.has(`disk${n}`)) n++;
    return n;
  }

  private async write(cur: Versioned<VmRecord>, change: (v: VmRecord) => void): Promise<void> {
    const next = structuredClone(cur.value);
    change(next);
    next.updatedAt = new Date().toISOString();
    await this.store.txn(
      { when: [{ key: cur.key, revision: cur.revision }], put: [{ key: cur.key, value: next }] },
      `VM "${cur.value.name}" changed meanwhile; try again`,
    );
  }

  private async plug(
    cur: Versioned<VmRecord>,
    what: { kind: 'disk' | 'nic'; id: string },
    add: (v: VmRecord) => void,
    device: { disk: DiskRun } | { nic: NicRun },
  ): Promise<void> {
    const at = new Date().toISOString();
    await this.write(cur, (v) => {
      add(v);
      v.hotplug = { op: 'add', ...what, at };
    });
    const marked = (await this.store.get<VmRecord>(cur.key))!;
    if (this.fault === 'hotplug-before-qemu') process.kill(process.pid, 'SIGKILL');
    try {
      await this.node.plugDevice(cur.value.id, device);
    } catch (err) {
      // QEMU has no such device (plugDisk/plugNic undo their half): the record goes back
      await settleHotplug(this.store, this.node, marked);
      throw err;
    }
    if (this.fault === 'hotplug-after-qemu') process.kill(process.pid, 'SIGKILL');
    await this.reconciler.update(marked, (v) => {
      if (!v.hotplug) return false;
      delete v.hotplug;
      return true;
    });
  }

  private async unplug(
    cur: Versioned<VmRecord>,
    what: { kind: 'disk' | 'nic'; id: string },
    forget: (v: VmRecord) => void,
  ): Promise<void> {
    await this.write(cur, (v) => {
      v.hotplug = { op: 'remove', ...what, at: new Date().toISOString() };
    });
    const marked = (await this.store.get<VmRecord>(cur.key))!;
    try {
      await this.node.unplugDevice(cur.value.id, what.kind === 'disk' ? { disk: what.id } : { nic: what.id });
    } finally {
      // done or not, the record follows what QEMU has now
      await settleHotplug(this.store, this.node, marked, forget);
    }
  }
}

/**
 * Finishes or undoes a hot-plug the record says was under way, from what the VM's QEMU has now (a VM
 * without a process: the operation stands, its next start has the devices of the record).
 */
export async function settleHotplug(
  store: Store,
  node: Pick<NodeApi, 'vmDevices' | 'hasProcess'>,
  cur: Versioned<VmRecord>,
  forget?: (v: VmRecord) => void,
): Promise<void> {
  const h = cur.value.hotplug;
  if (!h) return;
  let present: boolean | undefined;
  if (node.hasProcess(cur.value.id)) {
    const devs = await node.vmDevices(cur.value.id);
    present = (h.kind === 'disk' ? devs.disks : devs.nics).includes(h.id);
  }
  const drop =
    forget ??
    ((v: VmRecord) => {
      if (h.kind === 'disk') {
        const i = v.disks.findIndex((d) => d.id === h.id);
        if (i >= 0) v.disks.splice(i, 1);
        if (i >= 0 && 'disk' in v.boot && v.boot.disk > i) v.boot = { disk: v.boot.disk - 1 };
      } else v.networks = v.networks.filter((n) => n.id !== h.id);
      if (v.bootOrder) v.bootOrder = v.bootOrder.filter((d) => d !== h.id);
    });
  let rec: Versioned<VmRecord> | undefined = cur;
  for (let attempt = 0; attempt < 5 && rec?.value.hotplug; attempt++) {
    const next = structuredClone(rec.value);
    delete next.hotplug;
    // QEMU lacks it (an add that did not happen, a remove that did), or a remove with no QEMU left to
    // ask: the record loses it; else (an add with no QEMU: its next start has it) the record keeps it
    if (present === false || (h.op === 'remove' && present === undefined)) drop(next);
    next.updatedAt = new Date().toISOString();
    try {
      await store.txn({
        when: [{ key: rec.key, revision: rec.revision }],
        put: [{ key: rec.key, value: next }],
      });
      log.info('hot-plug settled', { vm: next.id, ...h, present: present ?? 'no process' });
      return;
    } catch (err) {
      if (!NfError.isCode(err, 'conflict')) throw err;
      rec = await store.get<VmRecord>(rec.key);
    }
  }
  if (rec?.value.hotplug)
    throw new NfError(
      'conflict',
      `VM ${cur.value.id} kept changing while its hot-plug was settled; try again`,
    );
}
