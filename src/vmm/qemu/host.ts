import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../util/fs';
import { createLogger } from '../../util/log';
import { waitFor } from '../../util/wait';
import type { Accelerator } from '../types';
import { levelsOf } from './firmware';

const log = createLogger('accel');

export interface AccelChoice {
  accel: Accelerator;
  /** Why this one: shown in the API so an admin knows why a host runs slow. */
  reason: string;
  /**
   * The portable CPU levels (x86-64-v2..v4) VMs can have here, under this accelerator: what makes a
   * cluster-wide default CPU model that every host runs (absent: not probed).
   */
  cpuLevels?: string[];
}

/**
 * The x86-64 levels QEMU can give a guest under `accel`: the features of the best model (host under
 * KVM, max under TCG) as QEMU expands it (QMP on stdin, a machine without CPUs: ~0.1 s).
 */
export async function probeCpuLevels(
  binary: string,
  accel: Accelerator,
  timeoutMs = 10_000,
): Promise<string[]> {
  const model = accel === 'kvm' ? 'host' : 'max';
  const child = spawn(
    binary,
    [
      '-machine',
      'none',
      '-accel',
      accel,
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-qmp',
      'stdio',
    ],
    { stdio: ['pipe', 'pipe', 'ignore'] },
  );
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.stdin.end(
    [
      { execute: 'qmp_capabilities' },
      { execute: 'query-cpu-model-expansion', arguments: { type: 'full', model: { name: model } } },
      { execute: 'quit' },
    ]
      .map((c) => JSON.stringify(c))
      .join('\n'),
  );
  await exited;
  clearTimeout(timer);
  for (const line of out.split('\n')) {
    try {
      const props = (JSON.parse(line) as { return?: { model?: { props?: Record<string, unknown> } } }).return
        ?.model?.props;
      if (props) return levelsOf(props);
    } catch {}
  }
  log.warn('cannot tell the CPU levels QEMU offers', { accel, output: out.slice(0, 200) });
  return [];
}

/** The accelerator and, under it, the CPU levels. */
async function chooseWithLevels(binary: string): Promise<AccelChoice> {
  const choice = await chooseAccelerator(binary);
  return { ...choice, cpuLevels: await probeCpuLevels(binary, choice.accel) };
}

export function qemuBinary(): string {
  return process.env.NEUROFLOW_QEMU ?? 'qemu-system-x86_64';
}

export function qemuVersion(binary = qemuBinary()): string | undefined {
  const res = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return /version (\S+)/.exec(res.stdout ?? '')?.[1];
}

/** The newest kernel in /boot, used as the probe guest (the appliance always has one). */
function probeKernel(): string | undefined {
  if (process.env.NEUROFLOW_PROBE_KERNEL) return process.env.NEUROFLOW_PROBE_KERNEL;
  try {
    const kernels = readdirSync('/boot')
      .filter((f) => f.startsWith('vmlinuz-'))
      .sort();
    const last = kernels.at(-1);
    return last ? join('/boot', last) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * /dev/kvm can exist and still hang (nested virtualisation): boot a real kernel under KVM with no root
 * disk and wait for its panic message. If it does not get there quickly, KVM does not really work.
 */
export async function chooseAccelerator(binary = qemuBinary(), timeoutMs = 8000): Promise<AccelChoice> {
  const forced = process.env.NEUROFLOW_ACCEL;
  if (forced === 'tcg' || forced === 'kvm')
    return { accel: forced, reason: `set by NEUROFLOW_ACCEL=${forced}` };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', reason: '/dev/kvm is not available' };
  }
  const kernel = probeKernel();
  if (!kernel) return { accel: 'tcg', reason: 'no kernel in /boot to probe KVM with' };
  const dir = mkdtempSync(join(tmpdir(), 'nf-kvm-probe-'));
  const serial = join(dir, 'serial.log');
  const args = [
    '-machine',
    'pc',
    '-accel',
    'kvm',
    '-cpu',
    'host',
    '-m',
    '256',
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-serial',
    `file:${serial}`,
    '-kernel',
    kernel,
    '-append',
    'console=ttyS0 panic=-1 root=/dev/nonexistent',
  ];
  const child = spawn(binary, args, { stdio: 'ignore' });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const started = Date.now();
  const panicked = () => {
    try {
      return /Kernel panic|VFS: Unable to mount/.test(readFileSync(serial, 'utf8'));
    } catch {
      return false;
    }
  };
  try {
    // The kernel panics without a root disk: reaching that message proves vCPUs really execute.
    const ok = await waitFor(() => (panicked() ? 'ok' : exited ? 'exited' : undefined), {
      timeoutMs,
      intervalMs: 100,
      what: 'the KVM probe',
    }).then(
      (r) => r === 'ok' || panicked(),
      () => false,
    );
    const ms = Date.now() - started;
    log.info('KVM probe finished', { ok, ms });
    return ok
      ? { accel: 'kvm', reason: `KVM probe booted a kernel in ${ms} ms` }
      : {
          accel: 'tcg',
          reason: `KVM probe guest did not reach its kernel panic within ${timeoutMs} ms (nested virtualisation?)`,
        };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The probe costs seconds when KVM hangs, so its answer is kept for this boot of the host and this QEMU
 * (a reboot or an upgrade may change it).
 */
export async function chooseAcceleratorCached(
  cacheFile: string,
  binary = qemuBinary(),
): Promise<AccelChoice> {
  if (process.env.NEUROFLOW_ACCEL) return chooseWithLevels(binary);
  let bootId = '';
  try {
    bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {}
  const key = `${bootId}|${qemuVersion(binary) ?? ''}`;
  try {
    const saved = JSON.parse(readFileSync(cacheFile, 'utf8')) as AccelChoice & { key: string };
    if (saved.key === key && saved.cpuLevels)
      return {
        accel: saved.accel,
        reason: `${saved.reason} (probed earlier this boot)`,
        cpuLevels: saved.cpuLevels,
      };
  } catch {}
  const choice = await chooseWithLevels(binary);
  await writeFileAtomic(cacheFile, JSON.stringify({ ...choice, key }), 0o644);
  return choice;
}
