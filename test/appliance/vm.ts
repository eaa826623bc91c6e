/**
 * The appliance in QEMU for the tests and the benchmark: TCG (`-cpu max`: Bun needs AVX2, which the
 * default TCG CPU lacks), 2 GiB, VGA for a screendump, ttyS0 (GRUB, the markers, the console TUI) and
 * ttyS1 (a login prompt) on unix sockets with log files, QMP, and a user-mode NIC forwarding a local
 * port to the guest's :8006. Every VM is registered for cleanup (killed, its temp dir removed) even when
 * a test fails.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../src/util/wait';
import { VirtualTerminal } from '../../tui/vt';

const ROOT = join(import.meta.dirname, '..', '..');
export const OVMF = '/usr/share/ovmf/OVMF.fd';
const ESC = String.fromCharCode(27);

/** Builds (or finds in the cache) dist/neuroflow.iso through iso/build.sh; returns its path. */
export function buildIso(): string {
  const out = execFileSync(join(ROOT, 'iso', 'build.sh'), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 20 * 60_000,
  });
  return out.trim().split('\n').at(-1)!;
}

export { freePort } from '../../src/util/net';

/** A vfat image labelled NF-ANSWER holding /answer.json (mkfs.vfat + mcopy, no mount). */
export function answerDisk(path: string, answer: unknown): void {
  const json = `${path}.json`;
  writeFileSync(json, JSON.stringify(answer, null, 2));
  rmSync(path, { force: true });
  execFileSync('mkfs.vfat', ['-n', 'NF-ANSWER', '-C', path, '8192'], { stdio: 'ignore' });
  execFileSync('mcopy', ['-i', path, json, '::/answer.json']);
  rmSync(json);
}

export interface VmOptions {
  name: string;
  iso?: string;
  /** qcow2 or raw files, as virtio disks in this order (vda, vdb...). */
  disks?: string[];
  /** Boot from the CD (d) or the first disk (c). */
  boot?: 'c' | 'd';
  firmware?: 'bios' | 'uefi';
  /** Forward 127.0.0.1:PORT to the guest's :8006. */
  apiPort?: number;
  memoryMiB?: number;
  /** A host tap device for the NIC instead of user-mode networking (then apiPort does not apply). */
  tap?: string;
  /** The NIC's MAC address (VMs on one network need different ones). */
  mac?: string;
  /** Extra QEMU arguments. */
  extra?: string[];
}

const running = new Set<ApplianceVm>();
/** Every VM made in this process: their temp dirs go in cleanupVms() even when QEMU ended by itself. */
const made = new Set<ApplianceVm>();

/** Kills every VM still running and removes every VM's files (afterAll / the end of a benchmark). */
export async function cleanupVms(): Promise<void> {
  await Promise.all([...made].map((vm) => vm.destroy()));
}
process.once('exit', () => {
  for (const vm of running) vm.killNow();
});

export class ApplianceVm {
  readonly dir: string;
  readonly started = performance.now();
  private proc: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private qmpSock: Socket | undefined;
  private qmpBuf = '';
  private qmpWaiters: ((msg: Record<string, unknown>) => void)[] = [];

  constructor(readonly opts: VmOptions) {
    this.dir = mkdtempSync(join(tmpdir(), `nf-appliance-${opts.name}-`));
    made.add(this);
  }

  path(f: string): string {
    return join(this.dir, f);
  }

  start(): this {
    const o = this.opts;
    const args = [
      '-name',
      o.name,
      '-accel',
      'tcg',
      '-cpu',
      'max',
      '-smp',
      '1',
      '-m',
      String(o.memoryMiB ?? 2048),
      '-display',
      'none',
      '-vga',
      'std',
      '-chardev',
      `socket,id=s0,path=${this.path('s0.sock')},server=on,wait=off,logfile=${this.path('serial0.log')}`,
      '-serial',
      'chardev:s0',
      '-chardev',
      `socket,id=s1,path=${this.path('s1.sock')},server=on,wait=off,logfile=${this.path('serial1.log')}`,
      '-serial',
      'chardev:s1',
      '-qmp',
      `unix:${this.path('qmp.sock')},server=on,wait=off`,
      '-nic',
      o.tap
        ? `tap,ifname=${o.tap},script=no,downscript=no,model=virtio-net-pci${o.mac ? `,mac=${o.mac}` : ''}`
        : `user,model=virtio-net-pci${o.mac ? `,mac=${o.mac}` : ''}${o.apiPort ? `,hostfwd=tcp:127.0.0.1:${o.apiPort}-:8006` : ''}`,
      '-boot',
      `order=${o.boot ?? (o.iso ? 'd' : 'c')}`,
      // a hardware watchdog, as servers have (HA's self-fencing): a timeout resets the VM
      '-device',
      'i6300esb',
      '-action',
      'watchdog=reset',
    ];
    if (o.firmware === 'uefi') args.push('-bios', OVMF);
    for (const d of o.disks ?? [])
      args.push('-drive', `file=${d},format=${d.endsWith('.qcow2') ? 'qcow2' : 'raw'},if=virtio`);
    if (o.iso) args.push('-drive', `file=${o.iso},media=cdrom,if=ide,readonly=on`);
    args.push(...(o.extra ?? []));
    writeFileSync(this.path('serial0.log'), '');
    writeFileSync(this.path('serial1.log'), '');
    const proc = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr?.on('data', (b: Buffer) => appendFileSync(this.path('qemu.err'), b));
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    running.add(this);
    return this;
  }

  get alive(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** What a serial port printed: its stream once `connectSerial` ran for it, else its log file. */
  serial(n: 0 | 1 = 0): string {
    if (this.serialSocks.has(n)) return this.serialStream(n);
    try {
      return readFileSync(this.path(`serial${n}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  /** Waits until a serial log matches; fails at once when QEMU exits or a `fail` pattern shows up. */
  async waitSerial(
    pattern: RegExp,
    timeoutMs: number,
    opts: { port?: 0 | 1; fail?: RegExp } = {},
  ): Promise<string> {
    const port = opts.port ?? 0;
    return waitFor(
      () => {
        const log = this.serial(port);
        const m = pattern.exec(log);
        if (m) return m[0];
        const f = opts.fail?.exec(log);
        if (f)
          throw new Error(`${this.opts.name}: serial ${port} shows ${JSON.stringify(f[0])}\n${tail(log)}`);
        if (!this.alive)
          throw new Error(`${this.opts.name}: QEMU exited (${this.proc?.exitCode})\n${tail(log)}`);
        return undefined;
      },
      { timeoutMs, intervalMs: 250, what: `${this.opts.name} serial ${port} to match ${pattern}` },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- serial ${port} (tail) ---\n${tail(this.serial(port))}`);
    });
  }

  /**
   * Types on a serial port: through the connection `connectSerial` keeps open, or else through a
   * connection of its own (QEMU takes one client at a time: retried).
   */
  async type(text: string, port: 0 | 1 = 0): Promise<void> {
    const open = this.serialSocks.get(port);
    if (open && !open.destroyed) {
      await new Promise<void>((resolve, reject) =>
        open.write(text, (err) => (err ? reject(err) : resolve())),
      );
      return;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          const s = connect(this.path(`s${port}.sock`), () => s.end(text, () => resolve()));
          s.once('error', reject);
        });
        return;
      } catch (err) {
        if (attempt >= 20 || !this.alive) throw err;
        await Bun.sleep(250);
      }
    }
  }

  private readonly serialSocks = new Map<number, Socket>();
  private readonly received = new Map<number, string>();

  /**
   * What a serial port printed since its socket was first connected (connect early with `connectSerial`),
   * as a terminal on the line gets it; the log file also has the output from before, but QEMU can
   * write a chunk to it twice when the client is slow, which garbles escape sequences.
   */
  serialStream(port: 0 | 1 = 0): string {
    return this.received.get(port) ?? '';
  }

  /**
   * Keeps a connection to a serial port's socket from now on: what it prints is then read from that
   * stream (`serial`), and keys go through it (`type`).
   */
  async connectSerial(port: 0 | 1 = 0): Promise<void> {
    await this.serialSocket(port);
  }

  private async serialSocket(port: 0 | 1): Promise<Socket> {
    const open = this.serialSocks.get(port);
    if (open && !open.destroyed) return open;
    const sock = await waitFor(
      () => {
        if (!this.alive) throw new Error(`${this.opts.name}: QEMU is not running`);
        return new Promise<Socket | undefined>((resolve) => {
          const s = connect(this.path(`s${port}.sock`), () => resolve(s));
          s.once('error', () => resolve(undefined));
        });
      },
      { timeoutMs: 10_000, intervalMs: 200, what: `${this.opts.name}: serial ${port} socket` },
    );
    const decoder = new TextDecoder();
    sock.on('data', (b: Buffer) =>
      this.received.set(port, this.serialStream(port) + decoder.decode(b, { stream: true })),
    );
    sock.on('error', () => sock.destroy());
    this.serialSocks.set(port, sock);
    return sock;
  }

  /** Logs in on ttyS1 (busybox getty + login). */
  async login(password: string | undefined, timeoutMs = 120_000): Promise<void> {
    await this.waitSerial(/login: $/m, timeoutMs, { port: 1 });
    await this.type('root\r', 1);
    if (password !== undefined) {
      await this.waitSerial(/Password: $/m, 20_000, { port: 1 });
      await this.type(`${password}\r`, 1);
    }
    // The shell's prompt (busybox ash also asks the terminal for the cursor position: ESC [ 6 n).
    await this.waitSerial(new RegExp(`[#$] (${ESC}\\[6n)?$`), 60_000, { port: 1 });
    await this.exec('true', 30_000);
  }

  /** Runs a shell command on ttyS1 (after login) and returns its output. */
  async exec(cmd: string, timeoutMs = 60_000): Promise<string> {
    const tag = `nf${Math.random().toString(36).slice(2, 8)}`;
    const before = this.serial(1).length;
    // The markers are assembled by the shell, so the echoed command line never matches them.
    await this.type(`echo ${tag}''-b; ${cmd}; echo ${tag}''-e $?\r`, 1);
    const re = new RegExp(`${tag}-b\\r?\\n([\\s\\S]*?)${tag}-e (\\d+)`);
    const out = await waitFor(
      () => {
        const m = re.exec(this.serial(1).slice(before));
        return m ? { text: m[1]!, code: Number(m[2]) } : undefined;
      },
      { timeoutMs, intervalMs: 200, what: `${this.opts.name}: ${cmd}` },
    );
    if (out.code !== 0) throw new Error(`${this.opts.name}: "${cmd}" exited ${out.code}: ${out.text}`);
    return out.text.replace(/\r/g, '');
  }

  private async qmpConnect(): Promise<Socket> {
    if (this.qmpSock) return this.qmpSock;
    const sock = await waitFor(
      () =>
        existsSync(this.path('qmp.sock'))
          ? new Promise<Socket | undefined>((resolve) => {
              const s = connect(this.path('qmp.sock'), () => resolve(s));
              s.once('error', () => resolve(undefined));
            })
          : undefined,
      { timeoutMs: 10_000, intervalMs: 100, what: 'the QMP socket' },
    );
    sock.on('data', (b: Buffer) => {
      this.qmpBuf += b.toString();
      let i = this.qmpBuf.indexOf('\n');
      while (i >= 0) {
        const line = this.qmpBuf.slice(0, i).trim();
        this.qmpBuf = this.qmpBuf.slice(i + 1);
        if (line) {
          const msg = JSON.parse(line) as Record<string, unknown>;
          if (!('event' in msg)) this.qmpWaiters.shift()?.(msg);
        }
        i = this.qmpBuf.indexOf('\n');
      }
    });
    this.qmpSock = sock;
    await new Promise<void>((r) => this.qmpWaiters.push(() => r())); // greeting
    await this.qmp('qmp_capabilities');
    return sock;
  }

  async qmp(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    const sock = await this.qmpConnect();
    const reply = new Promise<Record<string, unknown>>((r) => this.qmpWaiters.push(r));
    sock.write(`${JSON.stringify({ execute, ...(args ? { arguments: args } : {}) })}\n`);
    const msg = await reply;
    if (msg.error) throw new Error(`QMP ${execute}: ${JSON.stringify(msg.error)}`);
    return msg.return;
  }

  /** A PPM of the VGA screen. */
  async screendump(file = this.path('screen.ppm')): Promise<string> {
    await this.qmp('screendump', { filename: file });
    await waitFor(() => existsSync(file), { timeoutMs: 10_000, what: 'the screendump' });
    return file;
  }

  /** Waits for QEMU to exit by itself (the guest powered off). */
  async waitExit(timeoutMs: number): Promise<number | null> {
    const t = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
    const r = await Promise.race([this.exited!, t]);
    if (r === 'timeout')
      throw new Error(`${this.opts.name}: still running after ${timeoutMs} ms\n${tail(this.serial(0))}`);
    running.delete(this);
    return r;
  }

  /** ACPI power button, then wait for the guest to power off (or kill it after the timeout). */
  async powerdown(timeoutMs = 120_000): Promise<boolean> {
    if (!this.alive) return true;
    await this.qmp('system_powerdown');
    try {
      await this.waitExit(timeoutMs);
      return true;
    } catch {
      await this.destroy(false);
      return false;
    }
  }

  killNow(): void {
    if (this.alive) this.proc?.kill('SIGKILL');
  }

  /** Kills QEMU (if still running) and removes the VM's files unless `keepFiles`. */
  async destroy(removeFiles = true): Promise<void> {
    this.qmpSock?.destroy();
    for (const sock of this.serialSocks.values()) sock.destroy();
    this.serialSocks.clear();
    if (this.alive) {
      this.proc?.kill('SIGKILL');
      await this.exited;
    }
    running.delete(this);
    if (removeFiles && !process.env.NEUROFLOW_KEEP_VM_FILES)
      rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Keys as the Linux console (TERM=linux) sends them. */
export const KEY = {
  f2: `${ESC}[[B`,
  f12: `${ESC}[24~`,
  up: `${ESC}[A`,
  down: `${ESC}[B`,
  right: `${ESC}[C`,
  enter: '\r',
  escape: ESC,
  ctrlU: '\x15',
};

/**
 * The console TUI on a VM's first serial port, as a person at a serial terminal sees it: what the port
 * printed since `vm.connectSerial(0)` (GRUB, the kernel, then the TUI) goes through a terminal emulator
 * of the TUI's size (80x24, what it sets on a serial line); keys are typed into the port.
 */
export class SerialConsole {
  private readonly vt = new VirtualTerminal(80, 24);
  private offset = 0;

  constructor(readonly vm: ApplianceVm) {}

  /** The screen now (catches up with what the port printed first). */
  screen(): string {
    const text = this.vm.serialStream(0);
    if (text.length > this.offset) {
      this.vt.write(text.slice(this.offset));
      this.offset = text.length;
    }
    return this.vt.text();
  }

  async send(keys: string): Promise<void> {
    await this.vm.type(keys, 0);
  }

  /** Sends keys one write each (in order; the TUI reads them as separate key presses). */
  async keys(...keys: string[]): Promise<void> {
    for (const k of keys) await this.send(k);
  }

  /** Waits until the screen matches (or, with `{ not }`, no longer matches) the pattern. */
  async waitScreen(
    pattern: RegExp,
    what: string,
    opts: { not?: boolean; timeoutMs?: number } = {},
  ): Promise<string> {
    try {
      return await waitFor(
        () => {
          if (!this.vm.alive) throw new Error(`${this.vm.opts.name}: QEMU exited`);
          const s = this.screen();
          return pattern.test(s) !== !!opts.not ? s : undefined;
        },
        { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: 200, what: `${this.vm.opts.name}: ${what}` },
      );
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\n--- ${this.vm.opts.name} ttyS0 screen ---\n${this.screen()}`,
      );
    }
  }
}

export function tail(log: string, lines = 40): string {
  return log
    .replace(new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g'), '')
    .replace(/\r/g, '')
    .split('\n')
    .slice(-lines)
    .join('\n');
}

/** GET an API path through the forwarded port (HTTPS with the cluster's own CA: not verified here). */
export async function apiGet(port: number, path: string, token?: string): Promise<Response> {
  return fetch(`https://127.0.0.1:${port}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(30_000),
    tls: { rejectUnauthorized: false },
  } as RequestInit);
}

/** Logs in as root with the password (as the web UI does); returns the session cookie. */
export async function apiLogin(base: string, password: string): Promise<string> {
  const res = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'root', password }),
    signal: AbortSignal.timeout(20_000),
    tls: { rejectUnauthorized: false },
  } as RequestInit);
  if (res.status !== 200) throw new Error(`login at ${base}: ${res.status} ${await res.text()}`);
  const cookie = /^[^;]+/.exec(res.headers.get('set-cookie') ?? '')?.[0];
  if (!cookie) throw new Error(`login at ${base}: no session cookie`);
  return cookie;
}

/** An API call with a session cookie (HTTPS with the cluster's own CA: not verified here). */
export async function apiCall(
  base: string,
  method: string,
  path: string,
  cookie: string,
  body?: unknown,
): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: { cookie, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(20_000),
    tls: { rejectUnauthorized: false },
  } as RequestInit);
}

/** Waits until an address answers ping (busybox's: setup.sh installs busybox-static, not iputils). */
export async function waitPing(ip: string, timeoutMs: number): Promise<void> {
  await waitFor(() => spawnSync('busybox', ['ping', '-c1', '-W1', ip], { stdio: 'ignore' }).status === 0, {
    timeoutMs,
    intervalMs: 500,
    what: `${ip} to answer ping`,
  });
}

/** Waits until GET /api/v1/health answers 200 through the forwarded port. */
export async function waitApi(port: number, timeoutMs: number, vm?: ApplianceVm): Promise<void> {
  await waitFor(
    async () => {
      if (vm && !vm.alive) throw new Error(`${vm.opts.name}: QEMU exited while waiting for the API`);
      try {
        return (await apiGet(port, '/api/v1/health')).ok;
      } catch {
        return false;
      }
    },
    { timeoutMs, intervalMs: 1000, what: `the API on 127.0.0.1:${port}` },
  );
}

/**
 * The share of a PPM screendump's pixels in each colour of the console TUI (the VGA palette's grey
 * 170,170,170 of the top band and brown-yellow 170,85,0 of the body, like the ESXi DCUI), overall and
 * in the top and middle thirds of the picture.
 */
export function dcuiColours(ppm: Buffer): {
  width: number;
  height: number;
  grey: number;
  yellow: number;
  topGrey: number;
  middleYellow: number;
} {
  // P6 <width> <height> <maxval> then RGB bytes (no comments in QEMU's output).
  const header = /^P6\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(ppm.subarray(0, 64).toString('latin1'));
  if (!header) throw new Error('not a binary PPM (P6)');
  const [width, height] = [Number(header[1]), Number(header[2])];
  const data = ppm.subarray(header[0].length);
  // The VGA DAC has 6 bits a channel: 170 shows as 168, 85 as 87.
  const near = (v: number, want: number) => Math.abs(v - want) <= 4;
  const count = (y0: number, y1: number) => {
    let grey = 0;
    let yellow = 0;
    for (let y = y0; y < y1; y++)
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 3;
        const [r, g, b] = [data[i]!, data[i + 1]!, data[i + 2]!];
        if (near(r, 170) && near(g, 170) && near(b, 170)) grey++;
        else if (near(r, 170) && near(g, 85) && b <= 4) yellow++;
      }
    const n = (y1 - y0) * width;
    return { grey: grey / n, yellow: yellow / n };
  };
  const all = count(0, height);
  const third = Math.floor(height / 3);
  return {
    width,
    height,
    grey: all.grey,
    yellow: all.yellow,
    topGrey: count(0, third).grey,
    middleYellow: count(third, 2 * third).yellow,
  };
}

/** Creates an empty qcow2 disk. */
export function blankDisk(path: string, size = '10G'): string {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, size]);
  return path;
}
