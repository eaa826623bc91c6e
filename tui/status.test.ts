import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../src/appliance/config';
import { clusterProgress } from './actions';
import {
  cephText,
  clusterText,
  clusterView,
  lastServeError,
  managementView,
  probeApi,
  readableLogLine,
  sshStatusLines,
} from './status';

const base = parseConfig({ ...defaultConfig(), hostname: 'esx1' });
const withCluster = (cluster: object) => parseConfig({ ...base, cluster });
const staticCfg = parseConfig({
  ...base,
  network: {
    interface: 'eth0',
    mode: 'static',
    address: '192.0.2.10/24',
    gateway: '192.0.2.1',
    dns: ['192.0.2.1'],
    vlan: 0,
  },
});

describe('the serve log', () => {
  it('the last error counts only when serve did not run after it', () => {
    expect(lastServeError('')).toBeUndefined();
    const refused =
      'joining a cluster\nerror (unauthenticated): the join token is unknown, revoked or wrong\n';
    expect(lastServeError(refused)).toEqual({
      code: 'unauthenticated',
      message: 'the join token is unknown, revoked or wrong',
    });
    expect(lastServeError(`${refused}NeuroFlow 0.1.0 is running.\n`)).toBeUndefined();
    // A supervisor may prefix lines with a time.
    expect(lastServeError('2030-01-01 10:00:00 error (unavailable): cannot reach 10.0.0.1:8006')?.code).toBe(
      'unavailable',
    );
  });

  it('JSON log records read as text', () => {
    expect(readableLogLine('{"time":"t","level":"info","msg":"joining a cluster","name":"esx2"}')).toBe(
      'joining a cluster (name=esx2)',
    );
    expect(readableLogLine('{"level":"warn","msg":"slow","ms":5}')).toBe('warn: slow (ms=5)');
    expect(readableLogLine('plain text ')).toBe('plain text');
    expect(readableLogLine('{broken')).toBe('{broken');
  });
});

describe('what the main screen says', () => {
  it('management URL: not configured, static, DHCP with or without a lease, VLAN', () => {
    expect(managementView(undefined, []).text).toBe('not configured');
    const s = managementView(staticCfg, [{ name: 'eth0', up: true, ipv4: ['192.0.2.10/24'] }]);
    expect(s).toMatchObject({
      ip: '192.0.2.10',
      url: 'https://192.0.2.10:8006/',
      text: 'https://192.0.2.10:8006/ (STATIC)',
    });
    expect(s.warning).toBeUndefined();
    expect(managementView(staticCfg, []).warning).toBe('192.0.2.10/24 is not on eth0 yet');
    expect(managementView(base, []).text).toBe('no address');
    expect(managementView(base, [{ name: 'eth0', up: true, ipv4: ['10.0.0.7/24'] }]).text).toBe(
      'https://10.0.0.7:8006/ (DHCP)',
    );
    const vlan = parseConfig({ ...base, network: { ...base.network, vlan: 7 } });
    expect(managementView(vlan, [{ name: 'eth0', up: true, ipv4: ['10.0.0.7/24'] }]).text).toBe('no address');
    expect(managementView(vlan, [{ name: 'eth0.7', up: true, ipv4: ['10.7.0.7/24'] }]).detail).toBe(
      '10.7.0.7/24 on eth0.7, DHCP',
    );
  });

  it('cluster: none, creating, joining, joined NAME as ROLE, error with the message', () => {
    const v = (i: Partial<Parameters<typeof clusterView>[0]>) =>
      clusterText(
        clusterView({ cfg: base, facts: undefined, probe: undefined, serveError: undefined, ...i }),
      );
    expect(v({})).toBe('none');
    expect(v({ cfg: undefined })).toBe('none');
    expect(v({ lastError: 'the join token has expired' })).toBe(
      'none (last attempt failed: the join token has expired)',
    );
    expect(v({ cfg: withCluster({ mode: 'create' }) })).toBe('creating a cluster...');
    expect(v({ cfg: withCluster({ mode: 'join', token: 'x' }) })).toBe('joining a cluster...');
    expect(
      v({
        cfg: withCluster({ mode: 'join', token: 'x' }),
        serveError: { code: 'unauthenticated', message: 'bad token' },
      }),
    ).toBe('error: bad token');
    const facts = { clusterName: 'prod', role: 'worker' as const, name: 'esx1' };
    expect(v({ cfg: withCluster({ mode: 'member' }), facts, probe: { health: 'worker' } })).toBe(
      'joined cluster prod as worker',
    );
    expect(
      v({
        cfg: withCluster({ mode: 'create' }),
        facts: { ...facts, role: 'controller' },
        probe: { health: 'ok', cluster: { name: 'prod', mode: 'cluster', leader: 'esx1' } },
      }),
    ).toBe('joined cluster prod as controller (leader: esx1)');
    expect(v({ facts, probe: { health: 'down', error: 'connection refused' } })).toBe(
      'joined cluster prod as worker; management API not answering (connection refused)',
    );
    expect(
      v({
        facts,
        probe: { health: 'down' },
        serveError: { code: 'unavailable', message: 'etcd did not start' },
      }),
    ).toBe('joined cluster prod as worker; etcd did not start');
  });

  it("the supervisor's status file: waiting for an address, or its error", () => {
    const v = (supervisor: object) =>
      clusterText(
        clusterView({
          cfg: withCluster({ mode: 'create' }),
          facts: undefined,
          probe: undefined,
          serveError: undefined,
          supervisor: supervisor as never,
        }),
      );
    expect(v({ state: 'waiting', mode: 'create', message: 'waiting for an address on eth0' })).toBe(
      'creating a cluster... (waiting for an address on eth0)',
    );
    expect(v({ state: 'starting', mode: 'create', message: 'starting' })).toBe('creating a cluster...');
    expect(v({ state: 'error', mode: 'create', message: 'address in use' })).toBe('error: address in use');
  });
});

describe('following a create or join', () => {
  const facts = { clusterName: 'prod', role: 'controller' as const, name: 'esx1' };
  const p = (i: Partial<Parameters<typeof clusterProgress>[0]>) =>
    clusterProgress({
      kind: 'join',
      logSince: '',
      facts: undefined,
      probe: undefined,
      hostname: 'esx1',
      ...i,
    });

  it('the supervisor status: its error ends it, its waiting shows', () => {
    expect(p({ supervisor: { state: 'error', message: 'join failed: bad token' } })).toEqual({
      done: true,
      ok: false,
      message: 'join failed: bad token',
    });
    expect(p({ supervisor: { state: 'waiting', message: 'waiting for an address on eth0' } })).toEqual({
      done: false,
      message: 'waiting for an address on eth0',
    });
    expect(
      lastServeError('error (x): old\nNeuroFlow is running: https://10.0.0.1:8006/api/v1\n'),
    ).toBeUndefined();
  });

  it('a refused join ends with the message serve printed', () => {
    expect(
      p({ logSince: 'joining\nerror (unauthenticated): the join token is unknown, revoked or wrong\n' }),
    ).toEqual({
      done: true,
      ok: false,
      message: 'the join token is unknown, revoked or wrong',
    });
  });

  it('waits with the latest log line, then done when the API answers (and the host is ready)', () => {
    expect(p({})).toEqual({ done: false, message: 'waiting for serve to join...' });
    expect(p({ logSince: '{"level":"info","msg":"joining a cluster","name":"esx1"}\n' })).toEqual({
      done: false,
      message: 'joining a cluster (name=esx1)',
    });
    expect(p({ facts, probe: { health: 'down' } }).done).toBe(false);
    expect(p({ facts, probe: { health: 'worker' } })).toEqual({
      done: true,
      ok: true,
      message: 'joined cluster prod as controller',
    });
    const nodes = (state: string) => [
      { name: 'esx0', state: 'ready', role: 'controller' },
      { name: 'esx1', state, role: 'controller' },
    ];
    expect(p({ kind: 'create', facts, probe: { health: 'ok', nodes: nodes('not-ready') } })).toEqual({
      done: false,
      message: 'created cluster prod; waiting for this host to be ready (not-ready)',
    });
    expect(p({ kind: 'create', facts, probe: { health: 'ok', nodes: nodes('ready') } })).toEqual({
      done: true,
      ok: true,
      message: 'created cluster prod as controller',
    });
  });
});

describe('SSH in the Troubleshooting menu', () => {
  const base = { listen: ['22'], since: '2030-01-01T10:00:00.000Z' };
  it('says what runs, the host key, or why it does not', () => {
    expect(sshStatusLines(undefined)).toEqual([]);
    expect(
      sshStatusLines({
        ...base,
        running: true,
        until: '2030-01-01T11:00:00.000Z',
        pid: 42,
        fingerprint: 'SHA256:abc',
        message: 'dropbear runs on 22 until 2030-01-01T11:00:00.000Z',
      }),
    ).toEqual(['dropbear runs (pid 42) on 22.', 'Host key: SHA256:abc']);
    expect(
      sshStatusLines({
        ...base,
        running: false,
        until: '2030-01-01T11:00:00.000Z',
        message: 'dropbear exited (1); dropbear is started again at 2030-01-01T10:00:02.000Z',
      }),
    ).toEqual(['Not running: dropbear exited (1); dropbear is started again at 2030-01-01T10:00:02.000Z']);
    expect(sshStatusLines({ ...base, running: false, until: null, message: 'SSH is disabled' })).toEqual([]);
  });
});

describe('the Ceph line', () => {
  it('reads the integrated Ceph from the API and says it in one line', async () => {
    let configured = true;
    const server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(req) {
        const path = new URL(req.url).pathname;
        if (path === '/api/v1/health') return Response.json({ status: 'ok', version: '0.1.0' });
        if (path === '/api/v1/cluster')
          return Response.json({ name: 'prod', mode: 'cluster', leader: 'esx1' });
        if (path === '/api/v1/nodes') return Response.json([]);
        if (path === '/api/v1/ceph')
          return Response.json(
            configured
              ? {
                  configured: true,
                  daemons: [],
                  health: {
                    status: 'HEALTH_WARN',
                    checks: [{ name: 'OSD_DOWN', severity: 'HEALTH_WARN', summary: '1 osds down' }],
                    mons: { total: 3, inQuorum: ['a', 'b', 'c'] },
                    osds: { total: 6, up: 5, in: 6 },
                    pgs: { total: 64, byState: {} },
                    recovery: { degradedRatio: 0.1234, misplacedRatio: 0, bytesPerSec: 0, objectsPerSec: 0 },
                  },
                }
              : { configured: false, daemons: [] },
          );
        return new Response('no', { status: 404 });
      },
    });
    try {
      const ep = { url: `http://127.0.0.1:${server.port}`, token: 't' };
      const probe = await probeApi(ep);
      expect(probe.ceph).toEqual({
        health: 'HEALTH_WARN',
        monsInQuorum: 3,
        mons: 3,
        osdsUp: 5,
        osds: 6,
        check: '1 osds down',
        degraded: 0.1234,
      });
      expect(cephText(probe.ceph!)).toBe(
        'HEALTH_WARN, 3/3 monitors in quorum, 5/6 OSDs up, 12.3% degraded (1 osds down)',
      );
      configured = false;
      expect((await probeApi(ep)).ceph).toBeUndefined();
    } finally {
      server.stop(true);
    }
  });
});
