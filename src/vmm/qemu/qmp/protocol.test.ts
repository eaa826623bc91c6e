import { describe, expect, it } from 'vitest';
import { encodeCommand, LineSplitter, parseMessage, QmpDecoder } from './protocol';

const greeting =
  '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2"}, "capabilities": ["oob"]}}';

describe('LineSplitter', () => {
  it('reassembles a line split across chunks and strips CRLF', () => {
    const s = new LineSplitter();
    expect(s.push('{"return"')).toEqual([]);
    expect(s.push(': {}, "id"')).toEqual([]);
    expect(s.bufferedBytes).toBeGreaterThan(0);
    expect(s.push(': "nf-1"}\r')).toEqual([]);
    expect(s.push('\n')).toEqual(['{"return": {}, "id": "nf-1"}']);
    expect(s.bufferedBytes).toBe(0);
  });

  it('yields several lines from one chunk and keeps the remainder', () => {
    const s = new LineSplitter();
    expect(s.push('a\r\nb\nc\r\nd')).toEqual(['a', 'b', 'c']);
    expect(s.push('e\n')).toEqual(['de']);
  });

  it('does not corrupt a multi-byte character split between chunks', () => {
    const bytes = new TextEncoder().encode('{"return": "héllo ✓"}\n');
    const s = new LineSplitter();
    const splitAt = bytes.indexOf(0xc3) + 1; // inside the two-byte é
    expect(s.push(bytes.subarray(0, splitAt))).toEqual([]);
    expect(s.push(bytes.subarray(splitAt))).toEqual(['{"return": "héllo ✓"}']);
  });

  it('copes with byte-at-a-time delivery', () => {
    const s = new LineSplitter();
    const out: string[] = [];
    for (const b of new TextEncoder().encode('x\r\ny\r\n')) out.push(...s.push(Uint8Array.of(b)));
    expect(out).toEqual(['x', 'y']);
  });

  it('is not affected by the caller reusing its buffer', () => {
    const s = new LineSplitter();
    const buf = new TextEncoder().encode('abc');
    s.push(buf);
    buf.fill(0x7a);
    expect(s.push('\n')).toEqual(['abc']);
  });
});

describe('parseMessage', () => {
  it('parses a greeting', () => {
    expect(parseMessage(greeting)).toEqual({
      type: 'greeting',
      greeting: {
        version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2' },
        capabilities: ['oob'],
      },
    });
  });

  it('parses returns, errors and events', () => {
    expect(parseMessage('{"return": {"running": true}, "id": "nf-3"}')).toEqual({
      type: 'return',
      id: 'nf-3',
      value: { running: true },
    });
    expect(parseMessage('{"id": 3, "error": {"class": "CommandNotFound", "desc": "nope"}}')).toEqual({
      type: 'error',
      id: 3,
      error: { class: 'CommandNotFound', desc: 'nope' },
    });
    expect(
      parseMessage(
        '{"timestamp": {"seconds": 1795704212, "microseconds": 947616}, "event": "SHUTDOWN", "data": {"guest": false}}',
      ),
    ).toEqual({
      type: 'event',
      event: {
        event: 'SHUTDOWN',
        data: { guest: false },
        timestamp: { seconds: 1795704212, microseconds: 947616 },
      },
    });
    const stop = parseMessage('{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}');
    expect(stop).toEqual({
      type: 'event',
      event: { event: 'STOP', timestamp: { seconds: 1, microseconds: 2 } },
    });
  });

  it('reports garbage instead of throwing', () => {
    for (const line of ['not json', '[1,2]', '42', '{"foo": 1}', '{"error": "x"}', '{"return": ']) {
      const msg = parseMessage(line);
      expect(msg.type, line).toBe('invalid');
      if (msg.type === 'invalid') expect(msg.line).toBe(line);
    }
  });
});

describe('QmpDecoder', () => {
  it('decodes a realistic stream with garbage and blank lines mixed in', () => {
    const d = new QmpDecoder();
    const first = d.push(`${greeting}\r\n\r\ngarbage\r\n{"return": {}, "id"`);
    expect(first.map((m) => m.type)).toEqual(['greeting', 'invalid']);
    const second = d.push(
      ': "nf-1"}\r\n{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 0}}\r\n',
    );
    expect(second.map((m) => m.type)).toEqual(['return', 'event']);
  });
});

describe('encodeCommand', () => {
  it('produces one newline-terminated line and omits absent arguments', () => {
    expect(encodeCommand('query-status', undefined, 'nf-1')).toBe('{"execute":"query-status","id":"nf-1"}\n');
    const line = encodeCommand('human-monitor-command', { 'command-line': 'a\nb' }, 'nf-2');
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(JSON.parse(line)).toEqual({
      execute: 'human-monitor-command',
      id: 'nf-2',
      arguments: { 'command-line': 'a\nb' },
    });
  });
});
