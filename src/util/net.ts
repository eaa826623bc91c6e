import { createServer, isIPv4 } from 'node:net';

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
