import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tapCounters } from './metrics';

describe('host-side NIC counters', () => {
  const root = mkdtempSync(join(tmpdir(), 'nf-sysnet-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const tap = (name: string, rx: number, tx: number) => {
    mkdirSync(join(root, name, 'statistics'), { recursive: true });
    writeFileSync(join(root, name, 'statistics', 'rx_bytes'), `${rx}\n`);
    writeFileSync(join(root, name, 'statistics', 'tx_bytes'), `${tx}\n`);
  };

  it("sum a VM's taps from the guest's side (a tap receives what the guest sends)", async () => {
    tap('nfa', 100, 5000);
    tap('nfb', 20, 30);
    expect(await tapCounters(['nfa', 'nfb'], root)).toEqual({ rx: 5030, tx: 120 });
    // a tap gone (the VM stopping) is left out; none there: no figure
    expect(await tapCounters(['nfa', 'gone'], root)).toEqual({ rx: 5000, tx: 100 });
    expect(await tapCounters(['gone'], root)).toBeNull();
  });
});
