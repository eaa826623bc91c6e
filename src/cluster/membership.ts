import type { NodeRegistry } from '../controller/node-registry';
import { NfError } from '../errors';
import type { EtcdStore } from '../store/store';
import { createLogger } from '../util/log';

const log = createLogger('membership');

export interface EtcdMemberView {
  id: string;
  name: string;
  learner: boolean;
  peerUrls: string[];
}

/**
 * etcd membership upkeep, run by the leader: new controllers join as learners (they cannot hurt the
 * quorum while they catch up) and are promoted to voters once etcd accepts it (the learner is in sync).
 */
export class EtcdMembership {
  private timer?: Timer;

  constructor(
    private readonly store: EtcdStore,
    private readonly registry: NodeRegistry,
  ) {}

  async members(): Promise<EtcdMemberView[]> {
    const res = await this.store.client.cluster.memberList({});
    return (res.members ?? []).map((m) => ({
      id: String(m.ID),
      name: m.name,
      learner: !!m.isLearner,
      peerUrls: m.peerURLs,
    }));
  }

  start(intervalMs = 1000): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.promoteLearners().catch(() => {}), intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Tries to promote every learner; etcd refuses until the learner has caught up, we retry later. */
  async promoteLearners(): Promise<number> {
    let promoted = 0;
    for (const m of await this.members()) {
      if (!m.learner || !m.name) continue; // a member without a name has not started yet
      try {
        await this.store.withOwnClient((c) => c.cluster.memberPromote({ ID: m.id }));
        promoted++;
        log.info('etcd learner promoted to voting member', { node: m.name, id: m.id });
        await this.registry.upsert(m.name, (cur) =>
          cur?.etcd ? { ...cur, etcd: { ...cur.etcd, learner: false } } : undefined,
        );
      } catch (err) {
        const msg = (err as Error).message;
        if (!/not in sync|can only promote a learner/i.test(msg))
          log.warn('cannot promote etcd learner yet', { node: m.name, err: msg });
      }
    }
    return promoted;
  }

  /** Removes a host's etcd member (host removal). Refuses to remove the last voting member. */
  async remove(peerUrl: string, name: string): Promise<void> {
    const all = await this.members();
    const m = all.find((x) => x.peerUrls.includes(peerUrl) || x.name === name);
    if (!m) return;
    if (!m.learner && all.filter((x) => !x.learner).length <= 1)
      throw new NfError(
        'invalid_state',
        `host ${name} holds the last voting etcd member; it cannot be removed`,
      );
    await this.store.withOwnClient((c) => c.cluster.memberRemove({ ID: m.id }));
    log.info('etcd member removed', { node: name, id: m.id });
  }
}
