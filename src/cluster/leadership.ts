import type { Campaign, ElectionObserver, Etcd3, Lease } from 'etcd3';
import type { HealthLeases } from '../controller/node-registry';
import { keys, type NodeHealthRecord } from '../controller/records';
import { createLogger } from '../util/log';

const log = createLogger('leader');

/** Who leads the controllers: the leader runs the scheduler, the reconciler loop and membership upkeep. */
export interface Leadership {
  isLeader(): boolean;
  /** The current leader's host name, as etcd knows it. */
  leaderName(): Promise<string | undefined>;
  onChange(listener: (leader: boolean) => void): void;
  stop(): Promise<void>;
}

/** One host, no election: it always leads (serve --dev). */
export class SoleLeader implements Leadership {
  constructor(private readonly name: string) {}
  isLeader(): boolean {
    return true;
  }
  async leaderName(): Promise<string> {
    return this.name;
  }
  onChange(listener: (leader: boolean) => void): void {
    listener(true);
  }
  async stop(): Promise<void> {}
}

/**
 * etcd election among the controllers. The campaign's lease (ttl seconds) is what a dead leader leaves
 * behind: when it expires, the next candidate is elected.
 */
export class EtcdLeadership implements Leadership {
  private leader = false;
  private stopped = false;
  private campaign?: Campaign;
  private observer?: ElectionObserver;
  private readonly listeners = new Set<(leader: boolean) => void>();

  constructor(
    private readonly client: Etcd3,
    private readonly name: string,
    private readonly ttlSec = 3,
  ) {}

  async start(): Promise<void> {
    const election = this.client.election('neuroflow-leader', this.ttlSec);
    this.observer = await election.observe();
    this.observer.on('change', (v) => log.info('controller leader', { leader: v ?? null }));
    this.observer.on('error', () => {});
    this.run(election);
  }

  private run(election: ReturnType<Etcd3['election']>): void {
    if (this.stopped) return;
    const c = election.campaign(this.name);
    this.campaign = c;
    c.on('elected', () => {
      if (this.stopped || this.campaign !== c) return;
      log.info('this host is now the controller leader', { node: this.name });
      this.set(true);
    });
    c.on('error', (err) => {
      log.warn('leader campaign failed; campaigning again', { err: err.message });
      this.set(false);
      if (this.campaign === c) setTimeout(() => this.run(election), 1000);
    });
  }

  private set(leader: boolean): void {
    if (this.leader === leader) return;
    this.leader = leader;
    for (const l of this.listeners) l(leader);
  }

  isLeader(): boolean {
    return this.leader;
  }

  async leaderName(): Promise<string | undefined> {
    return this.observer?.leader() ?? (await this.client.election('neuroflow-leader').leader());
  }

  onChange(listener: (leader: boolean) => void): void {
    this.listeners.add(listener);
    if (this.leader) listener(true);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.campaign;
    this.campaign = undefined;
    this.set(false);
    await c?.resign().catch(() => {});
    await this.observer?.cancel().catch(() => {});
  }
}

/**
 * The leader's side of node health: one etcd lease per node, kept alive by that node's heartbeats. A node
 * that goes quiet loses its health key when the lease expires, whoever leads by then.
 */
export class EtcdHealthLeases implements HealthLeases {
  private readonly leases = new Map<string, Lease>();
  private readonly ttls = new Map<string, number>();

  constructor(
    private readonly client: Etcd3,
    /** The lease's time to live: HA's detection time (read at each beat; a change takes a new lease). */
    private readonly ttlSec: () => number = () => 10,
  ) {}

  async beat(node: string, value: NodeHealthRecord): Promise<void> {
    const ttl = this.ttlSec();
    let lease = this.leases.get(node);
    if (lease && this.ttls.get(node) !== ttl) {
      lease.release();
      this.leases.delete(node);
      lease = undefined;
    }
    if (lease) {
      try {
        await lease.keepaliveOnce();
      } catch {
        lease.release();
        this.leases.delete(node);
        lease = undefined;
      }
    }
    if (!lease) {
      lease = this.client.lease(ttl, { autoKeepAlive: false });
      lease.on('lost', () => {});
      this.leases.set(node, lease);
      this.ttls.set(node, ttl);
    }
    await lease.put(keys.nodeHealth(node)).value(JSON.stringify(value)).exec();
  }

  async drop(node: string): Promise<void> {
    const lease = this.leases.get(node);
    this.leases.delete(node);
    await lease?.revoke().catch(() => {});
    await this.client.delete().key(keys.nodeHealth(node)).exec();
  }

  /** Lets go of the leases (they expire on their own unless a new leader's beats replace them). */
  close(): void {
    for (const l of this.leases.values()) l.release();
    this.leases.clear();
  }
}
