import { spawn } from 'node:child_process';
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NfError } from '../../errors';
import type { CloudInitRun } from '../types';
import type { RunPaths } from './cmdline';

/**
 * The cloud-init NoCloud seed: meta-data, user-data and network-config in an ISO 9660 image labelled
 * "cidata" (xorriso), made in the run dir at every start, so it always says what the VM's record says.
 */
export async function writeSeedIso(paths: RunPaths, seed: CloudInitRun): Promise<void> {
  const dir = join(paths.runDir, 'cidata');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  await writeFile(join(dir, 'meta-data'), seed.metaData, { mode: 0o600 });
  await writeFile(join(dir, 'user-data'), seed.userData, { mode: 0o600 });
  if (seed.networkConfig !== undefined)
    await writeFile(join(dir, 'network-config'), seed.networkConfig, { mode: 0o600 });
  const tmp = `${paths.seedIso}.tmp`;
  const args = ['-as', 'mkisofs', '-quiet', '-output', tmp, '-volid', 'cidata', '-joliet', '-rock', dir];
  const res = await new Promise<{ code: number; err: string }>((resolve) => {
    const child = spawn('xorriso', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.once('error', (e) => resolve({ code: 127, err: e.message }));
    child.once('close', (code) => resolve({ code: code ?? 124, err }));
  });
  await rm(dir, { recursive: true, force: true }); // the ISO keeps it; the loose files may hold a hash
  if (res.code !== 0)
    throw new NfError(
      'hypervisor_error',
      `cannot make the cloud-init seed: xorriso ${res.err.trim().split('\n').at(-1) ?? `exit ${res.code}`} (Debian package xorriso)`,
    );
  await chmod(tmp, 0o600);
  await rename(tmp, paths.seedIso);
}
