import { spawn } from 'node:child_process';
import { NfError } from '../errors';

export interface ToolOptions {
  /** Written to its stdin (else stdin is empty). */
  input?: string;
  timeoutMs?: number;
  /** Added to the environment. */
  env?: Record<string, string>;
  /** How a failure names the command (default: the binary). */
  what?: string;
  /** Turns stderr into the failure's text (default: its last two lines). */
  explain?: (stderr: string) => string;
  /** Said when the binary cannot run ("install X (scripts/setup.sh)"). */
  installHint?: string;
}

/**
 * Runs a tool with an argv array, never a shell; resolves with its stdout. A failure is `unavailable`
 * (`timeout` when it ran out of time) naming the command and what its stderr said.
 */
export function runTool(bin: string, args: string[], opts: ToolOptions = {}): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: timeoutMs,
      ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', (e) =>
      reject(
        new NfError(
          'unavailable',
          `cannot run ${bin}: ${e.message}${opts.installHint ? `; ${opts.installHint}` : ''}`,
        ),
      ),
    );
    child.once('close', (code, signal) => {
      if (code === 0) return resolve(out);
      const said = (opts.explain ?? lastLines)(err);
      const why = signal ? `timed out after ${timeoutMs} ms` : said || `exit ${code}`;
      reject(new NfError(signal ? 'timeout' : 'unavailable', `${opts.what ?? bin} failed: ${why}`));
    });
    child.stdin.end(opts.input ?? '');
  });
}

function lastLines(stderr: string): string {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-2)
    .join(' ');
}
