/** IPv4 addresses and subnets as the network API takes them (no IPv6 yet). */
import { NfError } from '../errors';

export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new NfError('validation_failed', `not an IPv4 address: ${ip}`);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * A CIDR's network address and prefix; refuses host bits set. `minPrefix`/`maxPrefix` bound the size
 * (a network's subnet: /8 to /29, so DHCP has room; a route's destination: /0 to /32).
 */
export function parseCidr(
  cidr: string,
  what = 'subnet',
  minPrefix = 8,
  maxPrefix = 29,
): { base: number; prefix: number; size: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr);
  if (!m) throw new NfError('validation_failed', `${what}: an IPv4 CIDR such as 10.10.0.0/24, not "${cidr}"`);
  const prefix = Number(m[2]);
  if (prefix < minPrefix || prefix > maxPrefix)
    throw new NfError('validation_failed', `${what}: a prefix from /${minPrefix} to /${maxPrefix}`);
  const base = ipToInt(m[1]!);
  const size = 2 ** (32 - prefix);
  if (base % size !== 0)
    throw new NfError(
      'validation_failed',
      `${what}: ${cidr} has host bits set (${intToIp(base - (base % size))}/${prefix}?)`,
    );
  return { base, prefix, size };
}

/** A network's subnet: /8 to /29 (DHCP needs room). */
export function parseSubnet(cidr: string): { base: number; prefix: number; size: number } {
  return parseCidr(cidr);
}

/** Whether an address is a host address of the subnet (not its network or broadcast address). */
export function inSubnet(ip: string, subnet: string): boolean {
  const { base, size } = parseCidr(subnet, 'subnet', 0, 32);
  const a = ipToInt(ip);
  return a > base && a < base + size - 1;
}

/** Whether two CIDRs share an address. */
export function overlaps(a: string, b: string): boolean {
  const x = parseCidr(a, 'subnet', 0, 32);
  const y = parseCidr(b, 'subnet', 0, 32);
  return x.base < y.base + y.size && y.base < x.base + x.size;
}
