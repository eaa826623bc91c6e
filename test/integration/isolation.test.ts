import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { NetLab } from '../harness/cluster';
import { TestDaemon } from '../harness/daemon';
import { BOOTED } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { createVm, kernelVm, vmAction } from '../harness/vms';

/** TCP ports a process listens on (from `ss`, iproute2). */
function tcpListenPorts(pid: number): string[] {
  const out = spawnSync('ss', ['-Hltnp'], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter((l) => l.includes(`pid=${pid},`));
}

/** The host's own addresses (IPv4, not loopback): what a guest could try besides the gateway. */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === 'IPv4' && !a.internal)
    .map((a) => a!.address);
}

describe('isolation: desired state and host services are out of reach of local users and guests', () => {
  let d: TestDaemon;
  let lab: NetLab;
  const servers: Server[] = [];
  beforeAll(async () => {
    d = await TestDaemon.start();
    lab = new NetLab();
  });
  afterAll(async () => {
    for (const s of servers) s.close();
    await d?.[Symbol.asyncDispose]();
    await lab?.[Symbol.asyncDispose]();
  });

  it('runs the embedded etcd on a unix socket only, in a directory no other user can enter', async () => {
    const pid = d.etcdPid()!;
    expect(pid).toBeGreaterThan(1);
    expect(tcpListenPorts(pid)).toEqual([]);
    const dir = join(d.dataDir, 'etcd');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'client:2379')).isSocket()).toBe(true);
    // an unprivileged user cannot even reach the socket
    const probe = spawnSync('/bin/sh', ['-c', `test -e '${join(dir, 'client:2379')}' && echo reachable`], {
      encoding: 'utf8',
      uid: 65534,
      gid: 65534,
    });
    expect(probe.stdout).toBe('');
    // the daemon itself works through it
    expect((await d.api.request<{ name: string }[]>('GET', '/api/v1/vms')).length).toBeGreaterThanOrEqual(0);
  });

  it('lets a guest on the default network reach hosts outside, but no port of this host', async () => {
    // A listener on every address of this host, and one on a "host" outside (a network namespace).
    let hostConnections = 0;
    const hostServer = createServer((c) => {
      hostConnections++;
      c.destroy();
    });
    servers.push(hostServer);
    await new Promise<void>((r) => hostServer.listen(0, '0.0.0.0', r));
    const hostPort = (hostServer.address() as { port: number }).port;
    const outside = lab.addHost();
    const outsidePort = 47_000 + Math.floor(Math.random() * 1000);
    const listener = spawn(
      'ip',
      [
        'netns',
        'exec',
        outside.ns,
        process.execPath,
        '-e',
        `Bun.listen({ hostname: '0.0.0.0', port: ${outsidePort}, socket: { open(s) { console.log('accepted'); s.end(); }, data() {} } }); console.log('listening');`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let listenerOut = '';
    listener.stdout!.on('data', (b) => (listenerOut += b));
    try {
      await waitFor(() => listenerOut.includes('listening'), {
        timeoutMs: 10_000,
        what: 'the outside listener',
      });

      const vm = await createVm(d.api, kernelVm('iso1', { disks: [] }));
      await vmAction(d.api, vm.id, 'start');
      await waitConsole(d.api, vm.id, new RegExp(BOOTED));
      await waitConsole(d.api, vm.id, /NEUROFLOW-TEST-GUEST: ip=10\.0\.2\.15/);
      const apiPort = new URL(d.url).port;
      const tryConnect = async (addr: string, port: number | string) =>
        (
          await guestRun(
            d.api,
            d.dataDir,
            vm.id,
            `nc -w 3 ${addr} ${port} </dev/null >/dev/null 2>&1 && echo OPEN || echo CLOSED`,
          )
        ).trim();

      // Positive control first: the guest's NAT works (a host outside, through this host).
      expect(await tryConnect(outside.ip, outsidePort)).toBe('OPEN');
      await waitFor(() => listenerOut.includes('accepted'), { timeoutMs: 5000, what: 'the outside accept' });

      // The gateway (QEMU's user networking mapped it to the host's loopback), the host's own
      // addresses (also the lab bridge's), and the API's port on each.
      for (const addr of ['10.0.2.2', ...hostAddresses()]) {
        expect([addr, await tryConnect(addr, hostPort)]).toEqual([addr, 'CLOSED']);
        expect([addr, await tryConnect(addr, apiPort)]).toEqual([addr, 'CLOSED']);
      }
      expect(hostConnections).toBe(0);
      await vmAction(d.api, vm.id, 'stop', '?force=true');
      // passt ends with its QEMU
      await waitFor(() => spawnSync('pgrep', ['-f', `passt-${vm.id}`]).status === 1, {
        timeoutMs: 10_000,
        what: "the VM's passt to exit",
      });
    } finally {
      listener.kill('SIGKILL');
    }
  });

  it('confines each QEMU with a seccomp filter (no exec, no privilege changes)', async () => {
    const vm = await createVm(d.api, kernelVm('sandboxed', { networks: [] }));
    await vmAction(d.api, vm.id, 'start');
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    const pid = (await d.api.request<{ pid: number }>('GET', `/api/v1/vms/${vm.id}`)).pid;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    // 2 = SECCOMP_MODE_FILTER; every QEMU thread inherits it
    expect(/^Seccomp:\s+(\d+)/m.exec(status)?.[1]).toBe('2');
    expect(Number(/^Seccomp_filters:\s+(\d+)/m.exec(status)?.[1])).toBeGreaterThan(0);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain(
      'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    );
    // the guest runs normally under it
    expect((await guestRun(d.api, d.dataDir, vm.id, 'echo alive')).trim()).toBe('alive');
    await vmAction(d.api, vm.id, 'stop', '?force=true');
  });
});
