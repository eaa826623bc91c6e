import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repository } from './repository';

/** A repository shared by several hosts: GC and backups keep out of each other through the files. */
describe('repository locks across hosts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nf-repo-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('GC is refused while a backup is written (by any host), and a backup while GC runs; dead ones do not count', async () => {
    const repo = await Repository.init(join(dir, 'r'));
    const w = await repo.beginBackup('vm1', 'b1');
    expect(await repo.liveWriters()).toEqual(['vm1/b1']);
    await expect(repo.gc()).rejects.toMatchObject({
      code: 'invalid_state',
      message: expect.stringMatching(/vm1\/b1/),
    });
    // its lock went with the refusal: GC left nothing behind
    await w.abort();
    expect((await repo.gc()).removedChunks).toBe(0);

    // GC of another host (its lock file, fresh) keeps backups out
    const lock = join(dir, 'r', 'gc.lock');
    writeFileSync(lock, JSON.stringify({ by: 'h2 pid 7', at: new Date().toISOString() }));
    await expect(repo.beginBackup('vm1', 'b2')).rejects.toMatchObject({
      code: 'invalid_state',
      message: expect.stringMatching(/h2 pid 7/),
    });
    expect(await repo.liveWriters()).toEqual([]); // the refused backup left no partial directory
    // a fresh lock of a process of this machine that is gone (serve killed -9) is dead at once
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    writeFileSync(lock, JSON.stringify({ by: 'here', boot, pid: 2 ** 22 + 1 }));
    await (await repo.beginBackup('vm1', 'b2')).abort();
    writeFileSync(lock, JSON.stringify({ by: 'h2 pid 7', at: new Date().toISOString() }));
    // a lock not touched for minutes is a dead collector's
    const old = new Date(Date.now() - 5 * 60_000);
    utimesSync(lock, old, old);
    const w2 = await repo.beginBackup('vm1', 'b3');
    await w2.abort();

    // a partial backup not touched for minutes is a dead writer's: GC removes it
    const w3 = await repo.beginBackup('vm1', 'b4');
    const partial = join(dir, 'r', 'backups', 'vm1', '.b4.partial');
    await w3.abort();
    mkdirSync(partial);
    utimesSync(partial, old, old);
    expect(await repo.liveWriters()).toEqual([]);
    await repo.gc();
    expect(existsSync(partial)).toBe(false);
  });
});
