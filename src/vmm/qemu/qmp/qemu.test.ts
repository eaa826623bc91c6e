/**
 * Runs the client against a real QEMU (`-machine none`: no guest needed, boots
 * in milliseconds). Skipped when QEMU is not installed.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QmpClient } from './client';
import {
  blockdevSnapshotDeleteInternalSync,
  blockdevSnapshotInternalSync,
  humanMonitorCommand,
  queryBlock,
  queryStatus,
  queryVersion,
  queryVnc,
  quit,
  stop,
} from './commands';
import { QmpError } from './errors';

const QEMU = 'qemu-system-x86_64';

function versionOf(bin: string): string | undefined {
  try {
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8' });
    return /version (\d+\.\d+\.\d+)/.exec(out)?.[1];
  } catch {
    return undefined;
  }
}

const qemuVersion = versionOf(QEMU);
const hasQemuImg = versionOf('qemu-img') !== undefined;

describe.skipIf(qemuVersion === undefined)('QmpClient against real QEMU', () => {
  let dir: string;
  let proc: ChildProcess | undefined;
  let exited: Promise<number | null>;
  let client: QmpClient | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nf-qmp-qemu-'));
  });

  afterEach(async () => {
    client?.close();
    client = undefined;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    proc = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  async function start(extraArgs: string[] = []): Promise<QmpClient> {
    const sock = join(dir, 'qmp.sock');
    const args = ['-machine', 'none', '-accel', 'tcg', '-nodefaults', '-display', 'none', ...extraArgs];
    args.push('-qmp', `unix:${sock},server=on,wait=off`);
    const child = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    // No wait for the socket: connect() retries until QEMU has created it.
    try {
      client = await QmpClient.connect(sock, { timeoutMs: 10_000 });
    } catch (err) {
      throw new Error(`connect failed; qemu stderr: ${stderr}`, { cause: err });
    }
    return client;
  }

  it('greets with the installed version and reports status', async () => {
    const c = await start();
    const { major, minor, micro } = c.greeting.version.qemu;
    expect(`${major}.${minor}.${micro}`).toBe(qemuVersion);
    expect(c.greeting.capabilities).toContain('oob');
    expect((await queryVersion(c)).qemu).toEqual(c.greeting.version.qemu);
    expect(await queryStatus(c)).toEqual({ running: true, status: 'running' });
    expect(await queryVnc(c)).toEqual({ enabled: false });
  });

  it('maps an unknown command to QmpError CommandNotFound', async () => {
    const c = await start();
    const err = await c.execute('no-such-command').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ errorClass: 'CommandNotFound', command: 'no-such-command' });
    // The connection survives a failed command.
    expect((await queryStatus(c)).running).toBe(true);
  });

  it('sees STOP (sent before the stop reply) when waiting first', async () => {
    const c = await start();
    const stopped = c.waitForEvent('STOP');
    await stop(c);
    await stopped;
    expect(await queryStatus(c)).toEqual({ running: false, status: 'paused' });
  });

  it('handles concurrent commands', async () => {
    const c = await start();
    const results = await Promise.all(Array.from({ length: 20 }, () => queryStatus(c)));
    expect(results.every((r) => r.status === 'running')).toBe(true);
  });

  it.skipIf(!hasQemuImg)('creates and deletes an internal snapshot', async () => {
    const img = join(dir, 'disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']);
    const c = await start(['-drive', `if=none,id=drive0,file=${img},format=qcow2,node-name=disk0`]);
    const blocks = await queryBlock(c);
    expect(blocks.map((b) => [b.device, b.inserted?.['node-name']])).toEqual([['drive0', 'disk0']]);
    await blockdevSnapshotInternalSync(c, { device: 'disk0', name: 'snap1' });
    expect(await humanMonitorCommand(c, 'info snapshots')).toContain('snap1');
    const info = await blockdevSnapshotDeleteInternalSync(c, { device: 'disk0', name: 'snap1' });
    expect(info.name).toBe('snap1');
    const err = await blockdevSnapshotDeleteInternalSync(c, { device: 'disk0', name: 'snap1' }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ errorClass: 'GenericError' });
  });

  it('quit makes QEMU exit and closes the connection', async () => {
    const c = await start();
    const shutdown = c.waitForEvent('SHUTDOWN');
    await quit(c);
    expect((await shutdown).data).toMatchObject({ guest: false, reason: 'host-qmp-quit' });
    await c.closed;
    expect(c.isClosed).toBe(true);
    expect(await exited).toBe(0);
  });
});
