import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../../util/wait';
import { QgaClient } from './client';

/** A fake guest agent on a real unix socket, scripted per test. */
function fakeAgent(
  path: string,
  handle: (msg: { execute: string; arguments?: Record<string, unknown> }, sock: Socket) => void,
): Promise<Server> {
  return new Promise((resolve) => {
    const srv = createServer((sock) => {
      let buf = '';
      sock.on('data', (d: Buffer) => {
        // Like a real agent: 0xFF resets the parser.
        const text = d.toString('latin1');
        const reset = text.lastIndexOf('\xff');
        buf = reset >= 0 ? text.slice(reset + 1) : buf + text;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) handle(JSON.parse(line), sock);
        }
      });
    });
    srv.listen(path, () => resolve(srv));
  });
}

function reply(sock: Socket, value: unknown, delimited = false): void {
  sock.write(
    Buffer.concat([
      Buffer.from(delimited ? [0xff] : []),
      Buffer.from(`${JSON.stringify({ return: value })}\n`),
    ]),
  );
}

describe('QgaClient', () => {
  let dir: string;
  let srv: Server | undefined;
  let client: QgaClient | undefined;
  afterEach(async () => {
    client?.close();
    await new Promise<void>((r) => (srv ? srv.close(() => r()) : r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('syncs with a random id, drops stale bytes, then runs commands in order', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nf-qga-'));
    const path = join(dir, 'qga.sock');
    srv = await fakeAgent(path, (msg, sock) => {
      if (msg.execute === 'guest-sync-delimited') {
        // Leftovers of an earlier session arrive first and must be ignored.
        sock.write('{"return": "stale"}\n{"ret');
        reply(sock, msg.arguments?.id, true);
      } else if (msg.execute === 'guest-ping') reply(sock, {});
      else if (msg.execute === 'guest-info') reply(sock, { version: '1.0', supported_commands: [] });
      else sock.write(`${JSON.stringify({ error: { class: 'CommandNotFound', desc: 'nope' } })}\n`);
    });
    client = new QgaClient(path);
    const [a, b] = await Promise.all([
      client.execute('guest-ping'),
      client.execute<{ version: string }>('guest-info'),
    ]);
    expect(a).toEqual({});
    expect(b.version).toBe('1.0');
    await expect(client.execute('guest-frobnicate')).rejects.toMatchObject({ code: 'not_implemented' });
  });

  it('reports an absent agent as unavailable and a silent command as a timeout, then recovers', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nf-qga-'));
    const path = join(dir, 'qga.sock');
    let awake = false;
    let syncs = 0;
    srv = await fakeAgent(path, (msg, sock) => {
      if (msg.execute === 'guest-sync-delimited') {
        syncs++;
        if (awake) reply(sock, msg.arguments?.id, true);
      } else if (msg.execute === 'guest-exec-status') {
        // never answers
      } else reply(sock, 42);
    });
    client = new QgaClient(path, 300);
    await expect(client.execute('guest-ping')).rejects.toMatchObject({ code: 'unavailable' });
    awake = true;
    expect(await client.execute('guest-ping')).toBe(42);
    await expect(client.execute('guest-exec-status', { pid: 1 }, { timeoutMs: 200 })).rejects.toMatchObject({
      code: 'timeout',
    });
    const before = syncs;
    expect(await client.execute('guest-ping')).toBe(42);
    expect(syncs).toBe(before + 1); // resynced after the timeout
  });

  it('turns agent errors into guest_error with the class', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nf-qga-'));
    const path = join(dir, 'qga.sock');
    srv = await fakeAgent(path, (msg, sock) => {
      if (msg.execute === 'guest-sync-delimited') reply(sock, msg.arguments?.id, true);
      else sock.write(`${JSON.stringify({ error: { class: 'GenericError', desc: 'Invalid parameter' } })}\n`);
    });
    client = new QgaClient(path);
    await expect(client.execute('guest-exec', { path: '/nope' })).rejects.toMatchObject({
      code: 'guest_error',
      message: expect.stringContaining('Invalid parameter'),
    });
  });

  it('does not wait for commands that never answer on success', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nf-qga-'));
    const path = join(dir, 'qga.sock');
    const seen: string[] = [];
    srv = await fakeAgent(path, (msg, sock) => {
      seen.push(msg.execute);
      if (msg.execute === 'guest-sync-delimited') reply(sock, msg.arguments?.id, true);
    });
    client = new QgaClient(path);
    // Resolves although the agent never answers; the command did reach it.
    await client.execute('guest-shutdown', { mode: 'powerdown' }, { noReply: true });
    await waitFor(() => seen.includes('guest-shutdown'), {
      timeoutMs: 2000,
      what: 'the agent to get guest-shutdown',
    });
  });

  it('never takes a reply to a no-reply command, or bytes split around 0xFF, for the next answer', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nf-qga-'));
    const path = join(dir, 'qga.sock');
    srv = await fakeAgent(path, (msg, sock) => {
      if (msg.execute === 'guest-sync-delimited') {
        // A partial stale line, then the delimiter in a chunk of its own, then the sync reply.
        sock.write('{"return": "half');
        setTimeout(() => sock.write(Buffer.from([0xff])), 5);
        setTimeout(() => reply(sock, msg.arguments?.id), 10);
      } else if (msg.execute === 'guest-shutdown')
        reply(sock, {}); // agent-rs answers it
      else if (msg.execute === 'guest-info') reply(sock, { version: '9' });
    });
    client = new QgaClient(path);
    await client.execute('guest-shutdown', {}, { noReply: true });
    expect(await client.execute<{ version: string }>('guest-info')).toEqual({ version: '9' });
  });

  it('gives up on an agent that stops reading, and frees the channel', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nf-qga-'));
    const path = join(dir, 'qga.sock');
    let ignore = false;
    srv = await fakeAgent(path, (msg, sock) => {
      if (msg.execute === 'guest-sync-delimited') reply(sock, msg.arguments?.id, true);
      else if (!ignore) reply(sock, 'pong');
    });
    client = new QgaClient(path);
    expect(await client.execute('guest-ping')).toBe('pong');
    ignore = true;
    await expect(client.execute('guest-ping', undefined, { timeoutMs: 200 })).rejects.toMatchObject({
      code: 'timeout',
    });
    ignore = false;
    expect(await client.execute('guest-ping', undefined, { timeoutMs: 2000 })).toBe('pong');
  });
});
