import { isIP } from 'node:net';
import { type JoinTokenRecord, keys, type NodeRecord, type NodeRole } from '../controller/records';
import { NfError, toNfError } from '../errors';
import type { EtcdStore, Versioned } from '../store/store';
import { createLogger } from '../util/log';
import {
  type CaFiles,
  CONTROLLER_SAN,
  certInfo,
  createCsr,
  fingerprint,
  generateKey,
  issueHostCert,
} from './pki';
import { newJoinToken, parseJoinToken, secretMatches } from './token';

const log = createLogger('join');

/** How many hosts hold an etcd member and serve the API. */
export const MAX_CONTROLLERS = 3;

export interface JoinRequest {
  tokenId: string;
  secret: string;
  name: string;
  address: string;
  csr: string;
  apiPort: number;
  grpcPort: number;
  etcdClientPort: number;
  etcdPeerPort: number;
}

export interface JoinResponse {
  clusterName: string;
  role: NodeRole;
  caPem: string;
  certPem: string;
  /** Controllers sign later joins: they receive the CA key, over this pinned TLS connection only. */
  caKeyPem?: string;
  /** For a controller: the etcd cluster it joins as a learner. */
  etcd?: { initialCluster: string; clientUrls: string[] };
  /** gRPC addresses of the controllers (heartbeats go there). */
  controllers: { name: string; api?: string; grpc?: string }[];
}

export interface TokenView {
  id: string;
  expiresAt: string;
  createdAt: string;
  createdBy: string;
  description?: string;
  role: NodeRole;
  status: 'valid' | 'used' | 'expired';
  usedAt?: string;
  usedBy?: string;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * The controller side of joining: join tokens (single use, expiring, revocable) and the exchange that
 * admits a host. A refused join changes nothing: the token is consumed in the same etcd transaction that
 * records the host, and an etcd member added for it is removed again when that transaction fails.
 */
export class JoinService {
  constructor(
    private readonly store: EtcdStore,
    private readonly ca: CaFiles,
    private readonly clusterName: string,
    /** HTTPS API addresses of the controllers, put into tokens. */
    private readonly controllerApis: () => Promise<string[]>,
  ) {}

  async createToken(opts: { ttlSec: number; user: string; description?: string; role?: NodeRole }) {
    const role = opts.role ?? 'worker';
    if (role === 'controller') await this.roomForController();
    const t = newJoinToken({
      controllers: await this.controllerApis(),
      caFingerprint: fingerprint(this.ca.certPem),
      ttlSec: opts.ttlSec,
    });
    const rec: JoinTokenRecord = {
      id: t.id,
      secretHash: t.secretHash,
      expiresAt: t.expiresAt,
      createdAt: new Date().toISOString(),
      createdBy: opts.user,
      role,
    };
    if (opts.description) rec.description = opts.description;
    await this.store.txn({
      when: [{ key: keys.joinToken(t.id), absent: true }],
      put: [{ key: keys.joinToken(t.id), value: rec }],
    });
    return { token: t.token, ...view(rec) };
  }

  async listTokens(): Promise<TokenView[]> {
    const all = await this.store.list<JoinTokenRecord>(keys.joinTokens);
    return all.map((t) => view(t.value)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async getToken(id: string): Promise<TokenView> {
    const rec = await this.store.get<JoinTokenRecord>(keys.joinToken(id));
    if (!rec) throw new NfError('not_found', `no join token with id ${id}`);
    return view(rec.value);
  }

  async revokeToken(id: string): Promise<void> {
    await this.getToken(id);
    await this.store.txn({ delete: [keys.joinToken(id)] });
  }

  /** Refuses a controller token or join when the cluster has its three controllers (etcd members). */
  private async roomForController(): Promise<void> {
    const members = (await this.store.withOwnClient((c) => c.cluster.memberList({}))).members ?? [];
    if (members.length >= MAX_CONTROLLERS)
      throw new NfError(
        'invalid_state',
        `the cluster has ${members.length} controllers (etcd members), the most it takes; join the host as a worker`,
      );
  }

  /**
   * Admits a host: checks the token and the request, signs its certificate, adds its etcd member.
   * `from` is the address the request came from: the certificate is only issued for that address.
   */
  async join(req: JoinRequest, from?: string): Promise<JoinResponse> {
    validateRequest(req);
    if (from !== undefined && normaliseIp(from) !== normaliseIp(req.address))
      throw new NfError(
        'forbidden',
        `the join request came from ${from} but asks for a certificate for ${req.address}; a host joins from its own address`,
      );
    const tok = await this.store.get<JoinTokenRecord>(keys.joinToken(req.tokenId));
    // One message for unknown, revoked and wrong secret: a guesser learns nothing.
    if (!tok || !secretMatches(req.secret, tok.value.secretHash))
      throw new NfError('unauthenticated', 'the join token is not valid (unknown, revoked or wrong secret)');
    if (tok.value.usedAt) {
      const again = await this.retried(req, tok.value);
      if (again) return again;
      throw new NfError(
        'unauthenticated',
        `the join token was already used (by ${tok.value.usedBy} at ${tok.value.usedAt}); tokens are single use: create a new one`,
      );
    }
    if (Date.parse(tok.value.expiresAt) <= Date.now())
      throw new NfError(
        'unauthenticated',
        `the join token expired at ${tok.value.expiresAt}; create a new one on a controller`,
      );
    if (await this.store.get(keys.node(req.name)))
      throw new NfError('already_exists', `a host named "${req.name}" is already in the cluster`);
    const nodes = await this.store.list<NodeRecord>(keys.nodes);
    if (nodes.some((n) => n.value.addresses.includes(req.address)))
      throw new NfError('already_exists', `a host with address ${req.address} is already in the cluster`);

    // The role the admin chose for this token; a controller only while the cluster has room for one.
    const role: NodeRole = tok.value.role ?? 'worker';
    if (role === 'controller') await this.roomForController();
    const certPem = await issueHostCert(this.ca, req.csr, {
      name: req.name,
      role,
      dns: role === 'controller' ? [CONTROLLER_SAN] : [],
      ips: [req.address],
    });
    const record: NodeRecord = {
      name: req.name,
      role,
      grpcAddress: hostPort(req.address, req.grpcPort),
      addresses: [req.address],
      maintenance: false,
      joinedAt: new Date().toISOString(),
    };
    let addedMember: string | undefined;
    let initialCluster: string | undefined;
    if (role === 'controller') {
      record.apiAddress = hostPort(req.address, req.apiPort);
      const peerUrl = `https://${hostPort(req.address, req.etcdPeerPort)}`;
      const clientUrl = `https://${hostPort(req.address, req.etcdClientPort)}`;
      const added = await addLearner(this.store, peerUrl, () => this.roomForController());
      addedMember = String(added.member?.ID ?? '');
      initialCluster = (added.members ?? [])
        .map((m) => `${m.ID === added.member?.ID ? req.name : m.name}=${m.peerURLs[0]}`)
        .join(',');
      record.etcd = { memberId: addedMember, learner: true, peerUrl, clientUrl };
    }
    const used: JoinTokenRecord = { ...tok.value, usedAt: new Date().toISOString(), usedBy: req.name };
    try {
      await this.store.txn(
        {
          when: [
            { key: tok.key, revision: tok.revision },
            { key: keys.node(req.name), absent: true },
          ],
          put: [
            { key: tok.key, value: used },
            { key: keys.node(req.name), value: record },
          ],
        },
        'the join token was used or changed at the same moment; create a new one',
      );
    } catch (err) {
      if (addedMember) {
        await this.store
          .withOwnClient((c) => c.cluster.memberRemove({ ID: addedMember! }))
          .catch((e) => log.error('could not remove the etcd member of a failed join', { err: e }));
      }
      throw toNfError(err);
    }
    log.info('host joined', { node: req.name, role, address: req.address });
    return this.answer(role, certPem, nodes, initialCluster);
  }

  /**
   * A join whose answer was lost (the connection broke after the token was marked used): the same host
   * (the token's user, from the address of its record, with the same ports) asking again with the same
   * unexpired token within RETRY_WINDOW_MS of its use gets its answer again, with a certificate for its
   * new key, as long as it does not report to the cluster (no live heartbeat record) and, for a
   * controller, its etcd member never started. Anything else is a used token: a
   * token that leaked later (read from a command line) cannot re-enrol a host that is down.
   */
  private async retried(req: JoinRequest, t: JoinTokenRecord): Promise<JoinResponse | undefined> {
    if (t.usedBy !== req.name || Date.parse(t.expiresAt) <= Date.now()) return undefined;
    if (!t.usedAt || Date.now() - Date.parse(t.usedAt) > RETRY_WINDOW_MS) return undefined;
    const node = (await this.store.get<NodeRecord>(keys.node(req.name)))?.value;
    const role: NodeRole = t.role ?? 'worker';
    if (!node || node.role !== role || !node.addresses.includes(req.address)) return undefined;
    if (node.grpcAddress !== hostPort(req.address, req.grpcPort)) return undefined;
    if (await this.store.get(keys.nodeHealth(req.name))) return undefined; // it reported: it had its answer
    let initialCluster: string | undefined;
    if (role === 'controller') {
      if (node.apiAddress !== hostPort(req.address, req.apiPort)) return undefined;
      if (node.etcd?.peerUrl !== `https://${hostPort(req.address, req.etcdPeerPort)}`) return undefined;
      const members = (await this.store.withOwnClient((c) => c.cluster.memberList({}))).members ?? [];
      const mine = members.find((m) => String(m.ID) === node.etcd?.memberId);
      if (!mine || mine.name) return undefined; // its etcd started: not a lost answer
      initialCluster = members.map((m) => `${m === mine ? req.name : m.name}=${m.peerURLs[0]}`).join(',');
    }
    const certPem = await issueHostCert(this.ca, req.csr, {
      name: req.name,
      role,
      dns: role === 'controller' ? [CONTROLLER_SAN] : [],
      ips: [req.address],
    });
    log.warn('join asked again with its used token (the answer was lost): answered again', {
      node: req.name,
      role,
      address: req.address,
    });
    const nodes = (await this.store.list<NodeRecord>(keys.nodes)).filter((n) => n.value.name !== req.name);
    return this.answer(role, certPem, nodes, initialCluster);
  }

  private answer(
    role: NodeRole,
    certPem: string,
    nodes: Versioned<NodeRecord>[],
    initialCluster: string | undefined,
  ): JoinResponse {
    const controllers = nodes
      .filter((n) => n.value.role === 'controller')
      .map((n) => ({
        name: n.value.name,
        ...(n.value.apiAddress ? { api: n.value.apiAddress } : {}),
        ...(n.value.grpcAddress ? { grpc: n.value.grpcAddress } : {}),
      }));
    const res: JoinResponse = {
      clusterName: this.clusterName,
      role,
      caPem: this.ca.certPem,
      certPem,
      controllers,
    };
    if (role === 'controller') {
      res.caKeyPem = this.ca.keyPem;
      res.etcd = {
        initialCluster: initialCluster!,
        clientUrls: nodes.flatMap((n) => (n.value.etcd ? [n.value.etcd.clientUrl] : [])),
      };
    }
    return res;
  }
}

/** How long after its use a join token may be asked again by the host whose answer was lost. */
const RETRY_WINDOW_MS = 10 * 60_000;

/**
 * Adds an etcd learner. etcd refuses member changes until every voter has been connected for 5 s
 * ("unhealthy cluster", e.g. right after the previous join's promotion) and allows one learner at a
 * time: wait that out, for a bounded time.
 */
async function addLearner(store: EtcdStore, peerUrl: string, check: () => Promise<void>) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    // Checked again right before each try: another controller join may have added its member meanwhile
    // (etcd takes one learner at a time, so a second join waits here until the first is promoted).
    await check();
    try {
      return await store.withOwnClient((c) => c.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: true }));
    } catch (err) {
      const msg = (err as Error).message;
      const settling = /unhealthy cluster|not enough started members|too many learner/i.test(msg);
      if (!settling || Date.now() > deadline) {
        throw new NfError(
          'unavailable',
          `etcd cannot take a new member now (${msg}); retry the join in a minute`,
        );
      }
      await Bun.sleep(500);
    }
  }
}

function view(t: JoinTokenRecord): TokenView {
  const v: TokenView = {
    id: t.id,
    expiresAt: t.expiresAt,
    createdAt: t.createdAt,
    createdBy: t.createdBy,
    role: t.role ?? 'worker',
    status: t.usedAt ? 'used' : Date.parse(t.expiresAt) <= Date.now() ? 'expired' : 'valid',
  };
  if (t.description) v.description = t.description;
  if (t.usedAt) v.usedAt = t.usedAt;
  if (t.usedBy) v.usedBy = t.usedBy;
  return v;
}

function validateRequest(r: JoinRequest): void {
  const bad = (m: string) => new NfError('validation_failed', m);
  if (typeof r.name !== 'string' || !HOST_NAME.test(r.name))
    throw bad(`"${r.name}" is not a valid host name (lowercase letters, digits, - and .)`);
  if (r.name === 'localhost' || r.name === CONTROLLER_SAN || r.name.endsWith('.neuroflow.internal'))
    throw bad(`"${r.name}" is a reserved name; pick another host name`);
  if (typeof r.address !== 'string' || !isIP(r.address))
    throw bad(`address "${r.address}" is not an IP address`);
  for (const k of ['apiPort', 'grpcPort', 'etcdClientPort', 'etcdPeerPort'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 1 || r[k] > 65535) throw bad(`${k} must be a port number`);
  }
  if (typeof r.csr !== 'string' || !r.csr.includes('CERTIFICATE REQUEST'))
    throw bad('csr must be a PEM certificate signing request');
}

// --- the joining host's side ---

export interface JoinOutcome {
  response: JoinResponse;
  keyPem: string;
  /** The controller that admitted us (host:port of its API). */
  via: string;
}

/**
 * Joins with a token: pins the cluster CA by the token's fingerprint (over a first TLS connection that
 * cannot verify yet), then sends the secret and a CSR over a connection verified against that CA.
 * The private key is made here and never sent.
 */
export async function joinCluster(
  tokenText: string,
  me: Omit<JoinRequest, 'tokenId' | 'secret' | 'csr'>,
): Promise<JoinOutcome> {
  const token = parseJoinToken(tokenText);
  const { keyPem } = await generateKey();
  const csr = await createCsr(keyPem, me.name);
  const errors: string[] = [];
  for (const addr of token.controllers) {
    let caPem: string;
    try {
      const res = await fetch(`https://${addr}/api/v1/cluster/ca`, {
        signal: AbortSignal.timeout(10_000),
        tls: { rejectUnauthorized: false },
      } as RequestInit);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      caPem = ((await res.json()) as { certificate: string }).certificate;
    } catch (err) {
      errors.push(`${addr}: ${(err as Error).message}`);
      continue;
    }
    if (fingerprint(caPem) !== token.caFingerprint) {
      // Not the cluster the token names (or someone in between): stop, send nothing.
      throw new NfError(
        'forbidden',
        `the controller at ${addr} presented a CA (${fingerprint(caPem)}) that is not the one in the token (${token.caFingerprint}); not sending the secret`,
      );
    }
    const body: JoinRequest = { ...me, tokenId: token.id, secret: token.secret, csr };
    let res: Response;
    try {
      res = await fetch(`https://${addr}/api/v1/cluster/join`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(60_000),
        tls: { ca: caPem, rejectUnauthorized: true },
      } as RequestInit);
    } catch (err) {
      errors.push(`${addr}: ${(err as Error).message}`);
      continue;
    }
    const json = (await res.json().catch(() => ({}))) as JoinResponse & {
      error?: { code: string; message: string };
    };
    if (!res.ok) {
      const e = json.error;
      throw new NfError(
        e && ['unauthenticated', 'already_exists', 'validation_failed', 'forbidden'].includes(e.code)
          ? (e.code as 'unauthenticated')
          : 'unavailable',
        `joining through ${addr} was refused: ${e?.message ?? `HTTP ${res.status}`}`,
      );
    }
    const info = certInfo(json.certPem);
    if (info.cn !== me.name || fingerprint(json.caPem) !== token.caFingerprint)
      throw new NfError('internal', `the controller at ${addr} returned a certificate for another host`);
    return { response: json, keyPem, via: addr };
  }
  throw new NfError('unavailable', `no controller in the token answered: ${errors.join('; ')}`);
}

/** An IP as text, without an IPv4-mapped IPv6 prefix or a zone, lower case. */
function normaliseIp(ip: string): string {
  return ip
    .replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '')
    .replace(/%.*$/, '')
    .toLowerCase();
}
