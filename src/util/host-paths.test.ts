import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HostPaths } from './host-paths';

describe('HostPaths', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('allows files under the roots only, also through symlinks and dot-dots', () => {
    dir = mkdtempSync(join(tmpdir(), 'nf-hp-'));
    const ok = join(dir, 'iso');
    mkdirSync(ok);
    writeFileSync(join(ok, 'a.iso'), 'x');
    symlinkSync('/etc/hostname', join(ok, 'sneaky'));
    const hp = new HostPaths([ok]);
    expect(() => hp.check(join(ok, 'a.iso'), 'boot.cdrom')).not.toThrow();
    expect(() => hp.check(join(ok, 'missing.iso'), 'boot.cdrom')).not.toThrow();
    expect(() => hp.check(join(ok, 'sneaky'), 'boot.cdrom')).toThrow(/outside/);
    expect(() => hp.check(join(ok, '..', 'a.iso'), 'boot.cdrom')).toThrow(/outside/);
    expect(() => hp.check(`${ok}-evil/a.iso`, 'boot.cdrom')).toThrow(/outside/);
    expect(() => hp.check('/etc/shadow', 'boot.kernel')).toThrow(
      expect.objectContaining({ code: 'forbidden' }),
    );
  });
});
