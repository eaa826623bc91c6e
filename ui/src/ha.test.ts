import { describe, expect, it } from 'vitest';
import type { HaRecovery, Task } from './api';
import { clock } from './format';
import {
  detectionLine,
  haRestartDetails,
  protectionLine,
  recoverySteps,
  recoveryTimeline,
  taskLabel,
  tolerateLine,
  watchdogText,
  watchdogTitle,
} from './ha';

const T0 = Date.parse('2025-03-01T12:01:02.000Z');
const at = (sec: number) => new Date(T0 + sec * 1000).toISOString();
const vm = (over: Partial<HaRecovery['vms'][number]>): HaRecovery['vms'][number] => ({
  id: 'v1',
  name: 'db',
  priority: 'high',
  restartOrder: 0,
  state: 'waiting',
  attempts: 0,
  ...over,
});
const recovery = (over: Partial<HaRecovery>): HaRecovery => ({
  id: 'r1',
  host: 'h3',
  status: 'done',
  reason: 'no heartbeat for 10 s and no answer to probes',
  detectedAt: at(0),
  fenceAttempts: 1,
  vms: [],
  unprotected: [],
  ...over,
});

const texts = (r: HaRecovery) => recoverySteps(r).map((s) => s.text);

describe('HA helpers', () => {
  it('writes the timeline relative to the detection, in time order', () => {
    const r = recovery({
      fencedAt: at(1.2),
      returnedAt: at(40),
      vms: [
        vm({ id: 'v2', name: 'web', state: 'running', target: 'h2', runningAt: at(12.05) }),
        vm({ name: 'db', state: 'running', target: 'h1', runningAt: at(8.4) }),
      ],
    });
    expect(texts(r)).toEqual([
      'detected',
      'fenced +1.2 s',
      'db running on h1 +8.4 s',
      'web running on h2 +12.1 s',
      'host back +40.0 s',
    ]);
    expect(recoverySteps(r)[2]).toEqual({
      step: 'vm',
      vm: 'db',
      state: 'running',
      text: 'db running on h1 +8.4 s',
    });
    expect(recoveryTimeline(r)).toBe(
      `h3 failed at ${clock(at(0))} — detected, fenced +1.2 s, db running on h1 +8.4 s, web running on h2 +12.1 s, host back +40.0 s`,
    );
  });

  it('says what is still under way or went wrong, after the timed steps', () => {
    const fencing = recovery({ status: 'fencing', fenceAttempts: 2, fenceError: 'ceph timed out' });
    expect(texts(fencing)).toEqual(['detected', 'fencing (attempt 2 failed: ceph timed out)']);
    const r = recovery({
      status: 'restarting',
      fencedAt: at(1),
      vms: [
        vm({ name: 'a', state: 'waiting', attempts: 1, error: 'no host has room' }),
        vm({ name: 'b', state: 'starting', target: 'h1', restartedAt: at(2) }),
        vm({ name: 'c', state: 'failed', error: 'gave up after 5 attempts' }),
        vm({ name: 'd', state: 'gone' }),
      ],
    });
    expect(texts(r)).toEqual([
      'detected',
      'fenced +1.0 s',
      'b starting on h1 +2.0 s',
      'a waiting (attempt 1 failed: no host has room)',
      'c failed: gave up after 5 attempts',
      'd gone (deleted meanwhile)',
    ]);
  });

  it('puts protection, detection and tolerance in words', () => {
    expect(protectionLine({ state: 'unprotected', reason: 'disk disk0 is on pool local of its host' })).toBe(
      'Unprotected: disk disk0 is on pool local of its host',
    );
    expect(protectionLine({ state: 'protected' })).toMatch(/^Protected: /);
    expect(protectionLine({ state: 'disabled' })).toMatch(/^Off: /);
    expect(detectionLine({ detectionSec: 10 })).toMatch(/^10 s .* 9 s\)$/);
    expect(tolerateLine(0)).toBe('0 (admission control off)');
    expect(tolerateLine(1)).toBe('1 host failure');
    expect(tolerateLine(2)).toBe('2 host failures');
  });

  it('labels HA tasks and reads where an HA restart goes', () => {
    const t: Task = {
      id: 't1',
      type: 'vm.ha-restart',
      target: 'db',
      status: 'running',
      progress: 0,
      details: { from: 'h3', to: 'h1' },
    };
    expect(taskLabel(t.type)).toBe('HA restart');
    expect(taskLabel('vm.migrate')).toBe('vm.migrate');
    expect(taskLabel('vm.ha-reset')).toBe('HA reset (VM monitoring)');
    expect(haRestartDetails(t)).toEqual({ from: 'h3', to: 'h1' });
    expect(haRestartDetails({ ...t, type: 'vm.migrate' })).toBeUndefined();
  });
});

describe('a host watchdog', () => {
  it('says whether a hung serve would reset the host now, or that none is fed', () => {
    expect(watchdogText({ device: '/dev/watchdog', armed: true })).toBe(
      '/dev/watchdog: armed (HA VMs run here)',
    );
    expect(watchdogText({ device: '/dev/watchdog', armed: false })).toBe(
      '/dev/watchdog: idle (armed while HA VMs run here)',
    );
    expect(watchdogText(undefined)).toBe('none');
    expect(watchdogTitle(undefined)).toMatch(/without --watchdog/);
    expect(watchdogTitle({ device: '/dev/watchdog', armed: false })).toMatch(/resets the host/);
  });
});
