import { describe, expect, it } from 'vitest';
import type { Task } from './api';
import {
  cpuLine,
  DEFAULT_IMPORT_FORM,
  diskLine,
  firmwareLine,
  formProblem,
  guessKind,
  type ImportPlan,
  importBody,
  importDetails,
  importProgress,
  importResult,
  mappedNetwork,
  nicLine,
  ovfNetwork,
  ovfNetworks,
  planNotes,
  sourceProblem,
  takenName,
  uploadName,
} from './imports';

const MiB = 1024 * 1024;

const plan: ImportPlan = {
  kind: 'ova',
  name: 'web01-prod',
  source: {
    osType: 'debian11_64Guest',
    windows: false,
    firmware: 'bios',
    secureBoot: false,
    ignored: ['USB xHCI controller (USB controller)', 'VMCI device (vmware.vmci)'],
  },
  vm: {
    vcpus: 2,
    memoryMiB: 384,
    machine: 'q35',
    firmware: 'bios',
    secureBoot: false,
    cpu: { model: 'host', sockets: 2 },
    disks: [
      {
        file: 'web01-disk1.vmdk',
        label: 'Hard disk 1',
        sizeBytes: 12 * MiB,
        bus: 'virtio-blk',
        from: 'scsi (virtualscsi)',
      },
    ],
    networks: [
      { network: 'default', model: 'virtio', from: 'VmxNet3 on "VM Network"', label: 'Network adapter 1' },
      { network: 'default', model: 'virtio', from: 'E1000 on "VM Network"', label: 'Network adapter 2' },
      { network: 'lab', model: 'virtio', from: 'E1000e on "DMZ on "edge""', label: 'Network adapter 3' },
    ],
  },
  pool: 'local',
  verified: { 'web01.ovf': 'SHA256' },
  notes: [
    'Disks are virtio-blk and NICs virtio: a Linux guest has these drivers in its kernel.',
    'not brought across: USB xHCI controller (USB controller), VMCI device (vmware.vmci)',
  ],
};

const task = (over: Partial<Task>) =>
  ({ id: 't1', type: 'vm.import', target: 'web01', status: 'running', progress: 0.2, ...over }) as Task;

describe('import wizard helpers', () => {
  it('checks the source: an OVA or VMDK upload, an absolute host path, an http(s) URL', () => {
    const v = { path: '', url: '' };
    expect(sourceProblem('upload', v)).toMatch(/Choose/);
    expect(sourceProblem('upload', { ...v, file: { name: 'web01.OVA' } })).toBe('');
    expect(sourceProblem('upload', { ...v, file: { name: 'disk.vmdk' } })).toBe('');
    expect(sourceProblem('upload', { ...v, file: { name: 'web01.ovf' } })).toMatch(/pack it as an OVA/);
    expect(sourceProblem('path', { ...v, path: 'exports/web01.ova' })).toMatch(/absolute/);
    expect(sourceProblem('path', { ...v, path: ' /srv/web01.ovf ' })).toBe('');
    expect(sourceProblem('url', { ...v, url: 'ftp://x/web01.ova' })).toMatch(/http/);
    expect(sourceProblem('url', { ...v, url: 'https://files.example/web01.ova' })).toBe('');
  });

  it('stores uploads under a name the API takes', () => {
    expect(uploadName('web01.ova')).toBe('web01.ova');
    expect(uploadName('web01 (prod).OVA')).toBe('web01 -prod-.ova');
    expect(uploadName('Ärger.vmdk')).toBe('rger.vmdk');
    expect(uploadName('(x).ova')).toBe('x-.ova');
    expect(uploadName('()).vmdk')).toBe('upload.vmdk');
  });

  it('checks the name, and the vCPUs and memory of a bare VMDK only', () => {
    const f = { ...DEFAULT_IMPORT_FORM, name: 'web01-prod' };
    expect(formProblem(f, 'ova')).toBe('');
    expect(formProblem({ ...f, name: 'web01 (prod)' }, 'ova')).toMatch(/^Name/);
    expect(formProblem({ ...f, name: '' }, 'ova')).toMatch(/^Name/);
    expect(formProblem({ ...f, vcpus: 'x' }, 'ova')).toBe('');
    expect(formProblem({ ...f, vcpus: '0' }, 'vmdk')).toMatch(/^vCPUs/);
    expect(formProblem({ ...f, memoryMiB: '8' }, 'vmdk')).toMatch(/^Memory/);
    expect(formProblem({ ...f, vcpus: '2', memoryMiB: '512' }, 'vmdk')).toBe('');
  });

  it('sends only the source before the first plan, then the choices (vCPUs and memory for a VMDK)', () => {
    const source = { path: '/var/lib/neuroflow/import/1a2b3c4d-web01.ova' };
    const f = { ...DEFAULT_IMPORT_FORM, name: 'web01', networkMap: { 'VM Network': 'default' } };
    expect(importBody(source, f)).toEqual({ source });
    expect(importBody(source, f, 'ova')).toEqual({
      source,
      name: 'web01',
      pool: 'local',
      devices: 'auto',
      networkMap: { 'VM Network': 'default' },
    });
    expect(importBody({ url: 'https://x/d.vmdk' }, { ...f, networkMap: {} }, 'vmdk')).toEqual({
      source: { url: 'https://x/d.vmdk' },
      name: 'web01',
      pool: 'local',
      devices: 'auto',
      vcpus: 1,
      memoryMiB: 1024,
    });
  });

  it("reads each OVF network out of the NICs' `from`, once each, and what it maps to", () => {
    expect(ovfNetwork('VmxNet3 on "VM Network"')).toBe('VM Network');
    expect(ovfNetwork('E1000e on "DMZ on "edge""')).toBe('DMZ on "edge"');
    expect(ovfNetwork('VmxNet3')).toBeUndefined();
    expect(ovfNetworks(plan)).toEqual(['VM Network', 'DMZ on "edge"']);
    expect(mappedNetwork(plan, { networkMap: {} }, 'VM Network')).toBe('default');
    expect(mappedNetwork(plan, { networkMap: {} }, 'DMZ on "edge"')).toBe('lab');
    expect(mappedNetwork(plan, { networkMap: { 'VM Network': 'lab' } }, 'VM Network')).toBe('lab');
    expect(mappedNetwork(plan, { networkMap: {} }, 'elsewhere')).toBe('default');
  });

  it('describes the mapped hardware in a line each', () => {
    expect(cpuLine(plan.vm)).toBe('2 vCPU (2 sockets)');
    expect(cpuLine({ ...plan.vm, cpu: undefined, vcpus: 1 })).toBe('1 vCPU');
    expect(diskLine(plan.vm.disks[0]!)).toBe('Hard disk 1: scsi (virtualscsi) → virtio-blk, 12.0 MiB');
    expect(diskLine({ ...plan.vm.disks[0]!, sizeBytes: 0 })).toMatch(/size known once converted$/);
    expect(nicLine(plan.vm.networks[0]!)).toBe(
      'Network adapter 1: VmxNet3 on "VM Network" → virtio on default',
    );
    expect(firmwareLine({ firmware: 'bios', secureBoot: false })).toBe('BIOS');
    expect(firmwareLine({ firmware: 'uefi', secureBoot: true })).toBe('UEFI with Secure Boot');
    expect(planNotes(plan)).toEqual([plan.notes[0]]);
  });

  it("shows an import task's progress in bytes converted, and its new VM", () => {
    expect(importDetails(task({ type: 'vm.create', details: { disk: 'x' } }))).toBeUndefined();
    const d = importDetails(task({ details: { source: 'web01.ova', kind: 'ova' } }))!;
    expect(importProgress(d)).toBe('converting web01.ova');
    expect(
      importProgress({ ...d, disk: 'Hard disk 2', bytesConverted: 12 * MiB, bytesTotal: 76 * MiB }),
    ).toBe('Hard disk 2: 12.0 MiB of 76.0 MiB converted');
    expect(importResult(task({ status: 'ok', result: { vm: 'id1', name: 'web01', notes: ['n'] } }))).toEqual({
      vm: 'id1',
      name: 'web01',
      notes: ['n'],
    });
    expect(importResult(task({ status: 'ok' }))).toBeUndefined();
  });

  it('guesses the kind of a source by its name until the API says', () => {
    expect(guessKind('/srv/disk.VMDK')).toBe('vmdk');
    expect(guessKind('/srv/web01.ovf')).toBe('ovf');
    expect(guessKind('https://x/download')).toBe('ova');
  });

  it('finds the name in the refusal of a taken one', () => {
    expect(takenName('a VM named "web01-prod" already exists; give another "name"')).toBe('web01-prod');
    expect(takenName('the OVF is not XML')).toBeUndefined();
  });
});
