/**
 * The installer: `neuroflow install --disk /dev/X [--answer FILE] [--yes]`, and the unattended install
 * that `neuroflow appliance boot` runs for `nf.answer=` on the kernel command line.
 *
 * Layout (GPT): 1 MiB BIOS boot partition (GRUB's core.img), 128 MiB EFI system partition (vfat,
 * GRUB for UEFI at the removable path EFI/BOOT/BOOTX64.EFI), NF-BOOT (ext4, 1 GiB: /boot/vmlinuz,
 * /boot/initrd.img, /rootfs.squashfs, /boot/grub/grub.cfg), NF-DATA (ext4, the rest: the appliance
 * config, etcd, the storage pool). The system files come from the copies the initramfs left in RAM
 * (/run/neuroflow/live/medium), so the boot medium is not needed any more.
 *
 * Every external program runs from an argv array; every step is logged, and a failure names its step.
 */
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
} from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import * as z from 'zod';
import { NfError, toNfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { VERSION } from '../version';
import {
  findByLabel,
  LIVE_DIR,
  LOG_DIR,
  liveBoot,
  mounts,
  must,
  RUN_DIR,
  reporter,
  run,
  type Say,
} from './boot';
import {
  APPLIANCE_DATA_DIR,
  type ApplianceConfig,
  defaultConfig,
  hashRootPassword,
  parseConfig,
  readConfig,
  writeConfig,
} from './config';

export const MIN_DISK_BYTES = 8 * 1024 ** 3;

/** GPT partition type GUIDs. */
const GPT = {
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
};

/** The answer file of an unattended install (docs/appliance.md). */
export const AnswerFile = z.strictObject({
  disk: z.string().startsWith('/dev/', 'a block device such as /dev/sda').optional(),
  wipe: z.boolean().default(false),
  after: z.enum(['reboot', 'poweroff', 'none']).default('reboot'),
  /** An appliance config; rootPassword may be { "plain": "..." } (hashed here, never stored). */
  config: z.record(z.string(), z.unknown()).default({}),
});
export type AnswerFile = z.infer<typeof AnswerFile>;

/** Validates an answer file and turns its config into a complete appliance config (defaults filled in). */
export function parseAnswer(value: unknown): { answer: AnswerFile; config: ApplianceConfig } {
  const r = AnswerFile.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new NfError('validation_failed', `answer file: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  const answer = r.data;
  const given = { ...answer.config };
  let rootPassword: ApplianceConfig['rootPassword'];
  const pw = given.rootPassword as { plain?: unknown } | undefined;
  if (pw && typeof pw === 'object' && 'plain' in pw) {
    if (typeof pw.plain !== 'string')
      throw new NfError('validation_failed', 'answer file: config.rootPassword.plain: a string');
    rootPassword = hashRootPassword(pw.plain);
    delete given.rootPassword;
  }
  const base = defaultConfig();
  const network = { ...base.network, ...((given.network as object | undefined) ?? {}) };
  const config = parseConfig({
    ...base,
    ...given,
    network,
    ...(rootPassword ? { rootPassword } : {}),
  });
  return { answer, config };
}

/**
 * Reads an answer file named by `nf.answer=`: `label:LABEL:/path` (a file on the file system with that
 * label, mounted read-only for the read) or `fwcfg:NAME` (QEMU -fw_cfg name=NAME,file=...).
 */
export async function readAnswerSpec(spec: string, say: Say): Promise<unknown> {
  let text: string;
  if (spec.startsWith('fwcfg:')) {
    const name = spec.slice('fwcfg:'.length);
    if (!name || name.includes('..'))
      throw new NfError('validation_failed', `nf.answer=${spec}: a fw_cfg name`);
    const p = `/sys/firmware/qemu_fw_cfg/by_name/${name}/raw`;
    if (!existsSync(p)) run(['modprobe', 'qemu_fw_cfg']);
    if (!existsSync(p)) throw new NfError('file_not_found', `no fw_cfg entry ${name} (${p})`);
    text = readFileSync(p, 'utf8');
  } else if (spec.startsWith('label:')) {
    const rest = spec.slice('label:'.length);
    const i = rest.indexOf(':');
    if (i <= 0 || !rest.slice(i + 1).startsWith('/'))
      throw new NfError('validation_failed', `nf.answer=${spec}: use label:LABEL:/path`);
    const label = rest.slice(0, i);
    const path = rest.slice(i + 1);
    const deadline = Date.now() + 15_000;
    let dev = findByLabel(label);
    while (!dev && Date.now() < deadline) {
      await Bun.sleep(500);
      dev = findByLabel(label);
    }
    if (!dev) throw new NfError('file_not_found', `no file system labelled ${label} for the answer file`);
    const mnt = join(RUN_DIR, 'answer');
    mkdirSync(mnt, { recursive: true });
    must(['mount', '-o', 'ro', dev, mnt]);
    try {
      const file = join(mnt, path);
      if (!existsSync(file)) throw new NfError('file_not_found', `${dev} (${label}) has no ${path}`);
      text = readFileSync(file, 'utf8');
    } finally {
      run(['umount', mnt]);
    }
    say(`answer file ${path} read from ${dev} (${label})`);
  } else {
    throw new NfError('validation_failed', `nf.answer=${spec}: use label:LABEL:/path or fwcfg:NAME`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new NfError('validation_failed', `the answer file is not JSON: ${(err as Error).message}`);
  }
}

// --- disks --------------------------------------------------------------------------------------------

export interface DiskInfo {
  /** /dev/NAME */
  path: string;
  name: string;
  bytes: number;
  readOnly: boolean;
  /** Names of its partitions (sda1, nvme0n1p1...). */
  partitions: string[];
  /** What blkid finds on the disk itself (a partition table, a file system), if anything. */
  signature?: string;
}

/** The whole disk a block device belongs to: sda for sda1, nvme0n1 for nvme0n1p2, sr0 for sr0. */
export function parentDisk(dev: string, sysBlock = '/sys/class/block'): string {
  const name = basename(dev);
  try {
    if (existsSync(join(sysBlock, name, 'partition')))
      return basename(join(realpathSync(join(sysBlock, name)), '..'));
  } catch {}
  return name;
}

export function diskInfo(disk: string, sysBlock = '/sys/class/block'): DiskInfo {
  let path: string;
  try {
    path = realpathSync(disk);
  } catch {
    throw new NfError('file_not_found', `${disk} does not exist`);
  }
  if (!statSync(path).isBlockDevice())
    throw new NfError('validation_failed', `${disk} is not a block device`);
  const name = basename(path);
  const sys = join(sysBlock, name);
  if (!existsSync(sys)) throw new NfError('validation_failed', `${disk}: no ${sys}`);
  if (existsSync(join(sys, 'partition')))
    throw new NfError(
      'validation_failed',
      `${disk} is a partition; give the whole disk (/dev/${parentDisk(path)})`,
    );
  const read = (f: string) => {
    try {
      return readFileSync(join(sys, f), 'utf8').trim();
    } catch {
      return '';
    }
  };
  const partitions = readdirSync(sys).filter((e) => existsSync(join(sys, e, 'partition')));
  const probe = run(['blkid', '-p', '-o', 'export', path]);
  const fields = Object.fromEntries(
    probe.stdout
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const signature = fields.PTTYPE
    ? `a ${fields.PTTYPE} partition table`
    : fields.TYPE
      ? `a ${fields.TYPE} file system${fields.LABEL ? ` labelled ${fields.LABEL}` : ''}`
      : undefined;
  return {
    path,
    name,
    bytes: Number(read('size')) * 512,
    readOnly: read('ro') === '1',
    partitions,
    ...(signature ? { signature } : {}),
  };
}

/** The device name of partition N of a disk: sda3, nvme0n1p3, mmcblk0p3, loop0p3. */
export function partitionPath(disk: string, n: number): string {
  return /\d$/.test(disk) ? `${disk}p${n}` : `${disk}${n}`;
}

/** The sfdisk script of the appliance layout. */
export function partitionScript(): string {
  return [
    'label: gpt',
    `size=1MiB, type=${GPT.biosBoot}, name="BIOS boot"`,
    `size=128MiB, type=${GPT.esp}, name="EFI system"`,
    `size=1GiB, type=${GPT.linux}, name="NF-BOOT"`,
    `type=${GPT.linux}, name="NF-DATA"`,
    '',
  ].join('\n');
}

/** GRUB's menu on the installed disk: the serial console too, the same kernel options as the ISO. */
export function diskGrubCfg(opts: { bootUuid: string; cmdline: string; version: string }): string {
  const entry = (title: string, extra: string, hotkey: string) =>
    [
      `menuentry '${title}' --hotkey=${hotkey} {`,
      `\tlinux /boot/vmlinuz nf.boot=disk${extra} ${opts.cmdline}`,
      '\tinitrd /boot/initrd.img',
      '}',
    ].join('\n');
  return [
    '# NeuroFlow appliance, installed disk (written by neuroflow install).',
    'serial --unit=0 --speed=115200',
    'terminal_input serial console',
    'terminal_output serial console',
    'set timeout=3',
    'set default=0',
    `search --no-floppy --fs-uuid --set=root ${opts.bootUuid}`,
    entry(`NeuroFlow ${opts.version}`, '', 'n'),
    entry('NeuroFlow (check the image, then boot)', ' nf.verify', 'v'),
    entry('Rescue shell (initramfs, before the switch to the system)', ' nf.break', 'r'),
    '',
  ].join('\n');
}

const DEFAULT_CMDLINE = 'console=tty0 console=ttyS0,115200n8 quiet panic=30 cryptomgr.notests';

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export interface InstallOptions {
  disk: string;
  /** The appliance config to write to NF-DATA. */
  config: ApplianceConfig;
  /** Erase a disk that holds partitions or file systems without asking. */
  wipe: boolean;
  /** Ask on the terminal before erasing a disk that is not blank (when not `wipe`). */
  confirm?: (question: string) => Promise<boolean>;
  say: Say;
  /** vmlinuz, initrd.img, rootfs.squashfs (+ build.json, rootfs.sha256): the live system's copies. */
  sourceDir?: string;
}

/** Checks the target disk; throws with the reason it cannot be used. Returns what it found. */
export async function checkDisk(opts: InstallOptions): Promise<DiskInfo> {
  const disk = diskInfo(opts.disk);
  if (disk.readOnly) throw new NfError('validation_failed', `${disk.path} is read-only`);
  if (/^(sr|loop|ram|zram)\d/.test(disk.name) && !process.env.NEUROFLOW_INSTALL_ALLOW_LOOP)
    throw new NfError('validation_failed', `${disk.path} is not a disk to install to`);
  const live = liveBoot();
  if (live?.mediumDevice && parentDisk(live.mediumDevice) === disk.name)
    throw new NfError(
      'invalid_state',
      `${disk.path} is the disk this system booted from (${live.mediumDevice}); choose another disk`,
    );
  const busy = mounts().filter((m) => m.device.startsWith('/dev/') && parentDisk(m.device) === disk.name);
  if (busy.length > 0)
    throw new NfError(
      'in_use',
      `${disk.path} is in use: ${busy.map((m) => `${m.device} on ${m.target}`).join(', ')}; unmount it first`,
    );
  if (disk.bytes < MIN_DISK_BYTES)
    throw new NfError(
      'insufficient_resources',
      `${disk.path} has ${(disk.bytes / 1024 ** 3).toFixed(1)} GiB; the appliance needs at least 8 GiB`,
    );
  const content = [
    ...(disk.signature ? [disk.signature] : []),
    ...(disk.partitions.length ? [`partitions ${disk.partitions.join(', ')}`] : []),
  ];
  if (content.length > 0 && !opts.wipe) {
    const question = `${disk.path} holds ${content.join(' and ')}: everything on it will be erased. Go on?`;
    if (!opts.confirm || !(await opts.confirm(question)))
      throw new NfError(
        'invalid_state',
        `${disk.path} holds ${content.join(' and ')}; nothing was changed (confirm, pass --yes, or set "wipe": true in the answer file)`,
      );
  }
  return disk;
}

/** Installs the appliance to a disk (see the top of this file). Throws naming the step that failed. */
export async function install(opts: InstallOptions): Promise<void> {
  const say = opts.say;
  const src = opts.sourceDir ?? join(LIVE_DIR, 'medium');
  const work = join(RUN_DIR, 'install');
  const bootMnt = join(work, 'boot');
  const efiMnt = join(work, 'efi');
  const dataMnt = join(work, 'data');
  const mounted: string[] = [];
  const steps = 10;
  let n = 0;
  const step = async <T>(what: string, fn: () => T | Promise<T>): Promise<T> => {
    n += 1;
    say(`step ${n}/${steps}: ${what}`);
    const t0 = performance.now();
    try {
      const v = await fn();
      say(`step ${n}/${steps}: ${what}: ok (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      return v;
    } catch (err) {
      const e = toNfError(err);
      throw new NfError(e.code, `install step ${n}/${steps} "${what}" failed: ${e.message}`, undefined, {
        cause: err,
      });
    }
  };
  const mount = (dev: string, dir: string, type: string) => {
    mkdirSync(dir, { recursive: true });
    must(['mount', '-t', type, dev, dir]);
    mounted.push(dir);
  };
  try {
    const disk = await step('check the disk and the system files', async () => {
      for (const f of ['vmlinuz', 'initrd.img', 'rootfs.squashfs'])
        if (!existsSync(join(src, f))) throw new NfError('file_not_found', `${join(src, f)} is missing`);
      return checkDisk(opts);
    });
    say(`target ${disk.path}: ${(disk.bytes / 1024 ** 3).toFixed(1)} GiB`);
    const part = (i: number) => partitionPath(disk.path, i);

    await step('partition (GPT: BIOS boot, EFI, NF-BOOT, NF-DATA)', async () => {
      // Old signatures first, so no stale label (an old NF-DATA) survives in the new partitions.
      for (const p of disk.partitions) run(['wipefs', '-a', `/dev/${p}`]);
      run(['wipefs', '-a', disk.path]);
      must(['sfdisk', '--wipe', 'always', '--wipe-partitions', 'always', '--no-tell-kernel', disk.path], {
        input: partitionScript(),
      });
      // Make the kernel read the new table, then wait for the partition nodes.
      must(['blockdev', '--rereadpt', disk.path]);
      const deadline = Date.now() + 15_000;
      while (![1, 2, 3, 4].every((i) => existsSync(part(i))) && Date.now() < deadline) await Bun.sleep(200);
      for (const i of [1, 2, 3, 4])
        if (!existsSync(part(i)))
          throw new NfError('internal', `${part(i)} did not appear after partitioning`);
    });

    await step('make file systems (vfat ESP, ext4 NF-BOOT and NF-DATA)', () => {
      must(['mkfs.fat', '-F', '32', '-n', 'NF-EFI', part(2)]);
      must(['mke2fs', '-t', 'ext4', '-F', '-q', '-L', 'NF-BOOT', part(3)]);
      must(['mke2fs', '-t', 'ext4', '-F', '-q', '-L', 'NF-DATA', '-m', '1', part(4)]);
    });

    await step('mount the new file systems', () => {
      mount(part(3), bootMnt, 'ext4');
      mount(part(2), efiMnt, 'vfat');
      mount(part(4), dataMnt, 'ext4');
    });

    await step('copy the system (kernel, initramfs, rootfs.squashfs) to NF-BOOT', async () => {
      mkdirSync(join(bootMnt, 'boot', 'grub'), { recursive: true });
      await copyFile(join(src, 'vmlinuz'), join(bootMnt, 'boot', 'vmlinuz'));
      await copyFile(join(src, 'initrd.img'), join(bootMnt, 'boot', 'initrd.img'));
      await copyFile(join(src, 'rootfs.squashfs'), join(bootMnt, 'rootfs.squashfs'));
      for (const f of ['rootfs.sha256', 'build.json'])
        if (existsSync(join(src, f))) await copyFile(join(src, f), join(bootMnt, f));
      must(['sync']);
      const want = existsSync(join(src, 'rootfs.sha256'))
        ? readFileSync(join(src, 'rootfs.sha256'), 'utf8').split(/\s/)[0]
        : await sha256File(join(src, 'rootfs.squashfs'));
      const got = await sha256File(join(bootMnt, 'rootfs.squashfs'));
      if (got !== want)
        throw new NfError('internal', `rootfs.squashfs was copied wrong (sha256 ${got}, want ${want})`);
    });

    await step('install GRUB for BIOS (i386-pc, BIOS boot partition)', () => {
      must([
        'grub-install',
        '--target=i386-pc',
        `--boot-directory=${join(bootMnt, 'boot')}`,
        '--modules=part_gpt ext2',
        disk.path,
      ]);
    });

    await step('install GRUB for UEFI (x86_64-efi, removable path EFI/BOOT/BOOTX64.EFI)', () => {
      must([
        'grub-install',
        '--target=x86_64-efi',
        `--efi-directory=${efiMnt}`,
        `--boot-directory=${join(bootMnt, 'boot')}`,
        '--removable',
        '--no-nvram',
        '--modules=part_gpt ext2',
      ]);
    });

    await step('write grub.cfg', async () => {
      const bootUuid = must(['blkid', '-s', 'UUID', '-o', 'value', part(3)]).trim();
      if (!bootUuid) throw new NfError('internal', `no UUID for ${part(3)}`);
      let cmdline = DEFAULT_CMDLINE;
      let version = VERSION;
      try {
        const b = JSON.parse(readFileSync(join(src, 'build.json'), 'utf8')) as {
          cmdline?: string;
          version?: string;
        };
        cmdline = b.cmdline ?? cmdline;
        version = b.version ?? version;
      } catch {}
      await writeFile(join(bootMnt, 'boot', 'grub', 'grub.cfg'), diskGrubCfg({ bootUuid, cmdline, version }));
    });

    await step('write the appliance config to NF-DATA', async () => {
      await writeConfig(opts.config, dataMnt);
      const log = join(LOG_DIR, 'install.log');
      if (existsSync(log))
        await writeFileAtomic(join(dataMnt, 'appliance', 'install.log'), await readFile(log), 0o600);
    });

    await step('sync and unmount', () => {
      must(['sync']);
      for (const dir of mounted.splice(0).reverse()) must(['umount', dir]);
      must(['sync']);
    });
  } finally {
    for (const dir of mounted.reverse()) run(['umount', dir]);
  }
}

/**
 * nf.answer=SPEC at boot: read the answer, install, then reboot or power off as it says. On failure it
 * says so (the step, the reason) and returns, so the live system comes up to show it.
 */
export async function unattendedInstall(spec: string, say: Say): Promise<void> {
  const t0 = performance.now();
  try {
    const { answer, config } = parseAnswer(await readAnswerSpec(spec, say));
    if (!answer.disk)
      throw new NfError('validation_failed', 'answer file: "disk" is required (e.g. "/dev/sda")');
    say(`installing to ${answer.disk} (host name ${config.hostname}, cluster ${config.cluster.mode})`);
    await install({ disk: answer.disk, config, wipe: answer.wipe, say });
    say(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s; next: ${answer.after}`);
    if (answer.after === 'none') return;
    // Everything is synced and unmounted: no need to wait for init.
    run(['sync']);
    run([answer.after, '-f']);
    await Bun.sleep(60_000);
  } catch (err) {
    say(`failed: ${toNfError(err).message}`);
  }
}

async function askOnTerminal(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const a = await rl.question(`${question} Type "yes" to erase it: `);
    return a.trim().toLowerCase() === 'yes';
  } finally {
    rl.close();
  }
}

/** `neuroflow install --disk /dev/X [--answer FILE] [--yes]`. */
export async function installCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      disk: { type: 'string' },
      answer: { type: 'string' },
      yes: { type: 'boolean', short: 'y', default: false },
      'data-dir': { type: 'string', default: APPLIANCE_DATA_DIR },
      source: { type: 'string' },
    },
  });
  let config: ApplianceConfig;
  let after: AnswerFile['after'] = 'none';
  let wipe = values.yes;
  let disk = values.disk;
  if (values.answer) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(values.answer, 'utf8'));
    } catch (err) {
      throw new NfError('validation_failed', `${values.answer}: ${(err as Error).message}`);
    }
    const parsed = parseAnswer(raw);
    config = parsed.config;
    after = parsed.answer.after;
    wipe ||= parsed.answer.wipe;
    disk ??= parsed.answer.disk;
  } else {
    // The live system's config (what was set on the console) goes to the installed disk.
    config = readConfig(values['data-dir']) ?? defaultConfig();
  }
  if (!disk)
    throw new NfError('validation_failed', 'usage: neuroflow install --disk /dev/X [--answer FILE] [--yes]');
  const say = reporter('install', join(LOG_DIR, 'install.log'));
  await install({
    disk,
    config,
    wipe,
    confirm: askOnTerminal,
    say,
    ...(values.source ? { sourceDir: values.source } : {}),
  });
  if (after === 'none') {
    say(`installed to ${disk}. Remove the installation medium and reboot.`);
    return 0;
  }
  say(`installed to ${disk}; ${after} now`);
  run(['sync']);
  run([after]);
  return 0;
}
