/**
 * What the console's main screen says about the host: management address and URL, cluster state. Read
 * from the appliance config, the live network (`ip -j addr`), the serve log and the local API; the
 * functions that decide what to show are pure.
 */
import { existsSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApplianceConfig } from '../src/appliance/config';
import { type LiveInterface, managementInterface } from '../src/appliance/network';
import type { SshStatus } from '../src/appliance/ssh';

export const API_PORT = 8006;

// ---------------------------------------------------------------------------------------------------------
// The local API

export interface ApiProbe {
  /** ok: /api/v1/health answered; worker: a worker's port 8006 (409, "manage it through a controller"). */
  health: 'ok' | 'worker' | 'down';
  error?: string;
  version?: string;
  /** With the admin token (only on the host that founded the cluster). */
  cluster?: { name: string; mode: string; leader: string | null };
  nodes?: { name: string; state: string; role: string }[];
  /** The integrated Ceph cluster, when this host runs one. */
  ceph?: CephSummary;
}

export interface CephSummary {
  health: string;
  monsInQuorum: number;
  mons: number;
  osdsUp: number;
  osds: number;
  /** The first health check, when health is not OK. */
  check?: string;
  /** Share of objects degraded while Ceph recovers (0..1). */
  degraded?: number;
}

/** One line for the console: `HEALTH_OK, 3/3 monitors in quorum, 6/6 OSDs up`. */
export function cephText(c: CephSummary): string {
  return `${c.health}, ${c.monsInQuorum}/${c.mons} monitors in quorum, ${c.osdsUp}/${c.osds} OSDs up${
    c.degraded ? `, ${(c.degraded * 100).toFixed(1)}% degraded` : ''
  }${c.check ? ` (${c.check})` : ''}`;
}

export interface ApiEndpoint {
  url: string;
  token?: string;
  ca?: string;
}

/** The local API as the CLI finds it (src/cli/client.ts resolveEndpoint): api.url, admin.token, cluster CA. */
export function localEndpoint(dataDir: string): ApiEndpoint {
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8').trim() : undefined);
  const caFile = join(dataDir, 'cluster', 'pki', 'ca.crt');
  const ca = read(caFile);
  const url = read(join(dataDir, 'api.url')) ?? `${ca ? 'https' : 'http'}://127.0.0.1:${API_PORT}`;
  const token = read(join(dataDir, 'admin.token'));
  return { url: url.replace(/\/$/, ''), ...(token ? { token } : {}), ...(ca ? { ca } : {}) };
}

async function getJson(
  ep: ApiEndpoint,
  path: string,
  timeoutMs: number,
  auth: boolean,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${ep.url}${path}`, {
    headers: auth && ep.token ? { authorization: `Bearer ${ep.token}` } : {},
    signal: AbortSignal.timeout(timeoutMs),
    ...(ep.ca ? { tls: { ca: ep.ca } } : {}),
  } as RequestInit);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body };
}

function errorMessage(body: unknown, status: number): string {
  const m = (body as { error?: { message?: unknown } })?.error?.message;
  return typeof m === 'string' ? m : `HTTP ${status}`;
}

/** Health, and with the admin token the cluster and its hosts; never throws. */
export async function probeApi(ep: ApiEndpoint, timeoutMs = 1500): Promise<ApiProbe> {
  let h: { status: number; body: unknown };
  try {
    h = await getJson(ep, '/api/v1/health', timeoutMs, false);
  } catch (err) {
    const e = err as Error;
    return { health: 'down', error: e.name === 'TimeoutError' ? 'no answer' : e.message };
  }
  if (h.status === 409) return { health: 'worker', error: errorMessage(h.body, h.status) };
  if (h.status !== 200) return { health: 'down', error: errorMessage(h.body, h.status) };
  const probe: ApiProbe = { health: 'ok' };
  const v = (h.body as { version?: unknown }).version;
  if (typeof v === 'string') probe.version = v;
  if (!ep.token) return probe;
  try {
    const c = await getJson(ep, '/api/v1/cluster', timeoutMs, true);
    if (c.status === 200) {
      const b = c.body as { name: string; mode: string; leader: string | null };
      probe.cluster = { name: b.name, mode: b.mode, leader: b.leader ?? null };
    }
    const n = await getJson(ep, '/api/v1/nodes', timeoutMs, true);
    if (n.status === 200 && Array.isArray(n.body))
      probe.nodes = (n.body as { name: string; state: string; role: string }[]).map((x) => ({
        name: x.name,
        state: x.state,
        role: x.role,
      }));
    const ceph = await getJson(ep, '/api/v1/ceph', timeoutMs, true);
    const b = ceph.body as {
      configured?: boolean;
      health?: {
        status: string;
        checks: { summary: string }[];
        mons: { total: number; inQuorum: string[] };
        osds: { total: number; up: number };
        recovery?: { degradedRatio: number };
      };
    };
    if (ceph.status === 200 && b.configured && b.health) {
      probe.ceph = {
        health: b.health.status,
        monsInQuorum: b.health.mons.inQuorum.length,
        mons: b.health.mons.total,
        osdsUp: b.health.osds.up,
        osds: b.health.osds.total,
      };
      if (b.health.checks[0]) probe.ceph.check = b.health.checks[0].summary;
      if (b.health.recovery?.degradedRatio) probe.ceph.degraded = b.health.recovery.degradedRatio;
    }
  } catch {}
  return probe;
}

// ---------------------------------------------------------------------------------------------------------
// The serve log

const ERROR_LINE = /(?:^|\s)error \(([a-z_]+)\): (.+)$/;
/** `NeuroFlow 0.1.0 is running.` (serve) or `NeuroFlow is running: URL` (the appliance daemon). */
const RUNNING_LINE = /NeuroFlow (?:\S+ )?is running\b/;

/** The last `error (CODE): MESSAGE` that serve printed after it last said it is running. */
export function lastServeError(log: string): { code: string; message: string } | undefined {
  let found: { code: string; message: string } | undefined;
  for (const line of log.split('\n')) {
    if (RUNNING_LINE.test(line)) found = undefined;
    const m = ERROR_LINE.exec(line.trimEnd());
    if (m) found = { code: m[1]!, message: m[2]! };
  }
  return found;
}

/** The serve log from `offset` (the whole file if it was truncated since), at most the last `max` bytes. */
export async function readLogFrom(
  path: string,
  offset = 0,
  max = 256 * 1024,
): Promise<{ text: string; size: number }> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch {
    return { text: '', size: 0 };
  }
  try {
    const size = (await fh.stat()).size;
    const from = Math.max(size < offset ? 0 : offset, size - max);
    const buf = Buffer.alloc(size - from);
    await fh.read(buf, 0, buf.length, from);
    return { text: buf.toString('utf8'), size };
  } finally {
    await fh.close();
  }
}

/** A log line for a person: a JSON log record becomes its message and fields. */
export function readableLogLine(line: string): string {
  const t = line.trim();
  if (!t.startsWith('{')) return t;
  try {
    const o = JSON.parse(t) as Record<string, unknown>;
    const { time: _t, level, msg, ...rest } = o;
    const extra = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${level && level !== 'info' ? `${String(level)}: ` : ''}${String(msg ?? '')}${extra ? ` (${extra})` : ''}`;
  } catch {
    return t;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The supervisor's status file

/** /run/neuroflow/cluster-status.json, written by `neuroflow appliance serve`. */
export interface SupervisorStatus {
  state: 'idle' | 'waiting' | 'starting' | 'running' | 'error' | 'stopped' | string;
  mode?: string;
  message?: string;
  url?: string;
  since?: string;
}

export function readSupervisorStatus(path: string): SupervisorStatus | undefined {
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as SupervisorStatus;
    return typeof s?.state === 'string' ? s : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// What the main screen shows

export interface ClusterFacts {
  clusterName: string;
  role: 'controller' | 'worker';
  name: string;
}

/** DATA_DIR/cluster/config.json, written by serve once the host founded or joined a cluster. */
export function readClusterFacts(dataDir: string): ClusterFacts | undefined {
  try {
    const c = JSON.parse(readFileSync(join(dataDir, 'cluster', 'config.json'), 'utf8')) as ClusterFacts;
    return typeof c.clusterName === 'string' ? c : undefined;
  } catch {
    return undefined;
  }
}

export type ClusterView =
  | { state: 'none'; lastError?: string }
  | { state: 'creating'; note?: string }
  | { state: 'joining'; note?: string }
  | { state: 'joined'; name: string; role: string; leader?: string | null; apiProblem?: string }
  | { state: 'error'; message: string };

export function clusterView(i: {
  cfg: ApplianceConfig | undefined;
  facts: ClusterFacts | undefined;
  probe: ApiProbe | undefined;
  serveError: { code: string; message: string } | undefined;
  /** The supervisor's own account (cluster-status.json), when it wrote one. */
  supervisor?: SupervisorStatus | undefined;
  /** A failure this console saw (e.g. a refused join, after which the config went back to none). */
  lastError?: string;
}): ClusterView {
  const { cfg, facts, probe, serveError, supervisor } = i;
  if (facts) {
    const apiProblem =
      probe?.health === 'down'
        ? serveError
          ? `${serveError.message}`
          : `management API not answering${probe.error ? ` (${probe.error})` : ''}`
        : undefined;
    return {
      state: 'joined',
      name: probe?.cluster?.name ?? facts.clusterName,
      role: facts.role,
      ...(probe?.cluster ? { leader: probe.cluster.leader } : {}),
      ...(apiProblem ? { apiProblem } : {}),
    };
  }
  const mode = cfg?.cluster.mode ?? 'none';
  if (mode === 'create' || mode === 'join' || mode === 'member') {
    if (supervisor?.state === 'error' && supervisor.message)
      return { state: 'error', message: supervisor.message };
    if (serveError) return { state: 'error', message: serveError.message };
    const note = supervisor?.state === 'waiting' && supervisor.message ? supervisor.message : undefined;
    return { state: mode === 'join' ? 'joining' : 'creating', ...(note ? { note } : {}) };
  }
  return { state: 'none', ...(i.lastError ? { lastError: i.lastError } : {}) };
}

export function clusterText(v: ClusterView): string {
  switch (v.state) {
    case 'none':
      return v.lastError ? `none (last attempt failed: ${v.lastError})` : 'none';
    case 'creating':
      return `creating a cluster...${v.note ? ` (${v.note})` : ''}`;
    case 'joining':
      return `joining a cluster...${v.note ? ` (${v.note})` : ''}`;
    case 'joined':
      return `joined cluster ${v.name} as ${v.role}${v.leader ? ` (leader: ${v.leader})` : ''}${
        v.apiProblem ? `; ${v.apiProblem}` : ''
      }`;
    case 'error':
      return `error: ${v.message}`;
  }
}

export interface ManagementView {
  /** The host's management IP, when it has one. */
  ip?: string;
  url?: string;
  /** "https://IP:8006/ (STATIC)", "not configured" or "no address". */
  text: string;
  /** e.g. "192.168.1.10/24 on eth0.5, static" */
  detail: string;
  warning?: string;
}

export function managementView(cfg: ApplianceConfig | undefined, live: LiveInterface[]): ManagementView {
  if (!cfg) return { text: 'not configured', detail: 'not configured (press F2)' };
  const dev = managementInterface(cfg.network);
  const iface = live.find((l) => l.name === dev);
  if (cfg.network.mode === 'static' && cfg.network.address) {
    const ip = cfg.network.address.split('/')[0]!;
    const url = `https://${ip}:${API_PORT}/`;
    const up = iface?.ipv4.includes(cfg.network.address);
    return {
      ip,
      url,
      text: `${url} (STATIC)`,
      detail: `${cfg.network.address} on ${dev}, static`,
      ...(up ? {} : { warning: `${cfg.network.address} is not on ${dev} yet` }),
    };
  }
  const addr = iface?.ipv4[0];
  if (!addr) return { text: 'no address', detail: `DHCP on ${dev}: no address yet` };
  const ip = addr.split('/')[0]!;
  const url = `https://${ip}:${API_PORT}/`;
  return { ip, url, text: `${url} (DHCP)`, detail: `${addr} on ${dev}, DHCP` };
}

// ---------------------------------------------------------------------------------------------------------
// SSH

/** What the supervisor says about SSH (/run/neuroflow/ssh-status.json), for the Troubleshooting menu. */
export function sshStatusLines(s: SshStatus | undefined): string[] {
  if (!s) return [];
  if (s.running)
    return [
      `dropbear runs (pid ${s.pid ?? '?'}) on ${s.listen.join(', ')}.`,
      ...(s.fingerprint ? [`Host key: ${s.fingerprint}`] : []),
    ];
  if (s.until) return [`Not running: ${s.message}`];
  return [];
}
