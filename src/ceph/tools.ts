import { spawn } from 'node:child_process';
import { NfError } from '../errors';

/**
 * Runs a Ceph tool (ceph, rbd, ceph-authtool, monmaptool, ceph-mon --mkfs, ...) with an argv array,
 * never a shell; `input` goes to its stdin. Resolves with stdout; a failure names the command (not the
 * paths before it) and the last lines of stderr.
 */
export function cephTool(
  bin: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number; what?: string } = {},
): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', (e) =>
      reject(new NfError('unavailable', `cannot run ${bin}: ${e.message}; install Ceph (scripts/setup.sh)`)),
    );
    child.once('close', (code, signal) => {
      if (code === 0) return resolve(out);
      const why = signal
        ? `timed out after ${timeoutMs} ms`
        : err.trim().split('\n').slice(-3).join(' ') || `exit ${code}`;
      reject(new NfError(signal ? 'timeout' : 'unavailable', `${opts.what ?? bin} failed: ${why}`));
    });
    child.stdin.end(opts.input ?? '');
  });
}
