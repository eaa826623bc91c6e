import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseAccelerator, chooseAcceleratorCached } from '../../src/vmm/qemu/host';

describe('accelerator probe', () => {
  it('boots a real kernel under KVM to decide, leaves no process, and caches the answer', async () => {
    const saved = process.env.NEUROFLOW_ACCEL;
    delete process.env.NEUROFLOW_ACCEL;
    const dir = mkdtempSync(join(tmpdir(), 'nf-accel-'));
    try {
      const choice = await chooseAcceleratorCached(join(dir, 'accel.json'));
      expect(['kvm', 'tcg']).toContain(choice.accel);
      expect(choice.reason.length).toBeGreaterThan(10);
      const { execFileSync } = await import('node:child_process');
      const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes('root=/dev/nonexistent'));
      expect(left).toEqual([]);
      const again = await chooseAcceleratorCached(join(dir, 'accel.json'));
      expect(again.accel).toBe(choice.accel);
      expect(again.reason).toMatch(/probed earlier this boot/);
    } finally {
      if (saved === undefined) delete process.env.NEUROFLOW_ACCEL;
      else process.env.NEUROFLOW_ACCEL = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('honours NEUROFLOW_ACCEL', async () => {
    const saved = process.env.NEUROFLOW_ACCEL;
    process.env.NEUROFLOW_ACCEL = 'tcg';
    try {
      expect(await chooseAccelerator()).toEqual({ accel: 'tcg', reason: 'set by NEUROFLOW_ACCEL=tcg' });
    } finally {
      if (saved === undefined) delete process.env.NEUROFLOW_ACCEL;
      else process.env.NEUROFLOW_ACCEL = saved;
    }
  });
});
