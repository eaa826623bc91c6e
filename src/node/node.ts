import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { cpus, freemem, hostname, loadavg, release, totalmem, uptime } from 'node:os';
import { dirname, join } from 'node:path';
import {
  type BackupProgress,
  type BackupVolume,
  backupRunning,
  backupStopped,
  type NodeBackupRequest,
  type RestoreVolumeRequest,
  restoreVolume,
  type VmBackupRequest,
} from '../backup/node-backup';
import type { BackupManifest } from '../backup/repository';
import type { CephApplyRequest, CephHost, CephHostState } from '../ceph/host';
import { NfError, toNfError } from '../errors';
import { imageOpts, nestBlockdev, withDiskIo } from '../storage/blockdev';
import { DirPool } from '../storage/dir-pool';
import { growTo, type StorageDriver, type VolumeInfo } from '../storage/driver';
import { imageInfo, qemuImg, qemuImgProgress, qemuIo } from '../storage/qemu-img';
import { RbdPool } from '../storage/rbd-pool';
import { openSharedPool, removeSharedPool, type SharedPoolConfig } from '../storage/shared-pools';
import { writeFileAtomic } from '../util/fs';
import type { HostPaths } from '../util/host-paths';
import { KeyedLock } from '../util/lock';
import { createLogger } from '../util/log';
import { freePort } from '../util/net';
import { pidAlive, procCmdline, readPidfile } from '../util/proc';
import { waitFor } from '../util/wait';
import type { IncomingEndpoint, MigrationProgress, MigrationResult, MigrationRole } from '../vmm/migration';
import { runPaths, tapName } from '../vmm/qemu/cmdline';
import { OVMF_VARS_BYTES, ovmfFiles } from '../vmm/qemu/firmware';
import type { AccelChoice } from '../vmm/qemu/host';
import { stderrReason } from '../vmm/qemu/instance';
import type {
  IsolationResponse,
  MediaRun,
  RuntimeState,
  TuneDevice,
  VmInstance,
  VmmDriver,
  VmRunSpec,
} from '../vmm/types';
import { AgentTracker } from './agent';
import { MetricsCollector, tapCounters, type VmSampleSource } from './metrics';
import type { SelfFence } from './self-fence';
import type { Point } from './series';
import type {
  ConsoleStream,
  IncomingRequest,
  MoveDiskRequest,
  NodeApi,
  NodeInfo,
  OutgoingMigration,
  PlugDevice,
  StopOptions,
  VmStatus,
  VolumeBacking,
} from './types';
import type { WatchdogFeeder } from './watchdog';

const log = createLogger('node');
const VM_ID = /^[0-9a-f-]{36}$/;

/** Memory left to the host itself when admitting VMs. */
const HOST_RESERVE_BYTES = 256 * 1024 ** 2;
/** How often a running VM's TPM emulator is looked at. */
const TPM_CHECK_MS = 2000;

/**
 * The node role: runs VMs through a VMM driver and reports what they really do. It keeps a run dir per
 * VM (its journal), so a restarted daemon knows what was running and re-attaches.
 */
export class Node implements NodeApi {
  private readonly instances = new Map<string, VmInstance>();
  private readonly statuses = new Map<string, VmStatus>();
  /** QEMU processes found alive whose monitor we could not reach: never started twice, only killed. */
  private readonly orphans = new Map<string, number>();
  private readonly agents = new Map<string, AgentTracker>();
  /** The spec each running VM was started with, read once when it is tracked (sampled every 10 s). */
  private readonly specs = new Map<string, VmRunSpec>();
  readonly metrics = new MetricsCollector(() => this.sampleSources());
  private readonly listeners = new Set<(s: VmStatus) => void>();
  /** One operation per VM at a time: a stop never races a start. */
  private readonly locks = new KeyedLock();
  /** VMs with a disk being moved (one move per VM at a time; no resize or snapshot meanwhile). */
  /** VMs whose disks are being moved, migrated or backed up, with what is going on. */
  private readonly moving = new Map<string, string>();
  private tlsWritten?: Promise<void>;
  private readonly usageCache = new Map<
    string,
    { at: number; usage: { totalBytes: number; freeBytes: number } }
  >();

  constructor(
    readonly name: string,
    private readonly runRoot: string,
    private readonly driver: VmmDriver,
    private readonly pools: Map<string, StorageDriver>,
    private readonly accel: AccelChoice,
    private readonly qemuVersion: string,
    /** Host files a controller may name as kernel, initrd or CD-ROM; checked again here, on the host. */
    private readonly hostPaths?: HostPaths,
    /** This host's integrated Ceph daemons (absent in unit tests). */
    private readonly cephHost?: CephHost,
    /** Live migration: the address this host receives on and its cluster certificate (clusters only). */
    private readonly migration?: {
      address: string;
      /** Why this host cannot take part in migrations (no address in the migration network). */
      unavailable?: string;
      tls: { caPem: string; certPem: string; keyPem: string };
    },
  ) {}

  get ceph(): CephHost {
    if (!this.cephHost) throw new NfError('unavailable', 'Ceph is not available on this host');
    return this.cephHost;
  }

  cephApply(req: CephApplyRequest): Promise<CephHostState> {
    return this.ceph.apply(req);
  }

  async cephDaemons(): Promise<CephHostState> {
    return this.cephHost ? this.cephHost.state() : { daemons: [] };
  }

  runDir(id: string): string {
    if (!VM_ID.test(id)) throw new NfError('validation_failed', `bad VM id ${id}`);
    return join(this.runRoot, id);
  }

  /** Finds VMs started by an earlier daemon: alive ones are re-attached, dead ones reported. */
  async recover(): Promise<void> {
    if (!existsSync(this.runRoot)) return;
    for (const id of readdirSync(this.runRoot)) {
      if (!VM_ID.test(id)) continue;
      try {
        await this.recoverOne(id);
      } catch (err) {
        // One wedged VM must not keep the daemon from starting.
        log.error('cannot recover VM', { id, err });
        this.setStatus({ id, state: 'error', reason: `cannot re-attach: ${(err as Error).message}` });
      }
    }
  }

  private async recoverOne(id: string): Promise<void> {
    const dir = join(this.runRoot, id);
    let instance: VmInstance | undefined;
    try {
      instance = await this.driver.attach(dir, id);
    } catch (err) {
      const pid = readPidfile(join(dir, 'qemu.pid'));
      if (pid && pidAlive(pid) && (procCmdline(pid) ?? []).includes(id)) {
        // Alive but its monitor does not answer (wedged, or another daemon holds it). Never treat it as
        // stopped: a start would run a second QEMU on the same disks.
        this.orphans.set(id, pid);
        this.setStatus({
          id,
          state: 'error',
          pid,
          reason: `QEMU pid ${pid} runs but its monitor does not answer (${(err as Error).message}); force-stop it`,
        });
        return;
      }
      log.warn('cannot re-attach VM', { id, err });
    }
    if (instance && (await this.readJournal(id))?.expected === 'incoming') {
      // A migration target whose daemon died before it was told to run the guest: the source still has
      // it (a controller resumes it there), so this half goes, with the volumes made for it.
      log.warn('ending the QEMU of a migration this host never finished receiving', {
        id,
        pid: instance.pid,
      });
      await instance.kill();
      await this.dropIncoming(id);
      return;
    }
    if (instance) {
      this.track(instance);
      const migration = await this.roleOf(id, instance);
      // a source whose daemon died mid-copy: the copy is over (its controller gave up), clean it away
      if (migration === 'outgoing' || migration === undefined)
        await instance
          .cleanupMigration()
          .catch((err) => log.warn('cannot clean up a migration', { id, err }));
      this.setStatus({
        id,
        state: await instance.state(),
        pid: instance.pid,
        startedAt: instance.startedAt,
        ...(migration ? { migration } : {}),
      });
      return;
    }
    const journal = await this.readJournal(id);
    // The host went down under it (stop-vms shut the guest down, or the host restarted): not the
    // guest's own power-off, so its controller can start it again (onBoot).
    const hostDown =
      journal?.hostDown ||
      (journal?.expected === 'running' &&
        (journal.hostShutdown || (!!journal.bootId && journal.bootId !== bootId())));
    if (journal?.expected === 'running') {
      // It was running when the old daemon died and is gone now: say why if QEMU said anything.
      const reason = stderrReason(runPaths(dir).qemuLog);
      if (hostDown)
        this.setStatus({
          id,
          state: 'stopped',
          hostDown: true,
          reason: journal.hostShutdown ? 'the host shut down' : 'the host restarted',
        });
      else if (reason && /error|fail|abort|terminat|killed/i.test(reason))
        this.setStatus({ id, state: 'error', reason });
      else this.setStatus({ id, state: 'stopped' });
      // kept as hostDown until the VM starts or stops again, so a daemon restarted meanwhile says it too
      await this.writeJournal(id, 'stopped', hostDown ? { hostDown: true } : {});
    } else if (journal?.expected === 'stopped' && hostDown) {
      this.setStatus({ id, state: 'stopped', hostDown: true, reason: 'the host went down' });
    } else if (journal?.expected === 'incoming') {
      await this.dropIncoming(id); // a migration target that died before it got the guest
    } else {
      this.setStatus({ id, state: 'stopped' });
    }
  }

  /** Every VM this node has a status, process or run directory for. */
  knownVmIds(): string[] {
    const ids = new Set([...this.statuses.keys(), ...this.instances.keys(), ...this.orphans.keys()]);
    return [...ids];
  }

  hasProcess(id: string): boolean {
    if (this.instances.has(id)) return true;
    const pid = this.orphans.get(id);
    return pid !== undefined && pidAlive(pid);
  }

  async info(): Promise<NodeInfo> {
    const cpuList = cpus();
    return {
      name: this.name,
      cpus: cpuList.length,
      cpuModel: cpuList[0]?.model ?? 'unknown',
      memoryTotalBytes: totalmem(),
      memoryAvailableBytes: await memAvailable(),
      accelerator: this.accel.accel,
      acceleratorReason: this.accel.reason,
      qemuVersion: this.qemuVersion,
      cpuLevels: this.accel.cpuLevels ?? [],
      kernel: release(),
      uptimeSec: Math.round(uptime()),
      loadAvg: loadavg(),
      pools: (
        await Promise.all(
          [...this.pools.values()].map(async (p) => {
            const u = await this.poolUsage(p);
            return u && { name: p.name, type: p.type, totalBytes: u.totalBytes, freeBytes: u.freeBytes };
          }),
        )
      ).filter((p) => p !== undefined),
      ...(this.watchdog ? { watchdog: { device: this.watchdog.path, armed: this.watchdog.active } } : {}),
    };
  }

  vmStatus(id: string): VmStatus {
    const s = this.statuses.get(id) ?? { id, state: 'stopped', updatedAt: new Date().toISOString() };
    const agent = this.agents.get(id);
    return agent ? { ...s, agent: agent.current } : s;
  }

  vmMetrics(id: string, range: 'fine' | 'coarse'): Point[] {
    return this.metrics.vm(id, range);
  }

  hostMetrics(range: 'fine' | 'coarse'): Point[] {
    return this.metrics.hostPoints(range);
  }

  private sampleSources(): VmSampleSource[] {
    return [...this.instances.values()].map((inst) => ({
      id: inst.id,
      pid: inst.pid,
      vcpus: this.specs.get(inst.id)?.vcpus ?? 1,
      blockStats: () => inst.blockStats(),
      netStats: async () => {
        // NICs on OVN networks: the host's own counters of their taps (no guest agent needed); a VM with
        // a nat NIC too is counted by its guest agent (passt's traffic has no host device)
        const nics = this.specs.get(inst.id)?.nics ?? [];
        if (nics.length > 0 && nics.every((n) => n.type === 'ovn'))
          return tapCounters(nics.map((n) => tapName(inst.id, n.id)));
        const agent = this.agents.get(inst.id);
        if (agent?.current.status !== 'connected') return null;
        type Iface = { name: string; statistics?: { 'rx-bytes': number; 'tx-bytes': number } };
        const ifaces = await agent.execute<Iface[]>('guest-network-get-interfaces', undefined, {
          timeoutMs: 3000,
        });
        let rx = 0;
        let tx = 0;
        for (const i of ifaces) {
          if (i.name === 'lo' || !i.statistics) continue;
          rx += i.statistics['rx-bytes'];
          tx += i.statistics['tx-bytes'];
        }
        return { rx, tx };
      },
    }));
  }

  async guestCommand<T>(
    id: string,
    command: string,
    args?: Record<string, unknown>,
    opts?: { timeoutMs?: number; noReply?: boolean },
  ): Promise<T> {
    const agent = this.agents.get(id);
    if (!agent) {
      throw new NfError(
        'invalid_state',
        this.instances.has(id) ? 'the VM has no guest agent channel (agent: false)' : 'the VM is not running',
      );
    }
    return agent.execute<T>(command, args, opts);
  }

  onStatus(listener: (s: VmStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  startVm(requested: VmRunSpec): Promise<VmStatus> {
    const spec = this.resolveSpec(requested);
    return this.serialize(spec.id, async () => {
      if (this.hasProcess(spec.id)) {
        throw new NfError(
          'invalid_state',
          `VM "${spec.name}" already has a QEMU process on node ${this.name}`,
        );
      }
      await this.checkMemory(spec);
      const dir = this.runDir(spec.id);
      await this.checkEpoch(spec);
      await this.ensureEfiVars(spec);
      await writeFileAtomic(join(dir, 'spec.json'), JSON.stringify(spec, null, 2), 0o600);
      await this.writeJournal(spec.id, 'running');
      let instance: VmInstance;
      try {
        instance = await this.driver.start(spec, dir);
      } catch (err) {
        await this.writeJournal(spec.id, 'stopped');
        throw err;
      }
      this.track(instance);
      return this.setStatus({
        id: spec.id,
        state: 'running',
        pid: instance.pid,
        startedAt: instance.startedAt,
      });
    });
  }

  /**
   * The fencing token of HA: a start carries the VM's ownership epoch (an etcd revision), and a start
   * older than one this host was handed is refused (a stale request from a controller that has not seen
   * the VM handed on). The highest epoch seen is kept in the run dir.
   */
  private async checkEpoch(spec: VmRunSpec): Promise<void> {
    if (!spec.epoch) return;
    const file = join(this.runDir(spec.id), 'epoch');
    const seen = Number((await readFile(file, 'utf8').catch(() => '0')).trim()) || 0;
    if (spec.epoch < seen)
      throw new NfError(
        'conflict',
        `VM "${spec.name}": a start with ownership epoch ${spec.epoch} came after one with epoch ${seen}; the request is stale`,
      );
    if (spec.epoch > seen) await writeFileAtomic(file, `${spec.epoch}\n`, 0o600);
  }

  /**
   * HA storage fencing, run by the leader on its own host: blocklists the clients of a failed host
   * (its addresses `ips`) on these volumes of a shared pool and removes their locks.
   */
  async fenceRbdClients(pool: string, volumes: string[], ips: string[]): Promise<string[]> {
    const p = this.pool(pool);
    if (!(p instanceof RbdPool)) throw new NfError('not_implemented', `pool "${pool}" is not an RBD pool`);
    return p.fenceClients(volumes, ips);
  }

  /** Set by serve in a cluster: the host's half of HA fencing (probes count as contact). */
  selfFence?: SelfFence;
  /** The watchdog serve feeds while HA VMs run here (its state is in info()). */
  watchdog?: WatchdogFeeder;
  /** VMs being stopped by the isolation response, with why: their exit is reported as `fenced`. */
  private readonly isolating = new Map<string, string>();

  probe(): Promise<{ cutOff: boolean }> {
    this.selfFence?.contact(performance.now(), undefined, 'probe');
    return Promise.resolve({ cutOff: this.selfFence?.cutOff ?? false });
  }

  async setIsolation(id: string, response: IsolationResponse | undefined): Promise<void> {
    const spec = this.specOf(id);
    if (!spec) return; // never started here: its next start carries the policy
    if (response) spec.isolationResponse = response;
    else delete spec.isolationResponse;
    await writeFileAtomic(join(this.runDir(id), 'spec.json'), JSON.stringify(spec, null, 2), 0o600);
    if (this.specs.has(id)) this.specs.set(id, spec);
  }

  plugDevice(id: string, device: PlugDevice): Promise<void> {
    return this.serialize(id, async () => {
      this.notMoving(id);
      const instance = this.running(id);
      const spec = this.specOf(id);
      if ('disk' in device) {
        const d = structuredClone(device.disk);
        if (d.pool === undefined || d.volume === undefined)
          throw new NfError('validation_failed', `disk ${d.id}: a hot-plugged disk is a pool volume`);
        d.blockdev = withDiskIo(
          this.pool(d.pool).blockdev(d.volume, d.id, { readOnly: d.readOnly ?? false }),
          d,
        );
        await instance.plugDisk(d);
        if (spec) spec.disks = [...spec.disks.filter((x) => x.id !== d.id), d];
      } else {
        await instance.plugNic(device.nic);
        if (spec) spec.nics = [...spec.nics.filter((x) => x.id !== device.nic.id), device.nic];
      }
      if (spec) await this.saveSpec(spec);
      log.info('device hot-plugged', { vm: id, device: 'disk' in device ? device.disk.id : device.nic.id });
    });
  }

  unplugDevice(id: string, device: { disk: string } | { nic: string }): Promise<void> {
    return this.serialize(id, async () => {
      this.notMoving(id);
      const instance = this.running(id);
      if ('disk' in device) await instance.unplugDisk(device.disk);
      else await instance.unplugNic(device.nic);
      const spec = this.specOf(id);
      if (spec) {
        if ('disk' in device) spec.disks = spec.disks.filter((d) => d.id !== device.disk);
        else spec.nics = spec.nics.filter((n) => n.id !== device.nic);
        await this.saveSpec(spec);
      }
      log.info('device unplugged', { vm: id, device: 'disk' in device ? device.disk : device.nic });
    });
  }

  tuneDevice(id: string, change: TuneDevice): Promise<void> {
    return this.serialize(id, async () => {
      await this.running(id).tune(change);
      const spec = this.specOf(id);
      if (!spec) return;
      if ('disk' in change) {
        const d = spec.disks.find((x) => x.id === change.disk);
        if (d) d.limits = change.limits;
      } else {
        const n = spec.nics.find((x) => x.id === change.nic);
        if (n) n.linkDown = !change.linkUp;
      }
      await this.saveSpec(spec);
    });
  }

  changeMedia(id: string, iso: { pool: string; file: string } | undefined): Promise<void> {
    return this.serialize(id, async () => {
      const media = iso ? this.resolveMedia({ ...iso }, `cd1-m${Date.now().toString(36)}`) : undefined;
      await this.running(id).changeMedia(media);
      const spec = this.specOf(id);
      if (spec) {
        spec.media = media ? { iso: this.resolveMedia({ ...iso! }, 'cd1') } : {};
        await this.saveSpec(spec);
      }
      log.info('media changed', { vm: id, iso: iso?.file ?? 'ejected' });
    });
  }

  /** How this host opens an ISO of its pools for a CD-ROM drive (a shared pool's nodes, or a path). */
  private resolveMedia(iso: MediaRun, nodeName: string): MediaRun {
    const pool = this.pools.get(iso.pool);
    if (pool?.capabilities.shared) iso.blockdev = pool.blockdev(iso.file, nodeName, { readOnly: true });
    else iso.path = this.imagePool(iso.pool).imagePath(iso.file);
    return iso;
  }

  addVcpus(id: string, count: number): Promise<void> {
    return this.serialize(id, async () => {
      const instance = this.running(id);
      let now: number;
      try {
        now = await instance.addVcpus(count);
      } catch (err) {
        // some may have gone in before the failure: say how many the guest has now
        const have = await instance.addVcpus(0).catch(() => undefined);
        const spec = this.specOf(id);
        if (spec && have !== undefined && spec.vcpus !== have) await this.saveSpec({ ...spec, vcpus: have });
        const e = toNfError(err);
        throw new NfError(e.code, e.message, { vcpus: have });
      }
      const spec = this.specOf(id);
      if (spec && spec.vcpus !== now) {
        spec.vcpus = now; // a new daemon, and a migration target, start it with them all
        await this.saveSpec(spec);
      }
      log.info('vCPUs hot-added', { vm: id, vcpus: now });
    });
  }

  addMemory(id: string, memoryMiB: number): Promise<void> {
    return this.serialize(id, async () => {
      const instance = this.running(id);
      const spec = this.specOf(id);
      const more = memoryMiB - (spec?.memoryMiB ?? memoryMiB);
      if (spec?.maxMemoryMiB === undefined || memoryMiB > spec.maxMemoryMiB)
        throw new NfError(
          'validation_failed',
          `VM ${id} can grow to ${spec?.maxMemoryMiB ?? spec?.memoryMiB ?? '?'} MiB while it runs (its maximum), not ${memoryMiB}`,
        );
      await this.checkMemory({ ...spec, memoryMiB: more });
      const now = await instance.addMemory(memoryMiB);
      if (now !== spec.memoryMiB) {
        // a new daemon, and a migration target, start it with the same DIMMs
        spec.memoryDimmsMiB = [...(spec.memoryDimmsMiB ?? []), now - spec.memoryMiB];
        spec.memoryMiB = now;
        await this.saveSpec(spec);
      }
      log.info('memory hot-added', { vm: id, memoryMiB: now });
    });
  }

  vmDevices(id: string): Promise<{ disks: string[]; nics: string[] }> {
    // after any plug or unplug under way: never a list from the middle of one
    return this.serialize(id, () => this.running(id).devices());
  }

  private async saveSpec(spec: VmRunSpec): Promise<void> {
    await writeFileAtomic(join(this.runDir(spec.id), 'spec.json'), JSON.stringify(spec, null, 2), 0o600);
    if (this.specs.has(spec.id)) this.specs.set(spec.id, spec);
  }

  /** Running VMs with an HA isolation response (SelfFence's targets). */
  haVms(): { id: string; name: string; isolationResponse: IsolationResponse }[] {
    return [...this.instances.keys()].flatMap((id) => {
      const spec = this.specs.get(id) ?? this.specOf(id);
      return spec?.isolationResponse
        ? [{ id, name: spec.name, isolationResponse: spec.isolationResponse }]
        : [];
    });
  }

  /**
   * The isolation response for one VM: `poweroff` kills QEMU at once (not behind an operation in
   * progress: the cluster may restart the VM elsewhere within a second), `shutdown` asks the guest and
   * kills it after two minutes. Its exit is reported as stopped and `fenced`.
   */
  async isolate(id: string, response: 'poweroff' | 'shutdown', why: string): Promise<void> {
    const instance = this.instances.get(id);
    if (!instance) return;
    this.isolating.set(id, why);
    log.warn('HA isolation response', { id, response, why });
    if (response === 'poweroff') {
      await this.writeJournal(id, 'stopped').catch(() => {});
      // SIGKILL, not QMP quit: quit drains the disks first, which hangs while RBD is out of reach (the
      // e2e partition run measured 5 s of it), and the cluster may restart the VM within a second.
      if (pidAlive(instance.pid)) process.kill(instance.pid, 'SIGKILL');
      await settles(instance.exited, 30_000);
    } else await this.stopVm(id, { timeoutMs: 120_000 });
  }

  /** The host has the VM's memory available now (beyond what it keeps for itself). */
  private async checkMemory(spec: VmRunSpec): Promise<void> {
    const avail = (await memAvailable()) - HOST_RESERVE_BYTES;
    if (spec.memoryMiB * 1024 ** 2 > avail)
      throw new NfError(
        'insufficient_resources',
        `VM "${spec.name}" needs ${spec.memoryMiB} MiB but node ${this.name} has only ${Math.max(0, Math.floor(avail / 1024 ** 2))} MiB available; stop other VMs or lower its memory`,
      );
  }

  stopVm(id: string, opts: StopOptions = {}): Promise<VmStatus> {
    return this.serialize(id, async () => {
      const orphan = this.orphans.get(id);
      if (orphan !== undefined) return this.killOrphan(id, orphan, opts);
      const instance = this.instances.get(id);
      if (!instance) return this.vmStatus(id);
      await this.writeJournal(id, 'stopped');
      if (!opts.force) {
        const timeoutMs = opts.timeoutMs ?? 60_000;
        try {
          if ((await instance.state()) === 'paused') await instance.resume(); // a paused guest cannot see ACPI
          // The agent shuts down cleanly even guests that ignore ACPI; fall back to the power button.
          const agent = this.agents.get(id);
          let asked = false;
          if (agent?.current.status === 'connected') {
            asked = await agent
              .execute('guest-shutdown', { mode: 'powerdown' }, { noReply: true, timeoutMs: 3000 })
              .then(
                () => true,
                () => false,
              );
          }
          let waited = 0;
          if (asked) {
            // The agent may have refused (qemu-ga answers only on failure): give it a while, then also
            // press the power button.
            waited = Math.min(timeoutMs, 15_000);
            if (!(await settles(instance.exited, waited))) await instance.powerdown();
          } else {
            await instance.powerdown();
          }
          if (!(await settles(instance.exited, timeoutMs - waited))) {
            log.warn('guest ignored the shutdown request; forcing', { id, timeoutMs });
          }
        } catch (err) {
          log.warn('graceful shutdown failed; forcing', { id, err });
        }
      }
      if (this.instances.has(id)) await instance.kill();
      if (!(await settles(instance.exited, 30_000))) {
        throw new NfError(
          'timeout',
          `QEMU of VM ${id} (pid ${instance.pid}) did not exit 30 s after SIGKILL (stuck in the kernel?)`,
        );
      }
      return this.vmStatus(id);
    });
  }

  private async killOrphan(id: string, pid: number, opts: StopOptions): Promise<VmStatus> {
    if (!opts.force) {
      throw new NfError(
        'invalid_state',
        `QEMU pid ${pid} of VM ${id} does not answer its monitor; only a forced stop can end it`,
      );
    }
    if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    await waitFor(() => !pidAlive(pid), { timeoutMs: 30_000, what: `QEMU pid ${pid} to exit` });
    this.orphans.delete(id);
    await this.writeJournal(id, 'stopped');
    return this.setStatus({ id, state: 'stopped' });
  }

  pauseVm(id: string): Promise<VmStatus> {
    return this.serialize(id, async () => {
      const instance = this.running(id);
      await instance.pause();
      return this.setStatus({ ...this.vmStatus(id), state: await instance.state() });
    });
  }

  resumeVm(id: string): Promise<VmStatus> {
    return this.serialize(id, async () => {
      const instance = this.running(id);
      await instance.resume();
      return this.setStatus({ ...this.vmStatus(id), state: await instance.state() });
    });
  }

  resetVm(id: string): Promise<VmStatus> {
    return this.serialize(id, async () => {
      await this.running(id).reset();
      return this.vmStatus(id);
    });
  }

  snapshotVm(id: string, name: string, disks: { id: string; pool: string; volume: string }[]): Promise<void> {
    this.notMoving(id);
    return this.serialize(id, async () => {
      const instance = this.instances.get(id);
      if (instance) {
        await instance.snapshotDisks(
          name,
          disks.map((d) => d.id),
        );
        return;
      }
      const done: typeof disks = [];
      try {
        for (const d of disks) {
          await this.pool(d.pool).snapshotCreate(d.volume, name);
          done.push(d);
        }
      } catch (err) {
        // All disks or none: undo the ones that already got it.
        for (const d of done)
          await this.pool(d.pool)
            .snapshotDelete(d.volume, name)
            .catch(() => {});
        throw err;
      }
    });
  }

  deleteVmSnapshot(
    id: string,
    name: string,
    disks: { id: string; pool: string; volume: string }[],
  ): Promise<void> {
    return this.serialize(id, async () => {
      const instance = this.instances.get(id);
      if (instance)
        return instance.deleteDiskSnapshots(
          name,
          disks.map((d) => d.id),
        );
      for (const d of disks) await this.pool(d.pool).snapshotDelete(d.volume, name);
    });
  }

  revertVmSnapshot(
    id: string,
    name: string,
    disks: { id: string; pool: string; volume: string }[],
  ): Promise<void> {
    return this.serialize(id, async () => {
      if (this.instances.has(id)) {
        throw new NfError(
          'invalid_state',
          'stop the VM before reverting to a snapshot (its disks are in use)',
        );
      }
      // Check every disk has it before touching any, so a revert is not left half-done for a missing one.
      for (const d of disks) {
        if (!(await this.pool(d.pool).hasSnapshot(d.volume, name))) {
          throw new NfError('not_found', `disk ${d.id} has no snapshot "${name}"; nothing was reverted`);
        }
      }
      for (const d of disks) await this.pool(d.pool).snapshotRollback(d.volume, name);
    });
  }

  async consoleLog(id: string, maxBytes = 256 * 1024): Promise<string> {
    const path = join(this.runDir(id), 'console.log');
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(path, 'r');
    } catch {
      return '';
    }
    try {
      const { size } = await fh.stat();
      const start = Math.max(0, size - maxBytes);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      return buf.toString('utf8');
    } finally {
      await fh.close();
    }
  }

  openConsole(id: string): Promise<ConsoleStream> {
    this.running(id);
    const path = join(this.runDir(id), 'vnc.sock');
    if (!existsSync(path)) throw new NfError('invalid_state', 'the VM has no VNC console socket');
    return new Promise((resolve, reject) => {
      const sock = connect(path);
      const closers: ((error?: string) => void)[] = [];
      let closed = false;
      const finish = (error?: string) => {
        if (closed) return;
        closed = true;
        for (const c of closers) c(error);
      };
      sock.once('connect', () =>
        resolve({
          write: (d) => void sock.write(d),
          onData: (l) => void sock.on('data', (b: Buffer) => l(b)),
          onClose: (l) => void closers.push(l),
          close: () => sock.destroy(),
        }),
      );
      sock.once('error', (err) => {
        reject(new NfError('unavailable', `cannot reach the VNC server of the VM: ${err.message}`));
        finish(err.message);
      });
      sock.once('close', () => finish());
    });
  }

  /**
   * Creates a volume (StorageDriver.createVolume). Idempotent: a volume that exists already as this call
   * would make it (same virtual size, same clone source) is accepted; anything else of that name is
   * refused with `already_exists` and left alone.
   */
  async createVolume(
    pool: string,
    volume: string,
    sizeBytes: number,
    backing?: VolumeBacking,
  ): Promise<void> {
    await this.pool(pool).createVolume(
      volume,
      sizeBytes,
      backing
        ? {
            image: backing.file,
            format: backing.format,
            ...(backing.volume ? { volume: true } : {}),
            ...(backing.snapshot ? { snapshot: backing.snapshot } : {}),
          }
        : undefined,
    );
  }

  async resizeVolume(
    pool: string,
    volume: string,
    sizeBytes: number,
    vm?: { id: string; disk: string },
  ): Promise<void> {
    if (vm) this.notMoving(vm.id);
    const p = this.pool(pool);
    const grow = async () => {
      const info = await p.volumeInfo(volume);
      const size = growTo(p.name, volume, info?.virtualBytes, sizeBytes);
      if (size === undefined) return;
      const instance = vm && this.instances.get(vm.id);
      if (!instance) return p.resizeVolume(volume, size);
      if (!p.capabilities.liveResize)
        throw new NfError(
          'invalid_state',
          `pool ${p.name} (${p.type}) cannot grow a disk in use; stop the VM first`,
        );
      await instance.resizeDisk(vm.disk, size);
    };
    // Under the VM's lock: a start or stop does not race the resize.
    return vm ? this.serialize(vm.id, grow) : grow();
  }

  async flattenVolume(pool: string, volume: string): Promise<void> {
    await this.pool(pool).flattenVolume(volume);
  }

  async deleteVolume(pool: string, volume: string): Promise<void> {
    await this.pool(pool).deleteVolume(volume);
  }

  /**
   * Opens the cluster-wide pools named (ceph.conf and keyring under DATA_DIR/node/shared-pools, 0600)
   * and closes the shared ones not named any more. A name taken by a local pool is refused.
   */
  async configurePools(configs: SharedPoolConfig[]): Promise<void> {
    const dir = join(dirname(this.runRoot), 'shared-pools');
    for (const c of configs) {
      const have = this.pools.get(c.name);
      if (have && !have.capabilities.shared)
        throw new NfError('already_exists', `host ${this.name} has a local pool named "${c.name}"`);
    }
    for (const c of configs) {
      this.pools.set(c.name, await openSharedPool(dir, c));
      this.usageCache.delete(c.name);
    }
    const want = new Set(configs.map((c) => c.name));
    for (const [name, p] of this.pools) {
      if (!p.capabilities.shared || want.has(name)) continue;
      this.pools.delete(name);
      removeSharedPool(dir, name);
    }
  }

  listVolumes(pool: string): Promise<VolumeInfo[]> {
    return this.pool(pool).listVolumes();
  }

  /**
   * A pool's size and free space for the heartbeat (every 2 s): a file system's at once, a shared pool's
   * at most every 15 s.
   */
  private async poolUsage(p: StorageDriver): Promise<{ totalBytes: number; freeBytes: number } | undefined> {
    if (!p.capabilities.shared) return p.capacity();
    const cached = this.usageCache.get(p.name);
    if (cached && Date.now() - cached.at < 15_000) return cached.usage;
    try {
      const usage = await p.capacity();
      // not reported by Ceph's manager yet: ask again next time instead of keeping zeros for 15 s
      if (usage.totalBytes > 0) this.usageCache.set(p.name, { at: Date.now(), usage });
      return usage;
    } catch (err) {
      log.warn('cannot read the figures of a shared pool', { pool: p.name, err: (err as Error).message });
      return cached?.usage; // unreachable for now: report the last figures, or leave the pool out
    }
  }

  async deleteImageFile(pool: string, file: string): Promise<void> {
    const p = this.pool(pool);
    // an image in a shared pool is a volume there (refused while linked clones hang off it)
    if (p.capabilities.shared) return p.deleteVolume(file);
    await rm(this.imagePool(pool).imagePath(file), { force: true });
  }

  async copyImage(
    src: { pool: string; file: string; format: 'qcow2' | 'raw' },
    dst: { pool: string; volume: string },
  ): Promise<number> {
    const from = this.imagePool(src.pool).imagePath(src.file);
    const to = this.pool(dst.pool);
    if (!to.capabilities.shared || !to.capabilities.linkedClones)
      throw new NfError(
        'validation_failed',
        `pool ${dst.pool} (${to.type}) is not a shared pool with linked clones`,
      );
    if (await to.volumeInfo(dst.volume))
      throw new NfError('already_exists', `pool ${dst.pool} already has a volume ${dst.volume}`);
    const size = (await imageInfo(from, src.format)).virtualSize;
    const rounded = Math.ceil(size / 1024 ** 2) * 1024 ** 2;
    await to.createVolume(dst.volume, rounded);
    try {
      // raw into the volume the driver made (its features, its size), through QEMU's own block layer: the
      // driver's protocol node under a raw format node
      const top = nestBlockdev(to.blockdev(dst.volume, 'dst'));
      const target = top.driver === 'raw' || top.driver === 'qcow2' ? top : { driver: 'raw', file: top };
      await qemuImg(
        ['convert', '-q', '-n', '-f', src.format, from, `json:${JSON.stringify(target)}`],
        3_600_000,
      );
    } catch (err) {
      await to.deleteVolume(dst.volume).catch(() => {});
      throw err;
    }
    return rounded;
  }

  /**
   * Moves a VM's disk from one pool of this host to another, as a full copy (a linked clone becomes
   * independent). While the VM runs, QEMU mirrors it and the guest keeps writing; a stopped VM's volume
   * is copied with qemu-img under the VM's lock, so it cannot start meanwhile. The source volume is left
   * for the caller to delete once its record names the target. On a failure the target is removed.
   */
  async moveDisk(
    req: MoveDiskRequest,
    onProgress: (done: number, total: number) => void = () => {},
  ): Promise<void> {
    const from = this.pool(req.from.pool);
    const to = this.pool(req.to.pool);
    if (from === to) throw new NfError('validation_failed', `the disk is already in pool ${req.to.pool}`);
    const info = await from.volumeInfo(req.from.volume);
    if (!info)
      throw new NfError('not_found', `volume ${req.from.volume} does not exist in pool ${from.name}`);
    if (info.snapshots.length > 0)
      throw new NfError(
        'invalid_state',
        `volume ${req.from.volume} has snapshots (${info.snapshots.join(', ')}); they cannot move with it: delete them first`,
      );
    if (this.moving.has(req.vmId))
      throw new NfError('conflict', `VM ${req.vmId}: ${this.moving.get(req.vmId)} already`);
    this.moving.set(req.vmId, 'a disk is being moved');
    try {
      const live = this.instances.get(req.vmId);
      if (live) {
        await to.createVolume(req.to.volume, info.virtualBytes);
        try {
          const node = `mv${Date.now().toString(36)}-${req.diskId}`;
          await live.mirrorDisk(req.diskId, to.blockdev(req.to.volume, node), onProgress);
        } catch (err) {
          await to.deleteVolume(req.to.volume).catch(() => {});
          throw err;
        }
        return;
      }
      await this.serialize(req.vmId, async () => {
        if (this.hasProcess(req.vmId))
          throw new NfError('invalid_state', `VM ${req.vmId} has a QEMU process but is not managed here`);
        await to.createVolume(req.to.volume, info.virtualBytes);
        try {
          const src = imageOpts(nestBlockdev(from.blockdev(req.from.volume, 'src', { readOnly: true })));
          const dst = targetOpts(to, req.to.volume);
          await qemuImgProgress(
            ['convert', '-p', '-n', '--image-opts', src, '--target-image-opts', dst],
            (pct) => onProgress(Math.round((pct / 100) * info.virtualBytes), info.virtualBytes),
          );
        } catch (err) {
          await to.deleteVolume(req.to.volume).catch(() => {});
          throw err;
        }
      });
    } finally {
      this.moving.delete(req.vmId);
    }
  }

  /**
   * A new volume in one of this host's pools from a disk file of another format (an import: VMDK,
   * qcow2, raw), converted by qemu-img straight into the pool. The file is read with the format given,
   * never probed (a VMDK's checks are the caller's: src/import/package.ts). A failure leaves no volume.
   */
  /**
   * Backs a VM of this host up into a repository directory on this host: a running one at one instant
   * (its file systems frozen through the agent for that instant when it answers), a stopped one as it is.
   */
  async backupVm(
    req: VmBackupRequest,
    onProgress: (p: BackupProgress) => void = () => {},
  ): Promise<BackupManifest> {
    const disks: BackupVolume[] = req.disks.map((d) => {
      const pool = this.pool(d.pool);
      const rbd = pool instanceof RbdPool ? pool : undefined;
      return {
        id: d.id,
        imageOpts: targetOpts(pool, d.volume),
        qcow2: pool.type === 'dir',
        sizeBytes: d.sizeBytes,
        ...(rbd
          ? {
              rbd: {
                snapshots: () => rbd.listSnapshots(d.volume),
                create: (name: string) => rbd.snapshotCreate(d.volume, name),
                remove: (name: string) => rbd.snapshotDelete(d.volume, name),
                changedSince: (name: string) => rbd.diffSince(d.volume, name),
              },
            }
          : {}),
      };
    });
    const full: NodeBackupRequest = { ...req, node: this.name, disks };
    const instance = this.instances.get(req.vm.id);
    if (!instance)
      return this.serialize(req.vm.id, async () => {
        if (this.hasProcess(req.vm.id))
          throw new NfError('invalid_state', `VM "${req.vm.name}" started meanwhile; back it up again`);
        const dir = this.runDir(req.vm.id);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        return backupStopped(dir, full, onProgress);
      });
    this.notMoving(req.vm.id);
    this.moving.set(req.vm.id, 'its disks are being backed up');
    try {
      const agent = this.agents.get(req.vm.id);
      const guest = agent
        ? {
            freeze: async () => {
              await agent.execute('guest-ping', undefined, { timeoutMs: 3000 });
              return agent.execute<number>('guest-fsfreeze-freeze', undefined, { timeoutMs: 30_000 });
            },
            thaw: () => agent.execute<number>('guest-fsfreeze-thaw', undefined, { timeoutMs: 30_000 }),
          }
        : undefined;
      return await backupRunning(instance, this.runDir(req.vm.id), full, guest, onProgress);
    } finally {
      this.moving.delete(req.vm.id);
    }
  }

  /** Makes a volume and writes a backed-up disk into it; the volume is deleted if that fails. */
  async restoreVolume(
    req: RestoreVolumeRequest,
    onProgress: (done: number, total: number) => void = () => {},
  ): Promise<{ writtenBytes: number }> {
    const pool = this.pool(req.pool);
    if (await pool.volumeInfo(req.volume))
      throw new NfError('already_exists', `pool ${req.pool} already has a volume ${req.volume}`);
    await pool.createVolume(req.volume, req.sizeBytes);
    try {
      const dir = join(dirname(this.runRoot), 'restore');
      await mkdir(dir, { recursive: true, mode: 0o700 });
      return await restoreVolume(dir, { ...req, imageOpts: targetOpts(pool, req.volume) }, (p) =>
        onProgress(p.doneBytes, p.totalBytes),
      );
    } catch (err) {
      await pool.deleteVolume(req.volume).catch(() => {});
      throw err;
    }
  }

  async importVolume(
    pool: string,
    volume: string,
    source: { path: string; format: 'vmdk' | 'qcow2' | 'raw' },
    onProgress: (done: number, total: number) => void = () => {},
  ): Promise<number> {
    const to = this.pool(pool);
    const info = await imageInfo(source.path, source.format).catch((err: Error) => {
      throw new NfError(
        'validation_failed',
        `${source.path.split('/').at(-1)} cannot be read as ${source.format}: ${err.message}`,
      );
    });
    if (info.backingFilename || info.dataFile)
      throw new NfError(
        'validation_failed',
        `${source.path.split('/').at(-1)} refers to another file; refused`,
      );
    const size = Math.ceil(info.virtualSize / 512) * 512;
    await to.createVolume(volume, size);
    try {
      await qemuImgProgress(
        [
          'convert',
          '-p',
          '-n',
          '--target-is-zero',
          '-f',
          source.format,
          source.path,
          '--target-image-opts',
          targetOpts(to, volume),
        ],
        (pct) => onProgress(Math.round((pct / 100) * size), size),
      );
    } catch (err) {
      await to.deleteVolume(volume).catch(() => {});
      const e = toNfError(err);
      throw new NfError(
        'validation_failed',
        `${source.path.split('/').at(-1)} could not be converted (truncated or damaged?): ${e.message}`,
      );
    }
    return size;
  }

  /** The VM's status with its migration role (none: it left the migration) and, when given, its state. */
  private migrationStatus(id: string, migration?: MigrationRole, state?: RuntimeState): VmStatus {
    const cur: Omit<VmStatus, 'updatedAt'> = { ...this.vmStatus(id) };
    delete cur.agent; // merged in by vmStatus, not part of the stored status
    delete cur.migration;
    return this.setStatus({ ...cur, ...(state ? { state } : {}), ...(migration ? { migration } : {}) });
  }

  /** Where a VM's QEMU here stands with a migration: its run state, and the journal for a target. */
  private async roleOf(id: string, instance: VmInstance): Promise<MigrationRole | undefined> {
    const role = await instance.migrationRole().catch(() => undefined);
    if (role) return role;
    // a target whose QEMU received everything but was not told to run yet
    if ((await this.readJournal(id))?.expected === 'incoming' && (await instance.state()) !== 'running')
      return 'received';
    return undefined;
  }

  /** The host's certificate as QEMU TLS credentials files (the migration and NBD streams). */
  private async migrationTls(incoming = false): Promise<{ dir: string; address: string }> {
    const m = this.migration;
    if (!m)
      throw new NfError(
        'unavailable',
        `host ${this.name} takes no part in migrations (it is not in a cluster)`,
      );
    if (incoming && m.unavailable) throw new NfError('unavailable', `host ${this.name}: ${m.unavailable}`);
    const dir = join(dirname(this.runRoot), 'migration-tls');
    // written once per daemon (two migrations at once must not write the same files together)
    this.tlsWritten ??= (async () => {
      for (const [file, pem, mode] of [
        ['ca-cert.pem', m.tls.caPem, 0o644],
        ['server-cert.pem', m.tls.certPem, 0o644],
        ['client-cert.pem', m.tls.certPem, 0o644],
        ['server-key.pem', m.tls.keyPem, 0o600],
        ['client-key.pem', m.tls.keyPem, 0o600],
      ] as const)
        await writeFileAtomic(join(dir, file), pem, mode);
    })().catch((err) => {
      this.tlsWritten = undefined;
      throw err;
    });
    await this.tlsWritten;
    return { dir, address: m.address };
  }

  prepareIncoming(req: IncomingRequest): Promise<IncomingEndpoint> {
    const spec = this.resolveSpec(req.spec);
    return this.serialize(spec.id, async () => {
      if (this.hasProcess(spec.id))
        throw new NfError(
          'invalid_state',
          `VM "${spec.name}" already has a QEMU process on host ${this.name}`,
        );
      const tls = await this.migrationTls(true);
      await this.checkMemory(spec);
      // Refuse before making anything: an existing volume of that name is never taken over.
      for (const d of req.localDisks)
        if (await this.pool(d.pool).volumeInfo(d.volume))
          throw new NfError(
            'already_exists',
            `pool ${d.pool} of host ${this.name} already has a volume ${d.volume}`,
          );
      const dir = this.runDir(spec.id);
      const made: { pool: string; volume: string }[] = [];
      let instance: VmInstance | undefined;
      try {
        await writeFileAtomic(join(dir, 'spec.json'), JSON.stringify(spec, null, 2), 0o600);
        await this.writeJournal(spec.id, 'incoming');
        for (const d of req.localDisks) {
          // listed before it is made (none of these names existed: checked above), so that what
          // abortIncoming and a restarted daemon delete is exactly what this migration made
          made.push({ pool: d.pool, volume: d.volume });
          await writeFileAtomic(join(dir, 'incoming.json'), JSON.stringify({ volumes: made }), 0o600);
          await this.pool(d.pool).createVolume(d.volume, d.sizeBytes);
        }
        instance = await this.driver.start(spec, dir, { incoming: true });
        const nbd =
          req.localDisks.length > 0
            ? { port: await freePort(tls.address), disks: req.localDisks.map((d) => d.id) }
            : undefined;
        const endpoint = await instance.listenIncoming({
          address: tls.address,
          tlsDir: tls.dir,
          multifd: !req.policy.postcopy,
          postcopy: req.policy.postcopy,
          ...(nbd ? { nbd } : {}),
        });
        this.track(instance);
        this.setStatus({
          id: spec.id,
          state: 'paused',
          pid: instance.pid,
          startedAt: instance.startedAt,
          migration: 'incoming',
        });
        log.info('waiting for a migration', { id: spec.id, port: endpoint.port, nbdPort: endpoint.nbdPort });
        return endpoint;
      } catch (err) {
        await instance?.kill().catch(() => {});
        await this.dropIncoming(spec.id).catch(() => {}); // the volumes incoming.json lists
        throw err;
      }
    });
  }

  async migrateOut(
    req: OutgoingMigration,
    onProgress: (p: MigrationProgress) => void = () => {},
  ): Promise<MigrationResult> {
    const instance = this.running(req.vmId);
    this.notMoving(req.vmId);
    const tls = await this.migrationTls();
    this.moving.set(req.vmId, 'it is being migrated');
    this.migrationStatus(req.vmId, 'outgoing');
    try {
      const result = await instance.migrateOut({ ...req, tlsDir: tls.dir }, onProgress);
      this.migrationStatus(req.vmId, 'migrated', 'paused');
      log.info('migrated out', { id: req.vmId, to: req.targetName, downtimeMs: result.downtimeMs });
      return result;
    } catch (err) {
      if (this.instances.get(req.vmId) === instance)
        this.migrationStatus(req.vmId, undefined, await instance.state().catch(() => undefined));
      throw err;
    } finally {
      this.moving.delete(req.vmId);
    }
  }

  async cancelMigration(vmId: string, reason?: string): Promise<void> {
    this.instances.get(vmId)?.cancelMigration(reason);
  }

  finishIncoming(vmId: string): Promise<VmStatus> {
    return this.serialize(vmId, async () => {
      const instance = this.running(vmId);
      // the journal first: a daemon restarted from here on knows the guest is meant to run here
      await this.writeJournal(vmId, 'running');
      await instance.finishIncoming();
      await rm(join(this.runDir(vmId), 'incoming.json'), { force: true });
      return this.migrationStatus(vmId, undefined, await instance.state());
    });
  }

  abortIncoming(vmId: string, localDisks: { pool: string; volume: string }[]): Promise<{ reason?: string }> {
    return this.serialize(vmId, async () => {
      const dir = this.runDir(vmId);
      const journal = await this.readJournal(vmId);
      const instance = this.instances.get(vmId);
      // What the target's QEMU said (a refused stream, a device it could not load) before it is ended and
      // its run dir removed: the migration's error names it.
      const reason = journal?.expected === 'incoming' ? stderrReason(runPaths(dir).qemuLog) : undefined;
      if (reason) log.warn('a migration target QEMU is ended', { id: vmId, qemu: reason });
      if (instance) {
        const role = await this.roleOf(vmId, instance);
        if (role !== 'incoming' && role !== 'received')
          throw new NfError(
            'invalid_state',
            `VM ${vmId} runs on host ${this.name} (not a waiting migration target); it is not ended`,
          );
        await instance.kill();
      } else if (this.orphans.has(vmId)) {
        if (journal?.expected !== 'incoming')
          throw new NfError(
            'invalid_state',
            `VM ${vmId} has a QEMU process here that is not a migration target`,
          );
        await this.killOrphan(vmId, this.orphans.get(vmId)!, { force: true });
      }
      // only volumes this host made for the migration, and only those the caller names
      const made = await this.dropIncoming(vmId, localDisks);
      if (journal?.expected === 'incoming' || made > 0) {
        this.statuses.delete(vmId);
        this.metrics.forget(vmId);
        await rm(dir, { recursive: true, force: true });
        for (const l of this.listeners) l(this.vmStatus(vmId));
      }
      return reason ? { reason } : {};
    });
  }

  /**
   * Deletes the volumes this host made for an incoming migration (incoming.json), those named when
   * `only` is given, and marks the VM stopped here. Returns how many it found.
   */
  private async dropIncoming(id: string, only?: { pool: string; volume: string }[]): Promise<number> {
    const dir = this.runDir(id);
    let made: { pool: string; volume: string }[] = [];
    try {
      made = (JSON.parse(await readFile(join(dir, 'incoming.json'), 'utf8')) as { volumes: typeof made })
        .volumes;
    } catch {}
    for (const v of made)
      if (!only || only.some((d) => d.pool === v.pool && d.volume === v.volume))
        await this.pool(v.pool)
          .deleteVolume(v.volume)
          .catch((err) => log.warn('cannot delete a migration’s volume', { id, volume: v.volume, err }));
    await rm(join(dir, 'incoming.json'), { force: true });
    await this.writeJournal(id, 'stopped');
    this.setStatus({ id, state: 'stopped' });
    return made.length;
  }

  resumeMigrated(vmId: string): Promise<VmStatus> {
    return this.serialize(vmId, async () => {
      const instance = this.running(vmId);
      await instance.resumeAfterMigration();
      return this.migrationStatus(vmId, undefined, await instance.state());
    });
  }

  /**
   * A UEFI VM's variable store: made in its pool from OVMF's template on the first start (a marker in
   * the run dir covers a daemon that died half-way: the volume is made again, never trusted half-done).
   * Once made it is never rewritten here, so boot entries and Secure Boot keys the guest set stay.
   */
  private async ensureEfiVars(spec: VmRunSpec): Promise<void> {
    const fw = spec.firmware;
    if (!fw) return;
    const pool = this.pool(fw.vars.pool);
    const marker = join(this.runDir(spec.id), 'efivars-creating');
    let half = existsSync(marker);
    if (!half && (await pool.volumeInfo(fw.vars.volume))) {
      // made half-way on another host (a shared pool) has no firmware volume header: made again;
      // a store that cannot be read is left alone (never thrown away on a doubt)
      if ((await this.efiVarsHeader(pool, fw.vars.volume)) !== false) return;
      log.warn('UEFI variable store without a firmware volume header: made again', { vm: spec.id });
      half = true;
    }
    const { varsTemplate } = ovmfFiles(fw.secureBoot);
    if (!existsSync(varsTemplate))
      throw new NfError(
        'unavailable',
        `host ${this.name} lacks OVMF's variable template ${varsTemplate} (Debian package ovmf)`,
      );
    await writeFileAtomic(marker, `${fw.vars.volume}\n`, 0o600);
    if (half) await pool.deleteVolume(fw.vars.volume);
    await pool.createVolume(fw.vars.volume, OVMF_VARS_BYTES);
    try {
      const top = nestBlockdev(pool.blockdev(fw.vars.volume, 'dst'));
      const dst = imageOpts(
        top.driver === 'raw' || top.driver === 'qcow2' ? top : { driver: 'raw', file: top },
      );
      await qemuImg(['convert', '-n', '-f', 'raw', varsTemplate, '--target-image-opts', dst]);
    } catch (err) {
      await pool.deleteVolume(fw.vars.volume).catch(() => {});
      throw err;
    }
    await rm(marker, { force: true });
    log.info('UEFI variable store made', { vm: spec.id, pool: fw.vars.pool, secureBoot: fw.secureBoot });
  }

  /** Whether a variable store starts with OVMF's firmware volume ("_FVH" at byte 40); undefined: unreadable. */
  private async efiVarsHeader(pool: StorageDriver, volume: string): Promise<boolean | undefined> {
    try {
      const nested = nestBlockdev(pool.blockdev(volume, 'chk', { readOnly: true }));
      const out = await qemuIo({ ...nested, 'read-only': true, 'force-share': true }, ['read -v 40 4'], {
        readOnly: true,
      });
      return /5f 46 56 48/.test(out); // "_FVH", as qemu-io dumps it in hex
    } catch (err) {
      log.warn('cannot read a UEFI variable store', { volume, err: (err as Error).message });
      return undefined;
    }
  }

  /**
   * Turns pool references into paths in this host's pools, and checks host files against this host's
   * allow-list: a controller's word is not enough to hand a host file to a guest.
   */
  private resolveSpec(spec: VmRunSpec): VmRunSpec {
    const out: VmRunSpec = structuredClone(spec);
    for (const d of out.disks) {
      if (d.pool !== undefined && d.volume !== undefined)
        d.blockdev = withDiskIo(
          this.pool(d.pool).blockdev(d.volume, d.id, { readOnly: d.readOnly ?? false }),
          d,
        );
    }
    if (out.firmware)
      out.firmware.vars.blockdev = this.pool(out.firmware.vars.pool).blockdev(
        out.firmware.vars.volume,
        'efivars-vol',
      );
    if (out.media?.iso) out.media.iso = this.resolveMedia(out.media.iso, 'cd1');
    const cdPool = out.cdrom?.pool !== undefined ? this.pools.get(out.cdrom.pool) : undefined;
    if (out.cdrom && cdPool?.capabilities.shared && out.cdrom.file !== undefined)
      out.cdrom.blockdev = cdPool.blockdev(out.cdrom.file, 'cd0', { readOnly: true });
    else if (out.cdrom?.pool !== undefined && out.cdrom.file !== undefined)
      out.cdrom.path = this.imagePool(out.cdrom.pool).imagePath(out.cdrom.file);
    else if (out.cdrom) this.hostPaths?.file(out.cdrom.path, 'cdrom');
    if (out.boot.kind === 'kernel') {
      this.hostPaths?.file(out.boot.kernel, 'kernel');
      if (out.boot.initrd) this.hostPaths?.file(out.boot.initrd, 'initrd');
    }
    return out;
  }

  forgetVm(id: string): Promise<void> {
    return this.serialize(id, async () => {
      if (this.hasProcess(id)) throw new NfError('invalid_state', 'the VM still has a QEMU process');
      this.orphans.delete(id);
      this.statuses.delete(id);
      this.metrics.forget(id);
      await rm(this.runDir(id), { recursive: true, force: true });
    });
  }

  /** Daemon shutdown: leave guests running, just let go of their monitors. */
  detachAll(): void {
    this.metrics.stop();
    void this.cephHost?.stop(); // the daemons keep running; the next serve adopts them
    for (const agent of this.agents.values()) agent.stop();
    for (const instance of this.instances.values()) instance.detach();
    this.instances.clear();
  }

  private track(instance: VmInstance): void {
    this.instances.set(instance.id, instance);
    const spec = this.specOf(instance.id);
    if (spec) this.specs.set(instance.id, spec);
    if (spec && spec.agent !== false) {
      const agent = new AgentTracker(instance.id, join(this.runDir(instance.id), 'qga.sock'), () => {
        const cur = this.statuses.get(instance.id);
        if (cur) for (const l of this.listeners) l(this.vmStatus(instance.id));
      });
      this.agents.set(instance.id, agent);
      instance.onChannelChange((port, open) => {
        if (port === 'qga0-port') agent.portChanged(open);
      });
      agent.start();
      void instance.exited.then(() => {
        agent.stop();
        if (this.agents.get(instance.id) === agent) this.agents.delete(instance.id);
      });
    }
    if (spec?.tpm) this.superviseTpm(instance);
    // QEMU pauses a guest by itself on a disk error (ENOSPC...): report it instead of "running".
    instance.onRuntimeChange((state, reason) => {
      if (this.instances.get(instance.id) !== instance) return;
      const cur = this.vmStatus(instance.id);
      const next: Omit<VmStatus, 'updatedAt'> = { ...cur, state };
      delete (next as Partial<VmStatus>).reason;
      if (reason) next.reason = reason;
      this.setStatus(next);
    });
    void instance.exited.then(async (info) => {
      if (this.instances.get(instance.id) !== instance) return;
      this.instances.delete(instance.id);
      const spec = this.specs.get(instance.id);
      this.specs.delete(instance.id);
      // its NICs' taps on the OVN bridge (a VM adopted after a restart has its spec from the run dir)
      const ran = spec ?? this.specOf(instance.id);
      if (ran) void this.driver.release?.(ran).catch(() => {});
      // Status first and synchronously: whoever awaited `exited` must already see the VM down.
      const fenced = this.isolating.get(instance.id);
      this.isolating.delete(instance.id);
      if (fenced !== undefined)
        this.setStatus({ id: instance.id, state: 'stopped', reason: fenced, fenced: true });
      else if (info.clean) this.setStatus({ id: instance.id, state: 'stopped' });
      else {
        log.warn('VM died', { id: instance.id, reason: info.reason });
        this.setStatus({
          id: instance.id,
          state: 'error',
          reason: info.reason ?? 'QEMU exited unexpectedly',
        });
      }
      await this.writeJournal(instance.id, 'stopped').catch(() => {});
    });
  }

  /**
   * A VM's swtpm lives beside its QEMU (detached, as QEMU is). QEMU cannot connect to a new one, so a
   * swtpm that dies leaves the guest without a TPM until its next cold start: the VM's status says so
   * (an alarm) instead of the TPM failing silently in the guest. Its state on disk stays.
   */
  private superviseTpm(instance: VmInstance): void {
    const check = () => {
      if (this.instances.get(instance.id) !== instance) return clearInterval(timer);
      if (instance.tpmAlive()) return;
      clearInterval(timer);
      const warning =
        "the VM's TPM emulator (swtpm) exited: the guest's TPM no longer answers (BitLocker, measured boot); stop and start the VM to give it its TPM again (the TPM's state is kept)";
      log.error('swtpm exited under a running VM', { vm: instance.id });
      this.setStatus({ ...this.vmStatus(instance.id), warning });
    };
    const timer = setInterval(check, TPM_CHECK_MS);
    timer.unref();
    void instance.exited.then(() => clearInterval(timer));
  }

  /** The spec a VM was started with (its run dir's journal), also after re-attach. */
  private specOf(id: string): VmRunSpec | undefined {
    try {
      return JSON.parse(readFileSync(join(this.runDir(id), 'spec.json'), 'utf8')) as VmRunSpec;
    } catch {
      return undefined;
    }
  }

  private running(id: string): VmInstance {
    const instance = this.instances.get(id);
    if (!instance) throw new NfError('invalid_state', 'the VM is not running');
    return instance;
  }

  private notMoving(vmId: string): void {
    const what = this.moving.get(vmId);
    if (what) throw new NfError('invalid_state', `VM ${vmId}: ${what}; wait until that ends`);
  }

  hasPool(name: string): boolean {
    return this.pools.has(name);
  }

  private pool(name: string): StorageDriver {
    const pool = this.pools.get(name);
    if (!pool) throw new NfError('not_found', `storage pool "${name}" does not exist on node ${this.name}`);
    return pool;
  }

  /** A pool holding image files (ISOs, disk templates): a `dir` pool of this host. */
  private imagePool(name: string): DirPool {
    const pool = this.pool(name);
    if (!(pool instanceof DirPool))
      throw new NfError('not_implemented', `pool "${name}" (${pool.type}) holds no image files`);
    return pool;
  }

  private setStatus(s: Omit<VmStatus, 'updatedAt'>): VmStatus {
    const status: VmStatus = { ...s, updatedAt: new Date().toISOString() };
    if (status.state === 'stopped' || status.state === 'error') {
      delete status.pid;
      delete status.startedAt;
    }
    this.statuses.set(status.id, status);
    for (const l of this.listeners) l(status);
    return status;
  }

  private serialize<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }

  private async readJournal(id: string): Promise<Journal | undefined> {
    try {
      return JSON.parse(await readFile(join(this.runDir(id), 'journal.json'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  private async writeJournal(
    id: string,
    expected: Journal['expected'],
    extra: Pick<Journal, 'hostDown'> = {},
  ): Promise<void> {
    const journal: Journal = { expected, ...extra };
    if (expected === 'running') journal.bootId = bootId();
    await writeFileAtomic(join(this.runDir(id), 'journal.json'), JSON.stringify(journal), 0o600);
  }
}

/**
 * What a VM's run dir says the node meant for it (journal.json): read by a restarted daemon. `bootId`:
 * the host boot it was started in; `hostShutdown`: stop-vms shut it down with the host; `hostDown`: it
 * went down with its host and has not been started or stopped since.
 */
interface Journal {
  expected: 'running' | 'stopped' | 'incoming';
  bootId?: string;
  hostShutdown?: boolean;
  hostDown?: boolean;
}

/** The kernel's id of this boot of the host (a new one after every restart). */
export function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** stop-vms: the guest of this run dir went down with the host (its next daemon reports `hostDown`). */
export async function markHostShutdown(runDir: string): Promise<void> {
  const path = join(runDir, 'journal.json');
  let journal: Journal;
  try {
    journal = JSON.parse(await readFile(path, 'utf8')) as Journal;
  } catch {
    return;
  }
  if (journal.expected !== 'running') return;
  await writeFileAtomic(path, JSON.stringify({ ...journal, hostShutdown: true }), 0o600);
}

export function defaultNodeName(): string {
  return hostname();
}

async function memAvailable(): Promise<number> {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(await readFile('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {}
  return freemem();
}

/** Waits for a promise up to a deadline; true if it settled in time. */
async function settles(p: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: Timer | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** qemu-img's --target-image-opts of a pool volume: the driver's nodes, raw on top when the pool has no format. */
function targetOpts(pool: StorageDriver, volume: string): string {
  const top = nestBlockdev(pool.blockdev(volume, 'dst'));
  return imageOpts(top.driver === 'raw' || top.driver === 'qcow2' ? top : { driver: 'raw', file: top });
}
