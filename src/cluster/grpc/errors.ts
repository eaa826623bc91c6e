/**
 * NfError over gRPC. The server answers a failure with the gRPC status of the NfError's code (see
 * ERROR_CODES) and puts the code itself, and its details, in the trailing metadata; the client rebuilds
 * the same NfError. Failures that never reached our handler (no connection, deadline, TLS) have no
 * code in the metadata and are mapped back from the gRPC status.
 */
import { Metadata, type ServiceError, status as Status, type StatusObject } from '@grpc/grpc-js';
import { ERROR_CODES, type ErrorCode, isErrorCode, NfError, toNfError } from '../../errors';

const CODE_KEY = 'nf-error-code';
const DETAILS_KEY = 'nf-error-details-bin';

/** gRPC status → the most general NfError code that uses it (the first listed, but 13 → internal). */
const BY_GRPC = new Map<number, ErrorCode>();
for (const [code, m] of Object.entries(ERROR_CODES) as [ErrorCode, { grpc: number }][]) {
  if (!BY_GRPC.has(m.grpc)) BY_GRPC.set(m.grpc, code);
}
BY_GRPC.set(Status.INTERNAL, 'internal');

/** What a grpc-js handler passes to its callback (or `call.emit('error')`) for a thrown error. */
export function toGrpcError(err: unknown): Partial<StatusObject> {
  const e = toNfError(err);
  const metadata = new Metadata();
  metadata.set(CODE_KEY, e.code);
  if (e.details !== undefined) {
    try {
      metadata.set(DETAILS_KEY, Buffer.from(JSON.stringify(e.details)));
    } catch {
      // details that do not serialize stay on the node
    }
  }
  return { code: e.grpcStatus, details: e.message, metadata };
}

/**
 * Rebuilds the NfError from a failed call. `peer` names the other side ("node n2") for the errors
 * raised by the transport; `reachable` says whether the channel was connected when the call failed,
 * to tell a slow peer (timeout) from an unreachable one (unavailable).
 */
export function fromGrpcError(err: ServiceError, peer: string, what: string, reachable = true): NfError {
  const code = err.metadata?.get(CODE_KEY)[0];
  if (typeof code === 'string' && isErrorCode(code)) {
    const raw = err.metadata.get(DETAILS_KEY)[0];
    let details: unknown;
    if (raw instanceof Buffer) {
      try {
        details = JSON.parse(raw.toString('utf8'));
      } catch {}
    }
    return new NfError(code, err.details, details);
  }
  const text = err.details.replace(/\.?\s*Resolution note:\s*$/, ''); // grpc-js appends an empty one
  switch (err.code) {
    case Status.UNAVAILABLE:
      return new NfError('unavailable', `${peer} is unreachable (${what}): ${text}`, undefined, {
        cause: err,
      });
    case Status.DEADLINE_EXCEEDED:
      return reachable
        ? new NfError('timeout', `${peer} did not answer ${what} in time`, undefined, { cause: err })
        : new NfError(
            'unavailable',
            `${peer} is unreachable (${what}): no connection before the deadline`,
            undefined,
            {
              cause: err,
            },
          );
    case Status.CANCELLED:
      return new NfError('unavailable', `${what} to ${peer} was cancelled: ${text}`, undefined, {
        cause: err,
      });
    default:
      return new NfError(BY_GRPC.get(err.code) ?? 'internal', `${peer}: ${what}: ${text}`, undefined, {
        cause: err,
      });
  }
}
