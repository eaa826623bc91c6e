import { describe, expect, it } from 'vitest';
import type { Vm } from './api';
import {
  aioHint,
  bootDevices,
  bootEntries,
  bootOrderBody,
  bootOrderLine,
  bootOrderOf,
  clusterCpuLabel,
  cpuLine,
  cpuModelChoices,
  cpuTopology,
  DEFAULT_HARDWARE,
  diskBusLabel,
  diskIoBody,
  diskIoChange,
  diskIoLine,
  editBody,
  editForm,
  editProblem,
  firmwareLine,
  fitHardware,
  hardwareBody,
  hotAddedLine,
  limitsBody,
  limitsForm,
  limitsLine,
  limitsProblem,
  maxMemoryProblem,
  memoryHint,
  moveEntry,
  nextHardware,
  nicModelLabel,
  pendingItems,
  pendingLine,
  secureBootAvailable,
  secureBootEditable,
  socketsHint,
  videoLabel,
} from './hardware';

/** A running BIOS VM as GET /vms/{id} shows it. */
const VM = {
  id: 'v1',
  name: 'web1',
  state: 'running',
  node: 'h1',
  vcpus: 2,
  memoryMiB: 256,
  machine: 'q35',
  firmware: 'bios',
  secureBoot: false,
  tpm: false,
  cpu: { model: 'host', sockets: 1, cores: 2, threads: 1 },
  video: 'std',
  tablet: true,
  disks: [],
  networks: [],
  snapshots: [],
  agent: { enabled: true, status: 'absent' },
  boot: { disk: 0 },
} as unknown as Vm;

describe('hardware', () => {
  it('sends nothing for the defaults, and only what differs', () => {
    expect(hardwareBody(DEFAULT_HARDWARE)).toEqual({});
    expect(
      hardwareBody({
        ...DEFAULT_HARDWARE,
        firmware: 'uefi',
        secureBoot: true,
        tpm: true,
        cpuModel: 'x86-64-v2',
        sockets: '2',
        video: 'virtio',
        tablet: false,
      }),
    ).toEqual({
      firmware: 'uefi',
      secureBoot: true,
      tpm: true,
      cpu: { model: 'x86-64-v2', sockets: 2 },
      video: 'virtio',
      tablet: false,
    });
    expect(hardwareBody({ ...DEFAULT_HARDWARE, machine: 'pc', sockets: ' ' })).toEqual({ machine: 'pc' });
    // no model: the cluster's default; host is a choice like any other
    expect(hardwareBody({ ...DEFAULT_HARDWARE, cpuModel: 'host' })).toEqual({ cpu: { model: 'host' } });
    expect(hardwareBody({ ...DEFAULT_HARDWARE, sockets: '2' })).toEqual({ cpu: { sockets: 2 } });
  });

  it("names the cluster's default CPU model, and keeps a model set elsewhere among the choices", () => {
    expect(clusterCpuLabel('x86-64-v3')).toBe('Cluster default (x86-64-v3)');
    expect(clusterCpuLabel(undefined)).toBe('Cluster default');
    expect(cpuModelChoices('auto').map(([m]) => m)).toEqual([
      'auto',
      'host',
      'x86-64-v2',
      'x86-64-v3',
      'x86-64-v4',
    ]);
    expect(cpuModelChoices('EPYC-v3').at(-1)).toEqual(['EPYC-v3', 'EPYC-v3']);
  });

  it('offers Secure Boot on UEFI q35 only, and drops it (and IDE) when the choice no longer allows it', () => {
    expect(secureBootAvailable('uefi', 'q35')).toBe(true);
    expect(secureBootAvailable('bios', 'q35')).toBe(false);
    expect(secureBootAvailable('uefi', 'pc')).toBe(false);
    // never sent where the API would refuse it
    expect(hardwareBody({ ...DEFAULT_HARDWARE, secureBoot: true })).toEqual({});
    const uefi = { ...DEFAULT_HARDWARE, firmware: 'uefi' as const, secureBoot: true };
    expect(fitHardware(uefi).secureBoot).toBe(true);
    expect(fitHardware({ ...uefi, firmware: 'bios' }).secureBoot).toBe(false);
    const pc = { ...DEFAULT_HARDWARE, machine: 'pc' as const, diskBus: 'ide' as const };
    expect(fitHardware(pc).diskBus).toBe('ide');
    expect(fitHardware({ ...pc, machine: 'q35' }).diskBus).toBe('virtio-blk');
  });

  it('describes the CPU topology and what the sockets make of the vCPUs', () => {
    expect(cpuTopology({ sockets: 2, cores: 1, threads: 1 })).toBe('2 sockets × 1 core × 1 thread');
    expect(
      cpuLine({ model: 'x86-64-v2', sockets: 1, cores: 4, threads: 2, flags: { avx2: true, pcid: false } }),
    ).toBe('x86-64-v2, 1 socket × 4 cores × 2 threads, +avx2 -pcid');
    expect(cpuLine({ model: 'host', sockets: 1, cores: 1, threads: 1 })).toBe(
      'host, 1 socket × 1 core × 1 thread',
    );
    expect(socketsHint(4, '')).toEqual({ ok: true, text: '' });
    expect(socketsHint(4, '2')).toEqual({ ok: true, text: '2 sockets × 2 cores × 1 thread' });
    expect(socketsHint(3, '2')).toEqual({ ok: false, text: '3 vCPUs cannot be split into 2 sockets' });
    expect(socketsHint(2, '0').ok).toBe(false);
  });

  it('labels firmware and devices, with the API defaults for absent fields', () => {
    expect(firmwareLine({ firmware: 'bios', secureBoot: false })).toBe('BIOS');
    expect(firmwareLine({ firmware: 'uefi', secureBoot: false })).toBe('UEFI');
    expect(firmwareLine({ firmware: 'uefi', secureBoot: true })).toBe('UEFI, Secure Boot');
    expect(diskBusLabel(undefined)).toBe('VirtIO block');
    expect(diskBusLabel('sata')).toBe('SATA (AHCI)');
    expect(nicModelLabel(undefined)).toBe('VirtIO');
    expect(nicModelLabel('e1000e')).toBe('Intel e1000e');
    expect(videoLabel('std')).toBe('Standard VGA');
    expect(videoLabel('bochs')).toBe('bochs');
  });

  it('fills the edit dialog from the VM with its pending changes on top, and sends only what changed', () => {
    const f = editForm(VM);
    expect(f).toEqual({
      name: 'web1',
      description: '',
      vcpus: '2',
      memoryMiB: '256',
      cpuModel: 'host',
      sockets: '1',
      video: 'std',
      tablet: true,
      tpm: false,
      firmware: 'bios',
      secureBoot: false,
    });
    expect(editBody(VM, f)).toEqual({});
    expect(editBody(VM, { ...f, memoryMiB: '320', name: ' web2 ', description: 'front' })).toEqual({
      memoryMiB: 320,
      name: 'web2',
      description: 'front',
    });
    // The CPU goes whole: cores left to the API, the VM's threads and flags kept.
    const smt = { ...VM, cpu: { model: 'host', sockets: 1, cores: 1, threads: 2, flags: { pcid: false } } };
    expect(editBody(smt, { ...editForm(smt), cpuModel: 'x86-64-v3' }).cpu).toEqual({
      model: 'x86-64-v3',
      sockets: 1,
      threads: 2,
      flags: { pcid: false },
    });
    expect(editBody(VM, { ...f, sockets: '2' })).toEqual({ cpu: { model: 'host', sockets: 2 } });
    expect(editBody(VM, { ...f, sockets: '' })).toEqual({});
    // Pending memory 320: the form shows 320; back to 256 is a change (the API then drops it from pending).
    const pending = { ...VM, pendingChanges: { memoryMiB: 320, cpu: { model: 'x86-64-v2' } } };
    expect(nextHardware(pending).memoryMiB).toBe(320);
    expect(editForm(pending)).toMatchObject({ memoryMiB: '320', cpuModel: 'x86-64-v2', sockets: '1' });
    expect(editBody(pending, editForm(pending))).toEqual({});
    expect(editBody(pending, { ...editForm(pending), memoryMiB: '256' })).toEqual({ memoryMiB: 256 });
    expect(editBody(VM, { ...f, tpm: true, tablet: false, video: 'virtio' })).toEqual({
      tpm: true,
      tablet: false,
      video: 'virtio',
    });
  });

  it('lets Secure Boot be chosen only when a VM without a UEFI store gets UEFI on q35', () => {
    const f = editForm(VM);
    expect(secureBootEditable(VM, f)).toBe(false);
    expect(secureBootEditable(VM, { firmware: 'uefi' })).toBe(true);
    expect(secureBootEditable({ ...VM, machine: 'pc' }, { firmware: 'uefi' })).toBe(false);
    expect(editBody(VM, { ...f, firmware: 'uefi', secureBoot: true })).toEqual({
      firmware: 'uefi',
      secureBoot: true,
    });
    // a UEFI VM: its store was made with or without the keys; never sent
    const uefi = { ...VM, firmware: 'uefi', efiVars: { pool: 'local', volume: 'v' } } as Vm;
    expect(secureBootEditable(uefi, { firmware: 'uefi' })).toBe(false);
    expect(editBody(uefi, { ...editForm(uefi), secureBoot: true })).toEqual({});
    // unchecked on a switch to BIOS is no change either
    expect(editBody(VM, { ...f, secureBoot: true })).toEqual({});
  });

  it('says what is wrong with the numbers before anything is sent', () => {
    const f = editForm(VM);
    expect(editProblem(f)).toBe('');
    expect(editProblem({ ...f, name: ' ' })).toMatch(/name/);
    expect(editProblem({ ...f, vcpus: '0' })).toMatch(/^vCPUs/);
    expect(editProblem({ ...f, vcpus: '1.5' })).toMatch(/^vCPUs/);
    expect(editProblem({ ...f, memoryMiB: '' })).toMatch(/^Memory/);
    expect(editProblem({ ...f, sockets: '' })).toBe('');
    expect(editProblem({ ...f, sockets: 'x' })).toMatch(/^Sockets/);
  });

  it('puts pending changes in words', () => {
    expect(pendingLine(undefined)).toBe('');
    expect(pendingLine({})).toBe('');
    expect(pendingLine({ vcpus: 1, memoryMiB: 320 })).toBe(
      'Pending until the next stop and start: memory 320 MiB, vCPUs 1',
    );
    expect(
      pendingItems({
        cpu: { model: 'x86-64-v2', sockets: 2 },
        firmware: 'uefi',
        efiVars: { pool: 'local', volume: 'vm-efivars.qcow2' },
        secureBoot: true,
        tpm: true,
        video: 'virtio',
        tablet: false,
        machine: 'pc',
        boot: { cdrom: 'debian.iso' },
      }),
    ).toEqual([
      'CPU x86-64-v2, 2 sockets',
      'machine pc',
      'firmware UEFI',
      'Secure Boot on',
      'TPM 2.0 on',
      'video VirtIO GPU',
      'USB tablet off',
      'boot from the CD-ROM debian.iso',
    ]);
    expect(
      pendingItems({ cpu: { model: 'host', sockets: 1, cores: 2, threads: 1, flags: { avx2: true } } }),
    ).toEqual(['CPU host, 1 socket × 2 cores × 1 thread, +avx2']);
    expect(pendingItems({ maxVcpus: 4, bootOrder: ['cd1', 'disk0'] })).toEqual([
      'max vCPUs 4',
      'boot order cd1 → disk0',
    ]);
    expect(pendingItems({ bootOrder: [] })).toEqual(['no boot order']);
    expect(
      nextHardware({ ...VM, bootOrder: ['disk0'], pendingChanges: { bootOrder: [] } }).bootOrder,
    ).toEqual([]);
    expect(nextHardware({ ...VM, maxVcpus: 2, pendingChanges: { maxVcpus: 4 } }).maxVcpus).toBe(4);
    expect(pendingItems({ maxMemoryMiB: 2048 })).toEqual(['max memory 2048 MiB']);
    expect(nextHardware({ ...VM, maxMemoryMiB: 1024 }).maxMemoryMiB).toBe(1024);
    expect(
      nextHardware({ ...VM, maxMemoryMiB: 1024, pendingChanges: { maxMemoryMiB: 2048 } }).maxMemoryMiB,
    ).toBe(2048);
    expect(pendingItems({ boot: { disk: 1 }, tpm: false, somethingNew: { a: 1 } })).toEqual([
      'TPM 2.0 off',
      'boot from disk 1',
      'somethingNew {"a":1}',
    ]);
  });

  it('checks a memory maximum and says how memory grows while the VM runs', () => {
    expect(maxMemoryProblem('', 256)).toBe('');
    expect(maxMemoryProblem(' ', 256)).toBe('');
    expect(maxMemoryProblem('256', 256)).toBe('');
    expect(maxMemoryProblem('1024', 256)).toBe('');
    expect(maxMemoryProblem('128', 256)).toMatch(/^Max memory: .*at least the memory \(256 MiB\)/);
    expect(maxMemoryProblem('512.5', 256)).toMatch(/^Max memory/);
    // running (VM is): from what it runs with
    expect(memoryHint(VM, '')).toBe('');
    expect(memoryHint({ ...VM, maxMemoryMiB: 1024 }, '1024')).toBe(
      'Memory grows at once in whole 128 MiB steps from 256 MiB up to the maximum, 1024 MiB; less, or other sizes, wait for the next stop and start.',
    );
    expect(memoryHint({ ...VM, maxMemoryMiB: 256 }, '256')).toMatch(/has its maximum memory \(256 MiB\)/);
    expect(memoryHint({ ...VM, maxMemoryMiB: 1024, pendingChanges: { maxMemoryMiB: 2048 } }, '2048')).toMatch(
      /^A new maximum \(2048 MiB\) waits/,
    );
    // stopped: from the maximum typed
    const stopped = { ...VM, state: 'stopped' as const };
    expect(memoryHint(stopped, '')).toBe('');
    expect(memoryHint(stopped, '2048')).toMatch(/128 MiB steps up to 2048 MiB/);
    expect(hotAddedLine(VM, { vcpus: 2, memoryMiB: 384 })).toBe('memory 384 MiB');
    expect(hotAddedLine(VM, { vcpus: 3, memoryMiB: 512 })).toBe('memory 512 MiB, 3 vCPUs');
    expect(hotAddedLine(VM, VM)).toBe('');
  });

  it("sends a disk's cache mode and AIO engine when they differ, and names them", () => {
    expect(diskIoBody('writeback', 'threads')).toEqual({});
    expect(diskIoBody('none', 'native')).toEqual({ cache: 'none', aio: 'native' });
    expect(diskIoBody('writethrough', 'threads')).toEqual({ cache: 'writethrough' });
    expect(diskIoChange({}, 'writeback', 'threads')).toEqual({});
    expect(diskIoChange({ cache: 'none' }, 'none', 'native')).toEqual({ aio: 'native' });
    // back to the defaults: sent, as the disk has others
    expect(diskIoChange({ cache: 'none', aio: 'native' }, 'writeback', 'threads')).toEqual({
      cache: 'writeback',
      aio: 'threads',
    });
    expect(diskIoLine({})).toBe('cache writeback');
    expect(diskIoLine({ cache: 'none', aio: 'native' })).toBe('cache none, aio native');
    expect(diskIoLine({ aio: 'io_uring' })).toBe('cache writeback, aio io_uring');
    expect(aioHint('writeback', 'native')).toMatch(/native needs cache none or directsync/);
    expect(aioHint('directsync', 'native')).toBe('');
    expect(aioHint('unsafe', 'io_uring')).toBe('');
  });

  it('turns the Limits… dialog into {limits} (bps in bytes/s, empty = none) and back', () => {
    expect(limitsForm(undefined)).toEqual({ iops: '', mbps: '' });
    expect(limitsForm({ iops: 100, bps: 10_000_000 })).toEqual({ iops: '100', mbps: '10' });
    expect(limitsBody({ iops: '100', mbps: '' })).toEqual({ limits: { iops: 100 } });
    expect(limitsBody({ iops: ' ', mbps: '1.5' })).toEqual({ limits: { bps: 1_500_000 } });
    // nothing typed (or 0): every limit off
    expect(limitsBody({ iops: '', mbps: '' })).toEqual({ limits: {} });
    expect(limitsBody({ iops: '0', mbps: '0' })).toEqual({ limits: {} });
    expect(limitsProblem({ iops: '100', mbps: '2.5' })).toBe('');
    expect(limitsProblem({ iops: '1.5', mbps: '' })).toMatch(/^IOPS/);
    expect(limitsProblem({ iops: '', mbps: 'x' })).toMatch(/^MB\/s/);
    expect(limitsLine(undefined)).toBe('');
    expect(limitsLine({})).toBe('');
    expect(limitsLine({ iops: 100, bps: 1_048_576 })).toBe('100 IOPS, 1.05 MB/s');
    expect(limitsLine({ iopsRead: 50, bpsWrite: 2_000_000 })).toBe('read 50 IOPS, write 2 MB/s');
  });

  it('edits the boot order: devices of the VM, checked in order, moved up and down', () => {
    const vm = {
      ...VM,
      disks: [{ id: 'disk0' }, { id: 'disk1' }],
      networks: [{ id: 'net0' }],
      boot: { cdrom: 'demo' },
      media: {},
    } as unknown as Vm;
    expect(bootDevices(vm)).toEqual(['disk0', 'disk1', 'cd0', 'cd1', 'net0']);
    expect(bootDevices({ ...vm, boot: { disk: 0 }, media: undefined })).toEqual(['disk0', 'disk1', 'net0']);
    const list = bootEntries(['cd1', 'disk0'], bootDevices(vm));
    expect(list).toEqual([
      { id: 'cd1', on: true },
      { id: 'disk0', on: true },
      { id: 'disk1', on: false },
      { id: 'cd0', on: false },
      { id: 'net0', on: false },
    ]);
    expect(bootOrderOf(list)).toEqual(['cd1', 'disk0']);
    const swapped = moveEntry(list, 1, -1);
    expect(bootOrderOf(swapped)).toEqual(['disk0', 'cd1']);
    expect(moveEntry(list, 0, -1)).toBe(list);
    expect(moveEntry(list, 4, 1)).toBe(list);
    const net = moveEntry(
      moveEntry(
        list.map((e) => (e.id === 'net0' ? { ...e, on: true } : e)),
        4,
        -1,
      ),
      3,
      -1,
    );
    expect(bootOrderOf(net)).toEqual(['cd1', 'disk0', 'net0']);
    expect(bootOrderOf(list.map((e) => ({ ...e, on: false })))).toBeNull();
    expect(bootEntries(undefined, ['disk0'])).toEqual([{ id: 'disk0', on: false }]);
    // sent only when it changes; null clears it
    expect(bootOrderBody(['cd1', 'disk0'], ['cd1', 'disk0'])).toEqual({});
    expect(bootOrderBody(undefined, null)).toEqual({});
    expect(bootOrderBody([], null)).toEqual({});
    expect(bootOrderBody(['cd1', 'disk0'], ['disk0', 'cd1'])).toEqual({ bootOrder: ['disk0', 'cd1'] });
    expect(bootOrderBody(['cd1'], null)).toEqual({ bootOrder: null });
    expect(bootOrderBody(undefined, ['net0'])).toEqual({ bootOrder: ['net0'] });
    expect(bootOrderLine(['cd1', 'disk0'])).toBe('cd1 → disk0');
    expect(bootOrderLine(undefined)).toBe('');
  });
});
