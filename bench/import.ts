/**
 * Import figures of issue 17 on one host: the conversion speed of a streamOptimized VMDK (half random
 * data, half zeros, 2 GiB by default) imported through the API (POST /api/v1/imports of a bare VMDK,
 * until its task ends: the checks, qemu-img into the pool, the VM recorded), next to a plain
 * `qemu-img convert` of the same file into qcow2 in the same run. Target: within 10 %.
 * Run: `bun bench/import.ts` (after `npm run build`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../src/util/wait';
import { TestDaemon } from '../test/harness/daemon';
import { benchSize, record, timed } from './lib';

const SIZE_MIB = benchSize('BENCH_IMPORT_MIB', 2048, 64);
const ROUNDS = benchSize('BENCH_IMPORT_ROUNDS', 5, 1);

function sh(args: string[]): void {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
}

const dir = mkdtempSync(join(tmpdir(), 'nf-bench-import-'));
try {
  await using d = await TestDaemon.start();
  const raw = join(dir, 'disk.raw');
  sh(['truncate', '-s', `${SIZE_MIB}M`, raw]);
  sh(['dd', 'if=/dev/urandom', `of=${raw}`, 'bs=1M', `count=${SIZE_MIB / 2}`, 'conv=notrunc', 'status=none']);
  const vmdk = join(dir, 'bench.vmdk');
  sh(['qemu-img', 'convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
  rmSync(raw);
  // alternated rounds, the median of each (one run of either swings with the page cache)
  const plain: number[] = [];
  const imported: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // each run starts with no dirty pages of the one before (their writeback would throttle it)
    sh(['sync']);
    const [plainRound] = await timed(async () =>
      sh(['qemu-img', 'convert', '-f', 'vmdk', '-O', 'qcow2', vmdk, join(dir, 'plain.qcow2')]),
    );
    plain.push(plainRound);
    rmSync(join(dir, 'plain.qcow2'));
    let vmId = '';
    sh(['sync']);
    const [importRound] = await timed(async () => {
      const task = await d.api.request<{ id: string }>('POST', '/api/v1/imports', {
        source: { path: vmdk },
        name: `bench-import-${round}`,
      });
      const done = await waitFor(
        async () => {
          const t = await d.api.request<{ status: string; error?: { message: string } }>(
            'GET',
            `/api/v1/tasks/${task.id}`,
          );
          return t.status === 'running' ? undefined : t;
        },
        { timeoutMs: 1_800_000, intervalMs: 100, what: 'the import' },
      );
      if (done.status !== 'ok') throw new Error(`import failed: ${done.error?.message}`);
      vmId = (done as { result?: { vm: string } }).result?.vm ?? '';
    });
    imported.push(importRound);
    await d.api.request('DELETE', `/api/v1/vms/${vmId}`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const plainMs = median(plain);
  const importMs = median(imported);
  const mibps = (ms: number) => Math.round((SIZE_MIB / (ms / 1000)) * 10) / 10;
  const figures = {
    virtualMiB: SIZE_MIB,
    vmdkMiB: Math.round(statSync(vmdk).size / 1048576),
    importMs: Math.round(importMs),
    plainConvertMs: Math.round(plainMs),
    importMiBps: mibps(importMs),
    plainMiBps: mibps(plainMs),
    importVsPlainPct: Math.round((plainMs / importMs) * 100),
  };
  record('import', figures, [
    `import of a ${SIZE_MIB} MiB streamOptimized VMDK (half random, ${figures.vmdkMiB} MiB file) through the API: ${figures.importMiBps} MiB/s (${figures.importMs} ms); plain qemu-img convert to qcow2 of the same file: ${figures.plainMiBps} MiB/s (${figures.plainConvertMs} ms); the import runs at ${figures.importVsPlainPct} % of it (medians of ${ROUNDS} alternated rounds)`,
  ]);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
