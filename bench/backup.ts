/**
 * Backup figures of issue 15, side by side with restic (Debian's) on the same data in the same run:
 * - full-backup ingest MiB/s of a disk of mixed data (half random, a quarter text, a quarter zeros;
 *   2 GiB by default) through the API (a stopped VM: qemu-nbd), plain and encrypted repository; restic
 *   backs up the same bytes as a raw file;
 * - an incremental after 1 % of the disk changed (scattered 4 MiB writes), against restic's second backup
 *   of the changed file (restic re-reads the whole file to find what changed);
 * - dedup over five full clones of one VM: bytes stored for five disks vs. one (restic: five copies);
 * - restore MiB/s into a new VM, against `restic restore` into a directory.
 * Targets: ingest and restore at least restic's rate; incremental cost ∝ changed data; dedup at least
 * restic's. Run: `bun bench/backup.ts` (after `npm run build`).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../src/util/wait';
import { TestDaemon } from '../test/harness/daemon';
import { kernelVm } from '../test/harness/vms';
import { benchSize, record, SMOKE, timed } from './lib';

const SIZE_MIB = benchSize('BENCH_BACKUP_MIB', 2048, 64);
const CLONES = 5;

function sh(args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(args[0]!, args.slice(1), {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Every reader starts cold: the page cache dropped (as root), so neither side reads from memory what the
 * other just read. A VM's disk (cache=none) is not in the host's page cache either. Without the right to
 * drop it, both start warm instead (the figures then say so).
 */
let cold = true;
function dropCaches(): void {
  sh(['sync']);
  if (SMOKE) {
    cold = false; // the test command's smoke run leaves the machine's cache alone
    return;
  }
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    cold = false;
  }
}

function du(dir: string): number {
  return Number(sh(['du', '-sb', dir]).split('\t')[0]);
}

const dir = mkdtempSync(join(tmpdir(), 'nf-bench-backup-'));
try {
  await using d = await TestDaemon.start();
  const api = d.api;
  const task = async (path: string, body?: unknown) => {
    const t = await api.request<{ id: string }>('POST', path, body);
    const done = await waitFor(
      async () => {
        const x = await api.request<{
          status: string;
          error?: { message: string };
          result?: Record<string, unknown>;
        }>('GET', `/api/v1/tasks/${t.id}`);
        return x.status === 'running' ? undefined : x;
      },
      { timeoutMs: 3_600_000, intervalMs: 100, what: path },
    );
    if (done.status !== 'ok') throw new Error(`${path}: ${done.error?.message}`);
    return done.result ?? {};
  };

  // the data: half random, a quarter text (compressible), a quarter zeros
  const raw = join(dir, 'disk.raw');
  sh(['truncate', '-s', `${SIZE_MIB}M`, raw]);
  sh(['dd', 'if=/dev/urandom', `of=${raw}`, 'bs=1M', `count=${SIZE_MIB / 2}`, 'conv=notrunc', 'status=none']);
  const text = join(dir, 'text');
  writeFileSync(
    text,
    Array.from({ length: 40_000 }, (_, i) => `line ${i}: the quick brown fox jumps over the lazy dog\n`).join(
      '',
    ),
  );
  sh([
    'sh',
    '-c',
    `yes "$(head -c 4000 ${text})" | head -c ${(SIZE_MIB / 4) * 1048576} | dd of=${raw} bs=1M seek=${SIZE_MIB / 2} conv=notrunc status=none`,
  ]);
  const vm = await api.request<{ id: string }>(
    'POST',
    '/api/v1/vms',
    kernelVm('bench-bk', { disks: [{ sizeGiB: SIZE_MIB / 1024 }], networks: [] }),
  );
  const disk = join(d.dataDir, 'pools', 'local', 'disks', `vm-${vm.id}-disk0.qcow2`);
  sh(['qemu-img', 'convert', '-n', '-f', 'raw', '-O', 'qcow2', raw, disk]);

  const mibps = (ms: number, mib = SIZE_MIB) => Math.round((mib / (ms / 1000)) * 10) / 10;
  const repoPlain = join(dir, 'nf-plain');
  const repoEnc = join(dir, 'nf-enc');
  await api.request('POST', '/api/v1/backup/repositories', { name: 'plain', path: repoPlain });
  await api.request('POST', '/api/v1/backup/repositories', { name: 'enc', path: repoEnc, encrypt: true });
  const restic = join(dir, 'restic');
  const renv = {
    RESTIC_PASSWORD: 'bench',
    RESTIC_REPOSITORY: restic,
    RESTIC_CACHE_DIR: join(dir, 'restic-cache'),
  };
  sh(['restic', 'init', '--quiet'], renv);

  // full ingest, each from a cold page cache
  dropCaches();
  const [nfFullMs] = await timed(() => task(`/api/v1/vms/${vm.id}/backup`, { repository: 'plain' }));
  dropCaches();
  const [nfEncMs] = await timed(() => task(`/api/v1/vms/${vm.id}/backup`, { repository: 'enc' }));
  dropCaches();
  const [resticFullMs] = await timed(async () => sh(['restic', 'backup', '--quiet', raw], renv));

  // 1 % changed: scattered 4 MiB writes of new random data, into the VM's disk and the raw file alike
  const writes = Math.max(1, Math.round((SIZE_MIB * 0.01) / 4));
  for (let i = 0; i < writes; i++) {
    const at = Math.floor(((i + 0.5) * SIZE_MIB) / writes / 4) * 4;
    const patch = join(dir, 'patch');
    sh(['dd', 'if=/dev/urandom', `of=${patch}`, 'bs=1M', 'count=4', 'status=none']);
    sh(['dd', `if=${patch}`, `of=${raw}`, 'bs=1M', `seek=${at}`, 'conv=notrunc', 'status=none']);
    sh(['qemu-io', '-f', 'qcow2', '-c', `write -s ${patch} ${at}M 4M`, disk]);
  }
  sh(['sync']);
  const [nfIncMs, inc] = await timed(() => task(`/api/v1/vms/${vm.id}/backup`, { repository: 'plain' }));
  sh(['sync']);
  const [resticIncMs] = await timed(async () => sh(['restic', 'backup', '--quiet', raw], renv));
  const incDisk = (inc.disks as { mode: string; readBytes: number }[])[0]!;

  // restore
  const [list] = [await api.request<{ id: string }[]>('GET', '/api/v1/backups?repository=plain')];
  dropCaches();
  const [nfRestoreMs] = await timed(() =>
    task(`/api/v1/backups/${list[0]!.id}/restore`, { name: 'bench-bk-restored' }),
  );
  dropCaches();
  const [resticRestoreMs] = await timed(async () =>
    sh(['restic', 'restore', 'latest', '--quiet', '--target', join(dir, 'restic-out')], renv),
  );

  // dedup: five full clones of the VM (same data) into a fresh repository; restic: five copies of the file
  const repoDedup = join(dir, 'nf-dedup');
  await api.request('POST', '/api/v1/backup/repositories', { name: 'dedup', path: repoDedup });
  for (let i = 0; i < CLONES; i++) {
    const c = await api.request<{ id: string }>(
      'POST',
      '/api/v1/vms',
      kernelVm(`bench-clone-${i}`, { disks: [{ sizeGiB: SIZE_MIB / 1024 }], networks: [] }),
    );
    copyFileSync(disk, join(d.dataDir, 'pools', 'local', 'disks', `vm-${c.id}-disk0.qcow2`));
    await task(`/api/v1/vms/${c.id}/backup`, { repository: 'dedup' });
  }
  const resticDedup = join(dir, 'restic-dedup');
  const denv = { ...renv, RESTIC_REPOSITORY: resticDedup };
  sh(['restic', 'init', '--quiet'], denv);
  const copies = join(dir, 'copies');
  sh(['mkdir', copies]);
  for (let i = 0; i < CLONES; i++) copyFileSync(raw, join(copies, `disk-${i}.raw`));
  sh(['restic', 'backup', '--quiet', copies], denv);
  rmSync(copies, { recursive: true });
  const nfStored = du(join(repoDedup, 'chunks'));
  const resticStored = du(join(resticDedup, 'data'));
  const logical = CLONES * SIZE_MIB * 1048576;

  const figures = {
    diskMiB: SIZE_MIB,
    fullMiBps: mibps(nfFullMs),
    fullEncryptedMiBps: mibps(nfEncMs),
    resticFullMiBps: mibps(resticFullMs),
    incrementalChangedPct: 1,
    incrementalMs: Math.round(nfIncMs),
    incrementalReadMiB: Math.round(incDisk.readBytes / 1048576),
    incrementalMode: incDisk.mode,
    resticIncrementalMs: Math.round(resticIncMs),
    restoreMiBps: mibps(nfRestoreMs),
    resticRestoreMiBps: mibps(resticRestoreMs),
    dedupRatio: Math.round((logical / nfStored) * 10) / 10,
    resticDedupRatio: Math.round((logical / resticStored) * 10) / 10,
    storedPlainMiB: Math.round(du(join(repoPlain, 'chunks')) / 1048576),
    storedEncryptedMiB: Math.round(du(join(repoEnc, 'chunks')) / 1048576),
    resticStoredMiB: Math.round(du(join(restic, 'data')) / 1048576),
    coldCache: cold,
  };
  record('backup', figures, [
    `full backup of a ${SIZE_MIB} MiB disk (half random, quarter text, quarter zeros; page cache ${cold ? 'dropped before each' : 'warm: no right to drop it'}): ${figures.fullMiBps} MiB/s plain, ${figures.fullEncryptedMiBps} MiB/s encrypted; restic ${figures.resticFullMiBps} MiB/s (stored: ${figures.storedPlainMiB} / ${figures.storedEncryptedMiB} / restic ${figures.resticStoredMiB} MiB)`,
    `incremental after 1 % changed: ${figures.incrementalMs} ms (${figures.incrementalMode}, read ${figures.incrementalReadMiB} MiB); restic ${figures.resticIncrementalMs} ms (it re-reads the whole disk)`,
    `restore: ${figures.restoreMiBps} MiB/s into a new VM; restic restore ${figures.resticRestoreMiBps} MiB/s into a directory`,
    `dedup over ${CLONES} full clones: ${figures.dedupRatio}x; restic ${figures.resticDedupRatio}x`,
  ]);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
