import { describe, expect, it } from 'vitest';
import { KeyedLock } from './lock';
import { deferred } from './wait';

describe('KeyedLock', () => {
  it('runs work for one key in order and other keys in parallel', async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const gate = deferred<void>();
    const a1 = lock.run('a', async () => {
      await gate.promise;
      order.push('a1');
    });
    const a2 = lock.run('a', async () => {
      order.push('a2');
    });
    await lock.run('b', async () => {
      order.push('b');
    });
    expect(lock.busy('a')).toBe(true);
    gate.resolve();
    await Promise.all([a1, a2]);
    expect(order).toEqual(['b', 'a1', 'a2']);
    expect(lock.busy('a')).toBe(false);
  });

  it('keeps going after a failure', async () => {
    const lock = new KeyedLock();
    await expect(lock.run('a', async () => Promise.reject(new Error('x')))).rejects.toThrow('x');
    expect(await lock.run('a', async () => 42)).toBe(42);
  });
});
