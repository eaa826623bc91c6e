import { describe, expect, it } from 'vitest';
import { renderCephConf } from './conf';
import { keyringKey, newCephKey, renderKeyring } from './keyring';
import { risk } from './service';

describe('cephx keys and keyrings', () => {
  it('makes keys in the format ceph-authtool prints (AES, 16 bytes)', () => {
    const k = newCephKey();
    const b = Buffer.from(k, 'base64');
    expect(b.length).toBe(28);
    expect(b.readUInt16LE(0)).toBe(1);
    expect(b.readUInt16LE(10)).toBe(16);
    expect(Math.abs(b.readUInt32LE(2) - Date.now() / 1000)).toBeLessThan(5);
    expect(newCephKey()).not.toBe(k);
  });

  it('renders a keyring with caps, and reads a key back', () => {
    const text = renderKeyring([
      { entity: 'mon.', key: 'AQAAAA==', caps: { mon: 'allow *' } },
      { entity: 'client.admin', key: 'AQBB', caps: { mon: 'allow *', osd: 'profile rbd pool=nf-1' } },
    ]);
    expect(text).toBe(
      '[mon.]\n\tkey = AQAAAA==\n\tcaps mon = "allow *"\n[client.admin]\n\tkey = AQBB\n\tcaps mon = "allow *"\n\tcaps osd = "profile rbd pool=nf-1"\n',
    );
    expect(keyringKey(text)).toBe('AQAAAA==');
  });

  it('refuses entities, keys and caps that could add lines to the file', () => {
    expect(() => renderKeyring([{ entity: 'client.x\n[client.admin]', key: 'AQ' }])).toThrow(
      /bad cephx entity/,
    );
    expect(() => renderKeyring([{ entity: 'client.x', key: 'AQ==\ncaps mon = "allow *"' }])).toThrow(
      /bad cephx key/,
    );
    expect(() => renderKeyring([{ entity: 'client.x', key: 'AQ', caps: { mon: 'allow *"\n' } }])).toThrow(
      /bad cap/,
    );
    expect(() => renderKeyring([{ entity: 'client.x', key: 'AQ', caps: { rgw: 'allow' } }])).toThrow(
      /bad cap/,
    );
  });
});

describe('ceph.conf of a host', () => {
  const base = {
    fsid: '00000000-0000-0000-0000-000000000001',
    mons: [
      { name: 'h1', ip: '10.0.0.1' },
      { name: 'h2', ip: 'fd00::2' },
    ],
    dir: '/d/ceph',
    poolSize: 3,
    poolMinSize: 2,
    osdMemoryTargetBytes: 1,
    failureDomain: 'host' as const,
  };

  it('names every monitor, and puts the host in its own CRUSH bucket with its own address', () => {
    const c = renderCephConf({ ...base, hostName: 'h2', hostIp: '10.0.0.2', monIp: 'fd00::2' });
    const mon = c.slice(c.indexOf('[mon]'), c.indexOf('[mgr]'));
    expect(mon).toContain('public addr = fd00::2');
    expect(c).toContain(
      'mon host = [v2:10.0.0.1:3300,v1:10.0.0.1:6789],[v2:[fd00::2]:3300,v1:[fd00::2]:6789]',
    );
    expect(c).toContain('mon initial members = h1, h2');
    expect(c).toContain('osd crush chooseleaf type = 1');
    const osd = c.slice(c.indexOf('[osd]'));
    expect(osd).toContain('crush location = root=default host=h2');
    expect(osd).toContain('public addr = 10.0.0.2');
    const mgr = c.slice(c.indexOf('[mgr]'), c.indexOf('[osd]'));
    expect(mgr).toContain('public addr = 10.0.0.2');
    // one section of each kind (Ceph does not merge repeated sections reliably)
    expect(c.match(/^\[mgr\]$/gm)).toHaveLength(1);
  });

  it('leaves the address to Ceph when the host has none to give', () => {
    const c = renderCephConf({ ...base, failureDomain: 'osd' });
    expect(c).not.toContain('public addr');
    expect(c).not.toContain('crush location');
    expect(c).toContain('osd crush chooseleaf type = 0');
  });
});

describe('what replicas risk', () => {
  it('says it in words for each case', () => {
    expect(risk(1, 1, 3).warning).toMatch(/one copy/);
    expect(risk(3, 2, 2, 'host', 2).warning).toMatch(/3 copies wanted but 2 OSD/);
    expect(risk(3, 2, 4, 'host', 2).warning).toMatch(/only 2 host\(s\) have OSDs/);
    expect(risk(2, 1, 2, 'osd', 1).warning).toMatch(/single copy left, and one host failing/);
    expect(risk(3, 1, 3, 'host', 3).warning).toMatch(/single copy left/);
    expect(risk(3, 2, 3, 'host', 3).warning).toBeUndefined();
  });
});
