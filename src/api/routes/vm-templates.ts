import { createRoute, z } from '@hono/zod-openapi';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { IdParam, Placement, VmSchema } from '../schemas';

export const CloneVmBody = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, 'letters, digits, . _ -; up to 63 characters')
      .openapi({ example: 'web-7' }),
    description: z.string().max(500).optional(),
    full: z.boolean().optional().openapi({
      description:
        'A full clone: disks independent of the template (its data copied in; slower, and the template may then go)',
    }),
    placement: Placement.optional().openapi({
      description:
        "Where the clone may run (default: the template's; a clone on shared storage may go anywhere)",
    }),
    snapshot: z.string().min(1).max(63).optional().openapi({
      description:
        "Clone any VM, running or not, from one of its snapshots: full copies of its disks as they were then, made on the VM's host",
    }),
  })
  .openapi('CloneVm');

/** Templates and linked clones. */
export function vmTemplateRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/template',
      tags: ['VMs'],
      summary:
        'Convert a stopped VM into a template (never powered on again; linked clones are made from it)',
      request: { params: IdParam },
      responses: { 200: json(VmSchema, 'The template'), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const vm = await ctx.tasks.run('vm.template', id, c.get('user'), () => ctx.actions.toTemplate(id));
      return c.json(vm, 200);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/clone',
      tags: ['VMs'],
      summary:
        'A new VM from a template (its hardware, new MAC addresses, linked clones of its disks), or from a snapshot of any VM (copies of its disks as they were then)',
      request: {
        params: IdParam,
        body: { content: { 'application/json': { schema: CloneVmBody } }, required: true },
      },
      responses: { 201: json(VmSchema, 'The new VM'), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      const vm = await ctx.tasks.run('vm.clone', `${id}->${b.name}`, c.get('user'), () =>
        ctx.vms.clone(id, b),
      );
      return c.json(vm, 201);
    },
  );
  return r;
}
