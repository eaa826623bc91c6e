/**
 * OpenAPI links: an operation that makes (or answers with) a resource tells a client, or a generator
 * driven by the document, which operations it can call next on that resource and with which value. A
 * created VM's answer links to every route under /api/v1/vms/{id} with `id` from the answer's body; a
 * 202 that answers with a task links to the task's routes. Only POST answers (201/202) carry links: they
 * are where a client learns a new id.
 */

type Json = Record<string, unknown>;

/** Where each resource (a component schema of the document) lives: its item path and the field that fills it. */
export const LINKED_RESOURCES: Record<string, { path: string; field: string }> = {
  Vm: { path: '/api/v1/vms/{id}', field: 'id' },
  Task: { path: '/api/v1/tasks/{id}', field: 'id' },
  Image: { path: '/api/v1/images/{id}', field: 'id' },
  Network: { path: '/api/v1/networks/{name}', field: 'name' },
  Router: { path: '/api/v1/routers/{name}', field: 'name' },
  SecurityGroup: { path: '/api/v1/security-groups/{name}', field: 'name' },
  Pool: { path: '/api/v1/pools/{name}', field: 'name' },
};

const METHODS = ['get', 'put', 'post', 'patch', 'delete'];

/** A JSON pointer token (RFC 6901). */
const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** The link name of an operation on an item: its method and the path after the item (`post_start`). */
function linkName(method: string, item: string, path: string): string {
  const rest = path
    .slice(item.length)
    .replace(/[{}]/g, '')
    .replace(/[^a-zA-Z0-9.\-_]+/g, '_');
  return `${method}${rest}`.replace(/_+$/, '');
}

/** The document with links on the POST answers that carry a linked resource (changed in place). */
export function addLinks<T extends { paths?: Json }>(doc: T): T {
  const paths = (doc.paths ?? {}) as Record<string, Record<string, Json>>;
  const targets = new Map<string, Json>();
  for (const [name, res] of Object.entries(LINKED_RESOURCES)) {
    const param = /\{(\w+)\}$/.exec(res.path)![1]!;
    const links: Json = {};
    for (const [path, ops] of Object.entries(paths)) {
      if (path !== res.path && !path.startsWith(`${res.path}/`)) continue;
      // only operations the one value fills (no second path parameter to guess)
      if ((path.match(/\{\w+\}/g) ?? []).length !== 1) continue;
      for (const method of METHODS) {
        const op = ops[method];
        if (!op) continue;
        links[linkName(method, res.path, path)] = {
          operationRef: `#/paths/${pointer(path)}/${method}`,
          parameters: { [param]: `$response.body#/${res.field}` },
          ...(typeof op.summary === 'string' ? { description: op.summary } : {}),
        };
      }
    }
    if (Object.keys(links).length > 0) targets.set(`#/components/schemas/${name}`, links);
  }
  for (const ops of Object.values(paths)) {
    const responses = ops.post?.responses as Record<string, Json> | undefined;
    for (const [status, response] of Object.entries(responses ?? {})) {
      if (status !== '201' && status !== '202') continue;
      const content = response.content as Record<string, { schema?: Json }> | undefined;
      const ref = content?.['application/json']?.schema?.$ref;
      const links = typeof ref === 'string' ? targets.get(ref) : undefined;
      if (links) response.links = links;
    }
  }
  return doc;
}
