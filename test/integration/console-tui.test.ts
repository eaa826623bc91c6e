/**
 * The console TUI as the appliance runs it: the BUILT binary (`neuroflow console`, blessed inside it),
 * started from a directory without node_modules, in a pseudo-terminal (`script` from util-linux) with
 * TERM=linux. Keys go in as the Linux console sends them; the test reads the screen through a small
 * terminal emulator (tui/vt.ts). `--dry-run` keeps every change inside the temp data dir.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configPath } from '../../src/appliance/config';
import { newJoinToken } from '../../src/cluster/token';
import { pidAlive } from '../../src/util/proc';
import { waitFor } from '../../src/util/wait';
import { VERSION } from '../../src/version';
import { VirtualTerminal } from '../../tui/vt';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = process.env.NEUROFLOW_BINARY ?? join(ROOT, 'dist', 'neuroflow');
const COLS = 100;
const ROWS = 30;

/** Keys as the Linux console (TERM=linux) sends them. */
const KEY = {
  f2: '\x1b[[B',
  f12: '\x1b[24~',
  up: '\x1b[A',
  down: '\x1b[B',
  right: '\x1b[C',
  enter: '\r',
  escape: '\x1b',
  ctrlU: '\x15',
  ctrlC: '\x03',
};

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Every process below `pid` (from /proc: `script` puts the console in a session of its own). */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(e)]);
    } catch {}
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of parents.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

class ConsoleSession implements AsyncDisposable {
  readonly vt = new VirtualTerminal(COLS, ROWS);
  private readonly decoder = new TextDecoder();
  private exited = false;
  stderr = '';

  private constructor(
    readonly child: ChildProcess,
    readonly dataDir: string,
  ) {
    child.stdout!.on('data', (d: Buffer) => this.vt.write(this.decoder.decode(d, { stream: true })));
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    child.on('exit', () => {
      this.exited = true;
    });
  }

  static start(dataDir: string, cwd: string): ConsoleSession {
    const cmd = `stty rows ${ROWS} cols ${COLS} && exec ${shq(BIN)} console --data-dir ${shq(dataDir)} --dry-run`;
    const child = spawn('script', ['-qfc', cmd, '/dev/null'], {
      cwd,
      env: { ...process.env, TERM: 'linux' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new ConsoleSession(child, dataDir);
  }

  screen(): string {
    return this.vt.text();
  }

  send(keys: string): void {
    this.child.stdin!.write(keys);
  }

  /** Types text one key at a time, as a person would (a paste arrives in one piece: see `send`). */
  type(text: string): void {
    for (const ch of text) this.send(ch);
  }

  /** Waits until the screen matches (or, with `{ not }`, no longer matches) the pattern. */
  async waitScreen(
    pattern: RegExp,
    what: string,
    opts: { not?: boolean; timeoutMs?: number } = {},
  ): Promise<string> {
    const timeoutMs = opts.timeoutMs ?? 20_000;
    try {
      return await waitFor(() => (pattern.test(this.screen()) !== !!opts.not ? this.screen() : undefined), {
        timeoutMs,
        what,
      });
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\n--- screen ---\n${this.screen()}\n--- stderr ---\n${this.stderr}`,
      );
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const pid = this.child.pid;
    if (!pid) return;
    const tree = [pid, ...descendants(pid)];
    if (!this.exited) {
      // Ctrl-C quits the console; then whatever is left is killed by id.
      this.send(KEY.ctrlC);
      await waitFor(() => tree.every((p) => !pidAlive(p)), {
        timeoutMs: 5000,
        what: 'the console to quit',
      }).catch(() => {
        for (const p of tree.reverse())
          try {
            process.kill(p, 'SIGKILL');
          } catch {}
      });
    }
    this.child.stdin?.destroy();
  }
}

describe('neuroflow console (the built binary, TERM=linux, in a pseudo-terminal)', () => {
  const sessions: ConsoleSession[] = [];
  const dirs: string[] = [];
  let cwd: string;

  beforeAll(() => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`bun build.ts\` first`);
  });

  afterEach(async () => {
    for (const s of sessions.splice(0)) await s[Symbol.asyncDispose]();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  const setup = () => {
    const base = mkdtempSync(join(tmpdir(), 'nf-console-'));
    dirs.push(base);
    cwd = join(base, 'cwd');
    mkdirSync(cwd);
    // Nothing to fall back on: no node_modules here or above.
    for (let d = cwd; d !== '/'; d = dirname(d)) expect(existsSync(join(d, 'node_modules'))).toBe(false);
    return join(base, 'data');
  };

  it("carries blessed's terminfo inside the binary", () => {
    setup();
    const check = (term: string) =>
      spawnSync(BIN, ['console', '--check-terminal'], {
        cwd,
        env: { ...process.env, TERM: term },
        encoding: 'utf8',
      });
    const linux = check('linux');
    expect(linux.status, linux.stdout + linux.stderr).toBe(0);
    expect(linux.stdout).toMatch(/^TERM=linux: terminal linux, terminfo \S+, \d+ capabilities/);
    // A terminal this system has no terminfo for: blessed falls back to its own xterm entry, which
    // must come from the binary (a bare `bun build --compile` leaves it behind in node_modules).
    const unknown = check('nf-no-such-term');
    expect(unknown.status, unknown.stdout + unknown.stderr).toBe(0);
    expect(unknown.stdout).toContain('terminfo /$blessed-usr/xterm,');
  });

  it('shows the host, then a static address set through F2 (a wrong one shows its error, writes nothing)', async () => {
    const dataDir = setup();
    const c = ConsoleSession.start(dataDir, cwd);
    sessions.push(c);
    await c.waitScreen(new RegExp(`NeuroFlow ${VERSION.replace(/\./g, '\\.')}`), 'the product and version');
    await c.waitScreen(/To manage this host, go to:\s+not configured/, 'the "not configured" management URL');
    await c.waitScreen(/Cluster: +none/, 'the cluster state');
    expect(c.screen()).toMatch(/<F2> Customize System\/View Logs +<F12> Shut Down\/Restart/);

    c.send(KEY.f2);
    await c.waitScreen(/System Customization/, 'the customization menu');
    c.send(KEY.down);
    await c.waitScreen(/Host name, DHCP or a static IPv4 address/, 'the network item selected');
    c.send(KEY.enter);
    await c.waitScreen(/IPv4 configuration: +< DHCP >/, 'the network form');
    c.send(KEY.down);
    c.send(KEY.right);
    await c.waitScreen(/IPv4 configuration: +< static >/, 'static mode');
    c.send(KEY.down);
    c.type('192.0.2.300/24');
    await c.waitScreen(
      /IPv4 address\/prefix: +\[192\.0\.2\.300\/24_ *\] +! not an IPv4 address/,
      'the error next to the address field',
    );
    expect(c.screen()).toContain('OK is disabled: fix the fields marked !');
    // Enter on an invalid form: every error shows, nothing is written.
    c.send(KEY.enter);
    await c.waitScreen(/Default gateway: +\[ *\] +! required/, 'the empty gateway marked');
    expect(existsSync(configPath(dataDir))).toBe(false);

    // Fix it and save.
    c.send(KEY.ctrlU);
    c.type('192.0.2.10/24');
    c.send(KEY.down);
    c.type('192.0.2.1');
    c.send(KEY.down);
    c.type('192.0.2.53');
    await c.waitScreen(/<Enter> OK/, 'the form valid');
    c.send(KEY.enter);
    await c.waitScreen(/Saved the management network settings\./, 'the result');
    const cfg = JSON.parse(readFileSync(configPath(dataDir), 'utf8'));
    expect(cfg.network).toMatchObject({ mode: 'static', address: '192.0.2.10/24', gateway: '192.0.2.1' });
    expect(cfg.network.dns).toEqual(['192.0.2.53']);
    // Dry run: the commands were logged, not run.
    expect(readFileSync(join(dataDir, 'dry-run.log'), 'utf8')).toContain(
      '["ip","addr","add","192.0.2.10/24","dev","eth0"]',
    );
    c.send(KEY.enter);
    await c.waitScreen(/Saved the management network settings/, 'the result closed', { not: true });
    expect(c.screen()).toMatch(/IPv4: +192\.0\.2\.10\/24/);
    c.send(KEY.escape);
    await c.waitScreen(/https:\/\/192\.0\.2\.10:8006\/ \(STATIC\)/, 'the management URL on the main screen');
    expect(c.screen()).toMatch(/Management IP: +192\.0\.2\.10/);
  });

  it('a refused join shows the error serve printed', async () => {
    const dataDir = setup();
    const c = ConsoleSession.start(dataDir, cwd);
    sessions.push(c);
    await c.waitScreen(/To manage this host/, 'the main screen');
    c.send(KEY.f2);
    await c.waitScreen(/System Customization/, 'the customization menu');
    c.send(KEY.down + KEY.down + KEY.down);
    await c.waitScreen(/Join an existing cluster with a token/, 'the join item selected');
    c.send(KEY.enter);
    await c.waitScreen(/Join token: +\[_/, 'the join form');
    c.type('garbage');
    await c.waitScreen(/! /, 'a bad token refused as typed');
    c.send(KEY.ctrlU);
    const token = newJoinToken({
      controllers: ['192.0.2.1:8006'],
      caFingerprint: `sha256:${'e'.repeat(64)}`,
      ttlSec: 600,
    }).token;
    // Pasted in one piece, wrapped as a terminal copy might.
    c.send(`${token.slice(0, 50)} ${token.slice(50)}`);
    await c.waitScreen(/<Enter> OK/, 'the token accepted');
    c.send(KEY.enter);
    await c.waitScreen(/waiting for serve to join/, 'the join under way');
    expect(JSON.parse(readFileSync(configPath(dataDir), 'utf8')).cluster).toEqual({ mode: 'join', token });
    // What the supervisor writes when serve refuses the join.
    const serveLog = join(dataDir, 'dry-run-root', 'var', 'log', 'neuroflow', 'serve.log');
    mkdirSync(dirname(serveLog), { recursive: true });
    appendFileSync(serveLog, 'error (unauthenticated): the join token is unknown, revoked or wrong\n');
    await c.waitScreen(/Failed: the join token is unknown, revoked or wrong/, 'the join error');
    expect(JSON.parse(readFileSync(configPath(dataDir), 'utf8')).cluster).toEqual({ mode: 'none' });
    c.send(KEY.escape);
    await c.waitScreen(/Failed: the join token/, 'the dialog closed', { not: true });
    c.send(KEY.escape);
    await c.waitScreen(
      /Cluster: +none \(last attempt failed: the join token is unknown/,
      'the failure on the main screen',
    );
  });

  it('F12 asks before shutting down; the dry run logs poweroff', async () => {
    const dataDir = setup();
    const c = ConsoleSession.start(dataDir, cwd);
    sessions.push(c);
    await c.waitScreen(/To manage this host/, 'the main screen');
    c.send(KEY.f12);
    await c.waitScreen(/<F2> Shut Down +<F11> Restart +<Esc> Cancel/, 'the shut down dialog');
    c.send(KEY.f2);
    await c.waitScreen(/Shut down this host\?/, 'the confirmation');
    expect(existsSync(join(dataDir, 'dry-run.log'))).toBe(false);
    c.send(KEY.f2);
    await c.waitScreen(/Dry run: logged "poweroff"/, 'the result');
    expect(readFileSync(join(dataDir, 'dry-run.log'), 'utf8')).toContain('run ["poweroff"]');
  });
});
