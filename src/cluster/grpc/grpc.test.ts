import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as Status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { rejection } from '../../../test/harness/errors';
import type { BackupProgress, RestoreVolumeRequest, VmBackupRequest } from '../../backup/node-backup';
import type { BackupManifest } from '../../backup/repository';
import { NodeRegistry } from '../../controller/node-registry';
import { keys, type NodeRecord } from '../../controller/records';
import { type MigrationVerbs, noMigration } from '../../controller/test-cluster';
import { NfError } from '../../errors';
import type { Point } from '../../node/series';
import type { ConsoleStream, NodeApi, NodeInfo, StopOptions, VmStatus } from '../../node/types';
import { MemoryStore } from '../../store/memory-store';
import { freePort } from '../../util/net';
import { waitFor } from '../../util/wait';
import type { VmRunSpec } from '../../vmm/types';
import { ControllerMembers } from '../controller-members';
import * as pb from '../gen/neuroflow/v1/node';
import { controlHandlers, HeartbeatClient } from './control';
import { nodeInfoToPb } from './convert';
import { controllersOnly, type NodeServerHandle, serveNode } from './node-server';
import { RemoteNode } from './remote-node';
import { type GrpcServerHandle, startGrpcServer } from './server';
import {
  clientChannelOptions,
  clientCredentials,
  fromOwnAddress,
  type PeerIdentity,
  peerAddress,
  type TlsPems,
} from './tls';

// ---- a throwaway PKI: cluster CA, a controller, a worker (the node under test), a rogue CA's cert

const dir = mkdtempSync(join(tmpdir(), 'nf-grpc-test-'));
let serial = 1000;

function openssl(...args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

function makeCa(name: string): void {
  openssl(
    ...['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
    ...['-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`],
  );
}

function makeCert(ca: string, name: string, ou: string, cn: string, sans: string[]): TlsPems {
  openssl(
    ...['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
    ...['-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/OU=${ou}/CN=${cn}`],
  );
  writeFileSync(
    join(dir, `${name}.ext`),
    `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`,
  );
  openssl(
    ...['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`],
    ...['-set_serial', String(serial++), '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`],
  );
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return { caPem: read(`${ca}.pem`), certPem: read(`${name}.pem`), keyPem: read(`${name}.key`) };
}

let ctl: TlsPems;
let ctl2: TlsPems;
let worker: TlsPems;
let rogue: TlsPems;

beforeAll(() => {
  makeCa('ca');
  makeCa('other-ca');
  ctl = makeCert('ca', 'ctl1', 'controller', 'ctl1', ['DNS:ctl1', 'IP:127.0.0.1']);
  ctl2 = makeCert('ca', 'ctl2', 'controller', 'ctl2', ['DNS:ctl2', 'IP:127.0.0.1']);
  worker = makeCert('ca', 'node2', 'worker', 'node2', ['DNS:node2', 'IP:127.0.0.1']);
  rogue = makeCert('other-ca', 'rogue', 'controller', 'ctl1', ['DNS:ctl1', 'DNS:node2', 'IP:127.0.0.1']);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---- a fake node

const INFO: NodeInfo = {
  name: 'node2',
  cpus: 8,
  cpuModel: 'Fake CPU',
  cpuLevels: ['x86-64-v2', 'x86-64-v3'],
  memoryTotalBytes: 64 * 1024 ** 3,
  memoryAvailableBytes: 40 * 1024 ** 3,
  accelerator: 'kvm',
  acceleratorReason: '',
  qemuVersion: '9.2.0',
  kernel: '6.12.0',
  uptimeSec: 1234,
  loadAvg: [0.5, 0.25, 0.125],
  pools: [{ name: 'default', type: 'dir', totalBytes: 1e12, freeBytes: 5e11 }],
  watchdog: { device: '/dev/watchdog', armed: true },
};

interface FakeNode extends MigrationVerbs {}
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the migration verbs come from noMigration
class FakeNode implements NodeApi {
  readonly statuses = new Map<string, VmStatus>();
  readonly listeners = new Set<(s: VmStatus) => void>();
  lastSpec?: VmRunSpec;
  lastStop?: StopOptions;

  set(s: Omit<VmStatus, 'updatedAt'>): VmStatus {
    const status = { ...s, updatedAt: new Date().toISOString() };
    this.statuses.set(s.id, status);
    for (const l of this.listeners) l(status);
    return status;
  }
  async info() {
    return INFO;
  }
  vmStatus(id: string): VmStatus {
    return this.statuses.get(id) ?? { id, state: 'stopped', updatedAt: new Date().toISOString() };
  }
  async startVm(spec: VmRunSpec) {
    this.lastSpec = spec;
    return this.set({ id: spec.id, state: 'running', pid: 4242, startedAt: new Date().toISOString() });
  }
  async stopVm(id: string, opts?: StopOptions) {
    this.lastStop = opts;
    return this.set({ id, state: 'stopped' });
  }
  async pauseVm(id: string): Promise<VmStatus> {
    if (this.vmStatus(id).state !== 'running') throw new NfError('invalid_state', 'the VM is not running');
    return this.set({ ...this.vmStatus(id), state: 'paused' });
  }
  async resumeVm(id: string) {
    return this.set({ ...this.vmStatus(id), state: 'running' });
  }
  async resetVm(id: string) {
    return this.vmStatus(id);
  }
  async snapshotVm() {}
  async deleteVmSnapshot() {}
  async revertVmSnapshot() {}
  async consoleLog(id: string, maxBytes?: number) {
    return `console of ${id} (${maxBytes ?? 'all'}) ✓`;
  }
  vmMetrics(): Point[] {
    return [{ t: 1000, cpu: 12.5, net: null }];
  }
  hostMetrics(): Point[] {
    return [];
  }
  async guestCommand<T>(id: string, command: string, args?: Record<string, unknown>): Promise<T> {
    if (command === 'fail') throw new NfError('guest_error', 'GenericError: nope', { class: 'GenericError' });
    if (command === 'nothing') return undefined as T;
    return { id, command, args } as T;
  }
  async createVolume() {}
  async deleteVolume() {}
  async configurePools(): Promise<void> {}
  async cephApply(): Promise<{ daemons: [] }> {
    return { daemons: [] };
  }
  async cephDaemons(): Promise<{ daemons: [] }> {
    return { daemons: [] };
  }
  async moveDisk(): Promise<void> {}
  backupCalls: VmBackupRequest[] = [];
  async backupVm(req: VmBackupRequest, onProgress?: (p: BackupProgress) => void): Promise<BackupManifest> {
    this.backupCalls.push(req);
    onProgress?.({ phase: 'freezing' });
    onProgress?.({ phase: 'captured' });
    onProgress?.({ phase: 'reading', doneBytes: 4, totalBytes: 8, disk: 'disk0' });
    return { id: req.backupId, vm: req.vm, node: 'n1' } as BackupManifest;
  }
  async restoreVolume(
    req: RestoreVolumeRequest,
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ writtenBytes: number }> {
    if (req.pool === 'missing') throw new NfError('not_found', 'storage pool "missing" does not exist');
    onProgress?.(1, 2);
    return { writtenBytes: req.sizeBytes };
  }
  async flattenVolume(): Promise<void> {}
  async copyImage(): Promise<number> {
    return 0;
  }
  async resizeVolume(): Promise<void> {}
  async listVolumes(): Promise<[]> {
    return [];
  }
  async deleteImageFile(pool: string, file: string) {
    throw new NfError('not_found', `no image ${file} in pool ${pool}`);
  }
  hasProcess(id: string) {
    const s = this.vmStatus(id).state;
    return s === 'running' || s === 'paused';
  }
  async forgetVm(id: string) {
    this.statuses.delete(id);
  }
  probes = 0;
  async probe() {
    this.probes++;
    return { cutOff: false };
  }
  async setIsolation() {}
  /** A console that answers every chunk in upper case; `consoleClosed` turns true when it is closed. */
  consoleClosed = false;
  async openConsole(id: string): Promise<ConsoleStream> {
    if (this.vmStatus(id).state !== 'running') throw new NfError('invalid_state', 'the VM is not running');
    let listener: (d: Uint8Array) => void = () => {};
    const closers: (() => void)[] = [];
    return {
      write: (d) => listener(Buffer.from(Buffer.from(d).toString().toUpperCase())),
      onData: (l) => {
        listener = l;
      },
      onClose: (l) => void closers.push(l),
      close: () => {
        this.consoleClosed = true;
        for (const c of closers) c();
      },
    };
  }
  onStatus(listener: (s: VmStatus) => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
Object.assign(FakeNode.prototype, noMigration);

// ---- helpers

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startNode(fake: FakeNode, port = 0): Promise<NodeServerHandle> {
  const srv = await serveNode(fake, {
    host: '127.0.0.1',
    port,
    tls: worker,
    vmIds: () => fake.statuses.keys(),
  });
  cleanups.push(() => srv.stop());
  return srv;
}

function remote(port: number, tls = ctl, serverName = 'node2'): RemoteNode {
  const r = new RemoteNode('node2', `127.0.0.1:${port}`, tls, serverName, {
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
  });
  cleanups.push(() => r.close());
  return r;
}

const SPEC: VmRunSpec = {
  id: 'vm-1',
  name: 'web',
  vcpus: 2,
  memoryMiB: 2048,
  machine: 'q35',
  disks: [
    { id: 'disk0', path: '', pool: 'default', volume: 'vm-1-disk0', format: 'qcow2' },
    { id: 'disk1', path: '/srv/data.raw', format: 'raw', readOnly: true },
  ],
  cdrom: { path: '', pool: 'default', file: 'debian.iso' },
  nics: [{ id: 'nic0', network: 'default', type: 'nat', mac: '52:54:00:12:34:56' }],
  boot: { kind: 'kernel', kernel: '/boot/vmlinuz', cmdline: 'console=ttyS0' },
  agent: true,
};

// ---- tests

describe('Node service over mTLS', () => {
  test('calls round-trip: spec, status, info, console, metrics, guest commands', async () => {
    const fake = new FakeNode();
    const srv = await startNode(fake);
    const node = remote(srv.port);

    const status = await node.startVm(SPEC);
    expect(fake.lastSpec).toStrictEqual(SPEC);
    expect(status).toStrictEqual(fake.vmStatus('vm-1'));
    const other: VmRunSpec = {
      ...SPEC,
      id: 'vm-2',
      disks: [],
      cdrom: undefined,
      boot: { kind: 'disk', index: 0 },
    };
    delete other.cdrom;
    await node.startVm(other);
    expect(fake.lastSpec).toStrictEqual(other);

    expect(await node.info()).toStrictEqual(INFO);
    expect(await node.consoleLog('vm-1', 100)).toBe('console of vm-1 (100) ✓');
    expect(await node.consoleLog('vm-1')).toBe('console of vm-1 (all) ✓');
    expect(await node.vmMetrics('vm-1', 'fine')).toStrictEqual([{ t: 1000, cpu: 12.5, net: null }]);
    expect(await node.hostMetrics('coarse')).toStrictEqual([]);

    const args = { path: '/etc/hostname', nested: { list: [1, 'two', null] } };
    expect(await node.guestCommand('vm-1', 'guest-file-open', args)).toStrictEqual({
      id: 'vm-1',
      command: 'guest-file-open',
      args,
    });
    expect(await node.guestCommand('vm-1', 'nothing')).toBeUndefined();

    await node.stopVm('vm-1', { timeoutMs: 5000 });
    expect(fake.lastStop).toStrictEqual({ timeoutMs: 5000 });
    await node.stopVm('vm-1');
    expect(fake.lastStop).toStrictEqual({});
    expect(await node.fetchHasProcess('vm-2')).toBe(true);
  });

  test('a backup and a restore stream their phases and progress, then the manifest; the key arrives as bytes', async () => {
    const fake = new FakeNode();
    const srv = await startNode(fake);
    const node = remote(srv.port);
    const phases: string[] = [];
    const key = Buffer.alloc(32, 7);
    const m = await node.backupVm(
      { repository: '/srv/r', key, backupId: 'b1', vm: { id: 'vm-1', name: 'a' }, config: {}, disks: [] },
      (p) => phases.push(p.phase),
    );
    expect(m).toMatchObject({ id: 'b1', vm: { id: 'vm-1', name: 'a' } });
    // every change of phase arrives (captured releases the VM's lock on the controller)
    expect(phases).toEqual(['freezing', 'captured', 'reading']);
    expect(Buffer.from(fake.backupCalls[0]!.key!).equals(key)).toBe(true);
    const req = {
      repository: '/srv/r',
      vmId: 'vm-1',
      backupId: 'b1',
      diskId: 'disk0',
      pool: 'p',
      volume: 'v',
      sizeBytes: 9,
    };
    expect(await node.restoreVolume(req)).toEqual({ writtenBytes: 9 });
    expect(await rejection(node.restoreVolume({ ...req, pool: 'missing' }))).toMatchObject({
      code: 'not_found',
    });
  });

  test('the VNC console is relayed both ways, and closing it closes the node side', async () => {
    const fake = new FakeNode();
    const srv = await startNode(fake);
    const r = remote(srv.port);
    await r.startVm(SPEC);
    const stream = await r.openConsole('vm-1');
    const got: string[] = [];
    stream.onData((d) => got.push(Buffer.from(d).toString()));
    stream.write(Buffer.from('rfb 003.008'));
    await waitFor(() => got.join('') === 'RFB 003.008', { timeoutMs: 5000, what: 'the echo' });
    stream.close();
    await waitFor(() => fake.consoleClosed, { timeoutMs: 5000, what: 'the node side to close' });

    // A console of a stopped VM ends with the node's error.
    const closed = await new Promise<string | undefined>((resolve) => {
      void r.openConsole('nope').then((s) => s.onClose(resolve));
    });
    expect(closed).toMatch(/not running/);
  });

  test('an NfError on the node arrives as the same NfError', async () => {
    const srv = await startNode(new FakeNode());
    const node = remote(srv.port);
    const paused = await rejection(node.pauseVm('vm-9'));
    expect(paused.code).toBe('invalid_state');
    expect(paused.message).toBe('the VM is not running');
    const guest = await rejection(node.guestCommand('vm-1', 'fail'));
    expect(guest.code).toBe('guest_error');
    expect(guest.message).toBe('GenericError: nope');
    expect(guest.details).toStrictEqual({ class: 'GenericError' });
    const gone = await rejection(node.deleteImageFile('default', 'x.iso'));
    expect(gone.toBody()).toStrictEqual({
      error: { code: 'not_found', message: 'no image x.iso in pool default' },
    });
  });

  test('WatchStatus feeds vmStatus, hasProcess and onStatus', async () => {
    const fake = new FakeNode();
    fake.set({ id: 'vm-a', state: 'running', pid: 7 });
    fake.set({ id: 'vm-b', state: 'stopped' });
    const srv = await startNode(fake);
    const node = remote(srv.port);
    await waitFor(() => node.connected, { timeoutMs: 5000, what: 'the status stream' });
    expect(node.vmStatus('vm-a')).toStrictEqual(fake.vmStatus('vm-a'));
    expect(node.hasProcess('vm-a')).toBe(true);
    expect(node.vmStatus('vm-b').state).toBe('stopped');
    expect(node.hasProcess('vm-b')).toBe(false);

    const seen: VmStatus[] = [];
    node.onStatus((s) => seen.push(s));
    const paused = fake.set({ id: 'vm-a', state: 'paused', pid: 7, reason: 'disk full' });
    await waitFor(() => seen.length > 0, { timeoutMs: 5000, what: 'a status event' });
    expect(seen).toStrictEqual([paused]);
    expect(node.vmStatus('vm-a')).toStrictEqual(paused);

    // A call's answer updates the cache at once, and the same status from the stream is no new event.
    const stopped = await node.stopVm('vm-a', { force: true });
    expect(node.vmStatus('vm-a')).toStrictEqual(stopped);
    expect(node.hasProcess('vm-a')).toBe(false);
    await Bun.sleep(100);
    expect(seen).toStrictEqual([paused, stopped]);
  });

  test('a worker certificate may not drive a node', async () => {
    const srv = await startNode(new FakeNode());
    const node = remote(srv.port, worker);
    const err = await rejection(node.info());
    expect(err.code).toBe('forbidden');
    expect(err.message).toContain('node2 (worker) at 127.0.0.1 may not call the Node service');
    await Bun.sleep(200);
    expect(node.connected).toBe(false);
  });

  test('a certificate from another CA is refused at the handshake, both ways', async () => {
    // Each side trusts the cluster CA but presents a certificate of another CA.
    const impostor = { ...rogue, caPem: ctl.caPem };
    const srv = await startNode(new FakeNode());
    const err = await rejection(remote(srv.port, impostor).info());
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain('node node2');

    const fakeServer = await serveNode(new FakeNode(), { host: '127.0.0.1', port: 0, tls: impostor });
    cleanups.push(() => fakeServer.stop());
    const refused = await rejection(remote(fakeServer.port, ctl).info());
    expect(refused.code).toBe('unavailable');
  });

  test('a server whose certificate does not carry the expected name is refused', async () => {
    const srv = await startNode(new FakeNode());
    const err = await rejection(remote(srv.port, ctl, 'node9').info());
    expect(err.code).toBe('unavailable');
  });

  test('a node that is down fails calls quickly with unavailable', async () => {
    const node = remote(await freePort());
    const t0 = Date.now();
    const err = await rejection(node.info());
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(/^node node2 \(127\.0\.0\.1:\d+\) is unreachable/);
    expect(node.connected).toBe(false);
  });

  test('the status stream reconnects after the node restarts', async () => {
    const fake = new FakeNode();
    fake.set({ id: 'vm-a', state: 'running' });
    const first = await serveNode(fake, {
      host: '127.0.0.1',
      port: 0,
      tls: worker,
      vmIds: () => fake.statuses.keys(),
    });
    const port = first.port;
    const node = remote(port);
    const changes: boolean[] = [];
    node.onConnectionChange((c) => changes.push(c));
    await waitFor(() => node.connected, { timeoutMs: 5000, what: 'the status stream' });

    await first.stop();
    await waitFor(() => !node.connected, { timeoutMs: 5000, what: 'the stream to drop' });
    expect((await rejection(node.info())).code).toBe('unavailable');

    fake.set({ id: 'vm-a', state: 'error', reason: 'QEMU died' });
    await startNode(fake, port);
    await waitFor(() => node.connected, { timeoutMs: 5000, what: 'the stream to come back' });
    expect(node.vmStatus('vm-a').state).toBe('error');
    expect(await node.info()).toStrictEqual(INFO);
    expect(changes).toStrictEqual([true, false, true]);
  });
});

describe('Control service', () => {
  async function startControl(
    onReport: (peer: PeerIdentity, r: pb.NodeReport) => string[] | undefined,
    leaderElsewhere: () => { address: string; name: string } | undefined = () => undefined,
  ): Promise<GrpcServerHandle> {
    const srv = await startGrpcServer([[pb.ControlService, controlHandlers(onReport, leaderElsewhere)]], {
      host: '127.0.0.1',
      port: 0,
      tls: ctl,
    });
    cleanups.push(() => srv.stop(100));
    return srv;
  }

  function heartbeat(controllers: string[], node = 'node2'): HeartbeatClient {
    const hb = new HeartbeatClient({
      controllers,
      tls: worker,
      intervalMs: 100,
      reconnectMinMs: 50,
      serverName: () => 'ctl1',
      report: () => ({ node, info: nodeInfoToPb(INFO), vms: [], grpcAddress: '127.0.0.1:7444' }),
    });
    cleanups.push(() => hb.stop());
    return hb;
  }

  test('reports reach the leader, through a redirect, and assignments come back', async () => {
    const reports: [PeerIdentity, pb.NodeReport][] = [];
    const leader = await startControl((peer, r) => {
      reports.push([peer, r]);
      return ['vm-1', 'vm-2'];
    });
    const follower = await startControl(
      () => {
        throw new Error('a follower must not take reports');
      },
      () => ({ address: `127.0.0.1:${leader.port}`, name: 'ctl1' }),
    );
    const hb = heartbeat([`127.0.0.1:${follower.port}`]);
    const assignments: string[][] = [];
    hb.onAssignment((ids) => assignments.push(ids));
    hb.start();
    await waitFor(() => reports.length >= 3, { timeoutMs: 5000, what: 'three reports' });
    expect(hb.controller).toBe(`127.0.0.1:${leader.port}`);
    const [peer, report] = reports[0]!;
    expect(peer).toMatchObject({ name: 'node2', role: 'worker', address: '127.0.0.1' });
    expect(report).toMatchObject({ node: 'node2', grpcAddress: '127.0.0.1:7444', info: nodeInfoToPb(INFO) });
    expect(reports.map(([, r]) => r.seq)).toStrictEqual(
      [...reports.keys()].map((i) => reports[0]![1].seq + i),
    );
    expect(assignments).toStrictEqual([['vm-1', 'vm-2']]); // sent once, not with every ack
  });

  test('a node may only report as itself', async () => {
    const reports: pb.NodeReport[] = [];
    const srv = await startControl((_, r) => {
      reports.push(r);
      return undefined;
    });
    const hb = heartbeat([`127.0.0.1:${srv.port}`], 'node3');
    hb.start();
    await Bun.sleep(500);
    expect(reports).toStrictEqual([]);
    expect(hb.controller).toBeUndefined();
  });
});

test('peerAddress drops the port and unmaps IPv4', () => {
  expect(peerAddress('10.0.0.5:41234')).toBe('10.0.0.5');
  expect(peerAddress('::ffff:10.0.0.5:41234')).toBe('10.0.0.5');
  expect(peerAddress('[fd00::1]:41234')).toBe('fd00::1');
  expect(peerAddress('fd00::1:41234')).toBe('fd00::1');
});

describe('Membership: only current controllers drive a node, only member hosts report', () => {
  const record = (name: string, role: 'controller' | 'worker'): NodeRecord => ({
    name,
    role,
    addresses: ['127.0.0.1'],
    maintenance: false,
    joinedAt: '2024-01-01T00:00:00.000Z',
  });

  /** A cluster in a MemoryStore: ctl1 and ctl2 controllers, node2 a worker. */
  async function cluster() {
    const store = new MemoryStore();
    await store.txn({
      put: [record('ctl1', 'controller'), record('ctl2', 'controller'), record('node2', 'worker')].map(
        (r) => ({
          key: keys.node(r.name),
          value: r,
        }),
      ),
    });
    const registry = new NodeRegistry(store, async () => 'ctl1');
    return { store, registry, remove: (name: string) => store.txn({ delete: [keys.node(name)] }) };
  }

  /** The leader's Control service as serve.ts builds it (membership check, controllers list). */
  async function startLeader(registry: NodeRegistry, reports: string[] = []): Promise<GrpcServerHandle> {
    const srv = await startGrpcServer(
      [
        [
          pb.ControlService,
          controlHandlers(
            async (peer, report) => {
              await registry.checkReporter(report.node, peer.address);
              reports.push(report.node);
              return undefined;
            },
            () => undefined,
            { controllers: () => registry.cachedControllers(0) },
          ),
        ],
      ],
      { host: '127.0.0.1', port: 0, tls: ctl },
    );
    cleanups.push(() => srv.stop(100));
    return srv;
  }

  /** node2's Node service behind the membership check, starting from its join data (ctl1 only). */
  async function startMemberNode(fake = new FakeNode()) {
    const members = new ControllerMembers({
      source: 'config',
      revision: 0,
      controllers: [{ name: 'ctl1', addresses: ['127.0.0.1'] }],
    });
    const srv = await serveNode(fake, {
      host: '127.0.0.1',
      port: 0,
      tls: worker,
      authorize: (p) => controllersOnly(p) && fromOwnAddress(p) && members.check(p),
    });
    cleanups.push(() => srv.stop());
    return { srv, members };
  }

  function heartbeat(port: number, node = 'node2', tls = worker): HeartbeatClient {
    const hb = new HeartbeatClient({
      controllers: [`127.0.0.1:${port}`],
      tls,
      intervalMs: 100,
      reconnectMinMs: 50,
      reconnectMaxMs: 200,
      serverName: () => 'ctl1',
      report: () => ({ node, info: nodeInfoToPb(INFO), vms: [], grpcAddress: '127.0.0.1:7444' }),
    });
    cleanups.push(() => hb.stop());
    return hb;
  }

  /** The raw gRPC status of a call, to see the code on the wire. */
  function rawInfo(port: number, tls: TlsPems): Promise<{ code: number; details: string }> {
    const client = new pb.NodeClient(
      `127.0.0.1:${port}`,
      clientCredentials(tls, 'node2'),
      clientChannelOptions('node2'),
    );
    cleanups.push(() => client.close());
    return new Promise((resolve) =>
      client.info({}, (err) =>
        resolve(err ? { code: err.code, details: err.details } : { code: 0, details: '' }),
      ),
    );
  }

  test('a controller removed from the cluster is refused with PERMISSION_DENIED once the leader says so', async () => {
    const { registry, remove } = await cluster();
    const leader = await startLeader(registry);
    const fake = new FakeNode();
    fake.set({ id: 'vm-1', state: 'running' });
    const { srv, members } = await startMemberNode(fake);

    // Before the leader's list: the join data names ctl1 only.
    expect(await remote(srv.port).info()).toStrictEqual(INFO);
    const early = await rejection(remote(srv.port, ctl2, 'node2').info());
    expect(early.code).toBe('forbidden');
    expect(early.message).toBe(
      'ctl2 (controller) at 127.0.0.1 is not a controller of this cluster (removed?); this host takes calls from ctl1 (its join data, until the leader sends the current list)',
    );

    const lists: pb.Controllers[] = [];
    const hb = heartbeat(leader.port);
    hb.onControllers((l) => {
      lists.push(l);
      if (members.update(l)) srv.recheck(); // as serve.ts does
    });
    hb.start();
    await waitFor(() => lists.length === 1, { timeoutMs: 5000, what: 'the list of controllers' });
    expect(lists[0]!.controllers).toStrictEqual([
      { name: 'ctl1', addresses: ['127.0.0.1'] },
      { name: 'ctl2', addresses: ['127.0.0.1'] },
    ]);
    const second = remote(srv.port, ctl2, 'node2');
    expect(await second.info()).toStrictEqual(INFO);
    await waitFor(() => second.connected, { timeoutMs: 5000, what: "ctl2's status stream" });
    const vnc = await second.openConsole('vm-1');
    let consoleEnd: string | undefined | null = null;
    vnc.onClose((e) => {
      consoleEnd = e;
    });

    // DELETE /nodes/ctl2: its record goes; the next heartbeat reply carries the new list.
    await remove('ctl2');
    await waitFor(() => lists.length === 2, { timeoutMs: 5000, what: 'the new list' });
    expect(lists[1]!.controllers.map((c) => c.name)).toStrictEqual(['ctl1']);
    expect(lists[1]!.revision).toBeGreaterThan(lists[0]!.revision);
    const err = await rejection(second.info());
    expect(err.code).toBe('forbidden');
    expect(err.message).toBe(
      `ctl2 (controller) at 127.0.0.1 is not a controller of this cluster (removed?); this host takes calls from ctl1 (the leader's list of revision ${lists[1]!.revision})`,
    );
    const raw = await rawInfo(srv.port, ctl2);
    expect(raw.code).toBe(Status.PERMISSION_DENIED);
    expect(raw.details).toContain('is not a controller of this cluster');
    // The streams it had open end with the refusal (and stay refused); ctl1 goes on as before.
    await waitFor(() => !second.connected, { timeoutMs: 5000, what: "ctl2's status stream to end" });
    await waitFor(() => fake.consoleClosed && consoleEnd !== null, {
      timeoutMs: 5000,
      what: "ctl2's console to end",
    });
    expect(consoleEnd).toContain('is not a controller of this cluster');
    expect(await remote(srv.port).info()).toStrictEqual(INFO);
    await Bun.sleep(500);
    expect(second.connected).toBe(false);
    expect(lists).toHaveLength(2); // unchanged list: not sent again with every ack
  });

  test('the Control service refuses the heartbeats of a removed host', async () => {
    const { registry, remove } = await cluster();
    const reports: string[] = [];
    const leader = await startLeader(registry, reports);
    const lists: pb.Controllers[] = [];
    const hb = heartbeat(leader.port);
    hb.onControllers((l) => lists.push(l));
    hb.start();
    await waitFor(() => hb.controller !== undefined && lists.length === 1, {
      timeoutMs: 5000,
      what: 'an ack',
    });

    await remove('node2');
    await waitFor(() => hb.controller === undefined, { timeoutMs: 5000, what: 'the stream to be refused' });
    const count = reports.length;
    await Bun.sleep(500); // it keeps trying, and keeps being refused
    expect(reports.length).toBe(count);
    expect(hb.controller).toBeUndefined();
    expect(lists).toHaveLength(1);
  });

  test('the refusal of a removed host says so, with PERMISSION_DENIED; a store failure is not taken as removal', async () => {
    const { store, registry, remove } = await cluster();
    await remove('node2');
    const refused = await rejection(registry.checkReporter('node2', '127.0.0.1'));
    expect(refused.code).toBe('forbidden');
    expect(refused.grpcStatus).toBe(Status.PERMISSION_DENIED);
    expect(refused.message).toBe('host node2 is not a member of this cluster (removed?)');
    store.down = true;
    expect((await rejection(registry.checkReporter('ctl1', '127.0.0.1'))).code).toBe('unavailable');
  });

  test('a failure to read the controllers skips the list, not the heartbeat', async () => {
    let fail = true;
    const reports: string[] = [];
    const srv = await startGrpcServer(
      [
        [
          pb.ControlService,
          controlHandlers(
            (_, r) => {
              reports.push(r.node);
              return undefined;
            },
            () => undefined,
            {
              controllers: () => {
                if (fail) throw new NfError('unavailable', 'etcd is unreachable (test)');
                return { revision: 3, controllers: [{ name: 'ctl1', addresses: [] }] };
              },
            },
          ),
        ],
      ],
      { host: '127.0.0.1', port: 0, tls: ctl },
    );
    cleanups.push(() => srv.stop(100));
    const lists: pb.Controllers[] = [];
    const hb = heartbeat(srv.port);
    hb.onControllers((l) => lists.push(l));
    hb.start();
    await waitFor(() => reports.length >= 3, { timeoutMs: 5000, what: 'reports' });
    expect(hb.controller).toBe(`127.0.0.1:${srv.port}`);
    expect(lists).toStrictEqual([]);
    fail = false;
    await waitFor(() => lists.length === 1, { timeoutMs: 5000, what: 'the list' });
    expect(lists[0]).toStrictEqual({ revision: 3, controllers: [{ name: 'ctl1', addresses: [] }] });
  });
});
