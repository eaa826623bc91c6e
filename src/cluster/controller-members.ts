/**
 * Which controllers this host takes Node service calls from. A certificate with the controller role
 * is not enough: a controller removed from the cluster keeps a valid one. The leader sends the current
 * members over the heartbeat stream (Control.Heartbeat, after each change); the host keeps the latest
 * list, also on disk for its next start. Until a list has ever arrived, the controllers named in the
 * host's own join data (config.json) and the host itself, when it is a controller, are the members.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { createLogger } from '../util/log';
import { parseHostPort } from '../util/net';
import { type ClusterConfig, clusterDir } from './config';
import { describePeer, type PeerIdentity } from './grpc/tls';

const log = createLogger('members');

export interface ControllerMember {
  name: string;
  /** Management addresses it may call from; empty: not known (join data without them). */
  addresses: string[];
}

export interface KnownControllers {
  /** 'leader': a list the leader sent (in this run or an earlier one); 'config': the join data. */
  source: 'leader' | 'config';
  /** The store revision the leader read the list at (0 for the join data). */
  revision: number;
  controllers: ControllerMember[];
}

/** DATA_DIR/cluster/controllers.json: the leader's last list. */
export const controllersFile = (dataDir: string) => join(clusterDir(dataDir), 'controllers.json');

/** The members a host starts with: its saved list from the leader, else its join data (and itself). */
export function initialControllers(dataDir: string, cfg: ClusterConfig): KnownControllers {
  const saved = readSaved(controllersFile(dataDir));
  if (saved) return saved;
  const controllers: ControllerMember[] = cfg.controllers.map((c) => ({
    name: c.name,
    addresses: [
      ...new Set(
        [c.grpc, c.api].flatMap((a) => {
          if (!a) return [];
          try {
            return [parseHostPort(a, 0).host];
          } catch {
            return [];
          }
        }),
      ),
    ],
  }));
  if (cfg.role === 'controller' && !controllers.some((c) => c.name === cfg.name))
    controllers.push({ name: cfg.name, addresses: [cfg.address] });
  return { source: 'config', revision: 0, controllers };
}

function readSaved(file: string): KnownControllers | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<KnownControllers>;
    if (
      typeof v.revision !== 'number' ||
      !Array.isArray(v.controllers) ||
      !v.controllers.every(
        (c) =>
          typeof c?.name === 'string' &&
          Array.isArray(c.addresses) &&
          c.addresses.every((a) => typeof a === 'string'),
      )
    )
      throw new Error('not a list of controllers');
    return { source: 'leader', revision: v.revision, controllers: v.controllers };
  } catch (err) {
    log.warn('ignoring the saved list of controllers; using the join data until the leader sends one', {
      file,
      err: (err as Error).message,
    });
    return undefined;
  }
}

const norm = (ip: string) => ip.toLowerCase();

export class ControllerMembers {
  private current: KnownControllers;
  /** Whether a list from the leader arrived in this process (the first one is taken whatever its revision). */
  private updated = false;
  private saving: Promise<void> = Promise.resolve();

  /** @param file where the leader's lists are kept for the next start (none: memory only) */
  constructor(
    initial: KnownControllers,
    private readonly file?: string,
  ) {
    this.current = structuredClone(initial);
  }

  get known(): KnownControllers {
    return structuredClone(this.current);
  }

  /**
   * Takes a list the leader sent. A list older (lower revision) than one taken before in this process
   * is ignored (a deposed leader's late answer), except the first one of a process or of a heartbeat
   * stream, so a store restored from a backup cannot lock the host out; an empty list is ignored.
   * Returns whether it was taken.
   */
  update(
    list: { revision: number; controllers: ControllerMember[] },
    meta: { firstOfStream?: boolean } = {},
  ): boolean {
    // A cluster always has a controller (the leader that sent it): an empty list is a fault, and taking
    // it would lock every controller out.
    if (list.controllers.length === 0) {
      log.warn('ignoring an empty list of controllers', { revision: list.revision });
      return false;
    }
    // The first list of a new heartbeat stream comes from the leader of now: taken whatever its
    // revision (after an etcd restore every revision is lower, and the leader only sends changes).
    if (this.updated && !meta.firstOfStream && list.revision < this.current.revision) {
      log.warn('ignoring an older list of controllers', { got: list.revision, have: this.current.revision });
      return false;
    }
    const next: KnownControllers = {
      source: 'leader',
      revision: list.revision,
      controllers: list.controllers.map((c) => ({ name: c.name, addresses: [...c.addresses] })),
    };
    const changed = JSON.stringify(next.controllers) !== JSON.stringify(this.current.controllers);
    if (changed || this.current.source !== 'leader')
      log.info('controllers of the cluster', {
        controllers: next.controllers.map((c) => c.name),
        revision: next.revision,
      });
    const wasSaved = this.current.source === 'leader';
    this.current = next;
    this.updated = true;
    if (this.file && (changed || !wasSaved)) {
      const file = this.file;
      const text = `${JSON.stringify({ revision: next.revision, controllers: next.controllers }, null, 2)}\n`;
      this.saving = this.saving
        .then(() => writeFileAtomic(file, text, 0o600))
        .catch((err: unknown) =>
          log.warn('cannot save the list of controllers', { file, err: (err as Error).message }),
        );
    }
    return true;
  }

  /** Resolves once the lists taken so far are on disk (for tests and shutdown). */
  flush(): Promise<void> {
    return this.saving;
  }

  /**
   * The Node service's membership check: true for a controller that is a member now, calling from one of
   * its recorded addresses; otherwise throws `forbidden` (PERMISSION_DENIED over gRPC) saying why.
   */
  check(peer: PeerIdentity): true {
    const members = this.current.controllers;
    const m = peer.name === undefined ? undefined : members.find((c) => c.name === peer.name);
    const from =
      this.current.source === 'leader'
        ? `the leader's list of revision ${this.current.revision}`
        : 'its join data, until the leader sends the current list';
    if (!m)
      throw new NfError(
        'forbidden',
        `${describePeer(peer)} is not a controller of this cluster (removed?); this host takes calls from ${
          members.map((c) => c.name).join(', ') || 'no controller'
        } (${from})`,
      );
    // A caller must use a recorded address of that controller; loopback is not one (a local process with a
    // copied certificate is not the controller).
    const own = m.addresses.some((a) => norm(a) === norm(peer.address));
    if (m.addresses.length > 0 && !own)
      throw new NfError(
        'forbidden',
        `${describePeer(peer)} calls from an address that is not the controller's (${m.addresses.join(', ')}; ${from})`,
      );
    return true;
  }
}
