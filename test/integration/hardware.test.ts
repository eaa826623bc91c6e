import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/wait';
import { neuroflowCommand, TestDaemon } from '../harness/daemon';
import { rejection } from '../harness/errors';
import { BOOTED, testGuest } from '../harness/guest';
import { guestRun, startAndBoot } from '../harness/serial';
import { createVm, getVm, kernelVm, type VmView, vmAction } from '../harness/vms';

/** The test guest with the extra device drivers (SATA, SCSI, e1000e, efivarfs) loaded at boot. */
const HW_CMDLINE = () => `${testGuest().cmdline} nf.hw`;
/** EFI_GLOBAL_VARIABLE: where Boot#### entries live. */
const EFI_GLOBAL = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
const EFIVARS = '/sys/firmware/efi/efivars';

describe('VM hardware: firmware, TPM, CPU and device models', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start({ demoIso: testGuest().iso });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  const run = (id: string, cmd: string) => guestRun(d.api, d.dataDir, id, cmd);
  const boot = (id: string, action: () => Promise<unknown>) =>
    startAndBoot(d.api, id, action, new RegExp(BOOTED), 240_000);

  it('UEFI with a TPM: a boot entry in the NVRAM and a value in the TPM outlive a guest reset and a VM restart', async () => {
    const g = testGuest();
    const vm = await createVm(
      d.api,
      kernelVm('uefi-tpm', {
        firmware: 'uefi',
        tpm: true,
        // OVMF loads the kernel through its EFI stub: the bzImage, not the ELF vmlinux
        boot: { kernel: g.vmlinuz, initrd: g.initrd, cmdline: HW_CMDLINE() },
      }),
    );
    expect(vm).toMatchObject({ firmware: 'uefi', secureBoot: false, tpm: true });
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    expect((await getVm(d.api, vm.id)) as unknown).toMatchObject({
      efiVars: { pool: 'local', volume: `vm-${vm.id}-efivars.qcow2` },
    });

    // The guest runs on UEFI and sees a TPM 2.0.
    await run(vm.id, `mount -t efivarfs efivarfs ${EFIVARS}`);
    expect(await run(vm.id, `ls ${EFIVARS} | grep -c ^BootOrder-`)).toMatch(/^1/);
    expect((await run(vm.id, 'cat /sys/class/tpm/tpm0/tpm_version_major')).trim()).toBe('2');

    // A boot entry: attributes NV|BS|RT, then an EFI_LOAD_OPTION (active, description "NF", an empty
    // device path); and 8 bytes in a TPM NV index.
    const entry =
      '\\x07\\x00\\x00\\x00\\x01\\x00\\x00\\x00\\x04\\x00N\\x00F\\x00\\x00\\x00\\x7f\\xff\\x04\\x00';
    await run(vm.id, `printf '${entry}' > ${EFIVARS}/Boot0042-${EFI_GLOBAL}`);
    const readEntry = () => run(vm.id, `od -An -v -tx1 ${EFIVARS}/Boot0042-${EFI_GLOBAL} | tr -d ' \\n'`);
    const written = (await readEntry()).trim();
    expect(written).toBe('070000000100000004004e00460000007fff0400');
    expect(await run(vm.id, 'tpm-nv define')).toMatch(/rc=00000000/);
    expect(await run(vm.id, 'tpm-nv write 0123456789abcdef')).toMatch(/rc=00000000/);
    const nv = async () => {
      const out = await run(vm.id, 'tpm-nv read');
      expect(out).toMatch(/rc=00000000/);
      return /data=([0-9a-f]*)/.exec(out)?.[1];
    };
    expect(await nv()).toBe('0123456789abcdef');

    // A reset of the guest (the TPM is reset too: its NV memory stays).
    await boot(vm.id, () => vmAction(d.api, vm.id, 'reset'));
    await run(vm.id, `mount -t efivarfs efivarfs ${EFIVARS}`);
    expect((await readEntry()).trim()).toBe(written);
    expect(await nv()).toBe('0123456789abcdef');

    // swtpm killed under the running guest: the VM says so (QEMU cannot take a new one while it runs)
    const runDir = join(d.dataDir, 'node', 'vms', vm.id);
    process.kill(Number(readFileSync(join(runDir, 'swtpm.pid'), 'utf8').trim()), 'SIGKILL');
    await waitFor(
      async () => /TPM emulator \(swtpm\) exited/.test((await getVm(d.api, vm.id)).warning ?? ''),
      {
        timeoutMs: 15_000,
        what: 'the VM to report its dead TPM',
      },
    );

    // A new QEMU and a new swtpm on the same variable store and TPM state.
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    expect((await getVm(d.api, vm.id)).warning).toBeUndefined();
    await run(vm.id, `mount -t efivarfs efivarfs ${EFIVARS}`);
    expect((await readEntry()).trim()).toBe(written);
    expect(await nv()).toBe('0123456789abcdef');
    await vmAction(d.api, vm.id, 'stop', '?force=true');

    // a TPM whose state cannot be loaded: the start fails with the reason, the VM stays stopped
    writeFileSync(join(runDir, 'tpm', 'tpm2-00.permall'), 'not a TPM state');
    await vmAction(d.api, vm.id, 'start').catch(() => {});
    const failed = await waitFor(
      async () => {
        const v = await getVm(d.api, vm.id);
        return v.state === 'error' ? v : undefined;
      },
      { timeoutMs: 30_000, what: 'the start to fail' },
    );
    expect(failed.reason).toMatch(/tpm/i);
    expect(failed.powerState).toBe('stopped');
  });

  it('Secure Boot: OVMF with Microsoft keys enrolled runs the guest with Secure Boot on', async () => {
    const g = testGuest();
    const vm = await createVm(
      d.api,
      kernelVm('uefi-sb', {
        firmware: 'uefi',
        secureBoot: true,
        disks: [],
        networks: [],
        boot: { kernel: g.vmlinuz, initrd: g.initrd, cmdline: HW_CMDLINE() },
      }),
    );
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    // the kernel reads it from the firmware and locks itself down accordingly
    // (counted: the console helper drops kernel message lines)
    expect((await run(vm.id, 'dmesg | grep -c "locked down from EFI Secure Boot"')).trim()).toBe('1');
    await run(vm.id, `mount -t efivarfs efivarfs ${EFIVARS}`);
    // SecureBoot variable: 4 bytes of attributes, then 1 (on)
    expect(
      (await run(vm.id, `od -An -tx1 ${EFIVARS}/SecureBoot-${EFI_GLOBAL} | tr -d ' \n'`)).trim(),
    ).toMatch(/01$/);
    await vmAction(d.api, vm.id, 'stop', '?force=true');
  });

  it('device models, CPU model and topology: the guest sees SATA, SCSI and e1000e devices and two sockets', async () => {
    const vm = await createVm(
      d.api,
      kernelVm('devices', {
        vcpus: 2,
        cpu: { model: 'x86-64-v2', sockets: 2 },
        disks: [
          { sizeGiB: 1, cache: 'writethrough' },
          { sizeGiB: 1, bus: 'sata', cache: 'none', aio: 'native' },
          { sizeGiB: 1, bus: 'virtio-scsi' },
        ],
        networks: [{ network: 'default', model: 'e1000e' }],
        video: 'virtio',
        boot: { kernel: testGuest().vmlinux, initrd: testGuest().initrd, cmdline: HW_CMDLINE() },
      }),
    );
    expect(vm).toMatchObject({
      cpu: { model: 'x86-64-v2', sockets: 2, cores: 1, threads: 1 },
      video: 'virtio',
      tablet: true,
      disks: [
        { id: 'disk0', cache: 'writethrough' },
        { id: 'disk1', bus: 'sata', cache: 'none', aio: 'native' },
        { id: 'disk2', bus: 'virtio-scsi' },
      ],
      networks: [{ id: 'net0', model: 'e1000e' }],
    });
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    // cache modes: writethrough shows the guest a disk without a volatile cache; none opens the file
    // O_DIRECT on the host; the default keeps the host page cache
    expect((await run(vm.id, 'cat /sys/block/vda/queue/write_cache')).trim()).toBe('write through');
    const pid = (await getVm(d.api, vm.id)).pid;
    const direct = (disk: string) => {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        let target = '';
        try {
          target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {}
        if (!target.endsWith(`-${disk}.qcow2`)) continue;
        const flags = /^flags:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1]!;
        return (Number.parseInt(flags, 8) & 0o40000) !== 0; // O_DIRECT
      }
      throw new Error(`QEMU has no file open for ${disk}`);
    };
    expect([direct('disk0'), direct('disk1'), direct('disk2')]).toEqual([false, true, false]);
    // a cache mode changes while the VM is stopped, not under a running guest
    const live = await rejection(
      d.api.request('PATCH', `/api/v1/vms/${vm.id}/disks/disk2`, { cache: 'none' }),
    );
    expect(live.code).toBe('invalid_state');
    const blocks = (await run(vm.id, 'ls /sys/block')).split(/\s+/).filter((b) => /^(vd|sd)/.test(b));
    expect(blocks.sort()).toEqual(['sda', 'sdb', 'vda']);
    // one on AHCI (ata), one on virtio-scsi, whichever driver came first
    const paths = await run(vm.id, 'for b in /sys/block/sd*; do readlink -f $b/device; done');
    expect(paths).toMatch(/\/ata\d+\//);
    expect(paths).toMatch(/\/virtio\d+\//);
    expect(await run(vm.id, 'basename $(readlink /sys/class/net/eth0/device/driver)')).toMatch(/^e1000e/);
    expect((await run(vm.id, 'cat /sys/devices/system/cpu/cpu1/topology/physical_package_id')).trim()).toBe(
      '1',
    );
    // the x86-64-v2 level: SSE4.2 yes, AVX (v3) no
    const flags = await run(vm.id, 'grep -m1 ^flags /proc/cpuinfo');
    expect(flags).toMatch(/\bsse4_2\b/);
    expect(flags).not.toMatch(/\bavx\b/);
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    expect(
      await d.api.request('PATCH', `/api/v1/vms/${vm.id}/disks/disk2`, { cache: 'none', aio: 'io_uring' }),
    ).toMatchObject({ disks: [{}, {}, { id: 'disk2', cache: 'none', aio: 'io_uring' }] });
  });

  it('cluster default CPU model: auto gives the host CPU on one host; a set level reaches new VMs and their guests; a level no host runs keeps the VM pending', async () => {
    type Cluster = {
      policy: { defaultCpuModel: string };
      cpu: { defaultModel: string; model: string; why: string };
    };
    const before = await d.api.request<Cluster>('GET', '/api/v1/cluster');
    expect(before.policy.defaultCpuModel).toBe('auto');
    expect(before.cpu).toMatchObject({
      defaultModel: 'auto',
      model: 'host',
      why: expect.stringMatching(/one host/),
    });
    // the host reports the levels QEMU gives guests here (TCG on these machines: v2 and v3, no AVX-512)
    const nodes = await d.api.request<{ cpuLevels: string[] }[]>('GET', '/api/v1/nodes');
    expect(nodes[0]!.cpuLevels).toContain('x86-64-v2');
    try {
      await d.api.request('PATCH', '/api/v1/cluster', { policy: { defaultCpuModel: 'x86-64-v2' } });
      const vm = await createVm(d.api, kernelVm('cpudefault', { cpu: { sockets: 1 } }));
      expect(vm as unknown).toMatchObject({ cpu: { model: 'x86-64-v2' } });
      await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
      const flags = await run(vm.id, 'grep -m1 ^flags /proc/cpuinfo');
      expect(flags).toMatch(/\bsse4_2\b/);
      expect(flags).not.toMatch(/\bavx\b/);
      await vmAction(d.api, vm.id, 'stop', '?force=true');
      // an explicit model wins over the default
      const own = await createVm(d.api, kernelVm('cpuown', { cpu: { model: 'host' } }));
      expect(own as unknown).toMatchObject({ cpu: { model: 'host' } });
      // a level this host cannot run: said at once, and a VM with it waits for a host that can
      if (!nodes[0]!.cpuLevels.includes('x86-64-v4')) {
        await d.api.request('PATCH', '/api/v1/cluster', { policy: { defaultCpuModel: 'x86-64-v4' } });
        const c = await d.api.request<Cluster>('GET', '/api/v1/cluster');
        expect(c.cpu.why).toMatch(/cannot run x86-64-v4/);
        const v4 = await createVm(d.api, kernelVm('cpuv4'));
        expect(v4 as unknown).toMatchObject({ cpu: { model: 'x86-64-v4' } });
        await vmAction(d.api, v4.id, 'start').catch(() => {});
        const now = await getVm(d.api, v4.id);
        expect(`${now.state} ${now.reason ?? ''}`).toMatch(/cannot run CPU level x86-64-v4/);
      }
      const bad = await rejection(
        d.api.request('PATCH', '/api/v1/cluster', { policy: { defaultCpuModel: 'x86-64-v5' } }),
      );
      expect(bad.code).toBe('validation_failed');
    } finally {
      await d.api.request('PATCH', '/api/v1/cluster', { policy: { defaultCpuModel: 'auto' } });
    }
  });

  it('refuses hardware that cannot work, with a stable code, and creates nothing', async () => {
    const before = (await d.api.request<unknown[]>('GET', '/api/v1/vms')).length;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ secureBoot: true }, /secureBoot needs firmware "uefi"/],
      [{ firmware: 'uefi', secureBoot: true, machine: 'pc' }, /needs machine "q35"/],
      [{ disks: [{ sizeGiB: 1, bus: 'ide' }] }, /"ide" needs machine "pc"/],
      [{ disks: [{ sizeGiB: 1, aio: 'native' }] }, /aio "native" needs cache "none" or "directsync"/],
      [{ vcpus: 3, cpu: { sockets: 2 } }, /does not make the VM's 3 vCPUs/],
      [{ cpu: { model: 'max,kvm=off' } }, /CPU model name/],
      [{ cpu: { flags: { 'avx,enforce': true } } }, /cpu\.flags/],
      [{ networks: [{ network: 'default', model: 'ne2k' }] }, /model/],
      [
        {
          machine: 'pc',
          disks: [1, 2, 3, 4].map(() => ({ sizeGiB: 1, bus: 'ide' })),
          boot: { cdrom: testGuest().iso },
        },
        /IDE units/,
      ],
    ];
    for (const [extra, message] of cases) {
      const err = await rejection(createVm(d.api, kernelVm('bad-hw', extra)));
      expect(err.code, JSON.stringify(extra)).toBe('validation_failed');
      expect(err.message, JSON.stringify(extra)).toMatch(message);
    }
    expect((await d.api.request<unknown[]>('GET', '/api/v1/vms')).length).toBe(before);
  });

  it('edits a VM: at once when stopped, pending until the next cold start when running; If-Match refuses stale edits', async () => {
    const vm = await createVm(d.api, kernelVm('edit1', { memoryMiB: 384 }));
    const read = async (ref: string) => {
      const { body, headers } = await d.api.exchange<VmView & Record<string, unknown>>(
        'GET',
        `/api/v1/vms/${ref}`,
      );
      return { vm: body, etag: headers.get('etag')! };
    };
    const patch = (ref: string, body: Record<string, unknown>, etag?: string) =>
      d.api.exchange<VmView & Record<string, unknown>>('PATCH', `/api/v1/vms/${ref}`, body, {
        headers: etag ? { 'if-match': etag } : {},
      });
    const first = await read(vm.id);
    expect(first.etag).toMatch(/^"\d+"$/);

    // stopped: applied at once
    const edited = await patch(vm.id, { vcpus: 2, description: 'edited', cpu: { sockets: 2 } }, first.etag);
    expect(edited.body).toMatchObject({ vcpus: 2, description: 'edited', cpu: { sockets: 2, cores: 1 } });
    expect(edited.body.pendingChanges).toBeUndefined();
    expect(edited.headers.get('etag')).not.toBe(first.etag);

    // an edit made on the copy read before is refused, and changes nothing
    const stale = await rejection(patch(vm.id, { vcpus: 1 }, first.etag));
    expect(stale.code).toBe('precondition_failed');
    expect((await getVm(d.api, vm.id)) as unknown).toMatchObject({ vcpus: 2 });

    // impossible results are refused whole
    const now = await read(vm.id);
    for (const [body, code] of [
      [{ secureBoot: true }, 'validation_failed'],
      [{ vcpus: 3 }, 'validation_failed'], // 2 sockets cannot hold 3 vCPUs
      [{ memoryMiB: 16 * 1024 * 1024 }, 'insufficient_resources'],
      [{ boot: { disk: 4 } }, 'validation_failed'],
      [{ disks: [] }, 'validation_failed'],
    ] as const) {
      const err = await rejection(patch(vm.id, body, now.etag));
      expect(err.code, JSON.stringify(body)).toBe(code);
    }
    expect((await read(vm.id)).etag).toBe(now.etag);

    // running: hardware waits for the next cold start; the name changes at once
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    const memTotalMiB = async () =>
      Math.round(
        Number(/MemTotal:\s+(\d+)/.exec(await run(vm.id, 'grep MemTotal /proc/meminfo'))?.[1]) / 1024,
      );
    const before = await memTotalMiB();
    const pending = await patch(vm.id, {
      memoryMiB: 320,
      cpu: { sockets: 1 },
      vcpus: 1,
      name: 'edit1-renamed',
    });
    expect(pending.body).toMatchObject({
      name: 'edit1-renamed',
      memoryMiB: 384,
      vcpus: 2,
      pendingChanges: { memoryMiB: 320, vcpus: 1, cpu: { model: 'host', sockets: 1 } },
    });
    expect((await getVm(d.api, 'edit1-renamed')).id).toBe(vm.id);
    expect((await rejection(getVm(d.api, 'edit1'))).code).toBe('not_found');
    // a guest reset is no cold start
    await boot(vm.id, () => vmAction(d.api, vm.id, 'reset'));
    expect(await memTotalMiB()).toBe(before);
    expect((await read(vm.id)).vm.pendingChanges).toMatchObject({ memoryMiB: 320 });

    // the CLI shows it, through GET + PATCH with If-Match
    const [bin, ...pre] = neuroflowCommand();
    const cli = spawnSync(
      bin!,
      [...pre, 'vm', 'set', 'edit1-renamed', '--video', 'virtio', '--data-dir', d.dataDir],
      {
        encoding: 'utf8',
      },
    );
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/Pending: .*memoryMiB=320.*video=virtio/);

    await vmAction(d.api, vm.id, 'stop', '?force=true');
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    const after = (await read(vm.id)).vm;
    expect(after).toMatchObject({ memoryMiB: 320, vcpus: 1, video: 'virtio', cpu: { sockets: 1 } });
    expect(after.pendingChanges).toBeUndefined();
    expect(await memTotalMiB()).toBeLessThan(before - 40);
    expect((await run(vm.id, 'grep -c ^processor /proc/cpuinfo')).trim()).toBe('1');
    await vmAction(d.api, vm.id, 'stop', '?force=true');
  });

  it('cloud-init: the guest reads a NoCloud seed (host name, SSH keys), made anew when the settings change; the password never shows', async () => {
    const key1 =
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJp2o0ZyFz0fY7rXc6cXo6Yq1bGd8bq3vX1U5vYk0C1a admin@site';
    const key2 = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 ops@site';
    const vm = await createVm(
      d.api,
      kernelVm('ci1', {
        cloudInit: { hostname: 'web-01', sshKeys: [key1], password: 'S3cret-pass' },
        boot: { kernel: testGuest().vmlinux, initrd: testGuest().initrd, cmdline: HW_CMDLINE() },
      }),
    );
    const shown = JSON.stringify(await getVm(d.api, vm.id));
    expect(shown).not.toContain('S3cret-pass');
    expect(shown).not.toMatch(/\$6\$/);
    expect((await getVm(d.api, vm.id)) as unknown).toMatchObject({
      cloudInit: { hostname: 'web-01', sshKeys: [key1], passwordSet: true, userData: false },
    });
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    expect(await d.api.request<string>('GET', `/api/v1/vms/${vm.id}/console-log`)).toMatch(
      /nocloud hostname=web-01 keys=1/,
    );
    expect((await run(vm.id, 'hostname')).trim()).toBe('web-01');
    expect((await run(vm.id, 'cat /root/.ssh/authorized_keys')).trim()).toBe(key1);
    // the seed the guest reads carries the hash, not the password
    const userData = await run(vm.id, 'cat /run/cidata/user-data');
    expect(userData).toMatch(/root:\$6\$/);
    expect(userData).not.toContain('S3cret-pass');

    // changed: the next start has a new seed
    await d.api.request('PATCH', `/api/v1/vms/${vm.id}`, {
      cloudInit: { hostname: 'web-02', sshKeys: [key1, key2] },
    });
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    expect((await run(vm.id, 'hostname')).trim()).toBe('web-02');
    expect((await run(vm.id, 'grep -c . /root/.ssh/authorized_keys')).trim()).toBe('2');
    await vmAction(d.api, vm.id, 'stop', '?force=true');

    const bad = await rejection(
      d.api.request('PATCH', `/api/v1/vms/${vm.id}`, {
        cloudInit: { userData: '#cloud-config\n', sshKeys: [key1] },
      }),
    );
    expect(bad.code).toBe('validation_failed');
    const badKey = await rejection(
      d.api.request('PATCH', `/api/v1/vms/${vm.id}`, { cloudInit: { sshKeys: ['not a key'] } }),
    );
    expect(badKey.code).toBe('validation_failed');
  });

  it('hot-adds vCPUs to a running guest up to its maximum; fewer wait for the next start', async () => {
    const vm = await createVm(d.api, kernelVm('vcpu1', { vcpus: 1, maxVcpus: 3 }));
    expect(vm as unknown).toMatchObject({ vcpus: 1, maxVcpus: 3 });
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    const added = await d.api.request<Record<string, unknown>>('PATCH', `/api/v1/vms/${vm.id}`, { vcpus: 3 });
    expect(added).toMatchObject({ vcpus: 3 });
    expect(added.pendingChanges).toBeUndefined();
    // the guest has them (offline until onlined: no udev in the test guest)
    await waitFor(
      async () =>
        (await run(vm.id, 'ls -d /sys/devices/system/cpu/cpu[0-9]*')).trim().split(/\s+/).length === 3,
      {
        timeoutMs: 30_000,
        intervalMs: 500,
        what: 'the guest to see 3 vCPUs',
      },
    );
    await run(vm.id, 'for c in /sys/devices/system/cpu/cpu[1-9]*; do echo 1 > $c/online; done');
    expect((await run(vm.id, 'grep -c ^processor /proc/cpuinfo')).trim()).toBe('3');
    // beyond the maximum: refused; fewer: pending
    expect((await rejection(d.api.request('PATCH', `/api/v1/vms/${vm.id}`, { vcpus: 4 }))).message).toMatch(
      /maxVcpus/,
    );
    expect(await d.api.request('PATCH', `/api/v1/vms/${vm.id}`, { vcpus: 2 })).toMatchObject({
      vcpus: 3,
      pendingChanges: { vcpus: 2 },
    });
    await vmAction(d.api, vm.id, 'stop', '?force=true');
  });

  it('hot-adds memory to a running guest up to its maximum (a DIMM); the rest waits; a cold start folds it in', async () => {
    const vm = await createVm(d.api, kernelVm('mem1', { memoryMiB: 256, maxMemoryMiB: 640 }));
    expect(vm as unknown).toMatchObject({ memoryMiB: 256, maxMemoryMiB: 640 });
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    const memTotalMiB = async () =>
      Math.round(Number(/MemTotal:\s+(\d+)/.exec(await run(vm.id, 'cat /proc/meminfo'))?.[1]) / 1024);
    const before = await memTotalMiB();
    // a step that is not whole 128 MiB blocks waits; a hot-add after it replaces it
    expect(await d.api.request('PATCH', `/api/v1/vms/${vm.id}`, { memoryMiB: 320 })).toMatchObject({
      memoryMiB: 256,
      pendingChanges: { memoryMiB: 320 },
    });
    const added = await d.api.request<Record<string, unknown>>('PATCH', `/api/v1/vms/${vm.id}`, {
      memoryMiB: 512,
    });
    expect(added).toMatchObject({ memoryMiB: 512 });
    expect(added.pendingChanges).toBeUndefined();
    expect(added.memoryDimmsMiB).toBeUndefined(); // (the record's bookkeeping, not the API's)
    // the guest onlines the new blocks (a distribution's udev rule does it; the test guest has no udev)
    await waitFor(
      async () => {
        await run(
          vm.id,
          'for m in /sys/devices/system/memory/memory*; do grep -q offline $m/state && echo online > $m/state; done; true',
        );
        return (await memTotalMiB()) >= before + 250;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: 'the guest to see 256 MiB more memory' },
    );
    // beyond the maximum: refused, nothing changed; not whole 128 MiB blocks: pending
    const over = await rejection(d.api.request('PATCH', `/api/v1/vms/${vm.id}`, { memoryMiB: 768 }));
    expect([over.code, over.message]).toEqual([
      'validation_failed',
      expect.stringMatching(/maxMemoryMiB \(640\)/),
    ]);
    expect(await d.api.request('PATCH', `/api/v1/vms/${vm.id}`, { memoryMiB: 600 })).toMatchObject({
      memoryMiB: 512,
      pendingChanges: { memoryMiB: 600 },
    });
    // a cold start gives the guest it all as base memory, and the pending change with it
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    expect(await d.api.request('GET', `/api/v1/vms/${vm.id}`)).toMatchObject({ memoryMiB: 600 });
    expect(await memTotalMiB()).toBeGreaterThan(before + 300);
    await vmAction(d.api, vm.id, 'stop', '?force=true');
  });

  it('media drive: an ISO goes into a running guest and out again; a VM without the drive is refused', async () => {
    const g = testGuest();
    const vm = await createVm(
      d.api,
      kernelVm('media1', { media: {}, boot: { kernel: g.vmlinux, initrd: g.initrd, cmdline: HW_CMDLINE() } }),
    );
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    // the volume id of the disc the guest reads in its CD-ROM drive now (sr0: its only one); none: ''
    const label = async () =>
      (
        await run(
          vm.id,
          'dd if=/dev/sr0 bs=2048 skip=16 count=1 2>/dev/null | dd bs=1 skip=40 count=32 2>/dev/null; echo',
        )
      ).trim() || undefined;
    expect(await label()).toBeUndefined();
    const inserted = await d.api.request<Record<string, unknown>>('POST', `/api/v1/vms/${vm.id}/media`, {
      image: 'demo',
    });
    expect(inserted.media).toMatchObject({ image: expect.any(String) });
    await waitFor(async () => (await label()) === 'NEUROFLOW_DEMO', {
      timeoutMs: 30_000,
      intervalMs: 500,
      what: 'the disc',
    });
    // the image is in use now
    expect((await rejection(d.api.request('DELETE', '/api/v1/images/demo'))).code).toBe('in_use');
    await d.api.request('POST', `/api/v1/vms/${vm.id}/media`, { image: null });
    await waitFor(async () => (await label()) === undefined, {
      timeoutMs: 30_000,
      intervalMs: 500,
      what: 'the disc to go',
    });
    await vmAction(d.api, vm.id, 'stop', '?force=true');

    const noDrive = await createVm(d.api, kernelVm('media2'));
    await boot(noDrive.id, () => vmAction(d.api, noDrive.id, 'start'));
    const refused = await rejection(
      d.api.request('POST', `/api/v1/vms/${noDrive.id}/media`, { image: 'demo' }),
    );
    expect(refused.code).toBe('invalid_state');
    await vmAction(d.api, noDrive.id, 'stop', '?force=true');
    // stopped, it gets the drive, with the disc in it
    expect(await d.api.request('POST', `/api/v1/vms/${noDrive.id}/media`, { image: 'demo' })).toMatchObject({
      media: { image: expect.any(String) },
    });
  });

  it('boot order: the firmware tries an empty disk, then boots the ISO in the media drive', async () => {
    const vm = await createVm(d.api, {
      name: 'bootorder1',
      vcpus: 1,
      memoryMiB: 256,
      disks: [{ sizeGiB: 1 }],
      networks: [],
      media: { image: 'demo' },
      boot: { disk: 0 },
      bootOrder: ['disk0', 'cd1'],
    });
    expect(vm as unknown).toMatchObject({ bootOrder: ['disk0', 'cd1'] });
    // SeaBIOS finds nothing on disk0 and goes on to the demo ISO (isolinux, then the test guest)
    await boot(vm.id, () => vmAction(d.api, vm.id, 'start'));
    // the order QEMU was given: those two, in that order, and nothing else (strict)
    const argv = readFileSync(`/proc/${(await getVm(d.api, vm.id)).pid}/cmdline`, 'utf8').split('\0');
    const device = (id: string) =>
      JSON.parse(argv.find((a) => a.startsWith('{') && a.includes(`"id":"${id}"`))!) as {
        bootindex?: number;
      };
    expect(device('disk0-dev').bootindex).toBe(0);
    expect(device('cd1-dev').bootindex).toBe(1);
    expect(argv).toContain('strict=on');
    await vmAction(d.api, vm.id, 'stop', '?force=true');
    const unknown = await rejection(
      d.api.request('PATCH', `/api/v1/vms/${vm.id}`, { bootOrder: ['disk0', 'net3'] }),
    );
    expect(unknown.code).toBe('validation_failed');
    expect(unknown.message).toMatch(/net3/);
  });
});
