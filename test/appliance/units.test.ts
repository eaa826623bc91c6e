/**
 * The appliance's pieces without a VM: the answer file, the partition layout, the disk's grub.cfg, the
 * kernel command line and /proc/mounts parsing, and the `appliance serve` supervisor driving a stand-in
 * child (a shell script) through the config modes, SIGHUP-style reloads and a failed join.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { kernelArgs, mediumReleased, mounts } from '../../src/appliance/boot';
import { type ApplianceConfig, defaultConfig, readConfig, writeConfig } from '../../src/appliance/config';
import {
  diskGrubCfg,
  diskInfo,
  parentDisk,
  parseAnswer,
  partitionPath,
  partitionScript,
} from '../../src/appliance/install';
import { ApplianceServe, type ClusterStatus, defaultChildArgv, selfArgv } from '../../src/appliance/serve';
import { waitFor } from '../../src/util/wait';

describe('answer file', () => {
  it('fills in defaults and hashes a plain root password', () => {
    const { answer, config } = parseAnswer({
      disk: '/dev/vda',
      wipe: true,
      config: { hostname: 'esx1', rootPassword: { plain: 'a-long-password' }, cluster: { mode: 'create' } },
    });
    expect(answer).toMatchObject({ disk: '/dev/vda', wipe: true, after: 'reboot' });
    expect(config.hostname).toBe('esx1');
    expect(config.network).toMatchObject({ interface: 'eth0', mode: 'dhcp', vlan: 0 });
    expect(config.cluster).toEqual({ mode: 'create' });
    expect(config.rootPassword?.shadow).toMatch(/^\$6\$/);
    expect(JSON.stringify(config)).not.toContain('a-long-password');
  });

  it('names the bad field', () => {
    expect(() => parseAnswer({ disk: 'sda' })).toThrow(/answer file: disk/);
    expect(() => parseAnswer({ after: 'halt' })).toThrow(/answer file: after/);
    expect(() => parseAnswer({ config: { hostname: 'Bad_Name' } })).toThrow(/hostname/);
    expect(() => parseAnswer({ config: { rootPassword: { plain: 'short' } } })).toThrow(/8 characters/);
    expect(() => parseAnswer({ config: { network: { interface: 'eth0', mode: 'static' } } })).toThrow(
      /address/,
    );
  });
});

describe('disk layout', () => {
  it('is GPT: BIOS boot 1 MiB, ESP 128 MiB, NF-BOOT 1 GiB, NF-DATA the rest', () => {
    const s = partitionScript();
    expect(s.split('\n')).toEqual([
      'label: gpt',
      'size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name="BIOS boot"',
      'size=128MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system"',
      'size=1GiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="NF-BOOT"',
      'type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="NF-DATA"',
      '',
    ]);
    expect(partitionPath('/dev/sda', 3)).toBe('/dev/sda3');
    expect(partitionPath('/dev/vda', 4)).toBe('/dev/vda4');
    expect(partitionPath('/dev/nvme0n1', 2)).toBe('/dev/nvme0n1p2');
  });

  it('refuses what is not a whole disk, and finds the disk a partition belongs to', () => {
    expect(() => diskInfo('/nonexistent/disk')).toThrow(/does not exist/);
    expect(() => diskInfo('/dev/null')).toThrow(/not a block device/);
    // A stand-in /sys/class/block: vda3 is a partition of vda; sr0 is a whole device.
    const sys = mkdtempSync(join(tmpdir(), 'nf-sysblock-'));
    try {
      mkdirSync(join(sys, 'devices', 'vda', 'vda3'), { recursive: true });
      writeFileSync(join(sys, 'devices', 'vda', 'vda3', 'partition'), '3');
      mkdirSync(join(sys, 'class'));
      symlinkSync(join(sys, 'devices', 'vda', 'vda3'), join(sys, 'class', 'vda3'));
      symlinkSync(join(sys, 'devices', 'vda'), join(sys, 'class', 'vda'));
      expect(parentDisk('/dev/vda3', join(sys, 'class'))).toBe('vda');
      expect(parentDisk('/dev/vda', join(sys, 'class'))).toBe('vda');
      expect(parentDisk('/dev/sr0', join(sys, 'class'))).toBe('sr0');
    } finally {
      rmSync(sys, { recursive: true, force: true });
    }
  });

  it('boots the disk with nf.boot=disk and GRUB on the serial console', () => {
    const cfg = diskGrubCfg({
      bootUuid: 'abcd-1234',
      cmdline: 'console=ttyS0,115200n8 quiet',
      version: '9.9',
    });
    expect(cfg).toContain('serial --unit=0 --speed=115200');
    expect(cfg).toContain('terminal_input serial console');
    expect(cfg).toContain('terminal_output serial console');
    expect(cfg).toContain('search --no-floppy --fs-uuid --set=root abcd-1234');
    expect(cfg).toContain('linux /boot/vmlinuz nf.boot=disk console=ttyS0,115200n8 quiet');
    expect(cfg).toContain("menuentry 'NeuroFlow 9.9'");
  });
});

describe('boot helpers', () => {
  it('reads the kernel command line', () => {
    const a = kernelArgs(
      'BOOT_IMAGE=/boot/vmlinuz nf.boot=iso nf.answer=label:NF-ANSWER:/answer.json quiet nf.break\n',
    );
    expect(a.get('nf.boot')).toBe('iso');
    expect(a.get('nf.answer')).toBe('label:NF-ANSWER:/answer.json');
    expect(a.get('nf.break')).toBe('');
    expect(a.has('nf.verify')).toBe(false);
  });

  it('parses /proc/mounts and tells whether the medium is released', () => {
    const text = [
      'nf-root / overlay rw,relatime,lowerdir=/lower 0 0',
      'nf-data /var/lib/neuroflow tmpfs rw,mode=700 0 0',
      '/dev/sr0 /mnt/cd\\040rom iso9660 ro 0 0',
      '',
    ].join('\n');
    const list = mounts(text);
    expect(list[2]).toEqual({ device: '/dev/sr0', target: '/mnt/cd rom', fstype: 'iso9660', options: 'ro' });
    const live = {
      boot: 'iso',
      mediumDevice: '/dev/sr0',
      mediumLabel: 'NEUROFLOW',
      mediumFsType: 'iso9660',
      mediumDir: '/x',
    };
    expect(mediumReleased(live, list)).toBe(false);
    expect(mediumReleased(live, list.slice(0, 2))).toBe(true);
  });
});

describe('appliance serve (supervisor)', () => {
  let dir = '';
  let sup: ApplianceServe | undefined;
  let run: Promise<void> | undefined;
  afterEach(async () => {
    await sup?.stop();
    await run;
    sup = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /** A stand-in for `neuroflow serve`: a shell script whose behaviour the test picks through a file. */
  function start(cfg: ApplianceConfig, healthyWhen: () => boolean) {
    dir = mkdtempSync(join(tmpdir(), 'nf-appliance-serve-'));
    const dataDir = join(dir, 'data');
    const script = join(dir, 'child.sh');
    writeFileSync(
      script,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
      '#!/bin/sh\necho "child argv: $*"\necho "join token: ${NEUROFLOW_JOIN_TOKEN:-none}"\n' +
        'if [ -f "$0.fail" ]; then echo "error (unauthenticated): the join token was refused"; exit 1; fi\n' +
        'trap "echo stopping; exit 0" TERM\nwhile :; do sleep 0.1; done\n',
      { mode: 0o755 },
    );
    return {
      dataDir,
      script,
      async go() {
        await writeConfig(cfg, dataDir);
        sup = new ApplianceServe({
          dataDir,
          runDir: join(dir, 'run'),
          logDir: join(dir, 'log'),
          address: () => '192.0.2.10',
          childArgv: (c, address, d) => [
            script,
            ...defaultChildArgv(c, address, d, null).slice(selfArgv().length),
          ],
          healthy: async () => healthyWhen(),
          restartDelayMs: () => 100,
          stopTimeoutMs: 5000,
        });
        run = sup.run();
        return sup;
      },
    };
  }
  const status = (s: ApplianceServe) => s.readStatus() ?? ({ state: 'none' } as unknown as ClusterStatus);

  it('waits while no cluster is chosen, starts serve on reload, restarts it when it dies', async () => {
    let healthy = false;
    const base: ApplianceConfig = { ...defaultConfig(), hostname: 'esx1' };
    const t = start(base, () => healthy);
    const s = await t.go();
    await waitFor(() => status(s).state === 'idle', { timeoutMs: 5000, what: 'idle' });
    expect(existsSync(s.pidfile)).toBe(true);
    expect(readFileSync(s.pidfile, 'utf8').trim()).toBe(String(process.pid));

    await writeConfig({ ...base, cluster: { mode: 'create', name: 'lab' } }, t.dataDir);
    s.reload();
    await waitFor(() => status(s).state === 'starting', { timeoutMs: 5000, what: 'starting' });
    healthy = true;
    await waitFor(() => status(s).state === 'running', { timeoutMs: 5000, what: 'running' });
    expect(status(s)).toMatchObject({ mode: 'create', url: 'https://192.0.2.10:8006' });
    await waitFor(() => readFileSync(s.logFile, 'utf8').includes('child argv'), {
      timeoutMs: 5000,
      what: 'log',
    });
    const log = readFileSync(s.logFile, 'utf8');
    expect(log).toContain(
      `child argv: serve --data-dir ${t.dataDir} --listen 192.0.2.10:8006 --name esx1 --cluster-name lab`,
    );
    expect(log).toContain('join token: none');
    // with a watchdog device, serve is told to feed it (while HA VMs run there)
    expect(defaultChildArgv(base, '192.0.2.10', t.dataDir, '/dev/watchdog').slice(-2)).toEqual([
      '--watchdog',
      '/dev/watchdog',
    ]);

    // The child dies: it is started again.
    process.kill(status(s).pid!, 'SIGKILL');
    await waitFor(() => (readFileSync(s.logFile, 'utf8').match(/child argv/g)?.length ?? 0) >= 2, {
      timeoutMs: 5000,
      what: 'a restart',
    });
    await waitFor(() => status(s).state === 'running', { timeoutMs: 5000, what: 'running again' });

    // Back to none: the child is stopped.
    await writeConfig(base, t.dataDir);
    s.reload();
    await waitFor(() => status(s).state === 'idle', { timeoutMs: 10_000, what: 'idle again' });
    await waitFor(() => readFileSync(s.logFile, 'utf8').includes('stopping'), {
      timeoutMs: 5000,
      what: 'stop',
    });
  });

  it('passes the join token in the environment and turns the config into member once the API answers', async () => {
    let healthy = false;
    const cfg: ApplianceConfig = {
      ...defaultConfig(),
      hostname: 'esx2',
      cluster: { mode: 'join', token: 'tok-123' },
    };
    const t = start(cfg, () => healthy);
    const s = await t.go();
    await waitFor(() => existsSync(s.logFile) && readFileSync(s.logFile, 'utf8').includes('join token'), {
      timeoutMs: 5000,
      what: 'the child',
    });
    const log = readFileSync(s.logFile, 'utf8');
    expect(log).toContain('join token: tok-123');
    expect(log).not.toMatch(/child argv: .*tok-123/);
    healthy = true;
    await waitFor(() => status(s).state === 'running', { timeoutMs: 5000, what: 'running' });
    expect(status(s).mode).toBe('member');
    expect(readConfig(t.dataDir)?.cluster).toEqual({ mode: 'member' });
  });

  it('reports a failed join and does not retry it until the next reload', async () => {
    const cfg: ApplianceConfig = {
      ...defaultConfig(),
      hostname: 'esx3',
      cluster: { mode: 'join', token: 'bad' },
    };
    const t = start(cfg, () => false);
    writeFileSync(`${t.script}.fail`, '');
    const s = await t.go();
    await waitFor(() => status(s).state === 'error', { timeoutMs: 5000, what: 'error' });
    expect(status(s).message).toMatch(/the join token was refused/);
    await Bun.sleep(500);
    const starts = readFileSync(s.logFile, 'utf8').match(/child argv/g)?.length;
    expect(starts).toBe(1);
    expect(readConfig(t.dataDir)?.cluster.mode).toBe('join');
  });
});
