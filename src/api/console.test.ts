import { describe, expect, it } from 'vitest';
import { keys } from '../controller/records';
import { MemoryStore } from '../store/memory-store';
import { StoredTickets } from './console';

describe('console tickets kept in the store', () => {
  it('are handed out once, to whichever controller asks first; expired ones go at the next issue', async () => {
    const store = new MemoryStore();
    const [a, b] = [new StoredTickets(store), new StoredTickets(store)];
    const t = { vmId: 'vm-1', user: 'root', expiresAt: Date.now() + 30_000 };
    await a.put('h1', t);
    // both controllers ask at once: one gets it
    const got = await Promise.all([a.take('h1'), b.take('h1')]);
    expect(got.filter(Boolean)).toEqual([t]);
    expect(await b.take('h1')).toBeUndefined();
    expect(await b.take('never-issued')).toBeUndefined();
    // an expired ticket left behind is deleted when the next one is issued
    await a.put('old', { ...t, expiresAt: Date.now() - 1 });
    await b.put('new', t);
    expect((await store.list(keys.consoleTickets)).map((x) => x.key)).toEqual([keys.consoleTicket('new')]);
  });
});
