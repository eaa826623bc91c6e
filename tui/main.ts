import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { APPLIANCE_DATA_DIR } from '../src/appliance/config';
import { consoleEnv } from './actions';

const USAGE = `neuroflow console [--data-dir DIR] [--root DIR] [--dry-run]

The appliance's console (like the ESXi DCUI): host name, management URL and cluster state; F2 customizes
the system (root password, management network, create or join a cluster, logs, troubleshooting), F12
shuts down or restarts. Runs on tty1 and ttyS0 with TERM=linux.

  --data-dir DIR  the appliance data dir (default ${APPLIANCE_DATA_DIR}): config, cluster, API token
  --root DIR      where system files are (default /; with --dry-run DATA_DIR/dry-run-root)
  --dry-run       change nothing on this system: commands and signals are logged to DATA_DIR/dry-run.log
  --check-terminal  print which terminfo blessed uses for $TERM (the system's, or its own built into
                  the binary) and exit
`;

/** Which terminfo blessed loads for TERM: the system's, or its own (in the binary under /$blessed-usr/). */
async function checkTerminal(): Promise<number> {
  const term = process.env.TERM || 'linux';
  const blessed = (await import('blessed')).default as unknown as {
    Tput: new (o: {
      terminal: string;
    }) => {
      terminal: string;
      error: Error | null;
      info?: { file?: string };
      strings: Record<string, unknown>;
    };
  };
  try {
    const t = new blessed.Tput({ terminal: term });
    const caps = Object.keys(t.strings ?? {}).length;
    process.stdout.write(
      `TERM=${term}: terminal ${t.terminal}, terminfo ${t.info?.file ?? '(none)'}, ${caps} capabilities${t.error ? ` (${t.error.message})` : ''}\n`,
    );
    return caps > 0 ? 0 : 1;
  } catch (err) {
    process.stdout.write(`TERM=${term}: no terminfo: ${(err as Error).message}\n`);
    return 1;
  }
}

/**
 * A serial console (ttyS0) often reports a 0x0 window, which blessed turns into a 1x1 screen: give the
 * terminal the classic 80x24 (`stty` on our own tty) when it does not know its size.
 */
function ensureTerminalSize(): void {
  if (!process.stdout.isTTY || (process.stdout.columns > 0 && process.stdout.rows > 0)) return;
  spawnSync('stty', ['rows', '24', 'cols', '80'], { stdio: ['inherit', 'ignore', 'ignore'] });
}

/** `neuroflow console`: the DCUI-style console. Returns when the user quits (Ctrl-C). */
export async function consoleCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string', default: APPLIANCE_DATA_DIR },
      root: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      'check-terminal': { type: 'boolean', default: false },
    },
  });
  if (values['check-terminal']) return checkTerminal();
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const env = consoleEnv({
    dataDir: values['data-dir'],
    dryRun: values['dry-run'],
    ...(values.root ? { root: values.root } : {}),
  });
  ensureTerminalSize();
  // blessed is loaded only here: the other commands of the binary never pay for it.
  const { App } = await import('./app');
  const app = new App(env);
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) process.on(sig, () => app.stop(0));
  return app.run();
}
