import { runTool } from '../util/tool';

/**
 * Runs a Ceph tool (ceph, rbd, ceph-authtool, monmaptool, ceph-mon --mkfs, ...) with an argv array,
 * never a shell; `input` goes to its stdin. Resolves with stdout; a failure names the command (not the
 * paths before it) and the last lines of stderr.
 */
export function cephTool(
  bin: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number; what?: string } = {},
): Promise<string> {
  return runTool(bin, args, { ...opts, explain, installHint: 'install Ceph (scripts/setup.sh)' });
}

/**
 * The gist of a Ceph tool's stderr: its own message lines, not the daemon-style log lines
 * (`2026-... 7f.. -1 monclient: ...`) around them, with the usual causes said plainly.
 */
export function explain(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const own = lines.filter((l) => !/^\d{4}-\d\d-\d\dT\S+ [0-9a-f]+ +-?\d+ /.test(l));
  const text = (own.length > 0 ? own : lines).slice(-2).join(' ');
  if (/handle_auth_bad_method|\(1\) Operation not permitted|\(13\) Permission denied/.test(stderr))
    return `authentication refused (wrong user or key, or the user lacks the caps): ${text}`;
  if (/\(110\) Connection timed out|timed out|\(111\) Connection refused/.test(stderr))
    return `no monitor answered (check the monitor addresses and the network): ${text}`;
  return text;
}
