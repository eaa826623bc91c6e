import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { NfError } from '../errors';
import {
  type CaFiles,
  certInfo,
  createCa,
  createCsr,
  fingerprint,
  generateKey,
  type IssueHostCertOptions,
  issueHostCert,
  readHostPki,
  verifyChain,
  writeHostPki,
} from './pki';

const DAY_MS = 86_400_000;

interface Host {
  certPem: string;
  keyPem: string;
}

async function newHost(ca: CaFiles, opts: Partial<IssueHostCertOptions> & { name: string }): Promise<Host> {
  const { keyPem } = await generateKey();
  const csr = await createCsr(keyPem, opts.name);
  const certPem = await issueHostCert(ca, csr, { role: 'worker', dns: [], ips: [], ...opts });
  return { certPem, keyPem };
}

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NfError);
  expect((err as NfError).code).toBe(code);
  expect((err as NfError).message).toMatch(message);
}

let ca: CaFiles;
let otherCa: CaFiles;
let controller: Host;
let worker: Host;
let foreign: Host;
let dir: string;

beforeAll(async () => {
  [ca, otherCa] = await Promise.all([createCa('prod'), createCa('other')]);
  controller = await newHost(ca, {
    name: 'ctl1',
    role: 'controller',
    dns: ['ctl1.example.com'],
    ips: ['10.1.2.3'],
  });
  worker = await newHost(ca, { name: 'worker1' });
  foreign = await newHost(otherCa, { name: 'ctl1' });
  dir = await mkdtemp(join(tmpdir(), 'nf-pki-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('createCa', () => {
  it('makes a self-signed P-256 CA limited to signing host certificates', () => {
    const cert = new x509.X509Certificate(ca.certPem);
    expect(cert.subject).toBe('CN=NeuroFlow cluster CA prod');
    expect(cert.issuer).toBe(cert.subject);
    const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
    expect([bc.ca, bc.pathLength, bc.critical]).toEqual([true, 0, true]);
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(ku.critical).toBe(true);
    expect(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);
    expect(cert.serialNumber).toMatch(/^[0-9a-f]{32}$/);
    expect(cert.serialNumber).not.toBe(new x509.X509Certificate(otherCa.certPem).serialNumber);
    const years = (cert.notAfter.getTime() - cert.notBefore.getTime()) / (365.25 * DAY_MS);
    expect(years).toBeCloseTo(10, 1);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    expect(verifyChain(ca.certPem, ca.certPem)).toBe(true);
  });

  it('rejects an empty or too long cluster name', async () => {
    await rejectsWith(createCa(' '), 'validation_failed', /cluster name/);
    await rejectsWith(createCa('x'.repeat(44)), 'validation_failed', /cluster name/);
  });
});

describe('issueHostCert', () => {
  it('names the host from the options, not from the CSR', async () => {
    const { keyPem } = await generateKey();
    const csr = await createCsr(keyPem, 'evil');
    const pem = await issueHostCert(ca, csr, { name: 'n2', role: 'worker', dns: [], ips: [] });
    expect(certInfo(pem).cn).toBe('n2');
    // no loopback names or addresses: a local process with a copied certificate is not the host
    expect(certInfo(pem).dns).toEqual(['n2']);
    expect(certInfo(pem).ips).toEqual([]);
  });

  it('sets the subject, SANs, usages, key identifiers and validity', () => {
    const cert = new x509.X509Certificate(controller.certPem);
    expect(cert.subject).toBe('O=NeuroFlow, OU=controller, CN=ctl1');
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    expect([ku.usages, ku.critical]).toEqual([x509.KeyUsageFlags.digitalSignature, true]);
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([
      x509.ExtendedKeyUsage.serverAuth,
      x509.ExtendedKeyUsage.clientAuth,
    ]);
    expect(cert.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    const caKeyId = new x509.X509Certificate(ca.certPem).getExtension(
      x509.SubjectKeyIdentifierExtension,
    )!.keyId;
    expect(cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(caKeyId);
    const now = Date.now();
    expect(now - cert.notBefore.getTime()).toBeGreaterThan(4 * 60_000);
    expect(now - cert.notBefore.getTime()).toBeLessThan(6 * 60_000);
    expect((cert.notAfter.getTime() - now) / DAY_MS).toBeCloseTo(825, 1);
  });

  it('honours days but never outlives the CA', async () => {
    const short = await newHost(ca, { name: 'n3', days: 1 });
    expect((certInfo(short.certPem).notAfter.getTime() - Date.now()) / DAY_MS).toBeCloseTo(1, 1);
    // A CA with 30 days left: the default 825 days are cut to its expiry.
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const oldCa = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=old CA',
      notAfter: new Date(Date.now() + 30 * DAY_MS),
      keys,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
    const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
    const aging = { certPem: oldCa.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
    const host = await newHost(aging, { name: 'n3' });
    expect(certInfo(host.certPem).notAfter).toEqual(oldCa.notAfter);
    expect(verifyChain(host.certPem, aging.certPem)).toBe(true);
  });

  it('refuses a tampered or garbled CSR', async () => {
    const { keyPem } = await generateKey();
    const csr = await createCsr(keyPem, 'tamper-me');
    const der = Buffer.from(new x509.Pkcs10CertificateRequest(csr).rawData);
    const at = der.indexOf('tamper-me');
    expect(at).toBeGreaterThan(0);
    der[at + 8] = 'f'.charCodeAt(0);
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    const opts: IssueHostCertOptions = { name: 'n4', role: 'worker', dns: [], ips: [] };
    await rejectsWith(issueHostCert(ca, tampered, opts), 'validation_failed', /signature does not verify/);
    await rejectsWith(issueHostCert(ca, 'hello', opts), 'validation_failed', /not a PEM certificate signing/);
    await rejectsWith(
      issueHostCert(ca, ca.certPem, opts),
      'validation_failed',
      /not a PEM certificate signing/,
    );
  });

  it('validates names, addresses, role and days', async () => {
    const { keyPem } = await generateKey();
    const csr = await createCsr(keyPem, 'n5');
    const base: IssueHostCertOptions = { name: 'n5', role: 'worker', dns: [], ips: [] };
    const bad: [Partial<IssueHostCertOptions>, RegExp][] = [
      [{ name: '-n5' }, /not a valid host name/],
      [{ name: 'n_5' }, /not a valid host name/],
      [{ name: 'a..b' }, /not a valid host name/],
      [{ name: 'n5.' }, /not a valid host name/],
      [{ name: `${'a'.repeat(64)}` }, /not a valid host name/],
      [{ name: '10.0.0.1' }, /not a valid host name/],
      [{ name: '10.0.0.256' }, /not a valid host name/],
      [{ name: '' }, /not a valid host name/],
      [{ dns: ['ok', 'bad name'] }, /not a valid DNS name/],
      [{ ips: ['10.0.0.256'] }, /not an IP address/],
      [{ ips: ['fe80::1%eth0'] }, /not an IP address/],
      [{ ips: ['host'] }, /not an IP address/],
      [{ role: 'admin' as 'worker' }, /role must be/],
      [{ days: 0 }, /days must be/],
      [{ days: 1.5 }, /days must be/],
      [{ days: 3651 }, /days must be/],
    ];
    for (const [patch, message] of bad) {
      await rejectsWith(issueHostCert(ca, csr, { ...base, ...patch }), 'validation_failed', message);
    }
    await rejectsWith(createCsr(keyPem, 'bad name'), 'validation_failed', /not a valid host name/);
    await rejectsWith(createCsr('nope', 'n5'), 'validation_failed', /not a PEM ECDSA P-256 private key/);
  });

  it('refuses a CA key that does not match the CA certificate', async () => {
    const csr = await createCsr((await generateKey()).keyPem, 'n6');
    const mixed = { certPem: ca.certPem, keyPem: otherCa.keyPem };
    await rejectsWith(
      issueHostCert(mixed, csr, { name: 'n6', role: 'worker', dns: [], ips: [] }),
      'internal',
      /does not belong/,
    );
  });
});

describe('certInfo, fingerprint, verifyChain', () => {
  it('reports names, expiry, serial and fingerprint', async () => {
    const h = await newHost(ca, {
      name: 'n7',
      role: 'controller',
      dns: ['n7.lan', 'localhost'],
      ips: ['192.168.1.7', '2001:DB8:0::7', '127.0.0.1'],
    });
    const info = certInfo(h.certPem);
    const node = new X509Certificate(h.certPem);
    expect(info).toEqual({
      cn: 'n7',
      ou: 'controller',
      dns: ['n7', 'n7.lan', 'localhost'],
      ips: ['192.168.1.7', '2001:db8::7', '127.0.0.1'],
      notAfter: new Date(node.validTo),
      fingerprint: fingerprint(h.certPem),
      serial: node.serialNumber.toLowerCase(),
    });
    expect(certInfo(ca.certPem)).toMatchObject({ cn: 'NeuroFlow cluster CA prod', dns: [], ips: [] });
    expect(certInfo(ca.certPem).ou).toBeUndefined();
    expect(() => certInfo('junk')).toThrow(NfError);
    expect(() => fingerprint('junk')).toThrow(/not a PEM certificate/);
  });

  it('verifies only certificates from the CA, and only while valid', () => {
    expect(verifyChain(controller.certPem, ca.certPem)).toBe(true);
    expect(verifyChain(worker.certPem, ca.certPem)).toBe(true);
    expect(verifyChain(foreign.certPem, ca.certPem)).toBe(false);
    expect(verifyChain(controller.certPem, otherCa.certPem)).toBe(false);
    expect(verifyChain(controller.certPem, worker.certPem)).toBe(false); // not a CA
    expect(verifyChain(controller.certPem, ca.certPem, new Date(Date.now() + 826 * DAY_MS))).toBe(false);
    expect(verifyChain(controller.certPem, ca.certPem, new Date(Date.now() - 10 * 60_000))).toBe(false);
  });
});

describe('with openssl', () => {
  it('verifies host certificates for both TLS purposes and rejects a foreign one', async () => {
    const caFile = join(dir, 'ca.pem');
    const hostFile = join(dir, 'host.pem');
    const foreignFile = join(dir, 'foreign.pem');
    await writeFile(caFile, ca.certPem);
    await writeFile(hostFile, controller.certPem);
    await writeFile(foreignFile, foreign.certPem);
    for (const purpose of ['sslserver', 'sslclient']) {
      const r = openssl(['verify', '-x509_strict', '-purpose', purpose, '-CAfile', caFile, hostFile]);
      expect(r.out).toContain(`${hostFile}: OK`);
      expect(r.status).toBe(0);
    }
    const r = openssl(['verify', '-CAfile', caFile, foreignFile]);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/unable to get local issuer certificate/);
  });

  it('computes the same fingerprint', async () => {
    const file = join(dir, 'fp.pem');
    for (const pem of [ca.certPem, controller.certPem]) {
      await writeFile(file, pem);
      const r = openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', file]);
      expect(r.status).toBe(0);
      const hex = r.out.trim().split('=')[1]!.replaceAll(':', '').toLowerCase();
      expect(fingerprint(pem)).toBe(`sha256:${hex}`);
    }
  });

  it('reads the private keys and CSRs', async () => {
    const file = join(dir, 'k.pem');
    await writeFile(file, worker.keyPem);
    expect(openssl(['pkey', '-noout', '-check', '-in', file]).status).toBe(0);
    await writeFile(file, await createCsr(worker.keyPem, 'worker1'));
    const r = openssl(['req', '-noout', '-verify', '-subject', '-in', file]);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/CN\s*=\s*worker1/);
  });
});

describe('mutual TLS', () => {
  let server: tls.Server;
  let port: number;
  const clientErrors: Error[] = [];

  beforeAll(async () => {
    server = tls.createServer(
      {
        key: controller.keyPem,
        cert: controller.certPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (socket) => socket.end(`hello ${socket.getPeerCertificate().subject.CN}`),
    );
    server.on('tlsClientError', (err) => clientErrors.push(err));
    await new Promise<void>((resolve) => server.listen(0, '::', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  function talk(opts: tls.ConnectionOptions): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ port, rejectUnauthorized: true, ...opts });
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk) => {
        data += chunk;
      });
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
  }

  const client = () => ({ ca: ca.certPem, cert: worker.certPem, key: worker.keyPem });

  it('connects by host name and DNS SAN with the CA pinned, not by loopback names', async () => {
    expect(await talk({ ...client(), host: '127.0.0.1', servername: 'ctl1' })).toBe('hello worker1');
    expect(await talk({ ...client(), host: '127.0.0.1', servername: 'ctl1.example.com' })).toBe(
      'hello worker1',
    );
    // the certificates carry no loopback names or addresses any more
    await expect(talk({ ...client(), host: 'localhost' })).rejects.toThrow(/does not match|altname/i);
    await expect(talk({ ...client(), host: '127.0.0.1' })).rejects.toThrow(/does not match|altname/i);
  });

  it('rejects a name the certificate does not carry', async () => {
    await expect(talk({ ...client(), host: '127.0.0.1', servername: 'ctl2' })).rejects.toThrow(
      /does not match|altname/i,
    );
  });

  it('rejects a server whose certificate comes from another CA', async () => {
    await expect(
      talk({ ...client(), ca: otherCa.certPem, host: '127.0.0.1', servername: 'ctl1' }),
    ).rejects.toThrow(/certificate/i);
  });

  it('refuses a client without a certificate or with one from another CA', async () => {
    const cases: [tls.ConnectionOptions, RegExp][] = [
      [{ ca: ca.certPem }, /PEER_DID_NOT_RETURN_A_CERTIFICATE/],
      [{ ca: ca.certPem, cert: foreign.certPem, key: foreign.keyPem }, /UNABLE_TO_VERIFY_LEAF_SIGNATURE/],
    ];
    for (const [opts, serverError] of cases) {
      const before = clientErrors.length;
      const answer = await talk({ ...opts, host: '127.0.0.1', servername: 'ctl1' }).catch(
        (e: Error) => e.message,
      );
      expect(answer).not.toMatch(/^hello/);
      await vi.waitFor(() => {
        const codes = clientErrors.slice(before).map((e) => (e as NodeJS.ErrnoException).code);
        expect(codes.some((code) => serverError.test(code ?? ''))).toBe(true);
      });
    }
  });
});

describe('writeHostPki / readHostPki', () => {
  it('writes private files 0600 in a 0700 directory and reads them back', async () => {
    const pkiDir = join(dir, 'pki');
    expect(await readHostPki(pkiDir)).toBeNull();
    const files = {
      caPem: ca.certPem,
      certPem: controller.certPem,
      keyPem: controller.keyPem,
      caKeyPem: ca.keyPem,
    };
    await writeHostPki(pkiDir, files);
    expect((await stat(pkiDir)).mode & 0o777).toBe(0o700);
    const modes = { 'ca.crt': 0o644, 'host.crt': 0o644, 'host.key': 0o600, 'ca.key': 0o600 };
    for (const [file, mode] of Object.entries(modes)) {
      expect((await stat(join(pkiDir, file))).mode & 0o777).toBe(mode);
    }
    expect((await readdir(pkiDir)).sort()).toEqual(Object.keys(modes).sort());
    expect(await readHostPki(pkiDir)).toEqual(files);

    await unlink(join(pkiDir, 'host.key'));
    await rejectsWith(readHostPki(pkiDir), 'invalid_state', /host\.key is missing/);
  });

  it('writes no CA key unless given', async () => {
    const pkiDir = join(dir, 'worker-pki');
    const files = { caPem: ca.certPem, certPem: worker.certPem, keyPem: worker.keyPem };
    await writeHostPki(pkiDir, files);
    expect((await readdir(pkiDir)).sort()).toEqual(['ca.crt', 'host.crt', 'host.key']);
    expect(await readHostPki(pkiDir)).toEqual(files);
  });
});
