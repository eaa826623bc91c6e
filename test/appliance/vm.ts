/**
 * The appliance in QEMU for the tests and the benchmark: TCG (`-cpu max`: Bun needs AVX2, which the
 * default TCG CPU lacks), 2 GiB, VGA for a screendump, ttyS0 (GRUB, the markers, the console TUI) and
 * ttyS1 (a login prompt) on unix sockets with log files, QMP, and a user-mode NIC forwarding a local
 * port to the guest's :8006. Every VM is registered for cleanup (killed, its temp dir removed) even when
 * a test fails.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../src/util/wait';

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

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

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
      `user,model=virtio-net-pci${o.apiPort ? `,hostfwd=tcp:127.0.0.1:${o.apiPort}-:8006` : ''}`,
      '-boot',
      `order=${o.boot ?? (o.iso ? 'd' : 'c')}`,
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

  serial(n: 0 | 1 = 0): string {
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

  /** Types on a serial port (the socket of its chardev; QEMU takes one client at a time: retried). */
  async type(text: string, port: 0 | 1 = 0): Promise<void> {
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
    if (this.alive) {
      this.proc?.kill('SIGKILL');
      await this.exited;
    }
    running.delete(this);
    if (removeFiles && !process.env.NEUROFLOW_KEEP_VM_FILES)
      rmSync(this.dir, { recursive: true, force: true });
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
    signal: AbortSignal.timeout(10_000),
    tls: { rejectUnauthorized: false },
  } as RequestInit);
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

/** Creates an empty qcow2 disk. */
export function blankDisk(path: string, size = '10G'): string {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, size]);
  return path;
}
