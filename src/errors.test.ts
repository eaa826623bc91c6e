import { describe, expect, it } from 'vitest';
import { ERROR_CODES, isErrorCode, NfError, toNfError } from './errors';

describe('NfError', () => {
  it('maps every code to an HTTP and a gRPC status', () => {
    for (const [code, map] of Object.entries(ERROR_CODES)) {
      expect(map.http, code).toBeGreaterThanOrEqual(400);
      expect(map.grpc, code).toBeGreaterThan(0);
    }
  });

  it('renders the API error body', () => {
    const err = new NfError('not_found', 'VM "x" does not exist');
    expect(err.httpStatus).toBe(404);
    expect(err.toBody()).toEqual({ error: { code: 'not_found', message: 'VM "x" does not exist' } });
  });

  it('keeps codes when wrapping and hides nothing else', () => {
    const orig = new NfError('conflict', 'lost race');
    expect(toNfError(orig)).toBe(orig);
    const wrapped = toNfError(new Error('boom'));
    expect(wrapped.code).toBe('internal');
    expect(wrapped.message).toBe('boom');
    expect(isErrorCode('invalid_state')).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
  });
});
