import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseOvf, unitBytes } from './ovf';

const fixture = (name: string, vars: Record<string, string> = {}) => {
  let xml = readFileSync(join(import.meta.dirname, '../../test/fixtures/ovf', name), 'utf8');
  for (const [k, v] of Object.entries({
    SIZE1: '1000',
    SIZE2: '2000',
    CAP1: String(12 * 1024 ** 2),
    FIRMWARE: 'efi',
    ...vars,
  }))
    xml = xml.replaceAll(`@${k}@`, v);
  return xml;
};

describe('OVF descriptors as VMware writes them', () => {
  it('reads an ovftool (vSphere) export: CPUs, memory, disks on their controller, NICs, what is left out', () => {
    const vm = parseOvf(fixture('vsphere.ovf'));
    expect(vm).toMatchObject({
      name: 'web01 (prod)',
      description: 'Front web server',
      vcpus: 2,
      memoryMiB: 384,
      firmware: 'bios',
      secureBoot: false,
      osType: 'debian11_64Guest',
      windows: false,
      disks: [
        {
          label: 'Hard disk 1',
          file: 'web01-disk1.vmdk',
          capacityBytes: 12 * 1024 ** 2,
          controller: 'scsi',
          controllerModel: 'virtualscsi',
          fileSize: 1000,
        },
        { label: 'Hard disk 2', file: 'web01-disk2.vmdk', capacityBytes: 64 * 1024 ** 2, controller: 'scsi' },
      ],
      nics: [{ label: 'Network adapter 1', model: 'VmxNet3', network: 'VM Network' }],
    });
    // one core per socket: two sockets
    expect(vm.coresPerSocket).toBe(1);
    expect(vm.ignored).toEqual([
      'USB xHCI controller (USB controller)',
      'CD/DVD drive 1 (CD/DVD drive)',
      'Video card (video card)',
      'VMCI device (vmware.vmci)',
    ]);
  });

  it('reads a VMware Workstation export: Windows, SATA, e1000e, UEFI with Secure Boot', () => {
    const vm = parseOvf(fixture('workstation.ovf'));
    expect(vm).toMatchObject({
      name: 'Windows Server 2022',
      vcpus: 2,
      memoryMiB: 256,
      firmware: 'uefi',
      secureBoot: true,
      windows: true,
      disks: [
        { file: 'Windows Server 2022-disk1.vmdk', controller: 'sata', controllerModel: 'vmware.sata.ahci' },
      ],
      nics: [{ model: 'E1000e', network: 'nat' }],
      ignored: ['sound (vmware.soundcard.hdaudio)'],
    });
    expect(vm.coresPerSocket).toBeUndefined(); // all on one socket
    expect(parseOvf(fixture('workstation.ovf', { FIRMWARE: 'bios' }))).toMatchObject({
      firmware: 'bios',
      secureBoot: false,
    });
  });

  it.each([
    ['not XML', 'this is <not xml', /not XML/],
    ['entities', '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><Envelope/>', /DOCTYPE/],
    [
      'a file outside the package',
      fixture('vsphere.ovf').replace('web01-disk1.vmdk', '../../etc/shadow'),
      /not a plain file name/,
    ],
    ['a file at a URL', fixture('vsphere.ovf').replace('web01-disk1.vmdk', 'http://x/y.vmdk'), /at a URL/],
    [
      'an unknown SCSI controller',
      fixture('vsphere.ovf').replace('VirtualSCSI', 'megaraid'),
      /SCSI controller 0: SCSI controller "megaraid"/,
    ],
    [
      'an unknown NIC',
      fixture('vsphere.ovf').replace('>VmxNet3<', '>Token Ring<'),
      /Network adapter 1: network adapter "Token Ring"/,
    ],
    [
      'unknown hardware',
      fixture('vsphere.ovf').replace(
        '<rasd:ResourceType>24</rasd:ResourceType>',
        '<rasd:ResourceType>31</rasd:ResourceType>',
      ),
      /Video card: hardware of resource type 31/,
    ],
    [
      'a disk not described',
      fixture('vsphere.ovf').replace('ovf:/disk/vmdisk2', 'ovf:/disk/vmdisk9'),
      /Hard disk 2: disk "vmdisk9"/,
    ],
    [
      'no disks',
      fixture('vsphere.ovf').replaceAll(
        '<rasd:ResourceType>17</rasd:ResourceType>',
        '<rasd:ResourceType>15</rasd:ResourceType>',
      ),
      /no disks/,
    ],
  ])('refuses %s, naming it', (_what, xml, message) => {
    expect(() => parseOvf(xml)).toThrow(message);
  });

  it('knows the allocation units', () => {
    expect(unitBytes('byte * 2^30')).toBe(1024 ** 3);
    expect(unitBytes('byte')).toBe(1);
    expect(unitBytes('MegaBytes')).toBe(1024 ** 2);
    expect(() => unitBytes('furlongs')).toThrow(/unknown allocation unit/);
  });
});
