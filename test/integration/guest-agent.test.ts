import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { neuroflowCommand, TestDaemon } from '../harness/daemon';
import { BOOTED, testGuest } from '../harness/guest';
import { guestRun, typeOnSerial, waitConsole } from '../harness/serial';
import { createVm, getVm, kernelVm, type VmView, vmAction } from '../harness/vms';

type Variant = 'agent-rs' | 'qemu-ga';

interface GuestInfo {
  hostname: string;
  os: Record<string, string>;
  ips: string[];
  filesystems: { mountpoint: string; type: string; usedBytes: number; totalBytes: number }[];
  memory: { totalBytes: number; usedBytes: number } | null;
  uptimeSec: number | null;
  load: { load1: number } | null;
}

interface Exec {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The node drives both our agent-rs and Debian's stock qemu-ga through the same QGA client; every check
 * compares what the agent says with what the guest really has.
 */
describe.each<Variant>(['agent-rs', 'qemu-ga'])('guest agent: %s', (variant) => {
  let d: TestDaemon;
  let vm: VmView;
  const name = `ga-${variant}`;
  const exec = (command: string[], extra: Record<string, unknown> = {}) =>
    d.api.request<Exec>('POST', `/api/v1/vms/${name}/guest/exec`, { command, ...extra });
  const connected = () =>
    waitFor(async () => (await getVm(d.api, name)).agent?.status === 'connected', {
      timeoutMs: 60_000,
      intervalMs: 250,
      what: `the ${variant} agent to connect`,
    });

  beforeAll(async () => {
    d = await TestDaemon.start();
    await d.api.request('POST', '/api/v1/images/import', { name: 'data', path: testGuest().dataDisk });
    vm = await createVm(
      d.api,
      kernelVm(name, { disks: [{ sizeGiB: 1 }, { image: 'data' }], start: true }, variant),
    );
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    await connected();
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it('reports the OS, host name, addresses and file systems the guest really has', async () => {
    const info = await d.api.request<GuestInfo>('GET', `/api/v1/vms/${name}/guest`);
    expect(info.hostname).toBe((await guestRun(d.api, d.dataDir, vm.id, 'hostname')).trim());
    expect(info.os['kernel-release']).toBe((await guestRun(d.api, d.dataDir, vm.id, 'uname -r')).trim());
    await waitConsole(d.api, vm.id, /NEUROFLOW-TEST-GUEST: ip=10\.0\.2\.15/);
    const again = await d.api.request<GuestInfo>('GET', `/api/v1/vms/${name}/guest`);
    expect(again.ips).toContain('10.0.2.15');
    const data = again.filesystems.find((f) => f.mountpoint === '/data')!;
    expect(data).toMatchObject({ type: 'ext4' });
    // statfs in the guest. Like qemu-ga, total is what users can get (used + available, without the
    // root-reserved blocks) and used is blocks - free.
    const [blocks, bsize, bfree, bavail] = (
      await guestRun(d.api, d.dataDir, vm.id, "stat -f -c '%b %S %f %a' /data")
    )
      .trim()
      .split(' ')
      .map(Number);
    expect(Math.abs(data.totalBytes - (blocks! - bfree! + bavail!) * bsize!)).toBeLessThanOrEqual(
      1024 * 1024,
    );
    expect(Math.abs(data.usedBytes - (blocks! - bfree!) * bsize!)).toBeLessThanOrEqual(1024 * 1024);
    if (variant === 'agent-rs') {
      const memTotal =
        Number(/MemTotal:\s+(\d+)/.exec(await guestRun(d.api, d.dataDir, vm.id, 'cat /proc/meminfo'))![1]) *
        1024;
      expect(again.memory!.totalBytes).toBe(memTotal);
      expect(again.memory!.usedBytes).toBeGreaterThan(0);
      expect(again.uptimeSec).toBeGreaterThan(0);
      expect(again.load?.load1).toBeGreaterThanOrEqual(0);
      expect((await getVm(d.api, name)).agent).toMatchObject({ status: 'connected', flavour: 'neuroflow' });
    } else {
      expect(again.memory).toBeNull(); // qemu-ga has no memory usage command: reported as unknown, not faked
      expect((await getVm(d.api, name)).agent).toMatchObject({ status: 'connected', flavour: 'qemu-ga' });
    }
  });

  it('runs programs with their real exit code, output and input', async () => {
    expect(await exec(['/bin/sh', '-c', 'echo out; echo err >&2; exit 3'])).toMatchObject({
      exitCode: 3,
      stdout: 'out\n',
      stderr: 'err\n',
    });
    expect(await exec(['/bin/cat'], { input: 'hello from the host' })).toMatchObject({
      exitCode: 0,
      stdout: 'hello from the host',
    });
    const bin = await d.api.request<{ stdoutBase64: string }>('POST', `/api/v1/vms/${name}/guest/exec`, {
      command: ['/bin/sh', '-c', 'printf "\\001\\377"'],
      binary: true,
    });
    expect(Buffer.from(bin.stdoutBase64, 'base64')).toEqual(Buffer.from([1, 255]));
    expect(
      (await d.api.request<{ latencyMs: number }>('POST', `/api/v1/vms/${name}/guest/ping`)).latencyMs,
    ).toBeGreaterThan(0);
    // The CLI passes the guest's exit code and output through.
    const [nfBin, ...pre] = neuroflowCommand();
    const cli = spawnSync(
      nfBin!,
      [...pre, 'vm', 'exec', name, '--data-dir', d.dataDir, '--', '/bin/sh', '-c', 'echo via-cli; exit 7'],
      { encoding: 'utf8', input: '' },
    );
    expect(cli.status).toBe(7);
    expect(cli.stdout).toBe('via-cli\n');
    const shown = spawnSync(nfBin!, [...pre, 'vm', 'guest', name, '--data-dir', d.dataDir], {
      encoding: 'utf8',
    });
    expect(shown.stdout).toMatch(/Hostname: neuroflow-guest/);
    await expect(exec(['/nonexistent/program'])).rejects.toMatchObject({
      code: expect.stringMatching(/guest_error|validation_failed/),
    });
  });

  it('freezes file systems: a write blocks until thaw', async () => {
    const frozen = await d.api.request<{ frozen: number }>('POST', `/api/v1/vms/${name}/guest/fsfreeze`);
    try {
      expect(frozen.frozen).toBeGreaterThanOrEqual(1);
      expect(await d.api.request('GET', `/api/v1/vms/${name}/guest/fsfreeze`)).toEqual({ status: 'frozen' });
      const tag = `W${Date.now()}`;
      // The writer runs in the background so the serial shell stays free to look at it.
      await typeOnSerial(d.dataDir, vm.id, `(echo ${tag} > /data/marker; echo WROTE''-${tag}) &`);
      // Wait until the writer is provably stuck in the kernel (state D), then check it has not finished.
      await waitFor(
        async () =>
          /^D$/m.test(
            await guestRun(d.api, d.dataDir, vm.id, 'for p in /proc/[0-9]*; do cut -d" " -f3 $p/stat; done'),
          ),
        { timeoutMs: 20_000, intervalMs: 200, what: 'the writer to block on the frozen file system' },
      );
      expect(await d.api.request<string>('GET', `/api/v1/vms/${vm.id}/console-log`)).not.toContain(
        `WROTE-${tag}`,
      );
      expect(
        (await d.api.request<{ thawed: number }>('POST', `/api/v1/vms/${name}/guest/fsthaw`)).thawed,
      ).toBe(frozen.frozen);
      await waitConsole(d.api, vm.id, new RegExp(`WROTE-${tag}`));
      expect((await exec(['/bin/cat', '/data/marker'])).stdout.trim()).toBe(tag);
    } finally {
      await d.api.request('POST', `/api/v1/vms/${name}/guest/fsthaw`);
    }
    // Thaw is safe to repeat.
    expect((await d.api.request<{ thawed: number }>('POST', `/api/v1/vms/${name}/guest/fsthaw`)).thawed).toBe(
      0,
    );
  });

  it('takes quiesced snapshots of the running VM and leaves the guest thawed', async () => {
    const after = await d.api.request<VmView>('POST', `/api/v1/vms/${name}/snapshots`, { name: 'q1' });
    expect(after.snapshots.find((s) => s.name === 'q1')).toMatchObject({
      quiesced: true,
      vmState: 'running',
    });
    expect(await d.api.request('GET', `/api/v1/vms/${name}/guest/fsfreeze`)).toEqual({ status: 'thawed' });
    expect((await exec(['/bin/sh', '-c', 'echo ok > /data/after-snap && cat /data/after-snap'])).stdout).toBe(
      'ok\n',
    );
  });

  it('resets a password: the new one logs in, the old one does not', async () => {
    const [user, initial] = Object.entries(testGuest().users)[0]!;
    await d.api.request('POST', `/api/v1/vms/${name}/guest/password`, {
      username: user,
      password: 'n3w-Secret!',
    });
    const tasks = JSON.stringify(await d.api.request('GET', '/api/v1/tasks'));
    expect(tasks).not.toContain('n3w-Secret!'); // secrets never reach the task log
    for (const [password, expected] of [
      ['n3w-Secret!', `LOGIN-OK-${user}`],
      [initial, `LOGIN-FAILED-${user}`],
    ] as const) {
      const before = (await d.api.request<string>('GET', `/api/v1/vms/${vm.id}/console-log`)).length;
      await typeOnSerial(d.dataDir, vm.id, `login-check ${user}`);
      await waitFor(
        async () =>
          (await d.api.request<string>('GET', `/api/v1/vms/${vm.id}/console-log`))
            .slice(before)
            .includes('Password:'),
        {
          timeoutMs: 20_000,
          what: 'the password prompt',
        },
      );
      await typeOnSerial(d.dataDir, vm.id, password);
      await waitFor(
        async () => {
          const tail = (await d.api.request<string>('GET', `/api/v1/vms/${vm.id}/console-log`)).slice(before);
          return /LOGIN-(OK|FAILED)-/.test(tail.replace(/echo LOGIN-OK-[^\n]*/g, '')) ? tail : undefined;
        },
        { timeoutMs: 30_000, what: 'the login result' },
      ).then((tail) => expect(tail.split('\n').some((l) => l.trim().startsWith(expected))).toBe(true));
    }
  });

  it('reconnects after the guest reboots', async () => {
    await typeOnSerial(d.dataDir, vm.id, 'reboot');
    await waitFor(async () => (await getVm(d.api, name)).agent?.status === 'absent', {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: 'the agent to go away',
    }).catch(() => {
      // A fast reboot may bring the agent back before we look: the exec below is what matters.
    });
    await waitConsole(d.api, vm.id, new RegExp(`${BOOTED}[\\s\\S]*${BOOTED}`));
    await connected();
    expect((await exec(['/bin/echo', 'back'])).stdout).toBe('back\n');
  });

  it('answers garbage and unknown commands with QGA errors and keeps running; re-attaches after a daemon restart', async () => {
    // Frozen when the daemon dies: the next daemon must find and thaw it.
    await d.api.request('POST', `/api/v1/vms/${name}/guest/fsfreeze`);
    // Let go of the channel (QEMU serves one client), then talk to the agent ourselves.
    await d.kill9();
    const sock = connect(join(d.dataDir, 'node', 'vms', vm.id, 'qga.sock'));
    let got = Buffer.alloc(0);
    sock.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
    });
    await new Promise((r) => sock.once('connect', r));
    const send = (s: string | Buffer) => sock.write(s);
    const replies = () =>
      got
        .toString('latin1')
        .split(/[\n\xff]/)
        .filter((l) => l.trim().startsWith('{'));
    send(Buffer.from([0xff]));
    send('{"execute":"guest-sync-delimited","arguments":{"id":4242}}\n');
    await waitFor(() => replies().some((l) => l.includes('4242')), { timeoutMs: 10_000, what: 'sync' });
    got = Buffer.alloc(0);
    send('this is { not json\n');
    send(Buffer.from([0xff]));
    send('{"execute":"guest-no-such-command"}\n');
    await waitFor(() => replies().some((l) => l.includes('CommandNotFound')), {
      timeoutMs: 10_000,
      what: 'CommandNotFound',
    });
    send('{"execute":"guest-ping"}\n');
    await waitFor(() => replies().some((l) => l === '{"return": {}}' || l === '{"return":{}}'), {
      timeoutMs: 10_000,
      what: 'the ping after garbage',
    });
    sock.destroy();

    await d.launch();
    await connected();
    await waitFor(
      async () =>
        (await d.api.request<{ status: string }>('GET', `/api/v1/vms/${name}/guest/fsfreeze`)).status ===
        'thawed',
      { timeoutMs: 20_000, intervalMs: 200, what: 'the leftover freeze to be thawed' },
    );
    expect((await exec(['/bin/echo', 'still'])).stdout).toBe('still\n');
  });

  it.runIf(variant === 'agent-rs')(
    'a restarted agent still knows the guest is frozen and can thaw it',
    async () => {
      await d.api.request('POST', `/api/v1/vms/${name}/guest/fsfreeze`);
      try {
        await guestRun(d.api, d.dataDir, vm.id, 'kill -9 $(pidof neuroflow-agent)');
        // init respawns it; the new process must report the freeze, not "thawed".
        await waitFor(
          async () => {
            try {
              return (
                (await d.api.request<{ status: string }>('GET', `/api/v1/vms/${name}/guest/fsfreeze`))
                  .status === 'frozen'
              );
            } catch {
              return false;
            }
          },
          { timeoutMs: 30_000, intervalMs: 250, what: 'the restarted agent to answer' },
        );
      } finally {
        await waitFor(
          async () => {
            try {
              await d.api.request('POST', `/api/v1/vms/${name}/guest/fsthaw`);
              return true;
            } catch {
              return false;
            }
          },
          { timeoutMs: 30_000, intervalMs: 250, what: 'the thaw' },
        );
      }
      expect(
        (await exec(['/bin/sh', '-c', 'echo w > /data/after-restart && cat /data/after-restart'])).stdout,
      ).toBe('w\n');
    },
  );

  it('shuts the guest down through the agent', async () => {
    const stopped = await vmAction(d.api, name, 'stop', '?timeoutSec=60');
    expect(stopped.state).toBe('stopped');
    expect(d.qemuPids()).toEqual([]);
  });
});
