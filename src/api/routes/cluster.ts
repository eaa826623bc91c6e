import { createRoute, z } from '@hono/zod-openapi';
import { checkCpuDefault } from '../../controller/cpu-default';
import { keys } from '../../controller/records';
import { DEFAULT_POLICY, type SchedPolicy } from '../../controller/scheduler';
import { NfError } from '../../errors';
import { createLogger } from '../../util/log';
import { CLIENT_ADDRESS_HEADER } from '../auth';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import {
  ClusterPatch,
  ClusterSchema,
  CreateJoinToken,
  JoinRequestSchema,
  JoinTokenSchema,
  PolicySchema,
} from '../schemas';

const log = createLogger('cluster-api');
const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });

export function clusterRoutes(ctx: ApiContext) {
  const r = newRouter();
  const policy = async (): Promise<SchedPolicy> => ({
    ...DEFAULT_POLICY,
    ...(await ctx.store.get<SchedPolicy>(keys.policy))?.value,
  });
  const cluster = () => {
    if (!ctx.cluster)
      throw new NfError(
        'invalid_state',
        'this host runs alone (serve --dev): there is no cluster to join; start serve without --dev for a cluster',
      );
    return ctx.cluster;
  };

  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Cluster'],
      summary: 'The cluster: name, leader, etcd members',
      responses: { 200: json(ClusterSchema, 'Cluster'), ...errors },
    }),
    async (c) =>
      c.json(
        {
          name: ctx.cluster?.name ?? ctx.node.localName,
          policy: await policy(),
          mode: ctx.cluster ? ('cluster' as const) : ('single-host' as const),
          leader: (await ctx.leadership.leaderName().catch(() => undefined)) ?? null,
          caFingerprint: ctx.cluster?.caFingerprint ?? null,
          cpu: await ctx.vms.cpuDefault(),
          etcdMembers: ctx.cluster ? await ctx.cluster.membership.members() : [],
        },
        200,
      ),
  );
  r.openapi(
    createRoute({
      method: 'patch',
      path: '/',
      tags: ['Cluster'],
      summary:
        'Change the placement policy (strategy, memory and vCPU overcommit); applies to new placements and power-ons',
      request: { body: { content: { 'application/json': { schema: ClusterPatch } }, required: true } },
      responses: { 200: json(PolicySchema, 'The policy now'), ...errors },
    }),
    async (c) => {
      const change = c.req.valid('json').policy;
      if (change.defaultCpuModel !== undefined) checkCpuDefault(change.defaultCpuModel);
      const next = await ctx.tasks.run('cluster.policy', 'cluster', c.get('user'), async () => {
        const cur = await ctx.store.get<SchedPolicy>(keys.policy);
        const value: SchedPolicy = { ...DEFAULT_POLICY, ...cur?.value, ...change };
        await ctx.store.txn({
          when: [cur ? { key: cur.key, revision: cur.revision } : { key: keys.policy, absent: true }],
          put: [{ key: keys.policy, value }],
        });
        return value;
      });
      return c.json(next, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/ca',
      tags: ['Cluster'],
      summary:
        "The cluster CA certificate (public; a joining host checks it against the token's fingerprint)",
      responses: {
        200: json(z.object({ certificate: z.string(), fingerprint: z.string() }), 'CA certificate (PEM)'),
        ...errors,
      },
    }),
    async (c) => c.json({ certificate: cluster().caPem, fingerprint: cluster().caFingerprint }, 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/join',
      tags: ['Cluster'],
      summary:
        "A host joins with a token's id and secret and a CSR; it receives its certificate (no bearer token)",
      request: { body: { content: { 'application/json': { schema: JoinRequestSchema } }, required: true } },
      responses: { 200: json(z.record(z.string(), z.unknown()), 'Certificate and cluster facts'), ...errors },
    }),
    async (c) => {
      const req = c.req.valid('json');
      // Anyone may call this: only an admitted host gets a task (the audit trail); refusals are logged.
      let res: Awaited<ReturnType<ReturnType<typeof cluster>['join']['join']>>;
      try {
        res = await cluster().join.join(req, c.req.header(CLIENT_ADDRESS_HEADER));
      } catch (err) {
        log.warn('join refused', { name: req.name, address: req.address, err: (err as Error).message });
        throw err;
      }
      await ctx.tasks.run('node.join', req.name, `join-token:${req.tokenId}`, async () => undefined);
      return c.json(res as unknown as Record<string, unknown>, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/join-tokens',
      tags: ['Cluster'],
      summary: 'Create a single-use join token (the answer is the only place the token appears)',
      request: { body: { content: { 'application/json': { schema: CreateJoinToken } }, required: true } },
      responses: { 201: json(JoinTokenSchema, 'Token'), ...errors },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const t = await ctx.tasks.run('join-token.create', 'cluster', c.get('user'), () =>
        cluster().join.createToken({
          ttlSec: b.ttlSec,
          user: c.get('user'),
          role: b.role,
          ...(b.description ? { description: b.description } : {}),
        }),
      );
      return c.json(t, 201);
    },
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/join-tokens',
      tags: ['Cluster'],
      summary: 'Join tokens (without their secrets)',
      responses: { 200: json(z.array(JoinTokenSchema), 'Tokens'), ...errors },
    }),
    async (c) => c.json(await cluster().join.listTokens(), 200),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/join-tokens/{id}',
      tags: ['Cluster'],
      summary: 'One join token (without its secret)',
      request: { params: IdParam },
      responses: { 200: json(JoinTokenSchema, 'Token'), ...errors },
    }),
    async (c) => c.json(await cluster().join.getToken(c.req.valid('param').id), 200),
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/join-tokens/{id}',
      tags: ['Cluster'],
      summary: 'Revoke a join token',
      request: { params: IdParam },
      responses: { 204: { description: 'Revoked' }, ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await ctx.tasks.run('join-token.revoke', id, c.get('user'), () => cluster().join.revokeToken(id));
      return c.body(null, 204);
    },
  );
  return r;
}
