import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeRole } from '../controller/records';
import { NfError } from '../errors';
import { writeFileAtomic } from '../util/fs';
import { type JoinOutcome, joinCluster } from './join';
import {
  CONTROLLER_SAN,
  createCa,
  createCsr,
  generateKey,
  type HostPkiFiles,
  issueHostCert,
  readHostPki,
  writeHostPki,
} from './pki';

/** What a host of a cluster remembers about it (DATA_DIR/cluster/config.json); PKI files beside it. */
export interface ClusterConfig {
  clusterName: string;
  name: string;
  role: NodeRole;
  /** Management IP: in the host's certificate, etcd URLs and the addresses other hosts dial. */
  address: string;
  apiPort: number;
  grpcPort: number;
  etcdClientPort: number;
  etcdPeerPort: number;
  /** Controllers known at join time (heartbeats go to their gRPC addresses). */
  controllers: { name: string; api?: string; grpc?: string }[];
  /** For a controller: how its etcd member was created. */
  etcd?: { initialCluster: string; state: 'new' | 'existing'; peerClientUrls?: string[] };
  /** The first host: it creates the cluster record on its first start. */
  founder: boolean;
  createdAt: string;
}

export interface HostPorts {
  apiPort: number;
  grpcPort: number;
  etcdClientPort: number;
  etcdPeerPort: number;
}

export const clusterDir = (dataDir: string) => join(dataDir, 'cluster');
export const pkiDir = (dataDir: string) => join(dataDir, 'cluster', 'pki');
const configPath = (dataDir: string) => join(dataDir, 'cluster', 'config.json');

export function readClusterConfig(dataDir: string): ClusterConfig | undefined {
  const p = configPath(dataDir);
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as ClusterConfig;
}

async function writeClusterConfig(dataDir: string, cfg: ClusterConfig): Promise<void> {
  await writeFileAtomic(configPath(dataDir), `${JSON.stringify(cfg, null, 2)}\n`, 0o600);
}

export async function readPki(dataDir: string): Promise<HostPkiFiles> {
  const pki = await readHostPki(pkiDir(dataDir));
  if (!pki)
    throw new NfError(
      'invalid_state',
      `${pkiDir(dataDir)} holds no host certificate; the cluster config is incomplete`,
    );
  return pki;
}

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** First start of the first host: the cluster CA, this host's certificate, a one-member etcd. */
export async function foundCluster(
  dataDir: string,
  opts: { clusterName: string; name: string; address: string } & HostPorts,
): Promise<ClusterConfig> {
  const ca = await createCa(opts.clusterName);
  const { keyPem } = await generateKey();
  const certPem = await issueHostCert(ca, await createCsr(keyPem, opts.name), {
    name: opts.name,
    role: 'controller',
    dns: [CONTROLLER_SAN],
    ips: [opts.address],
  });
  await writeHostPki(pkiDir(dataDir), { caPem: ca.certPem, certPem, keyPem, caKeyPem: ca.keyPem });
  const peer = `https://${hostPort(opts.address, opts.etcdPeerPort)}`;
  const cfg: ClusterConfig = {
    clusterName: opts.clusterName,
    name: opts.name,
    role: 'controller',
    address: opts.address,
    apiPort: opts.apiPort,
    grpcPort: opts.grpcPort,
    etcdClientPort: opts.etcdClientPort,
    etcdPeerPort: opts.etcdPeerPort,
    controllers: [],
    etcd: { initialCluster: `${opts.name}=${peer}`, state: 'new' },
    founder: true,
    createdAt: new Date().toISOString(),
  };
  await writeClusterConfig(dataDir, cfg);
  return cfg;
}

/** First start of a joining host: the token exchange, then the files a restart needs. */
export async function joinWithToken(
  dataDir: string,
  token: string,
  opts: { name: string; address: string } & HostPorts,
): Promise<{ cfg: ClusterConfig; outcome: JoinOutcome }> {
  const outcome = await joinCluster(token, {
    name: opts.name,
    address: opts.address,
    apiPort: opts.apiPort,
    grpcPort: opts.grpcPort,
    etcdClientPort: opts.etcdClientPort,
    etcdPeerPort: opts.etcdPeerPort,
  });
  const r = outcome.response;
  const files: HostPkiFiles = { caPem: r.caPem, certPem: r.certPem, keyPem: outcome.keyPem };
  if (r.caKeyPem) files.caKeyPem = r.caKeyPem;
  await writeHostPki(pkiDir(dataDir), files);
  const cfg: ClusterConfig = {
    clusterName: r.clusterName,
    name: opts.name,
    role: r.role,
    address: opts.address,
    apiPort: opts.apiPort,
    grpcPort: opts.grpcPort,
    etcdClientPort: opts.etcdClientPort,
    etcdPeerPort: opts.etcdPeerPort,
    controllers: r.controllers,
    founder: false,
    createdAt: new Date().toISOString(),
  };
  if (r.etcd)
    cfg.etcd = {
      initialCluster: r.etcd.initialCluster,
      state: 'existing',
      peerClientUrls: r.etcd.clientUrls,
    };
  await writeClusterConfig(dataDir, cfg);
  return { cfg, outcome };
}
