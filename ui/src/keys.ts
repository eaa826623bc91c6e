/** X11 keysyms and the key events the console sends into the guest (noVNC RFB.sendKey). */

export const XK = {
  Shift_L: 0xffe1,
  Control_L: 0xffe3,
  Alt_L: 0xffe9,
  Delete: 0xffff,
  Return: 0xff0d,
  Tab: 0xff09,
  F1: 0xffbe,
} as const;

/** One key going down or up: keysym and the physical key's code (KeyboardEvent.code), if any. */
export interface KeyEvent {
  keysym: number;
  code: string | null;
  down: boolean;
}

/** Ctrl+Alt+F1…F12: Control and Alt pressed, the F key pressed and released, then Alt and Control released. */
export function ctrlAltFn(n: number): KeyEvent[] {
  if (!Number.isInteger(n) || n < 1 || n > 12) throw new RangeError(`no key F${n}`);
  const f = { keysym: XK.F1 + n - 1, code: `F${n}` };
  const ctrl = { keysym: XK.Control_L, code: 'ControlLeft' };
  const alt = { keysym: XK.Alt_L, code: 'AltLeft' };
  return [
    { ...ctrl, down: true },
    { ...alt, down: true },
    { ...f, down: true },
    { ...f, down: false },
    { ...alt, down: false },
    { ...ctrl, down: false },
  ];
}

/** The most characters "Paste text" types in one go. */
export const PASTE_MAX = 4096;

/**
 * The keysyms that type `text`: printable ASCII and Latin-1 are their own code; a newline (\n, \r\n or \r)
 * is Return, a tab Tab; any other character is the Unicode keysym 0x01000000 + its code point. Other
 * control characters are dropped. Shift is implied by the keysym ("A" is not "a").
 */
export function textKeysyms(text: string): number[] {
  const out: number[] = [];
  const s = text.replace(/\r\n?/g, '\n');
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\n') out.push(XK.Return);
    else if (ch === '\t') out.push(XK.Tab);
    else if ((c >= 0x20 && c <= 0x7e) || (c >= 0xa0 && c <= 0xff)) out.push(c);
    else if (c > 0xff) out.push(0x01000000 + c);
  }
  return out;
}

/** Characters typed with Shift on a US keyboard. */
const SHIFTED = new Set(
  'ABCDEFGHIJKLMNOPQRSTUVWXYZ~!@#$%^&*()_+{}|:"<>?'.split('').map((c) => c.charCodeAt(0)),
);

/**
 * The key presses that type `text` (see textKeysyms): each keysym down and up, with Shift held around the
 * characters a US keyboard types with Shift. A server that maps keysyms to scancodes (QEMU) takes "A"
 * without Shift for "a"; one that honours keysyms reads the same "A" either way.
 */
export function textKeyEvents(text: string): KeyEvent[] {
  const out: KeyEvent[] = [];
  for (const keysym of textKeysyms(text)) {
    const shift = SHIFTED.has(keysym);
    if (shift) out.push({ keysym: XK.Shift_L, code: null, down: true });
    out.push({ keysym, code: null, down: true }, { keysym, code: null, down: false });
    if (shift) out.push({ keysym: XK.Shift_L, code: null, down: false });
  }
  return out;
}
