/**
 * `neuroflow appliance stop-vms [--timeout SEC] [--data-dir DIR]`: the host is going down; shut down every
 * guest this host runs (src/node/host-shutdown.ts) and print one line per VM for the console. Run by the
 * image's ::shutdown script (iso/rootfs/usr/lib/neuroflow/shutdown) once `neuroflow serve` has stopped.
 *
 * It refuses while a `neuroflow serve` owns the data dir: that daemon holds the QEMU monitors (QEMU serves
 * one QMP client at a time), and its reconciler would act while the guests go down (write each power-off
 * to etcd, or start a VM whose start is pending).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NfError } from '../errors';
import {
  attachGuests,
  findRunningVms,
  formatResult,
  formatSummary,
  serveOwner,
  shutdownGuests,
} from '../node/host-shutdown';
import { markHostShutdown } from '../node/node';
import { APPLIANCE_DATA_DIR } from './config';

export const DEFAULT_VM_SHUTDOWN_TIMEOUT_SEC = 120;

export interface StopVmsArgs {
  dataDir: string;
  timeoutSec: number;
}

export const STOP_VMS_USAGE =
  'neuroflow appliance stop-vms [--timeout SEC] [--data-dir DIR]   shut down every VM of this host ' +
  `(guest agent or ACPI, forced after SEC, default ${DEFAULT_VM_SHUTDOWN_TIMEOUT_SEC}); serve must be stopped`;

export function parseStopVmsArgs(argv: string[]): StopVmsArgs {
  let values: { timeout?: string; 'data-dir'?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { timeout: { type: 'string' }, 'data-dir': { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new NfError('validation_failed', `${(err as Error).message}\nUsage: ${STOP_VMS_USAGE}`);
  }
  let timeoutSec = DEFAULT_VM_SHUTDOWN_TIMEOUT_SEC;
  if (values.timeout !== undefined) {
    if (!/^\d{1,5}$/.test(values.timeout) || Number(values.timeout) > 86_400)
      throw new NfError(
        'validation_failed',
        `--timeout takes whole seconds (0-86400), got "${values.timeout}"`,
      );
    timeoutSec = Number(values.timeout);
  }
  return { dataDir: values['data-dir'] ?? APPLIANCE_DATA_DIR, timeoutSec };
}

/** Returns 0 when every QEMU is gone (cleanly or forced), 1 when one may still run. */
export async function stopVmsCommand(
  argv: string[],
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<number> {
  const args = parseStopVmsArgs(argv);
  const owner = serveOwner(args.dataDir);
  if (owner)
    throw new NfError(
      'invalid_state',
      `neuroflow serve (pid ${owner}) still manages the VMs of ${args.dataDir}; stop it first (it holds their monitors, and its reconciler would act on the guests' shutdown)`,
    );
  const vms = findRunningVms(join(args.dataDir, 'node', 'vms'));
  if (vms.length === 0) {
    out('no VMs running');
    return 0;
  }
  out(
    `shutting down ${vms.length} VM${vms.length === 1 ? '' : 's'} (${vms.map((v) => v.name).join(', ')}); forced off after ${args.timeoutSec} s`,
  );
  const guests = await attachGuests(vms);
  const results = await shutdownGuests(guests, {
    timeoutMs: args.timeoutSec * 1000,
    onResult: (r) => out(formatResult(r)),
  });
  out(formatSummary(results));
  // the next serve reports these as gone with the host: their controller starts the onBoot ones again
  // (only those whose QEMU is gone: one still running was not shut down with the host)
  for (const r of results)
    if (r.outcome !== 'failed') {
      const vm = vms.find((v) => v.id === r.id);
      if (vm) await markHostShutdown(vm.runDir).catch(() => {});
    }
  return results.some((r) => r.outcome === 'failed') ? 1 : 0;
}
