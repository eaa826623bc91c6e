import { NfError } from '../errors';
import type { NodeApi } from '../node/types';
import { waitFor } from '../util/wait';
import type { VmService } from './vms';

export interface ExecRequest {
  command: string[];
  input?: string;
  inputBase64?: string;
  env?: string[];
  timeoutSec?: number;
  /** Return stdout/stderr base64-encoded (binary output) instead of as text. */
  binary?: boolean;
}

export interface ExecResult {
  exitCode: number | null;
  signal?: number;
  stdout?: string;
  stderr?: string;
  stdoutBase64?: string;
  stderrBase64?: string;
  truncated: boolean;
}

interface ExecStatus {
  exited: boolean;
  exitcode?: number;
  signal?: number;
  'out-data'?: string;
  'err-data'?: string;
  'out-truncated'?: boolean;
  'err-truncated'?: boolean;
}

/**
 * What the administrator asks of a guest through its agent: facts about the OS, running a program,
 * resetting a password, freezing file systems. Commands a stock qemu-ga lacks are left out (null), not
 * faked.
 */
export class GuestService {
  constructor(
    private readonly vms: VmService,
    private readonly node: NodeApi,
  ) {}

  private async running(ref: string): Promise<string> {
    const vm = await this.vms.get(ref);
    if (vm.state !== 'running')
      throw new NfError('invalid_state', `VM "${vm.name}" is ${vm.state}; the guest agent needs it running`);
    return vm.id;
  }

  /** A command the agent may not have: null instead of an error. */
  private async optional<T>(id: string, command: string, args?: Record<string, unknown>): Promise<T | null> {
    try {
      return await this.node.guestCommand<T>(id, command, args);
    } catch (err) {
      if (NfError.isCode(err, 'not_implemented') || NfError.isCode(err, 'guest_error')) return null;
      throw err;
    }
  }

  async info(ref: string): Promise<Record<string, unknown>> {
    const id = await this.running(ref);
    const cmd = <T>(c: string) => this.node.guestCommand<T>(id, c);
    const os = await cmd<Record<string, unknown>>('guest-get-osinfo');
    const hostname = (await cmd<{ 'host-name': string }>('guest-get-host-name'))['host-name'];
    const ifaces = (await cmd<Iface[]>('guest-network-get-interfaces')) ?? [];
    const fs = (await this.optional<Fs[]>(id, 'guest-get-fsinfo')) ?? [];
    const mem = await this.optional<Record<string, number>>(id, 'neuroflow-get-meminfo');
    const uptime = await this.optional<{ 'uptime-seconds': number }>(id, 'neuroflow-get-uptime');
    const load = await this.optional<Record<string, number>>(id, 'guest-get-load');
    return {
      agent: this.node.vmStatus(id).agent,
      os,
      hostname,
      ips: ifaces
        .flatMap((i) => (i['ip-addresses'] ?? []).map((a) => a['ip-address']))
        .filter((a) => !a.startsWith('127.') && a !== '::1'),
      interfaces: ifaces.map((i) => ({
        name: i.name,
        mac: i['hardware-address'],
        addresses: (i['ip-addresses'] ?? []).map((a) => `${a['ip-address']}/${a.prefix}`),
      })),
      memory: mem && {
        totalBytes: mem['total-bytes'],
        availableBytes: mem['available-bytes'],
        usedBytes: mem['used-bytes'],
      },
      filesystems: fs.map((f) => ({
        mountpoint: f.mountpoint,
        type: f.type,
        usedBytes: f['used-bytes'] ?? null,
        totalBytes: f['total-bytes'] ?? null,
      })),
      load: load && { load1: load.load1m, load5: load.load5m, load15: load.load15m },
      uptimeSec: uptime ? uptime['uptime-seconds'] : null,
    };
  }

  async exec(ref: string, req: ExecRequest): Promise<ExecResult> {
    const id = await this.running(ref);
    const [path, ...arg] = req.command;
    const args: Record<string, unknown> = { path, arg, 'capture-output': true };
    if (req.env) args.env = req.env;
    if (req.input !== undefined) args['input-data'] = Buffer.from(req.input, 'utf8').toString('base64');
    if (req.inputBase64 !== undefined) args['input-data'] = req.inputBase64;
    const { pid } = await this.node.guestCommand<{ pid: number }>(id, 'guest-exec', args);
    const timeoutMs = (req.timeoutSec ?? 60) * 1000;
    let st: ExecStatus | undefined;
    try {
      st = await waitFor(
        async () => {
          const s = await this.node.guestCommand<ExecStatus>(id, 'guest-exec-status', { pid });
          return s.exited ? s : undefined;
        },
        { timeoutMs, intervalMs: 100, what: `the program (pid ${pid} in the guest) to finish` },
      );
    } catch (err) {
      if (NfError.isCode(err, 'timeout'))
        throw new NfError(
          'timeout',
          `${req.command[0]} still runs in the guest after ${timeoutMs / 1000} s (guest pid ${pid})`,
        );
      throw err;
    }
    const out = Buffer.from(st['out-data'] ?? '', 'base64');
    const errOut = Buffer.from(st['err-data'] ?? '', 'base64');
    const result: ExecResult = {
      exitCode: st.exitcode ?? null,
      truncated: Boolean(st['out-truncated'] || st['err-truncated']),
    };
    if (st.signal !== undefined) result.signal = st.signal;
    if (req.binary) {
      result.stdoutBase64 = out.toString('base64');
      result.stderrBase64 = errOut.toString('base64');
    } else {
      result.stdout = out.toString('utf8');
      result.stderr = errOut.toString('utf8');
    }
    return result;
  }

  /** Round trip of guest-ping through the node, in milliseconds. */
  async ping(ref: string): Promise<{ latencyMs: number }> {
    const id = await this.running(ref);
    const t0 = performance.now();
    await this.node.guestCommand(id, 'guest-ping');
    return { latencyMs: Math.round((performance.now() - t0) * 1000) / 1000 };
  }

  async setPassword(ref: string, username: string, password: string, crypted: boolean): Promise<void> {
    const id = await this.running(ref);
    await this.node.guestCommand(id, 'guest-set-user-password', {
      username,
      password: Buffer.from(password, 'utf8').toString('base64'),
      crypted,
    });
  }

  async freeze(ref: string): Promise<{ frozen: number }> {
    const id = await this.running(ref);
    return {
      frozen: await this.node.guestCommand<number>(id, 'guest-fsfreeze-freeze', undefined, {
        timeoutMs: 60_000,
      }),
    };
  }

  async thaw(ref: string): Promise<{ thawed: number }> {
    const id = await this.running(ref);
    return {
      thawed: await this.node.guestCommand<number>(id, 'guest-fsfreeze-thaw', undefined, {
        timeoutMs: 60_000,
      }),
    };
  }

  async freezeStatus(ref: string): Promise<{ status: string }> {
    const id = await this.running(ref);
    return { status: await this.node.guestCommand<string>(id, 'guest-fsfreeze-status') };
  }
}

interface Iface {
  name: string;
  'hardware-address'?: string;
  'ip-addresses'?: { 'ip-address': string; 'ip-address-type': string; prefix: number }[];
}

interface Fs {
  mountpoint: string;
  type: string;
  'used-bytes'?: number;
  'total-bytes'?: number;
}
