import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const results = mkdtempSync(join(tmpdir(), 'nf-bench-smoke-'));

/**
 * Runs one benchmark at its smoke size (BENCH_SMOKE=1) in its own Bun process, as `npm run bench` runs
 * it, and returns the JSON it wrote. No figure is judged here: a benchmark that cannot run any more fails.
 */
async function smoke(
  script: string,
  name: string,
): Promise<{ smoke: boolean; figures: Record<string, unknown> }> {
  const child = spawn(process.execPath, [join(ROOT, 'bench', script)], {
    cwd: ROOT,
    env: { ...process.env, BENCH_SMOKE: '1', BENCH_RESULTS_DIR: results },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (b) => (output += b));
  child.stderr!.on('data', (b) => (output += b));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  expect(code, `bench/${script} failed:\n${output.slice(-4000)}`).toBe(0);
  const file = join(results, `${name}.json`);
  expect(existsSync(file), `bench/${script} wrote no ${name}.json:\n${output.slice(-2000)}`).toBe(true);
  return JSON.parse(readFileSync(file, 'utf8'));
}

describe('every benchmark still runs (smoke size, figures not judged)', () => {
  afterAll(() => rmSync(results, { recursive: true, force: true }));

  it.each([
    ['scheduler.ts', 'scheduler', 'placementsPerSecond'],
    ['single-host.ts', 'single-host', 'startMs'],
    ['agent.ts', 'guest-agent', 'agentSizeBytes'],
    ['ui.ts', 'web-ui', 'bundleGzipKiB'],
    ['cluster.ts', 'cluster', 'failoverMs'],
    ['storage.ts', 'storage', 'linkedCloneOf10GiBMs'],
    ['migration.ts', 'migration', 'linkMiBps'],
    ['ha.ts', 'ha', 'failoverMs'],
    ['hardware.ts', 'hardware', 'hotplugDiskMs'],
    ['import.ts', 'import', 'importMiBps'],
    ['backup.ts', 'backup', 'fullMiBps'],
    ['network.ts', 'network', 'tcpAcrossHostsMiBps'],
    ['appliance.ts', 'appliance', 'liveBootToUpSeconds'],
  ])('bench/%s', async (script, name, figure) => {
    const out = await smoke(script, name);
    expect(out.smoke).toBe(true);
    expect(out.figures[figure]).toBeDefined();
  });
});
