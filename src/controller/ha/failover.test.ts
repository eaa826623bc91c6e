import { describe, expect, it } from 'vitest';
import { failoverCheck } from './failover';

const GiB = 1024 ** 3;
const hosts = [
  { name: 'a', memoryBytes: 8 * GiB },
  { name: 'b', memoryBytes: 8 * GiB },
  { name: 'c', memoryBytes: 4 * GiB },
];

describe('failoverCheck (admission control)', () => {
  it('is off at 0 and refuses a cluster with too few hosts', () => {
    expect(failoverCheck(0, hosts, []).ok).toBe(true);
    const r = failoverCheck(3, hosts, []);
    expect(r.ok).toBe(false);
    expect(r.message).toContain('HA needs at least 4');
  });

  it('judges each host’s failure: the survivors’ VMs and the failed host’s HA VMs, not its other VMs', () => {
    const vms = [
      { node: 'a', memoryMiB: 4096, ha: true },
      { node: 'a', memoryMiB: 2048, ha: false }, // down with a, not restarted
      { node: 'b', memoryMiB: 4096, ha: false },
      { node: 'c', memoryMiB: 2048, ha: true },
    ];
    const r = failoverCheck(1, hosts, vms);
    // the worst single failure is a's: its HA VM (4) joins b's (4) and c's (2) on 12 GiB; b's or c's
    // failure leaves more room
    expect(r).toMatchObject({ ok: true, needBytes: 10 * GiB, leftBytes: 12 * GiB });
    const more = failoverCheck(1, hosts, [...vms, { node: 'b', memoryMiB: 3072, ha: false }]);
    expect(more.ok).toBe(false);
    expect(more.message).toBe(
      'if a fails, the VMs still running and the HA VMs to restart need 13 GiB but the other hosts have 12 GiB',
    );
  });
});
