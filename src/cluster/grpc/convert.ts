/**
 * Conversions between the NodeApi types (src/node/types.ts, src/vmm/types.ts) and their protobuf
 * messages. Strings that are TypeScript unions on one side travel as plain strings and are checked
 * on the way in, so a bad value fails loudly instead of spreading.
 */
import type { CephApplyRequest, CephHostState } from '../../ceph/host';
import { NfError } from '../../errors';
import type { AgentState } from '../../node/agent';
import type { Point } from '../../node/series';
import type { NodeInfo, StopOptions, VmStatus } from '../../node/types';
import type {
  IncomingEndpoint,
  MigrationPolicy,
  MigrationProgress,
  MigrationResult,
} from '../../vmm/migration';
import {
  type BootRun,
  DISK_AIO_MODES,
  DISK_CACHE_MODES,
  type DiskRun,
  type IoLimits,
  type IsolationResponse,
  type NicRun,
  type VmRunSpec,
} from '../../vmm/types';

const DISK_BUSES = ['virtio-blk', 'virtio-scsi', 'sata', 'ide'] as const;
const NIC_MODELS = ['virtio', 'e1000e', 'rtl8139', 'vmxnet3'] as const;
const VIDEO_MODELS = ['std', 'virtio', 'qxl', 'cirrus', 'none'] as const;

import type * as pb from '../gen/neuroflow/v1/node';

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new NfError('validation_failed', `${what} "${value}" is not one of ${allowed.join(', ')}`);
}

/** Copies the keys whose value is not undefined (proto3 `optional` fields arrive as undefined). */
function defined<T extends object>(obj: T): T {
  for (const k of Object.keys(obj) as (keyof T)[]) if (obj[k] === undefined) delete obj[k];
  return obj;
}

export function nodeInfoToPb(i: NodeInfo): pb.NodeInfo {
  const { watchdog, ...rest } = i;
  return {
    ...rest,
    pools: i.pools.map((p) => ({ ...p })),
    loadAvg: [...i.loadAvg],
    cpuLevels: [...i.cpuLevels],
    watchdogDevice: watchdog?.device,
    watchdogArmed: watchdog?.armed ?? false,
  };
}

export function nodeInfoFromPb(i: pb.NodeInfo): NodeInfo {
  return {
    name: i.name,
    cpus: i.cpus,
    cpuModel: i.cpuModel,
    memoryTotalBytes: i.memoryTotalBytes,
    memoryAvailableBytes: i.memoryAvailableBytes,
    accelerator: oneOf(i.accelerator, ['kvm', 'tcg'], 'accelerator'),
    acceleratorReason: i.acceleratorReason,
    qemuVersion: i.qemuVersion,
    cpuLevels: [...i.cpuLevels],
    kernel: i.kernel,
    uptimeSec: i.uptimeSec,
    loadAvg: i.loadAvg,
    pools: i.pools.map((p) => ({
      name: p.name,
      type: p.type,
      totalBytes: p.totalBytes,
      freeBytes: p.freeBytes,
    })),
    ...(i.watchdogDevice !== undefined
      ? { watchdog: { device: i.watchdogDevice, armed: i.watchdogArmed } }
      : {}),
  };
}

function agentToPb(a: AgentState): pb.AgentState {
  return defined({
    status: a.status,
    version: a.version,
    flavour: a.flavour,
    commands: a.commands ?? [],
    hasCommands: a.commands !== undefined,
  });
}

function agentFromPb(a: pb.AgentState): AgentState {
  const flavours = ['neuroflow', 'qemu-ga'] as const;
  return defined<AgentState>({
    status: oneOf(a.status, ['connected', 'absent', 'disabled'], 'agent status'),
    version: a.version,
    flavour: a.flavour === undefined ? undefined : oneOf(a.flavour, flavours, 'agent flavour'),
    commands: a.hasCommands ? a.commands : undefined,
  });
}

export function vmStatusToPb(s: VmStatus, hasProcess: boolean): pb.VmStatus {
  return defined({
    id: s.id,
    agent: s.agent && agentToPb(s.agent),
    state: s.state,
    pid: s.pid,
    startedAt: s.startedAt,
    reason: s.reason,
    updatedAt: s.updatedAt,
    hasProcess,
    migration: s.migration,
    fenced: s.fenced ?? false,
    hostDown: s.hostDown ?? false,
    warning: s.warning,
  });
}

export function vmStatusFromPb(s: pb.VmStatus): VmStatus {
  return defined({
    id: s.id,
    agent: s.agent && agentFromPb(s.agent),
    state: oneOf(s.state, ['running', 'paused', 'stopped', 'error'], 'VM state'),
    pid: s.pid,
    startedAt: s.startedAt,
    reason: s.reason,
    updatedAt: s.updatedAt,
    migration:
      s.migration === undefined
        ? undefined
        : oneOf(s.migration, ['incoming', 'received', 'outgoing', 'migrated'] as const, 'migration role'),
    fenced: s.fenced || undefined,
    hostDown: s.hostDown || undefined,
    warning: s.warning,
  });
}

export function policyFromPb(p: pb.MigrationPolicy | undefined): MigrationPolicy {
  if (!p) throw new NfError('validation_failed', 'a migration without its policy');
  return {
    downtimeLimitMs: p.downtimeLimitMs,
    autoConvergeAfter: p.autoConvergeAfter,
    postcopy: p.postcopy,
    timeLimitSec: p.timeLimitSec,
    maxBandwidthMiBps: p.maxBandwidthMibps,
  };
}

export function policyToPb(p: MigrationPolicy): pb.MigrationPolicy {
  return {
    downtimeLimitMs: p.downtimeLimitMs,
    autoConvergeAfter: p.autoConvergeAfter,
    postcopy: p.postcopy,
    timeLimitSec: p.timeLimitSec,
    maxBandwidthMibps: p.maxBandwidthMiBps,
  };
}

export function endpointFromPb(e: pb.IncomingEndpoint | undefined): IncomingEndpoint {
  if (!e) throw new NfError('validation_failed', 'a migration without its target endpoint');
  return defined({
    address: e.address,
    port: e.port,
    nbdPort: e.nbdPort,
    nbdDisks: e.nbdDisks.length > 0 ? e.nbdDisks : undefined,
  });
}

export function endpointToPb(e: IncomingEndpoint): pb.IncomingEndpoint {
  return defined({ address: e.address, port: e.port, nbdPort: e.nbdPort, nbdDisks: e.nbdDisks ?? [] });
}

export function progressToPb(p: MigrationProgress): pb.MigrationProgress {
  return defined({
    phase: p.phase,
    ram: p.ram,
    disksDoneBytes: p.disks?.doneBytes,
    disksTotalBytes: p.disks?.totalBytes,
  });
}

export function progressFromPb(p: pb.MigrationProgress): MigrationProgress {
  return defined({
    phase: oneOf(p.phase, ['disks', 'memory', 'switching'], 'migration phase'),
    ram: p.ram && {
      transferredBytes: Number(p.ram.transferredBytes),
      remainingBytes: Number(p.ram.remainingBytes),
      totalBytes: Number(p.ram.totalBytes),
      dirtyRateBytesPerSec: Number(p.ram.dirtyRateBytesPerSec),
      iteration: p.ram.iteration,
      expectedDowntimeMs: p.ram.expectedDowntimeMs,
      mbps: p.ram.mbps,
    },
    disks:
      p.disksTotalBytes === undefined
        ? undefined
        : { doneBytes: Number(p.disksDoneBytes ?? 0), totalBytes: Number(p.disksTotalBytes) },
  });
}

export function resultFromPb(r: pb.MigrationResult): MigrationResult {
  return {
    downtimeMs: r.downtimeMs,
    totalMs: r.totalMs,
    setupMs: r.setupMs,
    transferredBytes: Number(r.transferredBytes),
    postcopy: r.postcopy,
    ...(r.diskCopyMs !== undefined ? { diskCopyMs: r.diskCopyMs, diskBytes: Number(r.diskBytes ?? 0) } : {}),
  };
}

function bootToPb(b: BootRun): pb.BootRun {
  switch (b.kind) {
    case 'kernel':
      return {
        kind: { $case: 'kernel', value: defined({ kernel: b.kernel, initrd: b.initrd, cmdline: b.cmdline }) },
      };
    case 'cdrom':
      return { kind: { $case: 'cdrom', value: {} } };
    case 'disk':
      return { kind: { $case: 'disk', value: { index: b.index } } };
  }
}

function bootFromPb(b: pb.BootRun | undefined): BootRun {
  const k = b?.kind;
  switch (k?.$case) {
    case 'kernel':
      return defined({
        kind: 'kernel',
        kernel: k.value.kernel,
        initrd: k.value.initrd,
        cmdline: k.value.cmdline,
      });
    case 'cdrom':
      return { kind: 'cdrom' };
    case 'disk':
      return { kind: 'disk', index: k.value.index };
    default:
      throw new NfError('validation_failed', 'the VM spec has no boot source');
  }
}

export function specToPb(s: VmRunSpec): pb.VmRunSpec {
  return defined({
    id: s.id,
    name: s.name,
    vcpus: s.vcpus,
    memoryMib: s.memoryMiB,
    machine: s.machine,
    disks: s.disks.map(diskToPb),
    cdrom: s.cdrom && defined({ path: s.cdrom.path, pool: s.cdrom.pool, file: s.cdrom.file }),
    nics: s.nics.map(nicToPb),
    boot: bootToPb(s.boot),
    agent: s.agent,
    epoch: s.epoch ?? 0,
    isolationResponse: s.isolationResponse ?? '',
    cpu: s.cpu && defined({ ...s.cpu, flags: s.cpu.flags ?? {} }),
    firmware: s.firmware && {
      secureBoot: s.firmware.secureBoot,
      varsPool: s.firmware.vars.pool,
      varsVolume: s.firmware.vars.volume,
    },
    tpm: s.tpm ?? false,
    video: s.video ?? '',
    tablet: s.tablet ?? false,
    hotplugSlots: s.hotplugSlots ?? 0,
    cloudInit: s.cloudInit && defined({ ...s.cloudInit }),
    maxVcpus: s.maxVcpus ?? 0,
    maxMemoryMib: s.maxMemoryMiB ?? 0,
    memoryDimmsMib: s.memoryDimmsMiB ?? [],
    media: s.media && { iso: s.media.iso && { pool: s.media.iso.pool, file: s.media.iso.file } },
    bootOrder: s.bootOrder ?? [],
  });
}

export function specFromPb(s: pb.VmRunSpec | undefined): VmRunSpec {
  if (!s) throw new NfError('validation_failed', 'the request has no VM spec');
  const cpu = s.cpu;
  const flags = cpu && Object.keys(cpu.flags).length > 0 ? { ...cpu.flags } : undefined;
  return defined({
    id: s.id,
    name: s.name,
    vcpus: s.vcpus,
    memoryMiB: s.memoryMib,
    machine: oneOf(s.machine, ['q35', 'pc'], 'machine'),
    disks: s.disks.map(diskFromPb),
    cdrom: s.cdrom && defined({ path: s.cdrom.path, pool: s.cdrom.pool, file: s.cdrom.file }),
    nics: s.nics.map(nicFromPb),
    boot: bootFromPb(s.boot),
    agent: s.agent,
    epoch: s.epoch || undefined,
    isolationResponse: s.isolationResponse ? isolationFromPb(s.isolationResponse) : undefined,
    cpu:
      cpu &&
      defined({ model: cpu.model, sockets: cpu.sockets, cores: cpu.cores, threads: cpu.threads, flags }),
    firmware: s.firmware && {
      type: 'uefi' as const,
      secureBoot: s.firmware.secureBoot,
      vars: { pool: s.firmware.varsPool, volume: s.firmware.varsVolume },
    },
    tpm: s.tpm || undefined,
    video: s.video ? oneOf(s.video, VIDEO_MODELS, 'video model') : undefined,
    tablet: s.tablet || undefined,
    hotplugSlots: s.hotplugSlots || undefined,
    cloudInit: s.cloudInit && defined({ ...s.cloudInit }),
    maxVcpus: s.maxVcpus || undefined,
    maxMemoryMiB: s.maxMemoryMib || undefined,
    memoryDimmsMiB: s.memoryDimmsMib.length > 0 ? [...s.memoryDimmsMib] : undefined,
    media: s.media && (s.media.iso ? { iso: { pool: s.media.iso.pool, file: s.media.iso.file } } : {}),
    bootOrder: s.bootOrder.length > 0 ? [...s.bootOrder] : undefined,
  });
}

export const limitsToPb = (l: IoLimits): pb.IoLimits => ({
  iops: l.iops ?? 0,
  iopsRead: l.iopsRead ?? 0,
  iopsWrite: l.iopsWrite ?? 0,
  bps: l.bps ?? 0,
  bpsRead: l.bpsRead ?? 0,
  bpsWrite: l.bpsWrite ?? 0,
});

export const limitsFromPb = (l: pb.IoLimits): IoLimits =>
  defined({
    iops: l.iops || undefined,
    iopsRead: l.iopsRead || undefined,
    iopsWrite: l.iopsWrite || undefined,
    bps: l.bps || undefined,
    bpsRead: l.bpsRead || undefined,
    bpsWrite: l.bpsWrite || undefined,
  });

export const diskToPb = (d: DiskRun): pb.DiskRun => {
  const { blockdev: _node, limits, ...rest } = d; // opened by the node itself
  return defined({ ...rest, limits: limits && limitsToPb(limits) });
};
export const nicToPb = (n: NicRun): pb.NicRun => defined({ ...n });

export const diskFromPb = (d: pb.DiskRun): DiskRun =>
  defined({
    id: d.id,
    path: d.path,
    pool: d.pool,
    volume: d.volume,
    format: oneOf(d.format, ['qcow2', 'raw'], 'disk format'),
    readOnly: d.readOnly,
    bus: d.bus === undefined ? undefined : oneOf(d.bus, DISK_BUSES, 'disk bus'),
    slot: d.slot,
    limits: d.limits && limitsFromPb(d.limits),
    cache: d.cache === undefined ? undefined : oneOf(d.cache, DISK_CACHE_MODES, 'disk cache mode'),
    aio: d.aio === undefined ? undefined : oneOf(d.aio, DISK_AIO_MODES, 'disk aio mode'),
  });

export const nicFromPb = (n: pb.NicRun): NicRun =>
  defined({
    id: n.id,
    network: n.network,
    type: oneOf(n.type, ['nat', 'ovn'], 'NIC type'),
    port: n.port,
    central: n.central,
    mac: n.mac,
    model: n.model === undefined ? undefined : oneOf(n.model, NIC_MODELS, 'NIC model'),
    slot: n.slot,
    linkDown: n.linkDown || undefined,
  });

export function stopOptionsToPb(o: StopOptions | undefined): pb.StopOptions {
  return defined({ force: o?.force, timeoutMs: o?.timeoutMs });
}

export function stopOptionsFromPb(o: pb.StopOptions | undefined): StopOptions {
  return defined({ force: o?.force, timeoutMs: o?.timeoutMs });
}

export function pointToPb(p: Point): pb.Point {
  const values: Record<string, number> = {};
  const nullKeys: string[] = [];
  for (const [k, v] of Object.entries(p)) {
    if (k === 't') continue;
    if (v === null) nullKeys.push(k);
    else values[k] = v;
  }
  return { t: p.t, values, nullKeys };
}

export function pointFromPb(p: pb.Point): Point {
  const out: Point = { t: p.t };
  for (const [k, v] of Object.entries(p.values)) out[k] = v;
  for (const k of p.nullKeys) out[k] = null;
  return out;
}

export function rangeFromPb(range: string): 'fine' | 'coarse' {
  return oneOf(range, ['fine', 'coarse'], 'metrics range');
}

export function volumeFormatFromPb(format: string): 'qcow2' | 'raw' {
  return oneOf(format, ['qcow2', 'raw'], 'image format');
}

export function cephApplyToPb(r: CephApplyRequest): pb.CephApplyRequest {
  const c = r.config;
  const out: pb.CephApplyRequest = {
    fsid: c.fsid,
    mons: c.mons.map((m) => ({ name: m.name, ip: m.ip })),
    poolSize: c.poolSize,
    poolMinSize: c.poolMinSize,
    failureDomain: c.failureDomain,
    osdMemoryTargetBytes: c.osdMemoryTargetBytes,
    keys: r.keys.map((k) => ({ entity: k.entity, key: k.key, caps: { ...(k.caps ?? {}) } })),
    monmap: r.mon?.monmap ?? Buffer.alloc(0),
    purge: r.purge ?? false,
  };
  if (c.monDataAvailWarn !== undefined) out.monDataAvailWarn = c.monDataAvailWarn;
  if (r.mon) out.monName = r.mon.name;
  if (r.mgr) out.mgrId = r.mgr.id;
  if (r.osd) {
    out.osdDevice = r.osd.device;
    if (r.osd.sizeGiB !== undefined) out.osdSizeGib = r.osd.sizeGiB;
  }
  return out;
}

export function cephApplyFromPb(r: pb.CephApplyRequest): CephApplyRequest {
  if (r.failureDomain !== 'host' && r.failureDomain !== 'osd')
    throw new NfError('validation_failed', `bad failure domain "${r.failureDomain}"`);
  const config: CephApplyRequest['config'] = {
    fsid: r.fsid,
    mons: r.mons.map((m) => ({ name: m.name, ip: m.ip })),
    poolSize: r.poolSize,
    poolMinSize: r.poolMinSize,
    failureDomain: r.failureDomain,
    osdMemoryTargetBytes: r.osdMemoryTargetBytes,
  };
  if (r.monDataAvailWarn !== undefined) config.monDataAvailWarn = r.monDataAvailWarn;
  const out: CephApplyRequest = {
    config,
    keys: r.keys.map((k) =>
      Object.keys(k.caps).length
        ? { entity: k.entity, key: k.key, caps: k.caps }
        : { entity: k.entity, key: k.key },
    ),
  };
  if (r.monName !== undefined) out.mon = { name: r.monName, monmap: Buffer.from(r.monmap) };
  if (r.mgrId !== undefined) out.mgr = { id: r.mgrId };
  if (r.osdDevice !== undefined)
    out.osd =
      r.osdSizeGib !== undefined ? { device: r.osdDevice, sizeGiB: r.osdSizeGib } : { device: r.osdDevice };
  if (r.purge) out.purge = true;
  return out;
}

export function cephStateToPb(s: CephHostState): pb.CephHostState {
  const out: pb.CephHostState = { daemons: s.daemons.map((d) => ({ ...d })) };
  if (s.fsid !== undefined) out.fsid = s.fsid;
  if (s.osdId !== undefined) out.osdId = s.osdId;
  return out;
}

export function cephStateFromPb(s: pb.CephHostState): CephHostState {
  const out: CephHostState = {
    daemons: s.daemons.map((d) =>
      d.pid !== undefined ? { ...d } : { entity: d.entity, restarts: d.restarts },
    ),
  };
  if (s.fsid !== undefined) out.fsid = s.fsid;
  if (s.osdId !== undefined) out.osdId = s.osdId;
  return out;
}

export function isolationFromPb(s: string): IsolationResponse {
  return oneOf(s, ['poweroff', 'shutdown', 'leave'] as const, 'isolation response');
}
