import { closeSync, openSync, readSync, statSync } from 'node:fs';

/**
 * Follows a guest's serial output in the console logs of both hosts (QEMU appends to them), and notes
 * when each "TICK-n" line of the guest's 10 ms counter was first seen: the longest pause between two
 * ticks is the downtime the guest's outside world saw.
 */
export class TickWatch {
  private readonly seen = new Map<number, number>();
  private readonly offsets = new Map<string, number>();
  private readonly partial = new Map<string, string>();
  private timer?: Timer;

  constructor(private readonly files: () => string[]) {}

  start(): void {
    this.timer = setInterval(() => this.poll(), 2);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private poll(): void {
    const now = Date.now();
    for (const f of this.files()) {
      let fd: number;
      try {
        const size = statSync(f).size;
        const off = this.offsets.get(f) ?? size; // only what is written from now on
        if (size <= off) {
          this.offsets.set(f, Math.min(off, size));
          continue;
        }
        fd = openSync(f, 'r');
        const buf = Buffer.alloc(size - off);
        try {
          readSync(fd, buf, 0, buf.length, off);
        } finally {
          closeSync(fd);
        }
        this.offsets.set(f, size);
        const text = (this.partial.get(f) ?? '') + buf.toString('utf8');
        const lines = text.split('\n');
        this.partial.set(f, lines.pop() ?? '');
        for (const l of lines) {
          const m = /TICK-(\d+)/.exec(l);
          if (m && !this.seen.has(Number(m[1]))) this.seen.set(Number(m[1]), now);
        }
      } catch {
        // not there (yet, or any more)
      }
    }
  }

  get count(): number {
    return this.seen.size;
  }

  /** The longest pause between two consecutive ticks seen (ms), and around which tick. */
  maxGap(): { ms: number; at: number } {
    const ticks = [...this.seen.entries()].sort((a, b) => a[0] - b[0]);
    let best = { ms: 0, at: 0 };
    for (let i = 1; i < ticks.length; i++) {
      const ms = ticks[i]![1] - ticks[i - 1]![1];
      if (ms > best.ms) best = { ms, at: ticks[i]![0] };
    }
    return best;
  }
}

/** The guest command that starts the counter (10 ms apart) on its serial line, in the background. */
export const TICKER = "(i=0; while :; do i=$((i+1)); echo TICK-$i; usleep 10000; done) & echo ticker''-on";
