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
    const timeoutMs = opts.timeoutMs ?? 10_000;
    // One deadline for the whole call: waiting for the channel, writing, and the reply. An agent that
    // stops reading must not hold the channel (and every later command) forever.
    const deadline = Date.now() + timeoutMs;
    const run = this.queue.run('channel', async () => {
      if (Date.now() >= deadline)
        throw new NfError('timeout', `the guest agent channel stayed busy; ${command} was not sent`);
      await this.ensureSynced();
      const msg = args === undefined ? { execute: command } : { execute: command, arguments: args };
      await this.write(`${JSON.stringify(msg)}\n`);
      if (opts.noReply) {
        // Some agents answer anyway (agent-rs) or answer only on failure (qemu-ga): resync before the
        // next command so such a reply is never taken for its answer.
        this.synced = false;
        return undefined as T;
      }
      const line = await this.nextLine(Math.max(1, deadline - Date.now()), command).catch((err) => {
        this.close(); // a late reply must never be taken for the next command's answer
        throw err;
      });
      return parseReply<T>(line, command);
    });
    let timer: Timer | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Drop the connection: a stuck write or a late reply must not leak into the next command.
        this.close();
        reject(new NfError('timeout', `the guest agent did not answer ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    run.catch(() => {});
    return Promise.race([run, expired]).finally(() => clearTimeout(timer));
  }

  close(): void {
    this.sock?.destroy();
    this.sock = undefined;
    this.synced = false;
    this.lines.reset();
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
    const sock = this.sock;
    // Events of a socket we already replaced must not touch the current one.
    sock.on('data', (chunk: Buffer) => {
      if (this.sock === sock) this.onData(chunk);
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (this.sock !== sock) return;
      this.synced = false;
      this.sock = undefined;
    });
  }

  private onData(chunk: Buffer): void {
    let data = chunk;
    const at = data.lastIndexOf(DELIMITER);
    if (at >= 0) {
      // Every 0xFF starts a fresh stream (the reply to a sync): drop what came before, partial lines too.
      this.discardUntilDelimiter = false;
      this.lines.reset();
      data = data.subarray(at + 1);
    } else if (this.discardUntilDelimiter) {
      return;
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
    if (/has been disabled/i.test(msg.error.desc ?? '')) {
      throw new NfError(
        'invalid_state',
        `guest agent: ${command} is disabled now (are the guest file systems frozen?)`,
      );
    }
    if (cls === 'CommandNotFound')
      throw new NfError('not_implemented', `the guest agent does not support ${command}`);
    throw new NfError('guest_error', `guest agent: ${command} failed (${cls}): ${msg.error.desc ?? ''}`, {
      class: cls,
    });
  }
  return msg.return as T;
}
