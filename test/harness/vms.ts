import type { ApiClient } from '../../src/cli/client';
import { testGuest } from './guest';

export interface VmView {
  id: string;
  name: string;
  state: string;
  reason?: string;
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
