/**
 * Host shutdown: every guest this node runs is asked to shut down before the host powers off, the way
 * ESXi's system shutdown and Proxmox's "shutdown timeout" do it, instead of QEMU being killed under it.
 *
 * It works from the node's own run dirs alone (DATA_DIR/node/vms/ID: qemu.pid, qmp.sock, qga.sock,
 * spec.json; the same records `serve` re-attaches with), so it needs neither the API nor etcd: the
 * appliance's ::shutdown script runs it after `neuroflow serve` has stopped. All guests at once: the
 * guest agent's guest-shutdown when an agent answers (then, if the guest is still up after a grace
 * period, also the ACPI power button), else the ACPI power button (system_powerdown); a paused guest is
 * resumed first (it cannot see either). Guests still running at the deadline are forced off (QMP quit,
 * then SIGKILL).
 *
 * It changes no desired state: nothing is written to etcd, and the node's journal is left as it is.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NfError, toNfError } from '../errors';
import { pidAlive, procCmdline, readPidfile } from '../util/proc';
import { waitFor } from '../util/wait';
import { runPaths } from '../vmm/qemu/cmdline';
import { QemuDriver } from '../vmm/qemu/driver';
import { QgaClient } from '../vmm/qemu/qga/client';
import type { ExitInfo, VmInstance, VmRunSpec } from '../vmm/types';

const VM_ID = /^[0-9a-f-]{36}$/;
/** How long resuming a paused guest may take before the shutdown request goes ahead anyway. */
const WAKE_TIMEOUT_MS = 5000;

/** A QEMU process of this node, found through its run dir. */
export interface RunningVm {
  id: string;
  /** From spec.json; the id when that is unreadable. */
  name: string;
  pid: number;
  runDir: string;
  /** The VM has the guest agent channel (spec.json `agent`). */
  agent: boolean;
}

export interface ProcessProbe {
  alive(pid: number): boolean;
  cmdline(pid: number): string[] | undefined;
}

const realProbe: ProcessProbe = { alive: pidAlive, cmdline: procCmdline };

/**
 * The VMs whose QEMU runs now: a live pidfile whose process has the VM's id in its argv (a pid reused
 * after a reboot is not taken for the VM), as `serve` checks when it re-attaches.
 */
export function findRunningVms(runRoot: string, probe: ProcessProbe = realProbe): RunningVm[] {
  let ids: string[];
  try {
    ids = readdirSync(runRoot).filter((id) => VM_ID.test(id));
  } catch {
    return [];
  }
  const out: RunningVm[] = [];
  for (const id of ids.sort()) {
    const runDir = join(runRoot, id);
    const pid = readPidfile(runPaths(runDir).pidfile);
    if (!pid || !probe.alive(pid) || !(probe.cmdline(pid) ?? []).includes(id)) continue;
    let spec: Partial<VmRunSpec> = {};
    try {
      spec = JSON.parse(readFileSync(join(runDir, 'spec.json'), 'utf8')) as Partial<VmRunSpec>;
    } catch {}
    out.push({
      id,
      name: typeof spec.name === 'string' && spec.name ? spec.name : id,
      pid,
      runDir,
      agent: spec.agent !== false,
    });
  }
  return out;
}

/** What the shutdown drives for one VM; the real one is QMP + the guest agent socket. */
export interface GuestControl {
  readonly vm: RunningVm;
  /** Why the QEMU monitor cannot be used (it does not answer); undefined when it can. */
  readonly monitorProblem?: string;
  /** Resolves once QEMU is gone; `clean` when the guest shut down (not a crash). */
  readonly exited: Promise<ExitInfo>;
  /** Resumes a paused guest (a paused guest sees neither its agent nor the power button). */
  wake(): Promise<void>;
  /** Asks the guest agent to power off; false when no agent answered. */
  askAgent(): Promise<boolean>;
  /** The ACPI power button (QMP system_powerdown). */
  powerButton(): Promise<void>;
  /** Ends QEMU now (QMP quit, SIGKILL if that does not do it); throws if the process is still there. */
  forceOff(): Promise<void>;
  /** Lets go of the monitor and agent connections. */
  close(): void;
}

export type ShutdownOutcome = 'clean' | 'forced' | 'exited' | 'failed';
export type ShutdownStep = 'agent' | 'acpi';

export interface VmShutdownResult {
  id: string;
  name: string;
  pid: number;
  outcome: ShutdownOutcome;
  /** What the guest was asked, in order. */
  asked: ShutdownStep[];
  elapsedMs: number;
  /** Why it was forced or failed, or what went wrong on the way. */
  detail?: string;
}

export interface ShutdownOptions {
  /** Overall: every guest gets this long from the start, then it is forced off. */
  timeoutMs: number;
  /**
   * How long a guest whose agent took the request gets before the power button is pressed too (an agent
   * may accept and still fail). Default: 15 s, at most half the timeout.
   */
  agentGraceMs?: number;
  /** Called as each VM is done, in the order they finish. */
  onResult?: (r: VmShutdownResult) => void;
}

/** Waits for a promise up to `ms`; its value, or undefined at the deadline. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: Timer | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, ms));
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const message = (err: unknown) => toNfError(err).message;

/** Shuts the guests down in parallel (see the top of this file); one result per guest. */
export async function shutdownGuests(
  guests: GuestControl[],
  opts: ShutdownOptions,
): Promise<VmShutdownResult[]> {
  // Monotonic: a clock stepped during the shutdown changes no guest's time.
  const start = performance.now();
  const deadline = start + opts.timeoutMs;
  const grace = opts.agentGraceMs ?? Math.min(15_000, opts.timeoutMs / 2);
  return Promise.all(
    guests.map(async (g) => {
      const r = await shutdownOne(g, start, deadline, grace).finally(() => g.close());
      opts.onResult?.(r);
      return r;
    }),
  );
}

async function shutdownOne(
  g: GuestControl,
  start: number,
  deadline: number,
  graceMs: number,
): Promise<VmShutdownResult> {
  const asked: ShutdownStep[] = [];
  const problems: string[] = [];
  const left = () => Math.max(0, deadline - performance.now());
  const result = (outcome: ShutdownOutcome, detail?: string): VmShutdownResult => ({
    id: g.vm.id,
    name: g.vm.name,
    pid: g.vm.pid,
    outcome,
    asked,
    elapsedMs: Math.round(performance.now() - start),
    ...(detail ? { detail } : {}),
  });
  // Every step is bounded by the deadline: a monitor or agent that hangs must not hold the host.
  const step = async (what: string, fn: () => Promise<unknown>, capMs = Infinity): Promise<boolean> => {
    try {
      const done = await within(
        fn().then(() => true),
        Math.min(left(), capMs),
      );
      if (done === undefined) problems.push(`${what}: no answer in time`);
      return done === true;
    } catch (err) {
      problems.push(`${what}: ${message(err)}`);
      return false;
    }
  };

  if (deadline <= start) {
    try {
      await g.forceOff();
      return result('forced', 'a timeout of 0 forces every VM off at once');
    } catch (err) {
      return result('failed', `forcing it off failed: ${message(err)}`);
    }
  }
  if (g.monitorProblem) problems.push(g.monitorProblem);
  // A monitor that hangs here must not use up the guest's time before it is asked at all.
  else await step('resume', () => g.wake(), WAKE_TIMEOUT_MS);
  if (g.vm.agent && (await within(g.askAgent(), left()).catch(() => false))) {
    asked.push('agent');
    if (!g.monitorProblem && (await within(g.exited, Math.min(graceMs, left()))) === undefined) {
      if (await step('ACPI power button', () => g.powerButton())) asked.push('acpi');
    }
  } else if (!g.monitorProblem) {
    if (await step('ACPI power button', () => g.powerButton())) asked.push('acpi');
  }
  // Nothing reached the guest: waiting cannot help.
  const info = await within(g.exited, asked.length > 0 ? left() : 0);
  if (info) {
    return info.clean
      ? result('clean')
      : result('exited', info.reason ?? 'QEMU exited without a guest shutdown');
  }
  const why =
    asked.length === 0
      ? `nothing could ask the guest to shut down (${problems.join('; ') || 'no agent, no monitor'})`
      : `still running at the deadline${problems.length ? ` (${problems.join('; ')})` : ''}`;
  try {
    await g.forceOff();
    return result('forced', why);
  } catch (err) {
    return result('failed', `${why}; forcing it off failed: ${message(err)}`);
  }
}

const STEP_TEXT: Record<ShutdownStep, string> = { agent: 'guest agent', acpi: 'ACPI power button' };

/** One line per VM for the console (the shutdown script prefixes it): "vm NAME: clean|forced|...". */
export function formatResult(r: VmShutdownResult): string {
  const secs = `${(r.elapsedMs / 1000).toFixed(1)} s`;
  const how = r.asked.map((s) => STEP_TEXT[s]).join(', then ');
  switch (r.outcome) {
    case 'clean':
      return `vm ${r.name}: clean, shut down in ${secs} (${how || 'on its own'})`;
    case 'forced':
      return `vm ${r.name}: forced off after ${secs}${how ? ` (asked: ${how})` : ''}: ${r.detail}`;
    case 'exited':
      return `vm ${r.name}: QEMU exited without a guest shutdown after ${secs}: ${oneLine(r.detail)}`;
    case 'failed':
      return `vm ${r.name}: FAILED, QEMU pid ${r.pid} may still run: ${r.detail}`;
  }
}

export function formatSummary(results: VmShutdownResult[]): string {
  const count = (o: ShutdownOutcome) => results.filter((r) => r.outcome === o).length;
  const parts = [`${count('clean')} clean`, `${count('forced')} forced`];
  if (count('exited')) parts.push(`${count('exited')} exited on their own`);
  if (count('failed')) parts.push(`${count('failed')} FAILED`);
  return `VMs stopped: ${parts.join(', ')}`;
}

const oneLine = (s?: string) => (s ?? '').replace(/\s*\n\s*/g, ' | ');

/** The real control of one VM: its QEMU monitor (re-attached as `serve` does) and its agent socket. */
class QemuGuest implements GuestControl {
  readonly exited: Promise<ExitInfo>;
  private readonly agentClient: QgaClient;
  private closed = false;

  constructor(
    readonly vm: RunningVm,
    private readonly instance: VmInstance | undefined,
    readonly monitorProblem?: string,
  ) {
    // 2 s for the agent to answer guest-sync: a guest without a running agent must not delay its
    // power button much.
    this.agentClient = new QgaClient(runPaths(vm.runDir).qga, 2000);
    this.exited = instance ? instance.exited : this.pollExit();
  }

  private async pollExit(): Promise<ExitInfo> {
    while (!this.closed && pidAlive(this.vm.pid)) await Bun.sleep(200);
    return {
      clean: false,
      reason: 'QEMU exited, but its monitor did not answer, so whether the guest shut down is unknown',
    };
  }

  async wake(): Promise<void> {
    if (this.instance && (await this.instance.state()) === 'paused') await this.instance.resume();
  }

  async askAgent(): Promise<boolean> {
    try {
      // qemu-ga never answers guest-shutdown on success; agent-rs does: do not wait for a reply.
      await this.agentClient.execute(
        'guest-shutdown',
        { mode: 'powerdown' },
        { noReply: true, timeoutMs: 4000 },
      );
      // The connection stays open until close(): QEMU may drop what was sent on a connection that closes
      // before the guest has read it.
      return true;
    } catch {
      this.agentClient.close();
      return false;
    }
  }

  async powerButton(): Promise<void> {
    if (!this.instance) throw new NfError('unavailable', this.monitorProblem ?? 'no QEMU monitor');
    await this.instance.powerdown();
  }

  async forceOff(): Promise<void> {
    const pid = this.vm.pid;
    if (this.instance) await this.instance.kill();
    else if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    await waitFor(() => !pidAlive(pid), {
      timeoutMs: 15_000,
      what: `QEMU pid ${pid} to exit after SIGKILL`,
    }).catch(() => {
      if (pidAlive(pid)) throw new NfError('timeout', `QEMU pid ${pid} is still there 15 s after SIGKILL`);
    });
  }

  close(): void {
    this.closed = true;
    this.agentClient.close();
    // The process is gone (or failed to go): the monitor connection is of no more use.
    this.instance?.detach();
  }
}

/** Connects to every running VM's monitor (in parallel); a monitor that does not answer is noted. */
export async function attachGuests(vms: RunningVm[]): Promise<GuestControl[]> {
  // attach() only reads the run dir; the binary and accelerator are for start().
  const driver = new QemuDriver({ binary: 'qemu-system-x86_64', accel: 'tcg' });
  const attached = await Promise.all(
    vms.map(async (vm): Promise<GuestControl | undefined> => {
      try {
        const instance = await driver.attach(vm.runDir, vm.id);
        if (!instance) return undefined; // gone in the meantime
        return new QemuGuest(vm, instance);
      } catch (err) {
        if (!pidAlive(vm.pid)) return undefined;
        return new QemuGuest(vm, undefined, `its QEMU monitor does not answer (${message(err)})`);
      }
    }),
  );
  return attached.filter((g): g is GuestControl => g !== undefined);
}

/** The pid of a `neuroflow serve` that owns the data dir (its serve.pid), if one runs. */
export function serveOwner(dataDir: string, probe: ProcessProbe = realProbe): number | undefined {
  const pid = readPidfile(join(dataDir, 'serve.pid'));
  if (!pid || pid === process.pid || !probe.alive(pid)) return undefined;
  // `neuroflow serve`, not `neuroflow appliance serve` (a pid reused since would not own the data dir).
  const argv = probe.cmdline(pid) ?? [];
  return argv.includes('serve') && !argv.includes('appliance') ? pid : undefined;
}
