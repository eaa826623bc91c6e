/**
 * Keys that arrive in pieces. On a serial console (ttyS0, IPMI serial-over-LAN) the bytes of one key's
 * escape sequence (Down is ESC [ B, F2 on the Linux console ESC [ [ B, F12 ESC [ 2 4 ~) can reach the
 * console in two reads; blessed parses each read alone, so ESC [ then B became "Escape" and a typed "B".
 * Like ncurses' ESCDELAY, an unfinished sequence at the end of a read is held back until the rest comes,
 * or for `delayMs` (100 ms like vim's ttimeoutlen: a BMC's serial-over-LAN batches characters for up to
 * ~60 ms; then passed on as it is: a lone ESC is the Escape key).
 */

const ESC = 0x1b;

/**
 * How many bytes at the end of `b` are an escape sequence that is not finished yet (0 when none):
 * ESC, ESC [, ESC [ [, ESC O, or ESC [ followed by parameter bytes (digits, ;) without the final byte.
 */
export function unfinishedEscape(b: Uint8Array): number {
  const last = b.lastIndexOf(ESC);
  if (last < 0 || b.length - last > 16) return 0;
  const rest = Array.from(b.subarray(last + 1), (c) => String.fromCharCode(c)).join('');
  return /^(|\[|\[\[|O|\[[0-9;]+)$/.test(rest) ? b.length - last : 0;
}

/** Joins the pieces of split escape sequences; `emit` gets whole keys (or several in one chunk). */
export class EscapeJoiner {
  private held: Buffer = Buffer.alloc(0);
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly emit: (chunk: Buffer) => void,
    private readonly delayMs = 100,
  ) {}

  push(chunk: Buffer): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const all = this.held.length ? Buffer.concat([this.held, chunk]) : chunk;
    const keep = unfinishedEscape(all);
    this.held = Buffer.from(all.subarray(all.length - keep));
    if (all.length > keep) this.emit(all.subarray(0, all.length - keep));
    if (keep) this.timer = setTimeout(() => this.flush(), this.delayMs);
  }

  /** Passes on what is held (the delay ran out). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const held = this.held;
    this.held = Buffer.alloc(0);
    if (held.length) this.emit(held);
  }
}

/**
 * Routes the 'data' events of a terminal input stream (process.stdin, before blessed listens to it)
 * through an EscapeJoiner. Everything else about the stream (raw mode, pause/resume) stays as it is.
 */
export function joinSplitEscapes(input: NodeJS.ReadStream, delayMs = 100): void {
  const emit = input.emit.bind(input) as (event: string | symbol, ...args: unknown[]) => boolean;
  const joiner = new EscapeJoiner((chunk) => emit('data', chunk), delayMs);
  input.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (event !== 'data') return emit(event, ...args);
    const data = args[0];
    joiner.push(Buffer.isBuffer(data) ? data : Buffer.from(String(data), 'utf8'));
    return true;
  }) as typeof input.emit;
}
