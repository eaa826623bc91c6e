import { parseArgs } from 'node:util';
import { NfError } from '../errors';
import { client, GLOBAL, need, type Out } from './commands';
import { table } from './table';

const USAGE = `use: network list | show NAME | create NAME --subnet CIDR [--gateway IP] [--dns IP ...] [--mtu N] | rm NAME`;

interface Network {
  name: string;
  type: string;
  subnet?: string;
  gateway?: string;
  dns?: string[];
  mtu?: number;
  nics: number;
  ports?: { vm: string; nic: string; mac: string; ip?: string }[];
}

/** `neuroflow network ...`: the networks NICs attach to (nat, OVN overlay), through the API. */
export async function networkCommand(argv: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      subnet: { type: 'string' },
      gateway: { type: 'string' },
      dns: { type: 'string', multiple: true },
      mtu: { type: 'string' },
    },
  });
  const api = client(values);
  const enc = encodeURIComponent;
  const json = (v: unknown) => out(JSON.stringify(v, null, 2));
  switch (positionals[0] ?? 'list') {
    case 'list': {
      const list = await api.request<Network[]>('GET', '/api/v1/networks');
      if (values.json) json(list);
      else
        out(
          table(
            list.map((n) => ({ ...n, subnet: n.subnet ?? '', mtu: n.mtu ?? '' })),
            ['name', 'type', 'subnet', 'gateway', 'mtu', 'nics'].map((key) => ({ key, title: key })),
          ),
        );
      return 0;
    }
    case 'show': {
      const n = await api.request<Network>('GET', `/api/v1/networks/${enc(need(positionals, 1, 'NAME'))}`);
      if (values.json) json(n);
      else {
        out(
          `${n.name}: ${n.type}${n.subnet ? ` ${n.subnet} gateway ${n.gateway} mtu ${n.mtu}` : ''}, ${n.nics} NIC(s)`,
        );
        if (n.ports?.length)
          out(
            table(
              n.ports.map((p) => ({ ...p, ip: p.ip ?? '(none yet)' })),
              ['vm', 'nic', 'mac', 'ip'].map((key) => ({ key, title: key })),
            ),
          );
      }
      return 0;
    }
    case 'create': {
      const name = need(positionals, 1, 'NAME');
      if (!values.subnet) throw new NfError('validation_failed', 'give --subnet CIDR (e.g. 10.10.0.0/24)');
      const n = await api.request<Network>('POST', '/api/v1/networks', {
        name,
        type: 'overlay',
        subnet: values.subnet,
        ...(values.gateway ? { gateway: values.gateway } : {}),
        ...(values.dns?.length ? { dns: values.dns } : {}),
        ...(values.mtu ? { mtu: Number(values.mtu) } : {}),
      });
      if (values.json) json(n);
      else out(`network ${n.name}: overlay ${n.subnet}, gateway ${n.gateway}, MTU ${n.mtu}`);
      return 0;
    }
    case 'rm': {
      const name = need(positionals, 1, 'NAME');
      await api.request('DELETE', `/api/v1/networks/${enc(name)}`);
      out(`network ${name} deleted`);
      return 0;
    }
    default:
      throw new NfError('validation_failed', USAGE);
  }
}
