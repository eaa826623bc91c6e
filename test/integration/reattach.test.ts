import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../../src/util/proc';
import { waitFor } from '../../src/util/wait';
import { TestDaemon } from '../harness/daemon';
import { BOOTED } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm, vmAction } from '../harness/vms';

describe('guests outlive the daemon; etcd restarts lose nothing', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it('keeps a VM running across kill -9 of serve and re-attaches to it', async () => {
    const vm = await createVm(d.api, kernelVm('survivor', { start: true }));
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    const stoppedVm = await createVm(d.api, kernelVm('idle'));
    const etcdBefore = d.etcdPid();

    await d.kill9();
    expect(pidAlive(vm.pid!)).toBe(true);

    await d.launch();
    expect(d.etcdPid()).toBe(etcdBefore); // the running etcd was adopted, not fought over
    const again = await getVm(d.api, 'survivor');
    expect(again.state).toBe('running');
    expect(again.pid).toBe(vm.pid);
    expect((await getVm(d.api, stoppedVm.id)).state).toBe('stopped');
    // The monitor really works again: the guest still answers and a graceful stop goes through.
    expect((await guestRun(d.api, d.dataDir, vm.id, 'echo still-here')).trim()).toBe('still-here');
    expect((await vmAction(d.api, 'survivor', 'pause')).state).toBe('paused');
    expect((await vmAction(d.api, 'survivor', 'stop', '?timeoutSec=60')).state).toBe('stopped');
    expect(pidAlive(vm.pid!)).toBe(false);
  });

  it('refuses a second daemon on the same data dir', async () => {
    const second = await TestDaemon.start({ dataDir: d.dataDir }).then(
      () => 'started',
      (err: Error) => err.message,
    );
    expect(second).toMatch(/another neuroflow serve .* already uses/);
    expect((await d.api.request<{ status: string }>('GET', '/api/v1/health')).status).toBe('ok');
  });

  it('never starts a second QEMU next to one whose monitor does not answer', async () => {
    const vm = await createVm(d.api, kernelVm('wedged', { start: true }));
    await d.kill9();
    process.kill(vm.pid!, 'SIGSTOP'); // frozen: alive, but its monitor cannot answer
    try {
      await d.launch();
      const seen = await getVm(d.api, 'wedged');
      expect(seen.state).toBe('error');
      expect(seen.reason).toMatch(/monitor does not answer/);
      await expect(vmAction(d.api, 'wedged', 'start')).rejects.toMatchObject({ code: 'invalid_state' });
      await expect(d.api.request('DELETE', '/api/v1/vms/wedged')).rejects.toMatchObject({
        code: 'invalid_state',
      });
      expect(pidAlive(vm.pid!)).toBe(true);
      expect((await vmAction(d.api, 'wedged', 'stop', '?force=true')).state).toBe('stopped');
      expect(pidAlive(vm.pid!)).toBe(false);
      await d.api.request('DELETE', '/api/v1/vms/wedged');
    } finally {
      if (pidAlive(vm.pid!)) process.kill(vm.pid!, 'SIGKILL');
    }
  });

  it('reconnects to etcd after it is killed, and keeps every record', async () => {
    const before = await d.api.request<{ id: string }[]>('GET', '/api/v1/vms');
    const etcd = d.etcdPid()!;
    process.kill(etcd, 'SIGKILL');
    await waitFor(() => !pidAlive(etcd), { timeoutMs: 5000, what: 'etcd to die' });
    // The daemon's supervisor restarts etcd; the API works again without a daemon restart.
    await waitFor(
      async () => {
        try {
          return (await d.api.request<{ id: string }[]>('GET', '/api/v1/vms')).length === before.length;
        } catch {
          return false;
        }
      },
      { timeoutMs: 60_000, intervalMs: 250, what: 'the API to answer after the etcd restart' },
    );
    expect(d.etcdPid()).not.toBe(etcd);
    const created = await createVm(d.api, kernelVm('after-etcd'));
    expect((await getVm(d.api, created.id)).name).toBe('after-etcd');
  });

  it('reports a VM whose QEMU stopped while the daemon was down', async () => {
    const vm = await createVm(d.api, kernelVm('orphan', { start: true }));
    await d.kill9();
    process.kill(vm.pid!, 'SIGKILL');
    await waitFor(() => !pidAlive(vm.pid!), { timeoutMs: 5000, what: 'QEMU to die' });
    await d.launch();
    const seen = await getVm(d.api, 'orphan');
    expect(['stopped', 'error']).toContain(seen.state);
    expect(d.qemuPids()).toEqual([]);
  });
});
