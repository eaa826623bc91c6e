/** A grpc-js server over mutual TLS, and the guard every handler of ours runs behind. */
import {
  Server,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { NfError } from '../../errors';
import { toGrpcError } from './errors';
import { describePeer, type PeerIdentity, peerIdentity, serverCredentials, type TlsPems } from './tls';

export interface ServeOptions {
  /** Address to listen on ("0.0.0.0", "127.0.0.1", "::"). */
  host: string;
  /** 0 picks a free port. */
  port: number;
  tls: TlsPems;
}

/** A running server. */
export interface GrpcServerHandle {
  readonly server: Server;
  /** The bound port (the chosen one when asked for 0). */
  readonly port: number;
  /** Stops accepting calls, lets running unary calls finish for up to graceMs, then cuts the rest. */
  stop(graceMs?: number): Promise<void>;
}

/** Binds a server with the given services on host:port over mTLS and starts it. */
export async function startGrpcServer(
  services: [ServiceDefinition, UntypedServiceImplementation][],
  opts: ServeOptions,
): Promise<GrpcServerHandle> {
  // Keepalive generous enough for a loaded host (TCG guests on two cores answer pings late).
  const server = new Server({ 'grpc.keepalive_time_ms': 15_000, 'grpc.keepalive_timeout_ms': 15_000 });
  for (const [def, impl] of services) server.addService(def, impl);
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${opts.port}`, serverCredentials(opts.tls), (err, p) =>
      err
        ? reject(new NfError('unavailable', `cannot listen on ${host}:${opts.port}: ${err.message}`))
        : resolve(p),
    ),
  );
  return {
    server,
    port,
    stop: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

/**
 * Throws NfError('forbidden') unless the peer passes `authorize`. An `authorize` may also throw an
 * NfError of its own, to say more precisely why the caller is refused.
 */
export function checkPeer(
  peer: PeerIdentity,
  authorize: (p: PeerIdentity) => boolean,
  service: string,
): void {
  if (!authorize(peer)) {
    throw new NfError('forbidden', `${describePeer(peer)} may not call the ${service} service`);
  }
}

/**
 * A unary handler: checks the caller with `authorize`, runs `fn` and answers with its result, or
 * with the error mapped to a gRPC status that keeps the NfError code.
 */
export function unaryHandler<Req, Res>(
  authorize: (p: PeerIdentity) => boolean,
  service: string,
  fn: (req: Req, peer: PeerIdentity) => Res | Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    void (async () => {
      const peer = peerIdentity(call);
      checkPeer(peer, authorize, service);
      return fn(call.request, peer);
    })().then(
      (res) => callback(null, res),
      (err) => callback(toGrpcError(err)),
    );
  };
}
