import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { TestDaemon } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { BOOTED, testGuest } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { getVm, vmAction } from '../harness/vms';

const FIXTURES = join(import.meta.dirname, '../fixtures/ovf');

function sh(cmd: string, args: string[], cwd?: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

interface Task {
  id: string;
  status: string;
  error?: { code: string; message: string };
  result?: { vm: string; name: string; notes: string[] };
  details?: { bytesConverted?: number; bytesTotal?: number };
}

/**
 * Imports of VMware exports, built here as VMware writes them: VMDKs made by qemu-img (streamOptimized
 * and monolithicSparse) from the test guest's bootable (hybrid) ISO and its data disk with a file on
 * it, OVF descriptors in the shapes of ovftool (vSphere) and VMware Workstation, manifests, an OVA.
 */
describe('import from VMware: OVA, OVF and VMDK', () => {
  let d: TestDaemon;
  let dir: string;
  const g = testGuest();
  const ovf = (name: string, vars: Record<string, string>) => {
    let xml = readFileSync(join(FIXTURES, name), 'utf8');
    for (const [k, v] of Object.entries(vars)) xml = xml.replaceAll(`@${k}@`, v);
    return xml;
  };
  const isoBytes = () => readFileSync(g.iso).length;

  beforeAll(async () => {
    d = await TestDaemon.start();
    dir = mkdtempSync(join(tmpdir(), 'nf-import-'));
    // disk 1: the bootable ISO as a streamOptimized VMDK; disk 2: the data disk with a file, monolithicSparse
    sh('qemu-img', [
      'convert',
      '-f',
      'raw',
      '-O',
      'vmdk',
      '-o',
      'subformat=streamOptimized',
      g.iso,
      join(dir, 'web01-disk1.vmdk'),
    ]);
    copyFileSync(g.dataDisk, join(dir, 'data.img'));
    writeFileSync(join(dir, 'marker.txt'), 'brought across from vSphere\n');
    sh('debugfs', ['-w', '-R', `write ${join(dir, 'marker.txt')} marker.txt`, join(dir, 'data.img')]);
    sh('qemu-img', [
      'convert',
      '-f',
      'raw',
      '-O',
      'vmdk',
      '-o',
      'subformat=monolithicSparse',
      join(dir, 'data.img'),
      join(dir, 'web01-disk2.vmdk'),
    ]);
    // the vSphere shape, as an OVA with a SHA256 manifest (the OVF first, as the standard asks)
    const ova = join(dir, 'ova');
    sh('mkdir', [ova]);
    for (const f of ['web01-disk1.vmdk', 'web01-disk2.vmdk']) copyFileSync(join(dir, f), join(ova, f));
    writeFileSync(
      join(ova, 'web01.ovf'),
      ovf('vsphere.ovf', { SIZE1: '0', SIZE2: '0', CAP1: String(isoBytes()) }),
    );
    writeFileSync(
      join(ova, 'web01.mf'),
      ['web01.ovf', 'web01-disk1.vmdk', 'web01-disk2.vmdk']
        .map((f) => `SHA256(${f})= ${sha256(join(ova, f))}\n`)
        .join(''),
    );
    sh(
      'tar',
      ['-cf', join(dir, 'web01.ova'), 'web01.ovf', 'web01.mf', 'web01-disk1.vmdk', 'web01-disk2.vmdk'],
      ova,
    );
    // the Workstation shape: an OVF beside a monolithicSparse VMDK, Windows, SATA + e1000e, BIOS
    const ws = join(dir, 'ws');
    sh('mkdir', [ws]);
    sh('qemu-img', [
      'convert',
      '-f',
      'raw',
      '-O',
      'vmdk',
      '-o',
      'subformat=monolithicSparse',
      g.iso,
      join(ws, 'Windows Server 2022-disk1.vmdk'),
    ]);
    writeFileSync(
      join(ws, 'win.ovf'),
      ovf('workstation.ovf', { SIZE1: '0', CAP1: String(isoBytes()), FIRMWARE: 'bios' }),
    );
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const finished = (id: string) =>
    waitFor(
      async () => {
        const t = await d.api.request<Task>('GET', `/api/v1/tasks/${id}`);
        return t.status === 'running' ? undefined : t;
      },
      { timeoutMs: 120_000, what: `import task ${id}` },
    );
  const counts = async () => ({
    vms: (await d.api.request<unknown[]>('GET', '/api/v1/vms')).length,
    volumes: (await d.api.request<unknown[]>('GET', '/api/v1/pools/local/volumes')).length,
    unpacked: readdirSync(join(d.dataDir, 'import')).filter((f) => f.startsWith('ova-')).length,
  });

  it('imports a vSphere OVA: hardware as the OVF says, the digests checked, the guest boots with its data', async () => {
    const source = { path: join(dir, 'web01.ova') };
    const plan = await d.api.request<Record<string, unknown>>('POST', '/api/v1/imports/inspect', { source });
    expect(plan).toMatchObject({
      kind: 'ova',
      name: 'web01-prod',
      source: { osType: 'debian11_64Guest', windows: false, firmware: 'bios' },
      vm: {
        vcpus: 2,
        memoryMiB: 384,
        cpu: { sockets: 2 },
        disks: [
          { label: 'Hard disk 1', bus: 'virtio-blk', from: 'scsi (virtualscsi)' },
          { label: 'Hard disk 2', bus: 'virtio-blk', sizeBytes: 64 * 1024 ** 2 },
        ],
        networks: [{ network: 'default', model: 'virtio', from: 'VmxNet3 on "VM Network"' }],
      },
      verified: { 'web01.ovf': 'SHA256', 'web01-disk1.vmdk': 'SHA256', 'web01-disk2.vmdk': 'SHA256' },
    });
    const task = await d.api.request<Task>('POST', '/api/v1/imports', { source, start: true });
    const done = await finished(task.id);
    expect(done.status).toBe('ok');
    expect(done.details?.bytesTotal).toBeGreaterThan(0);
    const vm = await getVm(d.api, done.result!.vm);
    expect(vm as unknown).toMatchObject({
      name: 'web01-prod',
      vcpus: 2,
      memoryMiB: 384,
      cpu: { sockets: 2 },
      disks: [{ id: 'disk0', volume: `vm-${vm.id}-disk0.qcow2` }, { id: 'disk1' }],
      networks: [{ network: 'default' }],
    });
    await waitConsole(d.api, vm.id, new RegExp(BOOTED), 90_000);
    expect((await guestRun(d.api, d.dataDir, vm.id, 'cat /data/marker.txt')).trim()).toBe(
      'brought across from vSphere',
    );
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    expect((await counts()).unpacked).toBe(0);
  });

  it('imports a Workstation OVF of a Windows guest: SATA and e1000e until VirtIO drivers are in, and boots', async () => {
    const task = await d.api.request<Task>('POST', '/api/v1/imports', {
      source: { path: join(dir, 'ws', 'win.ovf') },
      networkMap: { nat: 'default' },
    });
    const done = await finished(task.id);
    expect(done.status).toBe('ok');
    expect(done.result!.notes.join(' ')).toMatch(/VirtIO drivers/);
    const vm = await getVm(d.api, done.result!.vm);
    expect(vm as unknown).toMatchObject({
      name: 'Windows-Server-2022',
      vcpus: 2,
      memoryMiB: 256,
      firmware: 'bios',
      disks: [{ bus: 'sata' }],
      networks: [{ model: 'e1000e' }],
    });
    await vmAction(d.api, vm.id, 'start');
    await waitConsole(d.api, vm.id, new RegExp(BOOTED), 90_000);
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    // UEFI and Secure Boot as in the source
    writeFileSync(
      join(dir, 'ws', 'uefi.ovf'),
      ovf('workstation.ovf', { SIZE1: '0', CAP1: String(isoBytes()), FIRMWARE: 'efi' }),
    );
    const uefi = await d.api.request<Record<string, unknown>>('POST', '/api/v1/imports/inspect', {
      source: { path: join(dir, 'ws', 'uefi.ovf') },
      name: 'win-uefi',
    });
    expect(uefi).toMatchObject({ vm: { firmware: 'uefi', secureBoot: true } });
  });

  it('imports an OVA with the CLI: uploaded, the mapping shown, the task followed; the upload is gone after', async () => {
    const out = await d.cli([
      'import',
      'ova',
      join(dir, 'web01.ova'),
      '--name',
      'cli-web',
      '--network-map',
      'VM Network=default',
    ]);
    expect(out).toMatch(/cli-web: 2 vCPU, 384 MiB, bios/);
    expect(out).toMatch(/Network adapter 1: VmxNet3 on "VM Network" -> virtio on default/);
    expect(out).toMatch(/imported as VM cli-web/);
    expect(readdirSync(join(d.dataDir, 'import')).filter((f) => f.endsWith('.ova'))).toEqual([]);
    const bad = await d
      .cli(['import', 'ova', join(dir, 'web01.ova'), '--name', 'cli-web2', '--network-map', 'Nope=default'])
      .catch((err: Error) => err.message);
    expect(bad).toMatch(/networkMap names "Nope"/);
    // the refused import's upload went again too
    expect(readdirSync(join(d.dataDir, 'import')).filter((f) => f.endsWith('.ova'))).toEqual([]);
    // an upload keeps a plain form of the browser's name, and can be deleted; nothing else can
    const up = await d.api.request<{ path: string }>(
      'POST',
      `/api/v1/imports/files?${new URLSearchParams({ filename: 'Web Server (prod) é.OVA' })}`,
      undefined,
      { raw: Bun.file(join(dir, 'web01.ova')), contentType: 'application/octet-stream' },
    );
    expect(up.path).toMatch(/\/[0-9a-f]{8}-Web_Server_prod_\.ova$/);
    const del = (path: string) =>
      d.api.request('DELETE', `/api/v1/imports/files?${new URLSearchParams({ path })}`);
    await del(up.path);
    expect((await rejection(del(up.path))).code).toBe('not_found');
    expect((await rejection(del('/etc/passwd'))).code).toBe('validation_failed');
  });

  it('imports several packages in one request, each a task; one bad item starts none', async () => {
    const before = await counts();
    const refused = await rejection(
      d.api.request('POST', '/api/v1/imports/bulk', {
        imports: [
          { source: { path: join(dir, 'web01.ova') }, name: 'bulk-a' },
          { source: { path: join(dir, 'nope.ova') }, name: 'bulk-b' },
        ],
      }),
    );
    expect(refused.message).toMatch(/^imports\[1\]: /);
    expect(await counts()).toEqual(before);
    const tasks = await d.api.request<Task[]>('POST', '/api/v1/imports/bulk', {
      imports: [
        { source: { path: join(dir, 'web01.ova') }, name: 'bulk-a' },
        { source: { path: join(dir, 'web01-disk2.vmdk') }, name: 'bulk-b', memoryMiB: 128 },
      ],
    });
    expect(tasks).toHaveLength(2);
    const done = await Promise.all(tasks.map((t) => finished(t.id)));
    expect(done.map((t) => [t.status, t.result?.name])).toEqual([
      ['ok', 'bulk-a'],
      ['ok', 'bulk-b'],
    ]);
  });

  it('imports a monolithicFlat VMDK (a descriptor and its extent); refuses a descriptor that names a host file', async () => {
    const flat = join(dir, 'flat');
    sh('mkdir', [flat]);
    sh('qemu-img', [
      'convert',
      '-f',
      'raw',
      '-O',
      'vmdk',
      '-o',
      'subformat=monolithicFlat',
      g.iso,
      join(flat, 'boot.vmdk'),
    ]);
    const task = await d.api.request<Task>('POST', '/api/v1/imports', {
      source: { path: join(flat, 'boot.vmdk') },
      name: 'flat',
      memoryMiB: 256,
    });
    const done = await finished(task.id);
    expect(done.status).toBe('ok');
    await vmAction(d.api, done.result!.vm, 'start');
    await waitConsole(d.api, done.result!.vm, new RegExp(BOOTED), 90_000);
    await vmAction(d.api, done.result!.vm, 'stop', '?force=true');
    // the same descriptor pointing at /etc/passwd, or climbing out of its directory
    const before = await counts();
    const descriptor = readFileSync(join(flat, 'boot.vmdk'), 'utf8');
    for (const target of ['/etc/passwd', '../web01.ova']) {
      writeFileSync(join(flat, 'evil.vmdk'), descriptor.replace('"boot-flat.vmdk"', `"${target}"`));
      const evil = await rejection(
        d.api.request('POST', '/api/v1/imports', { source: { path: join(flat, 'evil.vmdk') }, name: 'evil' }),
      );
      expect([evil.code, evil.message]).toEqual([
        'validation_failed',
        expect.stringMatching(/extent.*not a plain file name/),
      ]);
    }
    expect(await counts()).toEqual(before);
  });

  it('imports from an http URL (downloaded into the import directory, removed after)', async () => {
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: (req) =>
        new URL(req.url).pathname === '/exports/web01.ova'
          ? new Response(Bun.file(join(dir, 'web01.ova')))
          : new Response('no', { status: 404 }),
    });
    try {
      const task = await d.api.request<Task>('POST', '/api/v1/imports', {
        source: { url: `http://127.0.0.1:${server.port}/exports/web01.ova` },
        name: 'from-url',
      });
      const done = await finished(task.id);
      expect(done.status).toBe('ok');
      expect(await getVm(d.api, done.result!.vm)).toMatchObject({ name: 'from-url', vcpus: 2 });
      expect(
        readdirSync(join(d.dataDir, 'import')).filter((f) => f.endsWith('web01.ova') || f.startsWith('ova-')),
      ).toEqual([]);
      const gone = await rejection(
        d.api.request('POST', '/api/v1/imports', {
          source: { url: `http://127.0.0.1:${server.port}/nope.ova` },
          name: 'nope',
        }),
      );
      expect([gone.code, gone.message]).toEqual(['unavailable', expect.stringMatching(/answered 404/)]);
    } finally {
      server.stop(true);
    }
  });

  it('imports a bare VMDK with the vCPUs and memory asked', async () => {
    const task = await d.api.request<Task>('POST', '/api/v1/imports', {
      source: { path: join(dir, 'web01-disk2.vmdk') },
      name: 'bare',
      vcpus: 1,
      memoryMiB: 128,
    });
    const done = await finished(task.id);
    expect(done.status).toBe('ok');
    expect(await getVm(d.api, done.result!.vm)).toMatchObject({
      name: 'bare',
      disks: [{ sizeBytes: 64 * 1024 ** 2 }],
    });
  });

  it('refuses bad packages with the item named, and leaves nothing behind', async () => {
    const before = await counts();
    const bad = join(dir, 'bad');
    sh('mkdir', [bad]);
    const ova = join(dir, 'ova');
    const pack = (name: string, files: string[]) => {
      sh('tar', ['-cf', join(bad, name), ...files], ova);
      return { path: join(bad, name) };
    };
    // a digest that does not match
    const mf = readFileSync(join(ova, 'web01.mf'), 'utf8');
    writeFileSync(
      join(ova, 'web01.mf'),
      mf.replace(/(web01-disk2\.vmdk\)= )[0-9a-f]{64}/, `$1${'0'.repeat(64)}`),
    );
    const digest = await rejection(
      d.api.request('POST', '/api/v1/imports', {
        source: pack('digest.ova', ['web01.ovf', 'web01.mf', 'web01-disk1.vmdk', 'web01-disk2.vmdk']),
      }),
    );
    writeFileSync(join(ova, 'web01.mf'), mf);
    // an OVF that is no XML; one that names a file the package lacks
    writeFileSync(join(bad, 'junk.ovf'), 'this is <not xml');
    const notXml = await rejection(
      d.api.request('POST', '/api/v1/imports', { source: { path: join(bad, 'junk.ovf') } }),
    );
    const missing = await rejection(
      d.api.request('POST', '/api/v1/imports', {
        source: pack('missing.ova', ['web01.ovf', 'web01-disk1.vmdk']),
      }),
    );
    // unknown hardware; a disk larger than the pool
    writeFileSync(
      join(bad, 'hw.ovf'),
      readFileSync(join(ova, 'web01.ovf'), 'utf8').replace('>VmxNet3<', '>Token Ring<'),
    );
    const hw = await rejection(
      d.api.request('POST', '/api/v1/imports', { source: { path: join(bad, 'hw.ovf') } }),
    );
    writeFileSync(
      join(ova, 'huge.ovf'),
      readFileSync(join(ova, 'web01.ovf'), 'utf8').replace(
        'ovf:capacity="64" ovf:capacityAllocationUnits="byte * 2^20"',
        'ovf:capacity="900" ovf:capacityAllocationUnits="byte * 2^40"',
      ),
    );
    const huge = await rejection(
      d.api.request('POST', '/api/v1/imports', {
        source: pack('huge.ova', ['huge.ovf', 'web01-disk1.vmdk', 'web01-disk2.vmdk']),
        name: 'huge',
      }),
    );
    // a file outside the allowed host paths
    const outside = await rejection(
      d.api.request('POST', '/api/v1/imports', { source: { path: '/etc/passwd' } }),
    );
    expect([digest.code, digest.message]).toEqual([
      'checksum_mismatch',
      expect.stringMatching(/web01-disk2\.vmdk/),
    ]);
    expect([notXml.code, notXml.message]).toEqual(['validation_failed', expect.stringMatching(/not XML/)]);
    expect([missing.code, missing.message]).toEqual([
      'validation_failed',
      expect.stringMatching(/Hard disk 2.*web01-disk2\.vmdk.*not in the package/),
    ]);
    expect([hw.code, hw.message]).toEqual(['validation_failed', expect.stringMatching(/Network adapter 1/)]);
    expect([huge.code, huge.message]).toEqual([
      'insufficient_resources',
      expect.stringMatching(/pool local/),
    ]);
    expect(outside.code).toBe('forbidden');

    // a truncated VMDK: the conversion fails in the task, which says so; no volume, no VM
    copyFileSync(join(dir, 'web01-disk1.vmdk'), join(bad, 'cut.vmdk'));
    truncateSync(join(bad, 'cut.vmdk'), Math.floor(readFileSync(join(bad, 'cut.vmdk')).length / 2));
    const cut = await d.api
      .request<Task>('POST', '/api/v1/imports', { source: { path: join(bad, 'cut.vmdk') }, name: 'cut' })
      .then((t) => finished(t.id))
      .catch((err: { code?: string; message: string }) => ({
        status: 'refused',
        error: { code: err.code ?? '', message: err.message },
      }));
    expect(cut.status).not.toBe('ok');
    expect(cut.error?.message).toMatch(/cut\.vmdk/);
    expect(await counts()).toEqual(before);
  });
});
