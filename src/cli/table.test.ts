import { describe, expect, it } from 'vitest';
import { bytes, table } from './table';

describe('table', () => {
  it('aligns columns and marks missing values', () => {
    const out = table(
      [
        { name: 'web1', state: 'running' },
        { name: 'db', state: undefined },
      ],
      [
        { key: 'name', title: 'Name' },
        { key: 'state', title: 'State' },
      ],
    );
    expect(out.split('\n')).toEqual(['NAME  STATE', 'web1  running', 'db    -']);
  });

  it('formats sizes', () => {
    expect(bytes(512)).toBe('512 B');
    expect(bytes(1536 * 1024 ** 2)).toBe('1.5 GiB');
  });
});
