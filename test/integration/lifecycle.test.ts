import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../../src/util/proc';
import { waitFor } from '../../src/util/wait';
import { TestDaemon } from '../harness/daemon';
import { BOOTED } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm, vmAction } from '../harness/vms';

describe('VM lifecycle on one host', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it('creates, boots, pauses, resumes, reboots, stops gracefully and deletes a VM', async () => {
    const vm = await createVm(d.api, kernelVm('life1', { vcpus: 2 }));
    expect(vm.state).toBe('stopped');
    const disk = join(d.dataDir, 'pools', 'local', 'disks', vm.disks[0]!.volume);
    expect(existsSync(disk)).toBe(true);

    const started = await vmAction(d.api, 'life1', 'start');
    expect(started.state).toBe('running');
    expect(started.pid).toBeGreaterThan(1);
    expect(pidAlive(started.pid!)).toBe(true);
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    await waitConsole(d.api, vm.id, /NEUROFLOW-TEST-GUEST: ip=10\.0\.2\.15/);
    // What the guest sees matches the spec: 2 vCPUs, one virtio disk of 1 GiB.
    expect((await guestRun(d.api, d.dataDir, vm.id, 'grep -c ^processor /proc/cpuinfo')).trim()).toBe('2');
    expect((await guestRun(d.api, d.dataDir, vm.id, 'cat /sys/block/vda/size')).trim()).toBe(
      String(2 * 1024 * 1024),
    );

    await expect(vmAction(d.api, 'life1', 'start')).rejects.toMatchObject({ code: 'invalid_state' });

    expect((await vmAction(d.api, 'life1', 'pause')).state).toBe('paused');
    expect((await vmAction(d.api, 'life1', 'resume')).state).toBe('running');

    const before = (await getVm(d.api, 'life1')).pid;
    const rebooted = await vmAction(d.api, 'life1', 'reboot', '?timeoutSec=30');
    expect(rebooted.state).toBe('running');
    expect(rebooted.pid).not.toBe(before);
    expect(pidAlive(before!)).toBe(false);

    // Graceful stop: the guest sees the ACPI power button and powers itself off.
    await waitConsole(d.api, vm.id, new RegExp(`${BOOTED}[\\s\\S]*${BOOTED}`));
    const stopped = await vmAction(d.api, 'life1', 'stop', '?timeoutSec=60');
    expect(stopped.state).toBe('stopped');
    await waitConsole(d.api, vm.id, /NEUROFLOW-TEST-GUEST: powering off/);
    expect(pidAlive(rebooted.pid!)).toBe(false);
    await expect(vmAction(d.api, 'life1', 'stop')).rejects.toMatchObject({ code: 'invalid_state' });

    await d.api.request('DELETE', '/api/v1/vms/life1');
    await expect(getVm(d.api, 'life1')).rejects.toMatchObject({ code: 'not_found' });
    expect(existsSync(disk)).toBe(false);
    expect(existsSync(join(d.dataDir, 'node', 'vms', vm.id))).toBe(false);
  });

  it('force-stops at once and deletes a running VM only with force', async () => {
    const vm = await createVm(d.api, kernelVm('life2', { start: true }));
    expect(vm.state).toBe('running');
    await expect(d.api.request('DELETE', '/api/v1/vms/life2')).rejects.toMatchObject({
      code: 'invalid_state',
    });
    const stopped = await vmAction(d.api, 'life2', 'stop', '?force=true');
    expect(stopped.state).toBe('stopped');
    expect(pidAlive(vm.pid!)).toBe(false);
    await vmAction(d.api, 'life2', 'start');
    await d.api.request('DELETE', '/api/v1/vms/life2?force=true');
    expect(d.qemuPids()).toEqual([]);
    expect(readdirSync(join(d.dataDir, 'pools', 'local', 'disks'))).toEqual([]);
  });

  it('reports a guest that powers itself off as stopped, and lists the host', async () => {
    const vm = await createVm(d.api, kernelVm('life3', { start: true }));
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    await guestRun(d.api, d.dataDir, vm.id, 'true');
    // Pause and resume first: the poweroff must still be taken as the guest's own, not restarted.
    await vmAction(d.api, 'life3', 'pause');
    await vmAction(d.api, 'life3', 'resume');
    // The guest halts on its own: the typed poweroff never prints its end marker, so wait on state.
    const { typeOnSerial } = await import('../harness/serial');
    await typeOnSerial(d.dataDir, vm.id, 'poweroff -f');
    await waitFor(async () => (await getVm(d.api, 'life3')).state === 'stopped', {
      timeoutMs: 30_000,
      what: 'life3 stopped',
    });
    expect((await getVm(d.api, 'life3')).reason).toBeUndefined();
    expect(d.qemuPids()).toEqual([]); // and it stays down: not restarted behind the admin's back

    const nodes = await d.api.request<
      { name: string; accelerator: string; qemuVersion: string; state: string }[]
    >('GET', '/api/v1/nodes');
    expect(nodes).toHaveLength(1);
    expect(nodes[0]).toMatchObject({ accelerator: 'tcg', state: 'ready' });
    expect(nodes[0]!.qemuVersion).toMatch(/^\d+\.\d+/);

    const tasks = await d.api.request<{ type: string; status: string }[]>('GET', '/api/v1/tasks');
    expect(tasks.some((t) => t.type === 'vm.create' && t.status === 'ok')).toBe(true);
    const metrics = await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${d.token}` } }).then(
      (r) => r.text(),
    );
    expect(metrics).toMatch(/neuroflow_vms\{state="stopped"\} \d+/);
    expect(metrics).toContain('neuroflow_api_requests_total');
  });
});
