import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { NfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { RbdPool } from './rbd-pool';

/**
 * A cluster-wide pool as the controller hands it to every host (over mTLS): enough to reach it. The key
 * is a secret: it lives in etcd, in this message and in a 0600 keyring on the host, never in an API
 * answer or a log.
 */
export interface SharedPoolConfig {
  name: string;
  type: 'rbd';
  /** The Ceph pool. */
  pool: string;
  /** Monitor addresses (host, host:port, or [v2:ip:3300,v1:ip:6789]). */
  monitors: string[];
  /** cephx user, without `client.`. */
  user: string;
  key: string;
}

const NAME = /^[a-z][a-z0-9-]{0,31}$/;
const USER = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;
const KEY = /^[A-Za-z0-9+/]{38,128}={0,2}$/;
const MONITOR = /^(\[[0-9a-fA-F:.,[\]v/]+\]|[a-zA-Z0-9.-]+(:\d{1,5})?|\[[0-9a-fA-F:]+\](:\d{1,5})?)$/;

/** Checks a config before anything is written from it (it ends up in a ceph.conf). */
export function checkSharedPool(c: SharedPoolConfig): void {
  const bad = (what: string) => new NfError('validation_failed', `pool ${c.name}: ${what}`);
  if (!NAME.test(c.name))
    throw bad('the name must be 1-32 lower-case letters, digits or -, starting with a letter');
  if (c.type !== 'rbd') throw bad(`type must be rbd, not ${c.type}`);
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$/.test(c.pool)) throw bad(`"${c.pool}" is not a Ceph pool name`);
  if (!USER.test(c.user)) throw bad(`"${c.user}" is not a cephx user name (without "client.")`);
  if (!KEY.test(c.key)) throw bad('the key is not a cephx key (base64, as `ceph auth get-key` prints it)');
  if (c.monitors.length === 0) throw bad('at least one monitor address is needed');
  for (const m of c.monitors) if (!MONITOR.test(m)) throw bad(`"${m}" is not a monitor address`);
}

/**
 * Writes a pool's ceph.conf and keyring under dir (0700; files 0600) and opens the rbd driver on them.
 * Only what the config says goes in: its values are checked first (no newline can add an option).
 */
export async function openSharedPool(dir: string, c: SharedPoolConfig): Promise<RbdPool> {
  checkSharedPool(c);
  const poolDir = join(dir, c.name);
  mkdirSync(poolDir, { recursive: true, mode: 0o700 });
  const keyring = join(poolDir, 'keyring');
  const conf = join(poolDir, 'ceph.conf');
  await writeFileAtomic(keyring, `[client.${c.user}]\n\tkey = ${c.key}\n`, 0o600);
  await writeFileAtomic(
    conf,
    [
      '[global]',
      `mon host = ${c.monitors.join(',')}`,
      `keyring = ${keyring}`,
      'auth client required = cephx',
      'rbd default clone format = 2',
      // a host that cannot reach the monitors fails a call instead of hanging (no OSD op timeout: a
      // guest's I/O waits for recovery rather than failing)
      'client mount timeout = 15',
      '',
    ].join('\n'),
    0o600,
  );
  return new RbdPool({ name: c.name, pool: c.pool, conf, user: c.user });
}

export function removeSharedPool(dir: string, name: string): void {
  if (!NAME.test(name)) return;
  rmSync(join(dir, name), { recursive: true, force: true });
}
