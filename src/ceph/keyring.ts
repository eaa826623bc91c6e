import { randomBytes } from 'node:crypto';
import { NfError } from '../errors';

/** A cephx entity's secret, and the caps it is created with (only the mon's seed keyring needs them). */
export interface CephKey {
  entity: string;
  key: string;
  caps?: Record<string, string>;
}

/** Caps of the keys every integrated cluster has (what `ceph-deploy` and Proxmox give them). */
export const KEY_CAPS = {
  mon: { mon: 'allow *' },
  admin: { mon: 'allow *', osd: 'allow *', mds: 'allow *', mgr: 'allow *' },
  bootstrapOsd: { mon: 'profile bootstrap-osd', mgr: 'allow r' },
} as const;

const ENTITY = /^(mon\.|(client|mgr|osd|mon)\.[A-Za-z0-9_.-]+)$/;
const KEY = /^[A-Za-z0-9+/]+={0,2}$/;
const CAP = /^[A-Za-z0-9 _=*,.:/-]+$/;

/**
 * A new cephx secret, as `ceph-authtool --gen-print-key` makes it: base64 of a CryptoKey (type 1 = AES,
 * creation time, length 16) and 16 random bytes.
 */
export function newCephKey(): string {
  const b = Buffer.alloc(12 + 16);
  b.writeUInt16LE(1, 0);
  const now = Date.now();
  b.writeUInt32LE(Math.floor(now / 1000), 2);
  b.writeUInt32LE((now % 1000) * 1_000_000, 6);
  b.writeUInt16LE(16, 10);
  randomBytes(16).copy(b, 12);
  return b.toString('base64');
}

/**
 * A keyring file (the format ceph-authtool writes). Entities, keys and caps are checked first: they come
 * over the wire, and a newline in one would add lines to the file.
 */
export function renderKeyring(keys: CephKey[]): string {
  const out: string[] = [];
  for (const k of keys) {
    if (!ENTITY.test(k.entity)) throw new NfError('validation_failed', `bad cephx entity "${k.entity}"`);
    if (!KEY.test(k.key)) throw new NfError('validation_failed', `bad cephx key for ${k.entity}`);
    out.push(`[${k.entity}]`, `\tkey = ${k.key}`);
    for (const [svc, cap] of Object.entries(k.caps ?? {})) {
      if (!/^(mon|osd|mds|mgr)$/.test(svc) || !CAP.test(cap))
        throw new NfError('validation_failed', `bad cap for ${k.entity}: ${svc}`);
      out.push(`\tcaps ${svc} = "${cap}"`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** The key of an entity in a keyring file's text. */
export function keyringKey(text: string): string | undefined {
  return /key = (\S+)/.exec(text)?.[1];
}
