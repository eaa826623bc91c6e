import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QmpClient } from './client';
import { queryStatus, quit } from './commands';
import { QmpDisconnectedError, QmpError, QmpTimeoutError } from './errors';
import { FakeQmpServer } from './fake-server';
import type { QmpEvent } from './protocol';

let dir: string;
let sockPath: string;
const servers: FakeQmpServer[] = [];
const clients: QmpClient[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nf-qmp-'));
  sockPath = join(dir, 'qmp.sock');
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.allSettled(servers.splice(0).map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

async function startServer(opts?: { greet?: boolean }): Promise<FakeQmpServer> {
  const s = await FakeQmpServer.listen(sockPath, opts);
  servers.push(s);
  return s;
}

async function connect(timeoutMs?: number): Promise<QmpClient> {
  const c = await QmpClient.connect(sockPath, timeoutMs === undefined ? {} : { timeoutMs });
  clients.push(c);
  return c;
}

describe('QmpClient', () => {
  it('reads the greeting and negotiates capabilities before resolving', async () => {
    const server = await startServer();
    const client = await connect();
    expect(client.greeting).toEqual({
      version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'fake' },
      capabilities: ['oob'],
    });
    expect(server.commands.map((c) => c.execute)).toEqual(['qmp_capabilities']);
    expect(server.commands[0]?.arguments).toBeUndefined();
    expect(client.isClosed).toBe(false);
  });

  it('matches out-of-order replies by id', async () => {
    const server = await startServer();
    const client = await connect();
    const a = client.execute('cmd-a');
    const b = client.execute('cmd-b', { x: 1 });
    const c = client.execute('cmd-c');
    await server.waitForCommand('cmd-c');
    const byName = new Map(server.commands.map((cmd) => [cmd.execute, cmd]));
    const ids = new Set([...byName.values()].map((cmd) => cmd.id));
    expect(ids.size).toBe(byName.size);
    expect(byName.get('cmd-b')?.arguments).toEqual({ x: 1 });
    // All three replies in a single write, reversed.
    server.sendRaw(
      ['cmd-c', 'cmd-a', 'cmd-b']
        .map((n) => `${JSON.stringify({ return: n, id: byName.get(n)?.id })}\r\n`)
        .join(''),
    );
    expect(await Promise.all([a, b, c])).toEqual(['cmd-a', 'cmd-b', 'cmd-c']);
  });

  it('turns a QEMU error into QmpError', async () => {
    const server = await startServer();
    const client = await connect();
    const p = client.execute('bogus');
    server.fail(
      await server.waitForCommand('bogus'),
      'CommandNotFound',
      'The command bogus has not been found',
    );
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ errorClass: 'CommandNotFound', command: 'bogus' });
    expect((err as QmpError).desc).toBe('The command bogus has not been found');
  });

  it('times out a command, ignores its late reply and keeps working', async () => {
    const server = await startServer();
    const client = await connect();
    const err = await client.execute('slow', undefined, { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect(err).toMatchObject({ command: 'slow', timeoutMs: 50 });

    const next = client.execute('query-status');
    server.reply(await server.waitForCommand('slow'), 'late');
    server.reply(await server.waitForCommand('query-status'), {
      running: true,
      status: 'running',
      singlestep: false,
    });
    expect(await next).toEqual({ running: true, status: 'running', singlestep: false });
    expect(client.isClosed).toBe(false);
  });

  it('delivers events to listeners until they unsubscribe', async () => {
    const server = await startServer();
    const client = await connect();
    const seen: QmpEvent[] = [];
    const off = client.onEvent((ev) => seen.push(ev));
    const resumed = client.waitForEvent('RESUME');
    server.event('STOP');
    server.event('RESUME', { x: 1 });
    expect(await resumed).toEqual({
      event: 'RESUME',
      data: { x: 1 },
      timestamp: { seconds: 1, microseconds: 2 },
    });
    expect(seen.map((e) => e.event)).toEqual(['STOP', 'RESUME']);
    off();
    const again = client.waitForEvent('STOP');
    server.event('STOP');
    await again;
    expect(seen).toHaveLength(2);
  });

  it('waitForEvent honours match and times out', async () => {
    const server = await startServer();
    const client = await connect();
    const p = client.waitForEvent('BLOCK_JOB_COMPLETED', { match: (ev) => ev.data?.device === 'disk1' });
    server.event('BLOCK_JOB_COMPLETED', { device: 'disk0' });
    server.event('BLOCK_JOB_COMPLETED', { device: 'disk1' });
    expect((await p).data).toEqual({ device: 'disk1' });

    const err = await client.waitForEvent('NEVER', { timeoutMs: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect(err).toMatchObject({ command: 'event NEVER', timeoutMs: 30 });
  });

  it('rejects pending work with QmpDisconnectedError when the server goes away', async () => {
    const server = await startServer();
    const client = await connect();
    const pending = client.execute('query-status');
    const waiting = client.waitForEvent('SHUTDOWN', { timeoutMs: Number.POSITIVE_INFINITY });
    await server.waitForCommand('query-status');
    server.dropClients();
    await expect(pending).rejects.toBeInstanceOf(QmpDisconnectedError);
    await expect(pending).rejects.toMatchObject({ command: 'query-status' });
    await expect(waiting).rejects.toBeInstanceOf(QmpDisconnectedError);
    await client.closed;
    expect(client.isClosed).toBe(true);
    await expect(client.execute('query-status')).rejects.toBeInstanceOf(QmpDisconnectedError);
  });

  it('close() is idempotent and rejects pending commands', async () => {
    await startServer();
    const client = await connect();
    const pending = client.execute('query-status');
    client.close();
    client.close();
    expect(client.isClosed).toBe(true);
    await expect(pending).rejects.toBeInstanceOf(QmpDisconnectedError);
    await client.closed;
  });

  it('treats the connection dropping after quit as success', async () => {
    const server = await startServer();
    const client = await connect();
    const q = quit(client);
    await server.waitForCommand('quit');
    server.dropClients();
    await expect(q).resolves.toBeUndefined();
    await client.closed;
  });

  it('also accepts a real reply to quit followed by close', async () => {
    const server = await startServer();
    const client = await connect();
    const q = client.execute('quit');
    const cmd = await server.waitForCommand('quit');
    server.event('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
    server.reply(cmd);
    server.dropClients();
    await expect(q).resolves.toEqual({});
    await client.closed;
  });

  it('typed wrappers send the right command', async () => {
    const server = await startServer();
    const client = await connect();
    const p = queryStatus(client);
    server.reply(await server.waitForCommand('query-status'), {
      running: false,
      status: 'paused',
      singlestep: false,
    });
    expect(await p).toEqual({ running: false, status: 'paused' });
  });

  it('retries until the socket appears', async () => {
    const started = Date.now();
    const pending = QmpClient.connect(sockPath, { timeoutMs: 5000 });
    // The delay is the scenario (QEMU still starting), not synchronisation.
    await new Promise((r) => setTimeout(r, 200));
    await startServer();
    const client = await pending;
    clients.push(client);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(client.greeting.version.qemu.major).toBe(7);
  });

  it('times out when nothing ever listens', async () => {
    const started = Date.now();
    const err = await QmpClient.connect(sockPath, { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect(err).toMatchObject({ command: 'connect', timeoutMs: 150 });
    expect((err as Error).message).toContain('ENOENT');
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(2000);
  });

  it('times out when the server accepts but never greets', async () => {
    const server = await startServer({ greet: false });
    const err = await QmpClient.connect(sockPath, { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect((err as Error).message).toContain('waiting for greeting');
    expect(server.connection).toBeDefined();
  });
});
