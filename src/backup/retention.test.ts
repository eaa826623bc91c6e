import { describe, expect, it } from 'vitest';
import { applyRetention } from './retention';

/** A backup every 6 hours for 40 days, ending 2026-12-07T18:00Z; ids b0 (oldest) .. */
const series = Array.from({ length: 160 }, (_, i) => ({
  id: `b${i}`,
  at: new Date(Date.UTC(2026, 9, 29, 0) + i * 6 * 3600_000).toISOString(),
}));

describe('applyRetention', () => {
  it('keeps everything without a rule', () => {
    const r = applyRetention(series.slice(0, 3), {});
    expect(r.remove).toEqual([]);
    expect(r.keep.map((k) => k.id)).toEqual(['b2', 'b1', 'b0']);
  });

  it('keep-last keeps the newest N', () => {
    const r = applyRetention(series, { keepLast: 3 });
    expect(r.keep.map((k) => k.id)).toEqual(['b159', 'b158', 'b157']);
    expect(r.remove).toHaveLength(157);
  });

  it('keep-daily keeps the newest backup of each of the N newest days', () => {
    const r = applyRetention(series, { keepDaily: 3 });
    // b159 is 18:00 on the last day; the days before end at b155 (18:00) and b151
    expect(r.keep.map((k) => k.id)).toEqual(['b159', 'b155', 'b151']);
    expect(r.keep[0]!.why).toEqual(['daily']);
  });

  it('rules add up; a backup kept by two rules names both', () => {
    const r = applyRetention(series, { keepLast: 2, keepDaily: 2, keepWeekly: 2, keepMonthly: 2 });
    const ids = r.keep.map((k) => k.id);
    expect(ids[0]).toBe('b159');
    expect(r.keep[0]!.why).toEqual(['last', 'daily', 'weekly', 'monthly']);
    // last: b159 b158; daily: b159 b155; weekly: this ISO week's and last one's newest; monthly: Dec, Nov
    expect(ids).toContain('b158');
    expect(ids).toContain('b155');
    const nov = series.filter((b) => b.at.startsWith('2026-11')).at(-1)!.id;
    expect(ids).toContain(nov);
    expect(new Set([...ids, ...r.remove]).size).toBe(160);
  });

  it('ISO weeks: a Sunday belongs to the week of the Monday before it', () => {
    const r = applyRetention(
      [
        { id: 'sun', at: '2026-12-06T23:00:00.000Z' }, // Sunday, week 49
        { id: 'sat', at: '2026-12-05T12:00:00.000Z' }, // Saturday, week 49
        { id: 'mon', at: '2026-12-07T01:00:00.000Z' }, // Monday, week 50
      ],
      { keepWeekly: 5 },
    );
    expect(r.keep.map((k) => k.id)).toEqual(['mon', 'sun']);
    expect(r.remove).toEqual(['sat']);
  });
});
