import { join } from 'node:path';

/** A monitor: its name (the host's) and the address it listens on (msgr2 on 3300, v1 on 6789). */
export interface MonAddress {
  name: string;
  ip: string;
}

/** What ceph.conf of an integrated cluster says; everything lives under `dir` (DATA_DIR/ceph). */
export interface CephConfig {
  fsid: string;
  mons: MonAddress[];
  dir: string;
  /** Replicas of new pools and how many must be up for I/O (3 and 2 for a real cluster). */
  poolSize: number;
  poolMinSize: number;
  /** Memory an OSD aims to use (Ceph's default 4 GiB is too much beside VMs). */
  osdMemoryTargetBytes: number;
  /** Replicas go to different hosts (`host`), or may share one (`osd`, single-host labs). */
  failureDomain: 'host' | 'osd';
  /** Free-space percentage of a mon's disk under which Ceph warns (default 30). */
  monDataAvailWarn?: number;
  /** This host's name: the CRUSH host bucket of its OSDs (not the kernel's hostname, which namespaces share). */
  hostName?: string;
  /** This host's address, bound by its OSDs and manager (absent: Ceph picks one). */
  hostIp?: string;
  /**
   * This host's monitor's address, when it has one: a monitor that joins an existing cluster is not in
   * the monmap it starts from, and must be told where to listen.
   */
  monIp?: string;
}

export function monAddrv(ip: string): string {
  const h = ip.includes(':') ? `[${ip}]` : ip;
  return `[v2:${h}:3300,v1:${h}:6789]`;
}

export const cephPaths = (dir: string) => ({
  conf: join(dir, 'ceph.conf'),
  run: join(dir, 'run'),
  log: join(dir, 'log'),
  keyring: (entity: string) => join(dir, 'keys', `${entity}.keyring`),
  monData: (id: string) => join(dir, 'mon', id),
  mgrData: (id: string) => join(dir, 'mgr', id),
  osdData: (id: number | string) => join(dir, 'osd', String(id)),
});

/**
 * ceph.conf for daemons and clients of this host. cephx everywhere, msgr2 in the mon addresses, keys in
 * DATA_DIR/ceph/keys (0600); `$name` expands to the entity (mon.a, osd.0, client.admin).
 */
export function renderCephConf(c: CephConfig): string {
  const p = cephPaths(c.dir);
  const lines = [
    '[global]',
    `fsid = ${c.fsid}`,
    `mon initial members = ${c.mons.map((m) => m.name).join(', ')}`,
    `mon host = ${c.mons.map((m) => monAddrv(m.ip)).join(',')}`,
    'auth cluster required = cephx',
    'auth service required = cephx',
    'auth client required = cephx',
    // without it health warns for ever (measured on Ceph 16)
    'auth allow insecure global id reclaim = false',
    `osd pool default size = ${c.poolSize}`,
    `osd pool default min size = ${c.poolMinSize}`,
    `osd crush chooseleaf type = ${c.failureDomain === 'host' ? 1 : 0}`,
    `osd memory target = ${c.osdMemoryTargetBytes}`,
    'rbd default clone format = 2',
    // A dead OSD is marked down after 10 s of missed heartbeats (pinged every 2 s) instead of Ceph's 20 s:
    // until then I/O to its placement groups waits, and so does HA's fencing and restart of the VMs of a
    // failed host (docs/ha.md).
    'osd heartbeat interval = 2',
    'osd heartbeat grace = 10',
    // and no longer: the monitors would stretch the grace of OSDs they saw lag (a loaded lab host's all)
    'mon osd adjust heartbeat grace = false',
    `run dir = ${p.run}`,
    `log file = ${p.log}/$name.log`,
    `admin socket = ${p.run}/$name.asok`,
    `keyring = ${c.dir}/keys/$name.keyring`,
  ];
  if (c.poolSize === 1)
    lines.push('mon allow pool size one = true', 'mon warn on pool no redundancy = false');
  if (c.monDataAvailWarn !== undefined) lines.push(`mon data avail warn = ${c.monDataAvailWarn}`);
  // OSDs and the manager bind to the host's address (the mon's is in the monmap).
  const bind = c.hostIp ? [`public addr = ${c.hostIp}`] : [];
  lines.push(
    '',
    '[mon]',
    `mon data = ${c.dir}/mon/$id`,
    ...(c.monIp ? [`public addr = ${c.monIp}`] : []),
    '',
    '[mgr]',
    `mgr data = ${c.dir}/mgr/$id`,
    ...bind,
    '',
    '[osd]',
    `osd data = ${c.dir}/osd/$id`,
    'osd objectstore = bluestore',
    // the block device or file is given at mkfs (--bluestore-block-path); mkfs links osd/<id>/block to it
    'bluestore block create = false',
    ...(c.hostName ? [`crush location = root=default host=${c.hostName}`] : []),
    ...bind,
    '',
  );
  return lines.join('\n');
}
