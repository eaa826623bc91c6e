import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { TestDaemon } from '../harness/daemon';
import { createVm, kernelVm } from '../harness/vms';

describe('browser sessions and live events', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start({ env: { NEUROFLOW_SESSION_TTL_SEC: '3' } });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  const login = (username: string, password: string) =>
    fetch(`${d.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });

  it('logs root in with the generated password, refuses wrong ones, expires and ends sessions', async () => {
    const file = join(d.dataDir, 'root.password');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const password = readFileSync(file, 'utf8').trim();

    expect((await login('root', 'wrong')).status).toBe(401);
    expect((await login('admin', password)).status).toBe(401);
    const ok = await login('root', password);
    expect(ok.status).toBe(200);
    const cookie = ok.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/nf_session=[^;]+;.*HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    const session = cookie.split(';')[0]!;
    const asBrowser = (path: string, init: RequestInit = {}) =>
      fetch(`${d.url}${path}`, { ...init, headers: { cookie: session } });
    expect(await (await asBrowser('/api/v1/auth/whoami')).json()).toEqual({ user: 'root' });
    expect((await asBrowser('/api/v1/vms')).status).toBe(200);
    // The password never comes back from the API.
    expect(JSON.stringify(await d.api.request('GET', '/api/v1/tasks'))).not.toContain(password);

    // Sessions expire (3 s here).
    await waitFor(async () => (await asBrowser('/api/v1/vms')).status === 401, {
      timeoutMs: 15_000,
      intervalMs: 250,
      what: 'the session to expire',
    });

    const again = (await login('root', password)).headers.get('set-cookie')!.split(';')[0]!;
    expect((await fetch(`${d.url}/api/v1/vms`, { headers: { cookie: again } })).status).toBe(200);
    await fetch(`${d.url}/api/v1/auth/logout`, { method: 'POST', headers: { cookie: again } });
    expect((await fetch(`${d.url}/api/v1/vms`, { headers: { cookie: again } })).status).toBe(401);
  });

  it('streams VM state changes and tasks as server-sent events', async () => {
    const ctrl = new AbortController();
    const res = await fetch(`${d.url}/api/v1/events`, {
      headers: { authorization: `Bearer ${d.token}` },
      signal: ctrl.signal,
    });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
      }
    })().catch(() => {});
    await waitFor(() => text.includes('event: hello'), { timeoutMs: 5000, what: 'the stream to open' });
    const vm = await createVm(d.api, kernelVm('ev1', { start: true }));
    await waitFor(() => text.includes(`"id":"${vm.id}","state":"running"`), {
      timeoutMs: 20_000,
      what: 'a vm running event',
    });
    await waitFor(() => /event: task\ndata: \{[^\n]*"taskType":"vm.create"[^\n]*"status":"ok"/.test(text), {
      timeoutMs: 5000,
      what: 'the create task event',
    });
    await d.api.request('POST', `/api/v1/vms/${vm.id}/stop?force=true`);
    await waitFor(() => text.includes(`"id":"${vm.id}","state":"stopped"`), {
      timeoutMs: 20_000,
      what: 'a vm stopped event',
    });
    ctrl.abort();
    await pump;
    // Events need credentials like everything else.
    expect((await fetch(`${d.url}/api/v1/events`)).status).toBe(401);
  });
});
