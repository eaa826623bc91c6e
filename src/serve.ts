import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createApp } from './api/app';
import { hashToken } from './api/auth';
import type { ApiContext } from './api/context';
import { ImageService } from './controller/images';
import { Reconciler } from './controller/reconciler';
import { keys, type NetworkRecord } from './controller/records';
import { TaskLog } from './controller/tasks';
import { VmActions } from './controller/vm-actions';
import { VmService } from './controller/vms';
import { NfError } from './errors';
import { defaultNodeName, Node } from './node/node';
import { DirPool } from './storage/dir-pool';
import { EmbeddedEtcd } from './store/etcd-server';
import { EtcdStore, type Store } from './store/store';
import { writeFileAtomic } from './util/fs';
import { createLogger } from './util/log';
import { isLoopback } from './util/net';
import { VERSION } from './version';
import { QemuDriver } from './vmm/qemu/driver';
import { chooseAcceleratorCached, qemuBinary, qemuVersion } from './vmm/qemu/host';

const log = createLogger('serve');

export interface ServeOptions {
  dataDir: string;
  host: string;
  port: number;
  dev: boolean;
  /** Image files to register at first start so a newcomer can boot a VM at once. */
  demoImages?: { name: string; path: string }[];
}

export interface Daemon {
  url: string;
  dataDir: string;
  tokenPath: string;
  /** Graceful stop: the API and etcd stop, guests keep running. */
  stop(): Promise<void>;
}

/** Reads DATA_DIR/admin.token, creating it (mode 0600) on first start. */
export async function ensureAdminToken(dataDir: string): Promise<{ token: string; path: string }> {
  const path = join(dataDir, 'admin.token');
  if (existsSync(path)) return { token: readFileSync(path, 'utf8').trim(), path };
  const token = `nf_${randomBytes(32).toString('base64url')}`;
  await writeFileAtomic(path, `${token}\n`, 0o600);
  return { token, path };
}

export async function serve(opts: ServeOptions): Promise<Daemon> {
  if (!opts.dev) {
    if (!isLoopback(opts.host)) {
      throw new NfError(
        'validation_failed',
        `refusing to listen on ${opts.host} without TLS; use a loopback address, or --dev for a lab`,
      );
    }
  }
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { path: tokenPath, token } = await ensureAdminToken(dataDir);

  const etcd = new EmbeddedEtcd(dataDir);
  await etcd.start();
  const store = new EtcdStore(etcd.endpoint);

  const binary = qemuBinary();
  const version = qemuVersion(binary);
  if (!version)
    throw new NfError('unavailable', `${binary} not found; install qemu-system-x86 (scripts/setup.sh)`);
  const accel = await chooseAcceleratorCached(join(dataDir, 'node', 'accel.json'), binary);
  log.info('accelerator chosen', { ...accel });

  const pool = new DirPool('local', join(dataDir, 'pools', 'local'));
  pool.init();
  const pools = new Map([[pool.name, pool]]);
  const nodeName = defaultNodeName();
  const node = new Node(
    nodeName,
    join(dataDir, 'node', 'vms'),
    new QemuDriver({ binary, accel: accel.accel }),
    pools,
    accel,
    version,
  );
  await node.recover();

  await ensureDefaultNetwork(store);
  const images = new ImageService(store, pools);
  // The VM service needs the reconciler and the reconciler needs the VM service's runSpec: late-bind it.
  let vms!: VmService;
  const reconciler = new Reconciler(store, node, (vm) => vms.runSpec(vm));
  vms = new VmService(store, node, nodeName, pools, images, reconciler);
  const actions = new VmActions(vms);
  const tasks = new TaskLog(store);
  await registerDemoImages(images, opts.demoImages ?? []);
  await reconciler.start();

  const ctx: ApiContext = {
    version: VERSION,
    store,
    node,
    vms,
    actions,
    images,
    tasks,
    adminTokenHash: hashToken(token),
    maxUploadBytes: 64 * 1024 ** 3,
  };
  const app = createApp(ctx);
  const server = Bun.serve({
    hostname: opts.host,
    port: opts.port,
    fetch: app.fetch,
    maxRequestBodySize: ctx.maxUploadBytes,
    idleTimeout: 0, // stops and uploads may take minutes
  });
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${server.port}`;
  await writeFileAtomic(join(dataDir, 'api.url'), `${url}\n`, 0o644);
  log.info('NeuroFlow is serving', { url, dataDir, node: nodeName });

  return {
    url,
    dataDir,
    tokenPath,
    async stop() {
      await server.stop(true);
      await reconciler.stop();
      node.detachAll();
      store.close();
      await etcd.stop();
    },
  };
}

async function ensureDefaultNetwork(store: Store): Promise<void> {
  const net: NetworkRecord = { name: 'default', type: 'nat' };
  try {
    await store.txn({
      when: [{ key: keys.network('default'), absent: true }],
      put: [{ key: keys.network('default'), value: net }],
    });
  } catch (err) {
    if (!NfError.isCode(err, 'conflict')) throw err;
  }
}

async function registerDemoImages(
  images: ImageService,
  demo: { name: string; path: string }[],
): Promise<void> {
  for (const d of demo) {
    if (!existsSync(d.path)) continue;
    try {
      await images.importFile({ name: d.name, path: d.path, source: `demo: ${d.path}` });
      log.info('registered demo image', { name: d.name });
    } catch (err) {
      if (!NfError.isCode(err, 'already_exists'))
        log.warn('cannot register demo image', { name: d.name, err });
    }
  }
}
