import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { createApp } from './api/app';
import { hashToken, isAuthenticated, withClientAddress } from './api/auth';
import { ConsoleProxy, StoredTickets } from './api/console';
import type { ApiContext } from './api/context';
import { EventBus, type LiveEvent } from './api/events';
import { EtcdSessions, hashPassword, type PasswordHash, SessionStore } from './api/sessions';
import { CephHost } from './ceph/host';
import { CephService } from './ceph/service';
import {
  type ClusterConfig,
  foundCluster,
  joinWithToken,
  pkiDir,
  readClusterConfig,
  readPki,
} from './cluster/config';
import { ControllerMembers, controllersFile, initialControllers } from './cluster/controller-members';
import * as pb from './cluster/gen/neuroflow/v1/node';
import { controlHandlers, HeartbeatClient } from './cluster/grpc/control';
import { nodeInfoFromPb, nodeInfoToPb } from './cluster/grpc/convert';
import { controllersOnly, nodeServiceHandlers, serveNode } from './cluster/grpc/node-server';
import { RemoteNode } from './cluster/grpc/remote-node';
import { type GrpcServerHandle, startGrpcServer } from './cluster/grpc/server';
import { fromOwnAddress, type PeerIdentity } from './cluster/grpc/tls';
import { JoinService } from './cluster/join';
import { EtcdHealthLeases, EtcdLeadership, type Leadership, SoleLeader } from './cluster/leadership';
import { EtcdMembership } from './cluster/membership';
import { CONTROLLER_SAN, fingerprint, type HostPkiFiles } from './cluster/pki';
import { Admission } from './controller/admission';
import { BackupJobs } from './controller/backup-jobs';
import { BackupService } from './controller/backups';
import { Drs } from './controller/drs';
import { GuestService } from './controller/guest';
import { HaService } from './controller/ha/service';
import { ImageService } from './controller/images';
import { ImportService } from './controller/imports';
import { Migrations } from './controller/migration';
import { NodeRegistry } from './controller/node-registry';
import { NodeRouter } from './controller/node-router';
import { Placement } from './controller/placement';
import { PoolService } from './controller/pools';
import { Reconciler } from './controller/reconciler';
import { type ClusterRecord, keys, type NetworkRecord, type NodeRecord } from './controller/records';
import { TaskLog } from './controller/tasks';
import { VmActions } from './controller/vm-actions';
import { VmDevices } from './controller/vm-devices';
import { restoredRecord, VmService } from './controller/vms';
import { NfError } from './errors';
import { NatNetwork } from './network/nat';
import { OvnHost } from './network/ovn/host';
import { RouterService } from './network/routers';
import { SecurityGroupService } from './network/security';
import { NetworkService } from './network/service';
import { defaultNodeName, Node } from './node/node';
import { SelfFence } from './node/self-fence';
import type { NodeInfo } from './node/types';
import { WatchdogFeeder } from './node/watchdog';
import { DirPool } from './storage/dir-pool';
import { EmbeddedEtcd, memberUrls } from './store/etcd-server';
import { EtcdStore, type Store } from './store/store';
import { writeFileAtomic } from './util/fs';
import { HostPaths } from './util/host-paths';
import { createLogger } from './util/log';
import { addressIn, isLoopback } from './util/net';
import { pidAlive, procCmdline, readPidfile } from './util/proc';
import { waitFor } from './util/wait';
import { VERSION } from './version';
import { QemuDriver } from './vmm/qemu/driver';
import { chooseAcceleratorCached, qemuBinary, qemuVersion } from './vmm/qemu/host';

const log = createLogger('serve');

export interface ServeOptions {
  dataDir: string;
  host: string;
  port: number;
  /** One host, plain HTTP on loopback, no cluster PKI: a laptop or CI. */
  dev: boolean;
  /** Host directories whose files the API may attach to VMs or import (default DATA_DIR/import). */
  hostPaths?: string[];
  /** The root user's password for browser logins; generated into DATA_DIR/root.password if absent. */
  rootPassword?: string;
  /** The root password as its scrypt hash (the appliance keeps no plain password). */
  rootPasswordHash?: PasswordHash;
  /** Image files to register at first start so a newcomer can boot a VM at once. */
  demoImages?: { name: string; path: string }[];
  /** Join an existing cluster with this token (first start only). */
  join?: string;
  /** This host's name in the cluster (default: the system host name). */
  name?: string;
  /** The management IP other hosts dial (default: the listen address). */
  advertise?: string;
  clusterName?: string;
  grpcPort?: number;
  etcdClientPort?: number;
  etcdPeerPort?: number;
  /** Live migrations reach this host on its address in this CIDR block (default: the management address). */
  migrationNetwork?: string;
  /** A watchdog device to feed (WatchdogFeeder): a hung daemon resets the host. */
  watchdog?: string;
  /** Geneve tunnels of overlay networks go out of this interface (default: the management address). */
  overlayInterface?: string;
  /** Physical networks for provider networks: name → interface (src/network/ovn/host.ts). */
  providerNetworks?: Record<string, string>;
}

export interface Daemon {
  url: string;
  dataDir: string;
  /** DATA_DIR/admin.token where this host holds the admin token ('' on hosts that joined). */
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

const WILDCARD = new Set(['0.0.0.0', '::', '']);
const HOST_NAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export async function serve(opts: ServeOptions): Promise<Daemon> {
  if (opts.dev && opts.join)
    throw new NfError('validation_failed', '--dev runs one host alone; drop it to --join a cluster');
  if (opts.dev && !isLoopback(opts.host)) {
    log.warn(
      'listening on a non-loopback address over plain HTTP (--dev): the API token travels in clear text',
      { host: opts.host },
    );
  }
  const address = opts.advertise ?? opts.host;
  if (!opts.dev && (WILDCARD.has(address) || !isIP(address)))
    throw new NfError(
      'validation_failed',
      `a cluster host needs its management IP: --listen IP:PORT or --advertise IP (got "${address}")`,
    );
  const name = opts.name ?? defaultNodeName();
  if (!opts.dev && !HOST_NAME.test(name))
    throw new NfError(
      'validation_failed',
      `"${name}" cannot be a cluster host name (lowercase letters, digits, - and .); pass --name`,
    );
  // Files we make (and QEMU's console logs) are for root only unless we say otherwise.
  process.umask(0o077);
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (opts.watchdog && !existsSync(opts.watchdog))
    throw new NfError('validation_failed', `--watchdog ${opts.watchdog}: no such device`);
  await claimDataDir(dataDir);

  // Cluster membership: found a cluster on first start, join one with a token, or carry on as before.
  let cfg = readClusterConfig(dataDir);
  if (opts.dev && cfg)
    throw new NfError(
      'invalid_state',
      `${dataDir} belongs to cluster "${cfg.clusterName}" as host ${cfg.name}; start it without --dev`,
    );
  if (opts.join && cfg)
    throw new NfError(
      'invalid_state',
      `${dataDir} already belongs to cluster "${cfg.clusterName}" as host ${cfg.name}; start without --join`,
    );
  const ports = {
    apiPort: opts.port,
    grpcPort: opts.grpcPort ?? 8007,
    etcdClientPort: opts.etcdClientPort ?? 2379,
    etcdPeerPort: opts.etcdPeerPort ?? 2380,
  };
  if (!opts.dev && !cfg && existsSync(join(dataDir, 'etcd', 'member-data')))
    throw new NfError(
      'invalid_state',
      `${dataDir} holds a single-host (--dev) setup; start it with --dev (turning it into a cluster host is not supported yet)`,
    );
  if (!opts.dev && !cfg) {
    if (opts.join) {
      log.info('joining a cluster', { name, address });
      cfg = (await joinWithToken(dataDir, opts.join, { name, address, ...ports })).cfg;
      log.info('joined', { cluster: cfg.clusterName, role: cfg.role });
    } else {
      cfg = await foundCluster(dataDir, {
        clusterName: opts.clusterName ?? `${name}-cluster`,
        name,
        address,
        ...ports,
      });
      log.info('created a new cluster', { cluster: cfg.clusterName, name });
    }
  }
  const pki = cfg ? await readPki(dataDir) : undefined;
  const tlsPems = pki ? { caPem: pki.caPem, certPem: pki.certPem, keyPem: pki.keyPem } : undefined;
  const nodeName = cfg?.name ?? name;

  // The admin token and root password live on the host that made them; joined hosts use the cluster's.
  const local = !cfg || cfg.founder;
  const admin = local ? await ensureAdminToken(dataDir) : undefined;
  const rootPassword: string | PasswordHash | undefined = local
    ? (opts.rootPasswordHash ??
      opts.rootPassword ??
      (await ensureSecretFile(join(dataDir, 'root.password'), () => randomBytes(12).toString('base64url'))))
    : undefined;

  // Bind the port first: if it is taken, fail before touching etcd or any VM. Until the daemon is ready
  // every request gets 503.
  let handler: ((req: Request) => Response | Promise<Response>) | undefined;
  /** Set once the API exists: does a request carry a valid token or session? */
  let trusted: ((req: Request) => boolean) | undefined;
  // The router exists once the node does; the proxy only needs it for upgrades after startup.
  let routerRef: NodeRouter | undefined;
  let vmsRef: VmService | undefined;
  const consoleProxy = new ConsoleProxy(
    (id) => (routerRef ? routerRef.openConsole(id) : Promise.reject(new NfError('unavailable', 'starting'))),
    // the VM's record tells the router where it runs (this controller may not have looked it up yet:
    // the ticket may come from another controller)
    async (id) => {
      await vmsRef?.find(id).catch(() => undefined);
      return routerRef?.vmStatus(id).state === 'running';
    },
  );
  const server = Bun.serve({
    hostname: opts.host,
    port: opts.port,
    ...(pki ? { tls: { cert: pki.certPem, key: pki.keyPem } } : {}),
    fetch: (req, srv) => {
      // An authenticated client may wait on a long call (a stop, an import, the event stream); a join
      // waits on etcd; anyone else gets the idle timeout (no slow headers or bodies held open for ever).
      if (trusted?.(req)) srv.timeout(req, 0);
      else if (req.method === 'POST' && new URL(req.url).pathname === '/api/v1/cluster/join')
        srv.timeout(req, 255);
      if (!handler)
        return Response.json(
          new NfError('unavailable', 'NeuroFlow is starting; retry in a moment').toBody(),
          { status: 503 },
        );
      const upgrading = consoleProxy.upgrade(req, srv);
      if (upgrading) return upgrading.then((r) => (r === 'upgraded' ? undefined : r));
      return handler(withClientAddress(req, srv.requestIP(req)?.address));
    },
    websocket: consoleProxy.websocket,
    // Image uploads (authenticated) may be large; JSON bodies are limited to 1 MiB by the API (limitBodies).
    maxRequestBodySize: 64 * 1024 ** 3,
    idleTimeout: httpIdleTimeoutSec(),
  });
  const scheme = pki ? 'https' : 'http';
  const urlHost = cfg ? cfg.address : opts.host;
  const url = `${scheme}://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${server.port}`;

  // The node role: every host runs VMs.
  const binary = qemuBinary();
  const version = qemuVersion(binary);
  if (!version)
    throw new NfError('unavailable', `${binary} not found; install qemu-system-x86 (scripts/setup.sh)`);
  const accel = await chooseAcceleratorCached(join(dataDir, 'node', 'accel.json'), binary);
  log.info('accelerator chosen', { ...accel });
  const pool = new DirPool('local', join(dataDir, 'pools', 'local'));
  pool.init();
  const pools = new Map([[pool.name, pool]]);
  const importDir = join(dataDir, 'import');
  mkdirSync(importDir, { recursive: true, mode: 0o700 });
  const hostPaths = new HostPaths([importDir, ...(opts.hostPaths ?? [])]);
  log.info('host paths the API may use', { allowed: hostPaths.allowed });
  // The nat network: installed now so that a problem shows at start; re-checked before every VM start.
  const nat = new NatNetwork();
  // OVN and Open vSwitch: started once an overlay network exists (src/network/ovn/host.ts)
  const ovn = new OvnHost(dataDir, {
    chassis: nodeName,
    // a cluster host's databases and clients speak SSL with its cluster certificate
    ...(cfg
      ? {
          tls: {
            key: join(pkiDir(dataDir), 'host.key'),
            cert: join(pkiDir(dataDir), 'host.crt'),
            ca: join(pkiDir(dataDir), 'ca.crt'),
          },
        }
      : {}),
    address:
      isIP(cfg?.address ?? address) && !WILDCARD.has(cfg?.address ?? address)
        ? (cfg?.address ?? address)
        : '127.0.0.1',
    // Geneve over a network of its own (NEUROFLOW_OVERLAY_INTERFACE=eth1), else the management one
    ...(opts.overlayInterface ? { underlay: opts.overlayInterface } : {}),
    ...(opts.providerNetworks ? { providers: opts.providerNetworks } : {}),
  });
  await nat.ensureFirewall().catch((err) =>
    log.error('the nat network is unavailable: VMs with a NIC will not start', {
      err: (err as Error).message,
    }),
  );
  const node = new Node(
    nodeName,
    join(dataDir, 'node', 'vms'),
    new QemuDriver({ binary, accel: accel.accel, nat, ovn }),
    pools,
    accel,
    version,
    hostPaths,
    // Integrated Ceph: this host's daemons (mons, managers, OSDs), supervised like etcd on every role.
    new CephHost(dataDir, nodeName, cfg?.address ?? opts.host, hostPaths),
    // Live migration: received on the management address (or in the migration network), TLS with this
    // host's cluster certificate.
    cfg && tlsPems ? { ...migrationAddress(cfg.address, opts.migrationNetwork), tls: tlsPems } : undefined,
  );
  await node.recover();
  node.metrics.start();
  await node.ceph
    .start()
    .catch((err) => log.error('cannot start the Ceph daemons', { err: (err as Error).message }));

  const cleanup: (() => Promise<void> | void)[] = [];
  let grpc: GrpcServerHandle | undefined;
  let heartbeat: HeartbeatClient | undefined;
  let members: ControllerMembers | undefined;
  let recheckNodeCallers: () => number = () => 0;
  if (cfg && tlsPems) {
    const report = async () => ({
      node: nodeName,
      info: nodeInfoToPb(await node.info()),
      vms: [],
      grpcAddress: hostPortText(cfg!.address, cfg!.grpcPort),
    });
    // gRPC checks each controller's certificate by its host name (TLS cannot send an IP as server name).
    const names = new Map(cfg.controllers.flatMap((c) => (c.grpc ? [[c.grpc, c.name] as const] : [])));
    if (cfg.role === 'controller') names.set(hostPortText(cfg.address, cfg.grpcPort), nodeName);
    heartbeat = new HeartbeatClient({
      controllers: [...names.keys()],
      tls: tlsPems,
      report,
      serverName: (addr) => names.get(addr) ?? addr,
    });
    cleanup.push(() => heartbeat?.stop());
    // Only controllers that are members now may drive this host: the leader's list, from the heartbeat.
    // HA: the host isolates its HA VMs when no report was acknowledged for the leader's window.
    const fence = new SelfFence(node, undefined, (msg, fields) => log.warn(msg, fields));
    node.selfFence = fence;
    heartbeat.onAck((sentAt, windowMs) => fence.contact(sentAt, windowMs));
    fence.start();
    cleanup.push(() => fence.stop());
    members = new ControllerMembers(initialControllers(dataDir, cfg), controllersFile(dataDir));
    heartbeat.onControllers((list, meta) => {
      if (!members?.update(list, meta)) return;
      // Streams opened before (status, console) are checked again: a removed controller loses them too.
      const ended = recheckNodeCallers();
      if (ended) log.warn('ended the streams of controllers that are no longer members', { streams: ended });
    });
  }
  const nodeCallers = (p: PeerIdentity): boolean =>
    controllersOnly(p) && fromOwnAddress(p) && (members?.check(p) ?? true);

  if (cfg?.role === 'worker') {
    // A worker runs VMs for the controllers; its API port only says where to go.
    const nodeService = await serveNode(node, {
      host: opts.host,
      port: cfg.grpcPort,
      tls: tlsPems!,
      vmIds: () => node.knownVmIds(),
      authorize: nodeCallers,
    });
    recheckNodeCallers = () => nodeService.recheck();
    heartbeat!.start();
    const apis = cfg.controllers.flatMap((c) => (c.api ? [`https://${c.api}`] : []));
    handler = () =>
      Response.json(
        new NfError(
          'invalid_state',
          `host ${nodeName} is a worker of cluster "${cfg!.clusterName}"; manage it through a controller: ${apis.join(', ')}`,
        ).toBody(),
        { status: 409 },
      );
    await writeFileAtomic(join(dataDir, 'api.url'), `${url}\n`, 0o644);
    const watchdog = startWatchdog(opts.watchdog, node);
    log.info('NeuroFlow worker is serving', { node: nodeName, grpcPort: nodeService.port });
    return {
      url,
      dataDir,
      tokenPath: '',
      async stop() {
        watchdog?.stop();
        heartbeat?.stop();
        await nodeService.stop();
        await server.stop(true);
        node.detachAll();
        rmSync(join(dataDir, 'serve.pid'), { force: true });
      },
    };
  }

  // The controller role: etcd member, API, and (when elected) scheduler and reconciler.
  const etcd = cfg
    ? new EmbeddedEtcd(dataDir, {
        name: nodeName,
        host: cfg.address,
        clientPort: cfg.etcdClientPort,
        peerPort: cfg.etcdPeerPort,
        initialCluster: cfg.etcd!.initialCluster,
        state: cfg.etcd!.state,
        tls: {
          ca: join(pkiDir(dataDir), 'ca.crt'),
          cert: join(pkiDir(dataDir), 'host.crt'),
          key: join(pkiDir(dataDir), 'host.key'),
        },
      })
    : new EmbeddedEtcd(dataDir);
  await etcd.start();
  const etcdTls = tlsPems
    ? {
        credentials: {
          rootCertificate: Buffer.from(tlsPems.caPem),
          privateKey: Buffer.from(tlsPems.keyPem),
          certChain: Buffer.from(tlsPems.certPem),
        },
        grpcOptions: { 'grpc.ssl_target_name_override': CONTROLLER_SAN },
      }
    : {};
  if (cfg?.etcd?.peerClientUrls?.length) {
    // A member that just joined is a learner and serves no reads: wait until the leader promotes it.
    await waitPromoted(cfg.etcd.peerClientUrls, etcd.endpoint, etcdTls);
  }
  const store = new EtcdStore(
    cfg?.etcd?.peerClientUrls?.length ? [etcd.endpoint, ...cfg.etcd.peerClientUrls] : etcd.endpoint,
    etcdTls,
  );

  let cluster: ClusterRecord | undefined;
  if (cfg) {
    cluster = await ensureClusterRecord(store, cfg, pki!, admin?.token, rootPassword);
  }
  const leadership: Leadership = cfg ? new EtcdLeadership(store.client, nodeName) : new SoleLeader(nodeName);
  const registry = new NodeRegistry(store, () => leadership.leaderName());
  await registry.upsert(nodeName, (cur) => {
    const rec: NodeRecord = cur ?? {
      name: nodeName,
      role: 'controller',
      addresses: cfg ? [cfg.address] : [opts.host],
      maintenance: false,
      joinedAt: new Date().toISOString(),
    };
    const want = { ...rec };
    if (cfg) {
      want.apiAddress = hostPortText(cfg.address, server.port ?? cfg.apiPort);
      want.grpcAddress = hostPortText(cfg.address, cfg.grpcPort);
      const urls = memberUrls(cfg.address, cfg.etcdClientPort, cfg.etcdPeerPort);
      want.etcd = { memberId: rec.etcd?.memberId ?? '', learner: rec.etcd?.learner ?? false, ...urls };
    }
    return JSON.stringify(want) === JSON.stringify(cur) ? undefined : want;
  });
  await ensureDefaultNetwork(store);

  const router = new NodeRouter(nodeName, node);
  routerRef = router;
  // Image files live in this host's dir pools only (shared pools are added to `pools` at run time).
  const images = new ImageService(store, new Map(pools), hostPaths, nodeName, router);
  const poolService = new PoolService(store, router);
  // Integrated Ceph: the cluster's record in etcd, driven from whichever controller an admin talks to.
  const ceph = new CephService(store, router, registry, node.ceph, () => poolService.pushAll());
  await ceph
    .adoptLocal()
    .catch((err) => log.error('cannot record this host’s Ceph cluster', { err: (err as Error).message }));
  // This host reaches the shared pools from the start (a worker gets them when a controller connects).
  await poolService
    .pushTo(nodeName)
    .catch((err) => log.error('cannot open the shared storage pools', { err: (err as Error).message }));
  // The VM service needs the reconciler and the reconciler needs the VM service's runSpec: late-bind it.
  let vms!: VmService;
  const reconciler = new Reconciler(store, router, (vm) => vms.runSpec(vm));
  const networks = new NetworkService(store, ovn, { node: nodeName, address: cfg?.address ?? '' });
  const routers = new RouterService(store, networks);
  const securityGroups = new SecurityGroupService(store, networks);
  networks.follow(routers);
  networks.follow(securityGroups);
  vms = new VmService(store, router, images, reconciler, hostPaths, networks);
  vmsRef = vms;
  // a host with overlay networks runs OVN from the start (its VMs' ports are bound again if need be)
  if (await networks.hasOverlay())
    await networks.startOvn().catch((err) =>
      log.error('OVN does not start: VMs on overlay networks will not start', {
        err: (err as Error).message,
      }),
    );
  cleanup.push(() => ovn.stop());
  // a controller joins OVN's central databases (raft, up to three) once they exist, and follows changes
  if (cfg) cleanup.push(networks.watchCentral());
  cleanup.push(securityGroups.watch());
  const placement = new Placement(store, router, registry);
  vms.onCreated = () => placement.wake();
  const actions = new VmActions(vms, new Admission(store, router, registry));
  const events = new EventBus();
  const tasks = new TaskLog(
    store,
    (t) =>
      events.publish({
        type: 'task',
        id: t.id,
        taskType: t.type,
        target: t.target,
        status: t.status,
        progress: t.progress,
        ...(t.error ? { error: t.error.message } : {}),
        ...(t.cancellable ? { cancellable: true } : {}),
        ...(t.cancelRequested ? { cancelRequested: true } : {}),
        ...(t.details ? { details: t.details } : {}),
        ...(t.result ? { result: t.result } : {}),
      }),
    `${nodeName}/${process.pid}-${Date.now().toString(36)}`,
  );
  // Tasks a killed or restarted daemon of this host left running end now, as failed, with the reason.
  void tasks
    .sweepOrphans(nodeName, ['vm.migrate'])
    .then((n) => n > 0 && log.warn('tasks an earlier daemon left running were ended', { count: n }))
    .catch((err) => log.warn('cannot end the tasks an earlier daemon left', { err: (err as Error).message }));
  router.onStatus((s) => {
    const e: LiveEvent = { type: 'vm', id: s.id, state: s.state };
    if (s.reason) e.reason = s.reason;
    if (s.agent) e.agent = s.agent.status;
    events.publish(e);
  });
  await registerDemoImages(images, opts.demoImages ?? []);
  await reportOrphans(store, pool, join(dataDir, 'node', 'vms'));

  // Other hosts, reached over gRPC with this host's certificate (OU=controller).
  let stopNodeSync: (() => Promise<void>) | undefined;
  if (cfg && tlsPems) {
    // A host (re)connecting may be what a pending VM or a start waits for.
    stopNodeSync = await syncRemoteNodes(store, router, nodeName, tlsPems, (name) => {
      placement.wake();
      reconciler.wake();
      // the host must reach the shared pools before a VM with disks there can run on it
      void poolService
        .pushTo(name)
        .catch((err) =>
          log.warn('a host did not take the pool list', { node: name, err: (err as Error).message }),
        );
      void ceph
        .pushTo(name)
        .catch((err) =>
          log.warn('a host did not take the Ceph config', { node: name, err: (err as Error).message }),
        );
    });
  }

  // High availability: the leader's HA manager restarts the VMs of failed hosts elsewhere.
  const ha = new HaService({
    store,
    router,
    registry,
    tasks,
    reconciler,
    fenceRbd: (pool, volumes, ips) => node.fenceRbdClients(pool, volumes, ips),
    isLeader: () => leadership.isLeader(),
  });
  reconciler.hold = (vm) => ha.holds(vm);
  await ha.settings().catch(() => {});

  // Node health: heartbeats arrive at the leader, which keeps one lease per node alive (HA's detection time).
  const leases = new EtcdHealthLeases(store.client, () => ha.detectionSec());
  const onReport = async (nodeName2: string, info: NodeInfo, known?: NodeRecord) => {
    await registry.recordInfo(nodeName2, info, known);
    await leases.beat(nodeName2, {
      at: new Date().toISOString(),
      memoryAvailableBytes: info.memoryAvailableBytes,
      vmsRunning: 0,
    });
  };
  let membership: EtcdMembership | undefined;
  if (cfg && tlsPems) {
    membership = new EtcdMembership(store, registry);
    let leaderAddress: { address: string; name: string } | undefined;
    const controlService = controlHandlers(
      async (peer, report) => {
        // A removed host's record is gone: its reports are refused (and it gets no list of controllers).
        const known = await registry.checkReporter(report.node, peer.address);
        if (report.info) await onReport(report.node, nodeInfoFromPb(report.info), known);
        return undefined;
      },
      () => (leadership.isLeader() ? undefined : leaderAddress),
      { controllers: () => registry.cachedControllers(), selfFenceMs: () => ha.selfFenceMs() },
    );
    const nodeHandlers = nodeServiceHandlers(node, {
      vmIds: () => node.knownVmIds(),
      authorize: nodeCallers,
    });
    recheckNodeCallers = () => nodeHandlers.recheck();
    grpc = await startGrpcServer(
      [
        [pb.NodeService, nodeHandlers.implementation],
        [pb.ControlService, controlService],
      ],
      { host: opts.host, port: cfg.grpcPort, tls: tlsPems },
    );
    cleanup.push(() => nodeHandlers.close());
    // Follow the leader's gRPC address for redirects.
    const refreshLeader = async () => {
      const leaderName = await leadership.leaderName().catch(() => undefined);
      const addr = leaderName
        ? (await registry.find(leaderName).catch(() => undefined))?.value.grpcAddress
        : undefined;
      leaderAddress = leaderName && addr ? { address: addr, name: leaderName } : undefined;
    };
    const leaderTimer = setInterval(() => void refreshLeader(), 1000);
    cleanup.push(() => clearInterval(leaderTimer));
    await refreshLeader();
  } else {
    // One host: its own heartbeat goes straight to the health lease.
    const beat = () =>
      void node
        .info()
        .then((i) => onReport(nodeName, i))
        .catch(() => {});
    const t = setInterval(beat, 2000);
    cleanup.push(() => clearInterval(t));
    beat();
  }

  const migrations = new Migrations(store, vms, router, registry, tasks);
  cleanup.push(() => migrations.stop());
  const drs = new Drs(store, router, registry, migrations, tasks);
  cleanup.push(() => drs.stop());
  cleanup.push(() => ha.stop());

  // Leader duties.
  leadership.onChange((leader) => {
    if (leader) {
      void reconciler.start();
      void placement.start();
      migrations.start();
      drs.start();
      void ha.start();
      membership?.start();
    } else {
      void reconciler.stop();
      void placement.stop();
      migrations.stop();
      drs.stop();
      ha.stop();
      membership?.stop();
      leases.close();
    }
  });
  if (leadership instanceof EtcdLeadership) await leadership.start();
  heartbeat?.start();

  // backups run on this host in this first step: its repositories, its VMs; so do the jobs into them
  const backups = new BackupService(
    store,
    vms,
    reconciler.lock,
    tasks,
    nodeName,
    node,
    (name) => router.on(name),
    restoredRecord,
    hostPaths,
    join(dataDir, 'backups'),
    join(dataDir, 'backup-keys'),
    {
      start: (id) => actions.start(id),
      remove: async (id) => {
        await actions.stop(id, { force: true }).catch(() => {});
        await vms.delete(id, true);
      },
      ping: (id) => node.guestCommand(id, 'guest-ping', undefined, { timeoutMs: 2000 }),
    },
    () => placement.wake(),
  );
  const backupJobs = new BackupJobs(store, backups, vms, tasks, nodeName);
  backupJobs.start();
  cleanup.push(() => backupJobs.stop());

  // browser sessions in etcd: any controller honours them, a restart keeps them
  const sessions = new SessionStore(cluster ? cluster.rootPassword : rootPassword!);
  const stopSessions = await new EtcdSessions(store, sessions).start();
  cleanup.unshift(() => stopSessions());
  // console tickets too: the browser may open the websocket on another controller than the one it asked
  consoleProxy.useBackend(new StoredTickets(store));
  const ctx: ApiContext = {
    version: VERSION,
    store,
    node: router,
    registry,
    leadership,
    vms,
    actions,
    migrations,
    drs,
    ha,
    images,
    // imports run on this host: the package is here, its disks go into this host's pools
    imports: new ImportService(store, vms, actions, tasks, hostPaths, importDir, nodeName, node),
    backups,
    backupJobs,
    networks,
    routers,
    securityGroups,
    pools: poolService,
    ceph,
    guest: new GuestService(vms, router),
    devices: new VmDevices(store, router, vms, reconciler, images),
    console: consoleProxy,
    sessions,
    events,
    tasks,
    adminTokenHash: cluster ? Buffer.from(cluster.adminTokenHash, 'hex') : hashToken(admin!.token),
    maxUploadBytes: 64 * 1024 ** 3,
    metricsIntervalSec: node.metrics.intervalMs / 1000,
  };
  if (cfg && pki && membership) {
    const caFingerprint = fingerprint(pki.caPem);
    ctx.cluster = {
      name: cfg.clusterName,
      caPem: pki.caPem,
      caFingerprint,
      membership,
      join: new JoinService(store, { certPem: pki.caPem, keyPem: pki.caKeyPem! }, cfg.clusterName, async () =>
        (await registry.list()).flatMap((n) => (n.value.apiAddress ? [n.value.apiAddress] : [])),
      ),
    };
  }
  handler = createApp(ctx).fetch;
  trusted = (req) => isAuthenticated(req, ctx.adminTokenHash, ctx.sessions);
  await writeFileAtomic(join(dataDir, 'api.url'), `${url}\n`, 0o644);
  // Armed only once serving: a start that fails must not leave a host that resets itself.
  const watchdog = startWatchdog(opts.watchdog, node);
  cleanup.unshift(() => watchdog?.stop());
  log.info('NeuroFlow is serving', { url, dataDir, node: nodeName, cluster: cfg?.clusterName ?? null });

  return {
    url,
    dataDir,
    tokenPath: admin?.path ?? '',
    async stop() {
      // Each step is bounded: a stuck dependency must not keep the daemon from exiting.
      const step = async (what: string, fn: () => unknown) => {
        let done = false;
        await Promise.race([
          Promise.resolve()
            .then(fn)
            .catch((err) => log.warn('shutdown step failed', { what, err: (err as Error).message }))
            .finally(() => {
              done = true;
            }),
          Bun.sleep(5000).then(() => {
            if (!done) log.warn('shutdown step timed out', { what });
          }),
        ]);
      };
      await step('api', () => server.stop(true));
      for (const c of cleanup) await step('cleanup', c);
      await step('leadership', () => leadership.stop());
      await step('reconciler', () => reconciler.stop());
      await step('placement', () => placement.stop());
      membership?.stop();
      leases.close();
      await step('remote nodes', () => stopNodeSync?.());
      await step('grpc', () => grpc?.stop(1000));
      node.detachAll();
      store.close();
      await step('etcd', () => etcd.stop());
      rmSync(join(dataDir, 'serve.pid'), { force: true });
    },
  };
}

/** Armed while this host runs an HA VM that its isolation response powers off or shuts down (see WatchdogFeeder). */
function startWatchdog(path: string | undefined, node: Node): WatchdogFeeder | undefined {
  if (!path) return undefined;
  const w = new WatchdogFeeder(path, () => node.haVms().some((v) => v.isolationResponse !== 'leave'));
  node.watchdog = w;
  w.start();
  return w;
}

function hostPortText(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Where this host receives migrations: its address in the migration network when one is set (none there:
 * migrations to it are refused with why), else the management address.
 */
function migrationAddress(management: string, network?: string): { address: string; unavailable?: string } {
  if (!network) return { address: management };
  try {
    const address = addressIn(network);
    if (address) {
      log.info('migrations use the migration network', { network, address });
      return { address };
    }
    const why = `this host has no address in the migration network ${network}`;
    log.error(why);
    return { address: management, unavailable: why };
  } catch (err) {
    throw new NfError('validation_failed', `--migration-network: ${(err as Error).message}`);
  }
}

/** Waits until this host's etcd member is a voter (the leader promotes learners once they caught up). */
async function waitPromoted(others: string[], mine: string, tls: object): Promise<void> {
  const probe = new EtcdStore(others, tls);
  try {
    const myPeer = mine;
    await waitFor(
      async () => {
        const { members } = await probe.client.cluster.memberList({}).catch(() => ({ members: [] }));
        const me = (members ?? []).find((m) => m.clientURLs.includes(myPeer));
        return !!me && !me.isLearner;
      },
      { timeoutMs: 120_000, intervalMs: 250, what: 'the controller leader to promote this etcd member' },
    );
  } finally {
    probe.close();
  }
}

/** The cluster record: written by the founder on its first start, read by every controller. */
async function ensureClusterRecord(
  store: Store,
  cfg: ClusterConfig,
  pki: HostPkiFiles,
  adminToken: string | undefined,
  rootPassword: string | PasswordHash | undefined,
): Promise<ClusterRecord> {
  const cur = await store.get<ClusterRecord>(keys.cluster);
  if (cur) return cur.value;
  if (!cfg.founder || !adminToken || !rootPassword)
    throw new NfError(
      'invalid_state',
      'the cluster record is missing in etcd; is this host in the right cluster?',
    );
  const rec: ClusterRecord = {
    name: cfg.clusterName,
    createdAt: new Date().toISOString(),
    caFingerprint: fingerprint(pki.caPem),
    caCertPem: pki.caPem,
    adminTokenHash: hashToken(adminToken).toString('hex'),
    rootPassword: typeof rootPassword === 'string' ? hashPassword(rootPassword) : rootPassword,
  };
  await store.txn({ when: [{ key: keys.cluster, absent: true }], put: [{ key: keys.cluster, value: rec }] });
  return rec;
}

/** Keeps a RemoteNode in the router for every other host in the node records. */
async function syncRemoteNodes(
  store: Store,
  router: NodeRouter,
  self: string,
  tls: { caPem: string; certPem: string; keyPem: string },
  onConnected: (name: string) => void,
): Promise<() => Promise<void>> {
  const sync = async () => {
    const nodes = await store.list<NodeRecord>(keys.nodes);
    const want = new Map(
      nodes
        .filter((n) => n.value.name !== self && n.value.grpcAddress)
        .map((n) => [n.value.name, n.value.grpcAddress!]),
    );
    for (const name of router.names()) if (name !== self && !want.has(name)) router.remove(name);
    for (const [name, addr] of want) {
      const cur = router.get(name) as RemoteNode | undefined;
      if (cur && cur.address === addr) continue;
      const remote = new RemoteNode(name, addr, tls);
      remote.onConnectionChange((up) => {
        if (up) onConnected(name);
      });
      router.add(name, remote);
    }
  };
  await sync();
  const cancel = await store.watchPrefix(keys.nodes, () => void sync().catch(() => {}));
  return async () => {
    await cancel();
    for (const name of router.names()) router.remove(name);
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

/** Seconds a connection may stay silent unless it is authenticated (Bun allows 1-255; default 30). */
function httpIdleTimeoutSec(): number {
  const v = Number(process.env.NEUROFLOW_HTTP_IDLE_TIMEOUT_SEC ?? 30);
  return Number.isInteger(v) && v >= 1 && v <= 255 ? v : 30;
}
