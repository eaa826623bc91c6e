import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/cli/client';
import * as pb from '../../src/cluster/gen/neuroflow/v1/node';
import { clientChannelOptions, clientCredentials } from '../../src/cluster/grpc/tls';
import { CONTROLLER_SAN, createCsr, generateKey } from '../../src/cluster/pki';
import { parseJoinToken } from '../../src/cluster/token';
import { keys } from '../../src/controller/records';
import { NfError } from '../../src/errors';
import { EtcdStore } from '../../src/store/store';
import { waitFor } from '../../src/util/wait';
import { launchChromium, signIn } from '../harness/browser';
import { ClusterHost, NetLab } from '../harness/cluster';
import { rejection } from '../harness/errors';
import { BOOTED, testGuest } from '../harness/guest';
import { type VmView, waitTask } from '../harness/vms';

/**
 * Four hosts, each a network namespace running its own `neuroflow serve` with its own data dir and
 * address: the first founds a cluster, two join as controllers (etcd members), the fourth as a worker.
 */
describe('cluster of hosts in network namespaces', () => {
  let lab: NetLab;
  const hosts: ClusterHost[] = [];
  let token = '';
  let ca = '';
  let api: ApiClient;

  const byName = (n: string) => hosts.find((h) => h.name === n)!;
  const newToken = async (role: 'controller' | 'worker' = 'worker', a = api) =>
    await a.request<{ token: string; id: string }>('POST', '/api/v1/cluster/join-tokens', {
      ttlSec: 600,
      role,
    });
  const nodes = (a = api) =>
    a.request<{ name: string; state: string; role: string; leader: boolean; connected: boolean }[]>(
      'GET',
      '/api/v1/nodes',
    );
  const vmBody = (name: string) => {
    const g = testGuest();
    return {
      name,
      vcpus: 1,
      memoryMiB: 128,
      networks: [{ network: 'default' }],
      boot: { kernel: g.vmlinux, initrd: g.initrd, cmdline: g.cmdline },
      start: true,
    };
  };
  const booted = (a: ApiClient, id: string) =>
    waitFor(
      async () => ((await a.request<string>('GET', `/api/v1/vms/${id}/console-log`)) ?? '').includes(BOOTED),
      {
        timeoutMs: 120_000,
        intervalMs: 500,
        what: `VM ${id} to boot`,
      },
    );
  /** Decodes a token, changes it, encodes it again (what a careless or hostile paste could look like). */
  const tamper = (t: string, change: (j: Record<string, unknown>) => void) => {
    const j = JSON.parse(Buffer.from(t, 'base64url').toString()) as Record<string, unknown>;
    change(j);
    return Buffer.from(JSON.stringify(j)).toString('base64url');
  };

  beforeAll(() => {
    lab = new NetLab();
    for (let i = 1; i <= 4; i++) {
      const h = lab.addHost();
      hosts.push(new ClusterHost(`h${i}`, h.ns, h.ip));
    }
  });

  afterAll(async () => {
    for (const h of hosts) {
      const report = h.crashReport();
      if (report) console.error(report);
    }
    await Promise.all(hosts.map((h) => h[Symbol.asyncDispose]()));
    await lab?.[Symbol.asyncDispose]();
  });

  it('founds a cluster, then refuses bad, revoked, expired and tampered tokens without changing anything', async () => {
    const h1 = byName('h1');
    await h1.start();
    token = h1.file('admin.token').trim();
    ca = h1.file('cluster/pki/ca.crt');
    api = h1.api(token, ca);
    await waitFor(async () => (await nodes())[0]?.state === 'ready', { timeoutMs: 30_000, what: 'h1 ready' });
    expect(h1.url.startsWith('https://')).toBe(true);

    const h2 = byName('h2');
    const refused = async (tok: string, message: RegExp) => {
      const r = await h2.startExpectingFailure({ join: tok });
      expect(r.code).not.toBe(0);
      expect(r.output).toMatch(message);
      expect(existsSync(join(h2.dataDir, 'cluster', 'config.json'))).toBe(false);
    };
    await refused('definitely-not-a-token', /not a NeuroFlow join token/);

    const revoked = await newToken();
    await api.request('DELETE', `/api/v1/cluster/join-tokens/${revoked.id}`);
    await refused(revoked.token, /join token is not valid/);

    // Expired on the controller's side: the stored expiry is moved into the past through etcd itself.
    const expired = await newToken();
    const etcd = new EtcdStore(`https://${h1.ip}:2379`, {
      credentials: {
        rootCertificate: Buffer.from(ca),
        certChain: Buffer.from(h1.file('cluster/pki/host.crt')),
        privateKey: Buffer.from(h1.file('cluster/pki/host.key')),
      },
      grpcOptions: { 'grpc.ssl_target_name_override': CONTROLLER_SAN },
    });
    try {
      const rec = await etcd.get<Record<string, unknown>>(keys.joinToken(expired.id));
      await etcd.txn({
        put: [
          {
            key: keys.joinToken(expired.id),
            value: { ...rec!.value, expiresAt: '2020-01-01T00:00:00.000Z' },
          },
        ],
      });
    } finally {
      etcd.close();
    }
    await refused(expired.token, /expired at 2020-01-01/);

    // Tampered on the joiner's side: an expiry in the past, and a CA fingerprint of another cluster.
    const fresh = await newToken();
    await refused(
      tamper(fresh.token, (j) => {
        j.expiresAt = '2021-01-01T00:00:00.000Z';
      }),
      /expired/,
    );
    await refused(
      tamper(fresh.token, (j) => {
        j.caFingerprint = `sha256:${'ab'.repeat(32)}`;
      }),
      /not the one in the token/,
    );

    // Nothing changed on the cluster's side: one host, one etcd member, the unused token still valid.
    expect((await nodes()).map((n) => n.name)).toEqual(['h1']);
    const cluster = await api.request<{ etcdMembers: unknown[] }>('GET', '/api/v1/cluster');
    expect(cluster.etcdMembers).toHaveLength(1);
    const tokens = await api.request<{ id: string; status: string }[]>('GET', '/api/v1/cluster/join-tokens');
    expect(tokens.find((t) => t.id === fresh.id)?.status).toBe('valid');
    expect(tokens.find((t) => t.id === revoked.id)).toBeUndefined();
  });

  it('joins two controllers (etcd members) and a worker with single-use tokens', async () => {
    const first = await newToken('controller');
    await byName('h2').start({ join: first.token });
    // The same token again, on another host: refused.
    const reuse = await byName('h3').startExpectingFailure({ join: first.token });
    expect(reuse.output).toMatch(/already used \(by h2/);
    await byName('h3').start({ join: (await newToken('controller')).token });
    // Three controllers: no token for a fourth, and h4 joins with a worker token.
    const fourth = await rejection(newToken('controller'));
    expect(fourth.code).toBe('invalid_state');
    expect(fourth.message).toMatch(/has 3 controllers .* join the host as a worker/);
    // h4's first join gets through but its answer is lost (made from h4's namespace, the answer dropped):
    // the token is used; h4's own join with that token then gets its answer again.
    const h4 = byName('h4');
    const workerToken = await newToken();
    const lost = parseJoinToken(workerToken.token);
    const lostBody = join(h4.dataDir, 'lost-join.json');
    writeFileSync(
      lostBody,
      JSON.stringify({
        tokenId: lost.id,
        secret: lost.secret,
        name: 'h4',
        address: h4.ip,
        csr: await createCsr((await generateKey()).keyPem, 'h4'),
        apiPort: 8006,
        grpcPort: 8007,
        etcdClientPort: 2379,
        etcdPeerPort: 2380,
      }),
    );
    const curl = spawnSync(
      'ip',
      [
        ...['netns', 'exec', h4.ns, 'curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST'],
        ...['-H', 'content-type: application/json', '--data-binary', `@${lostBody}`],
        `${byName('h1').url}/api/v1/cluster/join`,
      ],
      { encoding: 'utf8' },
    );
    rmSync(lostBody);
    expect(curl.stdout).toBe('200');
    expect(
      (await api.request<{ status: string }>('GET', `/api/v1/cluster/join-tokens/${workerToken.id}`)).status,
    ).toBe('used');
    await h4.start({ join: workerToken.token });

    // Ready (heartbeats reach the leader) and connected (h1's gRPC reaches each host).
    await waitFor(
      async () => (await nodes()).filter((n) => n.state === 'ready' && n.connected).length === 4,
      { timeoutMs: 60_000, what: 'four ready hosts, connected from h1' },
    );
    const list = await nodes();
    expect(list.map((n) => [n.name, n.role])).toEqual([
      ['h1', 'controller'],
      ['h2', 'controller'],
      ['h3', 'controller'],
      ['h4', 'worker'],
    ]);
    const cluster = await api.request<{ etcdMembers: { name: string; learner: boolean }[] }>(
      'GET',
      '/api/v1/cluster',
    );
    expect(cluster.etcdMembers.map((m) => [m.name, m.learner]).sort()).toEqual([
      ['h1', false],
      ['h2', false],
      ['h3', false],
    ]);
    // Every controller serves the same cluster with the same admin token.
    const viaH3 = byName('h3').api(token, ca);
    expect((await nodes(viaH3)).map((n) => n.name)).toEqual(['h1', 'h2', 'h3', 'h4']);
    // A join asks for a certificate for the address it comes from, not another host's: refused, and the
    // token stays unused.
    const stolen = await newToken();
    const parsed = parseJoinToken(stolen.token);
    const { keyPem } = await generateKey();
    const joinBody = {
      tokenId: parsed.id,
      secret: parsed.secret,
      name: 'impostor',
      address: byName('h2').ip, // the test process calls from the bridge's address
      csr: await createCsr(keyPem, 'impostor'),
      apiPort: 8006,
      grpcPort: 8007,
      etcdClientPort: 2379,
      etcdPeerPort: 2380,
    };
    const spoofed = await rejection(api.request('POST', '/api/v1/cluster/join', joinBody));
    expect(spoofed.code).toBe('forbidden');
    expect(spoofed.message).toMatch(/came from .* but asks for a certificate for/);
    expect(
      (await api.request<{ status: string; role: string }>('GET', `/api/v1/cluster/join-tokens/${stolen.id}`))
        .status,
    ).toBe('valid');
    await api.request('DELETE', `/api/v1/cluster/join-tokens/${stolen.id}`);
    // A worker has no API of its own: it says where to go.
    await expect(byName('h4').api(token, ca).request('GET', '/api/v1/vms')).rejects.toThrow(
      /worker.*controller/,
    );
  });

  it('shows the cluster in the web UI: four hosts, three etcd members, a join token created and revoked', async () => {
    const browser = await launchChromium();
    try {
      const h1 = byName('h1');
      const { page, pageErrors } = await signIn(browser, h1.url, h1.file('root.password').trim());

      await page.click('.topbar nav a:has-text("Cluster")');
      await page
        .locator('.cluster-page .cluster-mode', { hasText: /^cluster$/ })
        .waitFor({ timeout: 15_000 });
      await page.waitForFunction(
        () =>
          [...document.querySelectorAll('.hosts-table tr[data-host] .state-badge')].filter(
            (b) => b.textContent === 'ready',
          ).length === 4,
        undefined,
        { timeout: 30_000, polling: 250 },
      );
      const attr = (sel: string, name: string) =>
        page.locator(sel).evaluateAll((els, n) => els.map((e) => e.getAttribute(n)), name);
      expect(await attr('.hosts-table tr[data-host]', 'data-host')).toEqual(['h1', 'h2', 'h3', 'h4']);
      expect((await attr('.etcd-table tr[data-member]', 'data-member')).sort()).toEqual(['h1', 'h2', 'h3']);
      expect(await page.locator('.etcd-table tbody tr', { hasText: 'learner' }).count()).toBe(0);
      expect(await page.locator('.cluster-page .fingerprint').textContent()).toMatch(/^sha256:/);
      // The inventory tree: the cluster, its four hosts, one of them the leader.
      expect(await page.locator('.tree a.tree-host').count()).toBe(4);
      expect(await page.locator('.tree a.tree-host .leader-mark').count()).toBe(1);
      expect(await page.locator('.join-tokens .tokens-unavailable').count()).toBe(0);

      // A join token: shown once, with the command for the new host; then listed as valid.
      await page.selectOption('.token-form select[name=ttl]', '900');
      await page.fill('.token-form input[name=description]', 'for esx5 (ui)');
      await page.click('.token-form button[type=submit]');
      const shown = page.locator('.token-once textarea.token-value');
      await shown.waitFor({ timeout: 15_000 });
      const tok = await shown.inputValue();
      expect(await page.locator('.token-once .join-hint').textContent()).toContain('--join');
      const { id } = JSON.parse(Buffer.from(tok, 'base64url').toString()) as { id: string };
      const row = page.locator(`.tokens-table tr[data-id="${id}"]`);
      await row.waitFor({ timeout: 15_000 });
      expect(await row.getAttribute('data-status')).toBe('valid');
      expect(await row.textContent()).toContain('for esx5 (ui)');
      const listed = await api.request<{ id: string; status: string }[]>(
        'GET',
        '/api/v1/cluster/join-tokens',
      );
      expect(listed.find((t) => t.id === id)?.status).toBe('valid');

      // Revoked behind a confirmation: gone from the page and from the API.
      await row.locator('[data-action=revoke]').click();
      await page.locator('.modal button.danger', { hasText: 'Revoke' }).click();
      await row.waitFor({ state: 'detached', timeout: 15_000 });
      await page.locator('.token-once').waitFor({ state: 'detached' });
      const after = await api.request<{ id: string }[]>('GET', '/api/v1/cluster/join-tokens');
      expect(after.find((t) => t.id === id)).toBeUndefined();

      // The session is the cluster's: h2 honours h1's cookie (as behind one name or a load balancer,
      // where each request may reach another controller), and a logout on h2 ends it on h1 too.
      const h2 = byName('h2');
      const [cookie] = (await page.context().cookies()).filter((c) => c.name === 'nf_session');
      expect(cookie).toBeDefined();
      await page.context().addCookies([
        {
          name: cookie!.name,
          value: cookie!.value,
          url: h2.url,
          httpOnly: true,
          secure: true,
          sameSite: 'Strict',
        },
      ]);
      const onH2 = await page.context().newPage();
      await onH2.goto(h2.url);
      await onH2.locator('.topbar .user', { hasText: 'root' }).waitFor({ timeout: 15_000 });
      expect(await onH2.locator('input[name=password]').count()).toBe(0);
      await onH2.click('.topbar button:has-text("Log out")');
      await onH2.locator('input[name=password]').waitFor({ timeout: 15_000 });
      // h1 refuses the cookie now: its page falls back to the login form at its next call
      await page.click('.topbar nav a:has-text("Dashboard")');
      await page.locator('input[name=password]').waitFor({ timeout: 30_000 });
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  let vms: VmView[] = [];
  it('spreads VMs over the hosts and boots them, console logs read through one API', async () => {
    vms = [];
    for (let i = 1; i <= 4; i++)
      vms.push(await api.request<VmView>('POST', '/api/v1/vms', vmBody(`spread-${i}`)));
    expect(new Set(vms.map((v) => v.node)).size).toBe(4);
    await Promise.all(vms.map((v) => booted(api, v.id)));
    for (const v of vms)
      expect((await api.request<VmView>('GET', `/api/v1/vms/${v.id}`)).state).toBe('running');
    // Guest agent calls are routed to the VM's host too.
    const onWorker = vms.find((v) => v.node === 'h4')!;
    await waitFor(
      async () =>
        (await api.request<VmView>('GET', `/api/v1/vms/${onWorker.id}`)).agent?.status === 'connected',
      { timeoutMs: 60_000, what: 'the agent of the VM on the worker' },
    );
    const exec = await api.request<{ exitCode: number; stdout: string }>(
      'POST',
      `/api/v1/vms/${onWorker.id}/guest/exec`,
      { command: ['/bin/echo', 'hello from h4'] },
    );
    expect(exec.stdout).toContain('hello from h4');

    // The VNC console of that VM: the ticket asked of h1's API, the websocket opened on h2's (tickets are
    // the cluster's), RFB relayed from h4 over gRPC.
    const t = await api.request<{ path: string }>('POST', `/api/v1/vms/${onWorker.id}/console-ticket`);
    const ws = new WebSocket(`${byName('h2').url.replace('https', 'wss')}${t.path}`, {
      tls: { ca },
    } as unknown as string[]);
    ws.binaryType = 'arraybuffer';
    try {
      const first = await new Promise<Buffer>((resolve, reject) => {
        ws.onmessage = (ev) => resolve(Buffer.from(ev.data as ArrayBuffer));
        ws.onerror = () => reject(new Error('websocket failed'));
      });
      expect(first.toString('latin1')).toBe('RFB 003.008\n');
      const secTypes = new Promise<Buffer>((resolve) => {
        ws.onmessage = (ev) => resolve(Buffer.from(ev.data as ArrayBuffer));
      });
      ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
      expect((await secTypes)[0]).toBeGreaterThan(0);
      // single use across the cluster: h3 refuses the ticket h2 took
      const again = await fetch(`${byName('h3').url}${t.path}`, { tls: { ca } } as RequestInit);
      expect(again.status).toBe(401);
      expect(await again.text()).toMatch(/console ticket missing, used, expired/);
    } finally {
      ws.close();
    }
  });

  it('keeps a VM pending with the reason while its host is in maintenance; disks are made on the host', async () => {
    const h3 = byName('h3');
    await api.request('PATCH', '/api/v1/nodes/h3', { maintenance: true });
    expect((await nodes()).find((n) => n.name === 'h3')?.state).toBe('maintenance');
    const body = { ...vmBody('pinned'), start: false, disks: [{ sizeGiB: 1 }], placement: { node: 'h3' } };
    const pending = await api.request<VmView>('POST', '/api/v1/vms', body);
    expect(pending.state).toBe('pending');
    expect(pending.reason).toMatch(/no host fits VM "pinned".*in maintenance/);
    await expect(api.request('POST', `/api/v1/vms/${pending.id}/start`)).rejects.toThrow(/has no host yet/);

    await api.request('PATCH', '/api/v1/nodes/h3', { maintenance: false });
    const placed = await waitFor(
      async () => {
        const v = await api.request<VmView>('GET', `/api/v1/vms/${pending.id}`);
        return v.node ? v : undefined;
      },
      { timeoutMs: 30_000, what: 'the pinned VM to be placed' },
    );
    expect(placed.node).toBe('h3');
    const disk = join(h3.dataDir, 'pools', 'local', 'disks', placed.disks[0]!.volume);
    expect(existsSync(disk)).toBe(true);
    await api.request('DELETE', `/api/v1/vms/${pending.id}`);
    expect(existsSync(disk)).toBe(false);

    // Anti-affinity: two VMs of one group never share a host.
    const a = await api.request<VmView>('POST', '/api/v1/vms', {
      ...vmBody('anti-a'),
      start: false,
      placement: { antiAffinityGroup: 'web' },
    });
    const b = await api.request<VmView>('POST', '/api/v1/vms', {
      ...vmBody('anti-b'),
      start: false,
      placement: { antiAffinityGroup: 'web' },
    });
    expect(a.node).not.toBe(b.node);
    for (const v of [a, b]) await api.request('DELETE', `/api/v1/vms/${v.id}`);
  });

  it('refuses a host certificate presented from another address', async () => {
    const h2 = byName('h2');
    const tls = {
      caPem: ca,
      certPem: h2.file('cluster/pki/host.crt'),
      keyPem: h2.file('cluster/pki/host.key'),
    };
    // The test process sits on the bridge address, not h2's: h2's key alone must not make it h2.
    const control = new pb.ControlClient(
      `${byName('h1').ip}:8007`,
      clientCredentials(tls, 'h1'),
      clientChannelOptions('h1'),
    );
    const node3 = new pb.NodeClient(
      `${byName('h3').ip}:8007`,
      clientCredentials(tls, 'h3'),
      clientChannelOptions('h3'),
    );
    try {
      const err = await new Promise<Error>((resolve) => {
        const stream = control.heartbeat();
        stream.on('error', resolve);
        stream.on('data', () => {});
        stream.write({ node: 'h2', vms: [], grpcAddress: `${h2.ip}:8007`, seq: 1 });
      });
      expect(err.message).toMatch(/PERMISSION_DENIED|presented from/);
      const callErr = await new Promise<Error | null>((resolve) =>
        node3.info({}, new Metadata(), { deadline: Date.now() + 10_000 }, (e) => resolve(e)),
      );
      expect(callErr?.message).toMatch(/PERMISSION_DENIED|may not call/);
    } finally {
      control.close();
      node3.close();
    }
  });

  it('keeps the API up on another controller when the leader dies, and the new leader schedules', async () => {
    const before = await api.request<{ leader: string }>('GET', '/api/v1/cluster');
    const old = byName(before.leader);
    const other = hosts.find((h) => h.name !== old.name && h.name !== 'h4')!;
    const api2 = other.api(token, ca);
    // A live migration driven by the leader is under way when it dies (1 MiB/s: minutes of copying).
    const mover = vms.find((v) => v.node !== old.name && v.node !== 'h4')!;
    type MigTask = { id: string; status: string; error?: { message: string }; details?: { phase?: string } };
    const apiOld = old.api(token, ca);
    const mig = await apiOld.request<MigTask>('POST', `/api/v1/vms/${mover.id}/migrate`, {
      node: 'h4',
      maxBandwidthMiBps: 1,
    });
    await waitFor(
      async () =>
        (await apiOld.request<MigTask>('GET', `/api/v1/tasks/${mig.id}`)).details?.phase === 'memory',
      { timeoutMs: 60_000, intervalMs: 500, what: 'the migration to copy memory' },
    );
    await old.kill9();
    await waitFor(
      async () => {
        const c = await api2
          .request<{ leader: string | null }>('GET', '/api/v1/cluster')
          .catch(() => undefined);
        return !!c?.leader && c.leader !== old.name;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'a new leader' },
    );
    // The dead host goes not-ready once its heartbeat lease expires; its VMs are then unknown.
    await waitFor(async () => (await nodes(api2)).find((n) => n.name === old.name)?.state === 'not-ready', {
      timeoutMs: 60_000,
      what: `${old.name} not ready`,
    });
    const stranded = vms.find((v) => v.node === old.name)!;
    expect((await api2.request<VmView>('GET', `/api/v1/vms/${stranded.id}`)).state).toBe('unknown');
    // The new leader places a new VM on a live host, and it boots.
    const vm = await api2.request<VmView>('POST', '/api/v1/vms', vmBody('after-failover'));
    expect(vm.node).not.toBe('');
    expect(vm.node).not.toBe(old.name);
    await booted(api2, vm.id);
    // Wrong input still gets clear errors there.
    await expect(api2.request('POST', '/api/v1/vms', vmBody('after-failover'))).rejects.toThrow(NfError);
    // The new leader settles the migration its dead driver left: the VM runs on its source, h4 keeps
    // nothing of it, and the task says what happened.
    const settled = await waitTask(api2, mig.id, 90_000);
    expect(settled.status).toBe('error');
    expect(settled.error?.message).toMatch(/controller went away.*runs on/);
    const moved = await api2.request<VmView & { migration?: unknown }>('GET', `/api/v1/vms/${mover.id}`);
    expect(moved.node).toBe(mover.node);
    expect(moved.migration).toBeUndefined();
    expect(moved.state).toBe('running');
    const procs = spawnSync('pgrep', ['-f', `qemu-system.*${mover.id}`], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean);
    expect(procs.length).toBe(1);
    survivor = api2;
  }, 420_000);

  let survivor: ApiClient;
  it('removes a worker: refused while VMs are placed on it, done with force', async () => {
    const held = (await survivor.request<VmView[]>('GET', '/api/v1/vms')).filter((v) => v.node === 'h4');
    expect(held.length).toBeGreaterThan(0);
    await expect(survivor.request('DELETE', '/api/v1/nodes/h4')).rejects.toThrow(/holds \d+ VM/);
    expect((await nodes(survivor)).map((n) => n.name)).toContain('h4');
    await survivor.request('DELETE', '/api/v1/nodes/h4?force=true');
    expect((await nodes(survivor)).map((n) => n.name)).not.toContain('h4');
    // Its VMs stay in the inventory, shown as unknown: their disks are on that host, nothing is lost.
    expect((await survivor.request<VmView>('GET', `/api/v1/vms/${held[0]!.id}`)).state).toBe('unknown');
    // Their records can still be deleted (the disks left with the host).
    await survivor.request('DELETE', `/api/v1/vms/${held[0]!.id}`);
    await expect(survivor.request('GET', `/api/v1/vms/${held[0]!.id}`)).rejects.toThrow(/no VM|not found/i);
  });
});
