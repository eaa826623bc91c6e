import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Daemon } from './daemon';
import { pidAlive } from './proc';
import { waitFor } from './wait';

const dir = mkdtempSync(join(tmpdir(), 'nf-daemon-'));
const run = join(dir, 'run');
/** A stand-in daemon: sh with our arguments (an --unixctl naming its socket in our run dir, as OVN's). */
const spec = (name: string, remotes: string) => ({
  name,
  argv: ['/bin/sh', '-c', 'sleep 300', `--unixctl=${run}/${name}.ctl`, `--remotes=${remotes}`],
  pidfile: join(run, `nf-${name}.pid`),
  outFile: join(dir, `${name}.out`),
});
const started: number[] = [];
afterAll(() => {
  for (const pid of started) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('Daemon', () => {
  it('adopts its own running process, restarts one of its own started with other options, and stays down once stopped', async () => {
    const a = new Daemon(spec('northd', 'a,b'));
    const first = await a.start();
    started.push(first);
    // the same options: adopted
    expect(await new Daemon(spec('northd', 'a,b')).start()).toBe(first);
    // other options (a member added): the old process goes, a new one runs with them
    const b = new Daemon(spec('northd', 'a,b,c'));
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

  it('never stops a sibling of the same program whose pid its stale pidfile names (pid reuse)', async () => {
    const sibling = await new Daemon(spec('nb-db', 'x')).start();
    started.push(sibling);
    writeFileSync(join(run, 'nf-sb-db.pid'), `${sibling}\n`);
    const mine = await new Daemon(spec('sb-db', 'x')).start();
    started.push(mine);
    expect(mine).not.toBe(sibling);
    expect(pidAlive(sibling)).toBe(true);
  });
});
