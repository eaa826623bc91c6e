import { readdirSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../../src/util/proc';
import { waitFor } from '../../src/util/wait';
import { TestDaemon } from '../harness/daemon';
import { BOOTED, testGuest } from '../harness/guest';
import { waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm, vmAction } from '../harness/vms';

describe('bad input and faults: clear errors, nothing left behind', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  const disks = () => readdirSync(join(d.dataDir, 'pools', 'local', 'disks'));
  const post = (body: unknown) =>
    fetch(`${d.url}/api/v1/vms`, {
      method: 'POST',
      headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  async function expectError(res: Response, status: number, code: string, message?: RegExp): Promise<void> {
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(status);
    expect(body.error.code).toBe(code);
    if (message) expect(body.error.message).toMatch(message);
  }

  it('rejects malformed requests with 4xx and creates nothing', async () => {
    await expectError(
      await post({ ...kernelVm('bad1'), colour: 'blue' }),
      400,
      'validation_failed',
      /colour/,
    );
    await expectError(await post({ ...kernelVm('bad1'), vcpus: 'two' }), 400, 'validation_failed', /vcpus/);
    await expectError(
      await post({ ...kernelVm('bad1'), memoryMiB: -5 }),
      400,
      'validation_failed',
      /memoryMiB/,
    );
    await expectError(await post({ ...kernelVm('bad1'), name: '../etc' }), 400, 'validation_failed', /name/);
    await expectError(
      await post({ ...kernelVm('bad1'), name: '0b5e2c3a-1111-4222-8333-944445555666' }),
      400,
      'validation_failed',
      /UUID/,
    );
    await expectError(await post('{"name": "bad1",'), 400, 'validation_failed', /JSON/);
    await expectError(await post({ ...kernelVm('bad1'), disks: [{}] }), 400, 'validation_failed', /sizeGiB/);
    await expectError(
      await post({ ...kernelVm('bad1'), boot: { kernel: join(testGuest().dir, 'nonexistent-vmlinuz') } }),
      400,
      'file_not_found',
      /nonexistent/,
    );
    // A comma in an initrd path would be a module separator for a multiboot kernel: refused.
    await expectError(
      await post({
        ...kernelVm('bad1'),
        boot: { kernel: testGuest().vmlinux, initrd: `${testGuest().initrd},/etc/shadow` },
      }),
      400,
      'validation_failed',
      /without commas/,
    );
    // Host files outside the allowed directories never reach a guest.
    await expectError(
      await post({ ...kernelVm('bad1'), boot: { cdrom: '/etc/shadow' } }),
      403,
      'forbidden',
      /outside/,
    );
    await expectError(
      await post({ ...kernelVm('bad1'), networks: [{ network: 'nope' }] }),
      400,
      'validation_failed',
      /network "nope"/,
    );
    await expectError(
      await post({ ...kernelVm('bad1'), boot: { disk: 3 } }),
      400,
      'validation_failed',
      /boot.disk/,
    );
    // whole MiB only, and never a disk larger than the pool's free space
    await expectError(
      await post({ ...kernelVm('bad1'), disks: [{ sizeGiB: 1e-300 }] }),
      400,
      'validation_failed',
      /sizeGiB/,
    );
    await expectError(
      await post({ ...kernelVm('bad1'), disks: [{ sizeGiB: 65536 }] }),
      422,
      'insufficient_resources',
      /larger than the free space of pool local/,
    );
    // a multicast MAC is no NIC's address
    await expectError(
      await post({ ...kernelVm('bad1'), networks: [{ network: 'default', mac: '01:00:5e:00:00:01' }] }),
      400,
      'validation_failed',
      /unicast/,
    );
    const tooMuch = Math.ceil(totalmem() / 1024 ** 2) + 1024;
    await expectError(
      await post({ ...kernelVm('bad1'), memoryMiB: tooMuch }),
      422,
      'insufficient_resources',
      /MiB/,
    );
    expect(await d.api.request<unknown[]>('GET', '/api/v1/vms')).toEqual([]);
    expect(disks()).toEqual([]);
  });

  it('refuses duplicates, unknown VMs, wrong states and missing tokens', async () => {
    await createVm(d.api, kernelVm('dup'));
    await expectError(await post(kernelVm('dup')), 409, 'already_exists', /dup/);
    expect(disks()).toHaveLength(1);

    for (const [method, path] of [
      ['GET', '/api/v1/vms/ghost'],
      ['POST', '/api/v1/vms/ghost/start'],
      ['DELETE', '/api/v1/vms/ghost'],
    ] as const) {
      const res = await fetch(`${d.url}${path}`, { method, headers: { authorization: `Bearer ${d.token}` } });
      await expectError(res, 404, 'not_found', /ghost/);
    }
    await expectError(
      await fetch(`${d.url}/api/v1/vms/dup/pause`, {
        method: 'POST',
        headers: { authorization: `Bearer ${d.token}` },
      }),
      409,
      'invalid_state',
    );
    await expectError(await fetch(`${d.url}/api/v1/vms`), 401, 'unauthenticated');
    await expectError(
      await fetch(`${d.url}/api/v1/vms`, { headers: { authorization: 'Bearer wrong' } }),
      401,
      'unauthenticated',
    );
    await expectError(await fetch(`${d.url}/metrics`), 401, 'unauthenticated');
    expect((await fetch(`${d.url}/api/v1/health`)).status).toBe(200);
    const doc = (await (await fetch(`${d.url}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/v1/vms', '/api/v1/vms/{id}/start', '/api/v1/vms/{id}/snapshots']),
    );
    await d.api.request('DELETE', '/api/v1/vms/dup');
  });

  it('reports a QEMU that fails to start, with its reason, and leaves no process', async () => {
    const vm = await createVm(d.api, kernelVm('corrupt'));
    // Wreck the disk image: QEMU refuses to open it.
    writeFileSync(join(d.dataDir, 'pools', 'local', 'disks', vm.disks[0]!.volume), 'not a qcow2 image');
    await expect(vmAction(d.api, 'corrupt', 'start')).rejects.toMatchObject({
      code: 'hypervisor_error',
      message: expect.stringMatching(/qcow2|format|disk0/i),
    });
    const seen = await getVm(d.api, 'corrupt');
    expect(seen.state).toBe('error');
    expect(seen.reason).toMatch(/qcow2|format|disk0/i);
    expect(d.qemuPids()).toEqual([]);
    await d.api.request('DELETE', '/api/v1/vms/corrupt');
  });

  it('reports a QEMU killed from outside as error with the reason from its stderr', async () => {
    const vm = await createVm(d.api, kernelVm('victim', { start: true }));
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    process.kill(vm.pid!, 'SIGTERM');
    await waitFor(() => !pidAlive(vm.pid!), { timeoutMs: 10_000, what: 'QEMU to exit' });
    const seen = await waitFor(
      async () => {
        const v = await getVm(d.api, 'victim');
        return v.state === 'error' ? v : undefined;
      },
      { timeoutMs: 10_000, what: 'victim to be reported in error' },
    );
    expect(seen.reason).toMatch(/terminating on signal 15/);
    // Starting again clears the error.
    expect((await vmAction(d.api, 'victim', 'start')).state).toBe('running');
    await d.api.request('DELETE', '/api/v1/vms/victim?force=true');
  });

  it('refuses uploads in formats that refer to other files (VMDK), without probing them', async () => {
    const vmdk = '# Disk DescriptorFile\nversion=1\nRW 8 FLAT "/etc/shadow" 0\n';
    const res = await fetch(`${d.url}/api/v1/images?name=evil`, {
      method: 'POST',
      headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/octet-stream' },
      body: vmdk,
    });
    await expectError(res, 400, 'validation_failed', /VMDK/);
    expect(await d.api.request<unknown[]>('GET', '/api/v1/images')).toEqual([]);
  });
});
