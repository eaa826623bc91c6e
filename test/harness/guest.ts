import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestGuest {
  dir: string;
  vmlinux: string;
  /** The distribution bzImage (EFI stub): what UEFI firmware boots; vmlinux is for direct boots only. */
  vmlinuz: string;
  initrd: string;
  iso: string;
  cmdline: string;
  /** The same guest with Debian's stock qemu-ga instead of agent-rs. */
  initrdQemuGa: string;
  /** A raw ext4 image (label nfdata) the guest mounts at /data when it is a second disk. */
  dataDisk: string;
  users: Record<string, string>;
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
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
    cmdline: string;
    initrdQemuGa: string;
    dataDisk: string;
    users: Record<string, string>;
  };
  cached = {
    dir,
    vmlinux: join(dir, 'vmlinux'),
    vmlinuz: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.img'),
    iso: join(dir, 'demo.iso'),
    cmdline: manifest.cmdline,
    initrdQemuGa: join(dir, manifest.initrdQemuGa),
    dataDisk: join(dir, manifest.dataDisk),
    users: manifest.users,
  };
  return cached;
}

export const BOOTED = 'NEUROFLOW-TEST-GUEST: booted';
