import { parseArgs } from 'node:util';
import type { CephStatus } from '../ceph/service';
import { NfError } from '../errors';
import { client, GLOBAL, intFlag, need, type Out } from './commands';
import { bytes, table } from './table';

const USAGE =
  'use: ceph status | bootstrap [--monitor HOST...] [--size N] [--min-size N] [--failure-domain host|osd] |\n' +
  '     osd add HOST DEVICE [--size-gib N] | mon add HOST [--address IP]';

/** `neuroflow ceph ...`: the integrated Ceph cluster. */
export async function cephCommand(argv: string[], out: Out): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      monitor: { type: 'string', multiple: true },
      size: { type: 'string' },
      'min-size': { type: 'string' },
      'failure-domain': { type: 'string' },
      'size-gib': { type: 'string' },
      address: { type: 'string' },
    },
  });
  const api = client(values);
  const show = (s: CephStatus) => (values.json ? out(JSON.stringify(s, null, 2)) : out(render(s)));
  const [sub, what] = positionals;
  switch (sub) {
    case 'status':
    case undefined:
      return show(await api.request<CephStatus>('GET', '/api/v1/ceph'));
    case 'bootstrap': {
      const body: Record<string, unknown> = {};
      if (values.monitor) body.monitors = values.monitor;
      const size = intFlag('size', values.size);
      const minSize = intFlag('min-size', values['min-size']);
      if (size !== undefined) body.size = size;
      if (minSize !== undefined) body.minSize = minSize;
      if (values['failure-domain']) body.failureDomain = values['failure-domain'];
      return show(await api.request<CephStatus>('POST', '/api/v1/ceph', body));
    }
    case 'osd':
      if (what !== 'add') break;
      {
        const body: Record<string, unknown> = {
          node: need(positionals, 2, 'host'),
          device: need(positionals, 3, 'device (/dev/sdX, or a file under a host path)'),
        };
        const gib = intFlag('size-gib', values['size-gib']);
        if (gib !== undefined) body.sizeGiB = gib;
        return show(await api.request<CephStatus>('POST', '/api/v1/ceph/osds', body));
      }
    case 'mon':
      if (what !== 'add') break;
      {
        const body: Record<string, unknown> = { node: need(positionals, 2, 'host') };
        if (values.address) body.address = values.address;
        return show(await api.request<CephStatus>('POST', '/api/v1/ceph/mons', body));
      }
  }
  throw new NfError('validation_failed', USAGE);
}

/** The status as an admin reads it: health first, then monitors, OSDs and daemons. */
export function render(s: CephStatus): string {
  if (!s.configured) return 'Ceph is not set up (neuroflow ceph bootstrap)';
  const lines = [`fsid ${s.fsid}${s.state === 'bootstrapping' ? ' (being set up)' : ''}`];
  if (s.health) {
    lines.push(`health ${s.health.status}`);
    for (const c of s.health.checks) lines.push(`  ${c.severity} ${c.name}: ${c.summary}`);
    const h = s.health;
    lines.push(
      `pgs ${h.pgs.total}: ${Object.entries(h.pgs.byState)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ')}`,
    );
    if (h.recovery)
      lines.push(
        `recovery: ${(h.recovery.degradedRatio * 100).toFixed(1)}% degraded, ${(h.recovery.misplacedRatio * 100).toFixed(1)}% misplaced, ${bytes(h.recovery.bytesPerSec)}/s`,
      );
  } else if (s.error) lines.push(`health unknown: ${s.error}`);
  if (s.pool) lines.push(`pool ${s.pool.name}: ${s.pool.size} copies, ${s.pool.minSize} for I/O`);
  if (s.pool?.warning) lines.push(`  warning: ${s.pool.warning}`);
  lines.push(
    '',
    table(
      s.monitors.map((m) => ({ ...m, quorum: m.inQuorum ? 'yes' : 'no' })),
      [
        { key: 'name', title: 'Monitor' },
        { key: 'ip', title: 'Address' },
        { key: 'quorum', title: 'In quorum' },
      ],
    ),
  );
  if (s.osds.length > 0)
    lines.push(
      '',
      table(
        s.osds.map((o) => ({
          ...o,
          id: `osd.${o.id}`,
          up: o.up === undefined ? '?' : o.up ? 'up' : 'down',
          in: o.in === undefined ? '?' : o.in ? 'in' : 'out',
        })),
        [
          { key: 'id', title: 'OSD' },
          { key: 'node', title: 'Host' },
          { key: 'device', title: 'Device' },
          { key: 'up', title: 'Up' },
          { key: 'in', title: 'In' },
        ],
      ),
    );
  if (s.unreachableHosts.length > 0) lines.push('', `hosts not answering: ${s.unreachableHosts.join(', ')}`);
  return lines.join('\n');
}
