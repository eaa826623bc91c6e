/**
 * Typed wrappers for the QMP commands NeuroFlow uses. They take anything with
 * an `execute` method so callers can substitute a fake in unit tests.
 */
import type { ExecuteOptions } from './client';
import type { QmpVersion } from './protocol';

export interface QmpExecutor {
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: ExecuteOptions): Promise<T>;
}

/** QEMU RunState; open-ended because newer QEMUs add states. */
export type QmpRunState =
  | 'debug'
  | 'inmigrate'
  | 'internal-error'
  | 'io-error'
  | 'paused'
  | 'postmigrate'
  | 'prelaunch'
  | 'finish-migrate'
  | 'restore-vm'
  | 'running'
  | 'save-vm'
  | 'shutdown'
  | 'suspended'
  | 'watchdog'
  | 'guest-panicked'
  | 'colo'
  | (string & {});

export interface QmpStatus {
  running: boolean;
  status: QmpRunState;
}

export interface QmpBlockInfo {
  device: string;
  qdev?: string;
  type: string;
  removable: boolean;
  locked: boolean;
  tray_open?: boolean;
  'io-status'?: string;
  inserted?: {
    file: string;
    'node-name': string;
    ro: boolean;
    drv: string;
    encrypted: boolean;
    backing_file?: string;
    backing_file_depth: number;
    image: { filename: string; format: string; 'virtual-size': number; [k: string]: unknown };
    [k: string]: unknown;
  };
}

export interface QmpSnapshotInfo {
  id: string;
  name: string;
  'vm-state-size': number;
  'date-sec': number;
  'date-nsec': number;
  'vm-clock-sec': number;
  'vm-clock-nsec': number;
  icount?: number;
}

export interface QmpVncClient {
  host: string;
  service: string;
  family: string;
  websocket: boolean;
  x509_dname?: string;
  sasl_username?: string;
}

export interface QmpVncInfo {
  enabled: boolean;
  host?: string;
  family?: string;
  service?: string;
  auth?: string;
  clients?: QmpVncClient[];
}

export async function queryStatus(c: QmpExecutor, opts?: ExecuteOptions): Promise<QmpStatus> {
  // Drop `singlestep` (deprecated) and anything else we do not model.
  const r = await c.execute<{ running: boolean; status: string }>('query-status', undefined, opts);
  return { running: r.running, status: r.status };
}

export function queryVersion(c: QmpExecutor, opts?: ExecuteOptions): Promise<QmpVersion> {
  return c.execute<QmpVersion>('query-version', undefined, opts);
}

export async function cont(c: QmpExecutor, opts?: ExecuteOptions): Promise<void> {
  await c.execute('cont', undefined, opts);
}

export async function stop(c: QmpExecutor, opts?: ExecuteOptions): Promise<void> {
  await c.execute('stop', undefined, opts);
}

/** Only asks the guest (ACPI power button); the guest may ignore it. */
export async function systemPowerdown(c: QmpExecutor, opts?: ExecuteOptions): Promise<void> {
  await c.execute('system_powerdown', undefined, opts);
}

export async function systemReset(c: QmpExecutor, opts?: ExecuteOptions): Promise<void> {
  await c.execute('system_reset', undefined, opts);
}

/** Resolves even if QEMU drops the connection instead of replying. */
export async function quit(c: QmpExecutor, opts?: ExecuteOptions): Promise<void> {
  await c.execute('quit', undefined, opts);
}

export function queryBlock(c: QmpExecutor, opts?: ExecuteOptions): Promise<QmpBlockInfo[]> {
  return c.execute<QmpBlockInfo[]>('query-block', undefined, opts);
}

/** `device` may be a BlockBackend name or the node-name of a root node. */
export async function blockdevSnapshotInternalSync(
  c: QmpExecutor,
  args: { device: string; name: string },
  opts?: ExecuteOptions,
): Promise<void> {
  await c.execute('blockdev-snapshot-internal-sync', { device: args.device, name: args.name }, opts);
}

export function blockdevSnapshotDeleteInternalSync(
  c: QmpExecutor,
  args: { device: string; name: string; id?: string },
  opts?: ExecuteOptions,
): Promise<QmpSnapshotInfo> {
  const a: Record<string, unknown> = { device: args.device, name: args.name };
  if (args.id !== undefined) a.id = args.id;
  return c.execute<QmpSnapshotInfo>('blockdev-snapshot-delete-internal-sync', a, opts);
}

/** Escape hatch for things only HMP exposes; the output is unstructured text. */
export function humanMonitorCommand(c: QmpExecutor, cmd: string, opts?: ExecuteOptions): Promise<string> {
  return c.execute<string>('human-monitor-command', { 'command-line': cmd }, opts);
}

export function queryVnc(c: QmpExecutor, opts?: ExecuteOptions): Promise<QmpVncInfo> {
  return c.execute<QmpVncInfo>('query-vnc', undefined, opts);
}
