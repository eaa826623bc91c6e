import { describe, expect, it } from 'vitest';
import { MAX_RESETS_PER_HOUR, VmMonitor } from './monitor';

const T = 60_000;
const up = (agent: 'connected' | 'absent') => ({ running: true, agent });

describe('VmMonitor (HA VM monitoring)', () => {
  it('waits for the agent to answer once, then for its silence to last the timeout', () => {
    const m = new VmMonitor();
    expect(m.judge('v', up('absent'), 0, T).kind).toBe('ok'); // booting: never answered
    expect(m.judge('v', up('absent'), 120_000, T).kind).toBe('ok');
    expect(m.judge('v', up('connected'), 130_000, T).kind).toBe('ok');
    expect(m.judge('v', up('absent'), 140_000, T).kind).toBe('ok');
    expect(m.judge('v', up('absent'), 199_999, T).kind).toBe('ok');
    expect(m.judge('v', up('absent'), 200_000, T)).toEqual({ kind: 'check-io', sinceMs: 140_000 });
    expect(m.view('v', 200_000)).toEqual({ agentSilentForSec: 60, resetsLastHour: 0 });
    m.busy('v', 200_000); // the disks were busy: the silence counts again from here
    expect(m.view('v', 201_000)).toEqual({
      agentSilentForSec: 1,
      lastIoCheck: { at: new Date(200_000).toISOString(), diskIdle: false },
      resetsLastHour: 0,
    });
    // the agent answers again: all is well
    expect(m.judge('v', up('connected'), 201_000, T).kind).toBe('ok');
    expect(m.judge('v', up('absent'), 202_000, T).kind).toBe('ok');
  });

  it('judges the I/O of the window: no sample or any I/O is no proof of a hang', () => {
    const pts = (...bps: (number | null)[]) =>
      bps.map((b, i) => ({ t: 1000 * i, diskReadBps: b, diskWriteBps: 0 }));
    expect(VmMonitor.idle(pts(0, 0, 0), 0)).toBe(true);
    expect(VmMonitor.idle(pts(0, 512, 0), 0)).toBe(false);
    expect(VmMonitor.idle(pts(0, null, 0), 0)).toBe(false);
    expect(VmMonitor.idle(pts(0), 0)).toBe(false);
    expect(VmMonitor.idle(pts(512, 0, 0), 1000)).toBe(true); // before the window
  });

  it(`resets at most ${MAX_RESETS_PER_HOUR} times an hour, says so once, and starts again after a reset only once the agent answered`, () => {
    const m = new VmMonitor();
    let now = 0;
    const hang = () => {
      m.judge('v', up('connected'), now, T);
      now += 1000;
      m.judge('v', up('absent'), now, T);
      now += T;
      return m.judge('v', up('absent'), now, T);
    };
    for (let i = 0; i < MAX_RESETS_PER_HOUR; i++) {
      expect(hang().kind).toBe('check-io');
      m.reset('v', now);
      // right after a reset the guest boots: its silent agent is not judged
      expect(m.judge('v', up('absent'), now + 2 * T, T).kind).toBe('ok');
    }
    const limit = hang();
    expect(limit.kind).toBe('limit');
    expect(m.judge('v', up('absent'), now + 1000, T).kind).toBe('ok'); // said once
    now += 3_600_000;
    expect(hang().kind).toBe('check-io');
  });
});
