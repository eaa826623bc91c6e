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
    const actions = diskIds.map((device) => ({
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
    await this.exec('block_resize', { 'node-name': diskId, size: sizeBytes });
  }

  async deleteDiskSnapshots(name: string, diskIds: string[]): Promise<void> {
    for (const device of diskIds) {
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
