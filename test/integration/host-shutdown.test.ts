import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../../src/util/proc';
import { waitFor } from '../../src/util/wait';
import { neuroflowCommand, TestDaemon } from '../harness/daemon';
import { BOOTED } from '../harness/guest';
import { waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm, type VmView } from '../harness/vms';

/** The host's shutdown timeout in this test: the guests that listen are down long before it. */
const TIMEOUT_SEC = 20;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** `neuroflow appliance stop-vms`, as the appliance's ::shutdown script runs it; killed at a deadline. */
async function stopVms(dataDir: string, timeoutSec: number): Promise<Run> {
  const [cmd, ...pre] = neuroflowCommand();
  const started = Date.now();
  const child = spawn(
    cmd!,
    [...pre, 'appliance', 'stop-vms', '--data-dir', dataDir, '--timeout', String(timeoutSec)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b) => (stdout += b));
  child.stderr!.on('data', (b) => (stderr += b));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, {
      timeoutMs: (timeoutSec + 90) * 1000,
      intervalMs: 100,
      what: `appliance stop-vms to finish (so far:\n${stdout}${stderr})`,
    });
    return { code: await exited, stdout, stderr, elapsedMs: Date.now() - started };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

const consoleLog = (dataDir: string, id: string) =>
  readFileSync(join(dataDir, 'node', 'vms', id, 'console.log'), 'utf8');

describe('host shutdown: appliance stop-vms', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it('shuts the guests down through their agent or ACPI, forces one that ignores it, and leaves their wanted state alone', async () => {
    const withAgent = await createVm(d.api, kernelVm('hs-agent', { start: true }));
    // Debian's qemu-ga answers nothing to guest-shutdown when it works.
    const withQemuGa = await createVm(d.api, kernelVm('hs-qga', { start: true }, 'qemu-ga'));
    const acpiOnly = await createVm(d.api, kernelVm('hs-acpi', { start: true, agent: false }));
    // No operating system (an empty disk, no NIC): nothing in it answers the power button.
    const deaf = await createVm(d.api, {
      ...kernelVm('hs-deaf', { start: true, agent: false, memoryMiB: 64, networks: [] }),
      boot: { disk: 0 },
    });
    const vms = [withAgent, withQemuGa, acpiOnly, deaf];
    for (const vm of vms) expect(vm.state).toBe('running');
    for (const vm of [withAgent, withQemuGa, acpiOnly]) await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    for (const name of ['hs-agent', 'hs-qga'])
      await waitFor(async () => (await getVm(d.api, name)).agent?.status === 'connected', {
        timeoutMs: 60_000,
        intervalMs: 250,
        what: `the guest agent of ${name} to connect`,
      });

    // While serve runs, it owns the monitors and its reconciler would see the guests go: refused.
    const refused = await stopVms(d.dataDir, TIMEOUT_SEC);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/neuroflow serve \(pid \d+\) still manages the VMs/);
    for (const vm of vms) expect(pidAlive(vm.pid!)).toBe(true);

    // What the appliance's shutdown script does first: the supervisor stops serve; the guests stay.
    await d.stopGracefully();
    for (const vm of vms) expect(pidAlive(vm.pid!)).toBe(true);

    const run = await stopVms(d.dataDir, TIMEOUT_SEC);
    const lines = run.stdout.trim().split('\n');
    const line = (name: string) => lines.find((l) => l.startsWith(`vm ${name}: `)) ?? '';
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    const header = /^shutting down 4 VMs \((.*)\); forced off after (\d+) s$/.exec(lines[0]!);
    expect(header?.[1]?.split(', ').sort()).toEqual(['hs-acpi', 'hs-agent', 'hs-deaf', 'hs-qga']);
    expect(header?.[2]).toBe(String(TIMEOUT_SEC));
    expect(line('hs-agent'), run.stdout).toMatch(
      /^vm hs-agent: clean, shut down in [\d.]+ s \(guest agent\)$/,
    );
    expect(line('hs-qga'), run.stdout).toMatch(/^vm hs-qga: clean, shut down in [\d.]+ s \(guest agent\)$/);
    expect(line('hs-acpi'), run.stdout).toMatch(
      /^vm hs-acpi: clean, shut down in [\d.]+ s \(ACPI power button\)$/,
    );
    expect(line('hs-deaf'), run.stdout).toMatch(
      /^vm hs-deaf: forced off after [\d.]+ s \(asked: ACPI power button\): still running at the deadline$/,
    );
    expect(lines.at(-1)).toBe('VMs stopped: 3 clean, 1 forced');
    // The ones that listened finished long before the deadline; the deaf one was forced at it.
    const secs = (l: string) => Number(/ (\d+\.\d) s/.exec(l)?.[1]);
    expect(secs(line('hs-agent'))).toBeLessThan(TIMEOUT_SEC);
    expect(secs(line('hs-qga'))).toBeLessThan(TIMEOUT_SEC);
    expect(secs(line('hs-acpi'))).toBeLessThan(TIMEOUT_SEC);
    expect(secs(line('hs-deaf'))).toBeGreaterThanOrEqual(TIMEOUT_SEC);
    expect(run.elapsedMs).toBeLessThan((TIMEOUT_SEC + 30) * 1000);

    // The guests really shut themselves down (both agents run /sbin/shutdown, acpid the power-button
    // script; each says so and unmounts the disks), and every QEMU is gone.
    for (const vm of [withAgent, withQemuGa, acpiOnly])
      expect(consoleLog(d.dataDir, vm.id)).toMatch(/NEUROFLOW-TEST-GUEST: powering off/);
    for (const vm of vms) expect(pidAlive(vm.pid!)).toBe(false);
    expect(d.qemuPids()).toEqual([]);

    // Nothing left to do the second time.
    expect((await stopVms(d.dataDir, TIMEOUT_SEC)).stdout.trim()).toBe('no VMs running');

    // The host comes back: serve finds the guests down. stop-vms wrote no wanted state; the reconciler,
    // as after any guest power-off, records them as stopped and starts none of them.
    await d.launch();
    for (const vm of vms) {
      const power = async () => ((await getVm(d.api, vm.id)) as VmView & { powerState: string }).powerState;
      await waitFor(async () => (await power()) === 'stopped', {
        timeoutMs: 30_000,
        intervalMs: 250,
        what: `${vm.name} to be recorded as stopped`,
      });
      const seen = await getVm(d.api, vm.id);
      expect(seen.state, JSON.stringify(seen)).toBe('stopped');
    }
    expect(d.qemuPids()).toEqual([]);
  });

  it('starts the onBoot VMs again when the host comes back, in order and with their delay; the others stay off', async () => {
    const first = await createVm(
      d.api,
      kernelVm('ob-first', { start: true, onBoot: { order: 1, delaySec: 3 } }),
    );
    const second = await createVm(d.api, kernelVm('ob-second', { start: true, onBoot: { order: 2 } }));
    const off = await createVm(d.api, kernelVm('ob-off', { start: true }));
    for (const vm of [first, second, off]) await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    expect((await getVm(d.api, first.id)) as unknown).toMatchObject({
      onBoot: { enabled: true, order: 1, delaySec: 3 },
    });

    // a planned shutdown of the host: serve stops, stop-vms shuts the guests down, serve starts again
    await d.stopGracefully();
    const run = await stopVms(d.dataDir, TIMEOUT_SEC);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(d.qemuPids()).toEqual([]);
    await d.launch();
    type Seen = VmView & { powerState: string; startedAt?: string };
    const seen = (id: string) => getVm(d.api, id) as Promise<Seen>;
    const running = (id: string) =>
      waitFor(
        async () => {
          const v = await seen(id);
          return v.state === 'running' && v.startedAt ? v : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 250, what: `${id} to run again` },
      );
    const a = await running(first.id);
    const b = await running(second.id);
    // in order, the second at least the first's delay after it
    expect(Date.parse(b.startedAt!) - Date.parse(a.startedAt!)).toBeGreaterThanOrEqual(3000);
    await waitFor(async () => (await seen(off.id)).powerState === 'stopped', {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: 'ob-off to be recorded as stopped',
    });
    expect((await seen(off.id)).state).toBe('stopped');

    // a crash and restart of the host (a new boot id): the onBoot VM comes back too
    await d.kill9();
    process.kill(a.pid!, 'SIGKILL');
    process.kill(b.pid!, 'SIGKILL');
    await waitFor(() => !pidAlive(a.pid!) && !pidAlive(b.pid!), { timeoutMs: 10_000, what: 'QEMU to die' });
    for (const vm of [first, second]) {
      const path = join(d.dataDir, 'node', 'vms', vm.id, 'journal.json');
      const journal = JSON.parse(readFileSync(path, 'utf8')) as { bootId?: string };
      expect(journal.bootId).toBeTruthy();
      writeFileSync(path, JSON.stringify({ ...journal, bootId: 'an-earlier-boot' }));
    }
    await d.launch();
    await running(first.id);
    await running(second.id);
    for (const vm of [first, second]) await d.api.request('POST', `/api/v1/vms/${vm.id}/stop?force=true`);
  });
});
