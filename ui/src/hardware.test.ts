import { describe, expect, it } from 'vitest';
import {
  cpuLine,
  cpuTopology,
  DEFAULT_HARDWARE,
  diskBusLabel,
  firmwareLine,
  fitHardware,
  hardwareBody,
  nicModelLabel,
  secureBootAvailable,
  socketsHint,
  videoLabel,
} from './hardware';

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
});
