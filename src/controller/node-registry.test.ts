import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store';
import { NodeRegistry } from './node-registry';
import { keys, type NodeRecord } from './records';

function record(name: string, role: NodeRecord['role'], addresses: string[]): NodeRecord {
  return { name, role, addresses, maintenance: false, joinedAt: '2024-01-01T00:00:00.000Z' };
}

async function setup() {
  const store = new MemoryStore();
  await store.txn({
    put: [
      record('ctl2', 'controller', ['10.0.0.2']),
      record('ctl1', 'controller', ['10.0.0.1']),
      record('w1', 'worker', ['10.0.0.9']),
    ].map((r) => ({ key: keys.node(r.name), value: r })),
  });
  // a health key shares no prefix with the records
  await store.txn({
    put: [{ key: keys.nodeHealth('ctl1'), value: { at: '', memoryAvailableBytes: 0, vmsRunning: 0 } }],
  });
  return { store, registry: new NodeRegistry(store, async () => 'ctl1') };
}

describe('NodeRegistry membership', () => {
  it('lists the controllers that are members, by name, at a revision that grows with removals', async () => {
    const { store, registry } = await setup();
    const first = await registry.controllers();
    expect(first.controllers).toStrictEqual([
      { name: 'ctl1', addresses: ['10.0.0.1'] },
      { name: 'ctl2', addresses: ['10.0.0.2'] },
    ]);
    await store.txn({ delete: [keys.node('ctl2')] });
    const second = await registry.controllers();
    expect(second.controllers.map((c) => c.name)).toStrictEqual(['ctl1']);
    expect(second.revision).toBeGreaterThan(first.revision);
  });

  it('reads the controllers at most once per interval, and does not keep a failure', async () => {
    const { store, registry } = await setup();
    const a = await registry.cachedControllers(60_000);
    await store.txn({ delete: [keys.node('ctl2')] });
    expect(await registry.cachedControllers(60_000)).toStrictEqual(a);
    expect((await registry.cachedControllers(0)).controllers).toHaveLength(1);

    store.down = true;
    await expect(registry.cachedControllers(0)).rejects.toMatchObject({ code: 'unavailable' });
    store.down = false;
    expect((await registry.cachedControllers(60_000)).controllers).toHaveLength(1);
  });

  it('accepts reports of member hosts from their address only; a removed host is refused', async () => {
    const { store, registry } = await setup();
    expect((await registry.checkReporter('w1', '10.0.0.9')).name).toBe('w1');
    await expect(registry.checkReporter('w1', '10.0.0.66')).rejects.toMatchObject({
      code: 'forbidden',
      message: 'the certificate of host w1 was presented from 10.0.0.66, not from its address 10.0.0.9',
    });
    await store.txn({ delete: [keys.node('w1')] });
    await expect(registry.checkReporter('w1', '10.0.0.9')).rejects.toMatchObject({
      code: 'forbidden',
      message: 'host w1 is not a member of this cluster (removed?)',
    });
    store.down = true;
    await expect(registry.checkReporter('ctl1', '10.0.0.1')).rejects.toMatchObject({ code: 'unavailable' });
  });
});
