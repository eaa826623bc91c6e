import type { z } from '@hono/zod-openapi';
import { ErrorSchema } from './schemas';

/** Response entries shared by every route: one body shape for every error status. */
export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

export const errors = {
  400: json(ErrorSchema, 'Invalid request'),
  401: json(ErrorSchema, 'Missing or wrong token'),
  404: json(ErrorSchema, 'Not found'),
  409: json(ErrorSchema, 'Conflicts with the current state'),
  412: json(ErrorSchema, 'Changed since read (If-Match)'),
  422: json(ErrorSchema, 'Not enough resources'),
  500: json(ErrorSchema, 'Hypervisor or internal failure'),
  503: json(ErrorSchema, 'A dependency is unavailable'),
};

/** The body of a metrics answer: the interval of the points depends on the range. */
export function metricsBody(range: '1h' | '24h', sampleSec: number, points: Record<string, number | null>[]) {
  return { range, intervalSec: range === '1h' ? sampleSec : sampleSec * 30, points };
}
