import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ErrorBody, isErrorCode, NfError } from '../errors';

export const DEFAULT_DATA_DIR = '/var/lib/neuroflow';

export interface Endpoint {
  url: string;
  token: string;
  /** PEM of the CA that signed the API's certificate (a cluster's CA). */
  ca?: string;
}

/** --url/--token win, then NEUROFLOW_URL/NEUROFLOW_TOKEN, then the files a local daemon writes in its data dir. */
export function resolveEndpoint(flags: { url?: string; token?: string; dataDir?: string }): Endpoint {
  const dataDir = flags.dataDir ?? process.env.NEUROFLOW_DATA_DIR ?? DEFAULT_DATA_DIR;
  const fromFile = (name: string) => {
    const p = join(dataDir, name);
    return existsSync(p) ? readFileSync(p, 'utf8').trim() : undefined;
  };
  const url = flags.url ?? process.env.NEUROFLOW_URL ?? fromFile('api.url') ?? 'http://127.0.0.1:8006';
  const token = flags.token ?? process.env.NEUROFLOW_TOKEN ?? fromFile('admin.token');
  if (!token) {
    throw new NfError(
      'unauthenticated',
      `no API token: pass --token, set NEUROFLOW_TOKEN, or --data-dir of a host (${join(dataDir, 'admin.token')} not found)`,
    );
  }
  // A cluster host's API certificate comes from the cluster CA: trust it for that host.
  const caFile = process.env.NEUROFLOW_CA_FILE ?? join(dataDir, 'cluster', 'pki', 'ca.crt');
  const ep: Endpoint = { url: url.replace(/\/$/, ''), token };
  if (existsSync(caFile)) ep.ca = readFileSync(caFile, 'utf8');
  return ep;
}

export class ApiClient {
  constructor(private readonly ep: Endpoint) {}

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    init: { raw?: BodyInit; contentType?: string; headers?: Record<string, string> } = {},
  ): Promise<T> {
    return (await this.exchange<T>(method, path, body, init)).body;
  }

  /** request() with the response's headers (an ETag to send back as If-Match). */
  async exchange<T>(
    method: string,
    path: string,
    body?: unknown,
    init: { raw?: BodyInit; contentType?: string; headers?: Record<string, string> } = {},
  ): Promise<{ body: T; headers: Headers }> {
    const res = await this.send(method, path, body, init);
    const text = await res.text();
    if (!res.ok) throw errorOf(res.status, text);
    if (res.status === 204 || text === '') return { body: undefined as T, headers: res.headers };
    const json = (res.headers.get('content-type') ?? '').includes('json');
    return { body: json ? (JSON.parse(text) as T) : (text as T), headers: res.headers };
  }

  /** A GET whose answer (a file) is streamed, not read whole; an error answer throws as request() does. */
  async stream(path: string): Promise<Response> {
    const res = await this.send('GET', path);
    if (!res.ok) throw errorOf(res.status, await res.text());
    return res;
  }

  private async send(
    method: string,
    path: string,
    body?: unknown,
    init: { raw?: BodyInit; contentType?: string; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers, authorization: `Bearer ${this.ep.token}` };
    let payload: BodyInit | undefined = init.raw;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    } else if (init.contentType) headers['content-type'] = init.contentType;
    try {
      return await fetch(`${this.ep.url}${path}`, {
        method,
        headers,
        body: payload ?? null,
        ...(this.ep.ca ? { tls: { ca: this.ep.ca } } : {}),
      } as RequestInit);
    } catch (err) {
      throw new NfError('unavailable', `cannot reach NeuroFlow at ${this.ep.url}: ${(err as Error).message}`);
    }
  }
}

/** The API's error answer as an NfError with the same code. */
function errorOf(status: number, text: string): NfError {
  let parsed: ErrorBody | undefined;
  try {
    parsed = JSON.parse(text) as ErrorBody;
  } catch {}
  const code = parsed?.error?.code;
  return new NfError(
    code && isErrorCode(code) ? code : 'internal',
    parsed?.error?.message ?? `HTTP ${status}: ${text.slice(0, 200)}`,
    parsed?.error?.details,
  );
}
