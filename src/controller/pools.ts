import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NfError } from '../errors';
import type { StorageCapabilities, VolumeInfo } from '../storage/driver';
import { capabilitiesOf } from '../storage/registry';
import { checkSharedPool, openSharedPool, type SharedPoolConfig } from '../storage/shared-pools';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';
import type { NodeRouter } from './node-router';
import { keys, type NodeRecord, type PoolRecord, type VmRecord } from './records';

const log = createLogger('pools');

/** The pool every host has: thin qcow2 files in DATA_DIR/pools/local. */
export const LOCAL_POOL = 'local';

export interface PoolView {
  name: string;
  type: string;
  capabilities: StorageCapabilities;
  /** Summed over the hosts for `local` (one dir pool per host); the pool's own for a shared one. */
  totalBytes: number;
  freeBytes: number;
  /** Hosts that reach it (have reported it). */
  hosts: { name: string; totalBytes: number; freeBytes: number }[];
  rbd?: { pool: string; monitors: string[]; user: string };
  description?: string;
  createdAt?: string;
  /** VMs with a disk in it. */
  vms: number;
}

/** A shared pool to add: how hosts reach it, and a description. */
export type CreatePoolInput = SharedPoolConfig & { description?: string };

/**
 * Storage pools as a resource: each host's `local` dir pool, and cluster-wide pools (RBD) kept in etcd and
 * handed to every host, which then reports them with its figures.
 */
export class PoolService {
  constructor(
    private readonly store: Store,
    private readonly router: NodeRouter,
  ) {}

  async list(): Promise<PoolView[]> {
    const [records, nodes, vms] = await Promise.all([
      this.store.list<PoolRecord>(keys.pools),
      this.store.list<NodeRecord>(keys.nodes),
      this.store.list<VmRecord>(keys.vms),
    ]);
    const reported = (name: string) =>
      nodes.flatMap((n) => {
        const p = n.value.info?.pools.find((x) => x.name === name);
        return p ? [{ name: n.value.name, totalBytes: p.totalBytes, freeBytes: p.freeBytes }] : [];
      });
    const vmsIn = (name: string) => vms.filter((v) => v.value.disks.some((d) => d.pool === name)).length;
    const local = reported(LOCAL_POOL);
    const views: PoolView[] = [
      {
        name: LOCAL_POOL,
        type: 'dir',
        capabilities: capabilitiesOf('dir')!,
        totalBytes: local.reduce((n, h) => n + h.totalBytes, 0),
        freeBytes: local.reduce((n, h) => n + h.freeBytes, 0),
        hosts: local,
        vms: vmsIn(LOCAL_POOL),
      },
    ];
    for (const { value: r } of records) {
      const hosts = reported(r.name);
      // every host sees the same Ceph pool: its figures are the pool's, not a sum
      const first = hosts[0];
      const v: PoolView = {
        name: r.name,
        type: r.type,
        capabilities: capabilitiesOf(r.type)!,
        totalBytes: first?.totalBytes ?? 0,
        freeBytes: first?.freeBytes ?? 0,
        hosts,
        rbd: { pool: r.rbd.pool, monitors: r.rbd.monitors, user: r.rbd.user },
        createdAt: r.createdAt,
        vms: vmsIn(r.name),
      };
      if (r.description !== undefined) v.description = r.description;
      views.push(v);
    }
    return views;
  }

  async get(name: string): Promise<PoolView> {
    const v = (await this.list()).find((p) => p.name === name);
    if (!v) throw new NfError('not_found', `no storage pool named "${name}"`);
    return v;
  }

  /**
   * Adds an existing Ceph pool. The monitors, user and key are tried first (the pool's figures are read
   * with them): a wrong one gets a clear error and nothing is stored.
   */
  async create(input: CreatePoolInput, user: string): Promise<PoolView> {
    if (input.name === LOCAL_POOL)
      throw new NfError('already_exists', `"${LOCAL_POOL}" is every host's own pool`);
    const { description: _d, ...cfg } = input;
    checkSharedPool(cfg);
    if (await this.store.get(keys.pool(input.name)))
      throw new NfError('already_exists', `a storage pool named "${input.name}" already exists`);
    await probe(cfg);
    const rec: PoolRecord = {
      name: input.name,
      type: input.type,
      rbd: { pool: input.pool, monitors: input.monitors, user: input.user, key: input.key },
      createdAt: new Date().toISOString(),
      createdBy: user,
    };
    if (input.description !== undefined) rec.description = input.description;
    await this.store.txn(
      { when: [{ key: keys.pool(rec.name), absent: true }], put: [{ key: keys.pool(rec.name), value: rec }] },
      `a storage pool named "${rec.name}" was just added by someone else`,
    );
    await this.pushAll();
    return this.get(rec.name);
  }

  /** Removes a shared pool from NeuroFlow (the Ceph pool and its images stay). Refused while it is used. */
  async delete(name: string): Promise<void> {
    if (name === LOCAL_POOL) throw new NfError('invalid_state', `"${LOCAL_POOL}" is every host's own pool`);
    const rec = await this.store.get<PoolRecord>(keys.pool(name));
    if (!rec) throw new NfError('not_found', `no storage pool named "${name}"`);
    const users = (await this.store.list<VmRecord>(keys.vms))
      .filter((v) => v.value.disks.some((d) => d.pool === name))
      .map((v) => v.value.name);
    if (users.length > 0)
      throw new NfError(
        'in_use',
        `pool "${name}" holds disks of ${users.length} VM(s): ${users.slice(0, 10).join(', ')}${users.length > 10 ? ', ...' : ''}`,
      );
    const volumes = await this.volumes(name).catch(() => []);
    if (volumes.length > 0)
      throw new NfError(
        'in_use',
        `pool "${name}" holds ${volumes.length} volume(s): ${volumes
          .slice(0, 10)
          .map((v) => v.name)
          .join(', ')}; delete them first`,
      );
    await this.store.txn({ when: [{ key: rec.key, revision: rec.revision }], delete: [rec.key] });
    await this.pushAll();
  }

  /** The volumes of a pool, read through a host that reaches it (this one first). */
  async volumes(name: string, node?: string): Promise<VolumeInfo[]> {
    const pool = await this.get(name);
    const candidates = node ? [node] : [this.router.localName, ...pool.hosts.map((h) => h.name)];
    const host = candidates.find((h) => pool.hosts.some((x) => x.name === h) && this.router.reachable(h));
    if (!host)
      throw new NfError(
        'unavailable',
        node ? `host ${node} does not reach pool "${name}"` : `no reachable host reaches pool "${name}" now`,
      );
    return this.router.on(host).listVolumes(name);
  }

  /** The shared pools as hosts get them. */
  async configs(): Promise<SharedPoolConfig[]> {
    return (await this.store.list<PoolRecord>(keys.pools)).map(({ value: r }) => ({
      name: r.name,
      type: r.type,
      pool: r.rbd.pool,
      monitors: r.rbd.monitors,
      user: r.rbd.user,
      key: r.rbd.key,
    }));
  }

  /** Hands the shared pools to one host (on connect) or every reachable host (after a change). */
  async pushTo(host: string): Promise<void> {
    await this.router.on(host).configurePools(await this.configs());
  }

  async pushAll(): Promise<void> {
    const configs = await this.configs();
    await Promise.all(
      this.router
        .names()
        .filter((h) => this.router.reachable(h))
        .map((h) =>
          this.router
            .on(h)
            .configurePools(configs)
            .catch((err) =>
              log.warn('a host did not take the pool list', { node: h, err: (err as Error).message }),
            ),
        ),
    );
  }
}

/** Reads the pool's figures with the given monitors and key, in a scratch dir (nothing kept). */
async function probe(cfg: SharedPoolConfig): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nf-pool-probe-'));
  try {
    const pool = await openSharedPool(dir, cfg);
    await pool.usage();
  } catch (err) {
    const why = (err as Error).message;
    throw new NfError(
      'validation_failed',
      `cannot use Ceph pool "${cfg.pool}" as user ${cfg.user} through ${cfg.monitors.join(', ')}: ${why}; nothing was stored`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
