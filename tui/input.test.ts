import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../src/util/wait';
import { EscapeJoiner, joinSplitEscapes, unfinishedEscape } from './input';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('unfinishedEscape', () => {
  it('finds the start of a key sequence cut at the end of a read', () => {
    expect(unfinishedEscape(b('abc\x1b'))).toBe(1);
    expect(unfinishedEscape(b('abc\x1b['))).toBe(2);
    expect(unfinishedEscape(b('\x1b[['))).toBe(3); // Linux console F1-F5: ESC [ [ A-E
    expect(unfinishedEscape(b('x\x1b[24'))).toBe(4); // F12: ESC [ 2 4 ~
    expect(unfinishedEscape(b('\x1bO'))).toBe(2);
  });

  it('leaves finished sequences and plain text alone', () => {
    expect(unfinishedEscape(b('appl-b'))).toBe(0);
    expect(unfinishedEscape(b('\x1b[B'))).toBe(0);
    expect(unfinishedEscape(b('\x1b[[B'))).toBe(0);
    expect(unfinishedEscape(b('\x1b[24~'))).toBe(0);
    expect(unfinishedEscape(b('\x1b[Bab'))).toBe(0);
    expect(unfinishedEscape(b(''))).toBe(0);
  });
});

describe('EscapeJoiner', () => {
  it('joins ESC [ and B read apart into one Down key', () => {
    const out: string[] = [];
    const j = new EscapeJoiner((c) => out.push(c.toString('latin1')), 10_000);
    j.push(b('appl-b\x1b['));
    j.push(b('B'));
    expect(out).toEqual(['appl-b', '\x1b[B']);
  });

  it('passes a lone ESC on as the Escape key once the delay runs out', async () => {
    const out: string[] = [];
    const j = new EscapeJoiner((c) => out.push(c.toString('latin1')), 20);
    j.push(b('\x1b'));
    expect(out).toEqual([]);
    await waitFor(() => out.length === 1, { timeoutMs: 2000, what: 'the held ESC' });
    expect(out).toEqual(['\x1b']);
  });

  it("routes a stream's data events through it, other events untouched", () => {
    const s = new EventEmitter() as unknown as NodeJS.ReadStream;
    joinSplitEscapes(s, 10_000);
    const data: string[] = [];
    let ended = false;
    s.on('data', (c: Buffer) => data.push(c.toString('latin1')));
    s.on('end', () => {
      ended = true;
    });
    s.emit('data', b('\x1b[2'));
    s.emit('data', b('4~x'));
    s.emit('end');
    expect(data).toEqual(['\x1b[24~x']);
    expect(ended).toBe(true);
  });
});
