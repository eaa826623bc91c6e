import type { z } from '@hono/zod-openapi';
import { ErrorSchema } from './schemas';

/** Response entries shared by every route: one body shape for every error status. */
export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

export const errors = {
  400: json(ErrorSchema, 'Invalid request'),
  401: json(ErrorSchema, 'Missing or wrong token'),
  403: json(ErrorSchema, 'Not allowed (a cookie-authenticated write from another site)'),
  404: json(ErrorSchema, 'Not found'),
  409: json(ErrorSchema, 'Conflicts with the current state'),
  412: json(ErrorSchema, 'Changed since read (If-Match)'),
  413: json(ErrorSchema, 'Request body too large'),
  415: json(ErrorSchema, 'The body is not application/json'),
  422: json(ErrorSchema, 'Not enough resources, or a checksum that does not match'),
  500: json(ErrorSchema, 'Hypervisor or internal failure'),
  501: json(ErrorSchema, 'Not implemented'),
  502: json(ErrorSchema, 'The guest agent failed'),
  503: json(ErrorSchema, 'A dependency is unavailable'),
  504: json(ErrorSchema, 'Timed out'),
};

/** The body of a metrics answer: the interval of the points depends on the range. */
export function metricsBody(range: '1h' | '24h', sampleSec: number, points: Record<string, number | null>[]) {
  return { range, intervalSec: range === '1h' ? sampleSec : sampleSec * 30, points };
}
