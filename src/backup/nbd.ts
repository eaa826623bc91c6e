/**
 * A small NBD client (fixed newstyle handshake, structured replies, block status) over a unix socket:
 * reads disks exported by QEMU (`block-export-add`) or `qemu-nbd` for backups, and writes into a volume
 * exported by `qemu-nbd` for restores. Several requests may be in flight; replies are matched by handle.
 * Protocol: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md
 */
import { connect, type Socket } from 'node:net';

export interface NbdExtent {
  offset: number;
  length: number;
  /** As the server sent them: NBD_STATE_* for base:allocation, NBD_STATE_DIRTY for a dirty bitmap. */
  flags: number;
}

/** base:allocation flags. */
export const NBD_STATE_HOLE = 1;
export const NBD_STATE_ZERO = 2;
/** qemu:dirty-bitmap:NAME flag. */
export const NBD_STATE_DIRTY = 1;

/** A request the server answered with an error; `code` is the errno name (EIO, EINVAL, ENOSPC...). */
export class NbdError extends Error {
  override readonly name = 'NbdError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface NbdConnectOptions {
  exportName: string;
  /** Meta contexts to ask for (e.g. 'base:allocation', 'qemu:dirty-bitmap:b0'). */
  metaContexts?: string[];
  /** Bounds connect + handshake; default 30 s. */
  timeoutMs?: number;
}

// Handshake.
const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const CLISERV_MAGIC = 0x00420281861253n;
const OPT_REPLY_MAGIC = 0x3e889045565a9n;
const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
const NBD_FLAG_NO_ZEROES = 1 << 1;
const NBD_OPT_ABORT = 2;
const NBD_OPT_GO = 7;
const NBD_OPT_STRUCTURED_REPLY = 8;
const NBD_OPT_SET_META_CONTEXT = 10;
const NBD_REP_ACK = 1;
const NBD_REP_INFO = 3;
const NBD_REP_META_CONTEXT = 4;
const NBD_REP_FLAG_ERROR = 0x8000_0000;
const NBD_REP_ERR_UNKNOWN = NBD_REP_FLAG_ERROR + 6;
const NBD_INFO_EXPORT = 0;
const OPTION_NAMES: Record<number, string> = {
  [NBD_OPT_GO]: 'NBD_OPT_GO',
  [NBD_OPT_STRUCTURED_REPLY]: 'NBD_OPT_STRUCTURED_REPLY',
  [NBD_OPT_SET_META_CONTEXT]: 'NBD_OPT_SET_META_CONTEXT',
};
const OPTION_ERRORS = [
  'UNSUP',
  'POLICY',
  'INVALID',
  'PLATFORM',
  'TLS_REQD',
  'UNKNOWN',
  'SHUTDOWN',
  'BLOCK_SIZE_REQD',
  'TOO_BIG',
  'EXT_HEADER_REQD',
];
/** Option replies are a few strings at most: a bigger one means a confused peer. */
const MAX_OPTION_REPLY = 1024 * 1024;

// Transmission.
const NBD_FLAG_READ_ONLY = 1 << 1;
const NBD_FLAG_SEND_FLUSH = 1 << 2;
const NBD_REQUEST_MAGIC = 0x25609513;
const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;
const NBD_CMD_READ = 0;
const NBD_CMD_WRITE = 1;
const NBD_CMD_DISC = 2;
const NBD_CMD_FLUSH = 3;
const NBD_CMD_BLOCK_STATUS = 7;
const NBD_REPLY_FLAG_DONE = 1;
const NBD_REPLY_TYPE_NONE = 0;
const NBD_REPLY_TYPE_OFFSET_DATA = 1;
const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
const NBD_REPLY_TYPE_ERROR_BIT = 0x8000;
const NBD_REPLY_TYPE_ERROR_OFFSET = NBD_REPLY_TYPE_ERROR_BIT + 2;
const COMMAND_NAMES = [
  'read',
  'write',
  'disconnect',
  'flush',
  'trim',
  'cache',
  'write-zeroes',
  'block-status',
];
/** Errno values on the wire are fixed by the protocol, not the host's. */
const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  5: 'EIO',
  12: 'ENOMEM',
  22: 'EINVAL',
  28: 'ENOSPC',
  75: 'EOVERFLOW',
  95: 'ENOTSUP',
  108: 'ESHUTDOWN',
};
const REQUEST_HEADER = 28;
const SIMPLE_REPLY_HEADER = 16;
const STRUCTURED_REPLY_HEADER = 20;
/** QEMU refuses reads and writes over 32 MiB (NBD_MAX_BUFFER_SIZE): bigger ones are split. */
const MAX_IO = 32 * 1024 * 1024;
/** Block status lengths are u32; stay 1 MiB-aligned below 4 GiB. */
const MAX_STATUS_LENGTH = 2 ** 32 - 2 ** 20;
/** Non-data reply payloads are buffered whole; QEMU's biggest is 1 MiB of extents. */
const MAX_CHUNK_PAYLOAD = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 5_000;
const U32 = 2 ** 32;

function readU64(buf: Buffer, pos: number): number {
  return buf.readUInt32BE(pos) * U32 + buf.readUInt32BE(pos + 4);
}

function writeU64(buf: Buffer, pos: number, value: number): void {
  buf.writeUInt32BE(Math.floor(value / U32), pos);
  buf.writeUInt32BE(value >>> 0, pos + 4);
}

function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/**
 * Received bytes as a list of buffers plus a read cursor: taking bytes never concatenates the whole
 * backlog, and read data is copied once, straight into the caller's buffer.
 */
class ByteQueue {
  private readonly chunks: Buffer[] = [];
  /** Bytes of chunks[0] already consumed. */
  private head = 0;
  length = 0;

  push(buf: Buffer): void {
    if (buf.length === 0) return;
    this.chunks.push(buf);
    this.length += buf.length;
  }

  /** The u32 at the front without consuming it; needs length >= 4. */
  peekUInt32BE(): number {
    const first = this.chunks[0]!;
    if (first.length - this.head >= 4) return first.readUInt32BE(this.head);
    let value = 0;
    let seen = 0;
    for (let i = 0, pos = this.head; seen < 4; seen++, pos++) {
      if (pos === this.chunks[i]!.length) {
        i++;
        pos = 0;
      }
      value = value * 256 + this.chunks[i]![pos]!;
    }
    return value;
  }

  /** Removes n bytes (n <= length); a view without copying when they lie in one received buffer. */
  take(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    this.drainInto(out, 0, n);
    return out;
  }

  /** Moves up to n bytes into dest at pos; returns how many were moved. */
  drainInto(dest: Buffer, pos: number, n: number): number {
    let moved = 0;
    while (moved < n && this.chunks.length > 0) {
      const first = this.chunks[0]!;
      const k = Math.min(n - moved, first.length - this.head);
      first.copy(dest, pos + moved, this.head, this.head + k);
      moved += k;
      this.advance(k);
    }
    return moved;
  }

  private advance(n: number): void {
    this.head += n;
    this.length -= n;
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}

/** The socket plus its receive queue; during the handshake bytes are awaited, afterwards pushed to a parser. */
class Wire {
  readonly queue = new ByteQueue();
  readonly socket: Socket;
  /** Resolves once the socket is fully closed. */
  readonly closed: Promise<void>;
  /** Set once the connection is unusable; later requests fail with it. */
  error: Error | undefined;
  /** The transmission-phase parser, called whenever bytes arrive. */
  onBytes: (() => void) | undefined;
  /** Called once when the connection dies (pending requests must fail). */
  onTerminate: ((err: Error) => void) | undefined;
  private connected = false;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;

  constructor(readonly path: string) {
    this.socket = connect({ path });
    this.socket.once('connect', () => {
      this.connected = true;
    });
    this.socket.on('data', (buf: Buffer) => this.received(buf));
    this.socket.on('error', (err) => this.terminate(this.lost(err.message)));
    this.closed = new Promise((resolve) =>
      this.socket.once('close', () => {
        this.terminate(this.lost('the server closed the connection'));
        resolve();
      }),
    );
  }

  private lost(reason: string): Error {
    if (!this.connected) return new Error(`cannot connect to the NBD server at ${this.path}: ${reason}`);
    return new Error(`NBD connection to ${this.path} lost: ${reason}`);
  }

  /** Resolves when connected; rejects on a connect error (no socket, refused) or an earlier destroy(). */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.error) return reject(this.error);
      const onConnect = () => {
        this.onTerminate = undefined;
        resolve();
      };
      this.socket.once('connect', onConnect);
      this.onTerminate = (err) => {
        this.socket.off('connect', onConnect);
        reject(err);
      };
    });
  }

  /** The next n bytes (handshake only). */
  readExact(n: number): Promise<Buffer> {
    if (this.queue.length >= n) return Promise.resolve(this.queue.take(n));
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
    });
  }

  write(buf: Uint8Array): void {
    this.socket.write(buf);
  }

  /** Kills the connection; `err` becomes the reason every pending and later request fails with. */
  destroy(err: Error): void {
    this.terminate(err);
    this.socket.destroy();
  }

  /** Closes after what was written is sent (a peer that never closes its side is cut after a while). */
  end(err: Error): Promise<void> {
    this.terminate(err);
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS);
    timer.unref();
    return this.closed.finally(() => clearTimeout(timer));
  }

  private received(buf: Buffer): void {
    this.queue.push(buf);
    const waiter = this.waiter;
    if (waiter && this.queue.length >= waiter.n) {
      this.waiter = undefined;
      waiter.resolve(this.queue.take(waiter.n));
    } else {
      this.onBytes?.();
    }
  }

  private terminate(err: Error): void {
    if (this.error) return;
    this.error = err;
    this.waiter?.reject(err);
    this.waiter = undefined;
    this.onTerminate?.(err);
  }
}

interface ExportInfo {
  size: number;
  transmissionFlags: number;
  contexts: Map<string, number>;
}

function optionName(option: number): string {
  return OPTION_NAMES[option] ?? `option ${option}`;
}

function sendOption(wire: Wire, option: number, data: Buffer = Buffer.alloc(0)): void {
  const header = Buffer.allocUnsafe(16);
  header.writeBigUInt64BE(IHAVEOPT, 0);
  header.writeUInt32BE(option, 8);
  header.writeUInt32BE(data.length, 12);
  wire.write(Buffer.concat([header, data]));
}

/** One option reply; an error reply throws, naming the option, the error type and the server's text. */
async function readOptionReply(
  wire: Wire,
  option: number,
  what: string,
): Promise<{ type: number; data: Buffer }> {
  const header = await wire.readExact(20);
  if (header.readBigUInt64BE(0) !== OPT_REPLY_MAGIC)
    throw new Error(`NBD ${optionName(option)}: bad reply magic`);
  if (header.readUInt32BE(8) !== option) {
    throw new Error(`NBD ${optionName(option)}: the reply is for option ${header.readUInt32BE(8)}`);
  }
  const type = header.readUInt32BE(12);
  const length = header.readUInt32BE(16);
  if (length > MAX_OPTION_REPLY) throw new Error(`NBD ${optionName(option)}: reply of ${length} bytes`);
  const data = length > 0 ? Buffer.from(await wire.readExact(length)) : Buffer.alloc(0);
  if (type & NBD_REP_FLAG_ERROR) throw optionError(option, type, data, what);
  return { type, data };
}

function optionError(option: number, type: number, data: Buffer, what: string): Error {
  const errName = OPTION_ERRORS[type - NBD_REP_FLAG_ERROR - 1];
  const kind = errName ? `NBD_REP_ERR_${errName}` : `error reply ${type}`;
  const text = data.length > 0 ? `: ${data.toString('utf8')}` : '';
  const prefix = type === NBD_REP_ERR_UNKNOWN ? `the NBD server has no ${what}; ` : '';
  return new Error(`${prefix}${optionName(option)} for ${what} failed with ${kind}${text}`);
}

function lengthPrefixed(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > 4096)
    throw new Error(`NBD string too long (${bytes.length} bytes): ${value.slice(0, 64)}...`);
  const out = Buffer.allocUnsafe(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  bytes.copy(out, 4);
  return out;
}

/** Greeting and client flags; returns once option haggling may start. */
async function greet(wire: Wire): Promise<void> {
  const greeting = await wire.readExact(16);
  if (greeting.readBigUInt64BE(0) !== NBDMAGIC) throw new Error('not an NBD server (no NBDMAGIC)');
  const magic = greeting.readBigUInt64BE(8);
  if (magic === CLISERV_MAGIC) throw new Error('the NBD server speaks the oldstyle handshake: not supported');
  if (magic !== IHAVEOPT) throw new Error('not a newstyle NBD server (no IHAVEOPT)');
  const flags = (await wire.readExact(2)).readUInt16BE(0);
  if (!(flags & NBD_FLAG_FIXED_NEWSTYLE)) throw new Error('the NBD server lacks fixed newstyle negotiation');
  const clientFlags = Buffer.allocUnsafe(4);
  // NO_ZEROES spares the 124 bytes of padding; only ask for it when offered.
  clientFlags.writeUInt32BE(NBD_FLAG_FIXED_NEWSTYLE | (flags & NBD_FLAG_NO_ZEROES));
  wire.write(clientFlags);
}

async function negotiateStructuredReplies(wire: Wire): Promise<void> {
  sendOption(wire, NBD_OPT_STRUCTURED_REPLY);
  const { type } = await readOptionReply(wire, NBD_OPT_STRUCTURED_REPLY, 'structured replies');
  if (type !== NBD_REP_ACK) throw new Error(`NBD_OPT_STRUCTURED_REPLY: unexpected reply type ${type}`);
}

/** Asks for the meta contexts; returns the ones the server granted (name -> id). */
async function setMetaContexts(
  wire: Wire,
  exportName: string,
  queries: string[],
): Promise<Map<string, number>> {
  const count = Buffer.allocUnsafe(4);
  count.writeUInt32BE(queries.length);
  sendOption(
    wire,
    NBD_OPT_SET_META_CONTEXT,
    Buffer.concat([lengthPrefixed(exportName), count, ...queries.map(lengthPrefixed)]),
  );
  const contexts = new Map<string, number>();
  for (;;) {
    const what = `meta contexts ${queries.join(', ')} of export "${exportName}"`;
    const { type, data } = await readOptionReply(wire, NBD_OPT_SET_META_CONTEXT, what);
    if (type === NBD_REP_ACK) return contexts;
    if (type === NBD_REP_META_CONTEXT && data.length >= 4) {
      contexts.set(data.toString('utf8', 4), data.readUInt32BE(0));
    }
  }
}

/** Selects the export and enters transmission; returns its size and transmission flags. */
async function go(wire: Wire, exportName: string): Promise<{ size: number; transmissionFlags: number }> {
  // No info requests: NBD_INFO_EXPORT always comes, and not asking for NBD_INFO_BLOCK_SIZE keeps QEMU
  // from holding us to its alignment (it then accepts any offset and length).
  sendOption(wire, NBD_OPT_GO, Buffer.concat([lengthPrefixed(exportName), Buffer.alloc(2)]));
  let info: { size: number; transmissionFlags: number } | undefined;
  for (;;) {
    const { type, data } = await readOptionReply(wire, NBD_OPT_GO, `export "${exportName}"`);
    if (type === NBD_REP_ACK) break;
    if (type === NBD_REP_INFO && data.length >= 12 && data.readUInt16BE(0) === NBD_INFO_EXPORT) {
      info = { size: readU64(data, 2), transmissionFlags: data.readUInt16BE(10) };
    }
  }
  if (!info) throw new Error(`NBD_OPT_GO for export "${exportName}": the server sent no NBD_INFO_EXPORT`);
  return info;
}

async function handshake(wire: Wire, opts: NbdConnectOptions): Promise<ExportInfo> {
  await greet(wire);
  // Structured replies carry block status and sparse reads (holes are not sent as zeros).
  await negotiateStructuredReplies(wire);
  const queries = opts.metaContexts ?? [];
  const contexts = queries.length > 0 ? await setMetaContexts(wire, opts.exportName, queries) : new Map();
  const { size, transmissionFlags } = await go(wire, opts.exportName);
  return { size, transmissionFlags, contexts };
}

/** One request in flight. */
interface Pending {
  readonly type: number;
  readonly offset: number;
  readonly length: number;
  /** READ: where the data lands; dest[0] is `offset`. */
  readonly dest?: Buffer;
  /** READ: bytes received so far (data + holes); must reach `length`. */
  received: number;
  /** BLOCK_STATUS: the context whose extents are wanted, and them. */
  readonly contextId?: number;
  readonly extents?: StatusDescriptor[];
  /** The first error chunk; reported once the reply is done. */
  error?: Error;
  resolve(): void;
  reject(err: Error): void;
}

/** One block status descriptor as sent: its offset follows from the ones before it. */
interface StatusDescriptor {
  length: number;
  flags: number;
}

interface ChunkHeader {
  flags: number;
  type: number;
  handle: number;
  length: number;
}

/** What the reply parser is waiting for. */
type RxState =
  | { kind: 'header' }
  /** The whole payload of a non-data chunk. */
  | { kind: 'payload'; chunk: ChunkHeader; req: Pending }
  /** The 8-byte offset that starts an OFFSET_DATA chunk. */
  | { kind: 'dataOffset'; chunk: ChunkHeader; req: Pending }
  /** OFFSET_DATA bytes, streamed into the read's buffer. */
  | { kind: 'data'; chunk: ChunkHeader; req: Pending; pos: number; remaining: number };

const AWAIT_HEADER: RxState = { kind: 'header' };

export class NbdClient {
  readonly size: number;
  readonly writable: boolean;
  readonly contexts: Map<string, number>;
  private readonly transmissionFlags: number;
  private readonly pending = new Map<number, Pending>();
  private nextHandle = 1;
  private rx: RxState = AWAIT_HEADER;
  private closing: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];

  private constructor(
    private readonly wire: Wire,
    info: ExportInfo,
  ) {
    this.size = info.size;
    this.transmissionFlags = info.transmissionFlags;
    this.writable = !(info.transmissionFlags & NBD_FLAG_READ_ONLY);
    this.contexts = info.contexts;
    wire.onTerminate = (err) => this.failAll(err);
    wire.onBytes = () => this.parse();
  }

  static async connect(socketPath: string, opts: NbdConnectOptions): Promise<NbdClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const wire = new Wire(socketPath);
    const timer = setTimeout(
      () => wire.destroy(new Error(`NBD connect to ${socketPath} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      await wire.ready();
      const info = await handshake(wire, opts);
      const client = new NbdClient(wire, info);
      client.parse(); // bytes that came with the last handshake reply
      return client;
    } catch (err) {
      abortHandshake(wire, err as Error);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads [offset, offset+length); holes come back as zeros. */
  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(offset, length);
    // Not zero-filled: every byte is overwritten by data or hole chunks, and a reply that does not cover
    // the whole range fails the read.
    const dest = Buffer.allocUnsafe(length);
    const parts: Promise<void>[] = [];
    for (let pos = 0; pos < length; pos += MAX_IO) {
      const n = Math.min(MAX_IO, length - pos);
      parts.push(this.request(NBD_CMD_READ, offset + pos, n, { dest: dest.subarray(pos, pos + n) }));
    }
    await Promise.all(parts);
    return dest;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(offset, data.length);
    if (!this.writable)
      throw new NbdError('EPERM', `NBD write to ${this.wire.path}: the export is read-only`);
    const parts: Promise<void>[] = [];
    for (let pos = 0; pos < data.length; pos += MAX_IO) {
      const n = Math.min(MAX_IO, data.length - pos);
      parts.push(this.request(NBD_CMD_WRITE, offset + pos, n, { payload: data.subarray(pos, pos + n) }));
    }
    await Promise.all(parts);
  }

  /** Makes completed writes durable; a no-op when the server has no write cache to flush. */
  async flush(): Promise<void> {
    if (!(this.transmissionFlags & NBD_FLAG_SEND_FLUSH)) return;
    await this.request(NBD_CMD_FLUSH, 0, 0, {});
  }

  /**
   * Block status for one granted context over [offset, offset+length): extents covering it exactly,
   * adjacent ones with equal flags merged. The server may answer for less than asked: loops until covered.
   */
  async blockStatus(context: string, offset: number, length: number): Promise<NbdExtent[]> {
    checkRange(offset, length);
    const contextId = this.contexts.get(context);
    if (contextId === undefined) {
      const granted = [...this.contexts.keys()].join(', ') || 'none';
      throw new Error(`NBD meta context "${context}" was not granted by the server (granted: ${granted})`);
    }
    const end = offset + length;
    const out: NbdExtent[] = [];
    for (let cur = offset; cur < end; ) {
      const extents: StatusDescriptor[] = [];
      await this.request(NBD_CMD_BLOCK_STATUS, cur, Math.min(end - cur, MAX_STATUS_LENGTH), {
        contextId,
        extents,
      });
      const start = cur;
      for (const e of extents) {
        // The last extent may reach past what was asked: clip it.
        const len = Math.min(e.length, end - cur);
        if (len <= 0) break;
        appendExtent(out, { offset: cur, length: len, flags: e.flags });
        cur += len;
      }
      if (cur === start) throw new Error(`NBD block status at ${cur}: the server returned no extent`);
    }
    return out;
  }

  /** Waits for requests in flight, sends NBD_CMD_DISC and closes the socket. */
  close(): Promise<void> {
    this.closing ??= this.disconnect();
    return this.closing;
  }

  private async disconnect(): Promise<void> {
    // QEMU shuts the socket down on DISC without answering what is in flight: drain first.
    await new Promise<void>((resolve) => {
      if (this.pending.size === 0) resolve();
      else this.idleWaiters.push(resolve);
    });
    if (!this.wire.error) this.wire.write(requestHeader(NBD_CMD_DISC, 0, 0, 0));
    await this.wire.end(new Error(`NBD client for ${this.wire.path} is closed`));
  }

  private request(
    type: number,
    offset: number,
    length: number,
    extra: { dest?: Buffer; payload?: Uint8Array; contextId?: number; extents?: StatusDescriptor[] },
  ): Promise<void> {
    const closed = this.wire.error ?? (this.closing ? new Error('NBD client is closing') : undefined);
    if (closed) return Promise.reject(closed);
    const handle = this.nextHandle++;
    return new Promise<void>((resolve, reject) => {
      const { payload, ...rest } = extra;
      this.pending.set(handle, { type, offset, length, received: 0, ...rest, resolve, reject });
      const header = requestHeader(type, handle, offset, length);
      if (payload) {
        // One writev for header + data; the data is not copied.
        this.wire.socket.cork();
        this.wire.write(header);
        this.wire.write(payload);
        this.wire.socket.uncork();
      } else {
        this.wire.write(header);
      }
    });
  }

  /** Consumes every complete piece of reply in the receive queue. */
  private parse(): void {
    try {
      while (this.step()) {}
    } catch (err) {
      this.wire.destroy(err as Error);
    }
  }

  /** One parser step; false when more bytes are needed. */
  private step(): boolean {
    const q = this.wire.queue;
    const rx = this.rx;
    switch (rx.kind) {
      case 'header':
        return this.readHeader();
      case 'payload':
        if (q.length < rx.chunk.length) return false;
        this.onChunk(rx.chunk, rx.req, q.take(rx.chunk.length));
        this.endChunk(rx.chunk, rx.req);
        return true;
      case 'dataOffset': {
        if (q.length < 8) return false;
        const offset = readU64(q.take(8), 0);
        const length = rx.chunk.length - 8;
        const pos = this.placeInRead(rx.req, offset, length);
        this.rx = { kind: 'data', chunk: rx.chunk, req: rx.req, pos, remaining: length };
        return true;
      }
      case 'data': {
        const moved = q.drainInto(rx.req.dest!, rx.pos, rx.remaining);
        rx.pos += moved;
        rx.remaining -= moved;
        if (rx.remaining > 0) return false;
        this.endChunk(rx.chunk, rx.req);
        return true;
      }
    }
  }

  private readHeader(): boolean {
    const q = this.wire.queue;
    if (q.length < 4) return false;
    const magic = q.peekUInt32BE();
    if (magic === NBD_SIMPLE_REPLY_MAGIC) {
      if (q.length < SIMPLE_REPLY_HEADER) return false;
      const h = q.take(SIMPLE_REPLY_HEADER);
      this.onSimpleReply(h.readUInt32BE(4), readU64(h, 8));
      return true;
    }
    if (magic !== NBD_STRUCTURED_REPLY_MAGIC)
      throw new Error(`NBD protocol error: bad reply magic 0x${magic.toString(16)}`);
    if (q.length < STRUCTURED_REPLY_HEADER) return false;
    const h = q.take(STRUCTURED_REPLY_HEADER);
    const chunk = {
      flags: h.readUInt16BE(4),
      type: h.readUInt16BE(6),
      handle: readU64(h, 8),
      length: h.readUInt32BE(16),
    };
    const req = this.pendingFor(chunk.handle);
    if (chunk.type === NBD_REPLY_TYPE_OFFSET_DATA) {
      if (req.type !== NBD_CMD_READ || chunk.length < 8)
        throw new Error('NBD protocol error: unexpected data chunk');
      this.rx = { kind: 'dataOffset', chunk, req };
    } else {
      if (chunk.length > MAX_CHUNK_PAYLOAD)
        throw new Error(`NBD protocol error: ${chunk.length}-byte reply chunk`);
      this.rx = { kind: 'payload', chunk, req };
    }
    return true;
  }

  private pendingFor(handle: number): Pending {
    const req = this.pending.get(handle);
    if (!req) throw new Error(`NBD protocol error: reply for unknown handle ${handle}`);
    return req;
  }

  private onSimpleReply(errno: number, handle: number): void {
    const req = this.pendingFor(handle);
    // With structured replies a successful read must come as chunks: its data would follow unframed.
    if (errno === 0 && req.type === NBD_CMD_READ)
      throw new Error('NBD protocol error: simple reply to a read');
    this.settle(handle, req, errno === 0 ? undefined : this.requestError(req, errno, ''));
  }

  /** Validates an OFFSET_DATA/OFFSET_HOLE range against its read; returns its position in the buffer. */
  private placeInRead(req: Pending, offset: number, length: number): number {
    if (offset < req.offset || offset + length > req.offset + req.length) {
      throw new Error(
        `NBD protocol error: chunk [${offset}, +${length}) outside read [${req.offset}, +${req.length})`,
      );
    }
    req.received += length;
    return offset - req.offset;
  }

  /** A whole non-data chunk. */
  private onChunk(chunk: ChunkHeader, req: Pending, payload: Buffer): void {
    switch (chunk.type) {
      case NBD_REPLY_TYPE_NONE:
        return;
      case NBD_REPLY_TYPE_OFFSET_HOLE: {
        if (req.type !== NBD_CMD_READ || payload.length !== 12)
          throw new Error('NBD protocol error: bad hole chunk');
        const length = payload.readUInt32BE(8);
        const pos = this.placeInRead(req, readU64(payload, 0), length);
        req.dest!.fill(0, pos, pos + length);
        return;
      }
      case NBD_REPLY_TYPE_BLOCK_STATUS:
        if (req.type !== NBD_CMD_BLOCK_STATUS || payload.length < 4 || payload.length % 8 !== 4) {
          throw new Error('NBD protocol error: bad block status chunk');
        }
        // Other negotiated contexts come in their own chunks: keep only the one asked for.
        if (payload.readUInt32BE(0) !== req.contextId) return;
        for (let p = 4; p < payload.length; p += 8) {
          req.extents!.push({ length: payload.readUInt32BE(p), flags: payload.readUInt32BE(p + 4) });
        }
        return;
      default:
        if (chunk.type & NBD_REPLY_TYPE_ERROR_BIT) req.error ??= this.chunkError(chunk, req, payload);
      // Unknown non-error chunks carry nothing we need.
    }
  }

  private chunkError(chunk: ChunkHeader, req: Pending, payload: Buffer): Error {
    if (payload.length < 6)
      return this.requestError(req, payload.length >= 4 ? payload.readUInt32BE(0) : 5, '');
    const msgLength = Math.min(payload.readUInt16BE(4), payload.length - 6);
    let message = payload.toString('utf8', 6, 6 + msgLength);
    if (chunk.type === NBD_REPLY_TYPE_ERROR_OFFSET && payload.length >= 14 + msgLength) {
      message += `${message ? ' ' : ''}(at offset ${readU64(payload, 6 + msgLength)})`;
    }
    return this.requestError(req, payload.readUInt32BE(0), message);
  }

  private requestError(req: Pending, errno: number, message: string): NbdError {
    const code = errnoName(errno);
    const cmd = COMMAND_NAMES[req.type] ?? `command ${req.type}`;
    const range = req.type === NBD_CMD_FLUSH ? '' : ` [${req.offset}, +${req.length})`;
    return new NbdError(
      code,
      `NBD ${cmd}${range} on ${this.wire.path} failed: ${code}${message ? `: ${message}` : ''}`,
    );
  }

  private endChunk(chunk: ChunkHeader, req: Pending): void {
    this.rx = AWAIT_HEADER;
    if (!(chunk.flags & NBD_REPLY_FLAG_DONE)) return;
    let err = req.error;
    if (!err && req.type === NBD_CMD_READ && req.received !== req.length) {
      err = new Error(`NBD read [${req.offset}, +${req.length}): the server sent ${req.received} bytes`);
    }
    this.settle(chunk.handle, req, err);
  }

  private settle(handle: number, req: Pending, err: Error | undefined): void {
    this.pending.delete(handle);
    if (err) req.reject(err);
    else req.resolve();
    if (this.pending.size === 0) this.wakeIdle();
  }

  /** The connection died: every request in flight fails with the reason. */
  private failAll(err: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const req of pending) req.reject(err);
    this.wakeIdle();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

function requestHeader(type: number, handle: number, offset: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(REQUEST_HEADER);
  header.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  header.writeUInt16BE(0, 4); // no command flags: no FUA (callers flush), no DF (holes may stay holes)
  header.writeUInt16BE(type, 6);
  writeU64(header, 8, handle);
  writeU64(header, 16, offset);
  header.writeUInt32BE(length, 24);
  return header;
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`NBD: bad range offset=${offset} length=${length}`);
  }
}

/** Appends an extent, merging it into the previous one when they touch and have the same flags. */
function appendExtent(out: NbdExtent[], e: NbdExtent): void {
  const last = out[out.length - 1];
  if (last && last.flags === e.flags && last.offset + last.length === e.offset) last.length += e.length;
  else out.push(e);
}

/** A failed handshake: a polite NBD_OPT_ABORT when the connection still works, then close. */
function abortHandshake(wire: Wire, err: Error): void {
  if (wire.error) {
    wire.destroy(err);
    return;
  }
  sendOption(wire, NBD_OPT_ABORT);
  void wire.end(err);
}
