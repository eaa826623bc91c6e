import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { NfError } from '../errors';
import { waitFor } from '../util/wait';

export interface NbdServer {
  socket: string;
  close(): Promise<void>;
}

/**
 * Serves one volume over NBD on a unix socket with qemu-nbd (a stopped VM's disk to back up, or a new
 * volume to restore into). `imageOpts` is QEMU's --image-opts form of the volume (qcow2 file or RBD alike).
 */
export async function serveVolume(opts: {
  socket: string;
  imageOpts: string;
  readOnly: boolean;
  /** A dirty bitmap of the image to export as the context qemu:dirty-bitmap:<name>. */
  bitmap?: string;
}): Promise<NbdServer> {
  rmSync(opts.socket, { force: true });
  const argv = [
    '--persistent',
    '--shared=8',
    `--socket=${opts.socket}`,
    '--cache=none',
    '--aio=threads',
    ...(opts.readOnly ? ['--read-only'] : ['--discard=unmap']),
    ...(opts.bitmap ? ['--bitmap', opts.bitmap] : []),
    '--image-opts',
    opts.imageOpts,
  ];
  const child = spawn('qemu-nbd', argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let exited = false;
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  child.on('exit', () => {
    exited = true;
  });
  const close = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await waitFor(() => exited, { timeoutMs: 10_000, intervalMs: 20, what: 'qemu-nbd to exit' }).catch(() =>
        child.kill('SIGKILL'),
      );
    }
    rmSync(opts.socket, { force: true });
  };
  try {
    await waitFor(
      () => {
        if (exited) throw new NfError('hypervisor_error', `qemu-nbd failed: ${stderr.trim() || 'it exited'}`);
        // the socket file appears at bind(), a moment before listen(): a connect in between is refused
        return existsSync(opts.socket) && accepts(opts.socket);
      },
      { timeoutMs: 15_000, intervalMs: 10, what: 'qemu-nbd to listen' },
    );
  } catch (err) {
    await close();
    throw err;
  }
  return { socket: opts.socket, close };
}

/** Whether a unix socket accepts a connection now (closed at once). */
function accepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ path });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
