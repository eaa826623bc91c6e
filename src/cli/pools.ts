import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { NfError } from '../errors';
import { client, enc, GLOBAL, need, type Out } from './commands';
import { bytes, table } from './table';

interface Pool {
  name: string;
  type: string;
  totalBytes: number;
  freeBytes: number;
  hosts: { name: string }[];
  capabilities: { shared: boolean };
  vms: number;
  rbd?: { pool: string; monitors: string[]; user: string };
}

const USAGE =
  'use: pool list | show NAME | volumes NAME [--node HOST] | delete NAME |\n' +
  '     create NAME --type rbd --pool CEPH_POOL --monitor ADDR [--monitor ADDR...] --user USER --key-file FILE';

/** `neuroflow pool ...`: storage pools and their volumes. */
export async function poolCommand(argv: string[], out: Out): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      type: { type: 'string', default: 'rbd' },
      pool: { type: 'string' },
      monitor: { type: 'string', multiple: true },
      user: { type: 'string' },
      // a file, not an argument: arguments show in `ps`
      'key-file': { type: 'string' },
      node: { type: 'string' },
      description: { type: 'string' },
    },
  });
  const api = client(values);
  const [sub] = positionals;
  switch (sub) {
    case 'list': {
      const pools = await api.request<Pool[]>('GET', '/api/v1/pools');
      if (values.json) return out(JSON.stringify(pools, null, 2));
      out(
        table(
          pools.map((p) => ({
            ...p,
            scope: p.capabilities.shared ? 'shared' : 'per host',
            size: bytes(p.totalBytes),
            free: bytes(p.freeBytes),
            reach: p.hosts.map((h) => h.name).join(','),
          })),
          [
            { key: 'name', title: 'Name' },
            { key: 'type', title: 'Type' },
            { key: 'scope', title: 'Scope' },
            { key: 'size', title: 'Size' },
            { key: 'free', title: 'Free' },
            { key: 'vms', title: 'VMs' },
            { key: 'reach', title: 'Hosts' },
          ],
        ),
      );
      return;
    }
    case 'show':
      out(
        JSON.stringify(
          await api.request('GET', `/api/v1/pools/${enc(need(positionals, 1, 'pool name'))}`),
          null,
          2,
        ),
      );
      return;
    case 'volumes': {
      const q = values.node ? `?node=${enc(values.node)}` : '';
      const vols = await api.request<Record<string, unknown>[]>(
        'GET',
        `/api/v1/pools/${enc(need(positionals, 1, 'pool name'))}/volumes${q}`,
      );
      if (values.json) return out(JSON.stringify(vols, null, 2));
      out(
        table(
          vols.map((v) => ({
            ...v,
            size: bytes(v.virtualBytes as number),
            used: bytes(v.allocatedBytes as number),
            snaps: (v.snapshots as string[]).join(','),
          })),
          [
            { key: 'name', title: 'Volume' },
            { key: 'size', title: 'Size' },
            { key: 'used', title: 'Allocated' },
            { key: 'parent', title: 'Parent' },
            { key: 'snaps', title: 'Snapshots' },
          ],
        ),
      );
      return;
    }
    case 'create': {
      const keyFile = values['key-file'];
      if (!keyFile)
        throw new NfError(
          'validation_failed',
          'missing --key-file (the cephx key, as `ceph auth get-key` prints it)',
        );
      const body: Record<string, unknown> = {
        name: need(positionals, 1, 'pool name'),
        type: values.type,
        pool: values.pool ?? need([], 0, '--pool (the Ceph pool)'),
        monitors: values.monitor ?? need([], 0, '--monitor (a Ceph monitor address)'),
        user: values.user ?? need([], 0, '--user (the cephx user, without "client.")'),
        key: readFileSync(keyFile, 'utf8').trim(),
      };
      if (values.description) body.description = values.description;
      out(JSON.stringify(await api.request('POST', '/api/v1/pools', body), null, 2));
      return;
    }
    case 'delete':
      await api.request('DELETE', `/api/v1/pools/${enc(need(positionals, 1, 'pool name'))}`);
      out(`removed ${positionals[1]}`);
      return;
    default:
      throw new NfError('validation_failed', USAGE);
  }
}
