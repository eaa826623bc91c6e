/**
 * A small terminal screen for tests: feeds on what a program writes to a pseudo-terminal (the control
 * sequences blessed sends for TERM=linux: cursor moves, erases, scroll regions, colours ignored) and keeps
 * the characters where a person would see them.
 */

/** DEC special graphics (ESC ( 0) as ASCII look-alikes. */
const LINE_DRAWING: Record<string, string> = {
  j: '+',
  k: '+',
  l: '+',
  m: '+',
  n: '+',
  q: '-',
  x: '|',
  t: '+',
  u: '+',
  v: '+',
  w: '+',
  a: '#',
  '`': '*',
  '~': '.',
};

export class VirtualTerminal {
  private grid: string[][];
  private row = 0;
  private col = 0;
  private saved = { row: 0, col: 0 };
  private scrollTop = 0;
  private scrollBottom: number;
  private pending = '';
  private g0Graphics = false;
  private g1Graphics = false;
  private shifted = false;

  constructor(
    readonly cols = 80,
    readonly rows = 24,
  ) {
    this.grid = Array.from({ length: rows }, () => Array(cols).fill(' '));
    this.scrollBottom = rows - 1;
  }

  /** The screen as lines (trailing spaces trimmed). */
  text(): string {
    return this.grid.map((r) => r.join('').trimEnd()).join('\n');
  }

  write(data: string): void {
    const s = this.pending + data;
    this.pending = '';
    let i = 0;
    while (i < s.length) {
      const c = s[i]!;
      if (c === '\x1b') {
        const consumed = this.escape(s, i);
        if (consumed === 0) {
          // An incomplete sequence: wait for the rest.
          this.pending = s.slice(i);
          return;
        }
        i += consumed;
        continue;
      }
      i++;
      switch (c) {
        case '\r':
          this.col = 0;
          break;
        case '\n':
        case '\x0b':
        case '\x0c':
          this.lineFeed();
          break;
        case '\b':
          this.col = Math.max(0, this.col - 1);
          break;
        case '\t':
          this.col = Math.min(this.cols - 1, (Math.floor(this.col / 8) + 1) * 8);
          break;
        case '\x0e':
          this.shifted = true;
          break;
        case '\x0f':
          this.shifted = false;
          break;
        case '\x07':
          break;
        default:
          if (c < ' ') break;
          this.put(c);
      }
    }
  }

  private put(c: string): void {
    const graphics = this.shifted ? this.g1Graphics : this.g0Graphics;
    const ch = graphics ? (LINE_DRAWING[c] ?? c) : c;
    if (this.col >= this.cols) {
      this.col = 0;
      this.lineFeed();
    }
    this.grid[this.row]![this.col] = ch;
    this.col++;
  }

  private lineFeed(): void {
    if (this.row === this.scrollBottom) this.scrollUp(1);
    else this.row = Math.min(this.rows - 1, this.row + 1);
  }

  private blank(): string[] {
    return Array(this.cols).fill(' ');
  }

  private scrollUp(n: number): void {
    for (let k = 0; k < n; k++) {
      this.grid.splice(this.scrollTop, 1);
      this.grid.splice(this.scrollBottom, 0, this.blank());
    }
  }

  private scrollDown(n: number): void {
    for (let k = 0; k < n; k++) {
      this.grid.splice(this.scrollBottom, 1);
      this.grid.splice(this.scrollTop, 0, this.blank());
    }
  }

  /** Handles the escape sequence at s[i]; returns its length, 0 when it is not complete yet. */
  private escape(s: string, i: number): number {
    const next = s[i + 1];
    if (next === undefined) return 0;
    if (next === '[') {
      let j = i + 2;
      while (j < s.length && /[0-9;?>=!]/.test(s[j]!)) j++;
      if (j >= s.length) return 0;
      this.csi(s.slice(i + 2, j), s[j]!);
      return j - i + 1;
    }
    if (next === ']') {
      // OSC ... BEL or ST
      const bel = s.indexOf('\x07', i);
      const st = s.indexOf('\x1b\\', i);
      const end = [bel >= 0 ? bel + 1 : -1, st >= 0 ? st + 2 : -1].filter((x) => x > 0);
      return end.length ? Math.min(...end) - i : 0;
    }
    if (next === '(' || next === ')' || next === '*' || next === '+') {
      const d = s[i + 2];
      if (d === undefined) return 0;
      if (next === '(') this.g0Graphics = d === '0';
      if (next === ')') this.g1Graphics = d === '0';
      return 3;
    }
    switch (next) {
      case '7':
        this.saved = { row: this.row, col: this.col };
        break;
      case '8':
        this.row = this.saved.row;
        this.col = this.saved.col;
        break;
      case 'c':
        this.grid = Array.from({ length: this.rows }, () => this.blank());
        this.row = 0;
        this.col = 0;
        this.scrollTop = 0;
        this.scrollBottom = this.rows - 1;
        break;
      case 'D':
        this.lineFeed();
        break;
      case 'E':
        this.col = 0;
        this.lineFeed();
        break;
      case 'M':
        if (this.row === this.scrollTop) this.scrollDown(1);
        else this.row = Math.max(0, this.row - 1);
        break;
      default:
        break;
    }
    return 2;
  }

  private csi(params: string, final: string): void {
    const priv = /^[?>=!]/.test(params);
    const nums = (priv ? params.slice(1) : params).split(';').map((p) => (p === '' ? undefined : Number(p)));
    const n = (k: number, d = 1) => nums[k] ?? d;
    const clampRow = (r: number) => Math.max(0, Math.min(this.rows - 1, r));
    const clampCol = (c: number) => Math.max(0, Math.min(this.cols - 1, c));
    if (priv) return; // modes (cursor visibility, ...)
    switch (final) {
      case 'H':
      case 'f':
        this.row = clampRow(n(0) - 1);
        this.col = clampCol(n(1) - 1);
        break;
      case 'A':
        this.row = clampRow(this.row - n(0));
        break;
      case 'B':
      case 'e':
        this.row = clampRow(this.row + n(0));
        break;
      case 'C':
      case 'a':
        this.col = clampCol(this.col + n(0));
        break;
      case 'D':
        this.col = clampCol(this.col - n(0));
        break;
      case 'E':
        this.row = clampRow(this.row + n(0));
        this.col = 0;
        break;
      case 'F':
        this.row = clampRow(this.row - n(0));
        this.col = 0;
        break;
      case 'G':
      case '`':
        this.col = clampCol(n(0) - 1);
        break;
      case 'd':
        this.row = clampRow(n(0) - 1);
        break;
      case 'J': {
        const mode = n(0, 0);
        const rowsToClear =
          mode === 0
            ? Array.from({ length: this.rows - this.row - 1 }, (_, k) => this.row + 1 + k)
            : mode === 1
              ? Array.from({ length: this.row }, (_, k) => k)
              : Array.from({ length: this.rows }, (_, k) => k);
        if (mode === 0) this.eraseInLine(0);
        if (mode === 1) this.eraseInLine(1);
        for (const r of rowsToClear) this.grid[r] = this.blank();
        break;
      }
      case 'K':
        this.eraseInLine(n(0, 0));
        break;
      case 'X': {
        const line = this.grid[this.row]!;
        for (let k = 0; k < n(0) && this.col + k < this.cols; k++) line[this.col + k] = ' ';
        break;
      }
      case '@': {
        const line = this.grid[this.row]!;
        line.splice(this.col, 0, ...Array(n(0)).fill(' '));
        line.length = this.cols;
        break;
      }
      case 'P': {
        const line = this.grid[this.row]!;
        line.splice(this.col, n(0));
        while (line.length < this.cols) line.push(' ');
        break;
      }
      case 'L':
        if (this.row >= this.scrollTop && this.row <= this.scrollBottom)
          for (let k = 0; k < n(0); k++) {
            this.grid.splice(this.scrollBottom, 1);
            this.grid.splice(this.row, 0, this.blank());
          }
        break;
      case 'M':
        if (this.row >= this.scrollTop && this.row <= this.scrollBottom)
          for (let k = 0; k < n(0); k++) {
            this.grid.splice(this.row, 1);
            this.grid.splice(this.scrollBottom, 0, this.blank());
          }
        break;
      case 'S':
        this.scrollUp(n(0));
        break;
      case 'T':
        this.scrollDown(n(0));
        break;
      case 'r':
        this.scrollTop = clampRow(n(0) - 1);
        this.scrollBottom = clampRow(n(1, this.rows) - 1);
        this.row = 0;
        this.col = 0;
        break;
      case 's':
        this.saved = { row: this.row, col: this.col };
        break;
      case 'u':
        this.row = this.saved.row;
        this.col = this.saved.col;
        break;
      default:
        // m (colours), h/l (modes), n (reports), c (identify), q, ...: nothing to draw
        break;
    }
  }

  private eraseInLine(mode: number): void {
    const line = this.grid[this.row]!;
    const [from, to] = mode === 0 ? [this.col, this.cols] : mode === 1 ? [0, this.col + 1] : [0, this.cols];
    for (let k = from; k < to; k++) line[k] = ' ';
  }
}
