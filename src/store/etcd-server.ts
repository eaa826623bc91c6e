import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CONTROLLER_SAN } from '../cluster/names';
import { NfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { createLogger } from '../util/log';
import { pidAlive, procCmdline, readPidfile } from '../util/proc';
import { waitFor } from '../util/wait';

const log = createLogger('etcd');

/** A member of a cluster's etcd: TLS for clients and peers from the cluster CA, fixed ports on the host's IP. */
export interface EtcdMemberConfig {
  name: string;
  host: string;
  clientPort: number;
  peerPort: number;
  /** name=peerUrl,... as the cluster had it when this member was added. */
  initialCluster: string;
  state: 'new' | 'existing';
  /** PEM file paths: the cluster CA, this host's certificate and key (serving and client). */
  tls: { ca: string; cert: string; key: string };
}

export function memberUrls(host: string, clientPort: number, peerPort: number) {
  const h = host.includes(':') ? `[${host}]` : host;
  return { clientUrl: `https://${h}:${clientPort}`, peerUrl: `https://${h}:${peerPort}` };
}

/**
 * Where the single member of `serve --dev` listens: unix sockets in DATA_DIR/etcd (0700, root), never a
 * TCP port, so no local user and no guest (QEMU's user networking once mapped 10.0.2.2 to the host's
 * loopback) can reach desired state. etcd wants `host:port` even for unix URLs and makes the socket file
 * with that name relative to its working directory, which is the etcd dir.
 */
const DEV_CLIENT_URL = 'unix://client:2379';
const DEV_PEER_URL = 'unix://peer:2380';

/**
 * The embedded etcd: the single member of `serve --dev`, or a cluster member. Like a QEMU process it is
 * started detached with a pidfile, so a daemon killed with -9 finds it again instead of fighting over the
 * data dir lock, and a supervisor restarts it when it dies.
 */
export class EmbeddedEtcd {
  private readonly dir: string;
  private pid?: number;
  private superviseTimer?: Timer;
  private stopping = false;
  private restarts = 0;
  private restarting = false;

  constructor(
    dataDir: string,
    /** A cluster member (TLS, the host's address); without it a loopback single member for --dev. */
    private readonly member?: EtcdMemberConfig,
  ) {
    this.dir = join(dataDir, 'etcd');
  }

  /** What clients dial: the member's https URL, or (dev) the unix socket as a gRPC target. */
  get endpoint(): string {
    if (this.member)
      return memberUrls(this.member.host, this.member.clientPort, this.member.peerPort).clientUrl;
    return `unix://${this.clientSocket}`;
  }

  private get clientSocket(): string {
    return join(this.dir, DEV_CLIENT_URL.slice('unix://'.length));
  }

  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700); // also a dir made by an older version
    if (!this.member && this.clientSocket.length > 100)
      throw new NfError(
        'validation_failed',
        `the data dir path is too long for etcd's unix socket (${this.clientSocket}); use a shorter --data-dir`,
      );
    const existing = this.adoptable();
    if (existing) {
      log.info('adopting running etcd', { pid: existing });
      this.pid = existing;
    } else {
      await this.launch();
    }
    await this.waitHealthy(20_000);
    this.superviseTimer = setInterval(() => void this.supervise(), 1000);
  }

  /** Stops supervising and terminates etcd (graceful daemon shutdown). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.superviseTimer) clearInterval(this.superviseTimer);
    const pid = this.pid;
    if (pid && pidAlive(pid)) {
      process.kill(pid, 'SIGTERM');
      await waitFor(() => !pidAlive(pid), { timeoutMs: 10_000, what: 'etcd to exit' }).catch(() => {
        if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
      });
    }
  }

  /**
   * The etcd of this data dir left running by an earlier daemon, if it listens where we expect. One of an
   * older version that listened on loopback TCP is stopped here, and launched again on the sockets.
   */
  private adoptable(): number | undefined {
    const pid = readPidfile(join(this.dir, 'etcd.pid'));
    if (!pid || !pidAlive(pid)) return undefined;
    const argv = procCmdline(pid) ?? [];
    if (!argv.some((a) => a.includes('etcd')) || !argv.includes(join(this.dir, 'member-data')))
      return undefined;
    if (this.member || argv.includes(DEV_CLIENT_URL)) return pid;
    log.warn('stopping an etcd that listens on TCP (older version); it restarts on a unix socket', { pid });
    process.kill(pid, 'SIGTERM');
    return undefined;
  }

  private memberArgs(m: EtcdMemberConfig): string[] {
    const { clientUrl, peerUrl } = memberUrls(m.host, m.clientPort, m.peerPort);
    const fresh = !existsSync(join(this.dir, 'member-data'));
    return [
      '--name',
      m.name,
      '--data-dir',
      join(this.dir, 'member-data'),
      '--listen-client-urls',
      clientUrl,
      '--advertise-client-urls',
      clientUrl,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      m.initialCluster,
      '--initial-cluster-state',
      fresh ? m.state : 'existing',
      '--client-cert-auth',
      // Only controller certificates (they carry this name) may use etcd: a worker's key is not enough.
      '--client-cert-allowed-hostname',
      CONTROLLER_SAN,
      '--trusted-ca-file',
      m.tls.ca,
      '--cert-file',
      m.tls.cert,
      '--key-file',
      m.tls.key,
      '--peer-client-cert-auth',
      '--peer-cert-allowed-hostname',
      CONTROLLER_SAN,
      '--peer-trusted-ca-file',
      m.tls.ca,
      '--peer-cert-file',
      m.tls.cert,
      '--peer-key-file',
      m.tls.key,
      '--auto-compaction-retention',
      '1h',
      '--quota-backend-bytes',
      String(2 * 1024 ** 3),
      '--log-outputs',
      'stderr',
    ];
  }

  private async launch(): Promise<void> {
    const old = readPidfile(join(this.dir, 'etcd.pid'));
    // An older version's etcd (TCP) is stopping: it holds the data dir lock until it is gone.
    if (old && pidAlive(old) && (procCmdline(old) ?? []).includes(join(this.dir, 'member-data')))
      await waitFor(() => !pidAlive(old), { timeoutMs: 15_000, what: 'the old etcd to exit' });
    if (!this.member) {
      // Sockets of an etcd that died (kill -9) are left behind and would fail the listen.
      for (const url of [DEV_CLIENT_URL, DEV_PEER_URL])
        rmSync(join(this.dir, url.slice('unix://'.length)), { force: true });
    }
    const args = this.member
      ? this.memberArgs(this.member)
      : [
          '--name',
          'neuroflow',
          '--data-dir',
          join(this.dir, 'member-data'),
          '--listen-client-urls',
          DEV_CLIENT_URL,
          '--advertise-client-urls',
          DEV_CLIENT_URL,
          '--listen-peer-urls',
          DEV_PEER_URL,
          '--initial-advertise-peer-urls',
          DEV_PEER_URL,
          '--initial-cluster',
          `neuroflow=${DEV_PEER_URL}`,
          '--initial-cluster-state',
          existsSync(join(this.dir, 'member-data')) ? 'existing' : 'new',
          '--auto-compaction-retention',
          '1h',
          '--quota-backend-bytes',
          String(2 * 1024 ** 3),
          '--log-outputs',
          'stderr',
        ];
    const logFd = openSync(join(this.dir, 'etcd.log'), 'a', 0o600);
    try {
      // cwd: etcd makes its unix sockets relative to it (DEV_CLIENT_URL)
      const child = spawn(etcdBinary(), args, {
        cwd: this.dir,
        detached: true,
        stdio: ['ignore', logFd, logFd],
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (e) =>
          reject(
            new NfError(
              'unavailable',
              `cannot start etcd: ${e.message}. Install the etcd-server package (scripts/setup.sh).`,
            ),
          ),
        );
      });
      child.unref();
      this.pid = child.pid!;
      await writeFileAtomic(join(this.dir, 'etcd.pid'), `${child.pid}\n`, 0o600);
      log.info('etcd started', { pid: child.pid, endpoint: this.endpoint });
    } finally {
      closeSync(logFd);
    }
  }

  private async waitHealthy(timeoutMs: number): Promise<void> {
    await waitFor(
      async () => {
        if (this.pid && !pidAlive(this.pid)) {
          throw new NfError('unavailable', `etcd exited during start; see ${join(this.dir, 'etcd.log')}`);
        }
        try {
          if (this.member) {
            // A learner answers no linearizable /health: a TLS /version reply says the member is up.
            const t = this.member.tls;
            const res = await fetch(`${this.endpoint}/version`, {
              signal: AbortSignal.timeout(1000),
              tls: {
                ca: readFileSync(t.ca, 'utf8'),
                cert: readFileSync(t.cert, 'utf8'),
                key: readFileSync(t.key, 'utf8'),
              },
            } as RequestInit);
            return res.ok;
          }
          const res = await fetch('http://localhost/health', {
            signal: AbortSignal.timeout(1000),
            unix: this.clientSocket,
          } as RequestInit);
          return res.ok && ((await res.json()) as { health?: string }).health === 'true';
        } catch {
          return false;
        }
      },
      { timeoutMs, intervalMs: 100, what: 'etcd to become healthy' },
    );
  }

  private async supervise(): Promise<void> {
    if (this.stopping || this.restarting || (this.pid && pidAlive(this.pid))) return;
    this.restarts++;
    log.warn('etcd is gone, restarting', { restarts: this.restarts });
    try {
      this.restarting = true;
      await this.launch();
      await this.waitHealthy(20_000);
    } catch (err) {
      log.error('etcd restart failed', { err });
    } finally {
      this.restarting = false;
    }
  }
}

export function etcdBinary(): string {
  return process.env.NEUROFLOW_ETCD ?? (existsSync('/usr/bin/etcd') ? '/usr/bin/etcd' : 'etcd');
}
