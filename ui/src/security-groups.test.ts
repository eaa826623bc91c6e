import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RULES,
  EMPTY_GROUP_FORM,
  groupBody,
  groupProblems,
  groupReady,
  NEW_RULE_ROW,
  portsProblem,
  ruleFromRow,
  ruleLabel,
  ruleProblem,
  ruleRow,
  type SecurityRule,
  sameRules,
  securityGroupHref,
} from './security-groups';

describe('a rule', () => {
  it('reads back as it was through an editor row', () => {
    const rules: SecurityRule[] = [
      { direction: 'in', protocol: 'tcp', ports: '22', remote: '10.0.0.0/8' },
      { direction: 'in', protocol: 'udp', ports: '8000-8080', remoteGroup: 'web', action: 'deny', log: true },
      { direction: 'out', protocol: 'any' },
      { direction: 'in', protocol: 'icmp' },
    ];
    for (const r of rules) expect(ruleFromRow(ruleRow(r))).toEqual(r);
  });
  it('leaves out what does not apply: ports but for tcp/udp, the remote kind not picked, allow, no log', () => {
    expect(
      ruleFromRow({
        ...NEW_RULE_ROW,
        protocol: 'icmp',
        ports: '22',
        remoteKind: 'any',
        remote: '10.0.0.0/8',
      }),
    ).toEqual({ direction: 'in', protocol: 'icmp' });
    expect(ruleFromRow({ ...NEW_RULE_ROW, ports: ' 443 ', remoteKind: 'group', remoteGroup: 'db' })).toEqual({
      direction: 'in',
      protocol: 'tcp',
      ports: '443',
      remoteGroup: 'db',
    });
  });
  it('takes a port or a range 1-65535, low to high', () => {
    for (const ok of ['', '22', '1', '65535', '8000-8080', '80-80']) expect(portsProblem(ok)).toBe('');
    for (const bad of ['0', '65536', '8080-8000', '22,80', 'ssh', '1-2-3', '-22'])
      expect(portsProblem(bad)).toBe('a port 1-65535 or a range such as 8000-8080');
  });
  it('is checked as the API checks it', () => {
    const groups = ['web', 'db'];
    expect(ruleProblem({ ...NEW_RULE_ROW, ports: '22' }, groups)).toBe('');
    expect(ruleProblem({ ...NEW_RULE_ROW, ports: '70000' }, groups)).toBe(
      'Ports: a port 1-65535 or a range such as 8000-8080',
    );
    expect(ruleProblem({ ...NEW_RULE_ROW, protocol: 'any', ports: '70000' }, groups)).toBe('');
    expect(ruleProblem({ ...NEW_RULE_ROW, remoteKind: 'cidr', remote: '10.0.0.1/8' }, groups)).toBe(
      'Remote: 10.0.0.1/8 has host bits set (10.0.0.0/8?)',
    );
    expect(ruleProblem({ ...NEW_RULE_ROW, remoteKind: 'cidr', remote: '0.0.0.0/0' }, groups)).toBe('');
    expect(ruleProblem({ ...NEW_RULE_ROW, remoteKind: 'cidr', remote: '' }, groups)).toBe(
      'Remote: an IPv4 CIDR such as 10.0.0.0/8',
    );
    expect(ruleProblem({ ...NEW_RULE_ROW, remoteKind: 'group', remoteGroup: 'gone' }, groups)).toBe(
      'Remote group: no security group "gone"',
    );
  });
  it('is said in a sentence', () => {
    expect(ruleLabel({ direction: 'in', protocol: 'tcp', ports: '22', remote: '10.0.0.0/8' })).toBe(
      'in tcp 22 from 10.0.0.0/8, allow',
    );
    expect(
      ruleLabel({ direction: 'out', protocol: 'any', remoteGroup: 'db', action: 'deny', log: true }),
    ).toBe('out any to group db, deny, logged');
  });
  it('lists compare after normalising, in order', () => {
    const a: SecurityRule[] = [{ direction: 'out', protocol: 'any' }];
    expect(sameRules(a, [{ direction: 'out', protocol: 'any', action: 'allow', log: false }])).toBe(true);
    expect(sameRules(a, [...a, ...a])).toBe(false);
  });
});

describe('the Add security group form', () => {
  it('needs a name; takes VM tags (lowercase) and an optional description', () => {
    expect(groupReady(EMPTY_GROUP_FORM)).toBe(false);
    expect(groupProblems(EMPTY_GROUP_FORM)).toEqual({});
    expect(groupReady({ ...EMPTY_GROUP_FORM, name: 'web' })).toBe(true);
    const bad = groupProblems({ name: 'Web', description: 'x'.repeat(201), tags: 'web, Prod', admin: false });
    expect(bad.name).toBe('Name: lowercase letters, digits and -, starting with a letter or digit; up to 31');
    expect(bad.description).toBe('Description: at most 200 characters');
    expect(bad.tags).toMatch(/^Tags: "Prod" is not a tag/);
  });
  it('sends only what is given', () => {
    expect(groupBody({ ...EMPTY_GROUP_FORM, name: ' web ' })).toEqual({ name: 'web' });
    expect(groupBody({ name: 'web', description: ' front ', tags: 'web env:prod web', admin: true })).toEqual(
      {
        name: 'web',
        description: 'front',
        tags: ['env:prod', 'web'],
        admin: true,
      },
    );
    expect(groupBody({ ...EMPTY_GROUP_FORM, name: 'web' }, DEFAULT_RULES.map(ruleRow))).toEqual({
      name: 'web',
      rules: [{ direction: 'out', protocol: 'any' }],
    });
    expect(groupBody({ ...EMPTY_GROUP_FORM, name: 'web' }, [])).toEqual({ name: 'web', rules: [] });
    expect(securityGroupHref('web')).toBe('#/security-groups/web');
  });
});
