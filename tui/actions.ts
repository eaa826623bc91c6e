/**
 * What the console's screens do, without drawing: each action changes the appliance config and then asks
 * the supervisor to apply it (SIGHUP through its pidfile), or runs a command through the runner. With
 * `--dry-run` the runner logs commands and signals to DATA_DIR/dry-run.log and files are written under a
 * scratch root (DATA_DIR/dry-run-root), so every path works without an appliance.
 */
import { hostname as osHostname } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type ApplianceConfig,
  hashRootPassword,
  readConfig,
  verifyRootPassword,
  writeConfig,
} from '../src/appliance/config';
import {
  applyNetwork,
  type LiveInterface,
  liveAddresses,
  liveGateway,
  managementInterface,
  readResolvConf,
  type StepResult,
} from '../src/appliance/network';
import { readSshStatus, SSH_STATUS, type SshStatus } from '../src/appliance/ssh';
import {
  type ApplianceServices,
  applianceServices,
  applyHostname,
  applyRootPassword,
  dryRunRunner,
  type PingOutcome,
  pingHost,
  type RestartOutcome,
  type Runner,
  realRunner,
  type SystemPaths,
  systemPaths,
} from '../src/appliance/system';
import { NfError } from '../src/errors';
import {
  configAfterFailedJoin,
  configAfterJoin,
  configForCreate,
  configForJoin,
  configFromNetworkForm,
  configWithPassword,
  configWithSsh,
  passwordFromForm,
  type Values,
} from './forms';
import {
  type ApiProbe,
  type ClusterFacts,
  clusterView,
  lastServeError,
  localEndpoint,
  managementView,
  probeApi,
  readableLogLine,
  readClusterFacts,
  readLogFrom,
  readSupervisorStatus,
  type SupervisorStatus,
} from './status';

export interface ConsoleEnv {
  dataDir: string;
  /** `/` on the appliance; a scratch directory for dry runs and tests. */
  root: string;
  dryRun: boolean;
  /** DATA_DIR/dry-run.log in a dry run. */
  dryRunLog?: string;
  runner: Runner;
  services: ApplianceServices;
  paths: SystemPaths;
}

export function consoleEnv(opts: { dataDir: string; root?: string; dryRun?: boolean }): ConsoleEnv {
  const dataDir = resolve(opts.dataDir);
  const dryRun = !!opts.dryRun;
  const root = resolve(opts.root ?? (dryRun ? join(dataDir, 'dry-run-root') : '/'));
  if (dryRun && root === '/')
    throw new NfError(
      'validation_failed',
      '--dry-run writes system files under --root: give it a scratch directory, not /',
    );
  const dryRunLog = dryRun ? join(dataDir, 'dry-run.log') : undefined;
  const runner = dryRunLog ? dryRunRunner(dryRunLog) : realRunner();
  return {
    dataDir,
    root,
    dryRun,
    ...(dryRunLog ? { dryRunLog } : {}),
    runner,
    services: applianceServices({ root, runner }),
    paths: systemPaths(root),
  };
}

export function loadConfig(env: ConsoleEnv): ApplianceConfig | undefined {
  return readConfig(env.dataDir);
}

// ---------------------------------------------------------------------------------------------------------
// Status

export interface HostStatus {
  hostname: string;
  cfg: ApplianceConfig | undefined;
  /** A config file that does not parse: shown instead of silently replaced. */
  configError?: string;
  live: LiveInterface[];
  probe: ApiProbe;
  facts: ClusterFacts | undefined;
  management: ReturnType<typeof managementView>;
  cluster: ReturnType<typeof clusterView>;
  sshUntil?: Date;
  /** What the supervisor says SSH does (dropbear running, its host key, why not). */
  ssh?: SshStatus;
}

export async function gatherStatus(env: ConsoleEnv, lastError?: string): Promise<HostStatus> {
  let cfg: ApplianceConfig | undefined;
  let configError: string | undefined;
  try {
    cfg = loadConfig(env);
  } catch (err) {
    configError = (err as Error).message;
  }
  const [live, probe, log] = await Promise.all([
    liveAddresses(env.runner),
    probeApi(localEndpoint(env.dataDir)),
    readLogFrom(env.paths.serveLog, 0, 64 * 1024),
  ]);
  const facts = readClusterFacts(env.dataDir);
  const until = cfg?.ssh.enabledUntil ? new Date(cfg.ssh.enabledUntil) : undefined;
  const ssh = readSshStatus(join(env.root, SSH_STATUS));
  return {
    hostname: cfg?.hostname ?? osHostname(),
    cfg,
    ...(configError ? { configError } : {}),
    live,
    probe,
    facts,
    management: managementView(cfg, live),
    cluster: clusterView({
      cfg,
      facts,
      probe,
      serveError: lastServeError(log.text),
      supervisor: readSupervisorStatus(env.paths.clusterStatus),
      ...(lastError ? { lastError } : {}),
    }),
    ...(until && until.getTime() > Date.now() ? { sshUntil: until } : {}),
    ...(ssh ? { ssh } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Changes

export interface ActionReport {
  /** What happened, one line each, for the result dialog. */
  lines: string[];
  ok: boolean;
}

function restartLine(r: RestartOutcome): string {
  return r.signalled ? `${r.message}.` : `Note: ${r.message}.`;
}

function stepLines(steps: StepResult[]): string[] {
  const failed = steps.filter((s) => !s.ok);
  if (failed.length === 0) return [`Network: ${steps.length} steps applied.`];
  return failed.map((s) => `Failed: ${s.argv.slice(0, 6).join(' ')}: ${s.error}`);
}

/** The network form: config written, host name and network applied, management service restarted. */
export async function saveNetwork(env: ConsoleEnv, values: Values): Promise<ActionReport> {
  const cfg = configFromNetworkForm(values, loadConfig(env));
  await writeConfig(cfg, env.dataDir);
  const lines = ['Saved the management network settings.'];
  const h = await applyHostname(cfg.hostname, env);
  if (h.code !== 0) lines.push(`Failed: hostname ${cfg.hostname}: ${h.stderr.trim() || `exit ${h.code}`}`);
  const steps = await applyNetwork(cfg, { root: env.root, runner: env.runner });
  lines.push(...stepLines(steps));
  lines.push(restartLine(await env.services.restartManagement()));
  return { lines, ok: h.code === 0 && steps.every((s) => s.ok) };
}

/** The password form: both hashes into the config, the shadow entry, then the management service. */
export async function savePassword(env: ConsoleEnv, values: Values): Promise<ActionReport> {
  const password = passwordFromForm(values);
  const hashes = hashRootPassword(password);
  const cfg = configWithPassword(loadConfig(env), hashes);
  await writeConfig(cfg, env.dataDir);
  await applyRootPassword(hashes.shadow, env);
  await env.runner.note(`wrote the root entry of ${env.paths.shadow}`);
  const r = await env.services.restartManagement();
  return { lines: ['The root password is set.', restartLine(r)], ok: true };
}

export function passwordRequired(env: ConsoleEnv): boolean {
  try {
    return !!loadConfig(env)?.rootPassword;
  } catch {
    return false;
  }
}

export function checkLogin(env: ConsoleEnv, password: string): boolean {
  return verifyRootPassword(password, loadConfig(env)?.rootPassword);
}

/** SSH on for N minutes, or off: the supervisor starts/stops dropbear; the API and etcd keep running. */
export async function enableSsh(env: ConsoleEnv, minutes: number | null): Promise<ActionReport> {
  const cfg = configWithSsh(loadConfig(env), minutes);
  await writeConfig(cfg, env.dataDir);
  // A SIGHUP that only changes `ssh` does not restart serve (src/appliance/serve.ts).
  const r = await env.services.restartManagement();
  const what =
    minutes === null
      ? 'SSH is turned off (open sessions stay until they end).'
      : `SSH is on until ${new Date(cfg.ssh.enabledUntil!).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' })}: root with the root password, port 22.`;
  const applied = r.signalled
    ? `Asked the management service (pid ${r.pid}) to apply it; the API keeps running.`
    : restartLine(r);
  return { lines: [what, applied], ok: true };
}

export async function restartServices(env: ConsoleEnv): Promise<ActionReport> {
  const r = await env.services.restartManagement();
  return { lines: [restartLine(r)], ok: r.signalled };
}

export async function shutdown(env: ConsoleEnv, kind: 'poweroff' | 'reboot'): Promise<ActionReport> {
  const r = await env.services.shutdown(kind);
  if (r.code !== 0) return { lines: [`${kind} failed: ${r.stderr.trim() || `exit ${r.code}`}`], ok: false };
  return {
    lines: [
      env.dryRun ? `Dry run: logged "${kind}".` : kind === 'poweroff' ? 'Shutting down...' : 'Restarting...',
    ],
    ok: true,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Cluster: create or join, then follow serve until it is in (or says why not)

export type ClusterKind = 'create' | 'join';

export interface ClusterStart {
  kind: ClusterKind;
  /** Where the serve log ended before the restart: only later lines count. */
  logOffset: number;
  restart: RestartOutcome;
  startedAt: number;
}

export async function startCluster(
  env: ConsoleEnv,
  kind: ClusterKind,
  values: Values,
): Promise<ClusterStart> {
  const startedAt = Date.now();
  const base = loadConfig(env);
  const cfg = kind === 'create' ? configForCreate(base, values) : configForJoin(base, values);
  const { size } = await readLogFrom(env.paths.serveLog, 0, 0);
  await writeConfig(cfg, env.dataDir);
  const restart = await env.services.restartManagement();
  return { kind, logOffset: size, restart, startedAt };
}

export type ClusterProgress =
  | { done: false; message: string }
  | { done: true; ok: true; message: string }
  | { done: true; ok: false; message: string };

/**
 * Where a create or join stands, from what serve wrote since the restart, the cluster facts it keeps in
 * the data dir and the local API: a refused join ends serve with `error (CODE): MESSAGE`; success leaves
 * DATA_DIR/cluster/config.json and an API (or a worker's port) that answers, and, where this host can
 * read the host list (the admin token), this host listed ready.
 */
export function clusterProgress(i: {
  kind: ClusterKind;
  logSince: string;
  facts: ClusterFacts | undefined;
  probe: ApiProbe | undefined;
  hostname: string;
  /** The supervisor's status, when written after the restart. */
  supervisor?: SupervisorStatus | undefined;
}): ClusterProgress {
  const sup = i.supervisor;
  const err =
    sup?.state === 'error' && sup.message
      ? { code: 'supervisor', message: sup.message }
      : lastServeError(i.logSince);
  if (err && !i.facts) return { done: true, ok: false, message: err.message };
  const verb = i.kind === 'create' ? 'created' : 'joined';
  const probe = i.probe;
  if (i.facts && probe && probe.health !== 'down') {
    const me = probe.nodes?.find((n) => n.name === (i.facts?.name ?? i.hostname));
    if (probe.nodes && me?.state !== 'ready')
      return {
        done: false,
        message: `${verb} cluster ${i.facts.clusterName}; waiting for this host to be ready (${me?.state ?? 'not listed yet'})`,
      };
    return { done: true, ok: true, message: `${verb} cluster ${i.facts.clusterName} as ${i.facts.role}` };
  }
  if (err) return { done: false, message: err.message };
  if (sup?.message && (sup.state === 'waiting' || sup.state === 'starting'))
    return { done: false, message: sup.message };
  const last = i.logSince
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .pop();
  if (last) return { done: false, message: readableLogLine(last) };
  return {
    done: false,
    message: i.kind === 'create' ? 'waiting for the management service...' : 'waiting for serve to join...',
  };
}

export async function pollCluster(env: ConsoleEnv, start: ClusterStart): Promise<ClusterProgress> {
  const [{ text }, probe] = await Promise.all([
    readLogFrom(env.paths.serveLog, start.logOffset),
    probeApi(localEndpoint(env.dataDir)),
  ]);
  const cfg = loadConfig(env);
  const sup = readSupervisorStatus(env.paths.clusterStatus);
  const p = clusterProgress({
    kind: start.kind,
    logSince: text,
    facts: readClusterFacts(env.dataDir),
    probe,
    hostname: cfg?.hostname ?? osHostname(),
    // Only what the supervisor wrote after this restart counts.
    supervisor: sup?.since && Date.parse(sup.since) >= start.startedAt - 1000 ? sup : undefined,
  });
  if (p.done && start.kind === 'join' && cfg?.cluster.mode === 'join') {
    // In: the token is spent, serve carries on with the data dir. Refused: back to none so the
    // supervisor does not retry a token that will not work.
    await writeConfig(p.ok ? configAfterJoin(cfg) : configAfterFailedJoin(cfg), env.dataDir);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Logs and the network test

export async function serveLogLines(env: ConsoleEnv): Promise<string[]> {
  const { text, size } = await readLogFrom(env.paths.serveLog);
  if (size === 0) return [`(${env.paths.serveLog} is empty or missing)`];
  return text.split('\n').map(readableLogLine);
}

export async function dmesgLines(env: ConsoleEnv): Promise<string[]> {
  const r = await env.runner.read(['dmesg'], { timeoutMs: 5000 });
  if (r.code !== 0) return [`dmesg failed: ${r.stderr.trim() || `exit ${r.code}`}`];
  return r.stdout.split('\n');
}

export interface NetworkTest {
  /** Gateway and DNS servers to ping (from the config, or from the live DHCP state). */
  targets: { role: string; ip: string }[];
  /** Problems found before pinging (no config, no address). */
  notes: string[];
}

export async function networkTestPlan(env: ConsoleEnv): Promise<NetworkTest> {
  const cfg = loadConfig(env);
  if (!cfg) return { targets: [], notes: ['The management network is not configured (F2).'] };
  const notes: string[] = [];
  const live = await liveAddresses(env.runner);
  const mv = managementView(cfg, live);
  const dev = managementInterface(cfg.network);
  if (!live.some((l) => l.name === dev && l.ipv4.length > 0)) notes.push(`${dev} has no IPv4 address.`);
  else notes.push(`${dev}: ${mv.detail}`);
  let gateway = cfg.network.mode === 'static' ? cfg.network.gateway : undefined;
  gateway ??= await liveGateway(env.runner);
  const dns = cfg.network.dns.length > 0 ? cfg.network.dns : readResolvConf(env.root);
  const targets = [
    ...(gateway ? [{ role: 'gateway', ip: gateway }] : []),
    ...dns.map((ip) => ({ role: 'DNS server', ip })),
  ];
  if (!gateway) notes.push('No default gateway.');
  if (dns.length === 0) notes.push('No DNS servers.');
  return { targets, notes };
}

export function ping(env: ConsoleEnv, ip: string): Promise<PingOutcome> {
  return pingHost(ip, env.runner);
}
