import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

/**
 * BENCH_SMOKE=1: the test command's smoke run. Every benchmark runs at a small size and writes its JSON to
 * BENCH_RESULTS_DIR; docs/benchmarks.md is left alone (smoke figures are not figures).
 */
export const SMOKE = process.env.BENCH_SMOKE === '1';

/** A size from the environment variable `env`, else the full or the smoke default. */
export function benchSize(env: string, full: number, smoke: number): number {
  const v = process.env[env];
  return v !== undefined && v !== '' ? Number(v) : SMOKE ? smoke : full;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

export function summary(samples: number[]): { n: number; p50: number; p99: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: s.length,
    p50: r(percentile(s, 50)),
    p99: r(percentile(s, 99)),
    max: r(s.at(-1) ?? Number.NaN),
  };
}

export async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const v = await fn();
  return [performance.now() - t0, v];
}

/**
 * Writes bench/results/NAME.json (BENCH_RESULTS_DIR overrides the directory) and appends one line per
 * figure to docs/benchmarks.md, except in a smoke run.
 */
export function record(name: string, figures: Record<string, unknown>, lines: string[]): void {
  const dir = process.env.BENCH_RESULTS_DIR || join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const when = new Date().toISOString();
  writeFileSync(
    join(dir, `${name}.json`),
    `${JSON.stringify({ name, when, machine: machine(), smoke: SMOKE, figures }, null, 2)}\n`,
  );
  for (const l of lines) console.log(`${name}: ${l}`);
  if (SMOKE) return;
  const md = join(ROOT, 'docs', 'benchmarks.md');
  if (!existsSync(md))
    writeFileSync(
      md,
      '# Benchmarks\n\nAppended by `npm run bench`; newest last. Machine: see each line.\n\n',
    );
  for (const l of lines) appendFileSync(md, `- ${when.slice(0, 16)} ${name} (${machine()}): ${l}\n`);
}

function machine(): string {
  return `${cpus().length} cpu, ${Math.round(totalmem() / 1024 ** 3)} GiB, tcg`;
}
