import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createApp } from './api/app';
import { hashToken } from './api/auth';
import { ConsoleProxy } from './api/console';
import type { ApiContext } from './api/context';
import { EventBus, type LiveEvent } from './api/events';
import { SessionStore } from './api/sessions';
import { GuestService } from './controller/guest';
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
import { HostPaths } from './util/host-paths';
import { createLogger } from './util/log';
import { isLoopback } from './util/net';
import { pidAlive, procCmdline, readPidfile } from './util/proc';
import { VERSION } from './version';
import { QemuDriver } from './vmm/qemu/driver';
import { chooseAcceleratorCached, qemuBinary, qemuVersion } from './vmm/qemu/host';

const log = createLogger('serve');

export interface ServeOptions {
  dataDir: string;
  host: string;
  port: number;
  dev: boolean;
  /** Host directories whose files the API may attach to VMs or import (default DATA_DIR/import). */
  hostPaths?: string[];
  /** The root user's password for browser logins; generated into DATA_DIR/root.password if absent. */
  rootPassword?: string;
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

/** Reads a secret file, creating it (mode 0600) with a generated value on first start. */
async function ensureSecretFile(path: string, generate: () => string): Promise<string> {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const value = generate();
  await writeFileAtomic(path, `${value}\n`, 0o600);
  return value;
}

/** Reads DATA_DIR/admin.token, creating it (mode 0600) on first start. */
export async function ensureAdminToken(dataDir: string): Promise<{ token: string; path: string }> {
  const path = join(dataDir, 'admin.token');
  return { token: await ensureSecretFile(path, () => `nf_${randomBytes(32).toString('base64url')}`), path };
}

export async function serve(opts: ServeOptions): Promise<Daemon> {
  if (!isLoopback(opts.host)) {
    if (!opts.dev) {
      throw new NfError(
        'validation_failed',
        `refusing to listen on ${opts.host} without TLS; use a loopback address, or --dev for a lab`,
      );
    }
    log.warn(
      'listening on a non-loopback address over plain HTTP (--dev): the API token travels in clear text',
      { host: opts.host },
    );
  }
  // Files we make (and QEMU's console logs) are for root only unless we say otherwise.
  process.umask(0o077);
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  await claimDataDir(dataDir);
  const { path: tokenPath, token } = await ensureAdminToken(dataDir);
  const rootPassword =
    opts.rootPassword ??
    (await ensureSecretFile(join(dataDir, 'root.password'), () => randomBytes(12).toString('base64url')));

  // Bind the port first: if it is taken, fail before touching etcd or any VM. Until the daemon is ready
  // every request gets 503.
  let handler: ((req: Request) => Response | Promise<Response>) | undefined;
  const consoleProxy = new ConsoleProxy(join(dataDir, 'node', 'vms'));
  const server = Bun.serve({
    hostname: opts.host,
    port: opts.port,
    fetch: (req, srv) => {
      if (!handler)
        return Response.json(
          new NfError('unavailable', 'NeuroFlow is starting; retry in a moment').toBody(),
          { status: 503 },
        );
      const upgraded = consoleProxy.upgrade(req, srv);
      if (upgraded === 'upgraded') return undefined;
      return upgraded ?? handler(req);
    },
    websocket: consoleProxy.websocket,
    maxRequestBodySize: 64 * 1024 ** 3,
    idleTimeout: 0, // stops and uploads may take minutes
  });

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
  node.metrics.start();

  await ensureDefaultNetwork(store);
  const importDir = join(dataDir, 'import');
  mkdirSync(importDir, { recursive: true, mode: 0o700 });
  const hostPaths = new HostPaths([importDir, ...(opts.hostPaths ?? [])]);
  log.info('host paths the API may use', { allowed: hostPaths.allowed });
  const images = new ImageService(store, pools, hostPaths);
  // The VM service needs the reconciler and the reconciler needs the VM service's runSpec: late-bind it.
  let vms!: VmService;
  const reconciler = new Reconciler(store, node, (vm) => vms.runSpec(vm));
  vms = new VmService(store, node, nodeName, pools, images, reconciler, hostPaths);
  const actions = new VmActions(vms);
  const events = new EventBus();
  const tasks = new TaskLog(store, (t) =>
    events.publish({
      type: 'task',
      id: t.id,
      taskType: t.type,
      target: t.target,
      status: t.status,
      progress: t.progress,
      ...(t.error ? { error: t.error.message } : {}),
    }),
  );
  node.onStatus((s) => {
    const e: LiveEvent = { type: 'vm', id: s.id, state: s.state };
    if (s.reason) e.reason = s.reason;
    if (s.agent) e.agent = s.agent.status;
    events.publish(e);
  });
  await registerDemoImages(images, opts.demoImages ?? []);
  await reportOrphans(store, pool, join(dataDir, 'node', 'vms'));
  await reconciler.start();

  const ctx: ApiContext = {
    version: VERSION,
    store,
    node,
    vms,
    actions,
    images,
    guest: new GuestService(vms, node),
    console: consoleProxy,
    sessions: new SessionStore(rootPassword),
    events,
    tasks,
    adminTokenHash: hashToken(token),
    maxUploadBytes: 64 * 1024 ** 3,
    metricsIntervalSec: node.metrics.intervalMs / 1000,
  };
  handler = createApp(ctx).fetch;
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
      rmSync(join(dataDir, 'serve.pid'), { force: true });
    },
  };
}

/**
 * One daemon per data dir: a second one would fight the first over QEMU monitors and etcd and could
 * stop every VM. The pidfile names the owner; a dead owner's file is taken over.
 */
async function claimDataDir(dataDir: string): Promise<void> {
  const file = join(dataDir, 'serve.pid');
  const owner = readPidfile(file);
  if (
    owner &&
    owner !== process.pid &&
    pidAlive(owner) &&
    (procCmdline(owner) ?? []).some((a) => a === 'serve')
  ) {
    throw new NfError(
      'invalid_state',
      `another neuroflow serve (pid ${owner}) already uses ${dataDir}; stop it first`,
    );
  }
  await writeFileAtomic(file, `${process.pid}\n`, 0o600);
}

/**
 * Files no record refers to (left by a crash between steps) are reported, never deleted on their own:
 * after an etcd restore from backup they may be the only copy of a disk.
 */
async function reportOrphans(store: Store, pool: DirPool, runRoot: string): Promise<void> {
  try {
    const vmIds = new Set((await store.list<{ id: string }>(keys.vms)).map((v) => v.value.id));
    const imageFiles = new Set((await store.list<{ file: string }>(keys.images)).map((i) => i.value.file));
    const disks = readdirSync(pool.disksDir).filter((f) => {
      const m = /^vm-([0-9a-f-]{36})-disk\d+\.qcow2$/.exec(f);
      return !m || !vmIds.has(m[1]!);
    });
    const images = readdirSync(pool.imagesDir).filter((f) => !imageFiles.has(f));
    const runDirs = existsSync(runRoot) ? readdirSync(runRoot).filter((id) => !vmIds.has(id)) : [];
    if (disks.length + images.length + runDirs.length > 0) {
      log.warn('files that no VM or image refers to (left as they are; remove them by hand if unneeded)', {
        disks,
        images,
        runDirs,
      });
    }
  } catch (err) {
    log.warn('cannot check for orphan files', { err: (err as Error).message });
  }
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
      await images.importFile({ name: d.name, path: d.path, source: `demo: ${d.path}`, trusted: true });
      log.info('registered demo image', { name: d.name });
    } catch (err) {
      if (!NfError.isCode(err, 'already_exists'))
        log.warn('cannot register demo image', { name: d.name, err });
    }
  }
}
