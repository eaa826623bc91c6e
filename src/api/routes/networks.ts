import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';

const NET_NAME = z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'lowercase letters, digits, -; up to 31');
const IPV4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, 'an IPv4 address');

const NetworkSchema = z
  .object({
    name: z.string(),
    type: z.enum(['nat', 'overlay', 'provider']).openapi({
      description:
        'nat: outbound NAT through passt, no host service reachable (the built-in "default"); overlay: an OVN logical switch across the hosts with its own subnet, DHCP and address management; provider: an OVN logical switch on a physical network of the hosts (VLAN tagged or not)',
    }),
    subnet: z.string().optional(),
    gateway: z.string().optional().openapi({ description: 'Kept for a router (not handed to a NIC)' }),
    dns: z.array(z.string()).optional(),
    mtu: z.number().optional(),
    physicalNetwork: z.string().optional().openapi({ description: "provider: the hosts' physical network" }),
    vlan: z.number().optional().openapi({ description: 'provider: its VLAN tag (absent: untagged)' }),
    dhcp: z.boolean().optional().openapi({ description: 'provider: whether OVN answers DHCP on it' }),
    createdAt: z.string().optional(),
    nics: z.number().openapi({ description: 'NICs attached to it' }),
    ports: z
      .array(
        z.object({
          vm: z.string(),
          vmId: z.string(),
          nic: z.string(),
          mac: z.string(),
          ip: z.string().optional().openapi({ description: 'The address OVN gave the NIC' }),
        }),
      )
      .optional()
      .openapi({ description: "An overlay network's NICs with their addresses (GET of one network)" }),
  })
  .openapi('Network');

/** `/networks`: what a NIC attaches to. */
export function networkRoutes(ctx: ApiContext) {
  const r = newRouter();
  const Param = z.object({ name: NET_NAME });
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Networks'],
      summary: 'Networks, with the number of NICs on each',
      responses: { 200: json(z.array(NetworkSchema), 'Networks'), ...errors },
    }),
    async (c) => c.json(await ctx.networks.list(), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Networks'],
      summary:
        'Create an overlay network (an OVN logical switch across the hosts: subnet, OVN DHCP and addresses, MTU) or a provider network (on a physical network of the hosts, VLAN tagged or not)',
      request: {
        body: {
          content: {
            'application/json': {
              schema: z
                .strictObject({
                  name: NET_NAME,
                  type: z.enum(['overlay', 'provider']),
                  subnet: z.string().min(9).max(18).openapi({ example: '10.10.0.0/24' }),
                  gateway: IPV4.optional().openapi({ description: "Default: the subnet's first address" }),
                  dns: z.array(IPV4).max(4).optional().openapi({ description: 'DNS servers DHCP hands out' }),
                  mtu: z.number().int().min(576).max(9000).optional().openapi({
                    description:
                      'Default 1442 on overlay networks (Geneve on a 1500 underlay), 1500 on provider ones',
                  }),
                  physicalNetwork: z
                    .string()
                    .regex(/^[a-z0-9][a-z0-9-]{0,11}$/)
                    .optional()
                    .openapi({
                      description:
                        'provider: the physical network every host maps with serve --provider-network NAME=IFACE (default "provider")',
                    }),
                  vlan: z
                    .number()
                    .int()
                    .min(1)
                    .max(4094)
                    .optional()
                    .openapi({ description: 'provider: a VLAN tag' }),
                  dhcp: z.boolean().optional().openapi({
                    description: "provider: OVN answers DHCP (default false: the network's own does)",
                  }),
                })
                .openapi('NewNetwork'),
            },
          },
          required: true,
        },
      },
      responses: { 201: json(NetworkSchema, 'The network'), ...errors },
    }),
    async (c) => c.json(await ctx.networks.create(c.req.valid('json')), 201),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{name}',
      tags: ['Networks'],
      summary: "A network; an overlay network's NICs with the addresses OVN gave them",
      request: { params: Param },
      responses: { 200: json(NetworkSchema, 'The network'), ...errors },
    }),
    async (c) => c.json(await ctx.networks.get(c.req.valid('param').name), 200),
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}',
      tags: ['Networks'],
      summary: 'Delete a network without NICs (409 in_use names the VMs that have one)',
      request: { params: Param },
      responses: { 204: { description: 'Deleted' }, ...errors },
    }),
    async (c) => {
      await ctx.networks.delete(c.req.valid('param').name);
      return c.body(null, 204);
    },
  );
  return r;
}
