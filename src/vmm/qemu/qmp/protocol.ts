/**
 * QMP wire format: one JSON document per line. QEMU terminates lines with
 * CRLF; a single read may carry half a message or several messages, and a
 * multi-byte UTF-8 character may be split across reads, so we split on raw
 * bytes and only decode complete lines.
 */

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

/** The inner object of the `{"QMP": {...}}` greeting. */
export interface QmpGreeting {
  version: QmpVersion;
  capabilities: string[];
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpErrorBody {
  class: string;
  desc: string;
}

export type QmpMessage =
  | { type: 'greeting'; greeting: QmpGreeting }
  | { type: 'return'; id: unknown; value: unknown }
  | { type: 'error'; id: unknown; error: QmpErrorBody }
  | { type: 'event'; event: QmpEvent }
  // Reported instead of thrown so one bad line cannot wedge the connection.
  | { type: 'invalid'; line: string; reason: string };

const LF = 0x0a;
const utf8 = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/** Splits a byte stream into lines; the trailing CR of CRLF is removed. */
export class LineSplitter {
  private pending: Uint8Array[] = [];

  push(chunk: Uint8Array | string): string[] {
    const bytes = typeof chunk === 'string' ? utf8Encoder.encode(chunk) : chunk;
    const lines: string[] = [];
    let start = 0;
    for (let nl = bytes.indexOf(LF, start); nl !== -1; nl = bytes.indexOf(LF, start)) {
      let line = bytes.subarray(start, nl);
      if (this.pending.length > 0) {
        line = concat([...this.pending, line]);
        this.pending = [];
      }
      lines.push(stripCr(utf8.decode(line)));
      start = nl + 1;
    }
    // Copy: the caller (node:net) may reuse the chunk's backing buffer.
    if (start < bytes.length) this.pending.push(bytes.slice(start));
    return lines;
  }

  /** Bytes buffered waiting for a newline. */
  /** Drops a partial line (the stream was resynchronised). */
  reset(): void {
    this.pending = [];
  }

  get bufferedBytes(): number {
    return this.pending.reduce((n, b) => n + b.length, 0);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function stripCr(s: string): string {
  return s.endsWith('\r') ? s.slice(0, -1) : s;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Classifies one line. Never throws. */
export function parseMessage(line: string): QmpMessage {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (err) {
    return { type: 'invalid', line, reason: `bad JSON: ${(err as Error).message}` };
  }
  if (!isObject(obj)) return { type: 'invalid', line, reason: 'not a JSON object' };

  if ('return' in obj) return { type: 'return', id: obj.id, value: obj.return };
  if ('error' in obj) {
    const e = obj.error;
    if (isObject(e) && typeof e.class === 'string' && typeof e.desc === 'string') {
      return { type: 'error', id: obj.id, error: { class: e.class, desc: e.desc } };
    }
    return { type: 'invalid', line, reason: 'malformed error object' };
  }
  if (typeof obj.event === 'string') {
    const ts = isObject(obj.timestamp) ? obj.timestamp : {};
    const event: QmpEvent = {
      event: obj.event,
      timestamp: {
        seconds: typeof ts.seconds === 'number' ? ts.seconds : 0,
        microseconds: typeof ts.microseconds === 'number' ? ts.microseconds : 0,
      },
    };
    if (isObject(obj.data)) event.data = obj.data;
    return { type: 'event', event };
  }
  if (isObject(obj.QMP)) {
    const q = obj.QMP;
    const v = isObject(q.version) ? q.version : {};
    const qemu = isObject(v.qemu) ? v.qemu : {};
    const num = (x: unknown) => (typeof x === 'number' ? x : 0);
    return {
      type: 'greeting',
      greeting: {
        version: {
          qemu: { major: num(qemu.major), minor: num(qemu.minor), micro: num(qemu.micro) },
          package: typeof v.package === 'string' ? v.package : '',
        },
        capabilities: Array.isArray(q.capabilities)
          ? q.capabilities.filter((c): c is string => typeof c === 'string')
          : [],
      },
    };
  }
  return { type: 'invalid', line, reason: 'unrecognised QMP message' };
}

/** Byte stream in, QMP messages out. Blank lines are skipped silently. */
export class QmpDecoder {
  private readonly lines = new LineSplitter();

  push(chunk: Uint8Array | string): QmpMessage[] {
    return this.lines
      .push(chunk)
      .filter((l) => l.trim() !== '')
      .map(parseMessage);
  }
}

export function encodeCommand(
  execute: string,
  args: Record<string, unknown> | undefined,
  id: string,
): string {
  const msg: Record<string, unknown> = { execute, id };
  if (args !== undefined) msg.arguments = args;
  // JSON.stringify never emits raw newlines, so the framing stays intact.
  return `${JSON.stringify(msg)}\n`;
}
