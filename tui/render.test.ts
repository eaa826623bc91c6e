import { describe, expect, it } from 'vitest';
import { FormState, networkForm, networkValues } from './forms';
import { esc, fitText, renderForm, renderMenu, renderText, wrap } from './render';
import { VirtualTerminal } from './vt';

/** Tagged lines as plain text. */
const plain = (lines: string[]) =>
  lines.map((l) => l.replace(/\{(\/?[a-z-]*)\}/g, (_, t) => (t === 'open' ? '{' : t === 'close' ? '}' : '')));

describe('rendering', () => {
  it('escapes tags, fits and wraps text', () => {
    expect(esc('{"a":1}')).toBe('{open}"a":1{close}');
    expect(fitText('abcdef', 4)).toBe('a...');
    expect(fitText('ab', 4)).toBe('ab  ');
    expect(wrap('one two three four', 9)).toEqual(['one two', 'three', 'four']);
    expect(wrap('Key:   value', 40)).toEqual(['Key:   value']);
    expect(wrap('x'.repeat(12), 5)).toEqual(['xxxxx', 'xxxxx', 'xx']);
  });

  it('a form shows the error next to the field and OK as disabled while invalid', () => {
    const f = new FormState(networkForm, { ...networkValues(undefined), hostname: 'esx1' });
    f.focusKey('mode');
    f.cycle(1);
    f.next();
    f.type('192.0.2.300/24');
    const text = plain(renderForm(f, 94)).join('\n');
    expect(text).toMatch(/IPv4 address\/prefix: +\[192\.0\.2\.300\/24_ *\] +! not an IPv4 address/);
    expect(text).toContain('OK is disabled: fix the fields marked !');
    f.clear();
    f.type('192.0.2.10/24');
    f.next();
    f.type('192.0.2.1');
    f.next();
    f.type('192.0.2.53');
    const ok = plain(renderForm(f, 94)).join('\n');
    expect(ok).not.toContain('!');
    expect(ok).toContain('<Enter> OK');
  });

  it('passwords are masked; a long value shows its end', () => {
    const f = new FormState({
      title: 'T',
      fields: [
        { key: 'p', label: 'Password', kind: 'password' },
        { key: 't', label: 'Token', kind: 'text', maxLength: 8192 },
      ],
    });
    f.type('secret12');
    f.next();
    f.type(`${'a'.repeat(200)}END`);
    const text = plain(renderForm(f, 80)).join('\n');
    expect(text).toContain('[********');
    expect(text).not.toContain('secret12');
    expect(text).toMatch(/\[<a+END_\]/);
  });

  it('menus and text views fill the screen', () => {
    const menu = plain(
      renderMenu(
        'System Customization',
        [{ label: 'One', describe: () => ['About one'] }],
        0,
        'help',
        80,
        10,
      ),
    );
    expect(menu).toHaveLength(10);
    expect(menu[2]).toMatch(/^ {2}One +About one/);
    const text = plain(renderText('log', ['a', 'b', 'c', '{x}'], 2, 40, 5));
    expect(text[0]).toMatch(/log +3-4 of 4/);
    expect(text.slice(1, 3)).toEqual([` c${' '.repeat(38)}`, ` {x}${' '.repeat(36)}`]);
  });
});

describe('VirtualTerminal', () => {
  it('places text by cursor moves, erases, keeps split sequences', () => {
    const vt = new VirtualTerminal(20, 4);
    vt.write('\x1b[2;3Hhello\x1b[1;1Hab\x1b');
    vt.write('[4;1Hxy\x1b7\x1b[3;1Hz\x1b8w');
    expect(vt.text()).toBe('ab\n  hello\nz\nxyw');
    vt.write('\x1b[2;5H\x1b[K\x1b[1;2H\x1b[1X');
    expect(vt.text()).toBe('a\n  he\nz\nxyw');
    vt.write('\x1b[H\x1b[J');
    expect(vt.text()).toBe('\n\n\n');
  });

  it('colours, modes and titles draw nothing; line drawing turns into ASCII', () => {
    const vt = new VirtualTerminal(20, 2);
    vt.write('\x1b]0;title\x07\x1b[?25l\x1b[1;47;30mA\x1b[m\x1b)0\x0eqx\x0fq');
    expect(vt.text()).toBe('A-|q\n');
  });

  it('scrolls at the bottom of the scroll region and wraps long lines', () => {
    const vt = new VirtualTerminal(5, 3);
    vt.write('1\r\n2\r\n3\r\n4');
    expect(vt.text()).toBe('2\n3\n4');
    vt.write('\x1b[1;1H123456');
    expect(vt.text()).toBe('12345\n6\n4');
  });
});
