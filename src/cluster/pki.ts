/**
 * The cluster's own PKI: one self-signed CA per cluster, and per host a certificate (CN = host name,
 * OU = role) that serves the HTTPS API and authenticates the host to its peers (mutual TLS).
 * ECDSA P-256 with SHA-256 throughout; keys are PKCS#8 PEM, certificates and CSRs PEM.
 */
import './reflect'; // @peculiar/x509 uses tsyringe, which needs this loaded first
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  X509Certificate as NodeCert,
  randomBytes,
} from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { NfError } from '../errors';
import { writeFileAtomic } from '../util/fs';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** Certificates start this far in the past so a host whose clock is a little behind accepts them. */
const CLOCK_SKEW_MS = 5 * 60_000;
const HOST_CERT_DAYS = 825;
const MAX_HOST_CERT_DAYS = 3650;
/** X.509 upper bound for a common name (RFC 5280 ub-common-name). */
const MAX_CN = 64;
const CA_CN_PREFIX = 'NeuroFlow cluster CA ';

export type HostRole = 'controller' | 'worker';

export { CONTROLLER_SAN } from './names';

export interface CaFiles {
  certPem: string;
  keyPem: string;
}

export interface IssueHostCertOptions {
  /** The host name: the certificate's CN and a DNS SAN. */
  name: string;
  role: HostRole;
  /**
   * Extra DNS SANs; `name` is always included. No `localhost` or loopback address unless asked: a local
   * process with a copied certificate must not pass for the host (security review, issue 18).
   */
  dns: string[];
  /** The host's IP SANs. */
  ips: string[];
  /** Validity in days (default 825); never beyond the CA's own expiry. */
  days?: number;
}

export interface CertInfo {
  cn: string;
  ou?: string;
  dns: string[];
  /** IP SANs, IPv6 in compressed lowercase form. */
  ips: string[];
  notAfter: Date;
  /** `sha256:` + hex, see {@link fingerprint}. */
  fingerprint: string;
  /** Lowercase hex. */
  serial: string;
}

export interface HostPkiFiles {
  caPem: string;
  certPem: string;
  keyPem: string;
  /** Only controllers hold the CA key. */
  caKeyPem?: string;
}

/** Creates the cluster CA: self-signed, valid 10 years, may sign host certificates only (pathLen 0). */
export async function createCa(clusterName: string): Promise<CaFiles> {
  const cn = `${CA_CN_PREFIX}${clusterName}`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (!clusterName.trim() || cn.length > MAX_CN || /[\u0000-\u001f\u007f]/.test(clusterName)) {
    throw invalid(`cluster name must be 1-${MAX_CN - CA_CN_PREFIX.length} printable characters`);
  }
  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = new Date(Date.now() - CLOCK_SKEW_MS);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + 10);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [cn] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: certToPem(cert), keyPem: await exportKey(keys.privateKey) };
}

/** Generates a fresh P-256 private key (PKCS#8 PEM). */
export async function generateKey(): Promise<{ keyPem: string }> {
  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  return { keyPem: await exportKey(keys.privateKey) };
}

/** Creates a certificate signing request (PEM) for the key, CN = `name`. */
export async function createCsr(keyPem: string, name: string): Promise<string> {
  const cn = checkHostName(name, 'host name');
  const { keys } = await importKeyPair(keyPem);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [cn] }],
    keys,
    signingAlgorithm: ALG,
  });
  return csr.toString('pem');
}

/**
 * Signs a host certificate for the key in `csrPem`. The CSR only proves possession of the key: its subject
 * and requested extensions are ignored, the certificate's names come from `opts`.
 */
export async function issueHostCert(
  ca: CaFiles,
  csrPem: string,
  opts: IssueHostCertOptions,
): Promise<string> {
  const name = checkHostName(opts.name, 'host name');
  if (opts.role !== 'controller' && opts.role !== 'worker') {
    throw invalid(`role must be "controller" or "worker", not ${JSON.stringify(opts.role)}`);
  }
  const days = opts.days ?? HOST_CERT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_HOST_CERT_DAYS) {
    throw invalid(`days must be an integer from 1 to ${MAX_HOST_CERT_DAYS}`);
  }
  const dns = [...new Set([name, ...opts.dns.map((d) => checkHostName(d, 'DNS name'))])];
  const ips = [...new Set(opts.ips.map(checkIp))];

  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw invalid('the CSR is not a PEM certificate signing request');
  }
  const keyAlg = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (keyAlg.name !== 'ECDSA' || keyAlg.namedCurve !== 'P-256')
    throw invalid('the CSR key is not ECDSA P-256');
  if (!(await csr.verify().catch(() => false))) throw invalid('the CSR signature does not verify');

  const caCert = parseCert(ca.certPem);
  const { keys: caKeys, spki: caSpki } = await importKeyPair(ca.keyPem);
  if (!Buffer.from(caCert.publicKey.rawData).equals(caSpki)) {
    throw new NfError('internal', 'the CA key does not belong to the CA certificate');
  }
  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const now = Date.now();
  const notAfter = Math.min(now + days * DAY_MS, caCert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ O: ['NeuroFlow'] }, { OU: [opts.role] }, { CN: [name] }],
    issuer: caCert.subjectName,
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(notAfter),
    publicKey: csr.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension([
        ...dns.map((value) => ({ type: 'dns' as const, value })),
        ...ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
      caKeyId
        ? new x509.AuthorityKeyIdentifierExtension(caKeyId)
        : await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return certToPem(cert);
}

/** `sha256:` + lowercase hex of SHA-256 over the certificate's DER: what a join token pins the CA by. */
export function fingerprint(certPem: string): string {
  return `sha256:${createHash('sha256').update(parseNodeCert(certPem).raw).digest('hex')}`;
}

/** The parts of a certificate NeuroFlow cares about. */
export function certInfo(certPem: string): CertInfo {
  const cert = parseCert(certPem);
  const names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  const ou = cert.subjectName.getField('OU')[0];
  return {
    cn: cert.subjectName.getField('CN')[0] ?? '',
    ...(ou === undefined ? {} : { ou }),
    dns: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ips: names.filter((n) => n.type === 'ip').map((n) => n.value),
    notAfter: cert.notAfter,
    fingerprint: fingerprint(certPem),
    serial: cert.serialNumber.toLowerCase(),
  };
}

/** True when `certPem` is signed by the CA in `caPem`, the CA is a CA, and both are valid at `now`. */
export function verifyChain(certPem: string, caPem: string, now = new Date()): boolean {
  const cert = parseNodeCert(certPem);
  const ca = parseNodeCert(caPem);
  const t = now.getTime();
  const valid = (c: NodeCert) => t >= Date.parse(c.validFrom) && t <= Date.parse(c.validTo);
  return ca.ca && valid(ca) && valid(cert) && cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

const FILES = { caPem: 'ca.crt', certPem: 'host.crt', keyPem: 'host.key', caKeyPem: 'ca.key' } as const;

/**
 * Writes a host's PKI into `dir` (made 0700): ca.crt, host.crt, host.key (0600) and, when given, ca.key
 * (0600). Each file is replaced atomically.
 */
export async function writeHostPki(dir: string, files: HostPkiFiles): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  await writeFileAtomic(join(dir, FILES.caPem), files.caPem, 0o644);
  await writeFileAtomic(join(dir, FILES.certPem), files.certPem, 0o644);
  await writeFileAtomic(join(dir, FILES.keyPem), files.keyPem, 0o600);
  if (files.caKeyPem !== undefined) await writeFileAtomic(join(dir, FILES.caKeyPem), files.caKeyPem, 0o600);
}

/**
 * Reads what {@link writeHostPki} wrote. Returns null when `dir` holds no host certificate (the host has
 * not joined a cluster); throws when it holds one but ca.crt or host.key is missing.
 */
export async function readHostPki(dir: string): Promise<HostPkiFiles | null> {
  const read = (file: string) =>
    readFile(join(dir, file), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
  const [caPem, certPem, keyPem, caKeyPem] = await Promise.all([
    read(FILES.caPem),
    read(FILES.certPem),
    read(FILES.keyPem),
    read(FILES.caKeyPem),
  ]);
  if (certPem === undefined) return null;
  if (caPem === undefined || keyPem === undefined) {
    const missing = caPem === undefined ? FILES.caPem : FILES.keyPem;
    throw new NfError(
      'invalid_state',
      `${join(dir, missing)} is missing next to ${join(dir, FILES.certPem)}`,
    );
  }
  return { caPem, certPem, keyPem, ...(caKeyPem === undefined ? {} : { caKeyPem }) };
}

function invalid(message: string): NfError {
  return new NfError('validation_failed', message);
}

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, ≤63 each. */
function checkHostName(value: string, what: string): string {
  const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
  if (
    typeof value !== 'string' ||
    value.length > MAX_CN ||
    /^[\d.]+$/.test(value) || // an IPv4 address, or a typo of one
    !value.split('.').every((l) => label.test(l))
  ) {
    throw invalid(`${JSON.stringify(value)} is not a valid ${what} (RFC 1123, at most ${MAX_CN} characters)`);
  }
  return value;
}

/** Validates an IP address; IPv6 comes back in canonical compressed form (as certInfo reports it). */
function checkIp(value: string): string {
  const family = typeof value === 'string' ? isIP(value) : 0;
  if (family === 4) return value;
  if (family === 6 && !value.includes('%')) return new URL(`http://[${value}]/`).hostname.slice(1, -1);
  throw invalid(`${JSON.stringify(value)} is not an IP address`);
}

/** 16 random bytes, top bit clear (positive) and first byte non-zero (so it stays 16 bytes in DER). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

async function exportKey(key: CryptoKey): Promise<string> {
  return `${x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY')}\n`;
}

function certToPem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem')}\n`;
}

/** Imports a P-256 private key PEM, deriving its public half. */
async function importKeyPair(keyPem: string): Promise<{ keys: CryptoKeyPair; spki: Buffer }> {
  try {
    const key = createPrivateKey(keyPem);
    const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
    const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
    const [privateKey, publicKey] = await Promise.all([
      crypto.subtle.importKey('pkcs8', pkcs8, ALG, false, ['sign']),
      crypto.subtle.importKey('spki', spki, ALG, true, ['verify']),
    ]);
    return { keys: { privateKey, publicKey }, spki };
  } catch {
    throw invalid('the key is not a PEM ECDSA P-256 private key');
  }
}

function parseCert(pem: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch {
    throw invalid('not a PEM certificate');
  }
}

function parseNodeCert(pem: string): NodeCert {
  try {
    return new NodeCert(pem);
  } catch {
    throw invalid('not a PEM certificate');
  }
}
