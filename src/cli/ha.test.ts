import { describe, expect, it } from 'vitest';
import type { RecoveryRecord } from '../controller/ha/views';
import { NfError } from '../errors';
import type { ApiClient } from './client';
import { describeRecovery, vmHa } from './ha';

const rec: RecoveryRecord = {
  id: 'r1',
  host: 'h3',
  status: 'done',
  reason: 'no heartbeat for 10 s (its health lease expired) and its node service does not answer',
  detectedAt: '2026-12-07T01:00:00.000Z',
  fencedAt: '2026-12-07T01:00:01.200Z',
  fence: 'disk0: blocklisted 10.0.0.3:0/123',
  fenceAttempts: 0,
  returnedAt: '2026-12-07T01:01:00.000Z',
  endedAt: '2026-12-07T01:00:08.400Z',
  durationSec: 8.4,
  vms: [
    {
      id: 'a',
      name: 'db',
      priority: 'high',
      restartOrder: 0,
      state: 'running',
      target: 'h1',
      restartedAt: '2026-12-07T01:00:01.300Z',
      runningAt: '2026-12-07T01:00:08.400Z',
      attempts: 0,
    },
  ],
  unprotected: [{ id: 'b', name: 'scratch', reason: 'HA is off for this VM' }],
};

describe('neuroflow ha', () => {
  it('prints a recovery as a timeline relative to its detection', () => {
    expect(describeRecovery(rec).split('\n')).toEqual([
      `2026-12-07T01:00:00.000Z  host h3 declared failed (done, 8.4 s): ${rec.reason}`,
      '  fenced      +1.2 s  disk0: blocklisted 10.0.0.3:0/123',
      '  db          running    on h1 restarted +1.3 s, running +8.4 s',
      '  scratch     not restarted: HA is off for this VM',
      '  host back   +60.0 s',
    ]);
  });

  it('refuses bad vm ha flags before asking the API', async () => {
    const api = {
      request: () => {
        throw new Error('no request expected');
      },
    } as unknown as ApiClient;
    const out = () => {};
    for (const flags of [
      { enable: true, disable: true },
      { priority: 'urgent' },
      { isolation: 'reboot' },
      { order: 'x' },
    ]) {
      const err = await vmHa(api, 'db', flags, out).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(NfError.isCode(err, 'validation_failed'), JSON.stringify(flags)).toBe(true);
    }
  });
});
