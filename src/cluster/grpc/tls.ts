/**
 * Mutual TLS for the cluster's gRPC. Every host has a certificate from the cluster CA whose CN is its
 * host name and whose OU is its role ('controller' or 'worker'); both sides present and check one.
 */
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { type ChannelCredentials, type ChannelOptions, credentials, ServerCredentials } from '@grpc/grpc-js';

/** PEM texts of the cluster CA, this host's certificate (chain) and its private key. */
export interface TlsPems {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export type Role = 'controller' | 'worker';

/** Who is calling, from the client certificate of the TLS session. */
export interface PeerIdentity {
  /** The certificate's CN: the caller's host name. */
  name?: string;
  /** The certificate's OU, when it is a known role. */
  role?: Role;
  /** The caller's IP address (without port). */
  address: string;
  /** The IP addresses in the certificate's SAN: the only places its holder may call from. */
  ips: string[];
}

/** Server credentials that require a client certificate signed by the cluster CA. */
export function serverCredentials(tls: TlsPems): ServerCredentials {
  return ServerCredentials.createSsl(
    Buffer.from(tls.caPem),
    [{ cert_chain: Buffer.from(tls.certPem), private_key: Buffer.from(tls.keyPem) }],
    true,
  );
}

/**
 * Client credentials presenting this host's certificate and accepting only a server certificate from
 * the cluster CA whose SAN (or CN, without SANs) matches `serverName`, whatever address was dialled.
 */
export function clientCredentials(tls: TlsPems, serverName: string): ChannelCredentials {
  return credentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certPem), {
    checkServerIdentity: (_host, cert) => checkServerIdentity(serverName, cert),
  });
}

/** Channel options to pair with clientCredentials: SNI and :authority carry the expected name. */
export function clientChannelOptions(serverName: string): ChannelOptions {
  return {
    'grpc.ssl_target_name_override': serverName,
    'grpc.default_authority': serverName,
    // Notice a dead peer (power loss, partition) within ~30 s even when no call is running, without
    // dropping a live one whose host is busy.
    'grpc.keepalive_time_ms': 15_000,
    'grpc.keepalive_timeout_ms': 15_000,
    'grpc.keepalive_permit_without_calls': 1,
    // Reconnect within seconds once a peer is back (grpc-js otherwise backs off up to 2 minutes).
    'grpc.initial_reconnect_backoff_ms': 250,
    'grpc.max_reconnect_backoff_ms': 5_000,
  };
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The role of a certificate subject's OU(s), if any is a known role. */
function roleOf(ou: string | string[] | undefined): Role | undefined {
  const all = Array.isArray(ou) ? ou : ou === undefined ? [] : [ou];
  return all.find((o): o is Role => o === 'controller' || o === 'worker');
}

/**
 * The IP address of grpc-js's "address:port" peer string ("[::1]:5000", "::1:5000", "1.2.3.4:5"),
 * with IPv4-mapped IPv6 ("::ffff:1.2.3.4", a server listening on "::") given as plain IPv4.
 */
export function peerAddress(peer: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  const ip = bracketed ? bracketed[1]! : peer.replace(/:\d+$/, '');
  return ip.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
}

/** The identity of the caller of a server call (any grpc-js server call object). */
export function peerIdentity(call: {
  getPeer(): string;
  getAuthContext?(): { sslPeerCertificate?: PeerCertificate };
}): PeerIdentity {
  const cert = call.getAuthContext?.().sslPeerCertificate;
  const subject = cert?.subject as Record<string, string | string[] | undefined> | undefined;
  const id: PeerIdentity = { address: peerAddress(call.getPeer()), ips: sanIps(cert?.subjectaltname) };
  const name = first(subject?.CN);
  const role = roleOf(subject?.OU);
  if (name) id.name = name;
  if (role) id.role = role;
  return id;
}

/** IP addresses of a subjectaltname string ("DNS:a, IP Address:10.0.0.1, IP Address:::1"), normalised. */
function sanIps(san: string | undefined): string[] {
  if (!san) return [];
  return san
    .split(/,\s*/)
    .filter((e) => e.startsWith('IP Address:'))
    .map((e) => peerAddress(e.slice('IP Address:'.length).toLowerCase()));
}

/** The caller presents a certificate issued for the address it calls from (a copied key is not enough). */
export function fromOwnAddress(p: PeerIdentity): boolean {
  return p.ips.includes(p.address);
}

/** "ctl1 (controller) at 10.0.0.5", for messages and logs. */
export function describePeer(p: PeerIdentity): string {
  return `${p.name ?? 'unnamed peer'}${p.role ? ` (${p.role})` : ''} at ${p.address}`;
}
