import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NfError, toNfError } from '../errors';
import type { OvfVm } from '../import/ovf';
import { type ImportPackage, openPackage } from '../import/package';
import { imageInfo } from '../storage/qemu-img';
import type { Store } from '../store/store';
import type { HostPaths } from '../util/host-paths';
import { createLogger } from '../util/log';
import type { DiskBus, NicModel } from '../vmm/types';
import { checkHardware, hardwareOf } from './hardware';
import {
  keys,
  type NetworkRecord,
  type NodeRecord,
  type PoolRecord,
  type TaskRecord,
  type VmRecord,
} from './records';
import type { TaskLog } from './tasks';
import { randomMac, type VmService, type VmView } from './vms';

const log = createLogger('import');
const GiB = 1024 ** 3;

/** An import request (POST /api/v1/imports). */
export interface ImportRequest {
  /** An OVA, an OVF (its disks beside it) or a VMDK: a file under an allowed host path, or a URL. */
  source: { path: string } | { url: string };
  /** The new VM's name (default: the OVF's, else the file's). */
  name?: string;
  /** Where its disks go (default local). */
  pool?: string;
  /** OVF network → NeuroFlow network; unmapped ones go to "default". */
  networkMap?: Record<string, string>;
  /**
   * Device models: `auto` (virtio for Linux; SATA disks and e1000e NICs for Windows, which has no
   * VirtIO drivers yet), `virtio`, or `emulated` (SATA + e1000e).
   */
  devices?: 'auto' | 'virtio' | 'emulated';
  /** A bare VMDK says nothing of the VM: its vCPUs and memory (default 1 and 1024 MiB). */
  vcpus?: number;
  memoryMiB?: number;
  start?: boolean;
}

/** What an import would make, for a review before it runs (POST /api/v1/imports/inspect). */
export interface ImportPlan {
  kind: ImportPackage['kind'];
  name: string;
  source: { osType: string; windows: boolean; firmware: string; secureBoot: boolean; ignored: string[] };
  vm: {
    vcpus: number;
    memoryMiB: number;
    machine: 'q35';
    firmware: 'bios' | 'uefi';
    secureBoot: boolean;
    cpu?: { model: string; sockets: number };
    disks: { file: string; label: string; sizeBytes: number; bus: DiskBus; from: string }[];
    /** `sourceNetwork`: the OVF network the NIC was on (what networkMap maps). */
    networks: { network: string; model: NicModel; from: string; label: string; sourceNetwork: string }[];
  };
  pool: string;
  /** Checked against the manifest: file → algorithm. */
  verified: Record<string, string>;
  /** How the source's hardware was mapped, and what to do after (drivers). */
  notes: string[];
}

/**
 * Imports VMs exported from VMware (OVA, OVF + VMDKs, a bare VMDK) on this host: the package is checked
 * (src/import/package.ts), its hardware mapped to NeuroFlow's, its disks converted by qemu-img straight
 * into the pool, and the VM recorded only once every disk is there. A failure leaves no volume and no
 * VM. Runs as a task with the bytes converted per disk.
 */
export class ImportService {
  constructor(
    private readonly store: Store,
    private readonly vms: VmService,
    private readonly actions: { start(ref: string): Promise<unknown> },
    private readonly tasks: TaskLog,
    private readonly hostPaths: HostPaths,
    /** Uploads and URL downloads land here; unpacked OVAs too. */
    private readonly importDir: string,
    /** This host: the disks are converted into its pools. */
    private readonly nodeName: string,
    private readonly node: {
      importVolume(
        pool: string,
        volume: string,
        source: { path: string; format: 'vmdk' },
        onProgress?: (done: number, total: number) => void,
      ): Promise<number>;
      deleteVolume(pool: string, volume: string): Promise<void>;
    },
  ) {}

  /** Stores an uploaded package file in the import directory; returns its path for an import. */
  async upload(
    filename: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<{ path: string; sizeBytes: number }> {
    // the browser's name made plain (other characters become _); the extension says what it is
    const ext = /\.(ova|ovf|vmdk)$/i.exec(filename)?.[0];
    if (!ext) throw new NfError('validation_failed', `filename "${filename}": an .ova, .ovf or .vmdk file`);
    const stem = filename
      .slice(0, -ext.length)
      .replace(/[^A-Za-z0-9._+-]+/g, '_')
      .replace(/^[._+-]+/, '')
      .slice(0, 150);
    const path = join(
      this.importDir,
      `${randomBytes(4).toString('hex')}-${stem || 'upload'}${ext.toLowerCase()}`,
    );
    let size = 0;
    const counter = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        size += chunk.byteLength;
        ctl.enqueue(chunk);
      },
    });
    try {
      await pipeline(
        Readable.fromWeb(body.pipeThrough(counter) as never),
        createWriteStream(path, { mode: 0o600 }),
      );
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    if (size === 0) {
      await rm(path, { force: true });
      throw new NfError('validation_failed', 'the upload is empty');
    }
    return { path, sizeBytes: size };
  }

  /** Deletes an upload that will not be imported (an import deletes its upload itself). */
  async discard(path: string): Promise<void> {
    if (dirname(path) !== this.importDir || !isUpload(path))
      throw new NfError('validation_failed', `${path} is not an upload of POST /api/v1/imports/files`);
    try {
      await unlink(path);
    } catch {
      throw new NfError('not_found', `no upload ${basename(path)}`);
    }
  }

  /** The VM an import would make, without making it. */
  async inspect(req: ImportRequest): Promise<ImportPlan> {
    const { pkg, cleanup } = await this.open(req);
    try {
      return await this.plan(pkg, req);
    } finally {
      await cleanup();
    }
  }

  /** Checks and plans now (4xx before anything is made), converts and records in a task. */
  async start(req: ImportRequest, user: string): Promise<TaskRecord> {
    return this.launch(await this.prepare(req), user);
  }

  /**
   * Several imports: every package is checked and planned first (a refusal names the item, and nothing
   * starts), then each runs as its own task. Two items may not ask for the same name.
   */
  async startMany(reqs: ImportRequest[], user: string): Promise<TaskRecord[]> {
    const ready: Prepared[] = [];
    try {
      for (const [i, req] of reqs.entries()) {
        const p = await this.prepare(req).catch((err) => {
          const e = toNfError(err);
          throw new NfError(e.code, `imports[${i}]: ${e.message}`, e.details);
        });
        ready.push(p);
        const twice = ready.findIndex((x) => x.plan.name === p.plan.name);
        if (twice !== ready.length - 1)
          throw new NfError(
            'already_exists',
            `imports[${i}] and imports[${twice}] would both be named "${p.plan.name}"; give "name"`,
          );
      }
    } catch (err) {
      for (const p of ready) await p.cleanup();
      throw err;
    }
    const tasks: TaskRecord[] = [];
    for (const p of ready) tasks.push(await this.launch(p, user));
    return tasks;
  }

  private async prepare(req: ImportRequest): Promise<Prepared> {
    const { pkg, cleanup } = await this.open(req);
    try {
      return { req, pkg, cleanup, plan: await this.plan(pkg, req) };
    } catch (err) {
      await cleanup();
      throw err;
    }
  }

  private launch({ req, pkg, cleanup, plan }: Prepared, user: string): Promise<TaskRecord> {
    // an upload (POST /imports/files) goes once its import ran, well or not
    const upload =
      'path' in req.source && dirname(req.source.path) === this.importDir && isUpload(req.source.path)
        ? req.source.path
        : undefined;
    return this.tasks.start(
      'vm.import',
      plan.name,
      user,
      async (progress, ctl) => {
        try {
          // (each report is an etcd write: two a second at most)
          let reported = 0;
          const vm = await this.run(pkg, plan, (done, total, disk) => {
            if (Date.now() - reported < 500) return;
            reported = Date.now();
            progress(total > 0 ? Math.min(0.99, done / total) : 0);
            ctl.details({ disk, bytesConverted: done, bytesTotal: total });
          });
          ctl.result({ vm: vm.id, name: vm.name, notes: plan.notes });
          if (req.start)
            await this.actions.start(vm.id).catch((err: Error) => {
              // the VM is there: the import went well, the start did not
              ctl.result({ vm: vm.id, name: vm.name, notes: plan.notes, startError: err.message });
            });
        } finally {
          await cleanup();
          if (upload) await rm(upload, { force: true });
        }
      },
      {
        details: {
          source: 'path' in req.source ? basename(req.source.path) : req.source.url,
          kind: plan.kind,
        },
      },
    );
  }

  private async open(req: ImportRequest): Promise<{ pkg: ImportPackage; cleanup: () => Promise<void> }> {
    let path: string;
    let downloaded: string | undefined;
    if ('url' in req.source) {
      downloaded = await this.download(req.source.url);
      path = downloaded;
    } else {
      this.hostPaths.file(req.source.path, 'source.path');
      path = req.source.path;
    }
    try {
      const pkg = await openPackage(path, this.importDir);
      return {
        pkg,
        cleanup: async () => {
          await pkg.cleanup();
          if (downloaded) await rm(downloaded, { force: true });
        },
      };
    } catch (err) {
      if (downloaded) await rm(downloaded, { force: true });
      throw err;
    }
  }

  private async download(url: string): Promise<string> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new NfError('validation_failed', `source.url "${url}" is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new NfError('validation_failed', 'source.url must be http or https');
    const name = basename(u.pathname) || 'download.ova';
    const res = await fetch(u, { signal: AbortSignal.timeout(600_000) }).catch((err: Error) => {
      throw new NfError('unavailable', `cannot fetch ${url}: ${err.message}`);
    });
    if (!res.ok || !res.body) throw new NfError('unavailable', `fetching ${url} answered ${res.status}`);
    const safe = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/.test(name) ? name : 'download.ova';
    return (await this.upload(safe.match(/\.(ova|ovf|vmdk)$/i) ? safe : `${safe}.ova`, res.body)).path;
  }

  private async plan(pkg: ImportPackage, req: ImportRequest): Promise<ImportPlan> {
    const ovf: OvfVm = pkg.ovf ?? {
      name: basename(pkg.disks[0]!.file).replace(/\.vmdk$/i, ''),
      vcpus: req.vcpus ?? 1,
      memoryMiB: req.memoryMiB ?? 1024,
      firmware: 'bios',
      secureBoot: false,
      osType: 'unknown (a bare VMDK)',
      windows: false,
      disks: pkg.disks.map((d) => ({
        label: 'Hard disk 1',
        file: d.file,
        capacityBytes: 0,
        controller: 'scsi' as const,
        controllerModel: 'unknown',
      })),
      nics: [{ label: 'Network adapter 1', model: 'E1000', network: 'VM Network' }],
      ignored: [],
    };
    const name = req.name ?? sanitizeName(ovf.name);
    if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/.test(name))
      throw new NfError('validation_failed', `name "${name}": letters, digits, . _ -; give one with "name"`);
    if (await this.store.get(keys.vmName(name)))
      throw new NfError('already_exists', `a VM named "${name}" already exists; give another "name"`);
    const pool = req.pool ?? 'local';
    const shared = await this.store.get<PoolRecord>(keys.pool(pool));
    const host = (await this.store.get<NodeRecord>(keys.node(this.nodeName)))?.value;
    const poolInfo = host?.info?.pools.find((p) => p.name === pool);
    if (pool !== 'local' && !shared)
      throw new NfError('validation_failed', `storage pool "${pool}" does not exist (try "local")`);
    const notes: string[] = [];
    const mode = req.devices ?? 'auto';
    const emulated = mode === 'emulated' || (mode === 'auto' && ovf.windows);
    const bus: DiskBus = emulated ? 'sata' : 'virtio-blk';
    const nicModel: NicModel = emulated ? 'e1000e' : 'virtio';
    if (emulated && ovf.windows)
      notes.push(
        'Windows has no VirtIO drivers until they are installed: disks are on SATA and NICs are e1000e. Put the virtio-win ISO in the media drive, install its drivers, then change the disks to virtio-scsi and the NICs to virtio (stop the VM; DELETE and POST the devices, or PATCH at a cold start) for much better speed.',
      );
    else if (!emulated)
      notes.push('Disks are virtio-blk and NICs virtio: a Linux guest has these drivers in its kernel.');
    const disks: ImportPlan['vm']['disks'] = [];
    for (const d of ovf.disks) {
      // no capacity in the package (a bare VMDK): the VMDK's own, read as vmdk (checked already, never probed)
      if (!d.capacityBytes) {
        const src = pkg.disks.find((x) => x.file === d.file)!;
        d.capacityBytes = await imageInfo(src.path, 'vmdk').then(
          (i) => i.virtualSize,
          (err: Error) => {
            throw new NfError('validation_failed', `${d.file} cannot be read as a VMDK: ${err.message}`);
          },
        );
      }
      if (d.controller === 'ide' && !emulated) notes.push(`${d.label} was on IDE; it is ${bus} now`);
      disks.push({
        file: d.file,
        label: d.label,
        sizeBytes: d.capacityBytes || (pkg.disks.find((x) => x.file === d.file)?.capacityBytes ?? 0),
        bus,
        from: `${d.controller} (${d.controllerModel})`,
      });
    }
    const networks: ImportPlan['vm']['networks'] = [];
    for (const n of ovf.nics) {
      const target = req.networkMap?.[n.network] ?? 'default';
      if (!(await this.store.get<NetworkRecord>(keys.network(target))))
        throw new NfError(
          'validation_failed',
          `network "${target}" (for OVF network "${n.network}") does not exist`,
        );
      networks.push({
        network: target,
        model: nicModel,
        from: `${n.model} on "${n.network}"`,
        label: n.label,
        sourceNetwork: n.network,
      });
    }
    for (const k of Object.keys(req.networkMap ?? {}))
      if (!ovf.nics.some((n) => n.network === k))
        throw new NfError(
          'validation_failed',
          `networkMap names "${k}", which no network adapter of the OVF uses`,
        );
    const need = disks.reduce((a, d) => a + d.sizeBytes, 0);
    if (poolInfo && poolInfo.totalBytes > 0 && need > poolInfo.freeBytes)
      throw new NfError(
        'insufficient_resources',
        `the disks need up to ${(need / GiB).toFixed(1)} GiB; pool ${pool} has ${(poolInfo.freeBytes / GiB).toFixed(1)} GiB free`,
      );
    if (ovf.firmware === 'uefi')
      notes.push(
        `UEFI${ovf.secureBoot ? ' with Secure Boot' : ''}, as in the source (a new variable store: boot entries are found again by the firmware's fallback path)`,
      );
    if (ovf.ignored.length > 0) notes.push(`not brought across: ${ovf.ignored.join(', ')}`);
    const sockets = ovf.coresPerSocket ? ovf.vcpus / ovf.coresPerSocket : undefined;
    const plan: ImportPlan = {
      kind: pkg.kind,
      name,
      source: {
        osType: ovf.osType,
        windows: ovf.windows,
        firmware: ovf.firmware,
        secureBoot: ovf.secureBoot,
        ignored: ovf.ignored,
      },
      vm: {
        vcpus: ovf.vcpus,
        memoryMiB: ovf.memoryMiB,
        machine: 'q35',
        firmware: ovf.firmware,
        secureBoot: ovf.secureBoot,
        ...(sockets && sockets > 1 ? { cpu: { model: 'host', sockets } } : {}),
        disks,
        networks,
      },
      pool,
      verified: pkg.verified,
      notes,
    };
    checkHardware(hardwareOf(this.record(randomUUID(), plan)));
    return plan;
  }

  /** The VM record of a plan (stopped, on this host, its disks the converted volumes). */
  private record(id: string, plan: ImportPlan, sizes: number[] = []): VmRecord {
    const now = new Date().toISOString();
    const vm: VmRecord = {
      id,
      name: plan.name,
      node: this.nodeName,
      vcpus: plan.vm.vcpus,
      memoryMiB: plan.vm.memoryMiB,
      machine: plan.vm.machine,
      disks: plan.vm.disks.map((d, i) => ({
        id: `disk${i}`,
        pool: plan.pool,
        volume: `vm-${id}-disk${i}.qcow2`,
        sizeBytes: sizes[i] ?? d.sizeBytes,
        ...(d.bus !== 'virtio-blk' ? { bus: d.bus } : {}),
      })),
      networks: plan.vm.networks.map((n, i) => ({
        id: `net${i}`,
        network: n.network,
        mac: randomMac(),
        ...(n.model !== 'virtio' ? { model: n.model } : {}),
      })),
      boot: { disk: 0 },
      snapshots: [],
      power: 'stopped',
      generation: 1,
      createdAt: now,
      updatedAt: now,
      description: `imported from ${plan.kind.toUpperCase()} (${plan.source.osType})`,
      tablet: true,
      hotplugSlots: 4,
    };
    if (plan.vm.cpu) vm.cpu = plan.vm.cpu;
    if (plan.vm.firmware === 'uefi') {
      vm.firmware = 'uefi';
      vm.secureBoot = plan.vm.secureBoot;
      vm.efiVars = { pool: plan.pool, volume: `vm-${id}-efivars.qcow2` };
    }
    return vm;
  }

  private async run(
    pkg: ImportPackage,
    plan: ImportPlan,
    progress: (done: number, total: number, disk: string) => void,
  ): Promise<VmView> {
    const id = randomUUID();
    const made: string[] = [];
    const sizes: number[] = [];
    const total = plan.vm.disks.reduce((a, d) => a + d.sizeBytes, 0);
    let before = 0;
    try {
      for (const [i, d] of plan.vm.disks.entries()) {
        const volume = `vm-${id}-disk${i}.qcow2`;
        const src = pkg.disks.find((x) => x.file === d.file)!;
        const size = await this.node.importVolume(
          plan.pool,
          volume,
          { path: src.path, format: 'vmdk' },
          (done) => progress(before + done, total, d.label),
        );
        made.push(volume);
        sizes.push(size);
        before += d.sizeBytes || size;
      }
      const vm = this.record(id, plan, sizes);
      await this.store.txn(
        {
          when: [{ key: keys.vmName(vm.name), absent: true }],
          put: [
            { key: keys.vm(id), value: vm },
            { key: keys.vmName(vm.name), value: id },
          ],
        },
        `a VM named "${vm.name}" was created meanwhile; import again with another name`,
      );
      this.vms.onCreated?.();
      log.info('VM imported', { vm: id, name: vm.name, kind: plan.kind, disks: made.length });
      return this.vms.view(vm);
    } catch (err) {
      for (const v of made)
        await this.node
          .deleteVolume(plan.pool, v)
          .catch((e: Error) => log.warn('cannot delete an imported volume', { volume: v, err: e.message }));
      throw toNfError(err);
    }
  }
}

/** A file POST /imports/files stored: a random prefix, then the name. */
function isUpload(path: string): boolean {
  return /^[0-9a-f]{8}-[A-Za-z0-9][A-Za-z0-9._+-]*\.(ova|ovf|vmdk)$/.test(basename(path));
}

interface Prepared {
  req: ImportRequest;
  pkg: ImportPackage;
  plan: ImportPlan;
  cleanup: () => Promise<void>;
}

/** An OVF's VM name as a NeuroFlow name: spaces and other characters become '-'. */
function sanitizeName(name: string): string {
  const s = name
    .replace(/[^a-zA-Z0-9._-]+/g, '-')
    .replace(/^[^a-zA-Z0-9]+/, '')
    .replace(/-+$/, '')
    .slice(0, 63);
  return s || 'imported';
}
