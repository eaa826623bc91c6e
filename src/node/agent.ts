import { NfError } from '../errors';
import { createLogger } from '../util/log';
import { QgaClient } from '../vmm/qemu/qga/client';

const log = createLogger('agent');

export interface AgentState {
  status: 'connected' | 'absent' | 'disabled';
  /** From guest-info, e.g. "0.1.0" for agent-rs or "7.2.22" for qemu-ga. */
  version?: string;
  /** Whether it answers our own extension commands (agent-rs) or only QGA's. */
  flavour?: 'neuroflow' | 'qemu-ga';
  commands?: string[];
}

interface GuestInfo {
  version: string;
  supported_commands: { name: string; enabled: boolean }[];
}

/**
 * Watches one VM's guest agent: probes it until it answers, keeps its version and command list, and
 * notices when it goes away (guest reboot, agent stopped). A probe is woken by QEMU's VSERPORT_CHANGE
 * event and otherwise runs on a slow timer.
 */
export class AgentTracker {
  readonly client: QgaClient;
  private state: AgentState = { status: 'absent' };
  private timer?: Timer;
  private probing = false;
  private stopped = false;

  constructor(
    readonly vmId: string,
    socketPath: string,
    private readonly onChange: () => void,
  ) {
    this.client = new QgaClient(socketPath, 1500);
  }

  get current(): AgentState {
    return this.state;
  }

  start(): void {
    this.schedule(500);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.client.close();
  }

  /** The guest opened or closed its end of the channel. */
  portChanged(open: boolean): void {
    if (!open) {
      this.client.close(); // whatever was in flight belongs to the agent that went away
      this.set({ status: 'absent' });
    }
    this.schedule(open ? 200 : 1000);
  }

  async execute<T>(
    command: string,
    args?: Record<string, unknown>,
    opts?: { timeoutMs?: number; noReply?: boolean },
  ): Promise<T> {
    try {
      const out = await this.client.execute<T>(command, args, opts);
      if (this.state.status !== 'connected') this.schedule(0);
      return out;
    } catch (err) {
      if (NfError.isCode(err, 'unavailable')) this.set({ status: 'absent' });
      throw err;
    }
  }

  supports(command: string): boolean {
    return this.state.commands?.includes(command) ?? false;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.probe(), ms);
  }

  private async probe(): Promise<void> {
    if (this.probing || this.stopped) return;
    this.probing = true;
    try {
      const info = await this.client.execute<GuestInfo>('guest-info', undefined, { timeoutMs: 3000 });
      const commands = info.supported_commands.filter((c) => c.enabled).map((c) => c.name);
      if (this.state.status !== 'connected') await this.thawLeftovers(commands);
      this.set({
        status: 'connected',
        version: info.version,
        flavour: commands.includes('neuroflow-get-meminfo') ? 'neuroflow' : 'qemu-ga',
        commands,
      });
    } catch (err) {
      if (this.state.status === 'connected')
        log.info('guest agent went away', { id: this.vmId, err: (err as Error).message });
      this.set({ status: 'absent' });
    } finally {
      this.probing = false;
      // Connected: a slow liveness check. Absent: keep looking, the guest may still be booting.
      this.schedule(this.state.status === 'connected' ? 10_000 : 3000);
    }
  }

  /**
   * A guest found frozen when its agent (re)appears was frozen by a daemon or agent that died before
   * thawing (a freeze only lasts for the length of a snapshot): thaw it, or every writer in it hangs.
   */
  private async thawLeftovers(commands: string[]): Promise<void> {
    if (!commands.includes('guest-fsfreeze-status')) return;
    const status = await this.client.execute<string>('guest-fsfreeze-status', undefined, { timeoutMs: 3000 });
    if (status !== 'frozen') return;
    log.warn('guest found frozen with nobody to thaw it; thawing', { id: this.vmId });
    await this.client.execute('guest-fsfreeze-thaw', undefined, { timeoutMs: 60_000 });
  }

  private set(next: AgentState): void {
    const changed = next.status !== this.state.status || next.version !== this.state.version;
    this.state = next;
    if (changed) this.onChange();
  }
}
