import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deferred } from '../util/wait';
import type { ExitInfo } from '../vmm/types';
import {
  findRunningVms,
  formatResult,
  formatSummary,
  type GuestControl,
  type RunningVm,
  serveOwner,
  shutdownGuests,
  type VmShutdownResult,
} from './host-shutdown';

interface FakeBehaviour {
  agent?: boolean;
  /** The agent answers and the guest powers off on its request. */
  agentWorks?: boolean;
  /** The agent takes the request but nothing happens. */
  agentIgnores?: boolean;
  /** The guest powers off on the power button. */
  acpiWorks?: boolean;
  monitorProblem?: string;
  paused?: boolean;
  /** forceOff leaves the process running. */
  unkillable?: boolean;
  /** QEMU dies on its own as soon as it is asked anything. */
  crashes?: boolean;
}

/** A guest whose reactions are scripted; it records what was done to it. */
class FakeGuest implements GuestControl {
  readonly vm: RunningVm;
  readonly calls: string[] = [];
  private readonly gone = deferred<ExitInfo>();
  readonly exited = this.gone.promise;
  readonly monitorProblem?: string;
  private paused: boolean;

  constructor(
    name: string,
    private readonly b: FakeBehaviour,
  ) {
    this.vm = { id: `id-${name}`, name, pid: 1000, runDir: '/nonexistent', agent: b.agent ?? true };
    this.monitorProblem = b.monitorProblem;
    this.paused = b.paused ?? false;
  }

  private powerOff(): void {
    // The guest takes a moment, as a real one does.
    setTimeout(() => this.gone.resolve({ clean: true }), 5);
  }

  async wake(): Promise<void> {
    this.calls.push('wake');
    this.paused = false;
  }

  async askAgent(): Promise<boolean> {
    this.calls.push('agent');
    if (this.b.crashes) {
      this.gone.resolve({ clean: false, reason: 'qemu: assertion failed' });
      return false;
    }
    if (this.paused || !this.b.agentWorks) return this.b.agentIgnores === true && !this.paused;
    this.powerOff();
    return true;
  }

  async powerButton(): Promise<void> {
    this.calls.push('acpi');
    if (this.monitorProblem) throw new Error(this.monitorProblem);
    if (this.b.acpiWorks && !this.paused) this.powerOff();
  }

  async forceOff(): Promise<void> {
    this.calls.push('force');
    if (this.b.unkillable) throw new Error('still there after SIGKILL');
    this.gone.resolve({ clean: true });
  }

  close(): void {
    this.calls.push('close');
  }
}

describe('shutdownGuests', () => {
  it('uses the agent when one answers, else the power button; all in parallel', async () => {
    const viaAgent = new FakeGuest('a', { agentWorks: true, acpiWorks: true });
    const viaAcpi = new FakeGuest('b', { agent: false, acpiWorks: true });
    const noAgentRunning = new FakeGuest('c', { acpiWorks: true });
    const seen: string[] = [];
    const results = await shutdownGuests([viaAgent, viaAcpi, noAgentRunning], {
      timeoutMs: 5000,
      onResult: (r) => seen.push(r.name),
    });
    expect(results.map((r) => [r.name, r.outcome, r.asked])).toEqual([
      ['a', 'clean', ['agent']],
      ['b', 'clean', ['acpi']],
      ['c', 'clean', ['acpi']],
    ]);
    expect(viaAgent.calls).toEqual(['wake', 'agent', 'close']);
    expect(viaAcpi.calls).toEqual(['wake', 'acpi', 'close']); // agent: false is never asked
    expect(noAgentRunning.calls).toEqual(['wake', 'agent', 'acpi', 'close']);
    expect(seen.sort()).toEqual(['a', 'b', 'c']);
    // Nobody waited for the timeout.
    expect(Math.max(...results.map((r) => r.elapsedMs))).toBeLessThan(2000);
  });

  it('resumes a paused guest before asking it', async () => {
    const g = new FakeGuest('p', { paused: true, agentWorks: true });
    const [r] = await shutdownGuests([g], { timeoutMs: 5000 });
    expect(r).toMatchObject({ outcome: 'clean', asked: ['agent'] });
    expect(g.calls.slice(0, 2)).toEqual(['wake', 'agent']);
  });

  it('presses the power button too when the agent took the request but the guest stays up', async () => {
    const g = new FakeGuest('x', { agentIgnores: true, acpiWorks: true });
    const [r] = await shutdownGuests([g], { timeoutMs: 5000, agentGraceMs: 50 });
    expect(r).toMatchObject({ outcome: 'clean', asked: ['agent', 'acpi'] });
    expect(r!.elapsedMs).toBeGreaterThanOrEqual(45);
  });

  it('forces off a guest that ignores every request, at the deadline and not before', async () => {
    const stubborn = new FakeGuest('s', { agentIgnores: true });
    const quick = new FakeGuest('q', { agent: false, acpiWorks: true });
    const results = await shutdownGuests([stubborn, quick], { timeoutMs: 300, agentGraceMs: 50 });
    const [s, q] = results;
    expect(s).toMatchObject({ outcome: 'forced', asked: ['agent', 'acpi'] });
    expect(s!.detail).toMatch(/still running at the deadline/);
    expect(s!.elapsedMs).toBeGreaterThanOrEqual(290);
    expect(stubborn.calls).toEqual(['wake', 'agent', 'acpi', 'force', 'close']);
    expect(q).toMatchObject({ outcome: 'clean' });
    expect(q!.elapsedMs).toBeLessThan(290);
  });

  it('forces off at once a VM whose monitor does not answer and that has no agent', async () => {
    const g = new FakeGuest('w', { agent: false, monitorProblem: 'its QEMU monitor does not answer' });
    const [r] = await shutdownGuests([g], { timeoutMs: 60_000 });
    expect(r).toMatchObject({ outcome: 'forced', asked: [] });
    expect(r!.detail).toMatch(/nothing could ask the guest.*monitor does not answer/);
    expect(r!.elapsedMs).toBeLessThan(1000);
    expect(g.calls).toEqual(['force', 'close']); // neither wake nor the power button without a monitor
  });

  it('forces every VM off at once with a timeout of 0', async () => {
    const g = new FakeGuest('z', { agentWorks: true, acpiWorks: true });
    const [r] = await shutdownGuests([g], { timeoutMs: 0 });
    expect(r).toMatchObject({
      outcome: 'forced',
      asked: [],
      detail: 'a timeout of 0 forces every VM off at once',
    });
    expect(g.calls).toEqual(['force', 'close']);
  });

  it('still uses the agent of a VM whose monitor does not answer', async () => {
    const g = new FakeGuest('w', { agentWorks: true, monitorProblem: 'its QEMU monitor does not answer' });
    const [r] = await shutdownGuests([g], { timeoutMs: 5000 });
    expect(r).toMatchObject({ outcome: 'clean', asked: ['agent'] });
  });

  it('reports a QEMU that died on its own, and one that cannot be killed', async () => {
    const crash = new FakeGuest('c', { crashes: true });
    const stuck = new FakeGuest('k', { agent: false, unkillable: true });
    const [c, k] = await shutdownGuests([crash, stuck], { timeoutMs: 100 });
    expect(c).toMatchObject({ outcome: 'exited', detail: 'qemu: assertion failed' });
    expect(k).toMatchObject({ outcome: 'failed' });
    expect(k!.detail).toMatch(/forcing it off failed: still there after SIGKILL/);
  });
});

describe('report lines', () => {
  const base: VmShutdownResult = {
    id: 'i',
    name: 'web1',
    pid: 42,
    outcome: 'clean',
    asked: [],
    elapsedMs: 4210,
  };
  it('says per VM what happened', () => {
    expect(formatResult({ ...base, asked: ['agent'] })).toBe(
      'vm web1: clean, shut down in 4.2 s (guest agent)',
    );
    expect(formatResult(base)).toBe('vm web1: clean, shut down in 4.2 s (on its own)');
    expect(formatResult({ ...base, asked: ['agent', 'acpi'] })).toBe(
      'vm web1: clean, shut down in 4.2 s (guest agent, then ACPI power button)',
    );
    expect(
      formatResult({
        ...base,
        outcome: 'forced',
        asked: ['acpi'],
        elapsedMs: 120_000,
        detail: 'still running at the deadline',
      }),
    ).toBe('vm web1: forced off after 120.0 s (asked: ACPI power button): still running at the deadline');
    expect(formatResult({ ...base, outcome: 'exited', detail: 'line 1\nline 2' })).toBe(
      'vm web1: QEMU exited without a guest shutdown after 4.2 s: line 1 | line 2',
    );
    expect(formatResult({ ...base, outcome: 'failed', detail: 'x' })).toMatch(
      /^vm web1: FAILED, QEMU pid 42/,
    );
  });
  it('sums them up', () => {
    expect(formatSummary([base, base, { ...base, outcome: 'forced' }])).toBe(
      'VMs stopped: 2 clean, 1 forced',
    );
    expect(formatSummary([{ ...base, outcome: 'failed' }])).toBe('VMs stopped: 0 clean, 0 forced, 1 FAILED');
  });
});

describe('findRunningVms and serveOwner', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  const A = '11111111-1111-4111-8111-111111111111';
  const B = '22222222-2222-4222-8222-222222222222';
  const C = '33333333-3333-4333-8333-333333333333';

  it('takes a pidfile only when that process is alive and has the VM id in its argv', () => {
    dir = mkdtempSync(join(tmpdir(), 'nf-hs-'));
    const vm = (id: string, pid: number, spec?: object) => {
      mkdirSync(join(dir!, id));
      writeFileSync(join(dir!, id, 'qemu.pid'), `${pid}\n`);
      if (spec) writeFileSync(join(dir!, id, 'spec.json'), JSON.stringify(spec));
    };
    vm(A, 101, { name: 'web1', agent: true });
    vm(B, 102, { name: 'db1', agent: false });
    vm(C, 103); // pid reused by another program after a reboot
    mkdirSync(join(dir, 'not-a-vm'));
    const procs = new Map<number, string[]>([
      [101, ['qemu-system-x86_64', '-uuid', A]],
      [102, ['qemu-system-x86_64', '-uuid', B]],
      [103, ['sshd']],
    ]);
    const probe = { alive: (p: number) => procs.has(p) && p !== 102, cmdline: (p: number) => procs.get(p) };
    expect(findRunningVms(dir, probe)).toEqual([
      { id: A, name: 'web1', pid: 101, runDir: join(dir, A), agent: true },
    ]);
    procs.set(104, ['qemu-system-x86_64', C]);
    writeFileSync(join(dir, C, 'qemu.pid'), '104\n');
    const all = findRunningVms(dir, { ...probe, alive: (p) => procs.has(p) });
    expect(all.map((v) => [v.name, v.agent])).toEqual([
      ['web1', true],
      ['db1', false],
      [C, true], // no spec.json: named by its id; the agent socket is tried anyway
    ]);
    expect(findRunningVms(join(dir, 'missing'))).toEqual([]);
  });

  it('sees a live neuroflow serve owning the data dir', () => {
    dir = mkdtempSync(join(tmpdir(), 'nf-hs-'));
    expect(serveOwner(dir)).toBeUndefined();
    writeFileSync(join(dir, 'serve.pid'), '77\n');
    const probe = (argv: string[]) => ({ alive: () => true, cmdline: () => argv });
    expect(serveOwner(dir, probe(['/usr/bin/neuroflow', 'serve', '--data-dir', dir]))).toBe(77);
    expect(serveOwner(dir, probe(['/bin/sh']))).toBeUndefined();
    expect(serveOwner(dir, { alive: () => false, cmdline: () => ['serve'] })).toBeUndefined();
  });
});
