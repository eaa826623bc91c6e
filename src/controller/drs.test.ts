import { describe, expect, it } from 'vitest';
import { chooseMove } from './drs';
import type { VmRecord } from './records';

const vm = (id: string) => ({ id, name: id }) as VmRecord;

describe('DRS move choice', () => {
  const hosts = [
    { node: 'a', cpus: 2, load: 0.9 },
    { node: 'b', cpus: 2, load: 0.05 },
  ];
  const on = (node: string) =>
    node === 'a'
      ? [
          { vm: vm('big'), cores: 1.0 },
          { vm: vm('half'), cores: 0.8 },
          { vm: vm('idle'), cores: 0 },
        ]
      : [];

  it('moves the VM that evens the busiest and the idlest host most', () => {
    const m = chooseMove(hosts, on, 0.2, () => true);
    expect(m?.vm.id).toBe('half'); // 0.9-0.4=0.5 vs 0.05+0.4=0.45: closest
    expect(m?.from).toBe('a');
    expect(m?.to).toBe('b');
    expect(m?.after[0]).toBeCloseTo(0.5);
    expect(m?.after[1]).toBeCloseTo(0.45);
  });

  it('moves nothing within the tolerance, or when no move is allowed', () => {
    expect(chooseMove(hosts, on, 0.9, () => true)).toBeUndefined();
    expect(chooseMove(hosts, on, 0.2, () => false)).toBeUndefined();
    expect(chooseMove([hosts[0]!], on, 0.2, () => true)).toBeUndefined();
  });

  it('honours what the checks refuse (pinning, affinity, capacity) and takes the next best', () => {
    const m = chooseMove(hosts, on, 0.2, (v) => v.id !== 'half');
    expect(m?.vm.id).toBe('big');
  });

  it('does not make a move that leaves the hosts as uneven the other way', () => {
    const m = chooseMove(
      [
        { node: 'a', cpus: 1, load: 1.0 },
        { node: 'b', cpus: 1, load: 0.7 },
      ],
      (n) => (n === 'a' ? [{ vm: vm('huge'), cores: 1.0 }] : []),
      0.2,
      () => true,
    );
    expect(m).toBeUndefined(); // 0.0 vs 1.7 is worse than 1.0 vs 0.7
  });
});
