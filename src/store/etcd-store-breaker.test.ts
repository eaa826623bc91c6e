import { describe, expect, it } from 'vitest';
import { EtcdStore } from './store';

/** A call refused by the etcd client's open circuit breaker (nothing sent) is tried again, not failed at once. */
describe('EtcdStore and the client circuit breaker', () => {
  const broken = () =>
    Object.assign(new Error('Execution prevented because the circuit breaker is open'), {
      isBrokenCircuitError: true,
    });

  it('retries a refusal of the open breaker until the call goes through', async () => {
    const store = new EtcdStore('127.0.0.1:1');
    let calls = 0;
    (store.client as unknown as { get: unknown }).get = () => ({
      exec: async () => {
        calls++;
        if (calls < 3) throw broken();
        return { kvs: [{ value: Buffer.from('{"a":1}'), mod_revision: '7' }] };
      },
    });
    expect(await store.get('k')).toEqual({ key: 'k', value: { a: 1 }, revision: '7' });
    expect(calls).toBe(3);
    store.close();
  });

  it('fails other errors at once, as unavailable', async () => {
    const store = new EtcdStore('127.0.0.1:1');
    let calls = 0;
    (store.client as unknown as { get: unknown }).get = () => ({
      exec: async () => {
        calls++;
        throw new Error('deadline exceeded');
      },
    });
    await expect(store.get('k')).rejects.toMatchObject({ code: 'unavailable' });
    expect(calls).toBe(1);
    store.close();
  });
});
