import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../src/appliance/config';
import { newJoinToken } from '../src/cluster/token';
import {
  configAfterFailedJoin,
  configAfterJoin,
  configForCreate,
  configForJoin,
  configFromNetworkForm,
  configWithSsh,
  FormState,
  networkForm,
  networkValues,
  passwordForm,
  passwordFromForm,
  splitDns,
  validateCidr,
  validateClusterName,
  validateConfirmation,
  validateDnsList,
  validateGateway,
  validateHostname,
  validateInterface,
  validateIpv4,
  validateJoinToken,
  validateMinutes,
  validatePassword,
  validateVlan,
} from './forms';

describe('validators', () => {
  it('host name: a lowercase DNS label', () => {
    for (const ok of ['esx1', 'a', 'host-2', 'x'.repeat(63), '9lives'])
      expect(validateHostname(ok)).toBeUndefined();
    expect(validateHostname('')).toBe('required');
    expect(validateHostname('x'.repeat(64))).toMatch(/63/);
    expect(validateHostname('Esx1')).toMatch(/lowercase/);
    expect(validateHostname('esx_1')).toMatch(/only letters/);
    expect(validateHostname('esx.lab')).toMatch(/only letters/);
    expect(validateHostname('-esx')).toMatch(/start or end/);
    expect(validateHostname('esx-')).toMatch(/start or end/);
  });

  it('IPv4 address: a dotted quad without leading zeros', () => {
    for (const ok of ['0.0.0.0', '192.168.1.1', '255.255.255.255', '10.0.0.1'])
      expect(validateIpv4(ok)).toBeUndefined();
    for (const bad of [
      '192.168.1',
      '192.168.1.256',
      '192.168.01.1',
      '1.2.3.4.5',
      'a.b.c.d',
      ' 1.2.3.4',
      '::1',
    ])
      expect(validateIpv4(bad)).toMatch(/not an IPv4 address/);
    expect(validateIpv4('')).toBe('required');
  });

  it('address/prefix: a usable host address with its prefix length', () => {
    for (const ok of ['192.168.1.10/24', '10.0.0.1/8', '172.16.5.5/30', '192.0.2.7/32', '192.0.2.0/31'])
      expect(validateCidr(ok)).toBeUndefined();
    expect(validateCidr('')).toMatch(/required/);
    expect(validateCidr('192.168.1.10')).toMatch(/prefix length, e\.g\. \/24/);
    expect(validateCidr('192.168.1.300/24')).toMatch(/not an IPv4 address/);
    expect(validateCidr('192.168.1.10/33')).toMatch(/1 to 32/);
    expect(validateCidr('192.168.1.10/0')).toMatch(/1 to 32/);
    expect(validateCidr('192.168.1.10/')).toMatch(/1 to 32/);
    expect(validateCidr('192.168.1.0/24')).toBe('192.168.1.0 is the network address of 192.168.1.0/24');
    expect(validateCidr('192.168.1.255/24')).toBe('192.168.1.255 is the broadcast address of 192.168.1.0/24');
    expect(validateCidr('127.0.0.5/8')).toMatch(/loopback/);
    expect(validateCidr('224.0.0.5/24')).toMatch(/multicast/);
    expect(validateCidr('0.1.2.3/8')).toMatch(/not usable/);
    expect(validateCidr('250.1.2.3/8')).toMatch(/reserved/);
  });

  it("gateway: in the address's subnet, not the address itself", () => {
    expect(validateGateway('192.168.1.1', '192.168.1.10/24')).toBeUndefined();
    expect(validateGateway('10.1.255.254', '10.1.0.5/16')).toBeUndefined();
    expect(validateGateway('', '192.168.1.10/24')).toBe('required');
    expect(validateGateway('192.168.1', '192.168.1.10/24')).toMatch(/not an IPv4/);
    expect(validateGateway('192.168.2.1', '192.168.1.10/24')).toBe(
      "not in the address's subnet 192.168.1.0/24",
    );
    expect(validateGateway('192.168.1.10', '192.168.1.10/24')).toMatch(/own address/);
    expect(validateGateway('192.168.1.255', '192.168.1.10/24')).toMatch(/broadcast/);
    expect(validateGateway('192.168.1.0', '192.168.1.10/24')).toMatch(/network address/);
    expect(validateGateway('127.0.0.1', '192.168.1.10/24')).toMatch(/loopback/);
    // An invalid address reports on its own field; the gateway is not blamed for it.
    expect(validateGateway('192.168.1.1', '192.168.1.300/24')).toBeUndefined();
  });

  it('DNS list: one to three IPv4 addresses, comma or space separated', () => {
    expect(splitDns(' 1.1.1.1, 9.9.9.9  8.8.8.8;')).toEqual(['1.1.1.1', '9.9.9.9', '8.8.8.8']);
    expect(validateDnsList('1.1.1.1', true)).toBeUndefined();
    expect(validateDnsList('1.1.1.1, 9.9.9.9 8.8.8.8', true)).toBeUndefined();
    expect(validateDnsList('', false)).toBeUndefined();
    expect(validateDnsList('', true)).toMatch(/required/);
    expect(validateDnsList('1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4', true)).toMatch(/up to three/);
    expect(validateDnsList('1.1.1.1, dns.example', false)).toBe('dns.example is not an IPv4 address');
    expect(validateDnsList('1.1.1.1 1.1.1.1', true)).toMatch(/twice/);
  });

  it('VLAN: empty or 0 untagged, 1-4094 tagged', () => {
    for (const ok of ['', '0', '1', '100', '4094', ' 7 ']) expect(validateVlan(ok)).toBeUndefined();
    expect(validateVlan('4095')).toMatch(/0 \(none\) to 4094/);
    expect(validateVlan('-1')).toMatch(/a number/);
    expect(validateVlan('1.5')).toMatch(/a number/);
    expect(validateVlan('ten')).toMatch(/a number/);
  });

  it('interface name', () => {
    expect(validateInterface('eth0')).toBeUndefined();
    expect(validateInterface('enp0s31f6')).toBeUndefined();
    expect(validateInterface('')).toMatch(/required/);
    expect(validateInterface('eth0 ')).toMatch(/interface name/);
    expect(validateInterface('x'.repeat(16))).toMatch(/interface name/);
  });

  it('password rules and confirmation', () => {
    expect(validatePassword('Correct-horse1')).toBeUndefined();
    expect(validatePassword('abcdefg1')).toBeUndefined();
    expect(validatePassword('')).toBe('required');
    expect(validatePassword('Ab1')).toMatch(/at least 8/);
    expect(validatePassword('abcdefgh')).toMatch(/two of/);
    expect(validatePassword('12345678')).toMatch(/two of/);
    expect(validatePassword(`a1${'x'.repeat(127)}`)).toMatch(/up to 128/);
    expect(validatePassword('abcdefg1\x01')).toMatch(/control/);
    expect(validateConfirmation('abcdefg1', 'abcdefg1')).toBeUndefined();
    expect(validateConfirmation('abcdefg1', '')).toMatch(/again/);
    expect(validateConfirmation('abcdefg1', 'abcdefg2')).toBe('the passwords do not match');
  });

  it('cluster name, SSH minutes', () => {
    expect(validateClusterName('')).toBeUndefined();
    expect(validateClusterName('prod')).toBeUndefined();
    expect(validateClusterName('x'.repeat(44))).toMatch(/43/);
    expect(validateClusterName('Prod')).toMatch(/lowercase/);
    expect(validateMinutes('60')).toBeUndefined();
    expect(validateMinutes('0')).toMatch(/1 to 1440/);
    expect(validateMinutes('1441')).toMatch(/1 to 1440/);
    expect(validateMinutes('')).toMatch(/1 to 1440/);
  });

  it('join token: decoded and checked before anything is sent', () => {
    const fp = `sha256:${'a'.repeat(64)}`;
    const t = newJoinToken({ controllers: ['10.0.0.1:8006'], caFingerprint: fp, ttlSec: 3600 }).token;
    expect(validateJoinToken(t)).toBeUndefined();
    // Pasted tokens wrap: whitespace is ignored.
    expect(validateJoinToken(`${t.slice(0, 40)}\n  ${t.slice(40)} `)).toBeUndefined();
    expect(validateJoinToken('')).toMatch(/paste the token/);
    expect(validateJoinToken('not-a-token')).toBeTruthy();
    expect(validateJoinToken(t.slice(0, -5))).toBeTruthy();
    const expired = newJoinToken({
      controllers: ['10.0.0.1:8006'],
      caFingerprint: fp,
      ttlSec: 60,
      now: new Date(Date.now() - 3600_000),
    }).token;
    expect(validateJoinToken(expired)).toMatch(/expired/);
  });
});

describe('FormState: validation as you type', () => {
  it('shows errors of touched fields only, and OK stays disabled while any field is invalid', () => {
    const f = new FormState(passwordForm);
    expect(f.valid).toBe(false);
    expect(f.shownError('password')).toBeUndefined();
    f.type('abc');
    expect(f.shownError('password')).toMatch(/at least 8/);
    f.type('defg1');
    expect(f.shownError('password')).toBeUndefined();
    expect(f.valid).toBe(false); // the confirmation is still empty
    f.next();
    f.type('abcdefg');
    expect(f.shownError('confirm')).toBe('the passwords do not match');
    f.type('1');
    expect(f.valid).toBe(true);
    f.backspace();
    expect(f.valid).toBe(false);
    f.clear();
    expect(f.values.confirm).toBe('');
  });

  it('Enter submits only a valid form; otherwise every error shows and the focus goes to the first', () => {
    const f = new FormState(networkForm, networkValues(undefined));
    f.focusKey('mode');
    f.cycle(1);
    expect(f.values.mode).toBe('static');
    expect(f.visibleFields().map((x) => x.key)).toContain('address');
    expect(f.enter()).toBe('invalid');
    expect(f.focus).toEqual({ kind: 'field', key: 'address' });
    expect(f.shownError('address')).toMatch(/required/);
    expect(f.shownError('gateway')).toBe('required');
    f.type('192.0.2.10/24');
    f.next();
    f.type('192.0.2.1');
    f.next();
    f.type('192.0.2.53');
    expect(f.enter()).toBe('submit');
  });

  it('hidden fields are not validated; focus moves over visible fields and the two buttons', () => {
    const f = new FormState(networkForm, { ...networkValues(undefined), address: 'junk' });
    expect(f.values.mode).toBe('DHCP');
    expect(f.valid).toBe(true);
    const seen: string[] = [];
    for (let i = 0; i < 7; i++) {
      const x = f.focus;
      seen.push(x.kind === 'field' ? x.key : x.button);
      f.next();
    }
    expect(seen).toEqual(['hostname', 'mode', 'dns', 'vlan', 'interface', 'ok', 'cancel']);
    expect(f.focus).toEqual({ kind: 'field', key: 'hostname' });
    f.prev();
    expect(f.focus).toEqual({ kind: 'button', button: 'cancel' });
    expect(f.enter()).toBe('cancel');
    f.cycle(1);
    expect(f.focus).toEqual({ kind: 'button', button: 'ok' });
  });

  it('drops control characters, keeps pasted text, respects the field length', () => {
    const f = new FormState(networkForm, { ...networkValues(undefined), hostname: '' });
    f.type('esx\x1b1\t');
    expect(f.values.hostname).toBe('esx1');
    f.type('x'.repeat(100));
    expect(f.values.hostname).toHaveLength(63);
    f.focusKey('mode');
    f.type('a'); // a choice ignores letters
    expect(f.values.mode).toBe('DHCP');
    f.type(' ');
    expect(f.values.mode).toBe('static');
  });
});

describe('forms to config', () => {
  const base = parseConfig({ ...defaultConfig(), hostname: 'esx1' });

  it('static network', () => {
    const cfg = configFromNetworkForm(
      {
        hostname: 'esx2',
        mode: 'static',
        address: '192.0.2.10/24',
        gateway: '192.0.2.1',
        dns: '192.0.2.53, 192.0.2.54',
        vlan: '',
        interface: 'eth1',
      },
      base,
    );
    expect(cfg.hostname).toBe('esx2');
    expect(cfg.network).toEqual({
      interface: 'eth1',
      mode: 'static',
      address: '192.0.2.10/24',
      gateway: '192.0.2.1',
      dns: ['192.0.2.53', '192.0.2.54'],
      vlan: 0,
    });
    expect(cfg.cluster).toEqual(base.cluster);
  });

  it('DHCP on a VLAN keeps a valid earlier static address for later and drops an invalid one', () => {
    const keep = configFromNetworkForm(
      { ...networkValues(base), mode: 'DHCP', address: '192.0.2.10/24', gateway: '192.0.2.1', vlan: '42' },
      base,
    );
    expect(keep.network).toMatchObject({
      mode: 'dhcp',
      vlan: 42,
      address: '192.0.2.10/24',
      gateway: '192.0.2.1',
    });
    const drop = configFromNetworkForm(
      { ...networkValues(base), mode: 'DHCP', address: '192.0.2.300/24', gateway: '10.0.0.1' },
      base,
    );
    expect(drop.network.address).toBeUndefined();
    expect(drop.network.gateway).toBeUndefined();
  });

  it('round trip: config to form values and back', () => {
    const cfg = configFromNetworkForm(
      {
        hostname: 'esx3',
        mode: 'static',
        address: '10.1.2.3/16',
        gateway: '10.1.0.1',
        dns: '10.1.0.2',
        vlan: '5',
        interface: 'eth0',
      },
      undefined,
    );
    expect(configFromNetworkForm(networkValues(cfg), cfg)).toEqual(cfg);
  });

  it('refuses invalid input naming the field', () => {
    expect(() =>
      configFromNetworkForm({ ...networkValues(base), mode: 'static', address: '192.0.2.300/24' }, base),
    ).toThrow(/IPv4 address\/prefix: not an IPv4 address/);
    expect(() => configFromNetworkForm({ ...networkValues(base), vlan: '5000' }, base)).toThrow(/VLAN ID/);
    expect(() => passwordFromForm({ password: 'abcdefg1', confirm: 'abcdefg2' })).toThrow(/do not match/);
    expect(passwordFromForm({ password: 'abcdefg1', confirm: 'abcdefg1' })).toBe('abcdefg1');
  });

  it('cluster: create (optional name), join (token without whitespace), then member or back to none', () => {
    expect(configForCreate(base, { name: '' }).cluster).toEqual({ mode: 'create' });
    expect(configForCreate(base, { name: 'prod' }).cluster).toEqual({ mode: 'create', name: 'prod' });
    expect(() => configForCreate(base, { name: 'Prod' })).toThrow(/lowercase/);
    const token = newJoinToken({
      controllers: ['10.0.0.1:8006'],
      caFingerprint: `sha256:${'b'.repeat(64)}`,
      ttlSec: 600,
    }).token;
    const joined = configForJoin(base, { token: ` ${token.slice(0, 10)}\n${token.slice(10)} ` });
    expect(joined.cluster).toEqual({ mode: 'join', token });
    expect(() => configForJoin(base, { token: 'garbage' })).toThrow(/Join token/);
    expect(configAfterJoin(joined).cluster).toEqual({ mode: 'member' });
    expect(configAfterFailedJoin(joined).cluster).toEqual({ mode: 'none' });
  });

  it('SSH for a while, or off', () => {
    const now = new Date('2030-01-01T10:00:00Z');
    expect(configWithSsh(base, 30, now).ssh.enabledUntil).toBe('2030-01-01T10:30:00.000Z');
    expect(configWithSsh(base, null, now).ssh.enabledUntil).toBeNull();
  });
});
