import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { kernelVm } from '../harness/vms';

/** Sends raw bytes on a new connection; resolves with what came back and how long until the close. */
function raw(
  url: string,
  head: string,
  body: string,
  deadlineMs: number,
): Promise<{ reply: string; closedAfterMs: number }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = connect(Number(u.port), u.hostname, () => s.write(head + body));
    let reply = '';
    s.on('data', (b) => (reply += b));
    s.on('error', () => {});
    s.on('close', () => resolve({ reply, closedAfterMs: performance.now() - t0 }));
    setTimeout(() => {
      s.destroy();
      reject(new Error(`the connection was still open after ${deadlineMs} ms; got: ${reply.slice(0, 200)}`));
    }, deadlineMs);
  });
}

describe('request limits: small JSON bodies, no connection held open by someone without a token', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start({ env: { NEUROFLOW_HTTP_IDLE_TIMEOUT_SEC: '2' } });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it('refuses a 50 MB login body by its length, without reading it', async () => {
    const head =
      'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${50 * 1024 ** 2}\r\nConnection: close\r\n\r\n`;
    const { reply } = await raw(d.url, head, '{"user":"root","password":"', 15_000);
    expect(reply).toMatch(/^HTTP\/1\.1 413/);
    expect(reply).toContain('payload_too_large');
  });

  it('closes a connection whose body never finishes (no token)', async () => {
    const head =
      'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n';
    const { closedAfterMs } = await raw(d.url, head, '{"user":', 20_000);
    expect(closedAfterMs).toBeGreaterThan(1500);
  });

  it('refuses a JSON body over 1 MiB from an authenticated client with 413', async () => {
    const err = await rejection(
      d.api.request('POST', '/api/v1/vms', kernelVm('big', { description: 'x'.repeat(2 * 1024 ** 2) })),
    );
    expect(err.code).toBe('payload_too_large');
  });

  it('lets an authenticated client keep a quiet connection (the event stream) past the idle timeout', async () => {
    const res = await fetch(`${d.url}/api/v1/events`, { headers: { authorization: `Bearer ${d.token}` } });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await Bun.sleep(4000); // longer than the 2 s idle timeout: the point of the test, not a sync
    await d.api.request('POST', '/api/v1/vms', kernelVm('late'));
    const dec = new TextDecoder();
    let seen = '';
    const deadline = Date.now() + 15_000;
    while (!seen.includes('vm.create') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += dec.decode(value);
    }
    expect(seen).toContain('vm.create');
    await reader.cancel();
  });

  it('refuses cookie writes from another site, and bodies that are not JSON', async () => {
    const password = readFileSync(join(d.dataDir, 'root.password'), 'utf8').trim();
    const login = await fetch(`${d.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: d.url },
      body: JSON.stringify({ username: 'root', password }),
    });
    expect(login.status).toBe(200);
    const cookie = /^[^;]+/.exec(login.headers.get('set-cookie') ?? '')![0];
    const images = async () => (await d.api.request<unknown[]>('GET', '/api/v1/images')).length;
    const before = await images();
    const imp = (
      headers: Record<string, string>,
      body = JSON.stringify({ name: 'x', path: join(tmpdir(), 'nf-no-such-image.qcow2') }),
    ) => fetch(`${d.url}/api/v1/images/import`, { method: 'POST', headers: { cookie, ...headers }, body });
    // a form post from another site (text/plain needs no preflight)
    const foreign = await imp({ origin: 'http://127.0.0.1:1', 'content-type': 'text/plain' });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: { code: string } }).error.code).toBe('forbidden');
    const crossSite = await imp({ 'sec-fetch-site': 'cross-site', 'content-type': 'application/json' });
    expect(crossSite.status).toBe(403);
    // a login from another site too
    const foreignLogin = await fetch(`${d.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'http://evil.example' },
      body: JSON.stringify({ username: 'root', password }),
    });
    expect(foreignLogin.status).toBe(403);
    // our own page's request goes through (and fails on its own terms: the file is not there)
    const own = await imp({
      origin: d.url,
      'sec-fetch-site': 'same-origin',
      'content-type': 'application/json',
    });
    expect(((await own.json()) as { error: { code: string } }).error.code).toBe('file_not_found');
    // a token client sending something other than JSON
    const plain = await fetch(`${d.url}/api/v1/vms`, {
      method: 'POST',
      headers: { authorization: `Bearer ${d.token}`, 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(plain.status).toBe(415);
    expect(((await plain.json()) as { error: { code: string } }).error.code).toBe('unsupported_media_type');
    expect(await images()).toBe(before);
  });
});
