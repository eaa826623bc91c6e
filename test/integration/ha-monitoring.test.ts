import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { TestDaemon } from '../harness/daemon';
import { BOOTED } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm, type TaskView, type VmView } from '../harness/vms';

/**
 * HA VM monitoring on one host: a guest whose agent stops answering (SIGSTOP, so init does not respawn
 * it) while its disk is idle is reset once the monitoring timeout has passed, as a task; a guest that
 * keeps its disk busy is not.
 */
describe('HA VM monitoring', () => {
  let d: TestDaemon;
  let vm: VmView;
  const boots = async () =>
    (
      (await d.api.request<string>('GET', `/api/v1/vms/${vm.id}/console-log`)).match(
        new RegExp(BOOTED, 'g'),
      ) ?? []
    ).length;
  const connected = () =>
    waitFor(async () => (await getVm(d.api, vm.id)).agent?.status === 'connected', {
      timeoutMs: 90_000,
      intervalMs: 250,
      what: 'the guest agent to answer',
    });

  beforeAll(async () => {
    d = await TestDaemon.start();
    await d.api.request('PUT', '/api/v1/ha', { monitoringTimeoutSec: 20 });
    vm = await createVm(d.api, {
      ...kernelVm('watched', { start: true }),
      ha: { enabled: true, monitoring: true },
    });
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    await connected();
  }, 180_000);
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it('refuses a monitoring timeout out of range and says so', async () => {
    const err = await d.api.request('PUT', '/api/v1/ha', { monitoringTimeoutSec: 5 }).then(
      () => undefined,
      (e: { code: string }) => e,
    );
    expect(err?.code).toBe('validation_failed');
    expect(
      (await d.api.request<{ policy: { monitoring: boolean } }>('GET', `/api/v1/vms/${vm.id}/ha`)).policy
        .monitoring,
    ).toBe(true);
  });

  it('leaves a guest whose disk is busy alone, and resets one whose agent and disk went silent', async () => {
    const tasks = async () =>
      (await d.api.request<TaskView[]>('GET', '/api/v1/tasks')).filter((t) => t.type === 'vm.ha-reset');
    // The agent stops answering but the guest writes its disk: no reset.
    await guestRun(
      d.api,
      d.dataDir,
      vm.id,
      "touch /tmp/busy; (while [ -e /tmp/busy ]; do dd if=/dev/urandom of=/dev/vda bs=64k count=1 oflag=direct 2>/dev/null; sleep 1; done) & kill -STOP $(pidof neuroflow-agent); echo stopp''ed",
    );
    await waitFor(async () => (await getVm(d.api, vm.id)).agent?.status === 'absent', {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: 'the agent to be seen silent',
    });
    // The monitor looks at the disks once the silence lasted the timeout, finds them busy, and lets be.
    const check = await waitFor(
      async () =>
        (
          await d.api.request<{ monitoring?: { lastIoCheck?: { at: string; diskIdle: boolean } } }>(
            'GET',
            `/api/v1/vms/${vm.id}/ha`,
          )
        ).monitoring?.lastIoCheck,
      { timeoutMs: 90_000, intervalMs: 500, what: 'VM monitoring to look at the disks' },
    );
    expect(check.diskIdle).toBe(false);
    expect(await tasks()).toEqual([]);
    expect(await boots()).toBe(1);
    // Now the disk goes idle too: the guest is reset, once, and boots again; its agent answers again.
    await guestRun(d.api, d.dataDir, vm.id, 'rm /tmp/busy');
    const reset = await waitFor(async () => (await tasks())[0], {
      timeoutMs: 120_000,
      intervalMs: 500,
      what: 'VM monitoring to reset the guest',
    });
    expect(reset).toMatchObject({ target: 'watched', user: 'ha' });
    const watched = await d.api.request<{
      monitoring?: { lastIoCheck?: { diskIdle: boolean }; resetsLastHour: number };
    }>('GET', `/api/v1/vms/${vm.id}/ha`);
    expect(watched.monitoring).toMatchObject({ lastIoCheck: { diskIdle: true }, resetsLastHour: 1 });
    await waitFor(async () => (await boots()) === 2, {
      timeoutMs: 120_000,
      intervalMs: 500,
      what: 'a second boot',
    });
    await connected();
    const done = await waitFor(
      async () => (await tasks()).find((t) => t.id === reset.id && t.status !== 'running'),
      { timeoutMs: 30_000, what: 'the reset task to end' },
    );
    expect(done.status).toBe('ok');
    expect((done as TaskView & { details?: { why?: string } }).details?.why).toMatch(
      /agent has not answered for 20 s/,
    );
    expect(await tasks()).toHaveLength(1);
  }, 300_000);
});
