/**
 * One error class for the whole system. Every code maps to one HTTP status and one gRPC status, so the
 * REST API, the CLI and (later) the gRPC plane report the same failure the same way.
 */

export const ERROR_CODES = {
  /** The request body, query or path is malformed or has a bad value. */
  validation_failed: { http: 400, grpc: 3 },
  /** A file named in the request (kernel, initrd, ISO, image to import) does not exist or is unreadable. */
  file_not_found: { http: 400, grpc: 3 },
  /** No or a wrong credential. */
  unauthenticated: { http: 401, grpc: 16 },
  forbidden: { http: 403, grpc: 7 },
  not_found: { http: 404, grpc: 5 },
  /** A resource with this name already exists. */
  already_exists: { http: 409, grpc: 6 },
  /** The resource is not in a state that allows the action (e.g. start a running VM). */
  invalid_state: { http: 409, grpc: 9 },
  /** The resource is used by another one (an image a VM disk is cloned from). */
  in_use: { http: 409, grpc: 9 },
  /** Someone else changed the record first (compare-and-swap lost); retry. */
  conflict: { http: 409, grpc: 10 },
  /** The resource changed since the client read it (If-Match names an older ETag): read it again. */
  precondition_failed: { http: 412, grpc: 9 },
  /** The host lacks the memory, disk or CPU the request needs. */
  insufficient_resources: { http: 422, grpc: 8 },
  /**
   * Powering on would take more vCPUs or memory than the VM's host has free under the overcommit policy;
   * the details carry what is asked, what is free and the limits. Stop a VM there or change the policy.
   */
  insufficient_capacity: { http: 409, grpc: 8 },
  payload_too_large: { http: 413, grpc: 8 },
  /** A request body in a format the route does not take (JSON routes take application/json). */
  unsupported_media_type: { http: 415, grpc: 3 },
  /** The checksum given for an upload does not match what was received. */
  checksum_mismatch: { http: 422, grpc: 3 },
  /** The operation was cancelled (a task an admin cancelled, e.g. a migration); nothing was changed. */
  cancelled: { http: 409, grpc: 1 },
  not_implemented: { http: 501, grpc: 12 },
  /** A dependency (etcd, QEMU, the node) is unreachable right now; retry later. */
  unavailable: { http: 503, grpc: 14 },
  timeout: { http: 504, grpc: 4 },
  /** The guest agent answered with an error (its class and text are in the message). */
  guest_error: { http: 502, grpc: 13 },
  /** Stored data failed its check (a backup chunk that does not match its hash): nothing was written from it. */
  data_corrupted: { http: 500, grpc: 15 },
  /** The hypervisor refused or failed the operation; the message carries QEMU's reason. */
  hypervisor_error: { http: 500, grpc: 13 },
  internal: { http: 500, grpc: 13 },
} as const satisfies Record<string, { http: number; grpc: number }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

export class NfError extends Error {
  override readonly name = 'NfError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  get grpcStatus(): number {
    return ERROR_CODES[this.code].grpc;
  }

  toBody(): ErrorBody {
    const error: ErrorBody['error'] = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return { error };
  }

  static isCode(err: unknown, code: ErrorCode): err is NfError {
    return err instanceof NfError && err.code === code;
  }
}

/** Wraps anything thrown into an NfError without losing an existing code. */
export function toNfError(err: unknown): NfError {
  if (err instanceof NfError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new NfError('internal', message, undefined, { cause: err });
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}
