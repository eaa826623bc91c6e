import { randomInt } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import { NfError } from '../../../errors';
import { KeyedLock } from '../../../util/lock';
import { LineSplitter } from '../qmp/protocol';

const DELIMITER = 0xff;

export interface QgaExecuteOptions {
  timeoutMs?: number;
  /** guest-shutdown and friends never answer on success. */
  noReply?: boolean;
}

/**
 * A client for the QEMU guest agent protocol over the VM's virtio-serial chardev socket. Works with our
 * agent-rs and with a stock qemu-ga. One command at a time (the agent is sequential); after connecting,
 * a timeout or a guest reboot it resynchronises with guest-sync-delimited: a 0xFF byte marks where the
 * reply to our random id starts, so stale bytes from before are dropped.
 */
export class QgaClient {
  private sock?: Socket;
  private readonly lines = new LineSplitter();
  private discardUntilDelimiter = false;
  private synced = false;
  private waiter?: (line: string) => void;
  private readonly queue = new KeyedLock();

  constructor(
    readonly socketPath: string,
    private readonly syncTimeoutMs = 3000,
  ) {}

  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    opts: QgaExecuteOptions = {},
  ): Promise<T> {
    return this.queue.run('channel', async () => {
      await this.ensureSynced();
      const msg = args === undefined ? { execute: command } : { execute: command, arguments: args };
      await this.write(`${JSON.stringify(msg)}\n`);
      if (opts.noReply) return undefined as T;
      const timeoutMs = opts.timeoutMs ?? 10_000;
      const line = await this.nextLine(timeoutMs, command).catch((err) => {
        this.synced = false; // a late reply would be taken for the next command's: resync first
        throw err;
      });
      return parseReply<T>(line, command);
    });
  }

  close(): void {
    this.sock?.destroy();
    this.sock = undefined;
    this.synced = false;
  }

  private async ensureSynced(): Promise<void> {
    if (this.synced && this.sock && !this.sock.destroyed) return;
    await this.connect();
    const id = randomInt(1, 2 ** 31);
    this.discardUntilDelimiter = true;
    // A leading 0xFF resets the agent's parser too, in case it holds half a command.
    await this.write(
      Buffer.concat([
        Buffer.from([DELIMITER]),
        Buffer.from(`${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } })}\n`),
      ]),
    );
    const deadline = Date.now() + this.syncTimeoutMs;
    for (;;) {
      const line = await this.nextLine(Math.max(1, deadline - Date.now()), 'guest-sync-delimited').catch(
        () => {
          throw new NfError(
            'unavailable',
            'the guest agent does not answer (not installed, not running, or the guest is still booting)',
          );
        },
      );
      try {
        if ((JSON.parse(line) as { return?: unknown }).return === id) break;
      } catch {
        // a stale fragment: keep reading until our id
      }
    }
    this.synced = true;
  }

  private async connect(): Promise<void> {
    if (this.sock && !this.sock.destroyed) return;
    this.sock = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection(this.socketPath);
      s.once('connect', () => resolve(s));
      s.once('error', (e) => reject(new NfError('unavailable', `no guest agent channel: ${e.message}`)));
    });
    this.sock.on('data', (chunk: Buffer) => this.onData(chunk));
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      this.synced = false;
      this.sock = undefined;
    });
  }

  private onData(chunk: Buffer): void {
    let data = chunk;
    if (this.discardUntilDelimiter) {
      const at = data.lastIndexOf(DELIMITER);
      if (at < 0) return;
      this.discardUntilDelimiter = false;
      data = data.subarray(at + 1);
    }
    for (const line of this.lines.push(data)) {
      if (line.trim() === '') continue;
      const w = this.waiter;
      this.waiter = undefined;
      w?.(line); // no one waiting: a stale reply, dropped
    }
  }

  private nextLine(timeoutMs: number, command: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new NfError('timeout', `the guest agent did not answer ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
    });
  }

  private write(data: string | Buffer): Promise<void> {
    const sock = this.sock;
    if (!sock) return Promise.reject(new NfError('unavailable', 'guest agent channel closed'));
    return new Promise((resolve, reject) => sock.write(data, (err) => (err ? reject(err) : resolve())));
  }
}

function parseReply<T>(line: string, command: string): T {
  let msg: { return?: unknown; error?: { class?: string; desc?: string } };
  try {
    msg = JSON.parse(line);
  } catch {
    throw new NfError('guest_error', `the guest agent sent garbage in reply to ${command}`);
  }
  if (msg.error) {
    const cls = msg.error.class ?? 'GenericError';
    if (cls === 'CommandNotFound')
      throw new NfError('not_implemented', `the guest agent does not support ${command}`);
    throw new NfError('guest_error', `guest agent: ${command} failed (${cls}): ${msg.error.desc ?? ''}`, {
      class: cls,
    });
  }
  return msg.return as T;
}
