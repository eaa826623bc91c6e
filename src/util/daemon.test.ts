import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Daemon } from './daemon';
import { pidAlive } from './proc';
import { waitFor } from './wait';

const dir = mkdtempSync(join(tmpdir(), 'nf-daemon-'));
const spec = (marker: string) => ({
  name: 'sleeper',
  // sh -c with the run dir among its arguments, as our daemons name their run dir (--unixctl=...)
  argv: ['/bin/sh', '-c', 'sleep 300', `${join(dir, 'run')}/${marker}`],
  pidfile: join(dir, 'run', 'sleeper.pid'),
  outFile: join(dir, 'sleeper.out'),
});
const started: number[] = [];
afterAll(() => {
  for (const pid of started) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('Daemon', () => {
  it('adopts its own running process, restarts one of its own started with other options, and stays down once stopped', async () => {
    const a = new Daemon(spec('two-members'));
    const first = await a.start();
    started.push(first);
    // the same options: adopted
    expect(await new Daemon(spec('two-members')).start()).toBe(first);
    // other options (a member added): the old process goes, a new one runs with them
    const b = new Daemon(spec('three-members'));
    const second = await b.start();
    started.push(second);
    expect(second).not.toBe(first);
    await waitFor(() => !pidAlive(first), { timeoutMs: 20_000, what: 'the old process to end' });
    expect(b.running()).toBe(second);
    // stopped on purpose: supervision leaves it down
    await b.stop(5000);
    expect(pidAlive(second)).toBe(false);
    expect(await b.supervise()).toBe(false);
    expect(b.running()).toBeUndefined();
  });
});
