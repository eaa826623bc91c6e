import { NfError } from '../errors';

const USAGE = `Usage:
  neuroflow appliance boot      once at boot (busybox init ::sysinit): modules, data partition, host name,
                                root password, network; nf.answer= on the kernel command line installs
  neuroflow appliance serve     runs neuroflow serve as the appliance config says (init respawns it);
                                SIGHUP: read the config again
  neuroflow appliance status    prints /run/neuroflow/cluster-status.json
  neuroflow appliance stop-vms [--timeout SEC] [--data-dir DIR]
                                host shutdown: every VM of this host shut down through its guest agent or
                                the ACPI power button, forced off after SEC (default 120); serve must be
                                stopped first (the ::shutdown script runs it)
  neuroflow install --disk /dev/X [--answer FILE] [--yes]`;

/** `neuroflow appliance boot|serve|status|stop-vms` (run by the image's init; see iso/README.md). */
export async function applianceCommand(argv: string[]): Promise<number> {
  const [sub] = argv;
  switch (sub) {
    case 'boot':
      return (await import('./boot')).runBoot();
    case 'serve':
      return (await import('./serve')).runApplianceServe();
    case 'status':
      return (await import('./serve')).printStatus();
    case 'stop-vms':
      return (await import('./stop-vms')).stopVmsCommand(argv.slice(1));
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(`${USAGE}\n`);
      return sub === undefined ? 2 : 0;
    default:
      throw new NfError('validation_failed', `unknown appliance command "${sub}"\n${USAGE}`);
  }
}

/** `neuroflow install --disk /dev/X [--answer FILE] [--yes]`. */
export async function installCommand(argv: string[]): Promise<number> {
  return (await import('./install')).installCommand(argv);
}
