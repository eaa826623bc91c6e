import { describe, expect, it } from 'vitest';
import { formatRule, parseRule } from '../cli/networks';
import { inSubnet, overlaps, parseCidr } from './ip';
import { checkRule, portGroup, ruleMatch, rulePriority } from './security';

describe('security group rules', () => {
  it("turn into OVN matches on the group's port group, the remote side and the ports", () => {
    expect(ruleMatch('web-1', { direction: 'in', protocol: 'tcp', ports: '22', remote: '10.0.0.0/8' })).toBe(
      'outport == @nfsg_web_1 && ip4 && ip4.src == 10.0.0.0/8 && tcp && tcp.dst == 22',
    );
    expect(
      ruleMatch('db', { direction: 'out', protocol: 'udp', ports: '8000-8080', remoteGroup: 'web' }),
    ).toBe(
      'inport == @nfsg_db && ip4 && ip4.dst == $nfsg_web_ip4 && udp && udp.dst >= 8000 && udp.dst <= 8080',
    );
    expect(ruleMatch('x', { direction: 'in', protocol: 'icmp' })).toBe('outport == @nfsg_x && ip4 && icmp4');
    expect(ruleMatch('x', { direction: 'out', protocol: 'any' })).toBe('inport == @nfsg_x && ip4');
    expect(portGroup('a-b-c')).toBe('nfsg_a_b_c');
  });

  it('put admin rules above tenant rules, deny above allow', () => {
    const allow = { direction: 'in' as const, protocol: 'any' as const };
    const deny = { ...allow, action: 'deny' as const };
    expect(rulePriority(true, allow)).toBeGreaterThan(rulePriority(false, deny));
    expect(rulePriority(false, deny)).toBeGreaterThan(rulePriority(false, allow));
    expect(rulePriority(true, deny)).toBeGreaterThan(rulePriority(true, allow));
  });

  it('refuse ports without tcp/udp, bad ranges, an unknown remote group, remote and remoteGroup both', () => {
    const groups = new Set(['web']);
    const bad = (r: object) => () => checkRule(r as never, 0, groups);
    expect(bad({ direction: 'in', protocol: 'icmp', ports: '22' })).toThrow(/ports/);
    expect(bad({ direction: 'in', protocol: 'tcp', ports: '90-80' })).toThrow(/ports/);
    expect(bad({ direction: 'in', protocol: 'tcp', ports: '70000' })).toThrow(/ports/);
    expect(bad({ direction: 'in', protocol: 'tcp', remoteGroup: 'db' })).toThrow(/db/);
    expect(bad({ direction: 'in', protocol: 'tcp', remote: '10.0.0.1/8' })).toThrow(/host bits/);
    expect(bad({ direction: 'in', protocol: 'tcp', remote: '10.0.0.0/8', remoteGroup: 'web' })).toThrow(
      /not both/,
    );
    expect(bad({ direction: 'up', protocol: 'tcp' })).toThrow(/direction/);
    expect(checkRule({ direction: 'in', protocol: 'tcp', ports: '22', log: false }, 0, groups)).toEqual({
      direction: 'in',
      protocol: 'tcp',
      ports: '22',
    });
  });

  it('CLI rules round-trip', () => {
    for (const text of [
      'in:tcp:22:10.0.0.0/8',
      'out:any',
      'in:icmp:@web',
      'in:tcp:7003:deny:log',
      'in:udp:53',
    ]) {
      expect(formatRule(parseRule(text))).toBe(text);
    }
    expect(parseRule('in:tcp:22:10.1.2.3')).toMatchObject({ remote: '10.1.2.3/32' });
    expect(() => parseRule('sideways:tcp')).toThrow(/in\|out/);
    expect(() => parseRule('in:tcp:what')).toThrow(/what/);
  });
});

describe('IPv4 helpers', () => {
  it('parse CIDRs, test membership and overlap', () => {
    expect(parseCidr('10.0.0.0/24')).toEqual({ base: 0x0a000000, prefix: 24, size: 256 });
    expect(() => parseCidr('10.0.0.0/30')).toThrow(/prefix/);
    expect(parseCidr('0.0.0.0/0', 'route', 0, 32).size).toBe(2 ** 32);
    expect(inSubnet('10.0.0.1', '10.0.0.0/24')).toBe(true);
    expect(inSubnet('10.0.0.0', '10.0.0.0/24')).toBe(false);
    expect(inSubnet('10.0.0.255', '10.0.0.0/24')).toBe(false);
    expect(overlaps('10.77.0.0/24', '10.77.0.0/25')).toBe(true);
    expect(overlaps('10.77.0.0/24', '10.78.0.0/24')).toBe(false);
  });
});
