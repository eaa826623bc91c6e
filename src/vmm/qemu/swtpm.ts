import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { NfError } from '../../errors';
import { createLogger } from '../../util/log';
import { pidAlive, procCmdline, readPidfile } from '../../util/proc';
import { waitFor } from '../../util/wait';
import type { RunPaths } from './cmdline';

const log = createLogger('swtpm');

/**
 * A VM's TPM 2.0: one swtpm per VM, its state in the VM's run dir (kept while the VM exists), QEMU
 * connected to its control socket. swtpm runs detached like QEMU (a new daemon finds both again) and
 * ends with QEMU (`--terminate`: when QEMU closes the socket). The first start manufactures the TPM
 * (swtpm_setup: endorsement key and its certificate, platform certificate, the SHA-256 PCR bank).
 */
export async function startSwtpm(paths: RunPaths, vmName: string): Promise<number> {
  const fail = (why: string) =>
    new NfError('hypervisor_error', `the TPM of VM "${vmName}" cannot start: ${why}`);
  stopSwtpm(paths); // a leftover of a QEMU that died without closing its socket
  mkdirSync(paths.tpmState, { recursive: true, mode: 0o700 });
  if (!existsSync(join(paths.tpmState, 'tpm2-00.permall'))) {
    const res = await run(
      'swtpm_setup',
      [
        '--tpm2',
        '--tpmstate',
        paths.tpmState,
        '--create-ek-cert',
        '--create-platform-cert',
        '--lock-nvram',
        '--not-overwrite',
      ],
      30_000,
    );
    if (res.code !== 0) {
      rmSync(paths.tpmState, { recursive: true, force: true }); // a half-made TPM is made again next time
      throw fail(`swtpm_setup failed: ${lastLine(res.output) || `exit ${res.code}`}`);
    }
    log.info('TPM manufactured', { vm: vmName });
  }
  rmSync(paths.tpmSocket, { force: true });
  rmSync(paths.tpmPidfile, { force: true });
  const res = await run(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${paths.tpmState},mode=0600`,
      '--ctrl',
      `type=unixio,path=${paths.tpmSocket},mode=0600`,
      '--pid',
      `file=${paths.tpmPidfile}`,
      '--log',
      `file=${paths.tpmLog},level=1`,
      '--terminate',
      '--daemon',
    ],
    10_000,
  );
  if (res.code !== 0)
    throw fail(lastLine(res.output) || lastLine(readLog(paths)) || `swtpm exit ${res.code}`);
  const pid = await waitFor(() => (existsSync(paths.tpmSocket) ? readPidfile(paths.tpmPidfile) : undefined), {
    timeoutMs: 5000,
    what: 'swtpm to listen',
  }).catch(() => {
    stopSwtpm(paths);
    throw fail(lastLine(readLog(paths)) || 'swtpm did not open its socket');
  });
  return pid;
}

/** The swtpm of this run dir, if it is alive (its command line names our socket). */
export function swtpmPid(paths: RunPaths): number | undefined {
  const pid = readPidfile(paths.tpmPidfile);
  if (!pid || !pidAlive(pid)) return undefined;
  return (procCmdline(pid) ?? []).some((a) => a.includes(paths.tpmSocket)) ? pid : undefined;
}

/** Ends the VM's swtpm (it normally ends with QEMU); its state stays. */
export function stopSwtpm(paths: RunPaths): void {
  const pid = swtpmPid(paths);
  if (pid) process.kill(pid, 'SIGKILL');
}

function readLog(paths: RunPaths): string {
  try {
    return readFileSync(paths.tpmLog, 'utf8');
  } catch {
    return '';
  }
}

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .filter((l) => l.trim())
      .at(-1) ?? ''
  );
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.once('error', (e) => resolve({ code: 127, output: `${cmd}: ${e.message}` }));
    child.once('close', (code) => resolve({ code: code ?? 124, output }));
  });
}
