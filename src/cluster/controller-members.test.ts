import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { NfError } from '../errors';
import { setLogLevel } from '../util/log';
import type { ClusterConfig } from './config';
import { ControllerMembers, controllersFile, initialControllers } from './controller-members';
import type { PeerIdentity } from './grpc/tls';

let dataDir: string;
beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'nf-members-test-'));
  await mkdir(join(dataDir, 'cluster'), { recursive: true });
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));
beforeAll(() => setLogLevel('error'));
afterAll(() => setLogLevel('info'));

function config(extra: Partial<ClusterConfig> = {}): ClusterConfig {
  return {
    clusterName: 'c',
    name: 'w1',
    role: 'worker',
    address: '10.0.0.9',
    apiPort: 8006,
    grpcPort: 8007,
    etcdClientPort: 2379,
    etcdPeerPort: 2380,
    controllers: [
      { name: 'ctl1', api: '10.0.0.1:8006', grpc: '10.0.0.1:8007' },
      { name: 'ctl2', api: '[fd00::2]:8006', grpc: '[fd00::2]:8007' },
      { name: 'ctl3' },
    ],
    founder: false,
    createdAt: '2024-01-01T00:00:00.000Z',
    ...extra,
  };
}

const peer = (name: string, address: string, role: PeerIdentity['role'] = 'controller'): PeerIdentity => ({
  name,
  role,
  address,
  ips: [address],
});

function refusal(fn: () => unknown): NfError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NfError);
    return err as NfError;
  }
  throw new Error('expected a refusal');
}

describe('initialControllers', () => {
  test('a worker starts with the controllers of its join data, at their addresses', () => {
    expect(initialControllers(dataDir, config())).toStrictEqual({
      source: 'config',
      revision: 0,
      controllers: [
        { name: 'ctl1', addresses: ['10.0.0.1'] },
        { name: 'ctl2', addresses: ['fd00::2'] },
        { name: 'ctl3', addresses: [] },
      ],
    });
  });

  test('a controller also counts itself (the founder has no one else in its join data)', () => {
    const founder = config({
      name: 'ctl1',
      role: 'controller',
      address: '10.0.0.1',
      controllers: [],
      founder: true,
    });
    expect(initialControllers(dataDir, founder).controllers).toStrictEqual([
      { name: 'ctl1', addresses: ['10.0.0.1'] },
    ]);
  });

  test("the leader's last list, saved, wins over the join data; a damaged file does not", async () => {
    const m = new ControllerMembers(initialControllers(dataDir, config()), controllersFile(dataDir));
    m.update({ revision: 42, controllers: [{ name: 'ctl1', addresses: ['10.0.0.1'] }] });
    await m.flush();
    expect(JSON.parse(readFileSync(controllersFile(dataDir), 'utf8'))).toStrictEqual({
      revision: 42,
      controllers: [{ name: 'ctl1', addresses: ['10.0.0.1'] }],
    });
    expect(initialControllers(dataDir, config())).toStrictEqual({
      source: 'leader',
      revision: 42,
      controllers: [{ name: 'ctl1', addresses: ['10.0.0.1'] }],
    });

    writeFileSync(controllersFile(dataDir), '{"revision": 3, "controllers": [{"name": 5}]}');
    expect(initialControllers(dataDir, config()).source).toBe('config');
    writeFileSync(controllersFile(dataDir), 'not json');
    expect(initialControllers(dataDir, config()).source).toBe('config');
  });
});

describe('ControllerMembers', () => {
  test('takes calls only from listed controllers at their addresses, saying why not', () => {
    const m = new ControllerMembers(initialControllers(dataDir, config()));
    expect(m.check(peer('ctl1', '10.0.0.1'))).toBe(true);
    expect(m.check(peer('ctl2', 'FD00::2'))).toBe(true);
    expect(m.check(peer('ctl3', '10.0.0.3'))).toBe(true); // no address in the join data: the name is enough
    // loopback is not a controller's address: a local process with a copied certificate is refused
    expect(refusal(() => m.check(peer('ctl1', '127.0.0.1'))).code).toBe('forbidden');
    const stranger = refusal(() => m.check(peer('ctl4', '10.0.0.4')));
    expect(stranger.code).toBe('forbidden');
    expect(stranger.message).toBe(
      'ctl4 (controller) at 10.0.0.4 is not a controller of this cluster (removed?); this host takes calls from ctl1, ctl2, ctl3 (its join data, until the leader sends the current list)',
    );
    expect(refusal(() => m.check(peer('ctl1', '10.0.0.66'))).message).toBe(
      "ctl1 (controller) at 10.0.0.66 calls from an address that is not the controller's (10.0.0.1; its join data, until the leader sends the current list)",
    );
    expect(refusal(() => m.check({ address: '10.0.0.1', ips: [] })).message).toMatch(
      /^unnamed peer at 10\.0\.0\.1 is not/,
    );
  });

  test("the leader's list replaces the join data; an older one is ignored, a newer one taken", () => {
    const m = new ControllerMembers(initialControllers(dataDir, config()));
    expect(m.update({ revision: 10, controllers: [{ name: 'ctl1', addresses: ['10.0.0.1'] }] })).toBe(true);
    expect(refusal(() => m.check(peer('ctl2', 'fd00::2'))).message).toBe(
      "ctl2 (controller) at fd00::2 is not a controller of this cluster (removed?); this host takes calls from ctl1 (the leader's list of revision 10)",
    );
    // a late answer of a deposed leader
    expect(
      m.update({
        revision: 9,
        controllers: [
          { name: 'ctl1', addresses: ['10.0.0.1'] },
          { name: 'ctl2', addresses: ['fd00::2'] },
        ],
      }),
    ).toBe(false);
    expect(m.known.revision).toBe(10);
    expect(() => m.check(peer('ctl2', 'fd00::2'))).toThrow(NfError);
    // An empty list would lock every controller out: it is ignored.
    expect(m.update({ revision: 12, controllers: [] })).toBe(false);
    expect(m.check(peer('ctl1', '10.0.0.1'))).toBe(true);
  });

  test('the first list of a new heartbeat stream is taken even with a lower revision (etcd restored)', () => {
    const m = new ControllerMembers(initialControllers(dataDir, config()));
    expect(m.update({ revision: 900, controllers: [{ name: 'ctl1', addresses: ['10.0.0.1'] }] })).toBe(true);
    const restored = { revision: 40, controllers: [{ name: 'ctl2', addresses: ['fd00::2'] }] };
    expect(m.update(restored)).toBe(false);
    expect(m.update(restored, { firstOfStream: true })).toBe(true);
    expect(m.check(peer('ctl2', 'fd00::2'))).toBe(true);
    expect(m.known.revision).toBe(40);
  });

  test('the first list of a run is taken whatever its revision (a store restored from backup)', () => {
    const m = new ControllerMembers({
      source: 'leader',
      revision: 500,
      controllers: [{ name: 'ctl1', addresses: [] }],
    });
    expect(m.update({ revision: 20, controllers: [{ name: 'ctl2', addresses: [] }] })).toBe(true);
    expect(m.check(peer('ctl2', '10.0.0.2'))).toBe(true);
    expect(m.update({ revision: 19, controllers: [{ name: 'ctl1', addresses: [] }] })).toBe(false);
  });

  test('the list is saved only when it changes', async () => {
    const file = controllersFile(dataDir);
    const m = new ControllerMembers(initialControllers(dataDir, config()), file);
    m.update({ revision: 5, controllers: [{ name: 'ctl1', addresses: ['10.0.0.1'] }] });
    await m.flush();
    writeFileSync(file, 'marker'); // a rewrite would replace it
    m.update({ revision: 6, controllers: [{ name: 'ctl1', addresses: ['10.0.0.1'] }] });
    await m.flush();
    expect(readFileSync(file, 'utf8')).toBe('marker');
    m.update({ revision: 7, controllers: [{ name: 'ctl2', addresses: [] }] });
    await m.flush();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toStrictEqual({
      revision: 7,
      controllers: [{ name: 'ctl2', addresses: [] }],
    });
  });
});
