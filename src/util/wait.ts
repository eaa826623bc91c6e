import { NfError } from '../errors';

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Says what was awaited, for the timeout message. */
  what: string;
}

/** Polls `check` until it returns a value other than undefined/false, or throws a timeout error. */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  opts: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 50;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) {
      throw new NfError('timeout', `timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
    }
    await Bun.sleep(Math.min(interval, Math.max(1, deadline - Date.now())));
  }
}

/** A promise that can be resolved from outside, used to hand results between callbacks. */
export function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
