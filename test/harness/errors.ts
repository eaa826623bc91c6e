import { expect } from 'vitest';
import { NfError } from '../../src/errors';

/** Waits for a promise that must reject with an NfError (checked) and returns that error. */
export async function rejection(p: Promise<unknown>): Promise<NfError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NfError);
  return err as NfError;
}
