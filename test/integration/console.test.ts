import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../harness/daemon';
import { BOOTED } from '../harness/guest';
import { waitConsole } from '../harness/serial';
import { createVm, kernelVm } from '../harness/vms';

const upgradeHeaders = {
  Upgrade: 'websocket',
  Connection: 'Upgrade',
  'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Version': '13',
};

describe('VM console websocket (for noVNC)', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it('carries RFB from QEMU through an authenticated, one-time ticket', async () => {
    const vm = await createVm(d.api, kernelVm('con1', { start: true }));
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    const t = await d.api.request<{ ticket: string; path: string }>(
      'POST',
      `/api/v1/vms/${vm.id}/console-ticket`,
    );
    const ws = new WebSocket(`${d.url.replace('http', 'ws')}${t.path}`);
    ws.binaryType = 'arraybuffer';
    const first = await new Promise<Buffer>((resolve, reject) => {
      ws.onmessage = (ev) => resolve(Buffer.from(ev.data as ArrayBuffer));
      ws.onerror = () => reject(new Error('websocket failed'));
    });
    expect(first.toString('latin1')).toBe('RFB 003.008\n');
    const secTypes = new Promise<Buffer>((resolve) => {
      ws.onmessage = (ev) => resolve(Buffer.from(ev.data as ArrayBuffer));
    });
    ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
    const sec = await secTypes;
    expect(sec[0]).toBeGreaterThan(0); // number of security types offered
    ws.close();

    // The ticket was used once: it opens nothing again.
    const reused = await fetch(`${d.url}${t.path}`, { headers: upgradeHeaders });
    expect(reused.status).toBe(401);
    const none = await fetch(`${d.url}/api/v1/vms/${vm.id}/vnc`, { headers: upgradeHeaders });
    expect(none.status).toBe(401);
    // A ticket for one VM does not open another.
    const other = await createVm(d.api, kernelVm('con2', { start: true }));
    const t2 = await d.api.request<{ ticket: string }>('POST', `/api/v1/vms/${vm.id}/console-ticket`);
    const wrong = await fetch(`${d.url}/api/v1/vms/${other.id}/vnc?ticket=${t2.ticket}`, {
      headers: upgradeHeaders,
    });
    expect(wrong.status).toBe(401);
    // And tickets need the API token.
    const anon = await fetch(`${d.url}/api/v1/vms/${vm.id}/console-ticket`, { method: 'POST' });
    expect(anon.status).toBe(401);
    await d.api.request('DELETE', `/api/v1/vms/${other.id}?force=true`);
  });
});
