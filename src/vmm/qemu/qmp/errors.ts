/**
 * Error hierarchy for the QMP client. Callers usually only need to tell apart
 * "QEMU refused the command" (QmpError), "QEMU did not answer in time"
 * (QmpTimeoutError) and "the monitor connection is gone" (QmpDisconnectedError),
 * because each one calls for a different recovery strategy.
 */

export class QmpClientError extends Error {
  override name = 'QmpClientError';
}

/** QEMU answered with {"error": {"class", "desc"}}. */
export class QmpError extends QmpClientError {
  override name = 'QmpError';
  readonly errorClass: string;
  readonly desc: string;
  readonly command: string;

  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP command ${command} failed: ${errorClass}: ${desc}`);
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/**
 * A command, an event wait or the connection handshake did not finish in time.
 * `command` is the QMP command name, `event <NAME>` for waitForEvent, or
 * `connect` for QmpClient.connect.
 */
export class QmpTimeoutError extends QmpClientError {
  override name = 'QmpTimeoutError';
  readonly command: string;
  readonly timeoutMs: number;

  constructor(command: string, timeoutMs: number, message?: string) {
    super(message ?? `QMP ${command} timed out after ${timeoutMs}ms`);
    this.command = command;
    this.timeoutMs = timeoutMs;
  }
}

/** The socket closed while a command was pending, or the client was used after closing. */
export class QmpDisconnectedError extends QmpClientError {
  override name = 'QmpDisconnectedError';
  readonly command: string | undefined;

  constructor(message: string, command?: string, options?: ErrorOptions) {
    super(message, options);
    this.command = command;
  }
}
