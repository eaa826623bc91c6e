import { createRoute, z } from '@hono/zod-openapi';
import { NfError } from '../../errors';
import type { ApiContext } from '../context';
import { errors, json } from '../openapi';
import { newRouter } from '../router';
import { CopyImageBody, IdParam, ImageSchema, ImportImageBody, UploadImageQuery } from '../schemas';

const TAG = ['Images'];

function view(img: { file?: string } & z.infer<typeof ImageSchema>) {
  const { file: _f, ...rest } = img;
  return rest;
}

export function imageRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: TAG,
      summary: 'List images',
      responses: { 200: json(z.array(ImageSchema), 'Images'), ...errors },
    }),
    async (c) => c.json((await ctx.images.list()).map(view), 200),
  );
  r.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: TAG,
      summary: 'Get an image',
      request: { params: IdParam },
      responses: { 200: json(ImageSchema, 'Image'), ...errors },
    }),
    async (c) => c.json(view((await ctx.images.find(c.req.valid('param').id)).value), 200),
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/import',
      tags: TAG,
      summary: 'Copy an ISO or disk image from a host path into a pool',
      request: { body: { content: { 'application/json': { schema: ImportImageBody } }, required: true } },
      responses: { 201: json(ImageSchema, 'Imported'), ...errors },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const img = await ctx.tasks.run('image.import', b.name, c.get('user'), () => ctx.images.importFile(b));
      return c.json(view(img), 201);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: TAG,
      summary: 'Upload an ISO or disk image (raw request body, streamed; optional sha256 is verified)',
      request: {
        query: UploadImageQuery,
        body: {
          content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
          required: true,
        },
      },
      responses: { 201: json(ImageSchema, 'Uploaded'), ...errors },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const stream = c.req.raw.body;
      if (!stream) throw new NfError('validation_failed', 'send the image as the request body');
      const img = await ctx.tasks.run('image.upload', q.name, c.get('user'), () =>
        ctx.images.upload({ ...q, body: stream, maxBytes: ctx.maxUploadBytes }),
      );
      return c.json(view(img), 201);
    },
  );
  r.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: TAG,
      summary: 'Delete an image (refused while a VM uses it)',
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await ctx.tasks.run('image.delete', id, c.get('user'), () => ctx.images.delete(id));
      return c.body(null, 204);
    },
  );
  r.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/copy',
      tags: TAG,
      summary: 'Copy a disk image into a shared pool: VMs on every host then use it as linked clones',
      request: {
        params: IdParam,
        body: { content: { 'application/json': { schema: CopyImageBody } }, required: true },
      },
      responses: { 201: json(ImageSchema, 'The new image'), ...errors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      const img = await ctx.tasks.run('image.copy', `${id}->${b.pool}`, c.get('user'), () =>
        ctx.images.copyToPool(id, b),
      );
      return c.json(view(img), 201);
    },
  );
  return r;
}
