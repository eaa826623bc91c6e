import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  applianceServices,
  applyHostname,
  applyRootPassword,
  dryRunRunner,
  hostsWithName,
  realRunner,
  restartManagement,
  shadowWithRootHash,
  summarisePing,
  systemPaths,
} from '../src/appliance/system';
import { waitFor } from '../src/util/wait';

const HASH = `$6$saltsalt$${'a'.repeat(86)}`;
const dirs: string[] = [];
const children: number[] = [];
afterEach(() => {
  for (const pid of children.splice(0))
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'nf-sys-'));
  dirs.push(d);
  return d;
};

describe('root password into /etc/shadow', () => {
  it("replaces root's hash and last-change day, keeps the other fields and accounts", () => {
    const now = new Date('2030-01-02T00:00:00Z');
    const day = String(Math.floor(now.getTime() / 86_400_000));
    const before = 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n';
    expect(shadowWithRootHash(before, HASH, now)).toBe(
      `root:${HASH}:${day}:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n`,
    );
    expect(shadowWithRootHash(undefined, HASH, now)).toBe(`root:${HASH}:${day}:0:99999:7:::\n`);
    expect(shadowWithRootHash('daemon:*:1::::::\n', HASH, now)).toBe(
      `root:${HASH}:${day}:0:99999:7:::\ndaemon:*:1::::::\n`,
    );
    expect(() => shadowWithRootHash('', 'plain')).toThrow(/SHA-512/);
    expect(() => shadowWithRootHash('', `${HASH}:x`)).toThrow(/SHA-512/);
  });

  it('writes ROOT/etc/shadow (a temp root here), keeping its mode', async () => {
    const root = tmp();
    await applyRootPassword(HASH, { root });
    const p = systemPaths(root).shadow;
    expect(readFileSync(p, 'utf8')).toMatch(
      new RegExp(`^root:${HASH.replace(/\$/g, '\\$')}:\\d+:0:99999:7:::\n$`),
    );
    expect(statSync(p).mode & 0o777).toBe(0o600);
    writeFileSync(p, 'root:*:1:0:99999:7:::\nbin:*:1:0:99999:7:::\n');
    chmodSync(p, 0o640);
    await applyRootPassword(HASH, { root });
    expect(readFileSync(p, 'utf8')).toContain('bin:*:1:0:99999:7:::');
    expect(statSync(p).mode & 0o777).toBe(0o640);
  });
});

describe('host name', () => {
  it('hosts file: one 127.0.1.1 line for the name', () => {
    expect(hostsWithName(undefined, 'esx1')).toBe('127.0.0.1\tlocalhost\n127.0.1.1\tesx1\n');
    expect(hostsWithName('127.0.0.1 localhost\n127.0.1.1 old\n::1 localhost\n', 'esx2')).toBe(
      '127.0.0.1 localhost\n127.0.1.1\tesx2\n::1 localhost\n',
    );
  });

  it('writes ROOT/etc/hostname and hosts; `hostname` goes through the runner (logged in a dry run)', async () => {
    const root = tmp();
    const log = join(root, 'dry-run.log');
    const r = await applyHostname('esx1', { root, runner: dryRunRunner(log) });
    expect(r.code).toBe(0);
    expect(readFileSync(join(root, 'etc', 'hostname'), 'utf8')).toBe('esx1\n');
    expect(readFileSync(join(root, 'etc', 'hosts'), 'utf8')).toContain('127.0.1.1\tesx1');
    expect(readFileSync(log, 'utf8')).toContain('run ["hostname","esx1"]');
  });
});

describe('services', () => {
  it('restartManagement: SIGHUP to the pid in the supervisor pidfile', async () => {
    const root = tmp();
    const marker = join(root, 'got-hup');
    // A stand-in supervisor that notes the SIGHUP.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `process.on('SIGHUP', () => { require('fs').writeFileSync(${JSON.stringify(marker)}, 'hup'); process.exit(0); }); setInterval(() => {}, 1000); console.log('ready');`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child.pid!);
    await new Promise<void>((res) => child.stdout!.once('data', () => res()));
    const p = systemPaths(root);
    mkdirSync(join(root, 'run', 'neuroflow'), { recursive: true });
    writeFileSync(p.servePidfile, `${child.pid}\n`);
    const out = await restartManagement({ root, runner: realRunner() });
    expect(out).toMatchObject({ signalled: true, pid: child.pid });
    await waitFor(
      () => {
        try {
          return readFileSync(marker, 'utf8') === 'hup';
        } catch {
          return false;
        }
      },
      { timeoutMs: 10_000, what: 'the SIGHUP to arrive' },
    );
  });

  it('restartManagement without a pidfile, or in a dry run (logged, not sent)', async () => {
    const root = tmp();
    const log = join(root, 'dry-run.log');
    const none = await restartManagement({ root, runner: realRunner() });
    expect(none.signalled).toBe(false);
    expect(none.message).toMatch(/not running \(no .*appliance-serve\.pid\)/);
    mkdirSync(join(root, 'run', 'neuroflow'), { recursive: true });
    writeFileSync(systemPaths(root).servePidfile, '999999\n');
    expect((await restartManagement({ root, runner: realRunner() })).message).toMatch(
      /999999\) is not running/,
    );
    const dry = await restartManagement({ root, runner: dryRunRunner(log) });
    expect(dry.signalled).toBe(true);
    expect(readFileSync(log, 'utf8')).toContain('signal ["SIGHUP",999999]');
  });

  it('shutdown runs busybox poweroff/reboot through the runner', async () => {
    const root = tmp();
    const log = join(root, 'dry-run.log');
    const s = applianceServices({ root, runner: dryRunRunner(log) });
    expect((await s.shutdown('poweroff')).code).toBe(0);
    expect((await s.shutdown('reboot')).code).toBe(0);
    const lines = readFileSync(log, 'utf8');
    expect(lines).toContain('run ["poweroff"]');
    expect(lines).toContain('run ["reboot"]');
  });

  it('the real runner: argv, stdin, exit codes, a missing program, a timeout', async () => {
    const r = realRunner();
    expect(await r.run(['sh', '-c', 'cat; echo err >&2; exit 3'], { input: 'in' })).toEqual({
      code: 3,
      stdout: 'in',
      stderr: 'err\n',
    });
    // An argument is never a shell string.
    expect((await r.run(['echo', '$(id)'])).stdout).toBe('$(id)\n');
    expect((await r.run(['/nonexistent/nf-no-such-program'])).code).toBe(127);
    const slow = await r.run(['sleep', '5'], { timeoutMs: 200 });
    expect(slow.code).toBe(124);
  });

  it('ping summaries (busybox and iputils)', () => {
    const busybox = {
      code: 0,
      stdout:
        '3 packets transmitted, 3 packets received, 0% packet loss\nround-trip min/avg/max = 0.1/0.4/0.9 ms\n',
      stderr: '',
    };
    expect(summarisePing('192.0.2.1', busybox)).toEqual({
      target: '192.0.2.1',
      ok: true,
      summary: '3/3 replies, 0.4 ms average',
    });
    const iputils = {
      code: 1,
      stdout: '3 packets transmitted, 0 received, 100% packet loss, time 2030ms\n',
      stderr: '',
    };
    expect(summarisePing('192.0.2.1', iputils)).toMatchObject({ ok: false, summary: '0/3 replies' });
    expect(summarisePing('x', { code: 2, stdout: '', stderr: 'ping: bad address\n' })).toMatchObject({
      ok: false,
      summary: 'ping: bad address',
    });
    expect(summarisePing('x', { code: 0, stdout: '', stderr: '' }, true).summary).toMatch(/dry run/);
  });
});
