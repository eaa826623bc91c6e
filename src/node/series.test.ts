import { describe, expect, it } from 'vitest';
import { average, Series } from './series';

describe('Series', () => {
  it('keeps the newest fine points and rolls averages into coarse points', () => {
    const s = new Series(3, 2, 2);
    for (let i = 1; i <= 6; i++) s.add({ t: i, cpu: i * 10, net: i % 2 ? null : 1 });
    expect(s.points('fine').map((p) => p.t)).toEqual([4, 5, 6]);
    expect(s.points('coarse')).toEqual([
      { t: 4, cpu: 35, net: 1 },
      { t: 6, cpu: 55, net: 1 },
    ]);
  });

  it('averages to null when a field never had a value', () => {
    expect(
      average([
        { t: 1, x: null },
        { t: 2, x: null },
      ]),
    ).toEqual({ t: 2, x: null });
  });
});
