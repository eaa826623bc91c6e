import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { neuroflowCommand, TestDaemon } from '../harness/daemon';
import { BOOTED, testGuest } from '../harness/guest';
import { guestRun, waitConsole } from '../harness/serial';
import { createVm, kernelVm } from '../harness/vms';

const run = promisify(execFile);

describe('images, and the newcomer path through the CLI', () => {
  let d: TestDaemon;
  let work: string;
  let cli: string[];
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nf-cli-'));
    // The binary must work on its own, away from the checkout and its node_modules.
    const [bin, ...pre] = neuroflowCommand();
    if (pre.length === 0) {
      copyFileSync(bin!, join(work, 'neuroflow'));
      cli = [join(work, 'neuroflow')];
    } else cli = [bin!, ...pre];
    d = await TestDaemon.start({ demoIso: testGuest().iso });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
    rmSync(work, { recursive: true, force: true });
  });

  const nf = async (...args: string[]) => {
    const { stdout } = await run(cli[0]!, [...cli.slice(1), ...args, '--data-dir', d.dataDir], { cwd: work });
    return stdout;
  };

  it('boots a VM from the registered demo ISO with the CLI and shows its console', async () => {
    expect(await nf('image', 'list')).toMatch(/demo\s+iso/);
    const created = await nf(
      'vm',
      'create',
      'demo1',
      '--memory',
      '256',
      '--cdrom',
      'demo',
      '--disk',
      '1',
      '--start',
    );
    expect(created).toMatch(/State:\s+running/);
    await waitFor(async () => (await nf('vm', 'console-log', 'demo1')).includes(BOOTED), {
      timeoutMs: 90_000,
      intervalMs: 500,
      what: 'the demo VM to boot from its ISO',
    });
    expect(await nf('vm', 'list')).toMatch(/demo1\s+running/);
    const listed = JSON.parse(await nf('vm', 'list', '--json')) as { name: string }[];
    expect(listed.map((v) => v.name)).toContain('demo1');
    expect(await nf('node', 'list')).toMatch(/tcg/);
    // The ISO is in use: it cannot go away under the VM.
    await expect(d.api.request('DELETE', '/api/v1/images/demo')).rejects.toMatchObject({ code: 'in_use' });
    await nf('vm', 'stop', 'demo1', '--force');
    await nf('vm', 'delete', 'demo1');
    // A CLI error is a clear message and a non-zero exit.
    await expect(nf('vm', 'show', 'demo1')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/not_found/),
    });
  });

  it('uploads with checksum checks, clones a disk image copy-on-write, refuses unsafe images', async () => {
    const imagesDir = join(d.dataDir, 'pools', 'local', 'images');
    const before = readdirSync(imagesDir).sort();
    // A raw 4 MiB disk image whose first sector carries a marker.
    const raw = Buffer.alloc(4 * 1024 * 1024);
    raw.write('TEMPLATE-MARKER\n', 0, 'latin1');
    const sha = createHash('sha256').update(raw).digest('hex');
    const upload = (q: string) =>
      fetch(`${d.url}/api/v1/images?${q}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/octet-stream' },
        body: raw,
      });
    const bad = await upload(`name=tpl&sha256=${'0'.repeat(64)}`);
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('checksum_mismatch');
    expect(readdirSync(imagesDir).sort()).toEqual(before);

    const ok = await upload(`name=tpl&sha256=${sha}`);
    expect(ok.status).toBe(201);
    expect(await ok.json()).toMatchObject({
      name: 'tpl',
      kind: 'disk',
      format: 'raw',
      sha256: sha,
      sizeBytes: raw.length,
    });
    expect((await upload('name=tpl')).status).toBe(409);

    const vm = await createVm(d.api, kernelVm('clone1', { disks: [{ image: 'tpl' }], start: true }));
    await waitConsole(d.api, vm.id, new RegExp(BOOTED));
    expect(
      (
        await guestRun(d.api, d.dataDir, vm.id, 'dd if=/dev/vda bs=512 count=1 2>/dev/null | head -n1')
      ).trim(),
    ).toBe('TEMPLATE-MARKER');
    await guestRun(
      d.api,
      d.dataDir,
      vm.id,
      'echo CHANGED-IN-VM | dd of=/dev/vda bs=512 count=1 conv=sync 2>/dev/null; sync',
    );
    await d.api.request('POST', `/api/v1/vms/${vm.id}/stop?force=true`);
    // Copy-on-write: the template itself is untouched.
    const tpl = (await d.api.request<{ id: string }>('GET', '/api/v1/images/tpl')).id;
    expect(
      readFileSync(join(imagesDir, `${tpl}.raw`))
        .subarray(0, 15)
        .toString('latin1'),
    ).toBe('TEMPLATE-MARKER');
    await expect(d.api.request('DELETE', '/api/v1/images/tpl')).rejects.toMatchObject({ code: 'in_use' });
    await d.api.request('DELETE', '/api/v1/vms/clone1');
    await d.api.request('DELETE', '/api/v1/images/tpl');

    // A qcow2 pointing at a host file as its backing file would leak that file into a VM.
    const evil = join(work, 'evil.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', '/etc/hostname', '-F', 'raw', evil]);
    await expect(
      d.api.request('POST', '/api/v1/images/import', { name: 'evil', path: evil }),
    ).rejects.toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/backing file/),
    });
    // So would an external data file (qcow2 data_file), which is not a backing file.
    const evilData = join(work, 'evil-data.qcow2');
    await run('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-o',
      'data_file=/etc/hostname,preallocation=metadata',
      evilData,
      '1M',
    ]).catch(async () =>
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'data_file=/etc/hostname', evilData, '1M']),
    );
    await expect(
      d.api.request('POST', '/api/v1/images/import', { name: 'evil2', path: evilData }),
    ).rejects.toMatchObject({ code: 'validation_failed', message: expect.stringMatching(/data file/) });
    await expect(
      d.api.request('POST', '/api/v1/images/import', { name: 'ghost', path: join(work, 'nonexistent.iso') }),
    ).rejects.toMatchObject({ code: 'file_not_found' });
    await expect(
      d.api.request('POST', '/api/v1/images/import', { name: 'shadow', path: '/etc/shadow' }),
    ).rejects.toMatchObject({ code: 'forbidden' });
    writeFileSync(join(work, 'empty.img'), '');
    await expect(
      d.api.request('POST', '/api/v1/images/import', { name: 'empty', path: join(work, 'empty.img') }),
    ).rejects.toMatchObject({ code: 'validation_failed' });
    expect(readdirSync(imagesDir).sort()).toEqual(before);
  });
});
