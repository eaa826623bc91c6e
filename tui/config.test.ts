import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  configPath,
  defaultConfig,
  hashRootPassword,
  parseConfig,
  readConfig,
  verifyRootPassword,
  writeConfig,
} from '../src/appliance/config';
import { configWithPassword } from './forms';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'nf-cfg-'));
  dirs.push(d);
  return d;
};

const staticCfg = () =>
  parseConfig({
    ...defaultConfig(),
    hostname: 'esx1',
    network: {
      interface: 'eth0',
      mode: 'static',
      address: '192.0.2.10/24',
      gateway: '192.0.2.1',
      dns: ['192.0.2.53'],
      vlan: 12,
    },
    cluster: { mode: 'create', name: 'prod' },
  });

describe('appliance config file', () => {
  it('round trip: written 0600 as JSON, read back equal; absent before the first write', async () => {
    const d = tmp();
    expect(readConfig(d)).toBeUndefined();
    const cfg = staticCfg();
    await writeConfig(cfg, d);
    expect(statSync(configPath(d)).mode & 0o777).toBe(0o600);
    expect(readConfig(d)).toEqual(cfg);
    expect(JSON.parse(readFileSync(configPath(d), 'utf8')).network.address).toBe('192.0.2.10/24');
  });

  it('rejects bad files naming the file and the field', () => {
    const d = tmp();
    const write = (text: string) => {
      mkdirSync(dirname(configPath(d)), { recursive: true });
      writeFileSync(configPath(d), text);
    };
    write('{"version": 1,');
    expect(() => readConfig(d)).toThrow(/config\.json: not JSON/);
    write(JSON.stringify({ ...staticCfg(), version: 2 }));
    expect(() => readConfig(d)).toThrow(/config\.json: appliance config: version/);
    write(JSON.stringify({ ...staticCfg(), colour: 'blue' }));
    expect(() => readConfig(d)).toThrow(/colour/);
    const net = staticCfg().network;
    const bad = (network: object) => {
      write(JSON.stringify({ ...staticCfg(), network: { ...net, ...network } }));
      return () => readConfig(d);
    };
    expect(bad({ address: '192.0.2.10' })).toThrow(/network\.address/);
    expect(bad({ gateway: undefined })).toThrow(/network\.gateway: a static address needs a gateway/);
    expect(bad({ dns: [] })).toThrow(/network\.dns: a static address needs a DNS server/);
    expect(bad({ gateway: '198.51.100.1' })).toThrow(
      /198\.51\.100\.1 is not in the subnet of 192\.0\.2\.10\/24/,
    );
    expect(bad({ vlan: 4095 })).toThrow(/network\.vlan/);
    expect(bad({ mode: 'pppoe' })).toThrow(/network\.mode/);
    write(JSON.stringify({ ...staticCfg(), hostname: 'Bad_Name' }));
    expect(() => readConfig(d)).toThrow(/hostname/);
    write(JSON.stringify({ ...staticCfg(), cluster: { mode: 'join' } }));
    expect(() => readConfig(d)).toThrow(/cluster/);
  });

  it('writeConfig refuses an invalid config and leaves the file alone', async () => {
    const d = tmp();
    await writeConfig(staticCfg(), d);
    const before = readFileSync(configPath(d), 'utf8');
    await expect(writeConfig({ ...staticCfg(), hostname: '-x-' }, d)).rejects.toThrow(/hostname/);
    expect(readFileSync(configPath(d), 'utf8')).toBe(before);
  });
});

describe('root password', () => {
  it('hashes with busybox mkpasswd (SHA-512 crypt) and scrypt into the config; only hashes are kept', async () => {
    const hashes = hashRootPassword('Correct-horse1');
    expect(hashes.shadow).toMatch(/^\$6\$[a-zA-Z0-9./]{1,16}\$[a-zA-Z0-9./]{86}$/);
    expect(verifyRootPassword('Correct-horse1', hashes)).toBe(true);
    expect(verifyRootPassword('Correct-horse2', hashes)).toBe(false);
    expect(verifyRootPassword('x', undefined)).toBe(false);
    const d = tmp();
    await writeConfig(configWithPassword(staticCfg(), hashes), d);
    const text = readFileSync(configPath(d), 'utf8');
    expect(text).not.toContain('Correct-horse1');
    expect(readConfig(d)!.rootPassword).toEqual(hashes);
    // Two hashes of one password differ (random salts).
    expect(hashRootPassword('Correct-horse1').shadow).not.toBe(hashes.shadow);
  });

  it('the SHA-512 hash is the one busybox would check', async () => {
    const hashes = hashRootPassword('Correct-horse1');
    const salt = hashes.shadow.split('$')[2]!;
    const again = Bun.spawnSync(['busybox', 'mkpasswd', '-m', 'sha512', '-S', salt], {
      stdin: new TextEncoder().encode('Correct-horse1\n'),
    });
    expect(again.stdout.toString().trim()).toBe(hashes.shadow);
  });

  it('refuses a short password', () => {
    expect(() => hashRootPassword('short')).toThrow(/at least 8/);
  });
});
