import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestGuest {
  dir: string;
  vmlinux: string;
  initrd: string;
  iso: string;
  cmdline: string;
}

let cached: TestGuest | undefined;

/** The cached test guest (kernel + busybox initramfs + demo ISO); built on first use. */
export function testGuest(): TestGuest {
  if (cached) return cached;
  const root = join(import.meta.dirname, '..', '..');
  const dir =
    process.env.NEUROFLOW_TEST_GUEST ??
    execFileSync(join(root, 'scripts', 'build-test-guest.sh'), {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    })
      .trim()
      .split('\n')
      .at(-1)!;
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { cmdline: string };
  cached = {
    dir,
    vmlinux: join(dir, 'vmlinux'),
    initrd: join(dir, 'initrd.img'),
    iso: join(dir, 'demo.iso'),
    cmdline: manifest.cmdline,
  };
  return cached;
}

export const BOOTED = 'NEUROFLOW-TEST-GUEST: booted';
