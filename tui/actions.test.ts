import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configPath, readConfig, verifyRootPassword } from '../src/appliance/config';
import { newJoinToken } from '../src/cluster/token';
import {
  type ConsoleEnv,
  consoleEnv,
  gatherStatus,
  networkTestPlan,
  pollCluster,
  saveNetwork,
  savePassword,
  startCluster,
} from './actions';
import { networkValues } from './forms';
import { clusterText } from './status';

/** A stand-in for the local API: health, and cluster and nodes with the admin token. */
let api: ReturnType<typeof Bun.serve>;
let nodeState = 'not-ready';
beforeAll(() => {
  api = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === '/api/v1/health') return Response.json({ status: 'ok', etcd: true, version: '0.1.0' });
      if (req.headers.get('authorization') !== 'Bearer tok')
        return Response.json({ error: { code: 'unauthenticated', message: 'no' } }, { status: 401 });
      if (path === '/api/v1/cluster') return Response.json({ name: 'prod', mode: 'cluster', leader: 'esx1' });
      if (path === '/api/v1/nodes')
        return Response.json([{ name: 'esx1', state: nodeState, role: 'controller' }]);
      return new Response('not found', { status: 404 });
    },
  });
});
afterAll(() => {
  api?.stop(true);
});

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function env(opts: { api?: boolean } = {}): ConsoleEnv {
  const d = mkdtempSync(join(tmpdir(), 'nf-console-'));
  dirs.push(d);
  // Point the console at an address where nothing answers, or at the stand-in API.
  writeFileSync(join(d, 'api.url'), opts.api ? `http://127.0.0.1:${api.port}\n` : 'http://127.0.0.1:9\n');
  return consoleEnv({ dataDir: d, dryRun: true });
}
const log = (e: ConsoleEnv) => readFileSync(e.dryRunLog!, 'utf8');
const serveLog = (e: ConsoleEnv, text: string) => {
  mkdirSync(dirname(e.paths.serveLog), { recursive: true });
  appendFileSync(e.paths.serveLog, text);
};
const staticForm = {
  hostname: 'esx1',
  mode: 'static',
  address: '192.0.2.10/24',
  gateway: '192.0.2.1',
  dns: '192.0.2.53',
  vlan: '0',
  interface: 'eth0',
};

describe('console actions in a dry run', () => {
  it('--dry-run never touches /: it needs a scratch root', () => {
    expect(() => consoleEnv({ dataDir: '/tmp/x', dryRun: true, root: '/' })).toThrow(/scratch directory/);
    const e = consoleEnv({ dataDir: '/tmp/x', dryRun: true });
    expect(e.root).toBe('/tmp/x/dry-run-root');
    expect(e.paths.servePidfile).toBe('/tmp/x/dry-run-root/run/neuroflow/appliance-serve.pid');
    expect(consoleEnv({ dataDir: '/tmp/x' }).root).toBe('/');
  });

  it('network: config written, host name and plan logged, status shows the URL', async () => {
    const e = env();
    expect((await gatherStatus(e)).management.text).toBe('not configured');
    const r = await saveNetwork(e, staticForm);
    expect(r.lines[0]).toBe('Saved the management network settings.');
    expect(r.lines.at(-1)).toMatch(/not running \(no .*appliance-serve\.pid\)/);
    expect(readConfig(e.dataDir)!.network).toMatchObject({ mode: 'static', address: '192.0.2.10/24' });
    expect(log(e)).toContain('run ["hostname","esx1"]');
    expect(log(e)).toContain('run ["ip","addr","add","192.0.2.10/24","dev","eth0"]');
    expect(readFileSync(join(e.root, 'etc', 'resolv.conf'), 'utf8')).toContain('nameserver 192.0.2.53');
    const s = await gatherStatus(e);
    expect(s.management.text).toBe('https://192.0.2.10:8006/ (STATIC)');
    expect(s.hostname).toBe('esx1');
    expect(clusterText(s.cluster)).toBe('none');
  });

  it('network: invalid input writes nothing', async () => {
    const e = env();
    await expect(saveNetwork(e, { ...staticForm, address: '192.0.2.300/24' })).rejects.toThrow(
      /not an IPv4 address/,
    );
    expect(existsSync(configPath(e.dataDir))).toBe(false);
    expect(existsSync(e.dryRunLog!)).toBe(false);
  });

  it('network test: gateway and DNS from the config, pings logged in a dry run', async () => {
    const e = env();
    expect((await networkTestPlan(e)).notes[0]).toMatch(/not configured/);
    await saveNetwork(e, { ...staticForm, dns: '192.0.2.53, 192.0.2.54' });
    const plan = await networkTestPlan(e);
    expect(plan.targets).toEqual([
      { role: 'gateway', ip: '192.0.2.1' },
      { role: 'DNS server', ip: '192.0.2.53' },
      { role: 'DNS server', ip: '192.0.2.54' },
    ]);
  });

  it('root password: hashes in the config, the shadow entry under the root', async () => {
    const e = env();
    await expect(savePassword(e, { password: 'Correct-horse1', confirm: 'Correct-horse' })).rejects.toThrow(
      /do not match/,
    );
    expect(existsSync(configPath(e.dataDir))).toBe(false);
    await savePassword(e, { password: 'Correct-horse1', confirm: 'Correct-horse1' });
    const cfg = readConfig(e.dataDir)!;
    expect(verifyRootPassword('Correct-horse1', cfg.rootPassword)).toBe(true);
    expect(readFileSync(join(e.root, 'etc', 'shadow'), 'utf8')).toContain(
      `root:${cfg.rootPassword!.shadow}:`,
    );
  });

  it('join refused: the error serve printed after the restart, and the config back to none', async () => {
    const e = env();
    await saveNetwork(e, staticForm);
    // An old failure before this attempt does not count.
    serveLog(e, 'error (unavailable): an old failure\n');
    mkdirSync(dirname(e.paths.servePidfile), { recursive: true });
    writeFileSync(e.paths.servePidfile, '4242\n');
    const token = newJoinToken({
      controllers: ['192.0.2.1:8006'],
      caFingerprint: `sha256:${'c'.repeat(64)}`,
      ttlSec: 600,
    }).token;
    const start = await startCluster(e, 'join', { token });
    expect(readConfig(e.dataDir)!.cluster).toEqual({ mode: 'join', token });
    expect(start.restart).toMatchObject({ signalled: true, pid: 4242 });
    expect(log(e)).toContain('signal ["SIGHUP",4242]');
    expect(await pollCluster(e, start)).toMatchObject({ done: false });
    expect(clusterText((await gatherStatus(e)).cluster)).toBe('error: an old failure');
    serveLog(e, '{"level":"info","msg":"joining a cluster"}\n');
    expect(await pollCluster(e, start)).toEqual({ done: false, message: 'joining a cluster' });
    serveLog(e, 'error (unauthenticated): the join token is unknown, revoked or wrong\n');
    expect(await pollCluster(e, start)).toEqual({
      done: true,
      ok: false,
      message: 'the join token is unknown, revoked or wrong',
    });
    expect(readConfig(e.dataDir)!.cluster).toEqual({ mode: 'none' });
  });

  it('join accepted: done once the cluster facts exist and the API answers; the token is dropped', async () => {
    const e = env({ api: true });
    await saveNetwork(e, staticForm);
    const token = newJoinToken({
      controllers: ['192.0.2.1:8006'],
      caFingerprint: `sha256:${'d'.repeat(64)}`,
      ttlSec: 600,
    }).token;
    const start = await startCluster(e, 'join', { token });
    expect(clusterText((await gatherStatus(e)).cluster)).toBe('joining a cluster...');
    expect((await pollCluster(e, start)).done).toBe(false);
    mkdirSync(join(e.dataDir, 'cluster'), { recursive: true });
    writeFileSync(
      join(e.dataDir, 'cluster', 'config.json'),
      JSON.stringify({ clusterName: 'prod', role: 'controller', name: 'esx1' }),
    );
    expect(await pollCluster(e, start)).toEqual({
      done: true,
      ok: true,
      message: 'joined cluster prod as controller',
    });
    expect(readConfig(e.dataDir)!.cluster).toEqual({ mode: 'member' });
    expect(clusterText((await gatherStatus(e)).cluster)).toBe('joined cluster prod as controller');
  });

  it('create: waits until the API lists this host ready', async () => {
    const e = env({ api: true });
    await saveNetwork(e, staticForm);
    writeFileSync(join(e.dataDir, 'admin.token'), 'tok\n');
    const start = await startCluster(e, 'create', { name: 'prod' });
    expect(readConfig(e.dataDir)!.cluster).toEqual({ mode: 'create', name: 'prod' });
    expect(clusterText((await gatherStatus(e)).cluster)).toBe('creating a cluster...');
    mkdirSync(join(e.dataDir, 'cluster'), { recursive: true });
    writeFileSync(
      join(e.dataDir, 'cluster', 'config.json'),
      JSON.stringify({ clusterName: 'prod', role: 'controller', name: 'esx1' }),
    );
    nodeState = 'not-ready';
    expect(await pollCluster(e, start)).toMatchObject({
      done: false,
      message: /waiting for this host to be ready/,
    });
    nodeState = 'ready';
    expect(await pollCluster(e, start)).toEqual({
      done: true,
      ok: true,
      message: 'created cluster prod as controller',
    });
    expect(readConfig(e.dataDir)!.cluster.mode).toBe('create');
    expect(clusterText((await gatherStatus(e)).cluster)).toBe(
      'joined cluster prod as controller (leader: esx1)',
    );
  });

  it("create: the supervisor's error (cluster-status.json) ends it", async () => {
    const e = env();
    await saveNetwork(e, staticForm);
    const start = await startCluster(e, 'create', { name: '' });
    mkdirSync(dirname(e.paths.clusterStatus), { recursive: true });
    writeFileSync(
      e.paths.clusterStatus,
      JSON.stringify({
        state: 'error',
        mode: 'create',
        message: 'cannot listen on 192.0.2.10:8006',
        since: new Date().toISOString(),
      }),
    );
    expect(await pollCluster(e, start)).toEqual({
      done: true,
      ok: false,
      message: 'cannot listen on 192.0.2.10:8006',
    });
    expect(clusterText((await gatherStatus(e)).cluster)).toBe('error: cannot listen on 192.0.2.10:8006');
  });

  it('the network form starts from the config', async () => {
    const e = env();
    await saveNetwork(e, { ...staticForm, vlan: '12' });
    expect(networkValues(readConfig(e.dataDir))).toEqual({ ...staticForm, vlan: '12' });
  });
});
