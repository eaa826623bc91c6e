/**
 * Security groups (`/api/v1/security-groups`): stateful firewalls on the NICs of OVN networks, enforced
 * by OVN's ACLs on every host (micro-segmentation: between two VMs of one network too).
 *
 * A group holds the OVN-network NICs of the VMs carrying one of its tags (a tag change moves a VM in or
 * out). Each group is a port group `nfsg_<name>` (OVN keeps the address set `nfsg_<name>_ip4` of its
 * ports' addresses, which rules of other groups name as their remote). The port group `nfsg_all` holds
 * every NIC of any group: what such a NIC receives or sends is dropped unless a rule of one of its groups
 * allows it (replies to allowed flows pass: conntrack). A NIC in no group is not filtered.
 *
 * Priorities (OVN ACL priority): DHCP 3000 (a lease is never cut), admin groups' rules 2000-2100 (deny
 * 2100 above allow 2000), tenants' rules 1100-1200 (deny 1200 above allow 1100), the default drop 1000
 * (of every IP packet: IPv6 too). So an admin group's deny wins over every tenant group's allow.
 *
 * Every controller repairs OVN every 30 s (membership; the ACLs of every group at its start): a sync
 * of another controller working from an older view, or one cut short, is made good.
 */
import {
  keys,
  type NetworkRecord,
  type SecurityGroupRecord,
  type SecurityRule,
  type VmRecord,
} from '../controller/records';
import { NfError } from '../errors';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';
import { parseCidr } from './ip';
import { isOvn, type NetworkService, portName } from './service';

const log = createLogger('security-groups');
const NAME_RE = /^[a-z0-9][a-z0-9-]{0,30}$/;
/** As a VM's tags (src/api/schemas.ts TAG): a group tag a VM cannot carry would match nothing. */
const TAG_RE = /^[a-z0-9][a-z0-9_.:-]{0,62}$/;
const ALL = 'nfsg_all';
/** The meter that rate-limits logged flows (per host). */
const LOG_METER = 'nfsg_log';
const LOG_RATE = 20; // packets per second
/** DHCP's ACLs: above every rule (admin deny 2100). */
const DHCP_PRIORITY = 3000;

export interface SecurityGroupInput {
  name: string;
  description?: string;
  tags?: string[];
  admin?: boolean;
  /** Default (absent): allow everything out, nothing in. */
  rules?: SecurityRule[];
}

export interface SecurityGroupView extends SecurityGroupRecord {
  /** The NICs in it now: VM, NIC, network. */
  members: { vm: string; vmId: string; nic: string; network: string }[];
}

export function portGroup(name: string): string {
  return `nfsg_${name.replace(/-/g, '_')}`;
}

/** The OVN match of a rule for a group's port group (the remote side and the protocol). */
export function ruleMatch(group: string, r: SecurityRule): string {
  const pg = portGroup(group);
  const inbound = r.direction === 'in';
  const parts = [inbound ? `outport == @${pg}` : `inport == @${pg}`, 'ip4'];
  const remoteField = inbound ? 'ip4.src' : 'ip4.dst';
  if (r.remote) parts.push(`${remoteField} == ${r.remote}`);
  if (r.remoteGroup) parts.push(`${remoteField} == $${portGroup(r.remoteGroup)}_ip4`);
  if (r.protocol === 'icmp') parts.push('icmp4');
  if (r.protocol === 'tcp' || r.protocol === 'udp') {
    parts.push(r.protocol);
    if (r.ports) {
      const [lo, hi] = r.ports.split('-').map(Number);
      parts.push(
        hi === undefined
          ? `${r.protocol}.dst == ${lo}`
          : `${r.protocol}.dst >= ${lo} && ${r.protocol}.dst <= ${hi}`,
      );
    }
  }
  return parts.join(' && ');
}

/** A rule's ACL priority (see the module's doc). */
export function rulePriority(admin: boolean, r: SecurityRule): number {
  return (admin ? 2000 : 1100) + (r.action === 'deny' ? 100 : 0);
}

/** Checks a rule; returns it normalised. */
export function checkRule(r: SecurityRule, i: number, groups: Set<string>): SecurityRule {
  const at = `rules[${i}]`;
  if (r.direction !== 'in' && r.direction !== 'out')
    throw new NfError('validation_failed', `${at}.direction: in or out`);
  if (!['any', 'tcp', 'udp', 'icmp'].includes(r.protocol))
    throw new NfError('validation_failed', `${at}.protocol: any, tcp, udp or icmp`);
  if (r.ports !== undefined) {
    if (r.protocol !== 'tcp' && r.protocol !== 'udp')
      throw new NfError('validation_failed', `${at}.ports: only with tcp or udp`);
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(r.ports);
    const lo = Number(m?.[1]);
    const hi = m?.[2] === undefined ? lo : Number(m[2]);
    if (!m || lo < 1 || hi > 65535 || lo > hi)
      throw new NfError('validation_failed', `${at}.ports: a port 1-65535 or a range such as 8000-8080`);
  }
  if (r.remote !== undefined && r.remoteGroup !== undefined)
    throw new NfError('validation_failed', `${at}: remote or remoteGroup, not both`);
  if (r.remote !== undefined) parseCidr(r.remote, `${at}.remote`, 0, 32);
  if (r.remoteGroup !== undefined && !groups.has(r.remoteGroup))
    throw new NfError('validation_failed', `${at}.remoteGroup: no security group "${r.remoteGroup}"`);
  if (r.action !== undefined && r.action !== 'allow' && r.action !== 'deny')
    throw new NfError('validation_failed', `${at}.action: allow or deny`);
  const out: SecurityRule = { direction: r.direction, protocol: r.protocol };
  if (r.ports !== undefined) out.ports = r.ports;
  if (r.remote !== undefined) out.remote = r.remote;
  if (r.remoteGroup !== undefined) out.remoteGroup = r.remoteGroup;
  if (r.action === 'deny') out.action = 'deny';
  if (r.log) out.log = true;
  return out;
}

export class SecurityGroupService {
  /** Syncs run one at a time (a later one sees every change before it). */
  private chain: Promise<void> = Promise.resolve();
  /** Known: no group in OVN (checked again once etcd holds a group). */
  private empty = false;

  /** A VM's ports were made (`vm` as it is about to run), or tags changed: membership follows. */
  portsChanged(vm?: VmRecord): Promise<void> {
    return this.sync([], vm);
  }

  /** The repair loop (see the module's doc); returns its stop. */
  watch(): () => void {
    void this.sync('all').catch((err) =>
      log.warn('security groups: sync failed', { err: (err as Error).message }),
    );
    const timer = setInterval(
      () =>
        void this.sync().catch((err) =>
          log.warn('security groups: sync failed', { err: (err as Error).message }),
        ),
      30_000,
    );
    timer.unref?.();
    return () => clearInterval(timer);
  }

  constructor(
    private readonly store: Store,
    private readonly networks: NetworkService,
  ) {}

  private async records(): Promise<SecurityGroupRecord[]> {
    return (await this.store.list<SecurityGroupRecord>(keys.securityGroups)).map((g) => g.value);
  }

  async list(): Promise<SecurityGroupView[]> {
    const [groups, vms] = await Promise.all([this.records(), this.vms()]);
    return groups
      .map((g) => ({ ...g, members: membersOf(g, vms) }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<SecurityGroupView> {
    const g = await this.record(name);
    return { ...g, members: membersOf(g, await this.vms()) };
  }

  /** The VMs (`as` in place of its record), and the names of the OVN networks (a member NIC is on one). */
  private async vms(as?: VmRecord): Promise<Inventory> {
    const [nets, vms] = await Promise.all([
      this.store.list<NetworkRecord>(keys.networks),
      this.store.list<VmRecord>(keys.vms),
    ]);
    return {
      vms: vms.map((v) => (v.value.id === as?.id ? as : v.value)),
      ovn: new Set(
        nets
          .map((n) => n.value)
          .filter((n) => isOvn(n))
          .map((n) => n.name),
      ),
    };
  }

  private async record(name: string): Promise<SecurityGroupRecord> {
    const cur = await this.store.get<SecurityGroupRecord>(keys.securityGroup(name));
    if (!cur) throw new NfError('not_found', `no security group "${name}"`);
    return cur.value;
  }

  private async check(g: SecurityGroupRecord): Promise<SecurityGroupRecord> {
    for (const t of g.tags)
      if (!TAG_RE.test(t))
        throw new NfError('validation_failed', `tag "${t}": lowercase letters, digits and _.:- (up to 63)`);
    const names = new Set([...(await this.records()).map((x) => x.name), g.name]);
    if (g.rules.length > 1000) throw new NfError('validation_failed', 'rules: at most 1000 per group');
    return { ...g, tags: [...new Set(g.tags)].sort(), rules: g.rules.map((r, i) => checkRule(r, i, names)) };
  }

  async create(input: SecurityGroupInput): Promise<SecurityGroupView> {
    if (!NAME_RE.test(input.name))
      throw new NfError(
        'validation_failed',
        'a security group name is 1-31 lowercase letters, digits and dashes',
      );
    if (await this.store.get(keys.securityGroup(input.name)))
      throw new NfError('already_exists', `a security group named "${input.name}" exists`);
    const rec = await this.check({
      name: input.name,
      ...(input.description ? { description: input.description } : {}),
      tags: input.tags ?? [],
      ...(input.admin ? { admin: true } : {}),
      rules: input.rules ?? [{ direction: 'out', protocol: 'any' }],
      createdAt: new Date().toISOString(),
    });
    await this.networks.startOvn(true);
    await this.store.txn({
      when: [{ key: keys.securityGroup(rec.name), absent: true }],
      put: [{ key: keys.securityGroup(rec.name), value: rec }],
    });
    try {
      await this.sync([rec.name]);
    } catch (err) {
      await this.store.txn({ delete: [keys.securityGroup(rec.name)] });
      await this.sync().catch(() => {});
      throw err;
    }
    log.info('security group created', { name: rec.name, tags: rec.tags, rules: rec.rules.length });
    return this.get(rec.name);
  }

  async update(
    name: string,
    patch: { description?: string; tags?: string[]; rules?: SecurityRule[] },
  ): Promise<SecurityGroupView> {
    const cur = await this.store.get<SecurityGroupRecord>(keys.securityGroup(name));
    if (!cur) throw new NfError('not_found', `no security group "${name}"`);
    const next = await this.check({
      ...cur.value,
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.tags ? { tags: patch.tags } : {}),
      ...(patch.rules ? { rules: patch.rules } : {}),
    });
    await this.store.txn({
      when: [{ key: cur.key, revision: cur.revision }],
      put: [{ key: cur.key, value: next }],
    });
    try {
      await this.sync([name]);
    } catch (err) {
      await this.store.txn({ put: [{ key: cur.key, value: cur.value }] });
      await this.sync([name]).catch(() => {});
      throw err;
    }
    log.info('security group changed', { name, tags: next.tags, rules: next.rules.length });
    return this.get(name);
  }

  async delete(name: string): Promise<void> {
    await this.record(name);
    // a group naming itself (its members talking to each other) goes with its rules
    const users = (await this.records()).filter(
      (g) => g.name !== name && g.rules.some((r) => r.remoteGroup === name),
    );
    if (users.length > 0)
      throw new NfError(
        'in_use',
        `security group "${name}" is the remote group of rules of ${users.map((g) => `"${g.name}"`).join(', ')}`,
      );
    await this.store.txn({ delete: [keys.securityGroup(name)] });
    await this.sync();
    log.info('security group deleted', { name });
  }

  /**
   * Brings OVN's port groups to what the groups and the VMs' tags say (called after a change of either,
   * and when a VM's ports are made), and rewrites the ACLs of the groups named (`rewrite`: the ones that
   * changed; a group without its port group yet is written whole too). Serialised; a no-op while there are
   * no groups and none in OVN.
   */
  sync(rewrite: string[] | 'all' = [], vm?: VmRecord): Promise<void> {
    const run = this.chain.then(() => this.syncNow(rewrite === 'all' ? 'all' : new Set(rewrite), vm));
    this.chain = run.catch(() => {});
    return run;
  }

  private async syncNow(rewrite: Set<string> | 'all', vm?: VmRecord): Promise<void> {
    const groups = await this.records();
    if (groups.length === 0 && (this.empty || !(await this.networks.hasOverlay()))) return;
    this.empty = false;
    const existing = new Set(
      (await this.networks.nb(['--bare', '--columns=name', 'list', 'port_group']))
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.startsWith('nfsg_')),
    );
    if (groups.length === 0 && existing.size === 0) {
      this.empty = true;
      return;
    }
    // the ports that exist in OVN (a VM's are made at its first start)
    const lsps = JSON.parse(
      await this.networks.nb(['--format=json', '--columns=name,external_ids', 'list', 'logical_switch_port']),
    ) as { data: [string, ['map', [string, string][]]][] };
    const ports = new Set(
      lsps.data.filter(([, [, ids]]) => ids.some(([k]) => k === 'neuroflow-vm')).map(([name]) => name),
    );
    const vms = await this.vms(vm);
    const cmds: string[][] = [];
    const all = new Set<string>();
    const wanted = new Set<string>([ALL]);
    const members = new Map<string, string[]>();
    for (const g of groups) {
      const ps = membersOf(g, vms)
        .map((m) => portName(m.vmId, m.nic))
        .filter((p) => ports.has(p));
      for (const p of ps) all.add(p);
      members.set(g.name, ps);
      wanted.add(portGroup(g.name));
    }
    // port groups first (rules name each other's address sets), then their ACLs
    const fresh = new Set([...wanted].filter((pg) => !existing.has(pg)));
    if (groups.length > 0) {
      for (const pg of fresh) cmds.push(['pg-add', pg]);
      if (fresh.size > 0) await this.networks.nb(...cmds.splice(0));
      cmds.push(setPorts(ALL, [...all]));
      if (rewrite === 'all' || fresh.has(ALL))
        cmds.push(
          ['acl-del', ALL],
          // every IP packet, IPv6 too (rules are IPv4: a member's IPv6 is dropped; neighbour discovery
          // passes, OVN allows it above ACLs)
          ['--type=port-group', 'acl-add', ALL, 'to-lport', '1000', `outport == @${ALL} && ip`, 'drop'],
          ['--type=port-group', 'acl-add', ALL, 'from-lport', '1000', `inport == @${ALL} && ip`, 'drop'],
          // DHCP, above every rule (a deny cannot cut a lease): requests out, and the answers of a
          // provider network's own server in (OVN's own answers pass anyway)
          [
            '--type=port-group',
            'acl-add',
            ALL,
            'from-lport',
            String(DHCP_PRIORITY),
            `inport == @${ALL} && udp && udp.src == 68 && udp.dst == 67`,
            'allow',
          ],
          [
            '--type=port-group',
            'acl-add',
            ALL,
            'to-lport',
            String(DHCP_PRIORITY),
            `outport == @${ALL} && udp && udp.src == 67 && udp.dst == 68`,
            'allow',
          ],
        );
    } else wanted.delete(ALL);
    if (groups.some((g) => g.rules.some((r) => r.log)))
      cmds.push(['--may-exist', 'meter-add', LOG_METER, 'drop', String(LOG_RATE), 'pktps']);
    for (const g of groups) {
      const pg = portGroup(g.name);
      cmds.push(setPorts(pg, members.get(g.name)!));
      if (rewrite !== 'all' && !rewrite.has(g.name) && !fresh.has(pg)) continue;
      cmds.push(['acl-del', pg]);
      g.rules.forEach((r, i) => {
        cmds.push([
          '--type=port-group',
          ...(r.log ? ['--log', `--meter=${LOG_METER}`, '--severity=info', `--name=${g.name}-${i}`] : []),
          'acl-add',
          pg,
          r.direction === 'in' ? 'to-lport' : 'from-lport',
          String(rulePriority(!!g.admin, r)),
          ruleMatch(g.name, r),
          r.action === 'deny' ? 'drop' : 'allow-related',
        ]);
      });
    }
    for (const e of existing) if (!wanted.has(e)) cmds.push(['pg-del', e]);
    await this.networks.nb(...cmds);
  }
}

/** The command that makes a port group's ports these (pg-set-ports wants one at least). */
function setPorts(pg: string, ports: string[]): string[] {
  return ports.length > 0 ? ['pg-set-ports', pg, ...ports] : ['clear', 'port_group', pg, 'ports'];
}

/** A group's members: the OVN-network NICs of the VMs carrying one of its tags. */
interface Inventory {
  vms: VmRecord[];
  ovn: Set<string>;
}

function membersOf(g: SecurityGroupRecord, { vms, ovn }: Inventory): SecurityGroupView['members'] {
  const tags = new Set(g.tags);
  return vms
    .filter((vm) => (vm.tags ?? []).some((t) => tags.has(t)))
    .flatMap((vm) =>
      vm.networks
        .filter((n) => ovn.has(n.network))
        .map((n) => ({ vm: vm.name, vmId: vm.id, nic: n.id, network: n.network })),
    );
}
