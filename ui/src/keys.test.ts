import { describe, expect, it } from 'vitest';
import { ctrlAltFn, textKeyEvents, textKeysyms, XK } from './keys';

describe('console keys', () => {
  it('types printable ASCII as its own keysym, newlines as Return', () => {
    expect(textKeysyms('ls -l\n')).toEqual([0x6c, 0x73, 0x20, 0x2d, 0x6c, XK.Return]);
    // Shift is in the keysym: upper case and symbols are keysyms of their own.
    expect(textKeysyms('A~!')).toEqual([0x41, 0x7e, 0x21]);
    expect(textKeysyms('a\r\nb\rc')).toEqual([0x61, 0xff0d, 0x62, 0xff0d, 0x63]);
    expect(textKeysyms('\tx')).toEqual([0xff09, 0x78]);
    expect(textKeysyms('')).toEqual([]);
  });

  it('keeps Latin-1 as is, other characters as Unicode keysyms, and drops control characters', () => {
    expect(textKeysyms('é')).toEqual([0xe9]);
    expect(textKeysyms('€')).toEqual([0x010020ac]);
    expect(textKeysyms('a\u0007\u007fb')).toEqual([0x61, 0x62]);
  });

  it('presses Ctrl+Alt+Fn and lets go in reverse order', () => {
    expect(ctrlAltFn(1)).toEqual([
      { keysym: 0xffe3, code: 'ControlLeft', down: true },
      { keysym: 0xffe9, code: 'AltLeft', down: true },
      { keysym: 0xffbe, code: 'F1', down: true },
      { keysym: 0xffbe, code: 'F1', down: false },
      { keysym: 0xffe9, code: 'AltLeft', down: false },
      { keysym: 0xffe3, code: 'ControlLeft', down: false },
    ]);
    expect(ctrlAltFn(12)[2]).toEqual({ keysym: 0xffc9, code: 'F12', down: true });
    expect(() => ctrlAltFn(13)).toThrow();
    expect(() => ctrlAltFn(0)).toThrow();
  });

  it('presses each key down and up, with Shift around upper case and shifted symbols', () => {
    const ev = (keysym: number, down: boolean) => ({ keysym, code: null, down });
    expect(textKeyEvents('a')).toEqual([ev(0x61, true), ev(0x61, false)]);
    expect(textKeyEvents('H!')).toEqual([
      ev(XK.Shift_L, true),
      ev(0x48, true),
      ev(0x48, false),
      ev(XK.Shift_L, false),
      ev(XK.Shift_L, true),
      ev(0x21, true),
      ev(0x21, false),
      ev(XK.Shift_L, false),
    ]);
    expect(textKeyEvents('1\n')).toEqual([
      ev(0x31, true),
      ev(0x31, false),
      ev(XK.Return, true),
      ev(XK.Return, false),
    ]);
  });
});
