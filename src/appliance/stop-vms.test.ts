import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_VM_SHUTDOWN_TIMEOUT_SEC, parseStopVmsArgs, stopVmsCommand } from './stop-vms';

describe('appliance stop-vms', () => {
  it('parses --timeout and --data-dir', () => {
    expect(parseStopVmsArgs(['--data-dir', '/d'])).toEqual({
      dataDir: '/d',
      timeoutSec: DEFAULT_VM_SHUTDOWN_TIMEOUT_SEC,
    });
    expect(parseStopVmsArgs(['--timeout', '30', '--data-dir', '/d']).timeoutSec).toBe(30);
    expect(parseStopVmsArgs(['--timeout', '0', '--data-dir', '/d']).timeoutSec).toBe(0);
    for (const bad of [['--timeout=-1'], ['--timeout', '1.5'], ['--timeout', 'x'], ['--timeout', '99999']])
      expect(() => parseStopVmsArgs(bad)).toThrow(/--timeout takes whole seconds/);
    expect(() => parseStopVmsArgs(['--bogus'])).toThrow(/Usage: neuroflow appliance stop-vms/);
    expect(() => parseStopVmsArgs(['extra'])).toThrow(/Usage/);
  });

  it('says so when no VM runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nf-stopvms-'));
    try {
      const lines: string[] = [];
      expect(await stopVmsCommand(['--data-dir', dir], (l) => lines.push(l))).toBe(0);
      expect(lines).toEqual(['no VMs running']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
