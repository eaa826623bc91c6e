/**
 * The API against its own OpenAPI document: for every operation the document lists, requests generated
 * from it (a valid sample of each body and query, made by openapi-sampler from the schemas) and
 * malformed variants of them (a required field missing, each field of the wrong type, an unknown field,
 * an array or null for the body, text that is no JSON, another content type, absurd numbers, long
 * strings). None may get a 5xx, and every answer must be one the document describes for the operation,
 * with the error body it documents.
 */
import { sample } from 'openapi-sampler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../harness/daemon';
import { testGuest } from '../harness/guest';
import { createVm, kernelVm } from '../harness/vms';

type Schema = Record<string, unknown>;
interface Operation {
  parameters?: { name: string; in: 'path' | 'query' | 'header'; required?: boolean; schema?: Schema }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses: Record<string, unknown>;
}
interface Doc {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema> };
}

/**
 * Valid samples of these would change the host itself (set up Ceph daemons, fetch a URL, remove the only
 * host, end the session the test runs on); their malformed variants are still sent.
 */
const NO_VALID_SAMPLE = new Set([
  'post /api/v1/ceph',
  'post /api/v1/ceph/mons',
  'post /api/v1/ceph/osds',
  'delete /api/v1/ceph/osds/{id}',
  'delete /api/v1/nodes/{name}',
  'post /api/v1/images/import',
  'post /api/v1/auth/logout',
  'post /api/v1/cluster/join',
]);

interface Sent {
  op: string;
  variant: string;
  status: number;
  body: string;
}

describe('the API keeps to its OpenAPI document, also for generated and malformed requests', () => {
  let d: TestDaemon;
  let doc: Doc;
  let vmId = '';
  let nodeName = '';
  beforeAll(async () => {
    d = await TestDaemon.start();
    doc = await d.api.request<Doc>('GET', '/api/v1/openapi.json');
    vmId = (await createVm(d.api, kernelVm('contract-vm'))).id;
    nodeName = (await d.api.request<{ name: string }[]>('GET', '/api/v1/nodes'))[0]!.name;
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  /** Path parameters that name things that exist, so requests get past the lookup into validation. */
  const pathValue = (name: string): string =>
    ({ id: vmId, name: nodeName, disk: 'disk0', nic: 'net0', pool: 'local' })[name] ?? 'nope';

  const send = async (
    method: string,
    path: string,
    variant: string,
    body: string | undefined,
    contentType = 'application/json',
  ): Promise<Sent> => {
    const res = await fetch(`${d.url}${path}`, {
      method: method.toUpperCase(),
      headers: {
        authorization: `Bearer ${d.token}`,
        ...(body !== undefined ? { 'content-type': contentType } : {}),
      },
      body,
      // a stop waits for the guest (ACPI, up to timeoutSec), a snapshot for the VM's lock
      signal: AbortSignal.timeout(150_000),
    });
    return { op: `${method} ${path}`, variant, status: res.status, body: await res.text() };
  };

  it("follows a created VM's links into its routes: each names an operation of the document, and the reads answer as documented", async () => {
    interface Link {
      operationRef: string;
      parameters: Record<string, string>;
    }
    const created = doc.paths['/api/v1/vms']!.post!.responses['201'] as { links?: Record<string, Link> };
    const links = Object.entries(created.links ?? {});
    // the VM's own routes: read, edit, delete, start and stop, console, snapshots, disks, guest...
    expect(links.length).toBeGreaterThan(15);
    const vm = await createVm(d.api, kernelVm('linked-vm'));
    const resolved: string[] = [];
    for (const [name, link] of links) {
      const m = /^#\/paths\/([^/]+)\/(\w+)$/.exec(link.operationRef);
      expect(m, `${name}: ${link.operationRef}`).not.toBeNull();
      const template = m![1]!.replace(/~1/g, '/').replace(/~0/g, '~');
      const op = doc.paths[template]?.[m![2]!];
      expect(op, `${name}: ${link.operationRef}`).toBeDefined();
      // the runtime expression reads the answer's body
      const path = template.replace(/\{(\w+)\}/g, (_, p: string) => {
        const expr = link.parameters[p];
        expect(expr, `${name}: a value for {${p}}`).toMatch(/^\$response\.body#\//);
        return encodeURIComponent(
          String((vm as unknown as Record<string, unknown>)[expr!.slice('$response.body#/'.length)]),
        );
      });
      resolved.push(`${m![2]} ${template}`);
      if (m![2] !== 'get') continue;
      const r = await send('get', path, `link ${name}`, undefined);
      expect(r.status, `${name} → ${r.status}: ${r.body.slice(0, 200)}`).toBeLessThan(500);
      expect(op!.responses[String(r.status)], `${name} → ${r.status} is documented`).toBeDefined();
    }
    expect(resolved).toContain('get /api/v1/vms/{id}');
    expect(resolved).toContain('post /api/v1/vms/{id}/start');
    expect(resolved).toContain('delete /api/v1/vms/{id}');
    await d.api.request('DELETE', `/api/v1/vms/${vm.id}`);
  });

  it('answers every generated request with a documented status and never a 5xx', {
    timeout: 600_000,
  }, async () => {
    const spec = doc as unknown as Record<string, unknown>;
    const ops: [string, string, Operation][] = [];
    for (const [path, methods] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(methods))
        if (['get', 'post', 'put', 'patch', 'delete'].includes(method)) ops.push([path, method, op]);
    // deletes last: they take away what the others stand on
    ops.sort((a, b) => Number(a[1] === 'delete') - Number(b[1] === 'delete'));
    expect(ops.length).toBeGreaterThan(40);

    const problems: string[] = [];
    let requests = 0;
    for (const [template, method, op] of ops) {
      const key = `${method} ${template}`;
      const path = template.replace(/\{(\w+)\}/g, (_, n: string) => encodeURIComponent(pathValue(n)));
      const query = (op.parameters ?? []).filter((p) => p.in === 'query' && p.schema);
      const validQuery = new URLSearchParams();
      for (const p of query) {
        const v = sample(p.schema as never, { skipReadOnly: true }, spec);
        if (v !== undefined && v !== null) validQuery.set(p.name, String(v));
      }
      const schema = op.requestBody?.content?.['application/json']?.schema;
      const body = schema ? (sample(schema as never, { skipReadOnly: true }, spec) as unknown) : undefined;
      const variants: [string, string, string | undefined, string?][] = [];
      const withQuery = (q: URLSearchParams) => (q.size > 0 ? `${path}?${q}` : path);
      if (!NO_VALID_SAMPLE.has(key))
        variants.push([
          'valid sample',
          withQuery(validQuery),
          body === undefined ? undefined : JSON.stringify(body),
        ]);
      for (const p of query) {
        const q = new URLSearchParams(validQuery);
        q.set(p.name, 'x'.repeat(3000));
        variants.push([`query ${p.name} long junk`, withQuery(q), undefined]);
      }
      if (schema) {
        variants.push(['invalid JSON', path, '{"unclosed": ']);
        variants.push(['text/plain body', path, JSON.stringify(body), 'text/plain']);
        variants.push(['array body', path, '[]']);
        variants.push(['null body', path, 'null']);
        variants.push(['empty object', path, '{}']);
        if (body && typeof body === 'object' && !Array.isArray(body)) {
          variants.push(['unknown field', path, JSON.stringify({ ...body, zzUnknown: 1 })]);
          for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
            const wrong = typeof v === 'string' ? 12345 : typeof v === 'number' ? 'NaN' : 'not-an-object';
            variants.push([`${k} of the wrong type`, path, JSON.stringify({ ...body, [k]: wrong })]);
            if (typeof v === 'number') {
              variants.push([`${k} huge`, path, JSON.stringify({ ...body, [k]: 1e308 })]);
              variants.push([`${k} negative`, path, JSON.stringify({ ...body, [k]: -1 })]);
              variants.push([`${k} tiny`, path, JSON.stringify({ ...body, [k]: 1e-300 })]);
            }
            if (typeof v === 'string')
              variants.push([`${k} long`, path, JSON.stringify({ ...body, [k]: 'é'.repeat(100_000) })]);
          }
        }
      }
      for (const [variant, url, b, ct] of variants) {
        requests++;
        let r: Sent;
        try {
          r = await send(method, url, variant, b, ct);
        } catch (err) {
          problems.push(`${key} [${variant}] → no answer: ${(err as Error).message}`);
          continue;
        }
        const documented = op.responses[String(r.status)] !== undefined || op.responses.default !== undefined;
        let codeOk = true;
        if (r.status >= 400) {
          try {
            const e = JSON.parse(r.body) as { error?: { code?: unknown; message?: unknown } };
            codeOk = typeof e.error?.code === 'string' && typeof e.error?.message === 'string';
          } catch {
            codeOk = false;
          }
        }
        if (r.status >= 500 || !documented || !codeOk)
          problems.push(
            `${key} [${variant}] → ${r.status}${documented ? '' : ' (not in the document)'}: ${r.body.slice(0, 200)}`,
          );
      }
    }
    expect(requests).toBeGreaterThan(300);
    expect(problems).toEqual([]);
  });

  it('still serves after all of it', async () => {
    expect(await d.api.request('GET', '/api/v1/health')).toBeTruthy();
    expect(testGuest().dir).toBeTruthy();
  });
});
