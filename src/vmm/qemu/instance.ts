import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { NfError } from '../../errors';
import type { NatNetwork } from '../../network/nat';
import type { BlockdevNode } from '../../storage/driver';
import { bytes } from '../../util/format';
import { createLogger } from '../../util/log';
import { pidAlive } from '../../util/proc';
import { deferred, waitFor } from '../../util/wait';
import type {
  IncomingEndpoint,
  MigrationProgress,
  MigrationResult,
  MigrationRole,
  OutgoingRequest,
} from '../migration';
import type {
  BackupExportDisk,
  DiskRun,
  ExitInfo,
  MediaRun,
  NicRun,
  RuntimeState,
  TuneDevice,
  VmInstance,
} from '../types';
import {
  hotplugDiskDevice,
  mediaNodes,
  nicBackend,
  nicDevice,
  nicSocketPath,
  runPaths,
  tapBackend,
  tapName,
} from './cmdline';
import type { OvnPlug } from './driver';
import { type QmpClient, QmpError } from './qmp';
import { swtpmPid } from './swtpm';

const log = createLogger('qemu');

/** Last meaningful lines of QEMU's stderr, which say why it stopped. */
export function stderrReason(stderrPath: string, maxLines = 5): string | undefined {
  let text: string;
  try {
    text = readFileSync(stderrPath, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text
    .split('\n')
    .map((l) => l.replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z\s*/, '').trim())
    .filter((l) => l.length > 0);
  if (lines.length === 0) return undefined;
  return lines.slice(-maxLines).join('\n');
}

const TLS_ID = 'nf-migration-tls';

interface JobInfo {
  id: string;
  status: string;
  'current-progress': number;
  'total-progress': number;
  error?: string;
}

interface QueryMigrate {
  status?: string;
  'error-desc'?: string;
  'total-time'?: number;
  'setup-time'?: number;
  downtime?: number;
  'expected-downtime'?: number;
  ram?: {
    transferred?: number;
    remaining?: number;
    total?: number;
    'dirty-pages-rate'?: number;
    'page-size'?: number;
    'dirty-sync-count'?: number;
    'postcopy-requests'?: number;
    mbps?: number;
  };
}

/** query-migrate statuses of a migration that is over (or never was). */
function migrationOver(status?: string): boolean {
  return (
    !status || status === 'none' || status === 'completed' || status === 'failed' || status === 'cancelled'
  );
}

function capabilities(o: { multifd: boolean; postcopy: boolean }): { capability: string; state: boolean }[] {
  return [
    { capability: 'events', state: true },
    { capability: 'multifd', state: o.multifd },
    { capability: 'auto-converge', state: true },
    { capability: 'postcopy-ram', state: o.postcopy },
  ];
}

/**
 * One running QEMU process, driven through its QMP socket. It notices the process going away (QMP
 * closes) and tells clean shutdowns (a SHUTDOWN event, or our own quit) from crashes.
 */
export class QemuInstance implements VmInstance {
  readonly exited: Promise<ExitInfo>;
  private shutdownSeen = false;
  private ioError: string | undefined;
  private readonly runtimeListeners: ((state: RuntimeState, reason?: string) => void)[] = [];
  private readonly channelListeners: ((port: string, open: boolean) => void)[] = [];
  private detached = false;
  /** Set by cancelMigration: why the running outgoing migration stops. */
  private migrationCancel: string | undefined;
  private migrationTimedOut = false;
  private readonly exitDeferred = deferred<ExitInfo>();

  constructor(
    readonly id: string,
    readonly pid: number,
    readonly startedAt: string,
    private readonly qmp: QmpClient,
    private readonly stderrPath: string,
    child?: ChildProcess,
    /** For NIC hot-plug: the run dir (the NIC's socket), the nat network that serves it, or OVN. */
    private readonly net?: { runDir: string; nat?: NatNetwork; ovn?: OvnPlug },
  ) {
    this.exited = this.exitDeferred.promise;
    qmp.onEvent((ev) => {
      // host-signal means someone outside killed QEMU (SIGTERM/SIGINT): that is not a clean stop.
      if (ev.event === 'SHUTDOWN' && (ev.data as { reason?: string } | undefined)?.reason !== 'host-signal') {
        this.shutdownSeen = true;
      }
      if (ev.event === 'BLOCK_IO_ERROR') {
        const d = ev.data as
          | { device?: string; 'node-name'?: string; reason?: string; nospace?: boolean }
          | undefined;
        this.ioError = `paused by QEMU: I/O error on ${d?.['node-name'] || d?.device || 'a disk'}${d?.nospace ? ' (no space left on the host)' : ''}${d?.reason ? `: ${d.reason}` : ''}`;
      }
      if (ev.event === 'RESUME') this.ioError = undefined;
      if (ev.event === 'VSERPORT_CHANGE') {
        const d = ev.data as { id?: string; open?: boolean } | undefined;
        for (const l of this.channelListeners) l(d?.id ?? '', d?.open === true);
      }
      if (ev.event === 'STOP' || ev.event === 'RESUME') {
        const reason = ev.event === 'STOP' ? this.ioError : undefined;
        for (const l of this.runtimeListeners) l(ev.event === 'STOP' ? 'paused' : 'running', reason);
      }
    });
    // Our own child: reap it, so it never lingers as a zombie.
    child?.once('exit', () => void this.onGone());
    void qmp.closed.then(() => this.onGone());
  }

  private async onGone(): Promise<void> {
    if (this.detached) return;
    try {
      await waitFor(() => !pidAlive(this.pid), { timeoutMs: 10_000, what: `QEMU pid ${this.pid} to exit` });
    } catch {
      // QMP closed but the process lives on: it is wedged; pull the plug so state is never a lie.
      log.warn('QMP closed but QEMU still alive; killing', { id: this.id, pid: this.pid });
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {}
    }
    const info: ExitInfo = this.shutdownSeen
      ? { clean: true }
      : { clean: false, reason: stderrReason(this.stderrPath) ?? 'QEMU exited without a shutdown event' };
    this.exitDeferred.resolve(info);
  }

  async state(): Promise<RuntimeState> {
    if (this.qmp.isClosed) return 'stopped';
    const st = await this.qmp.execute<{ running: boolean; status: string }>('query-status');
    if (st.running) return 'running';
    if (st.status === 'paused' || st.status === 'prelaunch' || st.status === 'suspended') return 'paused';
    if (st.status === 'internal-error' || st.status === 'guest-panicked' || st.status === 'io-error')
      return 'error';
    return 'paused';
  }

  /** QEMU's own run state ('running', 'inmigrate', 'postmigrate', ...). */
  async runState(): Promise<string> {
    const st = await this.qmp.execute<{ status: string }>('query-status');
    return st.status;
  }

  /** Where this process stands with a migration, from its run state (also after a daemon restart). */
  async migrationRole(): Promise<MigrationRole | undefined> {
    if (this.qmp.isClosed) return undefined;
    const st = await this.runState();
    if (st === 'inmigrate') return 'incoming';
    if (st === 'postmigrate') return 'migrated';
    if (st === 'finish-migrate') return 'outgoing';
    return migrationOver((await this.queryMigrate()).status) ? undefined : 'outgoing';
  }

  /**
   * Target side, on a QEMU started with `-incoming defer` (and paused with -S: it runs only when the
   * controller says so, after the source has let go). TLS with the host's cluster certificate on the
   * migration stream and, for local disks, on an NBD server exporting the new empty volumes.
   */
  async listenIncoming(opts: {
    address: string;
    tlsDir: string;
    multifd: boolean;
    postcopy: boolean;
    nbd?: { port: number; disks: string[] };
  }): Promise<IncomingEndpoint> {
    await this.tlsCreds(opts.tlsDir, 'server');
    const host = opts.address;
    if (opts.nbd) {
      await this.exec('nbd-server-start', {
        addr: { type: 'inet', data: { host, port: String(opts.nbd.port) } },
        'tls-creds': TLS_ID,
      });
      for (const disk of opts.nbd.disks)
        await this.exec('block-export-add', {
          type: 'nbd',
          id: `mig-${disk}`,
          'node-name': await this.topNode(disk),
          name: disk,
          writable: true,
        });
    }
    await this.exec('migrate-set-capabilities', { capabilities: capabilities(opts) });
    await this.exec('migrate-set-parameters', {
      'tls-creds': TLS_ID,
      ...(opts.multifd ? { 'multifd-channels': 2 } : {}),
    });
    const uri = host.includes(':') ? `tcp:[${host}]:0` : `tcp:${host}:0`;
    await this.exec('migrate-incoming', { uri });
    const m = (await this.exec('query-migrate')) as { 'socket-address'?: { port?: string }[] };
    const port = Number(m['socket-address']?.[0]?.port);
    if (!port)
      throw new NfError('hypervisor_error', 'QEMU did not say which port it listens on for the migration');
    return {
      address: host,
      port,
      ...(opts.nbd ? { nbdPort: opts.nbd.port, nbdDisks: opts.nbd.disks } : {}),
    };
  }

  /** Target side, after the source finished: the NBD server goes, then the guest runs here. */
  async finishIncoming(): Promise<void> {
    // The source completes when it has sent everything; the target may still be loading the last
    // device state (and activating shared disks) for a moment.
    const st = await waitFor(
      async () => {
        const x = await this.runState();
        return x === 'inmigrate' ? undefined : x;
      },
      { timeoutMs: 30_000, intervalMs: 5, what: 'the target to load the whole state' },
    ).catch(() => {
      throw new NfError('invalid_state', `VM ${this.id} has not received its whole state (inmigrate)`);
    });
    await this.exec('nbd-server-stop').catch(() => {}); // none without local disks
    if (st !== 'running') await this.exec('cont');
  }

  /**
   * Source side: mirrors local disks to the target's NBD exports until they are in step (writes then go
   * to both), sends RAM and device state, and returns once QEMU completed (the guest is paused here in
   * `postmigrate`; the controller resumes it on the target). On a failure or a cancel, everything it set
   * up is taken down and the guest goes on running here.
   */
  async migrateOut(
    req: OutgoingRequest & { tlsDir: string; localDisks: string[] },
    onProgress: (p: MigrationProgress) => void,
  ): Promise<MigrationResult> {
    const { policy, target } = req;
    await this.cleanupMigration();
    this.migrationCancel = undefined;
    this.migrationTimedOut = false;
    const cancelled = () => {
      if (this.migrationCancel)
        throw new NfError(this.migrationTimedOut ? 'timeout' : 'cancelled', this.migrationCancel);
    };
    const mirrors: string[] = [];
    const nbdNodes: string[] = [];
    const multifd = !policy.postcopy;
    const startedAt = Date.now();
    const deadline = startedAt + policy.timeLimitSec * 1000;
    let migrating = false;
    let disk: { ms: number; bytes: number } | undefined;
    try {
      await this.tlsCreds(req.tlsDir, 'client');
      if (req.localDisks.length > 0) {
        if (!target.nbdPort) throw new NfError('validation_failed', 'the target exports no disks over NBD');
        const tag = Date.now().toString(36);
        for (const disk of req.localDisks) {
          const node = `mig${tag}-${disk}`;
          await this.exec('blockdev-add', {
            driver: 'nbd',
            'node-name': node,
            server: { type: 'inet', host: target.address, port: String(target.nbdPort) },
            export: disk,
            'tls-creds': TLS_ID,
            'tls-hostname': req.targetName,
          });
          nbdNodes.push(node);
          await this.exec('blockdev-mirror', {
            'job-id': node,
            device: await this.topNode(disk),
            target: node,
            sync: 'full',
            // once in step, every guest write reaches the target before it completes: the copy converges
            'copy-mode': 'write-blocking',
            'auto-dismiss': false,
          });
          mirrors.push(node);
        }
        for (;;) {
          cancelled();
          if (Date.now() > deadline)
            throw new NfError('timeout', `the disks were not copied within ${policy.timeLimitSec} s`);
          const jobs = ((await this.exec('query-jobs')) as JobInfo[]).filter((j) => mirrors.includes(j.id));
          const failed = jobs.find((j) => j.status === 'concluded' || j.status === 'aborting');
          if (failed || jobs.length < mirrors.length)
            throw new NfError(
              'unavailable',
              `copying disk ${failed?.id.replace(/^mig[^-]*-/, '') ?? ''} to the target failed: ${failed?.error ?? 'the job ended'}`,
            );
          onProgress({
            phase: 'disks',
            disks: {
              doneBytes: jobs.reduce((a, j) => a + j['current-progress'], 0),
              totalBytes: jobs.reduce((a, j) => a + j['total-progress'], 0),
            },
          });
          if (jobs.every((j) => j.status === 'ready')) {
            disk = { ms: Date.now() - startedAt, bytes: jobs.reduce((a, j) => a + j['total-progress'], 0) };
            break;
          }
          await Bun.sleep(200);
        }
      }
      await this.exec('migrate-set-capabilities', {
        capabilities: capabilities({ multifd, postcopy: policy.postcopy }),
      });
      await this.exec('migrate-set-parameters', {
        'tls-creds': TLS_ID,
        'tls-hostname': req.targetName,
        'downtime-limit': policy.downtimeLimitMs,
        // 0 would mean "as QEMU's default" (128 MiB/s): no cap is a very large one
        'max-bandwidth': (policy.maxBandwidthMiBps || 1_000_000) * 1024 ** 2,
        // throttle only a guest that dirties more than is sent, until the policy's iteration count
        'throttle-trigger-threshold': 100,
        'cpu-throttle-initial': 20,
        'cpu-throttle-increment': 10,
        ...(multifd ? { 'multifd-channels': 2 } : {}),
      });
      const host = target.address.includes(':') ? `[${target.address}]` : target.address;
      let outcome: string | undefined;
      let wake = () => {};
      const off = this.qmp.onEvent((ev) => {
        if (ev.event !== 'MIGRATION') return;
        const st = (ev.data as { status?: string } | undefined)?.status;
        if (st === 'completed' || st === 'failed' || st === 'cancelled') {
          outcome = st;
          wake(); // the switch-over is on the clock: no polling delay
        }
      });
      try {
        migrating = true;
        await this.exec('migrate', { uri: `tcp:${host}:${target.port}` });
        let stricter = false;
        let postcopyStarted = false;
        let postcopySwitched = false;
        let last = 0;
        for (;;) {
          if (outcome) break;
          if (!this.migrationCancel && Date.now() > deadline) {
            const m = await this.queryMigrate();
            this.migrationTimedOut = true;
            this.cancelMigration(
              `did not converge within ${policy.timeLimitSec} s: ${bytes(m.ram?.remaining ?? 0)} left, the guest dirties ${bytes((m.ram?.['dirty-pages-rate'] ?? 0) * (m.ram?.['page-size'] ?? 4096))}/s at ${Math.round(m.ram?.mbps ?? 0)} Mbit/s`,
            );
          }
          if (Date.now() - last >= 500) {
            last = Date.now();
            const m = await this.queryMigrate();
            if (m.status === 'completed' || m.status === 'failed' || m.status === 'cancelled') {
              outcome = m.status;
              break;
            }
            // Post-copy: the guest's state minus its memory is on the target, which must run now (it
            // pulls the rest from here); from this moment a failure of either host loses the guest.
            if (m.status === 'postcopy-active' && !postcopySwitched) {
              postcopySwitched = true;
              onProgress({ phase: 'switching' });
            }
            const iteration = m.ram?.['dirty-sync-count'] ?? 0;
            if (iteration >= policy.autoConvergeAfter && !stricter) {
              stricter = true;
              await this.exec('migrate-set-parameters', { 'throttle-trigger-threshold': 50 }).catch(() => {});
            }
            if (policy.postcopy && !postcopyStarted && iteration >= policy.autoConvergeAfter * 2) {
              postcopyStarted = true;
              await this.exec('migrate-start-postcopy');
            }
            if (m.ram)
              onProgress({
                phase: 'memory',
                ram: {
                  transferredBytes: m.ram.transferred ?? 0,
                  remainingBytes: m.ram.remaining ?? 0,
                  totalBytes: m.ram.total ?? 0,
                  dirtyRateBytesPerSec: (m.ram['dirty-pages-rate'] ?? 0) * (m.ram['page-size'] ?? 4096),
                  iteration,
                  expectedDowntimeMs: m['expected-downtime'] ?? 0,
                  mbps: m.ram.mbps ?? 0,
                },
              });
          }
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 100);
            wake = () => {
              clearTimeout(t);
              resolve();
            };
          });
        }
      } finally {
        off();
      }
      if (outcome !== 'completed') {
        migrating = false;
        cancelled();
        const m = await this.queryMigrate().catch(() => undefined);
        throw new NfError('unavailable', `the migration failed: ${m?.['error-desc'] ?? outcome}`);
      }
      // The guest is paused here now. The mirrors let go of the target consistently (a soft cancel of a
      // job in step), so the target holds every write the guest made.
      await this.endJobs(mirrors.splice(0), 'in-step');
      // The target holds everything: it may run now (the controller tells it at once, while the NBD
      // nodes close and the figures come).
      onProgress({ phase: 'switching' });
      await this.dropNodes(nbdNodes);
      nbdNodes.length = 0;
      // QEMU fills in its figures just after the completion event
      const m = await waitFor(
        async () => {
          const q = await this.queryMigrate();
          return q['total-time'] ? q : undefined;
        },
        { timeoutMs: 2000, intervalMs: 10, what: 'the migration figures' },
      ).catch(() => this.queryMigrate());
      return {
        downtimeMs: m.downtime ?? 0,
        totalMs: m['total-time'] ?? Date.now() - startedAt,
        setupMs: m['setup-time'] ?? 0,
        transferredBytes: m.ram?.transferred ?? 0,
        postcopy: (m.ram?.['postcopy-requests'] ?? 0) > 0 || policy.postcopy,
        ...(disk ? { diskCopyMs: disk.ms, diskBytes: disk.bytes } : {}),
      };
    } catch (err) {
      if (migrating) await this.exec('migrate_cancel').catch(() => {});
      await this.endJobs(mirrors, 'abort');
      await this.dropNodes(nbdNodes);
      // a guest QEMU paused for the switch-over runs on when the migration fails; make sure of it
      if ((await this.runState().catch(() => '')) === 'postmigrate')
        log.warn('migration failed after QEMU completed', { id: this.id });
      throw err;
    } finally {
      this.migrationCancel = undefined;
    }
  }

  /**
   * Removes what an earlier migration left in this QEMU when its daemon died mid-way: a migration still
   * under way (cancelled), disk mirrors to a target that is gone, and their NBD nodes. The guest goes on.
   */
  async cleanupMigration(): Promise<void> {
    const m = await this.queryMigrate().catch(() => undefined);
    if (!migrationOver(m?.status)) {
      log.warn('cancelling a migration an earlier daemon left running', { vm: this.id, status: m?.status });
      await this.exec('migrate_cancel').catch(() => {});
      const over = () =>
        waitFor(async () => migrationOver((await this.queryMigrate()).status), {
          timeoutMs: 10_000,
          intervalMs: 50,
          what: 'the old migration to end',
        });
      await over().catch(async () => {
        // A cancel can hang on a connection whose peer is gone (multifd): drop the migration's
        // connections (QMP yank), then wait again.
        log.warn('the old migration does not end; yanking its connections', { vm: this.id });
        await this.exec('yank', { instances: [{ type: 'migration' }] }).catch(() => {});
        await over();
      });
    }
    const jobs = ((await this.exec('query-jobs').catch(() => [])) as JobInfo[]).filter((j) =>
      /^mig[0-9a-z]*-/.test(j.id),
    );
    if (jobs.length === 0 && !(await this.staleNbdNodes()).length) return;
    log.warn('cleaning up what an earlier migration left', { vm: this.id, jobs: jobs.map((j) => j.id) });
    await this.endJobs(
      jobs.map((j) => j.id),
      'abort',
    );
    await this.dropNodes(await this.staleNbdNodes());
  }

  /**
   * Ends block jobs and forgets them (cancelled, concluded, dismissed). `in-step`: mirrors in step let
   * go of their target consistently (every write is there), and not ending is an error; `abort`: at
   * once, whatever state the target is in, best effort.
   */
  private async endJobs(ids: string[], how: 'in-step' | 'abort'): Promise<void> {
    if (ids.length === 0) return;
    const force = how === 'abort';
    for (const id of ids) {
      const cancel = this.exec('block-job-cancel', { device: id, force });
      await (force ? cancel.catch(() => {}) : cancel); // an abort meets jobs already over
    }
    const over = waitFor(
      async () =>
        ((await this.exec('query-jobs')) as JobInfo[])
          .filter((j) => ids.includes(j.id))
          .every((j) => j.status === 'concluded'),
      { timeoutMs: force ? 10_000 : 30_000, intervalMs: 10, what: 'block jobs to end' },
    );
    await (force ? over.catch(() => {}) : over);
    for (const id of ids) await this.exec('job-dismiss', { id }).catch(() => {});
  }

  private async staleNbdNodes(): Promise<string[]> {
    const nodes = (await this.exec('query-named-block-nodes', { flat: true }).catch(() => [])) as {
      'node-name': string;
    }[];
    return nodes.map((n) => n['node-name']).filter((n) => /^mig[0-9a-z]*-/.test(n));
  }

  /** Closes block nodes we added (a job that just ended may hold them a moment longer). */
  private async dropNodes(nodes: string[]): Promise<void> {
    for (const n of nodes)
      await waitFor(
        () =>
          this.exec('blockdev-del', { 'node-name': n }).then(
            () => true,
            (err: Error) => (/not found|cannot find|failed to find/i.test(err.message) ? true : undefined),
          ),
        { timeoutMs: 5000, intervalMs: 100, what: `QEMU to close ${n}` },
      ).catch((err: Error) =>
        log.warn('cannot close a block node', { vm: this.id, node: n, err: err.message }),
      );
  }

  /** Stops an outgoing migration; migrateOut then fails with `cancelled` and the guest runs on here. */
  cancelMigration(reason = 'the migration was cancelled'): void {
    this.migrationCancel ??= reason;
    void this.exec('migrate_cancel').catch(() => {});
  }

  /** Resumes a guest whose migration completed but whose target never ran it (it still has its state). */
  async resumeAfterMigration(): Promise<void> {
    if ((await this.runState()) === 'postmigrate') await this.exec('cont');
  }

  private async queryMigrate(): Promise<QueryMigrate> {
    return (await this.exec('query-migrate')) as QueryMigrate;
  }

  /** The cluster certificate as QEMU TLS credentials (re-made each time: the files may have changed). */
  private async tlsCreds(dir: string, endpoint: 'server' | 'client'): Promise<void> {
    await this.exec('object-del', { id: TLS_ID }).catch(() => {});
    await this.exec('object-add', {
      'qom-type': 'tls-creds-x509',
      id: TLS_ID,
      dir,
      endpoint,
      'verify-peer': true,
    });
  }

  async pause(): Promise<void> {
    await this.exec('stop');
  }

  async resume(): Promise<void> {
    await this.exec('cont');
  }

  async powerdown(): Promise<void> {
    await this.exec('system_powerdown');
  }

  async reset(): Promise<void> {
    await this.exec('system_reset');
  }

  async kill(): Promise<void> {
    this.shutdownSeen = true;
    try {
      await this.qmp.execute('quit', undefined, { timeoutMs: 5000 });
    } catch {
      if (pidAlive(this.pid)) process.kill(this.pid, 'SIGKILL');
    }
    await Promise.race([
      this.exited,
      waitFor(() => !pidAlive(this.pid), { timeoutMs: 10_000, what: 'QEMU to quit' }).catch(() => {
        if (pidAlive(this.pid)) process.kill(this.pid, 'SIGKILL');
      }),
    ]);
  }

  async snapshotDisks(name: string, diskIds: string[]): Promise<void> {
    // One transaction: every disk gets the snapshot at the same instant, or none does.
    const nodes = await Promise.all(diskIds.map((d) => this.topNode(d)));
    const actions = nodes.map((device) => ({
      type: 'blockdev-snapshot-internal-sync',
      data: { device, name },
    }));
    await this.exec('transaction', { actions });
  }

  /**
   * A backup's point in time (image fleecing): in one transaction, every disk gets a copy-before-write
   * job into a scratch qcow2 whose backing is the disk (sync=none: old data is copied there just before
   * the guest overwrites it), a new persistent dirty bitmap that tracks changes from this instant, and a
   * frozen copy of the base bitmap (the changes since the last backup). The scratch nodes are exported
   * read-only over NBD on a unix socket: they read as the disks were at this instant.
   */
  async startBackupExport(opts: { socket: string; disks: BackupExportDisk[] }): Promise<void> {
    const actions: { type: string; data: Record<string, unknown> }[] = [];
    const tops = new Map<string, string>();
    for (const d of opts.disks) {
      const top = await this.topNode(d.id);
      tops.set(d.id, top);
      await this.exec('blockdev-add', {
        driver: 'qcow2',
        'node-name': `bk-${d.id}`,
        file: { driver: 'file', filename: d.scratch },
        backing: top,
      });
      if (d.newBitmap)
        actions.push({
          type: 'block-dirty-bitmap-add',
          data: { node: top, name: d.newBitmap, persistent: true },
        });
      if (d.baseBitmap) {
        const copy = `bk-since-${d.id}`;
        actions.push(
          {
            type: 'block-dirty-bitmap-add',
            data: { node: top, name: copy, persistent: false, disabled: true },
          },
          { type: 'block-dirty-bitmap-merge', data: { node: top, target: copy, bitmaps: [d.baseBitmap] } },
        );
      }
      actions.push({
        type: 'blockdev-backup',
        data: { 'job-id': `bk-${d.id}`, device: top, target: `bk-${d.id}`, sync: 'none' },
      });
    }
    try {
      await this.exec('transaction', { actions });
      await this.exec('nbd-server-start', { addr: { type: 'unix', data: { path: opts.socket } } });
      for (const d of opts.disks)
        await this.exec('block-export-add', {
          type: 'nbd',
          id: `bk-exp-${d.id}`,
          'node-name': `bk-${d.id}`,
          name: d.id,
          writable: false,
          ...(d.baseBitmap ? { bitmaps: [{ node: tops.get(d.id), name: `bk-since-${d.id}` }] } : {}),
        });
    } catch (err) {
      await this.endBackupExport(opts.disks, false);
      throw err;
    }
  }

  /**
   * Ends a backup's exports and jobs and drops the scratch nodes. `ok`: the backup is stored, so its new
   * bitmap is the one the next backup starts from and the base one goes; otherwise the new one goes and
   * the base one stays (the next backup is still incremental from the last stored one).
   */
  async endBackupExport(disks: BackupExportDisk[], ok: boolean): Promise<void> {
    for (const d of disks)
      await this.exec('block-export-del', { id: `bk-exp-${d.id}`, mode: 'hard' }).catch(() => {});
    await waitFor(
      async () => {
        const exports = (await this.exec('query-block-exports').catch(() => [])) as { id: string }[];
        return !exports.some((e) => e.id.startsWith('bk-exp-'));
      },
      { timeoutMs: 5000, intervalMs: 20, what: 'the backup exports to close' },
    ).catch(() => {});
    await this.exec('nbd-server-stop').catch(() => {});
    await this.endJobs(
      disks.map((d) => `bk-${d.id}`),
      'abort',
    );
    await this.dropNodes(disks.map((d) => `bk-${d.id}`));
    for (const d of disks) {
      const node = await this.topNode(d.id);
      const drop = (name: string) => this.exec('block-dirty-bitmap-remove', { node, name }).catch(() => {});
      await drop(`bk-since-${d.id}`);
      if (ok && d.baseBitmap) await drop(d.baseBitmap);
      if (!ok && d.newBitmap) await drop(d.newBitmap);
    }
  }

  /** The dirty bitmaps of a disk's top node: their names and whether QEMU can use them. */
  async diskBitmaps(diskId: string): Promise<{ name: string; usable: boolean; persistent: boolean }[]> {
    const top = await this.topNode(diskId);
    const nodes = (await this.exec('query-named-block-nodes', { flat: true })) as {
      'node-name': string;
      'dirty-bitmaps'?: { name?: string; persistent?: boolean; inconsistent?: boolean; busy?: boolean }[];
    }[];
    return (nodes.find((n) => n['node-name'] === top)?.['dirty-bitmaps'] ?? [])
      .filter((b) => b.name)
      .map((b) => ({ name: b.name!, usable: !b.inconsistent && !b.busy, persistent: !!b.persistent }));
  }

  /** Removes a disk's dirty bitmap (an unusable one too); a missing one is no error. */
  async removeDiskBitmap(diskId: string, name: string): Promise<void> {
    await this.exec('block-dirty-bitmap-remove', { node: await this.topNode(diskId), name }).catch(
      (err: Error) => {
        if (!/not found/i.test(err.message)) throw err;
      },
    );
  }

  async blockStats(): Promise<{ rd: number; wr: number }> {
    const list = (await this.exec('query-blockstats')) as {
      stats?: { rd_bytes?: number; wr_bytes?: number };
    }[];
    let rd = 0;
    let wr = 0;
    for (const b of list) {
      rd += b.stats?.rd_bytes ?? 0;
      wr += b.stats?.wr_bytes ?? 0;
    }
    return { rd, wr };
  }

  async resizeDisk(diskId: string, sizeBytes: number): Promise<void> {
    await this.exec('block_resize', { 'node-name': await this.topNode(diskId), size: sizeBytes });
  }

  /**
   * The node a disk's device uses now: the disk's id, or the node a move switched it to (asked from
   * QEMU, so it holds after `serve` restarts too).
   */
  async topNode(diskId: string): Promise<string> {
    const blocks = (await this.exec('query-block')) as {
      qdev?: string;
      inserted?: { 'node-name'?: string };
    }[];
    // query-block names a device by its id (ide-hd, scsi-hd), or a virtio one by its backend's QOM path
    const dev = blocks.find(
      (b) => b.qdev === `/machine/peripheral/${diskId}-dev/virtio-backend` || b.qdev === `${diskId}-dev`,
    );
    return dev?.inserted?.['node-name'] ?? diskId;
  }

  async mirrorDisk(
    diskId: string,
    target: Record<string, unknown>[],
    onProgress: (done: number, total: number) => void,
  ): Promise<void> {
    const source = await this.topNode(diskId);
    const sourceNodes = await this.nodeChain(source);
    const top = target.at(-1)!['node-name'] as string;
    const job = `move-${diskId}`;
    const added: string[] = [];
    try {
      for (const node of target) {
        await this.exec('blockdev-add', node);
        added.push(node['node-name'] as string);
      }
      await this.exec('blockdev-mirror', {
        'job-id': job,
        device: source,
        target: top,
        sync: 'full',
        'auto-dismiss': false,
      });
      let completing = false;
      for (;;) {
        const jobs = (await this.exec('query-jobs')) as {
          id: string;
          status: string;
          'current-progress': number;
          'total-progress': number;
          error?: string;
        }[];
        const j = jobs.find((x) => x.id === job);
        if (!j) throw new NfError('internal', `the mirror job of ${diskId} vanished`);
        onProgress(j['current-progress'], j['total-progress']);
        if (j.status === 'concluded') {
          await this.exec('job-dismiss', { id: job }).catch(() => {});
          if (j.error) throw new NfError('unavailable', `moving ${diskId} failed: ${j.error}`);
          if (!completing) throw new NfError('unavailable', `moving ${diskId} was cancelled`);
          break;
        }
        if (j.status === 'ready' && !completing) {
          // Source and target are in step: the device switches to the target atomically.
          await this.exec('job-complete', { id: job });
          completing = true;
        }
        await Bun.sleep(250);
      }
    } catch (err) {
      // (the job stays, concluded, until dismissed: auto-dismiss is off)
      await this.endJobs([job], 'abort');
      await this.dropNodes(added.reverse());
      throw err;
    }
    // The device now uses the target: close the old volume (top node first, then what it stood on).
    for (const n of sourceNodes)
      await this.exec('blockdev-del', { 'node-name': n }).catch((err: Error) =>
        log.warn('cannot close a moved disk’s old node', { vm: this.id, node: n, err: err.message }),
      );
  }

  /**
   * A disk's top node and the nodes we opened under it (named `<top>-...`, e.g. its file node), top first;
   * implicit nodes (a qcow2 backing file) go with their parent.
   */
  private async nodeChain(top: string): Promise<string[]> {
    const nodes = (await this.exec('query-named-block-nodes', { flat: true })) as { 'node-name': string }[];
    const under = nodes.map((n) => n['node-name']).filter((n) => n.startsWith(`${top}-`));
    return [top, ...new Set(under)];
  }

  async deleteDiskSnapshots(name: string, diskIds: string[]): Promise<void> {
    for (const diskId of diskIds) {
      const device = await this.topNode(diskId);
      try {
        await this.exec('blockdev-snapshot-delete-internal-sync', { device, name });
      } catch (err) {
        // Already gone from this disk (e.g. an earlier half-finished delete): that is the goal anyway.
        if (!(err instanceof NfError && /not found|can't find/i.test(err.message))) throw err;
      }
    }
  }

  async plugDisk(disk: DiskRun): Promise<void> {
    const nodes = disk.blockdev as BlockdevNode[] | undefined;
    if (!nodes?.length) throw new NfError('internal', `disk ${disk.id} has no block nodes to open`);
    // what an earlier attempt (a daemon killed half-way) left open under these names, no device on it
    const have = new Set(
      ((await this.exec('query-named-block-nodes', { flat: true })) as { 'node-name': string }[]).map(
        (n) => n['node-name'],
      ),
    );
    if ((await this.devices()).disks.includes(disk.id))
      throw new NfError('already_exists', `VM ${this.id} has a device for disk ${disk.id} already`);
    await this.dropNodes(
      nodes
        .map((n) => n['node-name'])
        .filter((n) => have.has(n))
        .reverse(),
    );
    const added: string[] = [];
    try {
      for (const node of nodes) {
        await this.exec('blockdev-add', node);
        added.push(node['node-name']);
      }
      await this.exec('device_add', hotplugDiskDevice(disk));
    } catch (err) {
      await this.dropNodes(added.reverse());
      throw err;
    }
  }

  async unplugDisk(diskId: string): Promise<void> {
    const chain = await this.nodeChain(await this.topNode(diskId));
    await this.unplugDevice(`${diskId}-dev`);
    await this.dropNodes(chain);
  }

  async plugNic(nic: NicRun): Promise<void> {
    if (nic.type === 'ovn') return this.plugOvnNic(nic);
    if (!this.net?.nat)
      throw new NfError('unavailable', `this host has no nat network backend for VM ${this.id}`);
    const paths = runPaths(this.net.runDir);
    const socket = nicSocketPath(paths, nic.id);
    await this.exec('netdev_add', nicBackend(paths, nic.id));
    try {
      await this.exec('device_add', nicDevice(nic));
      try {
        await this.net.nat.attach(socket, this.net.runDir, nic.id);
      } catch (err) {
        await this.unplugDevice(`${nic.id}-dev`).catch(() => {});
        throw err;
      }
    } catch (err) {
      await this.exec('netdev_del', { id: nic.id }).catch(() => {});
      throw err;
    }
  }

  /** A NIC on an OVN network: its tap on the integration bridge first, then QEMU's backend and device. */
  private async plugOvnNic(nic: NicRun): Promise<void> {
    const ovn = this.net?.ovn;
    if (!ovn) throw new NfError('unavailable', `this host has no OVN for VM ${this.id}`);
    if (!nic.port) throw new NfError('internal', `NIC ${nic.id} names no OVN port`);
    const tap = tapName(this.id, nic.id);
    await ovn.plug(tap, nic.port, nic.central ?? '');
    try {
      await this.exec('netdev_add', tapBackend(this.id, nic.id));
      try {
        await this.exec('device_add', nicDevice(nic));
      } catch (err) {
        await this.exec('netdev_del', { id: nic.id }).catch(() => {});
        throw err;
      }
    } catch (err) {
      await ovn.unplug(tap);
      throw err;
    }
  }

  async unplugNic(nicId: string): Promise<void> {
    await this.unplugDevice(`${nicId}-dev`);
    await this.exec('netdev_del', { id: nicId }).catch((err: Error) =>
      log.warn('cannot remove an unplugged NIC’s backend', { vm: this.id, nic: nicId, err: err.message }),
    );
    this.net?.nat?.stop(this.net.runDir, [nicId]);
    // an OVN NIC's tap (none there for a nat NIC: nothing happens)
    await this.net?.ovn?.unplug(tapName(this.id, nicId));
  }

  async tune(change: TuneDevice): Promise<void> {
    if ('nic' in change) {
      await this.exec('set_link', { name: `${change.nic}-dev`, up: change.linkUp });
      return;
    }
    const l = change.limits;
    // QEMU's legacy throttling of the device's block backend: every field given, 0 = no limit
    // the device's name as query-block gives it: its id, or (virtio) its backend's QOM path
    const blocks = (await this.exec('query-block')) as { qdev?: string }[];
    const qdev = blocks
      .map((b) => b.qdev)
      .find(
        (q) => q === `${change.disk}-dev` || q === `/machine/peripheral/${change.disk}-dev/virtio-backend`,
      );
    if (!qdev) throw new NfError('not_found', `VM ${this.id} has no device for disk ${change.disk}`);
    await this.exec('block_set_io_throttle', {
      id: qdev,
      bps: l.bps ?? 0,
      bps_rd: l.bpsRead ?? 0,
      bps_wr: l.bpsWrite ?? 0,
      iops: l.iops ?? 0,
      iops_rd: l.iopsRead ?? 0,
      iops_wr: l.iopsWrite ?? 0,
    });
  }

  async changeMedia(iso: MediaRun | undefined): Promise<void> {
    const dev = 'cd1-dev';
    const blocks = (await this.exec('query-block')) as {
      qdev?: string;
      inserted?: { 'node-name'?: string };
    }[];
    const drive = blocks.find((b) => b.qdev === dev || b.qdev === `/machine/peripheral/${dev}`);
    if (!drive) throw new NfError('invalid_state', `VM ${this.id} has no media drive`);
    const old = drive.inserted?.['node-name'];
    const oldNodes = old ? await this.nodeChain(old) : [];
    const nodes = iso ? mediaNodes(iso, `cd1-m${Date.now().toString(36)}`) : [];
    const name = nodes.at(-1)?.['node-name'] as string | undefined;
    const added: string[] = [];
    try {
      if (iso)
        for (const node of nodes) {
          await this.exec('blockdev-add', node);
          added.push(node['node-name'] as string);
        }
      // an open tray is how a guest sees a disc go: QEMU tells it (force: the guest may have locked it)
      await this.exec('blockdev-open-tray', { id: dev, force: true });
      await this.exec('blockdev-remove-medium', { id: dev });
      if (name) await this.exec('blockdev-insert-medium', { id: dev, 'node-name': name });
      await this.exec('blockdev-close-tray', { id: dev });
    } catch (err) {
      await this.dropNodes(added.reverse());
      throw err;
    }
    await this.dropNodes(oldNodes);
  }

  async addVcpus(count: number): Promise<number> {
    type Slot = { type: string; 'qom-path'?: string; props: Record<string, number> };
    const slots = (await this.exec('query-hotpluggable-cpus')) as Slot[];
    const have = slots.filter((c) => c['qom-path']).length;
    // QEMU lists the slots highest first; fill the lowest free ones, in order
    const free = slots.filter((c) => !c['qom-path']).reverse();
    if (count - have > free.length)
      throw new NfError(
        'validation_failed',
        `VM ${this.id} has room for ${have + free.length} vCPUs (its maximum), not ${count}`,
      );
    for (const slot of free.slice(0, Math.max(0, count - have)))
      await this.exec('device_add', {
        driver: slot.type,
        id: `vcpu${Object.values(slot.props).join('-')}`,
        ...slot.props,
      });
    return Math.max(have, count);
  }

  tpmAlive(): boolean {
    return this.net ? swtpmPid(runPaths(this.net.runDir)) !== undefined : true;
  }

  async addMemory(memoryMiB: number): Promise<number> {
    const MiB = 1024 ** 2;
    const sum = (await this.exec('query-memory-size-summary')) as {
      'base-memory': number;
      'plugged-memory'?: number;
    };
    const have = Math.round((sum['base-memory'] + (sum['plugged-memory'] ?? 0)) / MiB);
    if (memoryMiB <= have) return have;
    const devs = (await this.exec('query-memory-devices')) as unknown[];
    const id = `dimm${devs.length}`;
    // one backend and one DIMM for the difference; the backend goes again if the DIMM does not go in
    await this.exec('object-add', {
      'qom-type': 'memory-backend-ram',
      id: `${id}-mem`,
      size: (memoryMiB - have) * MiB,
    });
    try {
      await this.exec('device_add', { driver: 'pc-dimm', id, memdev: `${id}-mem` });
    } catch (err) {
      await this.exec('object-del', { id: `${id}-mem` }).catch(() => {});
      throw err;
    }
    return memoryMiB;
  }

  async devices(): Promise<{ disks: string[]; nics: string[] }> {
    const list = (await this.exec('qom-list', { path: '/machine/peripheral' })) as { name: string }[];
    const ids = list.map((p) => p.name).filter((n) => n.endsWith('-dev'));
    return {
      disks: ids.filter((n) => /^disk\d+-dev$/.test(n)).map((n) => n.slice(0, -4)),
      nics: ids.filter((n) => /^net\d+-dev$/.test(n)).map((n) => n.slice(0, -4)),
    };
  }

  /**
   * device_del and the wait for QEMU to remove it: a PCIe device goes once the guest let it go (ACPI
   * or the slot's attention button, ~5 s for Linux), so a guest that ignores it keeps it (timeout).
   */
  private async unplugDevice(id: string): Promise<void> {
    const gone = async () =>
      !((await this.exec('qom-list', { path: '/machine/peripheral' })) as { name: string }[]).some(
        (p) => p.name === id,
      );
    if (await gone()) return;
    await this.exec('device_del', { id });
    // (20 s: inside the RPC deadline of 30 s, so the node answers before its caller gives up)
    await waitFor(gone, { timeoutMs: 20_000, intervalMs: 200, what: `the guest to release ${id}` }).catch(
      () => {
        throw new NfError(
          'timeout',
          `VM ${this.id}: the guest did not release ${id} within 20 s (it must accept hot-unplug: ACPI or PCIe hot-plug); the device stays`,
        );
      },
    );
  }

  onChannelChange(listener: (port: string, open: boolean) => void): void {
    this.channelListeners.push(listener);
  }

  onRuntimeChange(listener: (state: RuntimeState, reason?: string) => void): void {
    this.runtimeListeners.push(listener);
  }

  detach(): void {
    this.detached = true;
    this.qmp.close();
  }

  private async exec(command: string, args?: Record<string, unknown>): Promise<unknown> {
    try {
      return await this.qmp.execute(command, args, { timeoutMs: 30_000 });
    } catch (err) {
      if (err instanceof QmpError)
        throw new NfError('hypervisor_error', `QEMU refused ${command}: ${err.desc}`);
      throw new NfError(
        'unavailable',
        `QEMU monitor of VM ${this.id} failed during ${command}: ${(err as Error).message}`,
      );
    }
  }
}
