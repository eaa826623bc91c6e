import { describe, expect, it } from 'vitest';
import { addressIn, inCidr } from './net';

describe('CIDR blocks', () => {
  it('tells IPv4 and IPv6 addresses inside a block from those outside', () => {
    expect(inCidr('10.1.2.3', '10.1.0.0/16')).toBe(true);
    expect(inCidr('10.2.2.3', '10.1.0.0/16')).toBe(false);
    expect(inCidr('192.168.1.1', '0.0.0.0/0')).toBe(true);
    expect(inCidr('10.0.0.7', '10.0.0.7/32')).toBe(true);
    expect(inCidr('fd00::1:2', 'fd00::/64')).toBe(true);
    expect(inCidr('fd01::1', 'fd00::/64')).toBe(false);
    expect(inCidr('10.1.2.3', 'fd00::/8')).toBe(false);
  });

  it('refuses a malformed block', () => {
    expect(() => inCidr('10.0.0.1', '10.0.0.0')).toThrow(/not a CIDR/);
    expect(() => inCidr('10.0.0.1', '10.0.0.0/33')).toThrow(/not a CIDR/);
    expect(() => inCidr('10.0.0.1', 'example/8')).toThrow(/not a CIDR/);
  });

  it("finds the host's address in the migration network, skipping loopback", () => {
    const ifs = {
      lo: [{ address: '127.0.0.1', internal: true }],
      eth0: [{ address: '192.0.2.10', internal: false }],
      eth1: [
        { address: 'fd00::5', internal: false },
        { address: '10.9.0.4', internal: false },
      ],
    };
    expect(addressIn('10.9.0.0/24', ifs)).toBe('10.9.0.4');
    expect(addressIn('fd00::/64', ifs)).toBe('fd00::5');
    expect(addressIn('172.16.0.0/12', ifs)).toBeUndefined();
  });
});
