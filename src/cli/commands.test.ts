import { describe, expect, it } from 'vitest';
import { intFlag } from './commands';

describe('intFlag', () => {
  it('reads a whole number, or nothing when the flag is absent', () => {
    expect(intFlag('size', '3')).toBe(3);
    expect(intFlag('size', undefined)).toBeUndefined();
  });

  it('refuses what is not a whole number, naming the flag', () => {
    expect(() => intFlag('size', '2.5')).toThrow('--size 2.5: give a whole number');
    expect(() => intFlag('min-size', 'two')).toThrow('--min-size two');
    expect(() => intFlag('size-gib', ' ')).toThrow(/whole number/);
  });
});
