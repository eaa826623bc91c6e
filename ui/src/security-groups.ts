/**
 * Security groups (GET/POST /security-groups, GET/PATCH/DELETE /security-groups/{name};
 * docs/network.md): stateful firewalls on the NICs (of overlay and provider networks) of the VMs carrying
 * one of a group's tags. What the Security groups page checks before sending: the API's rules
 * (src/api/routes/security-groups.ts, src/network/security.ts checkRule), with its wording.
 */
import { NETWORK_NAME, parseCidr } from './networks';
import { parseTags } from './tags';

export type RuleDirection = 'in' | 'out';
export type RuleProtocol = 'any' | 'tcp' | 'udp' | 'icmp';
export type RuleAction = 'allow' | 'deny';

export const PROTOCOLS: RuleProtocol[] = ['any', 'tcp', 'udp', 'icmp'];

/** A rule as the API takes and shows it. */
export interface SecurityRule {
  direction: RuleDirection;
  protocol: RuleProtocol;
  /** tcp/udp: "22" or "8000-8080" (absent: every port). */
  ports?: string;
  /** An IPv4 CIDR (neither it nor remoteGroup: anywhere). */
  remote?: string;
  remoteGroup?: string;
  /** Absent: allow. */
  action?: RuleAction;
  log?: boolean;
}

export interface SecurityGroupMember {
  vm: string;
  vmId: string;
  nic: string;
  network: string;
}

/** GET /security-groups, GET /security-groups/{name}. */
export interface SecurityGroup {
  name: string;
  description?: string;
  /** The VMs carrying one of these tags are in the group. */
  tags: string[];
  /** Its rules come before every other group's. */
  admin?: boolean;
  rules: SecurityRule[];
  members: SecurityGroupMember[];
  createdAt: string;
}

/** POST /security-groups. */
export interface NewSecurityGroupBody {
  name: string;
  description?: string;
  tags?: string[];
  admin?: boolean;
  rules?: SecurityRule[];
}

/** The most characters of a description. */
export const DESCRIPTION_MAX = 200;

/** The other side of a rule as the editor picks it. */
export type RemoteKind = 'any' | 'cidr' | 'group';

/** A row of the rules editor, as typed. */
export interface RuleRow {
  direction: RuleDirection;
  protocol: RuleProtocol;
  ports: string;
  remoteKind: RemoteKind;
  remote: string;
  remoteGroup: string;
  action: RuleAction;
  log: boolean;
}

/** The row "Add rule" adds: in, tcp, from anywhere, allow. */
export const NEW_RULE_ROW: RuleRow = {
  direction: 'in',
  protocol: 'tcp',
  ports: '',
  remoteKind: 'any',
  remote: '',
  remoteGroup: '',
  action: 'allow',
  log: false,
};

/** A rule as an editor row. */
export function ruleRow(r: SecurityRule): RuleRow {
  return {
    direction: r.direction,
    protocol: r.protocol,
    ports: r.ports ?? '',
    remoteKind: r.remoteGroup ? 'group' : r.remote ? 'cidr' : 'any',
    remote: r.remote ?? '',
    remoteGroup: r.remoteGroup ?? '',
    action: r.action ?? 'allow',
    log: !!r.log,
  };
}

/** Ports only count for tcp and udp. */
export function hasPorts(p: RuleProtocol): boolean {
  return p === 'tcp' || p === 'udp';
}

/** An editor row as the API takes it (the fields that do not apply left out). */
export function ruleFromRow(row: RuleRow): SecurityRule {
  const ports = row.ports.trim();
  return {
    direction: row.direction,
    protocol: row.protocol,
    ...(hasPorts(row.protocol) && ports ? { ports } : {}),
    ...(row.remoteKind === 'cidr' && row.remote.trim() ? { remote: row.remote.trim() } : {}),
    ...(row.remoteKind === 'group' && row.remoteGroup ? { remoteGroup: row.remoteGroup } : {}),
    ...(row.action === 'deny' ? { action: 'deny' as const } : {}),
    ...(row.log ? { log: true } : {}),
  };
}

/** What is wrong with a port or port range as typed ('' when right, or empty: every port). */
export function portsProblem(text: string): string {
  const t = text.trim();
  if (!t) return '';
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(t);
  const lo = Number(m?.[1]);
  const hi = m?.[2] === undefined ? lo : Number(m[2]);
  if (!m || lo < 1 || hi > 65535 || lo > hi) return 'a port 1-65535 or a range such as 8000-8080';
  return '';
}

/** What is wrong with a rules editor row ('' when right); `groups`: the names of the groups there are. */
export function ruleProblem(row: RuleRow, groups: string[]): string {
  const ports = portsProblem(row.ports);
  if (hasPorts(row.protocol) && ports) return `Ports: ${ports}`;
  if (row.remoteKind === 'cidr') {
    if (!row.remote.trim()) return 'Remote: an IPv4 CIDR such as 10.0.0.0/8';
    const c = parseCidr(row.remote.trim(), 0, 32);
    if (c.problem) return `Remote: ${c.problem}`;
  }
  if (row.remoteKind === 'group') {
    if (!row.remoteGroup) return 'Remote group: pick one';
    if (!groups.includes(row.remoteGroup)) return `Remote group: no security group "${row.remoteGroup}"`;
  }
  return '';
}

/** A rule in a sentence: "in tcp 22 from 10.0.0.0/8, allow". */
export function ruleLabel(r: SecurityRule): string {
  const side = r.direction === 'in' ? 'from' : 'to';
  const remote = r.remoteGroup ? `group ${r.remoteGroup}` : (r.remote ?? 'anywhere');
  return `${r.direction} ${r.protocol}${r.ports ? ` ${r.ports}` : ''} ${side} ${remote}, ${r.action ?? 'allow'}${r.log ? ', logged' : ''}`;
}

/** The same rules, in the same order (after the API's normalising). */
export function sameRules(a: SecurityRule[], b: SecurityRule[]): boolean {
  const key = (r: SecurityRule) => JSON.stringify(ruleFromRow(ruleRow(r)));
  return a.length === b.length && a.every((r, i) => key(r) === key(b[i]!));
}

/** The Add group form, as typed. */
export interface GroupForm {
  name: string;
  description: string;
  /** Comma- or space-separated VM tags. */
  tags: string;
  admin: boolean;
}

export const EMPTY_GROUP_FORM: GroupForm = { name: '', description: '', tags: '', admin: false };

/** What is wrong with each field typed so far (an empty name is not wrong here: see `groupReady`). */
export function groupProblems(f: GroupForm): Partial<Record<'name' | 'description' | 'tags', string>> {
  const out: Partial<Record<'name' | 'description' | 'tags', string>> = {};
  const name = f.name.trim();
  if (name && !NETWORK_NAME.test(name))
    out.name = 'Name: lowercase letters, digits and -, starting with a letter or digit; up to 31';
  if (f.description.trim().length > DESCRIPTION_MAX)
    out.description = `Description: at most ${DESCRIPTION_MAX} characters`;
  const tags = parseTags(f.tags).problem;
  if (tags) out.tags = `Tags: ${tags}`;
  return out;
}

export function groupReady(f: GroupForm): boolean {
  return !!f.name.trim() && Object.keys(groupProblems(f)).length === 0;
}

/** The rules a new group starts with in the Add dialog: the API's default, everything out. */
export const DEFAULT_RULES: SecurityRule[] = [{ direction: 'out', protocol: 'any' }];

/** POST /security-groups for the form and the rules' rows (absent: the API's default). */
export function groupBody(f: GroupForm, rows?: RuleRow[]): NewSecurityGroupBody {
  const tags = parseTags(f.tags).tags;
  return {
    name: f.name.trim(),
    ...(f.description.trim() ? { description: f.description.trim() } : {}),
    ...(tags.length ? { tags } : {}),
    ...(f.admin ? { admin: true } : {}),
    ...(rows ? { rules: rows.map(ruleFromRow) } : {}),
  };
}

/** The hash of the Security groups page, with one group open. */
export function securityGroupHref(name?: string): string {
  return name ? `#/security-groups/${encodeURIComponent(name)}` : '#/security-groups';
}
