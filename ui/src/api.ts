export type VmState = 'stopped' | 'starting' | 'running' | 'stopping' | 'paused' | 'error';

export interface Vm {
  id: string;
  name: string;
  state: VmState;
  reason?: string;
  node: string;
  vcpus: number;
  memoryMiB: number;
  disks: { id: string; pool: string; volume: string; sizeBytes: number; image?: string }[];
  networks: { id: string; network: string; mac: string }[];
  snapshots: { name: string; vmState: string; createdAt?: string; quiesced?: boolean }[];
  agent: { enabled: boolean; status: string; version?: string; flavour?: string };
  boot: Record<string, unknown>;
  startedAt?: string;
}

export interface Task {
  id: string;
  type: string;
  target: string;
  user?: string;
  status: 'running' | 'ok' | 'error';
  progress: number;
  error?: { code: string; message: string };
  startedAt?: string;
  endedAt?: string;
}

export interface HostNode {
  name: string;
  state: string;
  cpus: number;
  cpuModel: string;
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
  accelerator: string;
  acceleratorReason: string;
  qemuVersion: string;
  uptimeSec: number;
  loadAvg: number[];
  vms: { total: number; running: number };
  allocatedMemoryMiB: number;
}

export interface Image {
  id: string;
  name: string;
  kind: 'iso' | 'disk';
  sizeBytes: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let onUnauthenticated: () => void = () => {};
/** The store logs the UI out when a session expires (any 401 outside /auth/login). */
export function setUnauthenticatedHandler(fn: () => void): void {
  onUnauthenticated = fn;
}

/** Calls the REST API with the session cookie; throws ApiError carrying the API's message. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`/api/v1${path}`, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) {
    let code = 'error';
    let message = `${res.status} ${res.statusText}`;
    try {
      const e = JSON.parse(text).error;
      code = e.code;
      message = e.message;
    } catch {}
    if (res.status === 401 && path !== '/auth/login' && path !== '/auth/whoami') onUnauthenticated();
    throw new ApiError(res.status, code, message);
  }
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? JSON.parse(text) : text) as T;
}

export { bytes as fmtBytes } from '../../src/util/format';
