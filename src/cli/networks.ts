import { parseArgs } from 'node:util';
import { NfError } from '../errors';
import { client, GLOBAL, need, type Out } from './commands';
import { table } from './table';

const USAGE = `use: network list | show NAME | create NAME --subnet CIDR [--gateway IP] [--dns IP ...] [--mtu N] [--provider [--physical-network P] [--vlan N] [--dhcp]] | rm NAME`;

interface Network {
  name: string;
  type: string;
  subnet?: string;
  gateway?: string;
  dns?: string[];
  mtu?: number;
  physicalNetwork?: string;
  vlan?: number;
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
      provider: { type: 'boolean' },
      'physical-network': { type: 'string' },
      vlan: { type: 'string' },
      dhcp: { type: 'boolean' },
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
            list.map((n) => ({ ...n, subnet: n.subnet ?? '', mtu: n.mtu ?? '', vlan: n.vlan ?? '' })),
            ['name', 'type', 'subnet', 'gateway', 'mtu', 'vlan', 'nics'].map((key) => ({ key, title: key })),
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
        type: values.provider ? 'provider' : 'overlay',
        subnet: values.subnet,
        ...(values.gateway ? { gateway: values.gateway } : {}),
        ...(values.dns?.length ? { dns: values.dns } : {}),
        ...(values.mtu ? { mtu: Number(values.mtu) } : {}),
        ...(values['physical-network'] ? { physicalNetwork: values['physical-network'] } : {}),
        ...(values.vlan ? { vlan: Number(values.vlan) } : {}),
        ...(values.dhcp ? { dhcp: true } : {}),
      });
      if (values.json) json(n);
      else
        out(
          `network ${n.name}: ${n.type} ${n.subnet}, gateway ${n.gateway}, MTU ${n.mtu}${n.physicalNetwork ? `, on ${n.physicalNetwork}${n.vlan ? ` VLAN ${n.vlan}` : ''}` : ''}`,
        );
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

interface Router {
  name: string;
  networks: string[];
  uplink?: { network: string; ip: string; snat: boolean };
  routes: { destination: string; nexthop: string }[];
  floatingIps: { ip: string; vm?: string; vmId: string; nic: string; internalIp?: string }[];
  gatewayHosts?: string[];
}

const ROUTER_USAGE =
  'use: router list | show NAME | create NAME [--network N]... [--uplink NET[:IP]] [--no-snat] [--route DEST=NEXTHOP]... | set NAME [--network N]... [--uplink NET[:IP] | --no-uplink] [--route DEST=NEXTHOP]... [--no-routes] | rm NAME | fip add ROUTER VM [--nic NIC] [--ip IP] | fip rm ROUTER IP';

function parseRoute(r: string): { destination: string; nexthop: string } {
  const [destination, nexthop] = r.split('=');
  if (!destination || !nexthop)
    throw new NfError('validation_failed', `--route ${r}: DEST=NEXTHOP, e.g. 10.99.0.0/16=10.10.0.5`);
  return { destination, nexthop };
}

function parseUplink(u: string, snat: boolean): { network: string; ip?: string; snat: boolean } {
  const [network, ip] = u.split(':');
  return { network: network!, ...(ip ? { ip } : {}), snat };
}

function showRouter(r: Router, out: Out): void {
  out(`${r.name}: networks ${r.networks.join(', ') || '(none)'}`);
  if (r.uplink)
    out(
      `uplink:   ${r.uplink.network} ${r.uplink.ip}${r.uplink.snat ? ' (SNAT of the inside networks)' : ''}${r.gatewayHosts?.length ? `, active on ${r.gatewayHosts[0]} (then ${r.gatewayHosts.slice(1).join(', ') || 'none'})` : ''}`,
    );
  for (const rt of r.routes) out(`route:    ${rt.destination} via ${rt.nexthop}`);
  for (const f of r.floatingIps)
    out(`floating: ${f.ip} -> ${f.vm ?? f.vmId} ${f.nic}${f.internalIp ? ` (${f.internalIp})` : ''}`);
}

/** `neuroflow router ...`: OVN routers between networks, uplinks, floating IPs, static routes. */
export async function routerCommand(argv: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      network: { type: 'string', multiple: true },
      uplink: { type: 'string' },
      'no-uplink': { type: 'boolean' },
      'no-snat': { type: 'boolean' },
      route: { type: 'string', multiple: true },
      'no-routes': { type: 'boolean' },
      nic: { type: 'string' },
      ip: { type: 'string' },
    },
  });
  const api = client(values);
  const enc = encodeURIComponent;
  const json = (v: unknown) => out(JSON.stringify(v, null, 2));
  const done = (r: Router) => (values.json ? json(r) : showRouter(r, out));
  switch (positionals[0] ?? 'list') {
    case 'list': {
      const list = await api.request<Router[]>('GET', '/api/v1/routers');
      if (values.json) json(list);
      else
        out(
          table(
            list.map((r) => ({
              name: r.name,
              networks: r.networks.join(',') || '-',
              uplink: r.uplink ? `${r.uplink.network} ${r.uplink.ip}` : '-',
              routes: r.routes.length,
              floating: r.floatingIps.length,
            })),
            ['name', 'networks', 'uplink', 'routes', 'floating'].map((key) => ({ key, title: key })),
          ),
        );
      return 0;
    }
    case 'show':
      done(await api.request<Router>('GET', `/api/v1/routers/${enc(need(positionals, 1, 'NAME'))}`));
      return 0;
    case 'create':
      done(
        await api.request<Router>('POST', '/api/v1/routers', {
          name: need(positionals, 1, 'NAME'),
          networks: values.network ?? [],
          ...(values.uplink ? { uplink: parseUplink(values.uplink, !values['no-snat']) } : {}),
          routes: (values.route ?? []).map(parseRoute),
        }),
      );
      return 0;
    case 'set': {
      const name = need(positionals, 1, 'NAME');
      const body: Record<string, unknown> = {};
      if (values.network) body.networks = values.network;
      if (values['no-uplink']) body.uplink = null;
      else if (values.uplink) body.uplink = parseUplink(values.uplink, !values['no-snat']);
      if (values['no-routes']) body.routes = [];
      else if (values.route) body.routes = values.route.map(parseRoute);
      if (Object.keys(body).length === 0)
        throw new NfError(
          'validation_failed',
          'give --network, --uplink, --no-uplink, --route or --no-routes',
        );
      done(await api.request<Router>('PATCH', `/api/v1/routers/${enc(name)}`, body));
      return 0;
    }
    case 'rm': {
      const name = need(positionals, 1, 'NAME');
      await api.request('DELETE', `/api/v1/routers/${enc(name)}`);
      out(`router ${name} deleted`);
      return 0;
    }
    case 'fip': {
      const router = need(positionals, 2, 'ROUTER');
      if (positionals[1] === 'add') {
        const r = await api.request<Router>('POST', `/api/v1/routers/${enc(router)}/floating-ips`, {
          vm: need(positionals, 3, 'VM'),
          ...(values.nic ? { nic: values.nic } : {}),
          ...(values.ip ? { ip: values.ip } : {}),
        });
        if (values.json) json(r);
        else {
          const f = r.floatingIps.find((x) => x.vm === positionals[3] || x.vmId === positionals[3]);
          out(`floating IP ${f?.ip ?? '?'} -> ${positionals[3]}${f?.internalIp ? ` (${f.internalIp})` : ''}`);
        }
        return 0;
      }
      if (positionals[1] === 'rm') {
        const ip = need(positionals, 3, 'IP');
        await api.request('DELETE', `/api/v1/routers/${enc(router)}/floating-ips/${enc(ip)}`);
        out(`floating IP ${ip} released`);
        return 0;
      }
      throw new NfError('validation_failed', ROUTER_USAGE);
    }
    default:
      throw new NfError('validation_failed', ROUTER_USAGE);
  }
}

interface Rule {
  direction: 'in' | 'out';
  protocol: string;
  ports?: string;
  remote?: string;
  remoteGroup?: string;
  action?: 'allow' | 'deny';
  log?: boolean;
}

interface SecurityGroup {
  name: string;
  description?: string;
  tags: string[];
  admin?: boolean;
  rules: Rule[];
  members: { vm: string; nic: string; network: string }[];
}

const SG_USAGE =
  'use: sg list | show NAME | create NAME [--tag T]... [--rule RULE]... [--admin] [--description D] | set NAME [--tag T]... [--no-tags] [--rule RULE]... [--no-rules] | rm NAME\n' +
  '  RULE: in|out:any|tcp|udp|icmp[:PORTS][:CIDR|@GROUP][:deny][:log]   e.g. in:tcp:22:10.0.0.0/8, in:tcp:443, out:any, in:icmp:@web';

/** `in:tcp:22:10.0.0.0/8:log` → a rule (the API checks it further). */
export function parseRule(text: string): Rule {
  const [direction, protocol, ...rest] = text.split(':');
  if ((direction !== 'in' && direction !== 'out') || !protocol)
    throw new NfError(
      'validation_failed',
      `--rule ${text}: in|out:any|tcp|udp|icmp[:PORTS][:CIDR|@GROUP][:deny][:log]`,
    );
  const r: Rule = { direction, protocol };
  for (const part of rest) {
    if (/^\d+(-\d+)?$/.test(part)) r.ports = part;
    else if (part.startsWith('@')) r.remoteGroup = part.slice(1);
    else if (part.includes('/') || /^\d+\.\d+\.\d+\.\d+$/.test(part))
      r.remote = part.includes('/') ? part : `${part}/32`;
    else if (part === 'deny' || part === 'allow') r.action = part;
    else if (part === 'log') r.log = true;
    else
      throw new NfError(
        'validation_failed',
        `--rule ${text}: "${part}" is not a port, a CIDR, @GROUP, deny or log`,
      );
  }
  return r;
}

export function formatRule(r: Rule): string {
  return [
    r.direction,
    r.protocol,
    r.ports,
    r.remote ?? (r.remoteGroup ? `@${r.remoteGroup}` : undefined),
    r.action === 'deny' ? 'deny' : undefined,
    r.log ? 'log' : undefined,
  ]
    .filter(Boolean)
    .join(':');
}

/** `neuroflow sg ...`: security groups (stateful firewalls on NICs, by VM tag). */
export async function securityGroupCommand(argv: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      tag: { type: 'string', multiple: true },
      'no-tags': { type: 'boolean' },
      rule: { type: 'string', multiple: true },
      'no-rules': { type: 'boolean' },
      admin: { type: 'boolean' },
      description: { type: 'string' },
    },
  });
  const api = client(values);
  const enc = encodeURIComponent;
  const json = (v: unknown) => out(JSON.stringify(v, null, 2));
  const show = (g: SecurityGroup) => {
    if (values.json) return json(g);
    out(`${g.name}${g.admin ? ' (admin)' : ''}: VMs tagged ${g.tags.join(', ') || '(no tag: no member)'}`);
    if (g.description) out(g.description);
    for (const r of g.rules) out(`rule:   ${formatRule(r)}`);
    for (const m of g.members) out(`member: ${m.vm} ${m.nic} on ${m.network}`);
  };
  switch (positionals[0] ?? 'list') {
    case 'list': {
      const list = await api.request<SecurityGroup[]>('GET', '/api/v1/security-groups');
      if (values.json) json(list);
      else
        out(
          table(
            list.map((g) => ({
              name: g.name,
              tags: g.tags.join(',') || '-',
              rules: g.rules.length,
              members: g.members.length,
              admin: g.admin ? 'yes' : '',
            })),
            ['name', 'tags', 'rules', 'members', 'admin'].map((key) => ({ key, title: key })),
          ),
        );
      return 0;
    }
    case 'show':
      show(
        await api.request<SecurityGroup>(
          'GET',
          `/api/v1/security-groups/${enc(need(positionals, 1, 'NAME'))}`,
        ),
      );
      return 0;
    case 'create':
      show(
        await api.request<SecurityGroup>('POST', '/api/v1/security-groups', {
          name: need(positionals, 1, 'NAME'),
          tags: values.tag ?? [],
          ...(values.rule ? { rules: values.rule.map(parseRule) } : {}),
          ...(values.admin ? { admin: true } : {}),
          ...(values.description ? { description: values.description } : {}),
        }),
      );
      return 0;
    case 'set': {
      const body: Record<string, unknown> = {};
      if (values['no-tags']) body.tags = [];
      else if (values.tag) body.tags = values.tag;
      if (values['no-rules']) body.rules = [];
      else if (values.rule) body.rules = values.rule.map(parseRule);
      if (values.description !== undefined) body.description = values.description;
      if (Object.keys(body).length === 0)
        throw new NfError('validation_failed', 'give --tag, --no-tags, --rule, --no-rules or --description');
      show(
        await api.request<SecurityGroup>(
          'PATCH',
          `/api/v1/security-groups/${enc(need(positionals, 1, 'NAME'))}`,
          body,
        ),
      );
      return 0;
    }
    case 'rm': {
      const name = need(positionals, 1, 'NAME');
      await api.request('DELETE', `/api/v1/security-groups/${enc(name)}`);
      out(`security group ${name} deleted`);
      return 0;
    }
    default:
      throw new NfError('validation_failed', SG_USAGE);
  }
}
