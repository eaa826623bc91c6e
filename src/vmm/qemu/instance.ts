import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { NfError } from '../../errors';
import { createLogger } from '../../util/log';
import { pidAlive } from '../../util/proc';
import { deferred, waitFor } from '../../util/wait';
import type { ExitInfo, RuntimeState, VmInstance } from '../types';
import { type QmpClient, QmpError } from './qmp';

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
  private readonly exitDeferred = deferred<ExitInfo>();

  constructor(
    readonly id: string,
    readonly pid: number,
    readonly startedAt: string,
    private readonly qmp: QmpClient,
    private readonly stderrPath: string,
    child?: ChildProcess,
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
    const dev = blocks.find((b) => b.qdev === `/machine/peripheral/${diskId}-dev/virtio-backend`);
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
      await this.exec('job-cancel', { id: job, force: true }).catch(() => {});
      await waitFor(
        async () => !((await this.exec('query-jobs')) as { id: string }[]).some((x) => x.id === job),
        { timeoutMs: 10_000, what: 'the mirror job to end' },
      )
        .catch(() => this.exec('job-dismiss', { id: job }))
        .catch(() => {});
      for (const n of added.reverse()) await this.exec('blockdev-del', { 'node-name': n }).catch(() => {});
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
