import type { GuestService } from '../controller/guest';
import type { ImageService } from '../controller/images';
import type { TaskLog } from '../controller/tasks';
import type { VmActions } from '../controller/vm-actions';
import type { VmService } from '../controller/vms';
import type { NodeApi } from '../node/types';
import type { Store } from '../store/store';
import type { ConsoleProxy } from './console';
import type { EventBus } from './events';
import type { SessionStore } from './sessions';

/** What route handlers may use; built once by `serve`. */
export interface ApiContext {
  version: string;
  store: Store;
  node: NodeApi;
  vms: VmService;
  actions: VmActions;
  images: ImageService;
  guest: GuestService;
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
