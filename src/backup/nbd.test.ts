/**
 * NbdClient against real qemu-nbd exports of images made with qemu-img/qemu-io in a temp dir.
 * Skipped when qemu-nbd is not installed.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from '../util/wait';
import { NBD_STATE_DIRTY, NBD_STATE_HOLE, NBD_STATE_ZERO, NbdClient, NbdError } from './nbd';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 64 * MiB;

function installed(bin: string): boolean {
  try {
    execFileSync(bin, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** True when something listens on the unix socket (the probe connection is closed at once). */
function accepts(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ path: sock });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

const hasQemu = ['qemu-nbd', 'qemu-img', 'qemu-io'].every(installed);

interface Server {
  sock: string;
  child: ChildProcess;
  exited: Promise<void>;
}

describe.skipIf(!hasQemu)('NbdClient against qemu-nbd', () => {
  let dir: string;
  let servers: Server[] = [];
  let clients: NbdClient[] = [];
  let n = 0;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nf-nbd-test-'));
  });

  afterEach(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    clients = [];
    for (const s of servers) s.child.kill('SIGKILL');
    await Promise.all(servers.map((s) => s.exited));
    servers = [];
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A fresh path in the temp dir. */
  function path(name: string): string {
    return join(dir, `${++n}-${name}`);
  }

  function qcow2(size = SIZE): string {
    const file = path('disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(size)]);
    return file;
  }

  function qemuIo(file: string, command: string): void {
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', command, file], { stdio: 'ignore' });
  }

  /** Exports `file` as "disk" on a unix socket; resolves once it accepts connections. */
  async function serve(file: string, format: 'qcow2' | 'raw', extra: string[] = []): Promise<Server> {
    const sock = path('nbd.sock');
    const args = ['-f', format, '-k', sock, '-x', 'disk', '--persistent', '--shared=4', ...extra, file];
    const child = spawn('qemu-nbd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const server = { sock, child, exited };
    servers.push(server);
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`qemu-nbd exited ${child.exitCode}: ${stderr}`);
        // The socket file appears before qemu-nbd listens on it: probe with a connection.
        return existsSync(sock) && accepts(sock);
      },
      { timeoutMs: 10_000, intervalMs: 10, what: `qemu-nbd socket ${sock}` },
    );
    return server;
  }

  async function open(server: Server, metaContexts?: string[]): Promise<NbdClient> {
    const client = await NbdClient.connect(server.sock, {
      exportName: 'disk',
      metaContexts,
      timeoutMs: 10_000,
    });
    clients.push(client);
    return client;
  }

  /** A raw file of random bytes; returns its path and contents. */
  function randomRaw(size: number): { file: string; data: Buffer } {
    const file = path('disk.raw');
    const data = randomBytes(size);
    writeFileSync(file, data);
    return { file, data };
  }

  function filled(length: number, byte: number): Buffer {
    return Buffer.alloc(length, byte);
  }

  async function rejection(p: Promise<unknown>): Promise<Error> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    return err as Error;
  }

  test('reads written data, zeros where nothing was written, and a range spanning both', async () => {
    const file = qcow2();
    qemuIo(file, 'write -P 0xab 1M 2M');
    const c = await open(await serve(file, 'qcow2', ['-r']));
    expect(c.size).toBe(SIZE);
    expect(c.writable).toBe(false);
    expect(c.contexts.size).toBe(0);

    expect((await c.read(1 * MiB, 2 * MiB)).equals(filled(2 * MiB, 0xab))).toBe(true);
    expect((await c.read(8 * MiB, 1 * MiB)).equals(filled(1 * MiB, 0))).toBe(true);
    const span = await c.read(512 * KiB, 1 * MiB);
    expect(span.equals(Buffer.concat([filled(512 * KiB, 0), filled(512 * KiB, 0xab)]))).toBe(true);
    const tail = await c.read(3 * MiB - 100, 200);
    expect(tail.equals(Buffer.concat([filled(100, 0xab), filled(100, 0)]))).toBe(true);
    expect((await c.read(0, 0)).length).toBe(0);
    // Bigger than QEMU's 32 MiB request limit: split, reassembled in order.
    const whole = await c.read(0, SIZE);
    expect(
      whole.equals(Buffer.concat([filled(MiB, 0), filled(2 * MiB, 0xab), filled(SIZE - 3 * MiB, 0)])),
    ).toBe(true);

    const err = await rejection(c.write(0, filled(512, 1)));
    expect(err).toMatchObject({ name: 'NbdError', code: 'EPERM' });
  });

  test('base:allocation: the written range is data, the rest hole+zero; extents cover exactly the range', async () => {
    const file = qcow2();
    qemuIo(file, 'write -P 0xab 1M 2M');
    const c = await open(await serve(file, 'qcow2', ['-r']), ['base:allocation']);
    expect([...c.contexts.keys()]).toEqual(['base:allocation']);

    const extents = await c.blockStatus('base:allocation', 0, c.size);
    const sparse = NBD_STATE_HOLE | NBD_STATE_ZERO;
    expect(extents).toEqual([
      { offset: 0, length: 1 * MiB, flags: sparse },
      { offset: 1 * MiB, length: 2 * MiB, flags: 0 },
      { offset: 3 * MiB, length: SIZE - 3 * MiB, flags: sparse },
    ]);
    // A sub-range is clipped to what was asked.
    expect(await c.blockStatus('base:allocation', 512 * KiB, 1 * MiB)).toEqual([
      { offset: 512 * KiB, length: 512 * KiB, flags: sparse },
      { offset: 1 * MiB, length: 512 * KiB, flags: 0 },
    ]);
    expect(await c.blockStatus('base:allocation', 0, 0)).toEqual([]);
    await expect(c.blockStatus('qemu:dirty-bitmap:b0', 0, c.size)).rejects.toThrow(/not granted/);
  });

  test('block status over a 10 TiB image takes many requests and comes back merged', async () => {
    const file = qcow2(10 * 1024 * 1024 * MiB);
    qemuIo(file, 'write -P 1 5G 64k');
    const c = await open(await serve(file, 'qcow2', ['-r']), ['base:allocation']);
    // Requests are under 4 GiB (a u32 length): thousands of answers, merged across request boundaries.
    expect(await c.blockStatus('base:allocation', 0, c.size)).toEqual([
      { offset: 0, length: 5 * 1024 * MiB, flags: 3 },
      { offset: 5 * 1024 * MiB, length: 64 * KiB, flags: 0 },
      { offset: 5 * 1024 * MiB + 64 * KiB, length: c.size - 5 * 1024 * MiB - 64 * KiB, flags: 3 },
    ]);
  });

  test('block status of a fragmented file: the server answers for less than asked, the client loops', async () => {
    // 76800 data blocks alternating with holes: 153600 extents, more than QEMU sends in one reply (131072).
    const file = path('frag.raw');
    const fd = openSync(file, 'w');
    try {
      ftruncateSync(fd, 1024 * MiB);
      const block = filled(4 * KiB, 0x5a);
      for (let off = 0; off < 600 * MiB; off += 8 * KiB) writeSync(fd, block, 0, block.length, off);
    } finally {
      closeSync(fd);
    }
    const c = await open(await serve(file, 'raw', ['-r']), ['base:allocation']);
    const extents = await c.blockStatus('base:allocation', 0, c.size);
    expect(extents).toHaveLength(153_600);
    const wrong = extents.findIndex((e, i) => {
      const length = i === extents.length - 1 ? c.size - e.offset : 4 * KiB;
      return e.offset !== i * 4 * KiB || e.length !== length || e.flags !== (i % 2 ? 3 : 0);
    });
    expect(wrong, `first wrong extent: ${JSON.stringify(extents[wrong])}`).toBe(-1);
  });

  test('dirty bitmap: only the range written since the bitmap was added is dirty', async () => {
    const file = qcow2();
    qemuIo(file, 'write -P 0x11 0 1M');
    execFileSync('qemu-img', ['bitmap', '--add', '-f', 'qcow2', file, 'b0']);
    qemuIo(file, 'write -P 0xcd 8M 4M');
    const server = await serve(file, 'qcow2', ['-r', '-B', 'b0']);
    const c = await open(server, ['base:allocation', 'qemu:dirty-bitmap:b0', 'qemu:dirty-bitmap:nope']);
    // A context the server does not know is simply not granted.
    expect([...c.contexts.keys()].sort()).toEqual(['base:allocation', 'qemu:dirty-bitmap:b0']);

    expect(await c.blockStatus('qemu:dirty-bitmap:b0', 0, c.size)).toEqual([
      { offset: 0, length: 8 * MiB, flags: 0 },
      { offset: 8 * MiB, length: 4 * MiB, flags: NBD_STATE_DIRTY },
      { offset: 12 * MiB, length: SIZE - 12 * MiB, flags: 0 },
    ]);
    // Both contexts come in the same reply: each call keeps its own.
    const allocated = (await c.blockStatus('base:allocation', 0, c.size)).filter((e) => e.flags === 0);
    expect(allocated).toEqual([
      { offset: 0, length: 1 * MiB, flags: 0 },
      { offset: 8 * MiB, length: 4 * MiB, flags: 0 },
    ]);
    expect((await c.read(8 * MiB, 4 * MiB)).equals(filled(4 * MiB, 0xcd))).toBe(true);
  });

  test('writes land in the image (and a write over 32 MiB is split)', async () => {
    const file = qcow2();
    const server = await serve(file, 'qcow2');
    const c = await open(server);
    expect(c.writable).toBe(true);
    const small = randomBytes(4 * MiB);
    const big = randomBytes(40 * MiB);
    await Promise.all([c.write(4 * MiB, small), c.write(16 * MiB, new Uint8Array(big))]);
    await c.flush();
    await c.close();

    const again = await open(server);
    expect((await again.read(4 * MiB, 4 * MiB)).equals(small)).toBe(true);
    expect((await again.read(16 * MiB, 40 * MiB)).equals(big)).toBe(true);
    await again.close();
    server.child.kill('SIGTERM');
    await server.exited;

    // The same bytes in a raw reference: qemu-img compare says the images hold identical data.
    const reference = path('reference.raw');
    const fd = openSync(reference, 'w');
    try {
      ftruncateSync(fd, SIZE);
      writeSync(fd, small, 0, small.length, 4 * MiB);
      writeSync(fd, big, 0, big.length, 16 * MiB);
    } finally {
      closeSync(fd);
    }
    execFileSync('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'raw', file, reference]);
  });

  test('32 concurrent reads are matched to their replies', async () => {
    const { file, data } = randomRaw(SIZE);
    const c = await open(await serve(file, 'raw', ['-r']));
    // Unaligned offsets, so no two reads look alike.
    const offsets = Array.from({ length: 32 }, (_, i) => i * 2 * MiB + i * 4099);
    const results = await Promise.all(offsets.map((off) => c.read(off, MiB)));
    for (const [i, off] of offsets.entries()) {
      expect(results[i]!.equals(data.subarray(off, off + MiB)), `read at ${off}`).toBe(true);
    }
    const odd = await c.read(5, 48 * MiB + 123);
    expect(odd.equals(data.subarray(5, 5 + 48 * MiB + 123))).toBe(true);
  });

  test('a server error fails that request only; the connection stays usable', async () => {
    const { file, data } = randomRaw(SIZE);
    const c = await open(await serve(file, 'raw', ['-r']));
    const [before, past, after] = await Promise.allSettled([
      c.read(0, MiB),
      c.read(SIZE - 10, 20),
      c.read(MiB, MiB),
    ]);
    expect(before.status === 'fulfilled' && before.value.equals(data.subarray(0, MiB))).toBe(true);
    expect(after.status === 'fulfilled' && after.value.equals(data.subarray(MiB, 2 * MiB))).toBe(true);
    expect(past.status).toBe('rejected');
    const err = (past as PromiseRejectedResult).reason as NbdError;
    expect(err).toBeInstanceOf(NbdError);
    expect(err.code).toBe('EINVAL');
    expect(err.message).toMatch(/EINVAL/);
    expect((await c.read(SIZE - MiB, MiB)).equals(data.subarray(SIZE - MiB))).toBe(true);
  });

  test('an unknown export name fails connect with a clear message', async () => {
    const server = await serve(qcow2(), 'qcow2', ['-r']);
    const err = await rejection(NbdClient.connect(server.sock, { exportName: 'nope', timeoutMs: 10_000 }));
    expect(err.message).toMatch(/no export "nope"/);
    expect(err.message).toMatch(/NBD_OPT_GO.*NBD_REP_ERR_UNKNOWN/);
    // The server is fine afterwards.
    expect((await open(server)).size).toBe(SIZE);
  });

  test('a server killed mid-session fails the pending read, and every later one', async () => {
    const server = await serve(qcow2(), 'qcow2', ['-r']);
    const c = await open(server);
    // Stopped first, so the read is certainly in flight when the server dies.
    server.child.kill('SIGSTOP');
    const pending = c.read(0, 4 * MiB);
    server.child.kill('SIGKILL');
    const err = await rejection(pending);
    // ECONNRESET or a plain close, depending on what the kernel still had queued.
    expect(err.message).toMatch(/^NBD connection to .* lost: /);
    await expect(c.read(0, 512)).rejects.toThrow(err.message);
    await c.close();
  });

  test('connect fails fast without a server, and times out on a silent one', async () => {
    const missing = path('missing.sock');
    await expect(NbdClient.connect(missing, { exportName: 'disk' })).rejects.toThrow(
      /cannot connect to the NBD server at .*ENOENT/,
    );

    const sock = path('silent.sock');
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(sock, resolve));
    try {
      const started = Date.now();
      await expect(NbdClient.connect(sock, { exportName: 'disk', timeoutMs: 300 })).rejects.toThrow(
        /timed out after 300 ms/,
      );
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      silent.close();
    }
  });
});
