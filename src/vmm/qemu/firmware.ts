import { join } from 'node:path';
import { NfError } from '../../errors';
import { CPU_LEVELS, type CpuRun } from '../types';

/**
 * UEFI firmware and CPU models as QEMU takes them. OVMF comes from Debian's `ovmf` package: the 4 MiB
 * builds (more room for Secure Boot keys and Windows' variables), the Secure Boot code (needs SMM) with
 * Microsoft's keys enrolled in its variable template.
 */
export function ovmfDir(): string {
  return process.env.NEUROFLOW_OVMF_DIR ?? '/usr/share/OVMF';
}

export function ovmfFiles(secureBoot: boolean, dir = ovmfDir()): { code: string; varsTemplate: string } {
  return secureBoot
    ? { code: join(dir, 'OVMF_CODE_4M.secboot.fd'), varsTemplate: join(dir, 'OVMF_VARS_4M.ms.fd') }
    : { code: join(dir, 'OVMF_CODE_4M.fd'), varsTemplate: join(dir, 'OVMF_VARS_4M.fd') };
}

/** The size of the 4 MiB builds' variable store; the flash device must be exactly this big. */
export const OVMF_VARS_BYTES = 540_672;

/**
 * The x86-64 micro-architecture levels (psABI) as flags on qemu64, which QEMU 7.2 does not name yet: a
 * VM on one of them runs on any host that has the level, so it can move between hosts of different
 * generations. `enforce` makes a host without a flag refuse the start instead of hiding the flag.
 */
const LEVEL_FLAGS: Record<string, string[]> = {
  'x86-64-v2': ['cx16', 'lahf_lm', 'popcnt', 'pni', 'sse4.1', 'sse4.2', 'ssse3'],
};
LEVEL_FLAGS['x86-64-v3'] = [
  ...LEVEL_FLAGS['x86-64-v2']!,
  ...['avx', 'avx2', 'bmi1', 'bmi2', 'f16c', 'fma', 'abm', 'movbe', 'xsave'],
];
LEVEL_FLAGS['x86-64-v4'] = [
  ...LEVEL_FLAGS['x86-64-v3']!,
  ...['avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl'],
];

/** The levels a CPU with these features (QEMU's property names, true = present) can run. */
export function levelsOf(props: Record<string, unknown>): string[] {
  return CPU_LEVELS.filter((l) => LEVEL_FLAGS[l]!.every((f) => props[f] === true));
}

/** The -cpu value: model, its flags, the caller's flags (host under TCG is max: TCG has no host CPU). */
export function cpuArg(cpu: CpuRun | undefined, accel: 'kvm' | 'tcg'): string {
  const best = accel === 'kvm' ? 'host' : 'max';
  const model = cpu?.model ?? 'host';
  // names go into one -cpu option: a comma or '=' would add options of its own
  for (const name of [model, ...Object.keys(cpu?.flags ?? {})])
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
      throw new NfError('validation_failed', `CPU model or flag "${name}" is not a valid name`);
  const parts: string[] = [];
  const level = LEVEL_FLAGS[model];
  if (level) parts.push('qemu64', ...level.map((f) => `+${f}`));
  else parts.push(model === 'host' ? best : model);
  for (const [flag, on] of Object.entries(cpu?.flags ?? {})) parts.push(`${on ? '+' : '-'}${flag}`);
  if (level) parts.push('enforce');
  return parts.join(',');
}
