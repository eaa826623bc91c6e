import { describe, expect, it } from 'vitest';
import { MemoryStore } from './memory-store';

describe('MemoryStore (the Store contract)', () => {
  it('creates only when absent and updates only at the read revision', async () => {
    const s = new MemoryStore();
    await s.txn({ when: [{ key: 'a', absent: true }], put: [{ key: 'a', value: 1 }] });
    await expect(
      s.txn({ when: [{ key: 'a', absent: true }], put: [{ key: 'a', value: 2 }] }),
    ).rejects.toMatchObject({ code: 'conflict' });
    const a = (await s.get<number>('a'))!;
    await s.txn({ when: [{ key: 'a', revision: a.revision }], put: [{ key: 'a', value: 3 }] });
    await expect(
      s.txn({ when: [{ key: 'a', revision: a.revision }], put: [{ key: 'a', value: 4 }] }),
    ).rejects.toMatchObject({ code: 'conflict' });
    expect((await s.get<number>('a'))!.value).toBe(3);
  });

  it('lists by prefix in key order and tells watchers', async () => {
    const s = new MemoryStore();
    const seen: string[] = [];
    await s.watchPrefix('/x/', (k) => seen.push(k));
    await s.txn({
      put: [
        { key: '/x/b', value: 'b' },
        { key: '/x/a', value: 'a' },
        { key: '/y', value: 'y' },
      ],
    });
    await s.txn({ delete: ['/x/b'] });
    await Promise.resolve();
    expect((await s.list<string>('/x/')).map((e) => e.value)).toEqual(['a']);
    expect(seen.sort()).toEqual(['/x/a', '/x/b', '/x/b']);
  });

  it('lists with the store revision, which grows also when a key is deleted', async () => {
    const s = new MemoryStore();
    await s.txn({ put: [{ key: '/x/a', value: 1 }] });
    await s.txn({ put: [{ key: '/x/b', value: 2 }] });
    const before = await s.listWithRevision<number>('/x/');
    expect(before.items.map((i) => i.value)).toStrictEqual([1, 2]);
    await s.txn({ delete: ['/x/b'] });
    const after = await s.listWithRevision<number>('/x/');
    expect(after.items.map((i) => i.value)).toStrictEqual([1]);
    // the highest mod revision of the entries went down; the list's revision went up
    expect(Number(after.revision)).toBeGreaterThan(Number(before.revision));
  });

  it('fails every call while down', async () => {
    const s = new MemoryStore();
    s.down = true;
    await expect(s.get('a')).rejects.toMatchObject({ code: 'unavailable' });
    expect(await s.ping()).toBe(false);
  });
});
