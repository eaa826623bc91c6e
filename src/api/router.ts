import { OpenAPIHono } from '@hono/zod-openapi';
import type { ZodError } from 'zod';
import { NfError } from '../errors';
import type { Env } from './context';

/** Turns a schema failure into our error body, naming each bad field. */
export function validationError(error: ZodError): NfError {
  const details = error.issues.map((i) => ({ path: i.path.join('.'), message: i.message, code: i.code }));
  const first = details[0];
  const where = first?.path ? `${first.path}: ` : '';
  return new NfError(
    'validation_failed',
    `invalid request: ${where}${first?.message ?? 'bad input'}`,
    details,
  );
}

export function newRouter(): OpenAPIHono<Env> {
  return new OpenAPIHono<Env>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error as ZodError);
    },
  });
}
