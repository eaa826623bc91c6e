import type { ApiClient } from '../../src/cli/client';
import { waitFor } from '../../src/util/wait';
import { testGuest } from './guest';

export interface VmView {
  id: string;
  name: string;
  state: string;
  reason?: string;
  tags?: string[];
  /** Something of the running VM is broken (its TPM emulator died). */
  warning?: string;
  powerState?: string;
  pid?: number;
  node: string;
  /** A live migration under way. */
  migration?: { taskId: string; source: string; target: string };
  disks: { id: string; volume: string; sizeBytes: number }[];
  snapshots: { name: string; vmState: string; quiesced?: boolean }[];
  agent?: { enabled: boolean; status: string; version?: string; flavour?: string };
}

/** A VM that boots the test guest's kernel directly (fastest under TCG). */
export function kernelVm(
  name: string,
  extra: Record<string, unknown> = {},
  variant: 'agent-rs' | 'qemu-ga' = 'agent-rs',
): Record<string, unknown> {
  const g = testGuest();
  const initrd = variant === 'qemu-ga' ? g.initrdQemuGa : g.initrd;
  return {
    name,
    vcpus: 1,
    memoryMiB: 256,
    disks: [{ sizeGiB: 1 }],
    networks: [{ network: 'default' }],
    boot: { kernel: g.vmlinux, initrd, cmdline: g.cmdline },
    ...extra,
  };
}

export function createVm(api: ApiClient, body: Record<string, unknown>): Promise<VmView> {
  return api.request<VmView>('POST', '/api/v1/vms', body);
}

export function vmAction(api: ApiClient, vm: string, action: string, query = ''): Promise<VmView> {
  return api.request<VmView>('POST', `/api/v1/vms/${vm}/${action}${query}`);
}

export function getVm(api: ApiClient, vm: string): Promise<VmView> {
  return api.request<VmView>('GET', `/api/v1/vms/${vm}`);
}

/** A task as the API shows it (the fields tests read). */
export interface TaskView {
  id: string;
  type: string;
  status: 'running' | 'ok' | 'error';
  progress: number;
  error?: { code: string; message: string };
  cancellable?: boolean;
  details?: Record<string, unknown> & { phase?: string; source?: string; target?: string; why?: string };
  result?: Record<string, unknown>;
}

/**
 * Waits for a task to end and returns it; on the deadline the error lists the newest tasks, so a test
 * report says where things stand.
 */
export async function waitTask(api: ApiClient, id: string, timeoutMs = 180_000): Promise<TaskView> {
  return waitFor(
    async () => {
      const t = await api.request<TaskView>('GET', `/api/v1/tasks/${id}`);
      return t.status === 'running' ? undefined : t;
    },
    { timeoutMs, intervalMs: 250, what: `task ${id} to end` },
  ).catch(async (err: Error) => {
    const all = await api.request<TaskView[]>('GET', '/api/v1/tasks?limit=8').catch(() => []);
    throw new Error(`${err.message}\n${all.map((x) => JSON.stringify(x)).join('\n')}`);
  });
}
