import { createConnection, type Socket } from 'node:net';
import { QmpClientError, QmpTimeoutError } from './errors';

// QEMU creates the socket some time after it is spawned, and a stale socket
// file from a previous run refuses connections until QEMU re-binds it.
const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);
const POLL_MS = 25;

/**
 * Connects to a unix socket, retrying while it does not exist yet, until
 * `deadline` (a Date.now() value). `timeoutMs` is only used for the error.
 */
export async function dialUnix(path: string, deadline: number, timeoutMs: number): Promise<Socket> {
  let lastCode = 'none';
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new QmpTimeoutError(
        'connect',
        timeoutMs,
        `QMP connect to ${path} timed out after ${timeoutMs}ms (last error: ${lastCode})`,
      );
    }
    try {
      return await dialOnce(path, remaining, timeoutMs);
    } catch (err) {
      if (err instanceof QmpTimeoutError) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!RETRYABLE.has(code)) {
        throw new QmpClientError(`QMP connect to ${path} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      lastCode = code;
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))));
    }
  }
}

function dialOnce(path: string, remainingMs: number, timeoutMs: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = createConnection({ path });
    const timer = setTimeout(() => {
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.destroy();
      reject(
        new QmpTimeoutError('connect', timeoutMs, `QMP connect to ${path} timed out after ${timeoutMs}ms`),
      );
    }, remainingMs);
    const onConnect = () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    };
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.destroy();
      reject(err);
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}
