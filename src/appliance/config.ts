import { spawnSync } from 'node:child_process';
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
// The namespace (not `{ z }`): zod's `export { z }` comes out undefined under vitest on Bun.
import * as z from 'zod';
import { hashPassword } from '../api/sessions';
import { NfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { ipv4InSubnet, isIpv4 } from './network';

/** Where the appliance keeps its config: on the NF-DATA partition (or the live system's tmpfs). */
export const APPLIANCE_DATA_DIR = process.env.NEUROFLOW_DATA_DIR ?? '/var/lib/neuroflow';
export const configPath = (dataDir = APPLIANCE_DATA_DIR) => join(dataDir, 'appliance', 'config.json');

const HOST_NAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IFACE = /^[a-zA-Z0-9_.-]{1,15}$/;

/** An IPv4/IPv6 address with a prefix length, e.g. 192.168.1.10/24. */
export function isCidr(v: string): boolean {
  const [addr, len, ...rest] = v.split('/');
  if (rest.length || !addr || len === undefined || !/^\d{1,3}$/.test(len)) return false;
  const family = isIP(addr);
  const n = Number(len);
  return (family === 4 && n >= 1 && n <= 32) || (family === 6 && n >= 1 && n <= 128);
}

export const NetworkConfig = z
  .strictObject({
    interface: z.string().regex(IFACE, 'an interface name such as eth0'),
    mode: z.enum(['dhcp', 'static']),
    address: z.string().refine(isCidr, 'an address with its prefix, e.g. 192.168.1.10/24').optional(),
    gateway: z
      .string()
      .refine((v) => isIP(v) !== 0, 'an IP address')
      .optional(),
    dns: z
      .array(z.string().refine((v) => isIP(v) !== 0, 'an IP address'))
      .max(3)
      .default([]),
    vlan: z.number().int().min(0).max(4094).default(0),
  })
  .superRefine((n, ctx) => {
    if (n.mode !== 'static') return;
    if (!n.address)
      ctx.addIssue({ code: 'custom', path: ['address'], message: 'a static address is required' });
    if (!n.gateway)
      ctx.addIssue({ code: 'custom', path: ['gateway'], message: 'a static address needs a gateway' });
    if (n.dns.length === 0)
      ctx.addIssue({ code: 'custom', path: ['dns'], message: 'a static address needs a DNS server' });
    const addr = n.address?.split('/')[0];
    if (n.address && n.gateway && addr && isIpv4(addr) && isIpv4(n.gateway)) {
      if (!ipv4InSubnet(n.gateway, n.address))
        ctx.addIssue({
          code: 'custom',
          path: ['gateway'],
          message: `${n.gateway} is not in the subnet of ${n.address}`,
        });
      else if (n.gateway === addr)
        ctx.addIssue({
          code: 'custom',
          path: ['gateway'],
          message: "the gateway cannot be the host's address",
        });
    }
  });

export const ClusterChoice = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('none') }),
  z.strictObject({ mode: z.literal('create'), name: z.string().min(1).max(43).optional() }),
  z.strictObject({ mode: z.literal('join'), token: z.string().min(1).max(8192) }),
  /** Joined (or created) once: serve carries on with the cluster in the data dir. */
  z.strictObject({ mode: z.literal('member') }),
]);

export const ApplianceConfig = z.strictObject({
  version: z.literal(1),
  hostname: z.string().regex(HOST_NAME, 'lowercase letters, digits and -, up to 63'),
  network: NetworkConfig,
  rootPassword: z
    .strictObject({
      shadow: z.string().startsWith('$6$'),
      scrypt: z.strictObject({ salt: z.string(), hash: z.string() }),
    })
    .optional(),
  cluster: ClusterChoice,
  ssh: z.strictObject({ enabledUntil: z.string().nullable() }).default({ enabledUntil: null }),
});

export type ApplianceConfig = z.infer<typeof ApplianceConfig>;
export type NetworkConfig = z.infer<typeof NetworkConfig>;

export function defaultConfig(): ApplianceConfig {
  return {
    version: 1,
    hostname: `neuroflow-${randomBytes(2).toString('hex')}`,
    network: { interface: 'eth0', mode: 'dhcp', dns: [], vlan: 0 },
    cluster: { mode: 'none' },
    ssh: { enabledUntil: null },
  };
}

/** Validates a config (from a file, the TUI or an answer file); the error names the field. */
export function parseConfig(value: unknown): ApplianceConfig {
  const r = ApplianceConfig.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new NfError('validation_failed', `appliance config: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  return r.data;
}

/** The config in DATA_DIR, undefined before the first one is written; a broken file throws naming it. */
export function readConfig(dataDir = APPLIANCE_DATA_DIR): ApplianceConfig | undefined {
  const p = configPath(dataDir);
  if (!existsSync(p)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(p, 'utf8'));
  } catch (err) {
    throw new NfError('validation_failed', `appliance config ${p}: not JSON: ${(err as Error).message}`);
  }
  try {
    return parseConfig(value);
  } catch (err) {
    throw new NfError('validation_failed', `${p}: ${(err as Error).message}`);
  }
}

export async function writeConfig(cfg: ApplianceConfig, dataDir = APPLIANCE_DATA_DIR): Promise<void> {
  await writeFileAtomic(configPath(dataDir), `${JSON.stringify(parseConfig(cfg), null, 2)}\n`, 0o600);
}

/**
 * Both hashes of the root password: SHA-512 crypt for the Linux account (console, SSH), made by busybox
 * mkpasswd with the password on stdin (never in argv), and scrypt for NeuroFlow's root login.
 */
export function hashRootPassword(password: string): NonNullable<ApplianceConfig['rootPassword']> {
  if (password.length < 8)
    throw new NfError('validation_failed', 'the root password needs at least 8 characters');
  const salt = randomBytes(12)
    .toString('base64')
    .replace(/[^a-zA-Z0-9./]/g, '.')
    .slice(0, 16);
  const r = spawnSync(busybox(), ['mkpasswd', '-m', 'sha512', '-S', salt], {
    input: `${password}\n`,
    encoding: 'utf8',
  });
  const shadow = r.stdout?.trim() ?? '';
  if (r.status !== 0 || !shadow.startsWith('$6$'))
    throw new NfError(
      'internal',
      `cannot hash the password: ${r.stderr || r.error?.message || 'busybox mkpasswd failed'}`,
    );
  return { shadow, scrypt: hashPassword(password) };
}

/** Checks a password against the config's scrypt hash (the console's F2/F12 login). */
export function verifyRootPassword(password: string, hashes: ApplianceConfig['rootPassword']): boolean {
  if (!hashes) return false;
  const want = Buffer.from(hashes.scrypt.hash, 'base64');
  if (want.length === 0) return false;
  const got = scryptSync(password, Buffer.from(hashes.scrypt.salt, 'base64'), want.length);
  return timingSafeEqual(got, want);
}

function busybox(): string {
  return existsSync('/bin/busybox') ? '/bin/busybox' : 'busybox';
}
