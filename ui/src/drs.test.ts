import { describe, expect, it } from 'vitest';
import { hostsByLoad, loadPct, modeHint, thresholdLabel } from './drs';

describe('DRS card helpers', () => {
  it('labels each threshold with the gap it tolerates', () => {
    expect(thresholdLabel(1)).toBe('1 (conservative): moves when hosts differ by more than 40 points');
    expect(thresholdLabel(3)).toBe('3: moves when hosts differ by more than 20 points');
    expect(thresholdLabel(5)).toBe('5 (aggressive): moves when hosts differ by more than 10 points');
    expect(thresholdLabel(7)).toBe('7');
  });

  it('shows loads as percentages, above 100% when overloaded', () => {
    expect(loadPct(0.456)).toBe('46%');
    expect(loadPct(1.25)).toBe('125%');
    expect(loadPct(0)).toBe('0%');
  });

  it('lists the busiest host first', () => {
    const hosts = [
      { node: 'h1', cpuLoad: 0.1, memoryLoad: 0.2, vms: 1 },
      { node: 'h2', cpuLoad: 0.9, memoryLoad: 0.1, vms: 4 },
      { node: 'h3', cpuLoad: 0.1, memoryLoad: 0.5, vms: 2 },
    ];
    expect(hostsByLoad({ hosts }).map((h) => h.node)).toEqual(['h2', 'h3', 'h1']);
  });

  it('says what each mode does', () => {
    expect(modeHint('off')).toMatch(/moves nothing/);
    expect(modeHint('manual')).toMatch(/recommends/);
    expect(modeHint('automatic')).toMatch(/30 minutes/);
  });
});
