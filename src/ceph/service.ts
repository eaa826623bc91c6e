import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeRegistry } from '../controller/node-registry';
import type { NodeRouter } from '../controller/node-router';
import {
  type CephRecord,
  type CephSecretsRecord,
  keys,
  type NodeRecord,
  type PoolRecord,
} from '../controller/records';
import { NfError } from '../errors';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';
import { waitFor } from '../util/wait';
import { type CephCluster, type CephHealth, CLUSTER_DEFAULTS, cephFsid, makeMonmap } from './cluster';
import type { CephApplyRequest, CephClusterConfig, CephHost, CephHostState } from './host';
import { type CephKey, KEY_CAPS, keyringKey, newCephKey } from './keyring';

const log = createLogger('ceph');

/** The NeuroFlow pool made for the integrated cluster, and its Ceph pool and cephx user. */
export const INTEGRATED_POOL = { name: 'ceph', cephPool: 'rbd', user: 'neuroflow' } as const;

/** Ceph ids are host names here: letters, digits, '-', '_' and '.', not starting with a dot. */
const CEPH_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const MAX_MONS = 5;

export interface CephStatus {
  configured: boolean;
  fsid?: string;
  /** `bootstrapping` while POST /ceph runs. */
  state?: CephRecord['state'];
  health?: CephHealth;
  /** Why there is no health: no monitor answered in time. */
  error?: string;
  monitors: { name: string; ip: string; inQuorum: boolean }[];
  osds: { id: number; node: string; device: string; up?: boolean; in?: boolean }[];
  /** Every host's Ceph daemons and their pids (absent: not running). */
  daemons: { host: string; entity: string; pid?: number; restarts: number }[];
  /** Hosts with Ceph daemons that did not answer (their daemons are not listed). */
  unreachableHosts: string[];
  /** Replicas of the integrated pool, and what they risk on this cluster. */
  pool?: { name: string; size: number; minSize: number; warning?: string };
}

export interface BootstrapInput {
  /** Hosts that run a monitor and a manager (default: up to three controllers, this one first). */
  monitors?: string[];
  /** The monitor's address when there is one monitor (default: the host's management address). */
  monitorAddress?: string;
  size: number;
  minSize: number;
  /** Replicas on different hosts (default when size > 1) or only on different OSDs. */
  failureDomain?: 'host' | 'osd';
}

/**
 * The controller's side of integrated Ceph: the cluster's record and keys in etcd, bootstrap across hosts
 * (monitors and managers on up to three controllers, one monmap for all), OSDs and monitors added on any
 * host through NodeApi.cephApply, health through this controller's own client.admin. The pool it makes is
 * registered as the shared pool `ceph`, so VMs use it like any shared pool.
 */
export class CephService {
  /** The record (mons) this controller's local client config was last written for. */
  private clientFor?: string;

  constructor(
    private readonly store: Store,
    private readonly router: NodeRouter,
    private readonly registry: NodeRegistry,
    /** This host's Ceph part (also where this controller's client.admin config lives). */
    private readonly local: CephHost,
    /** Called after the integrated pool is registered or changes (hands it to the hosts). */
    private readonly onPool: () => Promise<void>,
  ) {}

  private get admin(): CephCluster {
    return this.local.cluster;
  }

  /** Adopts a cluster made on this host before the record existed in etcd (the one-host bootstrap). */
  async adoptLocal(): Promise<void> {
    if (!this.admin.exists() || (await this.store.get(keys.ceph))) return;
    const dir = this.admin.dir;
    const p = this.admin.paths;
    const fsid = cephFsid(dir);
    const read = (f: string) => (existsSync(f) ? keyringKey(readFileSync(f, 'utf8')) : undefined);
    const monNames = existsSync(join(dir, 'mon')) ? readdirSync(join(dir, 'mon')) : [];
    const mon = monNames[0] ? read(join(p.monData(monNames[0]), 'keyring')) : undefined;
    const admin = read(p.keyring('client.admin'));
    const bootstrapOsd = read(p.keyring('client.bootstrap-osd'));
    if (!fsid || !mon || !admin || !bootstrapOsd || monNames.length !== 1) return;
    const conf = readFileSync(p.conf, 'utf8');
    const ip = /^mon host = \[v2:\[?([^\]\s]+?)\]?:3300/m.exec(conf)?.[1];
    const num = (k: string) => Number(new RegExp(`^${k} = (\\d+)$`, 'm').exec(conf)?.[1]);
    if (!ip) return;
    const rec: CephRecord = {
      fsid,
      state: 'ready',
      mons: [{ name: monNames[0]!, ip }],
      osds: this.admin.osdIds().map((id) => ({ id, node: this.local.nodeName, device: `osd.${id}` })),
      poolSize: num('osd pool default size') || 1,
      poolMinSize: num('osd pool default min size') || 1,
      failureDomain: /^osd crush chooseleaf type = 1$/m.test(conf) ? 'host' : 'osd',
      osdMemoryTargetBytes: num('osd memory target') || CLUSTER_DEFAULTS.osdMemoryTargetBytes,
      createdAt: new Date().toISOString(),
      createdBy: 'ceph.adopt',
    };
    await this.store.txn({
      when: [{ key: keys.ceph, absent: true }],
      put: [
        { key: keys.ceph, value: rec },
        { key: keys.cephSecrets, value: { mon, admin, bootstrapOsd } satisfies CephSecretsRecord },
      ],
    });
    log.info('Ceph cluster of this host recorded in the cluster store', { fsid });
  }

  async status(): Promise<CephStatus> {
    const rec = (await this.store.get<CephRecord>(keys.ceph))?.value;
    if (!rec) return { configured: false, monitors: [], osds: [], daemons: [], unreachableHosts: [] };
    const s: CephStatus = {
      configured: true,
      fsid: rec.fsid,
      state: rec.state,
      monitors: rec.mons.map((m) => ({ ...m, inQuorum: false })),
      osds: rec.osds.map((o) => ({ ...o })),
      daemons: [],
      unreachableHosts: [],
    };
    const hosts = [...new Set([...rec.mons.map((m) => m.name), ...rec.osds.map((o) => o.node)])].sort();
    const [, daemons] = await Promise.all([
      this.clusterFacts(rec, s),
      Promise.all(hosts.map(async (h) => ({ h, st: await this.hostState(h) }))),
    ]);
    for (const { h, st } of daemons) {
      if (!st) s.unreachableHosts.push(h);
      else for (const d of st.daemons) s.daemons.push({ host: h, ...d });
    }
    return s;
  }

  /** Health, quorum, OSDs up/in and the pool's replicas, from this controller's client (bounded). */
  private async clusterFacts(rec: CephRecord, s: CephStatus): Promise<void> {
    try {
      const c = await this.client(rec);
      const health = await c.health();
      s.health = health;
      for (const m of s.monitors) m.inQuorum = health.mons.inQuorum.includes(m.name);
      const dump = JSON.parse(await c.admin(['osd', 'dump', '--format', 'json'])) as {
        osds: { osd: number; up: number; in: number }[];
      };
      for (const o of s.osds) {
        const d = dump.osds.find((x) => x.osd === o.id);
        if (d) Object.assign(o, { up: d.up === 1, in: d.in === 1 });
      }
      const pool = await this.poolSize(c).catch(() => undefined);
      if (pool) {
        const osdHosts = new Set(rec.osds.map((o) => o.node)).size;
        s.pool = {
          ...pool,
          ...risk(pool.size, pool.minSize, health.osds.total, rec.failureDomain, osdHosts),
        };
      }
    } catch (err) {
      s.error = `Ceph does not answer: ${(err as Error).message}`;
    }
  }

  private async hostState(host: string): Promise<CephHostState | undefined> {
    const n = this.router.get(host);
    if (!n || n.connected === false) return undefined;
    let cancel = () => {};
    try {
      return await Promise.race([
        n.cephDaemons().catch(() => undefined),
        new Promise<undefined>((r) => {
          const t = setTimeout(r, 3000);
          cancel = () => clearTimeout(t);
        }),
      ]);
    } finally {
      cancel();
    }
  }

  /**
   * Makes the cluster: a monitor and a manager on each monitor host (one monmap for all, so a majority
   * forms quorum), the RBD pool `rbd` with the replicas asked, a cephx user limited to it, and the shared
   * pool `ceph` for VMs. On a failure every host's part is removed again and nothing stays recorded.
   */
  async bootstrap(input: BootstrapInput, user?: string): Promise<CephStatus> {
    if (input.minSize > input.size)
      throw new NfError('validation_failed', `minSize ${input.minSize} is larger than size ${input.size}`);
    const mons = await this.monitorHosts(input);
    if (await this.store.get(keys.pool(INTEGRATED_POOL.name)))
      throw new NfError('already_exists', `a storage pool named "${INTEGRATED_POOL.name}" already exists`);
    const secrets: CephSecretsRecord = { mon: newCephKey(), admin: newCephKey(), bootstrapOsd: newCephKey() };
    const rec: CephRecord = {
      fsid: randomUUID(),
      state: 'bootstrapping',
      mons,
      osds: [],
      poolSize: input.size,
      poolMinSize: input.minSize,
      failureDomain: input.failureDomain ?? (input.size > 1 ? 'host' : 'osd'),
      osdMemoryTargetBytes: CLUSTER_DEFAULTS.osdMemoryTargetBytes,
      createdAt: new Date().toISOString(),
    };
    const warn = process.env.NEUROFLOW_CEPH_MON_DATA_AVAIL_WARN;
    if (warn) rec.monDataAvailWarn = Number(warn);
    if (user) rec.createdBy = user;
    // The record is the lock: a second bootstrap finds it and is refused.
    await this.store
      .txn({
        when: [{ key: keys.ceph, absent: true }],
        put: [
          { key: keys.ceph, value: rec },
          { key: keys.cephSecrets, value: secrets },
        ],
      })
      .catch((err) => {
        throw err instanceof NfError && err.code === 'conflict'
          ? new NfError('already_exists', 'Ceph is already set up in this cluster')
          : err;
      });
    const touched = new Set<string>();
    try {
      const monmap = await makeMonmap(rec.fsid, mons, this.admin.dir);
      const seed = seedKeys(secrets);
      await Promise.all(
        mons.map(async (m) => {
          touched.add(m.name);
          await this.apply(m.name, { config: config(rec), keys: seed, mon: { name: m.name, monmap } });
        }),
      );
      touched.add(this.local.nodeName);
      const c = await this.client(rec);
      await waitFor(() => c.health().catch(() => undefined), {
        timeoutMs: 90_000,
        intervalMs: 500,
        what: 'the Ceph monitors to form a quorum',
      });
      // Clone v2 (no protect/unprotect) needs every client at mimic or later.
      await c.admin(['osd', 'set-require-min-compat-client', 'mimic']);
      await Promise.all(mons.map((m) => this.addMgr(c, rec, m.name)));
      await c.createPool(INTEGRATED_POOL.cephPool, { size: input.size, minSize: input.minSize });
      const key = keyringKey(
        readFileSync(await c.rbdUser(INTEGRATED_POOL.user, [INTEGRATED_POOL.cephPool]), 'utf8'),
      );
      if (!key) throw new NfError('internal', 'the new cephx user has no key');
      const pool: PoolRecord = {
        name: INTEGRATED_POOL.name,
        type: 'rbd',
        rbd: {
          pool: INTEGRATED_POOL.cephPool,
          monitors: mons.map((m) => m.ip),
          user: INTEGRATED_POOL.user,
          key,
        },
        description: 'the integrated Ceph cluster',
        createdAt: new Date().toISOString(),
        createdBy: 'ceph.bootstrap',
      };
      await this.store.txn(
        {
          when: [{ key: keys.pool(pool.name), absent: true }],
          put: [
            { key: keys.pool(pool.name), value: pool },
            { key: keys.ceph, value: { ...rec, state: 'ready' } satisfies CephRecord },
          ],
        },
        `a storage pool named "${INTEGRATED_POOL.name}" was made meanwhile`,
      );
    } catch (err) {
      log.error('Ceph bootstrap failed, removing what it made', { err: (err as Error).message });
      await this.rollback(rec, [...touched]);
      throw err;
    }
    log.info('Ceph cluster bootstrapped', { fsid: rec.fsid, mons: mons.map((m) => m.name) });
    await this.onPool();
    return this.status();
  }

  /** An OSD on a disk (or file) of any host of the cluster; the host checks the device itself. */
  async addOsd(input: { node: string; device: string; sizeGiB?: number }): Promise<CephStatus> {
    const { rec, secrets } = await this.ready();
    await this.registry.find(input.node);
    const req: CephApplyRequest = {
      config: config(rec),
      keys: [{ entity: 'client.bootstrap-osd', key: secrets.bootstrapOsd }],
      osd:
        input.sizeGiB === undefined
          ? { device: input.device }
          : { device: input.device, sizeGiB: input.sizeGiB },
    };
    const st = await this.apply(input.node, req);
    if (st.osdId === undefined) throw new NfError('internal', `${input.node} made no OSD`);
    const id = st.osdId;
    await this.update((r) => ({
      ...r,
      osds: [...r.osds.filter((o) => o.id !== id), { id, node: input.node, device: input.device }],
    }));
    log.info('Ceph OSD added', { osd: id, node: input.node, device: input.device });
    return this.status();
  }

  /**
   * A monitor (and a manager) on another host: it joins with the cluster's current monmap. Every Ceph host
   * and the pool `ceph` then name the new monitor too.
   */
  async addMon(input: { node: string; address?: string }): Promise<CephStatus> {
    const { rec, secrets } = await this.ready();
    if (rec.mons.some((m) => m.name === input.node))
      throw new NfError('already_exists', `${input.node} already runs a monitor`);
    if (rec.mons.length >= MAX_MONS)
      throw new NfError(
        'validation_failed',
        `at most ${MAX_MONS} monitors (the cluster has ${rec.mons.length})`,
      );
    const [mon] = await this.hostsAddresses([input.node], input.address);
    const c = await this.client(rec);
    const map = join(this.admin.dir, `monmap.get.${process.pid}`);
    let monmap: Buffer;
    try {
      await c.admin(['mon', 'getmap', '-o', map]);
      monmap = readFileSync(map);
    } finally {
      rmSync(map, { force: true });
    }
    const next: CephRecord = { ...rec, mons: [...rec.mons, mon!] };
    await this.apply(mon!.name, {
      config: config(next),
      keys: seedKeys(secrets),
      mon: { name: mon!.name, monmap },
    });
    await waitFor(
      async () => ((await c.health().catch(() => undefined))?.mons.inQuorum ?? []).includes(mon!.name),
      { timeoutMs: 90_000, intervalMs: 500, what: `the monitor on ${mon!.name} to join the quorum` },
    );
    await this.addMgr(c, next, mon!.name);
    await this.update((r) => ({ ...r, mons: [...r.mons.filter((m) => m.name !== mon!.name), mon!] }));
    // Every host's ceph.conf and the shared pool name the new monitor (a restarting daemon finds a quorum).
    await this.pushConfig();
    await this.updatePoolMonitors();
    log.info('Ceph monitor added', { node: mon!.name });
    return this.status();
  }

  /** Hands the current config to a host with Ceph daemons (on connect: it may have missed a change). */
  async pushTo(host: string): Promise<void> {
    const rec = (await this.store.get<CephRecord>(keys.ceph))?.value;
    if (rec?.state !== 'ready') return;
    if (!rec.mons.some((m) => m.name === host) && !rec.osds.some((o) => o.node === host)) return;
    await this.apply(host, { config: config(rec), keys: [] });
  }

  private async pushConfig(): Promise<void> {
    const rec = (await this.store.get<CephRecord>(keys.ceph))!.value;
    const hosts = new Set([...rec.mons.map((m) => m.name), ...rec.osds.map((o) => o.node)]);
    await Promise.all(
      [...hosts].map((h) =>
        this.apply(h, { config: config(rec), keys: [] }).catch((err) =>
          log.warn('cannot update ceph.conf on a host (it gets it when it connects again)', {
            node: h,
            err: (err as Error).message,
          }),
        ),
      ),
    );
  }

  private async updatePoolMonitors(): Promise<void> {
    const rec = (await this.store.get<CephRecord>(keys.ceph))!.value;
    const cur = await this.store.get<PoolRecord>(keys.pool(INTEGRATED_POOL.name));
    if (!cur?.value.rbd) return;
    const value: PoolRecord = {
      ...cur.value,
      rbd: { ...cur.value.rbd, monitors: rec.mons.map((m) => m.ip) },
    };
    await this.store.txn({
      when: [{ key: keys.pool(INTEGRATED_POOL.name), revision: cur.revision }],
      put: [{ key: keys.pool(INTEGRATED_POOL.name), value }],
    });
    await this.onPool();
  }

  private async addMgr(c: CephCluster, rec: CephRecord, host: string): Promise<void> {
    const out = await c.admin([
      'auth',
      'get-or-create',
      `mgr.${host}`,
      ...['mon', 'allow profile mgr', 'osd', 'allow *', 'mds', 'allow *'],
    ]);
    const key = keyringKey(out);
    if (!key) throw new NfError('internal', `no key for mgr.${host}`);
    await this.apply(host, {
      config: config(rec),
      keys: [{ entity: `mgr.${host}`, key }],
      mgr: { id: host },
    });
  }

  private async apply(host: string, req: CephApplyRequest): Promise<CephHostState> {
    if (host === this.local.nodeName) return this.local.apply(req);
    if (!(await this.router.reach(host)))
      throw new NfError('unavailable', `host ${host} is not connected; cannot set up Ceph there`);
    return this.router.on(host).cephApply(req);
  }

  /**
   * This controller's client: ceph.conf and client.admin under its DATA_DIR/ceph, written from the record
   * when the monitors changed since the last time.
   */
  private async client(rec: CephRecord): Promise<CephCluster> {
    const want = JSON.stringify([rec.fsid, rec.mons]);
    if (this.clientFor !== want || !this.admin.exists()) {
      const secrets = (await this.store.get<CephSecretsRecord>(keys.cephSecrets))?.value;
      if (!secrets) throw new NfError('internal', 'the Ceph keys are missing from the cluster store');
      await this.local.apply({ config: config(rec), keys: [{ entity: 'client.admin', key: secrets.admin }] });
      this.clientFor = want;
    }
    return this.admin;
  }

  private async ready(): Promise<{ rec: CephRecord; secrets: CephSecretsRecord }> {
    const rec = (await this.store.get<CephRecord>(keys.ceph))?.value;
    if (!rec) throw new NfError('invalid_state', 'set up Ceph first (POST /api/v1/ceph)');
    if (rec.state !== 'ready') throw new NfError('invalid_state', 'Ceph is still being set up');
    const secrets = (await this.store.get<CephSecretsRecord>(keys.cephSecrets))?.value;
    if (!secrets) throw new NfError('internal', 'the Ceph keys are missing from the cluster store');
    return { rec, secrets };
  }

  private async update(change: (r: CephRecord) => CephRecord): Promise<void> {
    for (let i = 0; i < 10; i++) {
      const cur = await this.store.get<CephRecord>(keys.ceph);
      if (!cur) throw new NfError('invalid_state', 'the Ceph record is gone');
      const ok = await this.store
        .txn({
          when: [{ key: keys.ceph, revision: cur.revision }],
          put: [{ key: keys.ceph, value: change(cur.value) }],
        })
        .then(
          () => true,
          (err) => {
            if (err instanceof NfError && err.code === 'conflict') return false;
            throw err;
          },
        );
      if (ok) return;
    }
    throw new NfError('conflict', 'the Ceph record kept changing; try again');
  }

  private async rollback(rec: CephRecord, hosts: string[]): Promise<void> {
    await Promise.all(
      hosts.map((h) =>
        this.apply(h, { config: config(rec), keys: [], purge: true }).catch((err) =>
          log.error('cannot remove a failed Ceph bootstrap from a host', {
            node: h,
            err: (err as Error).message,
          }),
        ),
      ),
    );
    this.clientFor = undefined;
    await this.store.txn({ when: [], delete: [keys.ceph, keys.cephSecrets] });
  }

  /** The monitor hosts of a bootstrap, with their addresses: checked before anything is made. */
  private async monitorHosts(input: BootstrapInput): Promise<{ name: string; ip: string }[]> {
    let names = input.monitors;
    if (!names || names.length === 0) {
      const ctrls = (await this.registry.controllers()).controllers.map((c) => c.name);
      const me = this.local.nodeName;
      const others = ctrls.filter((n) => n !== me && this.router.reachable(n));
      names = [...(ctrls.includes(me) ? [me] : []), ...others].slice(0, 3);
    }
    if (new Set(names).size !== names.length)
      throw new NfError('validation_failed', 'monitors: a host is named twice');
    if (names.length > MAX_MONS) throw new NfError('validation_failed', `monitors: at most ${MAX_MONS}`);
    if (input.monitorAddress && names.length !== 1)
      throw new NfError('validation_failed', 'monitorAddress is for a single monitor only');
    return this.hostsAddresses(names, input.monitorAddress);
  }

  private async hostsAddresses(names: string[], address?: string): Promise<{ name: string; ip: string }[]> {
    const out: { name: string; ip: string }[] = [];
    for (const n of names) {
      if (!CEPH_ID.test(n)) throw new NfError('validation_failed', `"${n}" cannot name a Ceph monitor`);
      const node: NodeRecord = (await this.registry.find(n)).value;
      if (n !== this.local.nodeName && !(await this.router.reach(n)))
        throw new NfError('unavailable', `host ${n} is not connected`);
      const ip = address ?? node.addresses[0];
      if (!ip) throw new NfError('validation_failed', `host ${n} has no address`);
      out.push({ name: n, ip });
    }
    return out;
  }

  private async poolSize(c: CephCluster): Promise<{ name: string; size: number; minSize: number }> {
    const get = async (k: string) =>
      Number(
        (
          JSON.parse(
            await c.admin(['osd', 'pool', 'get', INTEGRATED_POOL.cephPool, k, '--format', 'json']),
          ) as Record<string, number>
        )[k],
      );
    return { name: INTEGRATED_POOL.cephPool, size: await get('size'), minSize: await get('min_size') };
  }
}

function config(rec: CephRecord): CephClusterConfig {
  const c: CephClusterConfig = {
    fsid: rec.fsid,
    mons: rec.mons,
    poolSize: rec.poolSize,
    poolMinSize: rec.poolMinSize,
    failureDomain: rec.failureDomain,
    osdMemoryTargetBytes: rec.osdMemoryTargetBytes,
  };
  if (rec.monDataAvailWarn !== undefined) c.monDataAvailWarn = rec.monDataAvailWarn;
  return c;
}

/** A monitor's seed keyring: the mon. key and the two client keys, with their caps. */
function seedKeys(s: CephSecretsRecord): CephKey[] {
  return [
    { entity: 'mon.', key: s.mon, caps: { ...KEY_CAPS.mon } },
    { entity: 'client.admin', key: s.admin, caps: { ...KEY_CAPS.admin } },
    { entity: 'client.bootstrap-osd', key: s.bootstrapOsd, caps: { ...KEY_CAPS.bootstrapOsd } },
  ];
}

/** What a pool's replica count risks on a cluster with this many OSDs, in words an admin can act on. */
export function risk(
  size: number,
  minSize: number,
  osds: number,
  failureDomain: 'host' | 'osd' = 'osd',
  osdHosts = osds,
): { warning?: string } {
  if (size === 1) return { warning: 'one copy of every block: a failed disk loses data' };
  if (osds < size)
    return {
      warning: `${size} copies wanted but ${osds} OSD(s): the pool stays degraded until more OSDs are added`,
    };
  if (failureDomain === 'host' && osdHosts < size)
    return {
      warning: `${size} copies on different hosts wanted but only ${osdHosts} host(s) have OSDs: the pool stays degraded until OSDs are added on more hosts`,
    };
  if (failureDomain === 'osd' && size > 1)
    return {
      warning: `copies may share a host (failure domain osd): ${minSize < 2 ? 'writes go on with a single copy left, and ' : ''}one host failing can take every copy of a block`,
    };
  if (minSize < 2) return { warning: 'writes go on with a single copy left: a second failure loses data' };
  return {};
}
