import { spawn } from 'node:child_process';
import { NfError } from '../errors';

/** Runs qemu-img with an argv array (never a shell) and returns stdout; stderr becomes the error message. */
export async function qemuImg(
  args: string[],
  timeoutMs = 120_000,
  onStdout?: (chunk: string) => void,
): Promise<string> {
  const bin = process.env.NEUROFLOW_QEMU_IMG ?? 'qemu-img';
  return await new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      onStdout?.(String(d));
      if (out.length > 65_536) out = out.slice(-8192); // -p prints for ever
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.once('error', (e) =>
      reject(
        new NfError('unavailable', `cannot run ${bin}: ${e.message}; install qemu-utils (scripts/setup.sh)`),
      ),
    );
    child.once('close', (code) => {
      if (code === 0) resolve(out);
      else
        reject(
          new NfError('hypervisor_error', `qemu-img ${args[0]} failed: ${err.trim() || `exit ${code}`}`),
        );
    });
  });
}

export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize: number;
  backingFilename?: string;
  /** The format recorded for the backing file (qcow2 images name it: `-F` at creation). */
  backingFormat?: string;
  /** qcow2 external data file: like a backing file, it could point at any host file. */
  dataFile?: string;
  snapshots: { name: string; date: string; vmStateSize: number }[];
  /** qcow2 persistent dirty bitmaps (backups keep theirs there), with QEMU's flags ('in-use' after a crash). */
  bitmaps: { name: string; flags: string[] }[];
}

interface RawInfo {
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  'format-specific'?: { data?: { 'data-file'?: string; bitmaps?: { name: string; flags?: string[] }[] } };
  snapshots?: { name: string; 'date-sec': number; 'vm-state-size': number }[];
}

/**
 * Reads an image's metadata: a file, or QEMU's --image-opts form (read-only=on: QEMU would mark the
 * bitmaps of an image it opened read-write in use while it looks). --force-share lets us read images a
 * running QEMU holds locked.
 */
export async function imageInfo(image: string | { imageOpts: string }, format?: string): Promise<ImageInfo> {
  const args = ['info', '--output=json', '--force-share'];
  if (format) args.push('-f', format);
  if (typeof image === 'string') args.push(image);
  else args.push('--image-opts', image.imageOpts);
  const raw = JSON.parse(await qemuImg(args)) as RawInfo;
  const info: ImageInfo = {
    format: raw.format,
    virtualSize: raw['virtual-size'],
    actualSize: raw['actual-size'] ?? 0,
    snapshots: (raw.snapshots ?? []).map((s) => ({
      name: s.name,
      date: new Date(s['date-sec'] * 1000).toISOString(),
      vmStateSize: s['vm-state-size'],
    })),
    bitmaps: (raw['format-specific']?.data?.bitmaps ?? []).map((b) => ({
      name: b.name,
      flags: b.flags ?? [],
    })),
  };
  if (raw['backing-filename']) info.backingFilename = raw['backing-filename'];
  if (raw['backing-filename-format']) info.backingFormat = raw['backing-filename-format'];
  const dataFile = raw['format-specific']?.data?.['data-file'];
  if (dataFile) info.dataFile = dataFile;
  return info;
}

/**
 * Runs qemu-io commands on an image given as QEMU's nested block options (a `json:` filename), e.g. to
 * write or check a data pattern. Returns what it printed; a failed command makes it throw.
 */
export async function qemuIo(
  options: Record<string, unknown>,
  commands: string[],
  opts: { readOnly?: boolean } = {},
): Promise<string> {
  const bin = process.env.NEUROFLOW_QEMU_IO ?? 'qemu-io';
  const args = [...(opts.readOnly ? ['-r'] : []), ...commands.flatMap((c) => ['-c', c])];
  args.push(`json:${JSON.stringify(options)}`);
  return await new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('error', (e) => reject(new NfError('unavailable', `cannot run ${bin}: ${e.message}`)));
    child.once('close', (code) =>
      code === 0 && !/^(qemu-io: |\w+ failed: )/m.test(out)
        ? resolve(out)
        : reject(new NfError('hypervisor_error', `qemu-io ${commands.join('; ')}: ${out.trim()}`)),
    );
  });
}

/** qemu-img with `-p`: calls onPercent with each percentage it prints (no time limit: a copy takes what it takes). */
export async function qemuImgProgress(args: string[], onPercent: (pct: number) => void): Promise<void> {
  let last = -1;
  await qemuImg(args, 0, (chunk) => {
    for (const m of chunk.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)) {
      const pct = Number(m[1]);
      if (pct === last) continue;
      last = pct;
      onPercent(pct);
    }
  });
}
