import type { CephService } from '../ceph/service';
import type { JoinService } from '../cluster/join';
import type { Leadership } from '../cluster/leadership';
import type { EtcdMembership } from '../cluster/membership';
import type { BackupJobs } from '../controller/backup-jobs';
import type { BackupService } from '../controller/backups';
import type { Drs } from '../controller/drs';
import type { GuestService } from '../controller/guest';
import type { HaService } from '../controller/ha/service';
import type { ImageService } from '../controller/images';
import type { ImportService } from '../controller/imports';
import type { Migrations } from '../controller/migration';
import type { NodeRegistry } from '../controller/node-registry';
import type { NodeRouter } from '../controller/node-router';
import type { PoolService } from '../controller/pools';
import type { TaskLog } from '../controller/tasks';
import type { VmActions } from '../controller/vm-actions';
import type { VmDevices } from '../controller/vm-devices';
import type { VmService } from '../controller/vms';
import type { RouterService } from '../network/routers';
import type { SecurityGroupService } from '../network/security';
import type { NetworkService } from '../network/service';
import type { Store } from '../store/store';
import type { ConsoleProxy } from './console';
import type { EventBus } from './events';
import type { SessionStore } from './sessions';

/** What route handlers may use; built once by `serve`. */
export interface ApiContext {
  version: string;
  store: Store;
  /** Every host as one NodeApi (VM calls go to the VM's host); `node.local` is this host. */
  node: NodeRouter;
  registry: NodeRegistry;
  leadership: Leadership;
  /** Absent in --dev (one host, no cluster PKI). */
  cluster?: {
    name: string;
    caPem: string;
    caFingerprint: string;
    join: JoinService;
    membership: EtcdMembership;
  };
  vms: VmService;
  actions: VmActions;
  migrations: Migrations;
  drs: Drs;
  ha: HaService;
  images: ImageService;
  imports: ImportService;
  backups: BackupService;
  networks: NetworkService;
  routers: RouterService;
  securityGroups: SecurityGroupService;
  backupJobs: BackupJobs;
  pools: PoolService;
  ceph: CephService;
  guest: GuestService;
  /** Adds and removes disks and NICs (hot-plugged while the VM runs). */
  devices: VmDevices;
  console: ConsoleProxy;
  sessions: SessionStore;
  events: EventBus;
  tasks: TaskLog;
  /** SHA-256 of the admin token; the token itself is only in DATA_DIR/admin.token. */
  adminTokenHash: Buffer;
  maxUploadBytes: number;
  metricsIntervalSec: number;
}

export type Env = { Variables: { user: string } };
