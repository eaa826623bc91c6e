import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { TAG } from '../schemas';

const NAME = z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'lowercase letters, digits, -; up to 31');

const Rule = z
  .strictObject({
    direction: z.enum(['in', 'out']).openapi({ description: "in: to the group's NICs; out: from them" }),
    protocol: z.enum(['any', 'tcp', 'udp', 'icmp']),
    ports: z
      .string()
      .regex(/^\d{1,5}(-\d{1,5})?$/)
      .optional()
      .openapi({
        description: 'tcp/udp: a port or a range such as 8000-8080 (absent: every port)',
        example: '22',
      }),
    remote: z.string().optional().openapi({
      description: 'The other side: an IPv4 CIDR (absent, and no remoteGroup: anywhere)',
      example: '10.0.0.0/8',
    }),
    remoteGroup: NAME.optional().openapi({ description: 'The other side: the NICs of this security group' }),
    action: z
      .enum(['allow', 'deny'])
      .optional()
      .openapi({ description: "Default allow; an admin group's deny wins over every tenant group's allow" }),
    log: z
      .boolean()
      .optional()
      .openapi({ description: "Log the flows it matches (rate limited) in the hosts' OVN log" }),
  })
  .openapi('SecurityRule');

const GroupSchema = z
  .object({
    name: z.string(),
    description: z.string().optional(),
    tags: z.array(z.string()).openapi({ description: 'The VMs carrying one of these tags are in the group' }),
    admin: z.boolean().optional(),
    rules: z.array(Rule),
    members: z.array(z.object({ vm: z.string(), vmId: z.string(), nic: z.string(), network: z.string() })),
    createdAt: z.string(),
  })
  .openapi('SecurityGroup');

/** `/security-groups`: stateful firewalls on NICs of OVN networks, by VM tag. */
export function securityGroupRoutes(ctx: ApiContext) {
  const r = newRouter();
  const Param = z.object({ name: NAME });
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Networks'],
      summary: 'Security groups, with their members',
      responses: { 200: json(z.array(GroupSchema), 'Security groups'), ...errors },
    }),
    async (c) => c.json(await ctx.securityGroups.list(), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Networks'],
      summary:
        'Create a security group: the NICs (on overlay and provider networks) of VMs with one of its tags receive and send only what its rules allow (replies pass); default rules: everything out, nothing in',
      request: {
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({
                  name: NAME,
                  description: z.string().max(200).optional(),
                  tags: z.array(TAG).max(32).optional(),
                  admin: z
                    .boolean()
                    .optional()
                    .openapi({ description: "Its rules come before every other group's" }),
                  rules: z.array(Rule).max(1000).optional(),
                })
                .openapi('NewSecurityGroup'),
            },
          },
          required: true,
        },
      },
      responses: { 201: json(GroupSchema, 'The group'), ...errors },
    }),
    async (c) => c.json(await ctx.securityGroups.create(c.req.valid('json')), 201),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{name}',
      tags: ['Networks'],
      summary: 'A security group and its members',
      request: { params: Param },
      responses: { 200: json(GroupSchema, 'The group'), ...errors },
    }),
    async (c) => c.json(await ctx.securityGroups.get(c.req.valid('param').name), 200),
  );
  r.openapi(
    createRoute({
      method: 'patch',
      path: '/{name}',
      tags: ['Networks'],
      summary: 'Change the description, the tags or the rules (each given list replaces the old one)',
      request: {
        params: Param,
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({
                  description: z.string().max(200).optional(),
                  tags: z.array(TAG).max(32).optional(),
                  rules: z.array(Rule).max(1000).optional(),
                })
                .openapi('SecurityGroupChange'),
            },
          },
          required: true,
        },
      },
      responses: { 200: json(GroupSchema, 'The group'), ...errors },
    }),
    async (c) => c.json(await ctx.securityGroups.update(c.req.valid('param').name, c.req.valid('json')), 200),
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}',
      tags: ['Networks'],
      summary: "Delete a security group (409 in_use when another group's rules name it)",
      request: { params: Param },
      responses: { 204: { description: 'Deleted' }, ...errors },
    }),
    async (c) => {
      await ctx.securityGroups.delete(c.req.valid('param').name);
      return c.body(null, 204);
    },
  );
  return r;
}
