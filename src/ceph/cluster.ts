import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { createLogger } from '../util/log';
import { waitFor } from '../util/wait';
import { type CephConfig, cephPaths, type MonAddress, monAddrv, renderCephConf } from './conf';
import { CephDaemon } from './daemon';
import { type CephKey, KEY_CAPS, newCephKey, renderKeyring } from './keyring';
import { cephTool } from './tools';

const log = createLogger('ceph');

/** Defaults of an integrated cluster: three replicas, two for I/O, one per host. */
export const CLUSTER_DEFAULTS = {
  poolSize: 3,
  poolMinSize: 2,
  failureDomain: 'host',
  osdMemoryTargetBytes: 896 * 1024 ** 2,
} as const satisfies Partial<CephConfig>;

export interface CephHealth {
  status: 'HEALTH_OK' | 'HEALTH_WARN' | 'HEALTH_ERR';
  checks: { name: string; severity: string; summary: string }[];
  mons: { total: number; inQuorum: string[] };
  osds: { total: number; up: number; in: number };
  pgs: { total: number; byState: Record<string, number> };
  /** While data is degraded or moving: how much, and how fast Ceph recovers it. */
  recovery?: { degradedRatio: number; misplacedRatio: number; bytesPerSec: number; objectsPerSec: number };
}

/**
 * The integrated Ceph of this host: its config and keys under DATA_DIR/ceph, the daemons it runs (found
 * from their data dirs), and the admin tools. `bootstrap` makes a new cluster with this host's mon and
 * mgr; OSDs are added one by one on a device or a file.
 */
export class CephCluster {
  private readonly daemons = new Map<string, CephDaemon>();
  private superviseTimer?: Timer;
  private stopping = false;

  constructor(readonly dir: string) {}

  get paths() {
    return cephPaths(this.dir);
  }

  /** A cluster's config exists here (bootstrapped, or joined later). */
  exists(): boolean {
    return existsSync(this.paths.conf);
  }

  /**
   * Makes a new cluster with this host as its only monitor and manager, and starts both (labs and tests;
   * the product goes through CephService, which does the same steps across hosts).
   */
  static async bootstrap(
    dir: string,
    host: MonAddress,
    opts: Partial<CephConfig> = {},
  ): Promise<CephCluster> {
    const c = new CephCluster(dir);
    if (c.exists()) throw new NfError('already_exists', `a Ceph cluster is already set up in ${dir}`);
    const config: CephConfig = { ...CLUSTER_DEFAULTS, ...opts, fsid: randomUUID(), mons: [host], dir };
    const keys = newClusterKeys();
    await c.configure(config, [keys.admin, keys.bootstrapOsd]);
    await c.makeMon(host.name, await makeMonmap(config.fsid, [host], dir), Object.values(keys));
    // Clone v2 (no protect/unprotect) needs every client at mimic or later.
    await c.admin(['osd', 'set-require-min-compat-client', 'mimic']);
    await c.addMgr(host.name);
    log.info('Ceph cluster bootstrapped', { fsid: config.fsid, mon: host.name });
    return c;
  }

  /** Writes this host's ceph.conf and the keyrings given (0600, one file per entity). */
  async configure(config: Omit<CephConfig, 'dir'>, keys: CephKey[]): Promise<void> {
    const p = this.paths;
    for (const d of [
      this.dir,
      `${this.dir}/keys`,
      p.run,
      p.log,
      `${this.dir}/mon`,
      `${this.dir}/mgr`,
      `${this.dir}/osd`,
    ])
      mkdirSync(d, { recursive: true, mode: 0o700 });
    await writeFileAtomic(p.conf, renderCephConf({ ...config, dir: this.dir }), 0o600);
    for (const k of keys) {
      if (k.entity === 'mon.') continue; // only in a monitor's seed keyring
      await writeFileAtomic(p.keyring(k.entity), renderKeyring([{ entity: k.entity, key: k.key }]), 0o600);
    }
  }

  /**
   * A monitor on this host from the cluster's monmap, seeded with the keys given (with their caps: the
   * mon., client.admin and client.bootstrap-osd keys), and started. A monitor already made is started.
   */
  async makeMon(name: string, monmap: Buffer, keys: CephKey[]): Promise<void> {
    const data = this.paths.monData(name);
    if (!existsSync(join(data, 'keyring'))) {
      rmSync(data, { recursive: true, force: true }); // a half-made one from a failed mkfs
      const seed = this.paths.keyring(`mon.${name}`);
      await writeFileAtomic(seed, renderKeyring(keys), 0o600);
      const map = join(this.dir, `monmap.${name}`);
      await writeFile(map, monmap, { mode: 0o600 });
      try {
        await this.tool('ceph-mon', ['--mkfs', '-i', name, '--monmap', map, '--keyring', seed]);
      } finally {
        rmSync(map, { force: true });
      }
    }
    await this.startDaemon('mon', name);
  }

  /** A manager on this host with its key made by the cluster (admin key needed), started. */
  async addMgr(id: string): Promise<void> {
    await this.admin(
      ['auth', 'get-or-create', `mgr.${id}`, 'mon', 'allow profile mgr', 'osd', 'allow *', 'mds', 'allow *'],
      { out: this.paths.keyring(`mgr.${id}`) },
    );
    await this.makeMgr(id);
  }

  /** A manager on this host whose keyring is already under keys/, started. */
  async makeMgr(id: string): Promise<void> {
    if (!existsSync(this.paths.keyring(`mgr.${id}`)))
      throw new NfError('invalid_state', `mgr.${id} has no key on this host`);
    mkdirSync(this.paths.mgrData(id), { recursive: true, mode: 0o700 });
    await this.startDaemon('mgr', id);
  }

  /** OSD ids with a data dir on this host. */
  osdIds(): number[] {
    const root = `${this.dir}/osd`;
    return existsSync(root)
      ? readdirSync(root)
          .map(Number)
          .filter((n) => Number.isInteger(n))
      : [];
  }

  /**
   * Stops this host's daemons and removes its Ceph files: only for a cluster that holds no data here (a
   * bootstrap that failed half-way). Refused while an OSD of this host exists.
   */
  async purge(): Promise<void> {
    if (this.osdIds().length > 0)
      throw new NfError(
        'invalid_state',
        `this host has OSDs (${this.osdIds().join(', ')}); not removing Ceph here`,
      );
    await this.stop({ daemons: true });
    this.daemons.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * An OSD on a block device, or on a file (made sparse when it does not exist: labs and tests). The
   * device must not hold data: bluestore's mkfs overwrites it. Returns the OSD id.
   */
  async addOsd(target: { device: string } | { file: string; sizeBytes: number }): Promise<number> {
    const uuid = randomUUID();
    const secret = (await cephTool('ceph-authtool', ['--gen-print-key'], { what: 'ceph-authtool' })).trim();
    const id = Number(
      (
        await this.tool('ceph', ['--id', 'bootstrap-osd', 'osd', 'new', uuid, '-i', '-'], {
          input: JSON.stringify({ cephx_secret: secret }),
        })
      ).trim(),
    );
    if (!Number.isInteger(id)) throw new NfError('internal', `ceph osd new gave no id`);
    const data = this.paths.osdData(id);
    mkdirSync(data, { recursive: true, mode: 0o700 });
    const block = 'device' in target ? target.device : target.file;
    if ('file' in target && !existsSync(target.file)) {
      await writeFile(target.file, '', { mode: 0o600 });
      await truncate(target.file, target.sizeBytes);
    }
    await cephTool(
      'ceph-authtool',
      ['--create-keyring', this.paths.keyring(`osd.${id}`), '--name', `osd.${id}`, '--add-key', secret],
      { what: 'ceph-authtool' },
    );
    const mkfs = ['--conf', this.paths.conf, '-i', String(id), '--mkfs', '--osd-uuid', uuid];
    await cephTool('ceph-osd', [...mkfs, '--bluestore-block-path', block], {
      what: `ceph-osd --mkfs (osd.${id})`,
      timeoutMs: 180_000,
    });
    await this.startDaemon('osd', String(id));
    return id;
  }

  /** An RBD pool (replicas from the config unless given), with the rbd application enabled. */
  async createPool(
    name: string,
    opts: { size?: number; minSize?: number; pgs?: number } = {},
  ): Promise<void> {
    await this.admin(['osd', 'pool', 'create', name, String(opts.pgs ?? 32)]);
    if (opts.size !== undefined)
      await this.admin(['osd', 'pool', 'set', name, 'size', String(opts.size), '--yes-i-really-mean-it']);
    if (opts.minSize !== undefined)
      await this.admin(['osd', 'pool', 'set', name, 'min_size', String(opts.minSize)]);
    await this.admin(['osd', 'pool', 'application', 'enable', name, 'rbd']);
  }

  /** A cephx user limited to RBD on the given pools; its keyring is written under keys/ (0600). */
  async rbdUser(user: string, pools: string[]): Promise<string> {
    const osd = pools.map((p) => `profile rbd pool=${p}`).join(', ');
    const out = this.paths.keyring(`client.${user}`);
    await this.admin(
      ['auth', 'get-or-create', `client.${user}`, 'mon', 'profile rbd', 'osd', osd, 'mgr', osd],
      {
        out,
      },
    );
    return out;
  }

  async health(): Promise<CephHealth> {
    type Status = {
      health: {
        status: CephHealth['status'];
        checks: Record<string, { severity: string; summary: { message: string } }>;
      };
      quorum_names: string[];
      monmap: { num_mons?: number; mons?: unknown[] };
      osdmap: { num_osds: number; num_up_osds: number; num_in_osds: number };
      pgmap: {
        num_pgs: number;
        pgs_by_state?: { state_name: string; count: number }[];
        degraded_ratio?: number;
        misplaced_ratio?: number;
        recovering_bytes_per_sec?: number;
        recovering_objects_per_sec?: number;
      };
    };
    const s = JSON.parse(await this.admin(['status', '--format', 'json'])) as Status;
    const pg = s.pgmap;
    const recovering =
      (pg.degraded_ratio ?? 0) > 0 || (pg.misplaced_ratio ?? 0) > 0 || (pg.recovering_bytes_per_sec ?? 0) > 0;
    return {
      ...(recovering
        ? {
            recovery: {
              degradedRatio: pg.degraded_ratio ?? 0,
              misplacedRatio: pg.misplaced_ratio ?? 0,
              bytesPerSec: pg.recovering_bytes_per_sec ?? 0,
              objectsPerSec: pg.recovering_objects_per_sec ?? 0,
            },
          }
        : {}),
      status: s.health.status,
      checks: Object.entries(s.health.checks).map(([name, c]) => ({
        name,
        severity: c.severity,
        summary: c.summary.message,
      })),
      mons: { total: s.monmap.num_mons ?? s.monmap.mons?.length ?? 0, inQuorum: s.quorum_names },
      osds: { total: s.osdmap.num_osds, up: s.osdmap.num_up_osds, in: s.osdmap.num_in_osds },
      pgs: {
        total: s.pgmap.num_pgs,
        byState: Object.fromEntries((s.pgmap.pgs_by_state ?? []).map((x) => [x.state_name, x.count])),
      },
    };
  }

  /**
   * Waits until health is OK and every PG active+clean; `tolerate` names checks that may stay (a lab on a
   * fuller disk than Ceph likes: MON_DISK_LOW).
   */
  async waitHealthy(timeoutMs: number, tolerate: string[] = []): Promise<CephHealth> {
    return waitFor(
      async () => {
        const h = await this.health().catch(() => undefined);
        if (!h || (h.status !== 'HEALTH_OK' && !h.checks.every((c) => tolerate.includes(c.name))))
          return undefined;
        return (h.pgs.byState['active+clean'] ?? 0) === h.pgs.total ? h : undefined;
      },
      { timeoutMs, intervalMs: 500, what: 'Ceph to be HEALTH_OK with every PG active+clean' },
    );
  }

  /** Starts (or adopts) every daemon this host has a data dir for, and supervises them. */
  async start(): Promise<void> {
    this.stopping = false;
    for (const [type, root] of [
      ['mon', `${this.dir}/mon`],
      ['mgr', `${this.dir}/mgr`],
      ['osd', `${this.dir}/osd`],
    ] as const) {
      if (!existsSync(root)) continue;
      for (const id of readdirSync(root).sort()) await this.startDaemon(type, id);
    }
    this.supervise();
  }

  /** Supervises again after stop() (a host given new daemons). */
  resume(): void {
    this.stopping = false;
  }

  /** Stops supervising; with `daemons`, also stops every daemon (a host going down). */
  async stop(opts: { daemons?: boolean } = {}): Promise<void> {
    this.stopping = true;
    if (this.superviseTimer) clearInterval(this.superviseTimer);
    this.superviseTimer = undefined;
    if (opts.daemons) {
      // OSDs first, the mon last: the cluster sees them leave.
      const order = [...this.daemons.values()].sort((a, b) => rank(a.type) - rank(b.type));
      for (const d of order) await d.stop();
    }
  }

  /** The daemons this object runs, with their pids (undefined: not running). */
  list(): { entity: string; pid: number | undefined; restarts: number }[] {
    return [...this.daemons.values()].map((d) => ({
      entity: d.entity,
      pid: d.running(),
      restarts: d.restarts,
    }));
  }

  /** Runs `ceph` as client.admin; with `out`, writes its output to that file (0600). */
  async admin(args: string[], opts: { out?: string } = {}): Promise<string> {
    // A cluster without a quorum makes `ceph` wait for ever: give up after 15 s.
    const out = await this.tool('ceph', ['--connect-timeout', '15', '--id', 'admin', ...args]);
    if (opts.out) await writeFileAtomic(opts.out, out, 0o600);
    return out;
  }

  private tool(bin: string, args: string[], opts: { input?: string } = {}): Promise<string> {
    return cephTool(bin, ['--conf', this.paths.conf, ...args], {
      ...opts,
      what: `${bin} ${args
        .filter((a) => !a.startsWith('-'))
        .slice(0, 3)
        .join(' ')}`,
      timeoutMs: 60_000,
    });
  }

  private async startDaemon(type: 'mon' | 'mgr' | 'osd', id: string): Promise<void> {
    const key = `${type}.${id}`;
    let d = this.daemons.get(key);
    if (!d) {
      d = new CephDaemon(type, id, this.dir);
      this.daemons.set(key, d);
    }
    await d.start();
    this.supervise();
  }

  private supervise(): void {
    if (this.superviseTimer || this.stopping) return;
    this.superviseTimer = setInterval(() => {
      for (const d of this.daemons.values())
        d.supervise().catch((err) => log.error('Ceph daemon restart failed', { daemon: d.entity, err }));
    }, 1000);
  }
}

function rank(t: 'mon' | 'mgr' | 'osd'): number {
  return t === 'osd' ? 0 : t === 'mgr' ? 1 : 2;
}

/** The fsid of the cluster configured in dir (from its ceph.conf). */
export function cephFsid(dir: string): string | undefined {
  return /^fsid = (.+)$/m.exec(readFileSync(cephPaths(dir).conf, 'utf8'))?.[1];
}

/** The three keys a new cluster starts with, with their caps. */
export function newClusterKeys(): { mon: CephKey; admin: CephKey; bootstrapOsd: CephKey } {
  return {
    mon: { entity: 'mon.', key: newCephKey(), caps: { ...KEY_CAPS.mon } },
    admin: { entity: 'client.admin', key: newCephKey(), caps: { ...KEY_CAPS.admin } },
    bootstrapOsd: { entity: 'client.bootstrap-osd', key: newCephKey(), caps: { ...KEY_CAPS.bootstrapOsd } },
  };
}

/** The initial monmap of a new cluster (msgr2 and v1 addresses of every monitor). */
export async function makeMonmap(fsid: string, mons: MonAddress[], tmpDir: string): Promise<Buffer> {
  const file = join(tmpDir, `monmap.new.${process.pid}`);
  mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
  try {
    const add = mons.flatMap((m) => ['--addv', m.name, monAddrv(m.ip)]);
    await cephTool('monmaptool', ['--create', ...add, '--fsid', fsid, '--clobber', file], {
      what: 'monmaptool',
    });
    return readFileSync(file);
  } finally {
    rmSync(file, { force: true });
  }
}
