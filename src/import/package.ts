import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { realRunner } from '../appliance/system';
import { NfError } from '../errors';
import { type OvfVm, packageFileName, parseOvf } from './ovf';

/**
 * What an import starts from: an OVA (a tar of an OVF, its disks and a manifest), an OVF beside its
 * disks, or a bare VMDK. Opening it checks everything a conversion would trust: the OVF, that every file
 * it names is in the package, the manifest's digests, and that no VMDK names a file outside the package
 * (extents, a parent of a delta disk): qemu-img would open whatever a descriptor names.
 */
export interface ImportPackage {
  /** The package's kind, as found. */
  kind: 'ova' | 'ovf' | 'vmdk';
  /** The VM described (for a bare VMDK: one disk and nothing else known). */
  ovf?: OvfVm;
  /** The disks in the VM's order: files in `dir`. */
  disks: { file: string; path: string; capacityBytes?: number }[];
  /** Files checked against the manifest (name → algorithm); empty without one. */
  verified: Record<string, string>;
  /** Removes what opening the package unpacked (nothing for an OVF or VMDK in place). */
  cleanup(): Promise<void>;
}

/** Opens the package at `path`; an OVA is unpacked into a new directory under `workRoot`. */
export async function openPackage(path: string, workRoot: string): Promise<ImportPackage> {
  const kind = await packageKind(path);
  if (kind === 'vmdk') {
    await checkVmdk(path, dirname(path), basename(path));
    return { kind, disks: [{ file: basename(path), path }], verified: {}, cleanup: async () => {} };
  }
  let dir = dirname(path);
  let ovfName = basename(path);
  let cleanup = async () => {};
  if (kind === 'ova') {
    dir = await mkdtemp(join(workRoot, 'ova-'));
    cleanup = () => rm(dir, { recursive: true, force: true });
    try {
      const names = await untar(path, dir);
      const ovfs = names.filter((n) => n.toLowerCase().endsWith('.ovf'));
      if (ovfs.length !== 1)
        throw new NfError(
          'validation_failed',
          `the OVA holds ${ovfs.length} OVF descriptors; one is expected`,
        );
      ovfName = ovfs[0]!;
    } catch (err) {
      await cleanup();
      throw err;
    }
  }
  try {
    const ovf = parseOvf(await readFile(join(dir, ovfName), 'utf8'));
    const present = new Set(await readdir(dir));
    for (const d of ovf.disks)
      if (!present.has(d.file))
        throw new NfError(
          'validation_failed',
          `${d.label}: the OVF names the file "${d.file}", which is not in the package`,
        );
    const verified = await checkManifest(dir, ovfName, present);
    for (const d of ovf.disks) await checkVmdk(join(dir, d.file), dir, d.label);
    return {
      kind,
      ovf,
      disks: ovf.disks.map((d) => ({
        file: d.file,
        path: join(dir, d.file),
        capacityBytes: d.capacityBytes,
      })),
      verified,
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function packageKind(path: string): Promise<ImportPackage['kind']> {
  const ext = extname(path).toLowerCase();
  const head = Buffer.alloc(512);
  const fh = await open(path, 'r').catch(() => {
    throw new NfError('file_not_found', `${path} cannot be read`);
  });
  try {
    await fh.read(head, 0, 512, 0);
  } finally {
    await fh.close();
  }
  if (head.subarray(257, 262).toString() === 'ustar') return 'ova';
  if (
    head.subarray(0, 4).toString() === 'KDMV' ||
    head.toString('latin1').startsWith('# Disk DescriptorFile')
  )
    return 'vmdk';
  if (ext === '.ovf' || /^\s*(<\?xml|<Envelope|<ovf:Envelope)/.test(head.toString('utf8'))) return 'ovf';
  throw new NfError(
    'validation_failed',
    `${basename(path)} is not an OVA (tar), an OVF descriptor or a VMDK; export the VM as OVF/OVA`,
  );
}

/** Lists the tar (every member a plain file name), then extracts it. Returns the member names. */
async function untar(path: string, dir: string): Promise<string[]> {
  const listing = await run('tar', ['-tvf', path]);
  const names: string[] = [];
  for (const line of listing.split('\n').filter((l) => l.trim())) {
    if (!line.startsWith('-'))
      throw new NfError(
        'validation_failed',
        `the OVA holds something other than a plain file: ${line.slice(0, 120)}`,
      );
    names.push(line.split(/\s+/).slice(5).join(' '));
  }
  for (const n of names) packageFileName(n, 'OVA member');
  if (new Set(names).size !== names.length)
    throw new NfError('validation_failed', 'the OVA names a file twice');
  await run('tar', ['-xf', path, '-C', dir, '--no-same-owner', '--no-same-permissions', '--', ...names]);
  return names;
}

/** `NAME.mf` beside the OVF (or any one .mf): every line's digest must match its file. */
async function checkManifest(
  dir: string,
  ovfName: string,
  present: Set<string>,
): Promise<Record<string, string>> {
  const mfs = [...present].filter((f) => f.toLowerCase().endsWith('.mf'));
  const mf = mfs.find((f) => f.slice(0, -3) === ovfName.replace(/\.ovf$/i, '')) ?? mfs[0];
  if (!mf) return {};
  const verified: Record<string, string> = {};
  for (const line of (await readFile(join(dir, mf), 'utf8')).split(/\r?\n/)) {
    if (!line.trim()) continue;
    const m = /^(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)\s*$/.exec(line.trim());
    if (!m)
      throw new NfError(
        'validation_failed',
        `manifest ${mf}: a line that is no digest: ${line.slice(0, 80)}`,
      );
    const [, algo, name, want] = m as unknown as [string, string, string, string];
    packageFileName(name, `manifest ${mf}`);
    if (!present.has(name))
      throw new NfError('validation_failed', `manifest ${mf} names "${name}", which is not in the package`);
    const have = await digest(join(dir, name), algo.toLowerCase());
    if (have !== want.toLowerCase())
      throw new NfError(
        'checksum_mismatch',
        `${name}: its ${algo} is ${have}, the manifest says ${want.toLowerCase()}`,
      );
    verified[name] = algo;
  }
  return verified;
}

function digest(path: string, algo: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash(algo);
    createReadStream(path)
      .on('data', (b) => h.update(b))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/**
 * A VMDK qemu-img may open: a sparse one (monolithicSparse, streamOptimized: one file) that is no delta
 * disk, or a descriptor (monolithicFlat, split extents) whose extents are files of the package.
 */
export async function checkVmdk(path: string, dir: string, what: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile()) throw new NfError('validation_failed', `${what}: ${basename(path)} is not a file`);
  const fh = await open(path, 'r');
  let descriptor: string;
  try {
    const head = Buffer.alloc(512);
    await fh.read(head, 0, 512, 0);
    if (head.subarray(0, 4).toString() === 'KDMV') {
      // the embedded descriptor: at descriptorOffset (sectors), descriptorSize sectors
      const offset = Number(head.readBigUInt64LE(28));
      const size = Number(head.readBigUInt64LE(36));
      if (size === 0 || size > 2048 || offset * 512 + size * 512 > st.size)
        throw new NfError(
          'validation_failed',
          `${what}: ${basename(path)} is a VMDK without a readable descriptor (truncated?)`,
        );
      const buf = Buffer.alloc(size * 512);
      await fh.read(buf, 0, buf.length, offset * 512);
      descriptor = buf.toString('latin1').replace(/\0+$/, '');
    } else if (head.toString('latin1').startsWith('# Disk DescriptorFile')) {
      if (st.size > 64 * 1024)
        throw new NfError('validation_failed', `${what}: a VMDK descriptor over 64 KiB`);
      descriptor = await readFile(path, 'latin1');
    } else throw new NfError('validation_failed', `${what}: ${basename(path)} is not a VMDK`);
  } finally {
    await fh.close();
  }
  if (/^\s*parentFileNameHint\s*=/m.test(descriptor) || /^\s*parentCID\s*=\s*(?!ffffffff)/im.test(descriptor))
    throw new NfError(
      'validation_failed',
      `${what}: ${basename(path)} is a delta disk of a VMware snapshot; consolidate the VM's snapshots before exporting it`,
    );
  const embedded = !descriptor.startsWith('# Disk DescriptorFile') || (await isSparse(path));
  for (const line of descriptor.split(/\r?\n/)) {
    const m = /^\s*(RW|RDONLY|NOACCESS)\s+\d+\s+(\w+)\s+"([^"]*)"/.exec(line);
    if (!m) continue;
    const file = m[3]!;
    if (embedded) continue; // a sparse VMDK is its own extent whatever its descriptor calls it
    packageFileName(file, `${what}: extent`);
    if (!(await lstat(join(dir, file)).catch(() => undefined))?.isFile())
      throw new NfError('validation_failed', `${what}: extent "${file}" is not in the package`);
  }
}

async function isSparse(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    return b.toString() === 'KDMV';
  } finally {
    await fh.close();
  }
}

/** A tar command's output; a failure is the archive's (truncated or damaged). */
async function run(cmd: string, args: string[]): Promise<string> {
  const r = await realRunner().read([cmd, ...args], { timeoutMs: 600_000 });
  if (r.code !== 0)
    throw new NfError(
      'validation_failed',
      `${cmd} ${args[0]} failed: ${r.stderr.trim().split('\n').at(-1) || `exit ${r.code}`} (a truncated or damaged archive?)`,
    );
  return r.stdout;
}
