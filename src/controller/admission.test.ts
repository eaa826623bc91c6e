import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection } from '../../test/harness/errors';
import type { NfError } from '../errors';
import type { Versioned } from '../store/store';
import { setLogLevel } from '../util/log';
import { Admission, type CapacityShortfall } from './admission';
import { keys, type VmRecord } from './records';
import { disk, GiB, type HostSpec, setup, vmRecord } from './test-cluster';

beforeAll(() => setLogLevel('error'));
afterAll(() => setLogLevel('info'));

/** A cluster of hosts with VMs, and the admission over it. */
async function cluster(hosts: HostSpec[], vms: VmRecord[]) {
  const c = await setup(hosts, vms);
  const admission = new Admission(c.store, c.router, c.registry);
  const get = async (id: string) => (await c.store.get<VmRecord>(keys.vm(id)))!;
  /** Asks to power the VM on, as VmActions.start does. */
  const powerOn = async (id: string) => {
    const cur: Versioned<VmRecord> = await get(id);
    return admission.powerOn(cur, { ...cur.value, power: 'running', generation: cur.value.generation + 1 });
  };
  return { ...c, admission, get, powerOn };
}

async function refusal(p: Promise<unknown>): Promise<NfError & { details: CapacityShortfall }> {
  const err = await rejection(p);
  expect(err.code).toBe('insufficient_capacity');
  return err as NfError & { details: CapacityShortfall };
}

describe('Admission', () => {
  it('powers VMs on while the host has room, then refuses with the figures and writes nothing', async () => {
    // 2 CPUs: 8 vCPUs under the default policy; 1 GiB for VMs
    const vms = [1, 2, 3, 4].map((n) => vmRecord(n, { node: 'a', vcpus: 3, memoryMiB: 256 }));
    const c = await cluster([{ name: 'a', cpus: 2, usableBytes: GiB }], vms);
    expect((await c.powerOn(vms[0]!.id)).power).toBe('running');
    expect((await c.get(vms[0]!.id)).value.power).toBe('running');
    await c.powerOn(vms[1]!.id);
    const before = await c.get(vms[2]!.id);
    const ticket = await c.store.get(keys.admission('a'));
    const err = await refusal(c.powerOn(vms[2]!.id));
    expect(err.details).toEqual({
      host: 'a',
      asked: { vcpus: 3, memoryMiB: 256 },
      free: { vcpus: 2, memoryMiB: 512 },
      limit: { vcpus: 8, memoryMiB: 1024 },
      poweredOnVms: 2,
    });
    expect(err.message).toBe(
      'cannot power on VM "vm3": host a lacks room (3 vCPU asked, 2 of 8 free; 2 VM(s) powered on there); ' +
        'stop a VM on it or raise the overcommit policy',
    );
    // nothing changed: the record and the host's admission key are as they were
    expect(await c.get(vms[2]!.id)).toEqual(before);
    expect(await c.store.get(keys.admission('a'))).toEqual(ticket);
    // a stopped VM frees its room; the overcommit policy counts
    await c.put(keys.vm(vms[0]!.id), { ...(await c.get(vms[0]!.id)).value, power: 'stopped' });
    await c.powerOn(vms[2]!.id);
    await refusal(c.powerOn(vms[3]!.id));
    await c.put(keys.policy, { vcpuOvercommit: 8 });
    await c.powerOn(vms[3]!.id);
  });

  it('names memory when memory is short', async () => {
    const on = vmRecord(1, { node: 'a', memoryMiB: 768, power: 'running' });
    const vm = vmRecord(2, { node: 'a', memoryMiB: 512 });
    const c = await cluster([{ name: 'a', usableBytes: GiB }], [on, vm]);
    const err = await refusal(c.powerOn(vm.id));
    expect(err.message).toMatch(
      /host a lacks room \(512 MiB asked, 256 of 1024 MiB free; 1 VM\(s\) powered on/,
    );
  });

  it('counts a stopped VM whose QEMU still runs (a stop in progress), and paused VMs', async () => {
    const stopping = vmRecord(1, { node: 'a', memoryMiB: 512 });
    const paused = vmRecord(2, { node: 'a', memoryMiB: 256, power: 'paused' });
    const vm = vmRecord(3, { node: 'a', memoryMiB: 512 });
    const c = await cluster([{ name: 'a', usableBytes: GiB }], [stopping, paused, vm]);
    c.nodes.get('a')!.processes.add(stopping.id);
    c.router.locate(stopping.id, 'a');
    const err = await refusal(c.powerOn(vm.id));
    expect(err.details.free.memoryMiB).toBe(256);
    c.nodes.get('a')!.processes.delete(stopping.id);
    await c.powerOn(vm.id);
  });

  it('lets only one of two simultaneous power-ons take the last room on a host', async () => {
    const vms = [1, 2].map((n) => vmRecord(n, { node: 'a', memoryMiB: 768 }));
    const c = await cluster([{ name: 'a', usableBytes: GiB }], vms);
    const results = await Promise.allSettled(vms.map((v) => c.powerOn(v.id)));
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((rejected.reason as NfError).code).toBe('insufficient_capacity');
    const powered = await Promise.all(vms.map(async (v) => (await c.get(v.id)).value.power));
    expect(powered.filter((p) => p === 'running')).toHaveLength(1);
  });

  it('powers a VM whose disks are all shared on another host with room; a local disk binds it', async () => {
    const hosts = [
      { name: 'a', usableBytes: GiB, sharedPools: ['ceph'] },
      { name: 'b', usableBytes: GiB, sharedPools: ['ceph'] },
    ];
    const full = vmRecord(1, { node: 'a', memoryMiB: 1024, power: 'running' });
    const shared = vmRecord(2, { node: 'a', memoryMiB: 512, disks: [disk(2, { pool: 'ceph' })] });
    const local = vmRecord(3, { node: 'a', memoryMiB: 512, disks: [disk(3)] });
    const pinned = vmRecord(4, {
      node: 'a',
      memoryMiB: 512,
      disks: [disk(4, { pool: 'ceph' })],
      placement: { node: 'a' },
    });
    const c = await cluster(hosts, [full, shared, local, pinned]);
    const written = await c.powerOn(shared.id);
    expect(written.node).toBe('b');
    expect((await c.get(shared.id)).value).toMatchObject({ node: 'b', power: 'running' });
    expect((await refusal(c.powerOn(local.id))).details.host).toBe('a');
    expect((await refusal(c.powerOn(pinned.id))).details.host).toBe('a');
  });

  it('HA admission control: refuses a power-on that leaves no room to restart HA VMs after a host failure', async () => {
    const GiB4 = 4 * GiB;
    const hosts = [
      { name: 'a', usableBytes: GiB4, sharedPools: ['ceph'] },
      { name: 'b', usableBytes: GiB4, sharedPools: ['ceph'] },
    ];
    const ha = {
      enabled: true,
      priority: 'medium' as const,
      restartOrder: 0,
      isolationResponse: 'poweroff' as const,
    };
    const shared = (n: number) => [disk(n, { pool: 'ceph' })];
    const vms = [
      vmRecord(1, { node: 'a', memoryMiB: 2048, disks: shared(1), ha, power: 'running' }),
      vmRecord(2, { node: 'b', memoryMiB: 1024, disks: shared(2), ha }),
      vmRecord(3, { node: 'b', memoryMiB: 1024, disks: shared(3), ha }),
      vmRecord(4, { node: 'b', memoryMiB: 2048, disks: shared(4) }),
    ];
    const c = await cluster(hosts, vms);
    // 2 + 1 GiB: if a fails, b holds all of it
    await c.powerOn(vms[1]!.id);
    // 2 + 1 + 1 = 4 GiB: still fits on one host
    await c.powerOn(vms[2]!.id);
    // + 2 GiB of a non-HA VM on b: b has room now, but not after a failure of a
    const before = await c.get(vms[3]!.id);
    const err = await refusal(c.powerOn(vms[3]!.id));
    expect(err.message).toContain('HA admission control (1 host failure(s) tolerated)');
    expect(await c.get(vms[3]!.id)).toEqual(before);
    // tolerating no failure turns it off
    await c.put(keys.haSettings, { detectionSec: 10, tolerateHostFailures: 0 });
    expect((await c.powerOn(vms[3]!.id)).power).toBe('running');
  });
});
