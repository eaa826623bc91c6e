import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store';
import type { TxnOps } from '../store/store';
import { TaskLog } from './tasks';

/** A store whose writes take a random while: a later write may overtake an earlier one on the wire. */
class SlowStore extends MemoryStore {
  override async txn(ops: TxnOps, msg?: string): Promise<void> {
    const sent = structuredClone(ops); // what goes on the wire is the record as it was at the call
    await Bun.sleep(Math.random() * 15);
    return super.txn(sent, msg);
  }
}

describe('tasks', () => {
  it('ends as ended even when progress writes were still in flight', async () => {
    const store = new SlowStore();
    const tasks = new TaskLog(store);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const t = await tasks.start('test', `t${i}`, 'me', async (progress, ctl) => {
        for (let k = 0; k < 20; k++) {
          progress(k / 20);
          ctl.details({ k });
        }
      });
      ids.push(t.id);
    }
    for (const id of ids) {
      const deadline = Date.now() + 5000;
      let t = await tasks.get(id);
      while (t?.status === 'running' && Date.now() < deadline) {
        await Bun.sleep(20);
        t = await tasks.get(id);
      }
      // once ended it stays ended: no late progress write brings "running" back
      await Bun.sleep(100);
      t = await tasks.get(id);
      expect(t?.status).toBe('ok');
      expect(t?.details).toEqual({ k: 19 });
    }
  });

  it('refuses to cancel a task that cannot be, or that ended', async () => {
    const tasks = new TaskLog(new MemoryStore());
    let release = () => {};
    const t = await tasks.start('test', 'x', 'me', () => new Promise<void>((r) => (release = r)));
    await expect(tasks.cancel(t.id, 'me')).rejects.toThrow(/cannot be cancelled/);
    release();
    await Bun.sleep(20);
    await expect(tasks.cancel(t.id, 'me')).rejects.toThrow(/has ended/);
    await expect(tasks.cancel('nope', 'me')).rejects.toThrow(/no task/);
  });
});
