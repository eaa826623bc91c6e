import { describe, expect, it } from 'vitest';
import { type ApplianceConfig, defaultConfig } from './config';
import { dropbearArgv, planSsh, SSH_MAX_CHECK_MS, sshOnlyChange, sshRestartDelayMs } from './ssh';

const T0 = Date.parse('2030-01-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();

describe('planSsh', () => {
  it('keeps dropbear off while the config says null (or nothing)', () => {
    for (const enabledUntil of [null, undefined]) {
      expect(planSsh({ enabledUntil, now: T0, running: false })).toEqual({
        action: 'none',
        want: false,
        reason: 'SSH is disabled',
      });
      expect(planSsh({ enabledUntil, now: T0, running: true })).toMatchObject({
        action: 'stop',
        want: false,
      });
    }
  });

  it('starts dropbear before the deadline and looks again at the deadline', () => {
    const d = planSsh({ enabledUntil: at(30_000), now: T0, running: false });
    expect(d).toEqual({
      action: 'start',
      want: true,
      until: at(30_000),
      nextCheckMs: 30_000,
      reason: `SSH is enabled until ${at(30_000)}`,
    });
    expect(planSsh({ enabledUntil: at(30_000), now: T0, running: true })).toMatchObject({
      action: 'none',
      want: true,
      nextCheckMs: 30_000,
    });
  });

  it('looks at the clock at least once a minute while SSH is on (a clock that jumps)', () => {
    const d = planSsh({ enabledUntil: at(3_600_000), now: T0, running: true });
    expect(d.nextCheckMs).toBe(SSH_MAX_CHECK_MS);
  });

  it('stops dropbear at the deadline and after it, and then waits for a change only', () => {
    for (const now of [T0 + 30_000, T0 + 31_000]) {
      const d = planSsh({ enabledUntil: at(30_000), now, running: true });
      expect(d).toMatchObject({ action: 'stop', want: false, reason: `SSH was enabled until ${at(30_000)}` });
      expect(d.nextCheckMs).toBeUndefined();
      expect(d.until).toBeUndefined();
    }
    expect(planSsh({ enabledUntil: at(-1), now: T0, running: false }).action).toBe('none');
  });

  it('keeps SSH off when the deadline is more than a day ahead (a wrong clock)', () => {
    const d = planSsh({ enabledUntil: at(25 * 3600_000), now: T0, running: true });
    expect(d).toMatchObject({ action: 'stop', want: false });
    expect(d.reason).toContain('more than 24 hours ahead');
    expect(planSsh({ enabledUntil: at(24 * 3600_000), now: T0, running: false }).action).toBe('start');
  });

  it('treats a deadline that is not a time as off', () => {
    const d = planSsh({ enabledUntil: 'tomorrow', now: T0, running: true });
    expect(d).toMatchObject({ action: 'stop', want: false });
    expect(d.reason).toMatch(/not a time/);
  });

  it('normalises the deadline (an offset) to UTC ISO', () => {
    expect(planSsh({ enabledUntil: '2030-01-01T11:00:10+01:00', now: T0, running: false })).toMatchObject({
      action: 'start',
      until: at(10_000),
      nextCheckMs: 10_000,
    });
  });

  it('waits out the back-off after dropbear died, but not past the deadline', () => {
    const d = planSsh({ enabledUntil: at(30_000), now: T0, running: false, retryAt: T0 + 4000 });
    expect(d).toMatchObject({ action: 'none', want: true, nextCheckMs: 4000 });
    expect(d.reason).toMatch(/started again at/);
    expect(planSsh({ enabledUntil: at(3000), now: T0, running: false, retryAt: T0 + 4000 }).nextCheckMs).toBe(
      3000,
    );
    expect(
      planSsh({ enabledUntil: at(30_000), now: T0 + 4000, running: false, retryAt: T0 + 4000 }).action,
    ).toBe('start');
  });
});

describe('sshRestartDelayMs', () => {
  it('doubles from 1 s up to a minute', () => {
    expect([1, 2, 3, 4, 7, 8, 20].map(sshRestartDelayMs)).toEqual([
      1000, 2000, 4000, 8000, 60_000, 60_000, 60_000,
    ]);
  });
});

describe('sshOnlyChange (may a SIGHUP leave serve running?)', () => {
  const base: ApplianceConfig = { ...defaultConfig(), hostname: 'esx1', cluster: { mode: 'create' } };
  const withSsh = (c: ApplianceConfig, enabledUntil: string | null): ApplianceConfig => ({
    ...structuredClone(c),
    ssh: { enabledUntil },
  });

  it('is true when only ssh changed (on, longer, off)', () => {
    const on = withSsh(base, at(60_000));
    expect(sshOnlyChange(base, on)).toBe(true);
    expect(sshOnlyChange(on, withSsh(base, at(120_000)))).toBe(true);
    expect(sshOnlyChange(on, base)).toBe(true);
  });

  it('is false for any other change, also together with ssh', () => {
    expect(sshOnlyChange(base, { ...base, hostname: 'esx2' })).toBe(false);
    expect(sshOnlyChange(base, withSsh({ ...base, cluster: { mode: 'member' } }, at(1)))).toBe(false);
    expect(
      sshOnlyChange(base, withSsh({ ...base, network: { ...base.network, dns: ['192.0.2.53'] } }, at(1))),
    ).toBe(false);
  });

  it('is false when nothing changed (an explicit restart) or a side has no config', () => {
    expect(sshOnlyChange(base, structuredClone(base))).toBe(false);
    expect(sshOnlyChange(undefined, base)).toBe(false);
    expect(sshOnlyChange(base, undefined)).toBe(false);
  });
});

describe('dropbearArgv', () => {
  it('runs in the foreground, logs to stderr, with our key and pidfile (no shell)', () => {
    expect(
      dropbearArgv({
        dropbear: '/usr/sbin/dropbear',
        listen: ['22'],
        hostKey: '/d/appliance/ssh/dropbear_ed25519_host_key',
        pidfile: '/run/neuroflow/dropbear.pid',
      }),
    ).toEqual([
      '/usr/sbin/dropbear',
      '-F',
      '-E',
      '-p',
      '22',
      '-r',
      '/d/appliance/ssh/dropbear_ed25519_host_key',
      '-P',
      '/run/neuroflow/dropbear.pid',
    ]);
    expect(
      dropbearArgv({ dropbear: 'd', listen: ['127.0.0.1:2222', '[::1]:2222'], hostKey: 'k', pidfile: 'p' }),
    ).toEqual(['d', '-F', '-E', '-p', '127.0.0.1:2222', '-p', '[::1]:2222', '-r', 'k', '-P', 'p']);
  });
});
