import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NfError } from '../errors';
import { DirPool } from '../storage/dir-pool';
import { imageInfo } from '../storage/qemu-img';
import { MemoryStore } from '../store/memory-store';
import { setLogLevel } from '../util/log';
import { waitFor } from '../util/wait';
import { keys, type VmRecord } from './records';
import {
  bindsHost,
  disk,
  GiB,
  health,
  imageRecord,
  MiB,
  nodeRecord,
  setup,
  vmId,
  vmRecord,
} from './test-cluster';

beforeAll(() => setLogLevel('error'));
afterAll(() => setLogLevel('info'));

describe('Placement', () => {
  it('places pending diskless VMs, spread over the hosts, and clears their pending reason', async () => {
    const vms = [1, 2, 3, 4].map((n) =>
      vmRecord(n, { pending: { reason: 'no host fits (earlier)', at: '2024-01-01T00:00:00.000Z' } }),
    );
    const { placement, read, router, nodes } = await setup([{ name: 'a' }, { name: 'b' }], vms);
    expect(await placement.pass()).toBe(4);
    const placed = await Promise.all(vms.map((v) => read(v.id)));
    for (const v of placed) {
      expect(['a', 'b']).toContain(v.node);
      expect(v.pending).toBeUndefined();
      // the router now sends this VM's calls to its host
      expect(await router.consoleLog(v.id)).toBe(`${v.id}@${v.node}`);
    }
    expect(placed.filter((v) => v.node === 'a')).toHaveLength(2);
    expect(placed.filter((v) => v.node === 'b')).toHaveLength(2);
    // diskless: nothing was created on any host
    for (const n of nodes.values()) expect(n.calls).toEqual([]);
    expect(placement.stats).toEqual({ passes: 1, placed: 4 });
    // nothing left to place: a second pass is a no-op
    expect(await placement.pass()).toBe(0);
    expect(placement.stats.passes).toBe(1);
  });

  it('keeps the rest of the record intact when placing', async () => {
    const vm = vmRecord(1, { description: 'keep me', power: 'running', generation: 7 });
    const { placement, read } = await setup([{ name: 'a' }], [vm]);
    await placement.pass();
    const { node, updatedAt, ...rest } = await read(vm.id);
    const { node: _n, updatedAt: _u, ...before } = vm;
    expect(node).toBe('a');
    expect(rest).toEqual(before);
    expect(updatedAt >= vm.updatedAt).toBe(true);
  });

  it('creates a VM’s disks on the chosen host, then names that host in the record', async () => {
    const vm = vmRecord(1, { disks: [disk(0), disk(1, { pool: 'fast' })] });
    const { placement, read, nodes, store } = await setup(
      [
        { name: 'a', pools: ['default'] },
        { name: 'b', pools: ['default', 'fast'] },
      ],
      [vm],
    );
    const seen: string[] = [];
    nodes.get('b')!.onCreate = async () => {
      // the record does not name the host before its disks exist
      seen.push((await store.get<VmRecord>(keys.vm(vm.id)))!.value.node);
    };
    expect(await placement.pass()).toBe(1);
    expect(nodes.get('a')!.calls).toEqual([]);
    expect(nodes.get('b')!.calls).toEqual([`create default/vol-0 ${GiB}`, `create fast/vol-1 ${2 * GiB}`]);
    expect(seen).toEqual(['', '']);
    const rec = await read(vm.id);
    expect(rec.node).toBe('b');
    expect(rec.pending).toBeUndefined();
  });

  it('clones a disk from its image (backing file and format) on the image’s host', async () => {
    const vm = vmRecord(1, {
      disks: [disk(0, { image: 'img-q' }), disk(1, { image: 'img-r' }), disk(2)],
    });
    const { placement, read, nodes, put } = await setup([{ name: 'a' }, { name: 'b' }], [vm]);
    await put(keys.image('img-q'), imageRecord('img-q', 'b'));
    await put(keys.image('img-r'), imageRecord('img-r', 'b', { format: 'raw', file: 'img-r.raw' }));
    expect(await placement.pass()).toBe(1);
    // spread would break the tie towards "a": the images pin the VM to "b"
    expect(nodes.get('a')!.calls).toEqual([]);
    expect(nodes.get('b')!.calls).toEqual([
      `create default/vol-0 ${GiB} backing=img-q.qcow2:qcow2`,
      `create default/vol-1 ${2 * GiB} backing=img-r.raw:raw`,
      `create default/vol-2 ${3 * GiB}`,
    ]);
    expect((await read(vm.id)).node).toBe('b');
  });

  it('pins a VM booting from an ISO image to the host holding the ISO', async () => {
    const vm = vmRecord(1, { boot: { cdrom: { image: 'iso1' } } });
    const { placement, read, put } = await setup([{ name: 'a' }, { name: 'b' }], [vm]);
    await put(keys.image('iso1'), imageRecord('iso1', 'b', { kind: 'iso', format: 'iso', file: 'x.iso' }));
    expect(await placement.pass()).toBe(1);
    expect((await read(vm.id)).node).toBe('b');
  });

  it('leaves the VM pending, naming the host and the error, and deletes the disks it created', async () => {
    const vm = vmRecord(1, { disks: [disk(0), disk(1), disk(2)] });
    const { placement, read, nodes, router } = await setup([{ name: 'a' }], [vm]);
    const a = nodes.get('a')!;
    a.failCreate = { volume: 'vol-1', error: new NfError('insufficient_resources', 'pool default is full') };
    expect(await placement.pass()).toBe(0);
    expect(a.calls).toEqual([
      `create default/vol-0 ${GiB}`,
      `create default/vol-1 ${2 * GiB}`,
      'delete default/vol-0',
    ]);
    expect(a.volumes.size).toBe(0);
    const rec = await read(vm.id);
    expect(rec.node).toBe('');
    expect(rec.pending?.reason).toContain('host a');
    expect(rec.pending?.reason).toContain('pool default is full');
    expect(placement.stats.placed).toBe(0);
    // the router does not think the VM is anywhere
    await expect(Promise.resolve().then(() => router.consoleLog(vm.id))).rejects.toMatchObject({
      code: 'invalid_state',
    });

    // once the host can create volumes again, the next pass places the VM
    a.failCreate = undefined;
    a.calls = [];
    expect(await placement.pass()).toBe(1);
    expect(a.calls).toEqual([
      `create default/vol-0 ${GiB}`,
      `create default/vol-1 ${2 * GiB}`,
      `create default/vol-2 ${3 * GiB}`,
    ]);
    const placed = await read(vm.id);
    expect(placed.node).toBe('a');
    expect(placed.pending).toBeUndefined();
  });

  it('leaves the VM pending when a disk’s image record is gone', async () => {
    const vm = vmRecord(1, { disks: [disk(0), disk(1, { image: 'deleted' })] });
    const { placement, read, nodes } = await setup([{ name: 'a' }], [vm]);
    expect(await placement.pass()).toBe(0);
    expect(nodes.get('a')!.calls).toEqual([`create default/vol-0 ${GiB}`, 'delete default/vol-0']);
    const rec = await read(vm.id);
    expect(rec.node).toBe('');
    expect(rec.pending?.reason).toMatch(/host a .*image deleted of disk disk1 is gone/);
  });

  it('deletes the disks it created when the record changed meanwhile, and keeps the other change', async () => {
    const vm = vmRecord(1, { disks: [disk(0), disk(1)] });
    const { placement, read, nodes, store } = await setup([{ name: 'a' }], [vm]);
    const a = nodes.get('a')!;
    let bumped = false;
    a.onCreate = async () => {
      if (bumped) return;
      bumped = true;
      // someone edits the VM while its disks are being created
      const cur = (await store.get<VmRecord>(keys.vm(vm.id)))!;
      await store.txn({ put: [{ key: cur.key, value: { ...cur.value, description: 'edited meanwhile' } }] });
    };
    expect(await placement.pass()).toBe(0);
    expect(a.calls).toEqual([
      `create default/vol-0 ${GiB}`,
      `create default/vol-1 ${2 * GiB}`,
      'delete default/vol-0',
      'delete default/vol-1',
    ]);
    expect(a.volumes.size).toBe(0);
    let rec = await read(vm.id);
    expect(rec.node).toBe('');
    expect(rec.description).toBe('edited meanwhile');
    expect(rec.disks).toEqual(vm.disks);

    // the next pass sees the new record and places it
    expect(await placement.pass()).toBe(1);
    rec = await read(vm.id);
    expect(rec.node).toBe('a');
    expect(rec.description).toBe('edited meanwhile');
    expect(a.volumes).toEqual(new Set(['default/vol-0', 'default/vol-1']));
  });

  it('deletes the created disks when the bind loses a compare-and-swap, then places the VM later', async () => {
    const vm = vmRecord(1, { disks: [disk(0)] });
    const { placement, read, nodes, store } = await setup([{ name: 'a' }], [vm]);
    let conflicts = 1;
    store.onTxn = (ops) => (bindsHost(ops) && conflicts-- > 0 ? 'conflict' : undefined);
    expect(await placement.pass()).toBe(0);
    const a = nodes.get('a')!;
    expect(a.calls).toEqual([`create default/vol-0 ${GiB}`, 'delete default/vol-0']);
    let rec = await read(vm.id);
    expect(rec.node).toBe('');
    expect(rec.pending?.reason).toContain('host a');
    expect(await placement.pass()).toBe(1);
    rec = await read(vm.id);
    expect(rec.node).toBe('a');
    expect(rec.pending).toBeUndefined();
    expect(a.volumes).toEqual(new Set(['default/vol-0']));
  });

  it('converges when the cleanup after a lost compare-and-swap failed too (a real pool keeps the volume)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nf-placement-test-'));
    try {
      const vm = vmRecord(1, {
        disks: [disk(0, { volume: `vm-${vmId(1)}-disk0.qcow2`, sizeBytes: 64 * MiB })],
      });
      const { placement, read, nodes, store } = await setup([{ name: 'a' }], [vm]);
      const a = nodes.get('a')!;
      const pool = new DirPool('default', dir);
      pool.init();
      a.pool = pool;
      a.failDelete = new NfError('unavailable', 'host a did not answer');
      let conflicts = 1;
      store.onTxn = (ops) => (bindsHost(ops) && conflicts-- > 0 ? 'conflict' : undefined);
      expect(await placement.pass()).toBe(0);
      const file = pool.diskPath(vm.disks[0]!.volume);
      expect(existsSync(file)).toBe(true); // the leftover
      expect((await read(vm.id)).node).toBe('');

      // The next pass creates the same volume again: accepted as it is, and the VM is placed.
      expect(await placement.pass()).toBe(1);
      const rec = await read(vm.id);
      expect(rec.node).toBe('a');
      expect(rec.pending).toBeUndefined();
      expect((await imageInfo(file)).virtualSize).toBe(64 * MiB);

      // A leftover that is not what the VM asks for (here: another size) is refused and kept.
      const other = vmRecord(2, {
        disks: [disk(0, { volume: `vm-${vmId(2)}-disk0.qcow2`, sizeBytes: 64 * MiB })],
      });
      await pool.createDisk(other.disks[0]!.volume, 32 * MiB);
      await store.txn({ put: [{ key: keys.vm(other.id), value: other }] });
      expect(await placement.pass()).toBe(0);
      const pending = await read(other.id);
      expect(pending.node).toBe('');
      expect(pending.pending?.reason).toContain(
        'already exists in pool default and is not the one asked for',
      );
      expect((await imageInfo(pool.diskPath(other.disks[0]!.volume))).virtualSize).toBe(32 * MiB);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps the disks when the bind committed but its reply was lost', async () => {
    const vm = vmRecord(1, { disks: [disk(0)] });
    const { placement, read, nodes, store } = await setup([{ name: 'a' }], [vm]);
    let lost = 1;
    store.onTxn = (ops) => (bindsHost(ops) && lost-- > 0 ? 'lost' : undefined);
    expect(await placement.pass()).toBe(1);
    const a = nodes.get('a')!;
    expect(a.calls).toEqual([`create default/vol-0 ${GiB}`]);
    expect(a.volumes).toEqual(new Set(['default/vol-0']));
    const rec = await read(vm.id);
    expect(rec.node).toBe('a');
    expect(rec.pending).toBeUndefined();
  });

  it('falls back to one write per VM when a batched record changed, placing the others', async () => {
    const vms = [1, 2, 3].map((n) => vmRecord(n));
    const { placement, read, store } = await setup([{ name: 'a' }, { name: 'b' }], vms);
    let bumped = false;
    store.onTxn = (ops) => {
      if (bumped || !bindsHost(ops)) return undefined;
      bumped = true;
      // vm2 is edited between the pass's list and its batched write
      void MemoryStore.prototype.txn.call(store, {
        put: [{ key: keys.vm(vms[1]!.id), value: { ...vms[1]!, description: 'edited' } }],
      });
      return undefined;
    };
    expect(await placement.pass()).toBe(2);
    const [r1, r2, r3] = await Promise.all(vms.map((v) => read(v.id)));
    expect(r1!.node).not.toBe('');
    expect(r3!.node).not.toBe('');
    expect(r2!.node).toBe('');
    expect(r2!.description).toBe('edited');
    store.onTxn = undefined;
    expect(await placement.pass()).toBe(1);
    const again = await read(vms[1]!.id);
    expect(again.node).not.toBe('');
    expect(again.description).toBe('edited');
  });

  it('places every VM of a batch whose write conflicted once without any real change', async () => {
    const vms = [1, 2, 3].map((n) => vmRecord(n));
    const { placement, read, store } = await setup([{ name: 'a' }], vms);
    let conflicts = 1;
    store.onTxn = (ops) => (bindsHost(ops) && conflicts-- > 0 ? 'conflict' : undefined);
    expect(await placement.pass()).toBe(3);
    for (const v of vms) expect((await read(v.id)).node).toBe('a');
  });

  it('explains why no host fits, and places the VM once a host is ready', async () => {
    const vm = vmRecord(1);
    const { placement, read, store, put } = await setup(
      [
        { name: 'a', ready: false },
        { name: 'b', maintenance: true },
        { name: 'c', ready: false },
      ],
      [vm],
    );
    expect(await placement.pass()).toBe(0);
    const rec = await read(vm.id);
    expect(rec.node).toBe('');
    expect(rec.pending?.reason).toBe(
      'no host fits VM "vm1" (1 vCPU, 512 MiB): 3 hosts: 2 not ready, 1 in maintenance',
    );
    expect(rec.pending?.at).toBeTruthy();

    // the same reason again: the record is not rewritten
    const rev = (await store.get(keys.vm(vm.id)))!.revision;
    expect(await placement.pass()).toBe(0);
    expect((await store.get(keys.vm(vm.id)))!.revision).toBe(rev);

    await put(keys.nodeHealth('c'), health());
    expect(await placement.pass()).toBe(1);
    const placed = await read(vm.id);
    expect(placed.node).toBe('c');
    expect(placed.pending).toBeUndefined();
  });

  it('treats a host without capacity facts (no info yet) as not ready', async () => {
    const vm = vmRecord(1);
    const { placement, read, put } = await setup([{ name: 'a' }], [vm]);
    const { info: _info, ...bare } = nodeRecord({ name: 'a' });
    await put(keys.node('a'), bare);
    expect(await placement.pass()).toBe(0);
    expect((await read(vm.id)).pending?.reason).toMatch(/1 host: 1 not ready$/);
  });

  it('says so when every host is in maintenance, or lacks the memory', async () => {
    const small = vmRecord(1);
    const big = vmRecord(2, { memoryMiB: 4096 });
    const { placement, read, put } = await setup(
      [
        { name: 'a', usableBytes: GiB },
        { name: 'b', usableBytes: 2 * GiB },
      ],
      [small, big],
    );
    expect(await placement.pass()).toBe(1);
    expect((await read(small.id)).node).toBe('b');
    expect((await read(big.id)).pending?.reason).toBe(
      'no host fits VM "vm2" (1 vCPU, 4096 MiB): 2 hosts: 2 insufficient memory',
    );

    const late = vmRecord(3);
    await put(keys.vm(late.id), late);
    for (const name of ['a', 'b'])
      await put(keys.node(name), { ...nodeRecord({ name, usableBytes: 2 * GiB }), maintenance: true });
    expect(await placement.pass()).toBe(0);
    expect((await read(late.id)).pending?.reason).toBe(
      'no host fits VM "vm3" (1 vCPU, 512 MiB): 2 hosts: 2 in maintenance',
    );
  });

  it('says so when there are no hosts at all', async () => {
    const vm = vmRecord(1);
    const { placement, read, store } = await setup([{ name: 'a' }], [vm]);
    await store.txn({ delete: [keys.node('a'), keys.nodeHealth('a')] });
    expect(await placement.pass()).toBe(0);
    expect((await read(vm.id)).pending?.reason).toBe(
      'no host fits VM "vm1" (1 vCPU, 512 MiB): no hosts in the cluster',
    );
  });

  it('honours a pinned host, and explains a pin to a host that cannot take the VM', async () => {
    const pinned = vmRecord(1, { placement: { node: 'b' } });
    const nowhere = vmRecord(2, { placement: { node: 'zz' } });
    const busy = vmRecord(3, { placement: { node: 'c' } });
    const { placement, read } = await setup(
      [{ name: 'a' }, { name: 'b' }, { name: 'c', maintenance: true }],
      [pinned, nowhere, busy],
    );
    expect(await placement.pass()).toBe(1);
    expect((await read(pinned.id)).node).toBe('b');
    expect((await read(nowhere.id)).pending?.reason).toBe(
      'no host fits VM "vm2" (1 vCPU, 512 MiB): 3 hosts: 3 not the pinned host "zz" (no such host)',
    );
    expect((await read(busy.id)).pending?.reason).toBe(
      'no host fits VM "vm3" (1 vCPU, 512 MiB): 3 hosts: 2 not the pinned host "c", 1 in maintenance',
    );
  });

  it('keeps a VM pending when its images, or its image and its pinned host, are on different hosts', async () => {
    const twoImages = vmRecord(1, { disks: [disk(0, { image: 'on-a' }), disk(1, { image: 'on-b' })] });
    const pinElsewhere = vmRecord(2, {
      placement: { node: 'a' },
      disks: [disk(2, { image: 'on-b' })],
    });
    const ok = vmRecord(3, { disks: [disk(3, { image: 'on-b' })] });
    const { placement, read, nodes, put } = await setup(
      [{ name: 'a' }, { name: 'b' }],
      [twoImages, pinElsewhere, ok],
    );
    await put(keys.image('on-a'), imageRecord('on-a', 'a'));
    await put(keys.image('on-b'), imageRecord('on-b', 'b'));
    expect(await placement.pass()).toBe(1);
    const r1 = await read(twoImages.id);
    expect(r1.node).toBe('');
    expect(r1.pending?.reason).toBe(
      'VM "vm1" needs images or a host on different hosts (a, b); images live in one host\'s pool',
    );
    const r2 = await read(pinElsewhere.id);
    expect(r2.node).toBe('');
    expect(r2.pending?.reason).toMatch(/VM "vm2" needs images or a host on different hosts \(a, b\)/);
    // no disk was created for the VMs that cannot be placed
    expect(nodes.get('a')!.calls).toEqual([]);
    expect(nodes.get('b')!.calls).toEqual([`create default/vol-3 ${4 * GiB} backing=on-b.qcow2:qcow2`]);
    expect((await read(ok.id)).node).toBe('b');
  });

  it('follows the cluster policy: pack fills the fullest host, spread the emptiest', async () => {
    // one VM is already on "b": spread prefers "a", pack prefers "b"
    const existing = vmRecord(0, { node: 'b' });
    const vms = [1, 2, 3].map((n) => vmRecord(n));
    const packed = await setup([{ name: 'a' }, { name: 'b' }], [existing, ...vms]);
    await packed.put(keys.policy, { strategy: 'pack' });
    expect(await packed.placement.pass()).toBe(3);
    for (const v of vms) expect((await packed.read(v.id)).node).toBe('b');

    const spread = await setup([{ name: 'a' }, { name: 'b' }], [existing, ...vms]);
    expect(await spread.placement.pass()).toBe(3);
    const nodes = await Promise.all(vms.map(async (v) => (await spread.read(v.id)).node));
    // vm1 to the empty host, vm2 to the tie broken by name, vm3 to the emptier one
    expect(nodes).toEqual(['a', 'a', 'b']);
  });

  it('defines stopped VMs beyond the memory and vCPUs of their host: a stopped VM holds none', async () => {
    // 1 GiB usable, 2 CPUs (8 vCPUs): five 512 MiB, 2 vCPU VMs would not all run at once, but all are defined
    const vms = [1, 2, 3, 4, 5].map((n) => vmRecord(n, { vcpus: 2, disks: [disk(n)] }));
    const { placement, read, nodes } = await setup([{ name: 'a', usableBytes: GiB, cpus: 2 }], vms);
    expect(await placement.pass()).toBe(5);
    for (const v of vms) expect((await read(v.id)).node).toBe('a');
    expect(nodes.get('a')!.calls).toHaveLength(5);
  });

  it('still keeps a VM pending that is larger than every host', async () => {
    const big = vmRecord(1, { memoryMiB: 2048 });
    const wide = vmRecord(2, { vcpus: 4, memoryMiB: 64 });
    const { placement, read } = await setup([{ name: 'a', usableBytes: GiB, cpus: 2 }], [big, wide]);
    expect(await placement.pass()).toBe(0);
    expect((await read(big.id)).pending?.reason).toBe(
      'no host fits VM "vm1" (1 vCPU, 2048 MiB): 1 host: 1 insufficient memory',
    );
    expect((await read(wide.id)).pending?.reason).toBe(
      'no host fits VM "vm2" (4 vCPU, 64 MiB): 1 host: 1 insufficient vCPUs',
    );
  });

  it('spreads stopped VMs by what is defined on each host, not only by what runs', async () => {
    // "a" runs one VM; "b" has three stopped ones defined: a new stopped VM goes to "a"
    const running = vmRecord(10, { node: 'a', power: 'running', generation: 2, runningGeneration: 2 });
    const stopped = [11, 12, 13].map((n) => vmRecord(n, { node: 'b' }));
    const vm = vmRecord(1);
    const { placement, read } = await setup([{ name: 'a' }, { name: 'b' }], [running, ...stopped, vm]);
    expect(await placement.pass()).toBe(1);
    expect((await read(vm.id)).node).toBe('a');
  });

  it('counts powered-on VMs against a host when a VM that is to run needs one, after the host reserve', async () => {
    // a VM asked to run without a host (its host was removed): it needs room now
    const on = vmRecord(0, { node: 'a', power: 'running', generation: 2 });
    const off = vmRecord(9, { node: 'b', memoryMiB: 1024 }); // stopped: holds nothing on "b"
    const vm = vmRecord(1, { power: 'running', memoryMiB: 768 });
    const hosts = [
      { name: 'a', usableBytes: GiB },
      { name: 'b', usableBytes: GiB },
    ];
    const { placement, read } = await setup(hosts, [on, off, vm]);
    expect(await placement.pass()).toBe(1);
    expect((await read(vm.id)).node).toBe('b');

    const only = await setup([{ name: 'a', usableBytes: GiB }], [on, vm]);
    expect(await only.placement.pass()).toBe(0);
    expect((await only.read(vm.id)).pending?.reason).toBe(
      'no host fits VM "vm1" (1 vCPU, 768 MiB): 1 host: 1 insufficient memory',
    );
    // memory overcommit from the policy makes room
    await only.put(keys.policy, { memoryOvercommit: 2 });
    expect(await only.placement.pass()).toBe(1);
    expect((await only.read(vm.id)).node).toBe('a');
  });

  it('places the oldest pending VM first when only one fits', async () => {
    // vm3 is the oldest of the pending ones even though vm2 is listed first; both are to run
    const young = vmRecord(2, { createdAt: '2025-01-01T00:00:00.000Z', power: 'running', memoryMiB: 768 });
    const old = vmRecord(3, { power: 'running', memoryMiB: 768 });
    const { placement, read } = await setup([{ name: 'a', usableBytes: GiB }], [young, old]);
    expect(await placement.pass()).toBe(1);
    expect((await read(old.id)).node).toBe('a');
    expect((await read(young.id)).node).toBe('');
  });

  it('places 120 diskless VMs in one pass, in batched transactions', async () => {
    const vms = Array.from({ length: 120 }, (_, i) => vmRecord(i + 1, { memoryMiB: 64 }));
    const hosts = ['a', 'b', 'c'].map((name) => ({ name, cpus: 64 }));
    const { placement, store } = await setup(hosts, vms);
    expect(await placement.pass()).toBe(120);
    const recs = await store.list<VmRecord>(keys.vms);
    expect(recs).toHaveLength(120);
    const per = new Map<string, number>();
    for (const r of recs) {
      expect(r.value.node).not.toBe('');
      per.set(r.value.node, (per.get(r.value.node) ?? 0) + 1);
    }
    expect(per).toEqual(
      new Map([
        ['a', 40],
        ['b', 40],
        ['c', 40],
      ]),
    );
    // 50 VMs per transaction (a compare and a put each: within etcd's 128 operations)
    expect(store.txns).toBe(3);
    expect(placement.stats).toEqual({ passes: 1, placed: 120 });
  });

  it('places VMs in the background once started, as records and hosts change', async () => {
    const { placement, read, put } = await setup([{ name: 'a', ready: false }]);
    await placement.start();
    try {
      const vm = vmRecord(1);
      await put(keys.vm(vm.id), vm);
      await waitFor(async () => (await read(vm.id)).pending, { timeoutMs: 2000, what: 'a pending reason' });
      expect((await read(vm.id)).node).toBe('');
      await put(keys.nodeHealth('a'), health());
      await waitFor(async () => (await read(vm.id)).node === 'a', {
        timeoutMs: 2000,
        what: 'the VM to be placed on a',
      });
    } finally {
      await placement.stop();
    }
  });
});
