import { connect } from 'node:net';
import { join } from 'node:path';
import type { ApiClient } from '../../src/cli/client';
import { waitFor } from '../../src/util/wait';

/** Types a command on the VM's serial console (the guest runs a root shell there). */
export async function typeOnSerial(dataDir: string, vmId: string, line: string): Promise<void> {
  const path = join(dataDir, 'node', 'vms', vmId, 'serial.sock');
  await new Promise<void>((resolve, reject) => {
    const sock = connect(path, () => {
      sock.end(`${line}\n`, () => resolve());
    });
    sock.once('error', reject);
  });
}

/** Waits until the console log (through the API) matches. */
export async function waitConsole(
  api: ApiClient,
  vm: string,
  pattern: RegExp,
  timeoutMs = 60_000,
): Promise<string> {
  return waitFor(
    async () => {
      const log = await api.request<string>('GET', `/api/v1/vms/${vm}/console-log`);
      return pattern.test(log) ? log : undefined;
    },
    { timeoutMs, intervalMs: 200, what: `console of ${vm} to match ${pattern}` },
  );
}

/**
 * Starts a VM (with `start`) and waits for a boot that happened after it: the console log goes on across
 * starts (rotated only when large), so an older boot's banner must not count.
 */
export async function startAndBoot(
  api: ApiClient,
  vm: string,
  start: () => Promise<unknown>,
  banner: RegExp,
  timeoutMs = 150_000,
): Promise<void> {
  const read = async () => (await api.request<string>('GET', `/api/v1/vms/${vm}/console-log`)) ?? '';
  const before = await read();
  await start();
  await waitFor(
    async () => {
      const log = await read();
      // Only what came after the start counts. The API gives the log's last 256 KiB, so the window
      // moves as the log grows: find where the old tail ends in it now (it can only have moved towards
      // the start; a rotated log has none of it).
      const tail = before.slice(-200);
      const at = tail ? log.lastIndexOf(tail, before.length - tail.length) : -1;
      const fresh = at >= 0 ? log.slice(at + tail.length) : log;
      return banner.test(fresh);
    },
    { timeoutMs, intervalMs: 250, what: `VM ${vm} to boot after its start` },
  );
}

/** Runs a shell command in the guest and returns what it printed between unique markers. */
export async function guestRun(
  api: ApiClient,
  dataDir: string,
  vmId: string,
  cmd: string,
  timeoutMs = 30_000,
): Promise<string> {
  const tag = `nf${Math.random().toString(36).slice(2, 8)}`;
  // The markers are built by the shell (echo A''B), so the echo of the typed line itself never matches.
  await typeOnSerial(dataDir, vmId, `echo ${tag}''-begin; ${cmd}; echo ${tag}''-end`);
  const log = await waitConsole(api, vmId, new RegExp(`${tag}-begin[\\s\\S]*${tag}-end`), timeoutMs);
  const m = new RegExp(`${tag}-begin\\r?\\n([\\s\\S]*?)${tag}-end`).exec(log);
  // Asynchronous guest messages (the DHCP announcement, kernel printk) may land between the markers, as
  // whole lines or glued to the end of a command's output that has no newline.
  return (m?.[1] ?? '')
    .replace(/\r/g, '')
    .split('\n')
    .filter((l) => !/^(NEUROFLOW-TEST-GUEST: |\[\s*\d+\.\d+\] )/.test(l))
    .map((l) => l.replace(/NEUROFLOW-TEST-GUEST: .*$/, ''))
    .join('\n');
}

/**
 * One TCP stream of `kib` KiB of zeros from guest `from` to guest `to` (listening on `port`, reached at
 * `ip`), with busybox nc: the receiver counts what arrives, the sender times the send (its /proc/uptime,
 * 10 ms steps). Undefined when the sender's nc failed (refused, dropped, timed out).
 */
export async function guestStream(
  run: (vm: string, cmd: string) => Promise<string>,
  s: { from: string; to: string; ip: string; port: number; kib: number },
): Promise<{ received: number; seconds: number } | undefined> {
  const file = `/tmp/n${s.port}`;
  const blocks = s.kib % 64 === 0 ? `bs=64k count=${s.kib / 64}` : `bs=1k count=${s.kib}`;
  // the listener's stdin stays open (a background job's would be at EOF, and nc would close early)
  await run(s.to, `rm -f ${file}; (sleep 300 | nc -l -p ${s.port} | wc -c > ${file} &) ; echo listening`);
  const out = await run(
    s.from,
    `a=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero ${blocks} 2>/dev/null | nc -w 3 ${s.ip} ${s.port} && b=$(cut -d' ' -f1 /proc/uptime) && echo "T=$a,$b"`,
  );
  const t = /T=([\d.]+),([\d.]+)/.exec(out);
  if (!t) return undefined;
  const received = await waitFor(
    async () => /^\s*(\d+)\s*$/m.exec(await run(s.to, `cat ${file} 2>/dev/null`))?.[1],
    { timeoutMs: 30_000, intervalMs: 500, what: `${s.to} to count what it received` },
  );
  return { received: Number(received), seconds: Number(t[2]) - Number(t[1]) };
}
