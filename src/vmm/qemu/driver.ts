import { spawn } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { NfError } from '../../errors';
import type { NatNetwork } from '../../network/nat';
import { createLogger } from '../../util/log';
import { pidAlive, procCmdline, readPidfile } from '../../util/proc';
import { waitFor } from '../../util/wait';
import type { Accelerator, VmInstance, VmmDriver, VmRunSpec } from '../types';
import { buildQemuConfig, nicSocketPath, renderArgv, runPaths, tapName } from './cmdline';
import { QemuInstance, stderrReason } from './instance';
import { QmpClient } from './qmp';
import { writeSeedIso } from './seed';
import { startSwtpm, stopSwtpm } from './swtpm';

const log = createLogger('qemu');

export interface QemuDriverOptions {
  binary: string;
  accel: Accelerator;
  /** The nat network's backend; without it a VM with a nat NIC does not start. */
  nat?: NatNetwork;
  /** OVN on this host: NICs on overlay networks are taps on its integration bridge. */
  ovn?: OvnPlug;
}

/** Puts an OVN NIC's tap on the integration bridge as its logical port, and takes it off. */
export interface OvnPlug {
  plug(tap: string, port: string, central?: string): Promise<void>;
  unplug(tap: string): Promise<void>;
}

/**
 * Starts QEMU detached (its own session, output to files in the run dir, no pipes to us) so that the
 * guest outlives the daemon; a new daemon finds it again through the pidfile and the QMP socket.
 */
export class QemuDriver implements VmmDriver {
  readonly name = 'qemu';

  constructor(private readonly opts: QemuDriverOptions) {}

  /** Takes a VM's OVN NICs' taps off the integration bridge and deletes them (its QEMU is gone). */
  async release(spec: VmRunSpec): Promise<void> {
    for (const n of spec.nics)
      if (n.type === 'ovn') await this.opts.ovn?.unplug(tapName(spec.id, n.id)).catch(() => {});
  }

  async start(spec: VmRunSpec, runDir: string, opts: { incoming?: boolean } = {}): Promise<VmInstance> {
    const paths = runPaths(runDir);
    mkdirSync(runDir, { recursive: true, mode: 0o700 });
    // Never start over a live QEMU of this VM (a second process on the same disks).
    const old = readPidfile(paths.pidfile);
    if (old && pidAlive(old) && (procCmdline(old) ?? []).includes(spec.id)) {
      throw new NfError('invalid_state', `VM "${spec.name}" already has a QEMU process (pid ${old})`);
    }
    const nics = spec.nics.filter((n) => n.type !== 'ovn').map((n) => n.id);
    if (nics.length > 0) {
      if (!this.opts.nat)
        throw new NfError('unavailable', `this host has no nat network backend for VM "${spec.name}"`);
      await this.opts.nat.ensureFirewall(); // fail closed: no guest network without it
    }
    const ovnNics = spec.nics.filter((n) => n.type === 'ovn');
    if (ovnNics.length > 0) {
      if (!this.opts.ovn) throw new NfError('unavailable', `this host has no OVN for VM "${spec.name}"`);
      try {
        for (const n of ovnNics) {
          if (!n.port) throw new NfError('internal', `NIC ${n.id} of VM "${spec.name}" names no OVN port`);
          await this.opts.ovn.plug(tapName(spec.id, n.id), n.port, n.central ?? '');
        }
      } catch (err) {
        await this.release(spec);
        throw err;
      }
    }
    const sockets = nics.map((id) => nicSocketPath(paths, id));
    for (const stale of [paths.qmp, paths.serial, paths.pidfile, paths.vnc, ...sockets])
      rmSync(stale, { force: true });
    rotateConsoleLog(paths.consoleLog);
    const stderrPath = paths.qemuLog;
    const config = buildQemuConfig(spec, paths, this.opts);
    // the guest's state comes from the source: QEMU waits for migrate-incoming (and stays paused after)
    if (opts.incoming) config.options.push({ flag: '-incoming', value: 'defer' });
    const argv = renderArgv(config);
    if (spec.cloudInit) await writeSeedIso(paths, spec.cloudInit);
    if (spec.tpm) await startSwtpm(paths, spec.name);
    const fd = openSync(stderrPath, 'w', 0o600);
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (e) => resolve(e));
    });
    if (spawned) {
      if (spec.tpm) stopSwtpm(paths);
      await this.release(spec);
      throw new NfError('hypervisor_error', `cannot run ${argv[0]}: ${spawned.message}`);
    }
    child.unref();
    const pid = child.pid!;
    const exitedEarly = new Promise<never>((_, reject) => {
      child.once('exit', (code, signal) => {
        const reason = stderrReason(stderrPath) ?? `exit code ${code ?? signal}`;
        reject(new NfError('hypervisor_error', `QEMU failed to start VM "${spec.name}": ${reason}`));
      });
    });
    exitedEarly.catch(() => {});
    let qmp: QmpClient | undefined;
    try {
      qmp = await Promise.race([QmpClient.connect(paths.qmp, { timeoutMs: 15_000 }), exitedEarly]);
      const startedAt = new Date().toISOString();
      writeFileSync(join(runDir, 'started-at'), startedAt);
      const instance = new QemuInstance(spec.id, pid, startedAt, qmp, stderrPath, child, {
        runDir,
        nat: this.opts.nat,
        ovn: this.opts.ovn,
      });
      // QEMU is still paused (-S): hand each NIC's connection to its passt before the guest runs.
      for (const id of nics)
        await Promise.race([this.opts.nat!.attach(nicSocketPath(paths, id), runDir, id), exitedEarly]);
      // I/O limits and pulled cables, before the guest runs
      for (const d of spec.disks)
        if (d.limits) await Promise.race([instance.tune({ disk: d.id, limits: d.limits }), exitedEarly]);
      for (const n of spec.nics)
        if (n.linkDown) await Promise.race([instance.tune({ nic: n.id, linkUp: false }), exitedEarly]);
      if (!opts.incoming) await Promise.race([qmp.execute('cont'), exitedEarly]);
      log.info(opts.incoming ? 'VM waits for its migration' : 'VM started', {
        id: spec.id,
        name: spec.name,
        pid,
      });
      return instance;
    } catch (err) {
      qmp?.close();
      this.opts.nat?.stop(runDir, nics);
      if (spec.tpm) stopSwtpm(paths);
      await this.release(spec);
      if (err instanceof NfError) {
        if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
        throw err;
      }
      // The monitor usually fails first (socket reset) when QEMU exits at start; its stderr says why.
      const exited = await waitFor(() => child.exitCode !== null || child.signalCode !== null, {
        timeoutMs: 3000,
        what: 'QEMU to exit',
      }).then(
        () => true,
        () => false,
      );
      if (!exited && pidAlive(pid)) process.kill(pid, 'SIGKILL');
      const reason = (exited && stderrReason(stderrPath)) || (err as Error).message;
      throw new NfError('hypervisor_error', `QEMU failed to start VM "${spec.name}": ${reason}`);
    }
  }

  async attach(runDir: string, id: string): Promise<VmInstance | undefined> {
    const paths = runPaths(runDir);
    const pid = readPidfile(paths.pidfile);
    if (!pid || !pidAlive(pid)) return undefined;
    // The pid could have been reused by an unrelated process after a host reboot: check it is our VM.
    const argv = procCmdline(pid) ?? [];
    if (!argv.includes(id)) return undefined;
    const qmp = await QmpClient.connect(paths.qmp, { timeoutMs: 5000 });
    const startedAt = readStartedAt(runDir);
    log.info('re-attached to running VM', { id, pid });
    return new QemuInstance(id, pid, startedAt, qmp, paths.qemuLog, undefined, {
      runDir,
      nat: this.opts.nat,
      ovn: this.opts.ovn,
    });
  }
}

function readStartedAt(runDir: string): string {
  try {
    return readFileSync(join(runDir, 'started-at'), 'utf8').trim();
  } catch {
    return new Date().toISOString();
  }
}

/** Keeps one previous console log; the serial output of a long-lived guest must not fill the disk. */
function rotateConsoleLog(path: string, maxBytes = 8 * 1024 ** 2): void {
  try {
    if (statSync(path).size > maxBytes) renameSync(path, `${path}.1`);
  } catch {
    // no log yet
  }
}
