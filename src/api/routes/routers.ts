import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';

const NAME = z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'lowercase letters, digits, -; up to 31');
const IPV4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, 'an IPv4 address');
const CIDR = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'an IPv4 CIDR');

const Route = z
  .strictObject({
    destination: CIDR.openapi({ example: '10.99.0.0/16' }),
    nexthop: IPV4.openapi({ description: "An address on one of the router's networks" }),
  })
  .openapi('StaticRoute');
const Uplink = z
  .strictObject({
    network: NAME.openapi({ description: 'A provider network' }),
    ip: IPV4.optional().openapi({
      description: "The router's address there (default: the highest free one)",
    }),
    snat: z
      .boolean()
      .optional()
      .openapi({ description: 'SNAT of the inside networks to that address (default true)' }),
  })
  .openapi('RouterUplink');

const RouterSchema = z
  .object({
    name: z.string(),
    networks: z
      .array(z.string())
      .openapi({ description: "Overlay networks it joins (its port has each one's gateway)" }),
    uplink: z.object({ network: z.string(), ip: z.string(), snat: z.boolean() }).optional(),
    routes: z.array(z.object({ destination: z.string(), nexthop: z.string() })),
    floatingIps: z.array(
      z.object({
        ip: z.string(),
        vmId: z.string(),
        vm: z.string().optional(),
        nic: z.string(),
        internalIp: z.string().optional().openapi({ description: "The NIC's address it leads to" }),
      }),
    ),
    gatewayHosts: z.array(z.string()).optional().openapi({
      description: 'Hosts its uplink can be active on, highest priority first (GET of one router)',
    }),
    createdAt: z.string(),
  })
  .openapi('Router');

/** `/routers`: OVN logical routers between networks, with an uplink, floating IPs and static routes. */
export function routerRoutes(ctx: ApiContext) {
  const r = newRouter();
  const Param = z.object({ name: NAME });
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Networks'],
      summary: 'Routers',
      responses: { 200: json(z.array(RouterSchema), 'Routers'), ...errors },
    }),
    async (c) => c.json(await ctx.routers.list(), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Networks'],
      summary:
        'Create a router joining overlay networks (no two overlapping, none on another router), with an optional uplink on a provider network (SNAT out) and static routes',
      request: {
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({
                  name: NAME,
                  networks: z.array(NAME).max(64).optional(),
                  uplink: Uplink.optional(),
                  routes: z.array(Route).max(256).optional(),
                })
                .openapi('NewRouter'),
            },
          },
          required: true,
        },
      },
      responses: { 201: json(RouterSchema, 'The router'), ...errors },
    }),
    async (c) => c.json(await ctx.routers.create(c.req.valid('json')), 201),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{name}',
      tags: ['Networks'],
      summary: 'A router, with the hosts its uplink can be active on',
      request: { params: Param },
      responses: { 200: json(RouterSchema, 'The router'), ...errors },
    }),
    async (c) => c.json(await ctx.routers.get(c.req.valid('param').name), 200),
  );
  r.openapi(
    createRoute({
      method: 'patch',
      path: '/{name}',
      tags: ['Networks'],
      summary:
        'Change the networks, the uplink (null: none) or the static routes (each given list replaces the old one); what stays keeps forwarding',
      request: {
        params: Param,
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({
                  networks: z.array(NAME).max(64).optional(),
                  uplink: Uplink.nullable().optional(),
                  routes: z.array(Route).max(256).optional(),
                })
                .openapi('RouterChange'),
            },
          },
          required: true,
        },
      },
      responses: { 200: json(RouterSchema, 'The router'), ...errors },
    }),
    async (c) => c.json(await ctx.routers.update(c.req.valid('param').name, c.req.valid('json')), 200),
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}',
      tags: ['Networks'],
      summary: 'Delete a router without floating IPs (409 in_use lists them)',
      request: { params: Param },
      responses: { 204: { description: 'Deleted' }, ...errors },
    }),
    async (c) => {
      await ctx.routers.delete(c.req.valid('param').name);
      return c.body(null, 204);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{name}/floating-ips',
      tags: ['Networks'],
      summary:
        "Give a VM's NIC (on one of the router's networks) an address of the uplink network: DNAT in, SNAT out",
      request: {
        params: Param,
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({
                  vm: z.string().min(1).openapi({ description: 'VM name or id' }),
                  nic: z
                    .string()
                    .optional()
                    .openapi({ description: "Default: its first NIC on the router's networks" }),
                  ip: IPV4.optional().openapi({
                    description: 'Default: the highest free address of the uplink network',
                  }),
                })
                .openapi('NewFloatingIp'),
            },
          },
          required: true,
        },
      },
      responses: { 201: json(RouterSchema, 'The router'), ...errors },
    }),
    async (c) => c.json(await ctx.routers.addFloatingIp(c.req.valid('param').name, c.req.valid('json')), 201),
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}/floating-ips/{ip}',
      tags: ['Networks'],
      summary: 'Release a floating IP',
      request: { params: z.object({ name: NAME, ip: IPV4 }) },
      responses: { 204: { description: 'Released' }, ...errors },
    }),
    async (c) => {
      const p = c.req.valid('param');
      await ctx.routers.removeFloatingIp(p.name, p.ip);
      return c.body(null, 204);
    },
  );
  return r;
}
