/** What the controller keeps in etcd. Keys live under one versioned prefix. */

export const PREFIX = '/neuroflow/v1/';
export const keys = {
  vm: (id: string) => `${PREFIX}vms/${id}`,
  vms: `${PREFIX}vms/`,
  vmName: (name: string) => `${PREFIX}names/vms/${name}`,
  image: (id: string) => `${PREFIX}images/${id}`,
  images: `${PREFIX}images/`,
  imageName: (name: string) => `${PREFIX}names/images/${name}`,
  task: (id: string) => `${PREFIX}tasks/${id}`,
  tasks: `${PREFIX}tasks/`,
  network: (name: string) => `${PREFIX}networks/${name}`,
  networks: `${PREFIX}networks/`,
};

export type PowerState = 'running' | 'stopped' | 'paused';

export interface DiskRecord {
  id: string;
  pool: string;
  volume: string;
  sizeBytes: number;
  /** The image this disk was cloned from (its backing file); the image cannot be deleted meanwhile. */
  image?: string;
}

export interface NicRecord {
  id: string;
  network: string;
  mac: string;
}

export type BootRecord =
  | { kernel: string; initrd?: string; cmdline?: string }
  | { cdrom: { image: string } | { path: string } }
  | { disk: number };

export interface SnapshotRecord {
  name: string;
  description?: string;
  createdAt: string;
  vmState: PowerState;
  /** File systems were frozen by the guest agent while it was taken. */
  quiesced?: boolean;
}

export interface VmRecord {
  id: string;
  name: string;
  node: string;
  vcpus: number;
  memoryMiB: number;
  machine: 'q35' | 'pc';
  description?: string;
  disks: DiskRecord[];
  networks: NicRecord[];
  boot: BootRecord;
  /** The guest agent channel (absent in records from before it existed: on). */
  agent?: boolean;
  snapshots: SnapshotRecord[];
  /** Desired power state; the reconciler makes the node match it. */
  power: PowerState;
  /** Bumped on every change of `power`, so a failed attempt is tied to the request that caused it. */
  generation: number;
  /** The generation at which the node last reached `power: running`; a later stop of the guest is its own. */
  runningGeneration?: number;
  /** Why the last start failed or the VM died; shown as state `error` until the next start or stop. */
  lastError?: { message: string; at: string };
  createdAt: string;
  updatedAt: string;
}

export interface ImageRecord {
  id: string;
  name: string;
  kind: 'iso' | 'disk';
  format: 'iso' | 'qcow2' | 'raw';
  pool: string;
  file: string;
  sizeBytes: number;
  virtualSizeBytes: number;
  sha256: string;
  createdAt: string;
  source?: string;
}

export interface NetworkRecord {
  name: string;
  type: 'nat';
}

export interface TaskRecord {
  id: string;
  type: string;
  target: string;
  user: string;
  status: 'running' | 'ok' | 'error';
  progress: number;
  error?: { code: string; message: string };
  startedAt: string;
  endedAt?: string;
}
