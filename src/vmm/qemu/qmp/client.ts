import type { Socket } from 'node:net';
import { dialUnix } from './dial';
import { QmpClientError, QmpDisconnectedError, QmpError, QmpTimeoutError } from './errors';
import { EventHub, type QmpEventListener, type WaitForEventOptions } from './events';
import { encodeCommand, QmpDecoder, type QmpEvent, type QmpGreeting, type QmpMessage } from './protocol';

export interface ConnectOptions {
  /** Covers socket connect (with retries), greeting and qmp_capabilities. Default 5000. */
  timeoutMs?: number;
}
export interface ExecuteOptions {
  /** Default 10000. Infinity waits until a reply or disconnect. */
  timeoutMs?: number;
}
interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  sent: boolean;
}

export class QmpClient {
  /** Resolves once the socket has closed, for whatever reason. Never rejects. */
  readonly closed: Promise<void>;
  private greetingValue: QmpGreeting | undefined;
  private readonly greetingReceived: Promise<QmpGreeting>;
  private resolveGreeting!: (g: QmpGreeting) => void;
  private rejectGreeting!: (err: Error) => void;
  private readonly pending = new Map<string, Pending>();
  private readonly events = new EventHub();
  private readonly decoder = new QmpDecoder();
  private seq = 0;
  private torn = false;
  private closedLocally = false;
  private lastSocketError: Error | undefined;

  static async connect(socketPath: string, opts: ConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const deadline = Date.now() + timeoutMs;
    const client = new QmpClient(await dialUnix(socketPath, deadline, timeoutMs));
    let stage = 'greeting';
    let timedOut = false;
    // One timer for the remaining stages: closing the client makes whichever
    // stage is in progress reject, and we translate that into a timeout.
    const timer = setTimeout(
      () => {
        timedOut = true;
        client.close();
      },
      Math.max(0, deadline - Date.now()),
    );
    try {
      await client.greetingReceived;
      stage = 'qmp_capabilities';
      await client.execute('qmp_capabilities', undefined, { timeoutMs: Number.POSITIVE_INFINITY });
      return client;
    } catch (err) {
      client.close();
      if (!timedOut) throw err;
      // QEMU serves one QMP client per socket; a second client is accepted by
      // the kernel but never greeted, which ends up here.
      const hint = stage === 'greeting' ? ' (is another client attached to this monitor?)' : '';
      throw new QmpTimeoutError(
        'connect',
        timeoutMs,
        `QMP connect to ${socketPath} timed out after ${timeoutMs}ms waiting for ${stage}${hint}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  private constructor(private readonly socket: Socket) {
    this.greetingReceived = new Promise<QmpGreeting>((resolve, reject) => {
      this.resolveGreeting = resolve;
      this.rejectGreeting = reject;
    });
    this.greetingReceived.catch(() => {});
    this.closed = new Promise<void>((resolve) => {
      socket.once('close', () => {
        this.teardown();
        resolve();
      });
    });
    // Errors (e.g. ECONNRESET after `quit`) are always followed by 'close'.
    socket.on('error', (err) => {
      this.lastSocketError = err;
    });
    socket.on('data', (chunk: Buffer) => {
      for (const msg of this.decoder.push(chunk)) this.dispatch(msg);
    });
  }

  /** The server greeting; always set on a client returned by connect(). */
  get greeting(): QmpGreeting {
    if (!this.greetingValue) throw new QmpClientError('QMP greeting not received yet');
    return this.greetingValue;
  }

  get isClosed(): boolean {
    return this.torn;
  }

  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    opts: ExecuteOptions = {},
  ): Promise<T> {
    if (this.torn) {
      return Promise.reject(
        new QmpDisconnectedError(`QMP connection is closed; cannot execute ${command}`, command),
      );
    }
    const id = `nf-${++this.seq}`;
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { command, resolve: (v) => resolve(v as T), reject, timer: undefined, sent: false };
      if (Number.isFinite(timeoutMs)) {
        p.timer = setTimeout(() => {
          // Dropping the id means a late reply is recognised as stale and ignored.
          this.pending.delete(id);
          reject(new QmpTimeoutError(command, timeoutMs));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      this.socket.write(encodeCommand(command, args, id), (err) => {
        if (!err) p.sent = true;
      });
    });
  }

  /** Subscribes to all events; returns the unsubscribe function. */
  onEvent(listener: QmpEventListener): () => void {
    return this.events.on(listener);
  }

  /**
   * Resolves with the next matching event. Only events arriving after the call
   * count, and QEMU often emits an event before the reply of the command that
   * caused it (STOP before the `stop` reply), so call this before executing.
   */
  waitForEvent(name: string, opts?: WaitForEventOptions): Promise<QmpEvent> {
    if (this.torn) {
      return Promise.reject(new QmpDisconnectedError(`QMP connection is closed; cannot wait for ${name}`));
    }
    return this.events.wait(name, opts);
  }

  /** Idempotent. Pending commands and event waits reject with QmpDisconnectedError. */
  close(): void {
    if (this.torn) return;
    this.closedLocally = true;
    this.teardown();
    this.socket.destroy();
  }

  private dispatch(msg: QmpMessage): void {
    switch (msg.type) {
      case 'greeting':
        this.greetingValue = msg.greeting;
        this.resolveGreeting(msg.greeting);
        return;
      case 'return':
      case 'error': {
        // Unknown ids are replies to commands that already timed out.
        const id = typeof msg.id === 'string' ? msg.id : '';
        const p = this.pending.get(id);
        if (!p) return;
        this.pending.delete(id);
        clearTimeout(p.timer);
        if (msg.type === 'return') p.resolve(msg.value);
        else p.reject(new QmpError(p.command, msg.error.class, msg.error.desc));
        return;
      }
      case 'event':
        this.events.emit(msg.event);
        return;
      case 'invalid':
        return;
    }
  }

  private teardown(): void {
    if (this.torn) return;
    this.torn = true;
    const cause = this.lastSocketError ? { cause: this.lastSocketError } : undefined;
    const why = this.closedLocally ? 'closed by client' : 'closed by QEMU';
    this.rejectGreeting(new QmpDisconnectedError(`QMP connection ${why} before greeting`, undefined, cause));
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      // QEMU may close the socket before flushing the `quit` reply; the
      // connection dropping is then the success signal.
      if (p.command === 'quit' && p.sent && !this.closedLocally) p.resolve({});
      else
        p.reject(
          new QmpDisconnectedError(`QMP connection ${why} while ${p.command} was pending`, p.command, cause),
        );
    }
    this.pending.clear();
    this.events.shutdown(new QmpDisconnectedError(`QMP connection ${why}`, undefined, cause));
  }
}
