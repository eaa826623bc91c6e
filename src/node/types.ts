import type { Accelerator, RuntimeState, VmRunSpec } from '../vmm/types';
import type { AgentState } from './agent';
import type { Point } from './series';

export interface NodeInfo {
  name: string;
  cpus: number;
  cpuModel: string;
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
  accelerator: Accelerator;
  acceleratorReason: string;
  qemuVersion: string;
  kernel: string;
  uptimeSec: number;
  loadAvg: number[];
  pools: { name: string; type: string; totalBytes: number; freeBytes: number }[];
}

export interface VmStatus {
  id: string;
  /** The guest agent while the VM runs. */
  agent?: AgentState;
  state: RuntimeState;
  pid?: number;
  startedAt?: string;
  /** Why the VM is in `error`: QEMU's own words when it has any. */
  reason?: string;
  updatedAt: string;
}

export interface StopOptions {
  force?: boolean;
  /** How long the guest gets to shut down after the ACPI power button, before the plug is pulled. */
  timeoutMs?: number;
}

/**
 * What the controller may ask of a node. On one host the controller calls this directly; in a cluster
 * the gRPC service implements the same interface on the wire.
 */
export interface NodeApi {
  info(): Promise<NodeInfo>;
  vmStatus(id: string): VmStatus;
  startVm(spec: VmRunSpec): Promise<VmStatus>;
  stopVm(id: string, opts?: StopOptions): Promise<VmStatus>;
  pauseVm(id: string): Promise<VmStatus>;
  resumeVm(id: string): Promise<VmStatus>;
  resetVm(id: string): Promise<VmStatus>;
  snapshotVm(id: string, name: string, disks: { id: string; pool: string; volume: string }[]): Promise<void>;
  deleteVmSnapshot(
    id: string,
    name: string,
    disks: { id: string; pool: string; volume: string }[],
  ): Promise<void>;
  revertVmSnapshot(
    id: string,
    name: string,
    disks: { id: string; pool: string; volume: string }[],
  ): Promise<void>;
  consoleLog(id: string, maxBytes?: number): Promise<string>;
  /** Monitoring points of a VM: the last hour at full resolution ('fine') or a day of averages. */
  vmMetrics(id: string, range: 'fine' | 'coarse'): Point[];
  hostMetrics(range: 'fine' | 'coarse'): Point[];
  /** Runs a guest agent command in the VM (the agent must be connected). */
  guestCommand<T>(
    id: string,
    command: string,
    args?: Record<string, unknown>,
    opts?: { timeoutMs?: number; noReply?: boolean },
  ): Promise<T>;
  /** True while a QEMU process of this VM exists (managed, or alive but unreachable). */
  hasProcess(id: string): boolean;
  /** Forgets a stopped VM's run directory (on VM delete). */
  forgetVm(id: string): Promise<void>;
  onStatus(listener: (status: VmStatus) => void): () => void;
}
