import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { NfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { createLogger } from '../util/log';
import { pidAlive, procCmdline, readPidfile } from '../util/proc';

const log = createLogger('nat');

/**
 * The `nat` network: outbound access for guests, and nothing on the host. Each NIC gets its own `passt`
 * (userspace NAT: it turns the guest's connections into sockets of its own) running as an unprivileged
 * uid of its own. An nftables rule rejects every packet that uid sends to an address of this host
 * (loopback, the host's own IPs), so a guest reaches no host port, whichever address it tries. passt's
 * gateway (10.0.2.2) is not mapped to the host either (`--no-map-gw`).
 *
 * QEMU listens on a unix socket in the VM's run dir (root only); the node connects to it and hands the
 * connected socket to passt as fd 3 (`--fd`), so passt needs no path it could be reached at, and only
 * this QEMU can talk to it. passt ends when QEMU closes the connection (`--one-off`).
 */
export interface NatOptions {
  passtBinary?: string;
  nftBinary?: string;
  /** The uid (and gid) passt runs as; nothing else may use it. */
  uid?: number;
}

/** Guest-side addresses, as QEMU's user networking had them (guests and tests expect 10.0.2.15). */
const GUEST = { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2' };
export const NAT_TABLE = 'neuroflow_nat';
export const DEFAULT_NAT_UID = 64923;

export class NatNetwork {
  readonly uid: number;
  private readonly passt: string;
  private readonly nft: string;

  constructor(opts: NatOptions = {}) {
    this.uid = opts.uid ?? Number(process.env.NEUROFLOW_NAT_UID ?? DEFAULT_NAT_UID);
    this.passt = opts.passtBinary ?? process.env.NEUROFLOW_PASST ?? '/usr/bin/passt';
    this.nft = opts.nftBinary ?? process.env.NEUROFLOW_NFT ?? '/usr/sbin/nft';
    if (!Number.isInteger(this.uid) || this.uid <= 0)
      throw new Error(`the nat network's uid must be a positive integer, not ${this.uid}`);
  }

  /** The nftables ruleset that keeps passt's uid off every host address; applied atomically. */
  ruleset(): string {
    const u = this.uid;
    return [
      // add + delete + define: replaces the table whether or not it existed, in one transaction
      `table inet ${NAT_TABLE}`,
      `delete table inet ${NAT_TABLE}`,
      `table inet ${NAT_TABLE} {`,
      '  chain output {',
      '    type filter hook output priority filter; policy accept;',
      `    meta skuid ${u} meta l4proto tcp fib daddr type local reject with tcp reset`,
      `    meta skuid ${u} fib daddr type local reject`,
      `    meta skuid ${u} ip daddr { 0.0.0.0/8, 127.0.0.0/8 } reject`,
      `    meta skuid ${u} ip6 daddr { ::, ::1 } reject`,
      '  }',
      '}',
      '',
    ].join('\n');
  }

  /**
   * Installs (or re-installs) the firewall. Called before every start of a VM with a nat NIC: a flushed
   * ruleset must not leave guests open to the host. Fails closed with `unavailable`.
   */
  async ensureFirewall(): Promise<void> {
    const { code, output } = await run(this.nft, ['-f', '-'], this.ruleset());
    if (code !== 0)
      throw new NfError(
        'unavailable',
        `cannot install the nat network's firewall (nftables): ${output.trim() || `exit ${code}`}; ` +
          'VMs on a nat network do not start without it (install the nftables package; run serve as root)',
      );
  }

  /**
   * Connects to QEMU's listening socket for one NIC and starts passt on that connection. Returns passt's
   * pid (also written beside the socket). QEMU must be listening (it is started paused, so no frame is
   * lost before passt reads).
   */
  async attach(socketPath: string, runDir: string, nicId: string): Promise<number> {
    if (!existsSync(this.passt))
      throw new NfError(
        'unavailable',
        `passt is not installed (${this.passt}); the nat network needs it (Debian package passt)`,
      );
    const pidfile = passtPidfile(runDir, nicId);
    stopPasst(pidfile);
    const sock = await connect(socketPath);
    const logFd = openSync(join(runDir, `passt-${nicId}.log`), 'w', 0o600);
    try {
      const args = [
        '--foreground',
        '--one-off',
        '--stderr',
        '--fd',
        '3',
        '--runas',
        `${this.uid}:${this.uid}`,
        '--address',
        GUEST.address,
        '--netmask',
        String(GUEST.prefix),
        '--gateway',
        GUEST.gateway,
        '--no-map-gw',
      ];
      const child = spawn(this.passt, args, {
        detached: true,
        stdio: ['ignore', logFd, logFd, sock],
        // named after its VM and NIC in ps (and checked before a kill: pids are reused)
        argv0: `passt-${runDir.split('/').at(-1)}-${nicId}`,
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (e) =>
          reject(new NfError('unavailable', `cannot run passt for NIC ${nicId}: ${e.message}`)),
        );
      });
      child.unref();
      await writeFileAtomic(pidfile, `${child.pid}\n`, 0o600);
      log.debug('passt started', { nic: nicId, pid: child.pid });
      return child.pid!;
    } finally {
      closeSync(logFd);
      sock.destroy(); // passt holds its own copy of the connection
    }
  }

  /** Stops the passt processes of a VM's NICs (after a failed start; passt ends by itself otherwise). */
  stop(runDir: string, nicIds: string[]): void {
    for (const id of nicIds) stopPasst(passtPidfile(runDir, id));
  }
}

export function passtPidfile(runDir: string, nicId: string): string {
  return join(runDir, `passt-${nicId}.pid`);
}

function stopPasst(pidfile: string): void {
  const pid = readPidfile(pidfile);
  if (!pid || !pidAlive(pid)) return;
  // Only a passt: the pid may have been reused since.
  if (!(procCmdline(pid) ?? []).some((a) => a.startsWith('passt'))) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {}
}

/**
 * Connects to a NIC's socket. QEMU 7.2 starts listening on a stream netdev in the background, so the
 * socket may appear a moment after QMP answers (seen missing in CI, under load): retry for a few seconds.
 */
async function connect(path: string, timeoutMs = 10_000): Promise<net.Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await connectOnce(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() >= deadline)
        throw new NfError(
          'hypervisor_error',
          `cannot connect to QEMU's network socket ${path}: ${(err as Error).message}`,
        );
      await Bun.sleep(50);
    }
  }
}

function connectOnce(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.pause();
      resolve(s);
    });
    s.once('error', reject);
  });
}

function run(cmd: string, args: string[], input: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b) => (output += b));
    child.stderr.on('data', (b) => (output += b));
    child.once('error', (e) => resolve({ code: -1, output: e.message }));
    child.once('close', (code) => resolve({ code: code ?? -1, output }));
    child.stdin.end(input);
  });
}
