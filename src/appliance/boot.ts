/**
 * `neuroflow appliance boot`: the appliance's one-time start-up, run by busybox init as ::sysinit (see
 * iso/rootfs/etc/inittab). It loads the host's kernel modules, mounts the NF-DATA partition (or a tmpfs
 * on a live system) at /var/lib/neuroflow, reads the appliance config (writing the default one on first
 * boot) and applies the host name, the root password and the management network. With `nf.answer=` on
 * the kernel command line it runs the unattended installer instead of carrying on as a live system.
 *
 * Every step prints one "NEUROFLOW-APPLIANCE: ..." line on the consoles (and in
 * /var/log/neuroflow/boot.log); a failing step is reported and the boot goes on, so the console and the
 * API come up whatever happened. Also the small process helpers the installer and `appliance serve` use.
 */

import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
} from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { NfError, toNfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { VERSION } from '../version';
import { APPLIANCE_DATA_DIR, type ApplianceConfig, defaultConfig, readConfig, writeConfig } from './config';
import { applyNetwork, managementInterface } from './network';
import type { CommandResult, RunOptions as SystemRunOptions } from './system';
import { applyHostname, applyRootPassword, realRunner } from './system';

/** Run-time state of the appliance (a tmpfs). */
export const RUN_DIR = '/run/neuroflow';
/** Where the initramfs left the live system: medium/ (rootfs.squashfs, vmlinuz, initrd.img), boot.env. */
export const LIVE_DIR = join(RUN_DIR, 'live');
export const LOG_DIR = '/var/log/neuroflow';

// --- process helpers ----------------------------------------------------------------------------------

/** The same result and options as the console's runner (src/appliance/system.ts), run synchronously. */
export type RunResult = CommandResult;
export type RunOptions = SystemRunOptions & { env?: Record<string, string> };

/** Runs a program from an argv array (never through a shell). Never throws: the exit code says. */
export function run(argv: string[], opts: RunOptions = {}): RunResult {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    input: opts.input,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 600_000,
    env: { ...process.env, ...opts.env },
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) return { code: 127, stdout: r.stdout ?? '', stderr: r.error.message };
  return { code: r.status ?? 128, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Like run, but a non-zero exit becomes an NfError with the command and what it printed. */
export function must(argv: string[], opts: RunOptions = {}): string {
  const r = run(argv, opts);
  if (r.code !== 0) {
    const out = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-6).join(' | ');
    throw new NfError('internal', `${argv.join(' ')}: exit ${r.code}${out ? `: ${out}` : ''}`);
  }
  return r.stdout;
}

/**
 * Starts a program that puts itself in the background (udhcpc, acpid): it gets no pipes it could keep
 * open, its output goes to a log file, and this returns once its foreground part has exited.
 */
export function runDaemonizing(argv: string[], logFile: string, timeoutMs = 60_000): number {
  mkdirSync(dirname(logFile), { recursive: true });
  const fd = openSync(logFile, 'a', 0o600);
  try {
    const r = spawnSync(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], timeout: timeoutMs });
    return r.error ? 127 : (r.status ?? 128);
  } finally {
    closeSync(fd);
  }
}

/** The kernel command line as options: `nf.answer=X` -> nf.answer: 'X', a bare `nf.break` -> ''. */
export function kernelArgs(cmdline?: string): Map<string, string> {
  let text = cmdline;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/cmdline', 'utf8');
    } catch {
      text = '';
    }
  }
  const out = new Map<string, string>();
  for (const word of text.trim().split(/\s+/)) {
    if (!word) continue;
    const i = word.indexOf('=');
    if (i < 0) out.set(word, '');
    else out.set(word.slice(0, i), word.slice(i + 1));
  }
  return out;
}

/** /run/neuroflow/live/boot.env written by the initramfs: how this system was booted. */
export interface LiveBoot {
  boot: string;
  mediumDevice: string;
  mediumLabel: string;
  mediumFsType: string;
  /** Holds vmlinuz, initrd.img, rootfs.squashfs (the copies in RAM). */
  mediumDir: string;
}

export function liveBoot(liveDir = LIVE_DIR): LiveBoot | undefined {
  let text: string;
  try {
    text = readFileSync(join(liveDir, 'boot.env'), 'utf8');
  } catch {
    return undefined;
  }
  const env = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return {
    boot: env.get('NF_BOOT') ?? '',
    mediumDevice: env.get('NF_MEDIUM_DEVICE') ?? '',
    mediumLabel: env.get('NF_MEDIUM_LABEL') ?? '',
    mediumFsType: env.get('NF_MEDIUM_FSTYPE') ?? '',
    mediumDir: join(liveDir, 'medium'),
  };
}

export interface Mount {
  device: string;
  target: string;
  fstype: string;
  options: string;
}

/** /proc/mounts (octal escapes such as \040 decoded). */
export function mounts(text?: string): Mount[] {
  let body = text;
  if (body === undefined) {
    try {
      body = readFileSync('/proc/mounts', 'utf8');
    } catch {
      return [];
    }
  }
  const decode = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  return body
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [device = '', target = '', fstype = '', options = ''] = l.split(' ');
      return { device: decode(device), target: decode(target), fstype, options };
    });
}

/** The block device holding the file system with this label (busybox findfs), if any. */
export function findByLabel(label: string): string | undefined {
  const r = run(['findfs', `LABEL=${label}`], { timeoutMs: 30_000 });
  const dev = r.stdout.trim();
  return r.code === 0 && dev.startsWith('/dev/') ? dev : undefined;
}

/** Seconds since the kernel started. */
export function uptime(): number {
  try {
    return Number.parseFloat(readFileSync('/proc/uptime', 'utf8').split(' ')[0]!);
  } catch {
    return process.uptime();
  }
}

export type Say = (line: string) => void;

/**
 * Prints "PREFIX: line" on stdout (the console when init runs us), appends it with a time stamp to a log
 * file and, with `mirror`, writes it to the other active consoles too (the screen when /dev/console is
 * the serial port), so that whoever watches either one sees the boot and an unattended install.
 */
export function reporter(prefix: string, logFile?: string, mirror = false): Say {
  const extra: string[] = [];
  if (mirror) {
    try {
      // "tty0 ttyS0": the last one is /dev/console, our stdout.
      const active = readFileSync('/sys/class/tty/console/active', 'utf8').trim().split(/\s+/);
      for (const t of active.slice(0, -1)) extra.push(`/dev/${t}`);
    } catch {}
  }
  return (line: string) => {
    const text = `${prefix}: ${line}\n`;
    process.stdout.write(text);
    for (const dev of extra) {
      try {
        appendFileSync(dev, text.replace(/\n/g, '\r\n'));
      } catch {}
    }
    if (logFile) {
      try {
        mkdirSync(dirname(logFile), { recursive: true });
        appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
      } catch {}
    }
  };
}

// --- boot steps ---------------------------------------------------------------------------------------

/** The mounts a busybox system needs besides /proc /sys /dev /run (moved in by the initramfs). */
function basicMounts(): void {
  const have = new Set(mounts().map((m) => m.target));
  const want: [string, string[]][] = [
    ['/dev/pts', ['-t', 'devpts', '-o', 'gid=5,mode=620,ptmxmode=666', 'devpts']],
    ['/dev/shm', ['-t', 'tmpfs', '-o', 'mode=1777,nosuid,nodev', 'shm']],
    ['/sys/fs/cgroup', ['-t', 'cgroup2', '-o', 'nosuid,nodev,noexec', 'cgroup2']],
  ];
  if (existsSync('/sys/firmware/efi/efivars'))
    want.push(['/sys/firmware/efi/efivars', ['-t', 'efivarfs', '-o', 'nosuid,nodev,noexec', 'efivarfs']]);
  for (const [target, args] of want) {
    if (have.has(target)) continue;
    mkdirSync(target, { recursive: true });
    run(['mount', ...args, target]);
  }
  for (const [link, to] of [
    ['/dev/fd', '/proc/self/fd'],
    ['/dev/stdin', '/proc/self/fd/0'],
    ['/dev/stdout', '/proc/self/fd/1'],
    ['/dev/stderr', '/proc/self/fd/2'],
  ] as const) {
    if (!existsSync(link)) run(['ln', '-s', to, link]);
  }
  mkdirSync(RUN_DIR, { recursive: true, mode: 0o755 });
  mkdirSync('/run/lock', { recursive: true });
  mkdirSync(LOG_DIR, { recursive: true, mode: 0o755 });
}

/**
 * Loads /etc/neuroflow/modules.order (dependency order) with insmod, then the drivers of the devices
 * present (modalias coldplug through busybox modprobe and the image's modules.alias). Returns counts.
 */
function loadModules(): { loaded: number; failed: string[]; drivers: number; watchdog?: string } {
  const kver = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  const moduleDir = `/lib/modules/${kver}`;
  let list: string[] = [];
  try {
    list = readFileSync('/etc/neuroflow/modules.order', 'utf8').split('\n').filter(Boolean);
  } catch {}
  const before = new Set(readdirSync('/sys/module'));
  const failed: string[] = [];
  for (const rel of list) {
    const name = (rel.split('/').pop() ?? '').replace(/\.ko$/, '').replace(/-/g, '_');
    if (existsSync(`/sys/module/${name}`)) continue;
    if (run(['insmod', join(moduleDir, rel)]).code !== 0) failed.push(name);
  }
  // Coldplug: one modprobe for every distinct modalias of the devices present.
  const aliases = new Set<string>();
  const r = run(['find', '/sys/devices', '-name', 'modalias', '-type', 'f']);
  for (const p of r.stdout.split('\n').filter(Boolean)) {
    try {
      const a = readFileSync(p, 'utf8').trim();
      if (a) aliases.add(a);
    } catch {}
  }
  if (aliases.size > 0) run(['modprobe', '-q', '-a', ...aliases], { timeoutMs: 120_000 });
  // A watchdog for HA's self-fencing (serve feeds it while HA VMs run here): the hardware's driver, found
  // above, or the kernel's software one (it resets a host whose daemon hangs, not one whose kernel does).
  if (!existsSync('/dev/watchdog')) run(['modprobe', '-q', 'softdog']);
  const after = readdirSync('/sys/module');
  const loaded = after.filter((m) => !before.has(m)).length;
  return { loaded, failed, drivers: aliases.size, watchdog: watchdogIdentity() };
}

/** The watchdog device's driver (its identity), or undefined without one. */
function watchdogIdentity(): string | undefined {
  try {
    return readFileSync('/sys/class/watchdog/watchdog0/identity', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface DataMount {
  kind: 'disk' | 'tmpfs';
  device?: string;
  note?: string;
}

/**
 * NF-DATA (checked with e2fsck -p first) at the data dir, or a tmpfs: a live system, or an unattended
 * install (which must not hold the disk it is about to partition).
 */
function mountData(dataDir: string, installing: boolean, say: Say): DataMount {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const current = mounts().find((m) => m.target === dataDir);
  if (current)
    return current.fstype === 'tmpfs' ? { kind: 'tmpfs' } : { kind: 'disk', device: current.device };
  const tmpfs = (note?: string): DataMount => {
    must(['mount', '-t', 'tmpfs', '-o', 'mode=0700,nosuid,nodev', 'nf-data', dataDir]);
    return note ? { kind: 'tmpfs', note } : { kind: 'tmpfs' };
  };
  if (installing) return tmpfs('unattended install');
  const dev = findByLabel('NF-DATA');
  if (!dev) return tmpfs();
  // 0: clean, 1: errors fixed; 2+: needs attention, but mounting may still work.
  const fsck = run(['e2fsck', '-p', dev], { timeoutMs: 30 * 60_000 });
  if (fsck.code >= 2)
    say(`data: e2fsck -p ${dev} exited ${fsck.code}: ${fsck.stdout.trim().split('\n').slice(-2).join(' ')}`);
  const m = run(['mount', '-t', 'ext4', '-o', 'noatime', dev, dataDir]);
  if (m.code !== 0) return tmpfs(`mounting ${dev} failed: ${m.stderr.trim()}`);
  return { kind: 'disk', device: dev };
}

/** Reads the appliance config, writing the default one on first boot; a broken file is kept, not used. */
async function loadConfig(dataDir: string, say: Say): Promise<ApplianceConfig> {
  try {
    const cfg = readConfig(dataDir);
    if (cfg) return cfg;
    const fresh = defaultConfig();
    await writeConfig(fresh, dataDir);
    say(`config: first boot, wrote the default config (host name ${fresh.hostname}, DHCP on eth0)`);
    return fresh;
  } catch (err) {
    say(`config: ${toNfError(err).message}; this boot uses the defaults (the file is left as it is)`);
    return defaultConfig();
  }
}

/**
 * Root's password field in /etc/shadow while the config has no password: empty (root logs in on the
 * console without one; nothing listens on the network until a cluster is chosen, and the console asks for
 * a password then). With a password, system.ts's applyRootPassword puts its SHA-512 hash there.
 */
export async function clearRootPassword(shadowPath = '/etc/shadow'): Promise<void> {
  let lines: string[] = [];
  try {
    lines = readFileSync(shadowPath, 'utf8').split('\n').filter(Boolean);
  } catch {}
  const days = Math.floor(Date.now() / 86_400_000);
  const entry = `root::${days}:0:99999:7:::`;
  const i = lines.findIndex((l) => l.startsWith('root:'));
  if (i >= 0) lines[i] = entry;
  else lines.unshift(entry);
  await writeFileAtomic(shadowPath, `${lines.join('\n')}\n`, 0o600);
}

/** The first IPv4 address (else IPv6, not link-local) of an interface, as the kernel has it now. */
export function interfaceAddress(iface: string): string | undefined {
  const addrs = networkInterfaces()[iface] ?? [];
  const v4 = addrs.find((a) => a.family === 'IPv4' && !a.internal);
  if (v4) return v4.address;
  return addrs.find((a) => a.family === 'IPv6' && !a.internal && !a.address.startsWith('fe80'))?.address;
}

/**
 * Brings the management network up as the config says (network.ts's plan: links, VLAN, static address
 * or udhcpc, resolv.conf); returns the address it got, if any.
 */
export async function applyBootNetwork(cfg: ApplianceConfig, say: Say): Promise<string | undefined> {
  const net = cfg.network;
  const dev = managementInterface(net);
  // NIC drivers were just loaded: give the interface a moment to appear.
  const deadline = Date.now() + 10_000;
  while (!existsSync(`/sys/class/net/${net.interface}`) && Date.now() < deadline) await Bun.sleep(200);
  if (!existsSync(`/sys/class/net/${net.interface}`)) {
    const have = readdirSync('/sys/class/net').filter((n) => n !== 'lo');
    say(`network: there is no interface ${net.interface} (this host has: ${have.join(', ') || 'none'})`);
    run(['ip', 'link', 'set', 'lo', 'up']);
    return undefined;
  }
  const results = await applyNetwork(cfg, { root: '/', runner: realRunner() });
  for (const r of results.filter((x) => !x.ok)) say(`network: ${r.argv.join(' ')}: ${r.error ?? 'failed'}`);
  const addr = interfaceAddress(dev);
  say(
    `network: ${dev} ${net.mode}${net.vlan ? ` vlan ${net.vlan}` : ''} ${addr ? `address ${addr}` : 'no address yet (DHCP goes on in the background)'}`,
  );
  return addr;
}

/** The medium must not be mounted once the system runs from RAM (the initramfs unmounted it). */
export function mediumReleased(live: LiveBoot | undefined, list = mounts()): boolean {
  return !list.some(
    (m) =>
      m.fstype === 'iso9660' ||
      (live?.mediumDevice !== undefined && live.mediumDevice !== '' && m.device === live.mediumDevice),
  );
}

async function writeIssue(hostname: string, address: string | undefined, mode: string): Promise<void> {
  const url = address ? `https://${address.includes(':') ? `[${address}]` : address}:8006/` : undefined;
  const lines = [
    `NeuroFlow ${VERSION} - ${hostname} (\\l)`,
    url
      ? mode === 'none'
        ? `Management address ${address}: choose "create" or "join" a cluster on the console to start the API.`
        : `Manage this host at ${url}`
      : 'No management address yet: set the network on the console.',
    '',
    '',
  ];
  await writeFileAtomic('/etc/issue', lines.join('\n'), 0o644);
}

/** `neuroflow appliance boot`. Always exits 0 (init carries on); problems are on the console. */
export async function runBoot(): Promise<number> {
  const t0 = uptime();
  const say = reporter('NEUROFLOW-APPLIANCE', join(LOG_DIR, 'boot.log'), true);
  const args = kernelArgs();
  const answerSpec = args.get('nf.answer');
  const step = async <T>(name: string, fn: () => T | Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (err) {
      say(`error in step "${name}": ${toNfError(err).message}`);
      return undefined;
    }
  };
  say(`boot: NeuroFlow ${VERSION} (${kernelRelease()})`);
  await step('mounts', basicMounts);
  const mods = await step('kernel modules', loadModules);
  if (mods)
    say(
      `modules: ${mods.loaded} loaded${mods.failed.length ? `, not loaded: ${mods.failed.join(' ')}` : ''} (${mods.drivers} device aliases probed); watchdog: ${mods.watchdog ?? 'none'}`,
    );
  await step('acpid', () => {
    runDaemonizing(
      ['acpid', '-c', '/etc/acpi', '-l', join(LOG_DIR, 'acpid.log')],
      join(LOG_DIR, 'acpid.log'),
    );
  });
  const dataDir = APPLIANCE_DATA_DIR;
  const data = (await step('data partition', () => mountData(dataDir, answerSpec !== undefined, say))) ?? {
    kind: 'tmpfs' as const,
  };
  say(
    data.kind === 'disk'
      ? `data=NF-DATA ${data.device} on ${dataDir}`
      : `data=tmpfs on ${dataDir} (live system: nothing survives a reboot${data.note ? `; ${data.note}` : ''})`,
  );
  const live = liveBoot();
  say(
    `medium ${live?.mediumDevice ?? '?'} (${live?.mediumLabel ?? '?'}) ${mediumReleased(live) ? 'released: the system runs from RAM' : 'IS STILL MOUNTED'}`,
  );
  const cfg = await loadConfig(dataDir, say);
  await step('host name', () => applyHostname(cfg.hostname, { root: '/', runner: realRunner() }));
  say(`hostname=${cfg.hostname}`);
  await step('root password', () =>
    cfg.rootPassword ? applyRootPassword(cfg.rootPassword.shadow, { root: '/' }) : clearRootPassword(),
  );
  say(
    `root password: ${cfg.rootPassword ? 'set from the config' : 'none yet (console only; set one on the console)'}`,
  );
  const address = await step('network', () => applyBootNetwork(cfg, say));
  await step('issue', () => writeIssue(cfg.hostname, address, cfg.cluster.mode));

  if (answerSpec !== undefined) {
    say(`unattended install: answer file ${answerSpec}`);
    const { unattendedInstall } = await import('./install');
    // Powers off or reboots when it succeeds; on failure the live system comes up to show why.
    await unattendedInstall(answerSpec, reporter('NEUROFLOW-INSTALL', join(LOG_DIR, 'install.log'), true));
  }
  say(
    `up in ${(uptime() - t0).toFixed(1)} s (since kernel start ${uptime().toFixed(1)} s): hostname=${cfg.hostname} address=${address ?? 'none'} data=${data.kind} cluster=${cfg.cluster.mode}`,
  );
  return 0;
}

function kernelRelease(): string {
  try {
    return `kernel ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`;
  } catch {
    return 'kernel ?';
  }
}
