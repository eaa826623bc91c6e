import { createServer, isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';

/** Asks the kernel for a free TCP port on the given loopback address. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Splits "host:port" (IPv6 in brackets allowed) and validates the port. */
export function parseHostPort(value: string, defaultPort: number): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*))(?::(\d+))?$/.exec(value);
  if (!m) throw new Error(`"${value}" is not HOST:PORT`);
  const host = m[1] ?? m[2] ?? '';
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port in "${value}"`);
  return { host: host === '' ? '127.0.0.1' : host, port };
}

/** Only literal loopback addresses count: a name like "127.example.com" could resolve anywhere. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIPv4(host) && host.startsWith('127.');
}

/** Whether an IP address lies in a CIDR block ("10.1.0.0/16", "fd00::/64"). Throws on a malformed CIDR. */
export function inCidr(ip: string, cidr: string): boolean {
  const [base, lenText] = cidr.split('/');
  const len = Number(lenText);
  const b = ipBytes(base ?? '');
  const max = b ? b.length * 8 : 0;
  if (!b || lenText === undefined || !Number.isInteger(len) || len < 0 || len > max)
    throw new Error(`"${cidr}" is not a CIDR block (address/prefix length)`);
  const a = ipBytes(ip);
  if (!a || a.length !== b.length) return false;
  for (let bit = 0; bit < len; bit++) {
    const mask = 0x80 >> (bit % 8);
    if ((a[bit >> 3]! & mask) !== (b[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** The bytes of an IPv4 or IPv6 address; undefined when it is neither. */
function ipBytes(ip: string): number[] | undefined {
  if (isIPv4(ip)) return ip.split('.').map(Number);
  if (!isIPv6(ip)) return undefined;
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const part = (s: string | undefined) => (s ? s.split(':') : []);
  const h = part(head);
  const t = part(tail);
  // an embedded IPv4 tail ("::ffff:1.2.3.4") counts as two groups
  const expand = (groups: string[]) =>
    groups.flatMap((g) => {
      if (!isIPv4(g)) return [g];
      const [p, q, r, s] = g.split('.').map(Number) as [number, number, number, number];
      return [((p << 8) | q).toString(16), ((r << 8) | s).toString(16)];
    });
  const hh = expand(h);
  const tt = expand(t);
  const groups = tail === undefined ? hh : [...hh, ...new Array(8 - hh.length - tt.length).fill('0'), ...tt];
  if (groups.length !== 8) return undefined;
  return groups.flatMap((g) => {
    const n = Number.parseInt(g, 16);
    return [(n >> 8) & 0xff, n & 0xff];
  });
}

/** This host's first address in a CIDR block (from its interfaces), if it has one. */
export function addressIn(
  cidr: string,
  interfaces: Record<string, { address: string; internal: boolean }[] | undefined> = networkInterfaces(),
): string | undefined {
  for (const list of Object.values(interfaces))
    for (const a of list ?? []) if (!a.internal && inCidr(a.address.split('%')[0]!, cidr)) return a.address;
  return undefined;
}
