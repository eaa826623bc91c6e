import type { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import { NfError, toNfError } from '../errors';
import { createLogger } from '../util/log';
import { checkWrites, limitBodies, requireToken } from './auth';
import type { ApiContext, Env } from './context';
import { addLinks } from './links';
import { requestMetrics } from './metrics';
import { newRouter } from './router';
import { authRoutes } from './routes/auth';
import { backupJobRoutes, backupRepositoryRoutes, backupRoutes, vmBackupRoutes } from './routes/backups';
import { cephRoutes } from './routes/ceph';
import { clusterRoutes } from './routes/cluster';
import { drsRoutes } from './routes/drs';
import { eventRoutes } from './routes/events';
import { guestRoutes } from './routes/guest';
import { haRoutes, vmHaRoutes } from './routes/ha';
import { imageRoutes } from './routes/images';
import { importRoutes } from './routes/imports';
import { networkRoutes } from './routes/networks';
import { nodeRoutes } from './routes/nodes';
import { poolRoutes } from './routes/pools';
import { routerRoutes } from './routes/routers';
import { securityGroupRoutes } from './routes/security-groups';
import { systemRoutes } from './routes/system';
import { taskRoutes } from './routes/tasks';
import { vmDiskRoutes } from './routes/vm-disks';
import { vmMigrateRoutes } from './routes/vm-migrate';
import { vmTemplateRoutes } from './routes/vm-templates';
import { vmRoutes } from './routes/vms';
import { uiRoutes } from './ui';

const log = createLogger('api');

/** Errors from Hono itself (malformed JSON, body limits) become our codes too. */
function asNfError(err: unknown): NfError {
  if (err instanceof HTTPException) {
    if (err.status === 400) return new NfError('validation_failed', `bad request body: ${err.message}`);
    if (err.status === 413) return new NfError('payload_too_large', err.message);
    if (err.status === 401) return new NfError('unauthenticated', err.message);
    if (err.status === 415) return new NfError('unsupported_media_type', err.message);
  }
  return toNfError(err);
}

export function createApp(ctx: ApiContext): OpenAPIHono<Env> {
  const app = newRouter();
  app.use('*', requestMetrics());
  app.onError((err, c) => {
    const e = asNfError(err);
    if (e.httpStatus >= 500)
      log.error('request failed', { method: c.req.method, path: c.req.path, code: e.code, msg: e.message });
    return c.json(e.toBody(), e.httpStatus as 400);
  });
  app.route('/', uiRoutes());
  app.notFound((c) =>
    c.json(new NfError('not_found', `no route ${c.req.method} ${c.req.path}`).toBody(), 404),
  );

  app.route('/', systemRoutes(ctx));
  const api = newRouter();
  api.use('*', requireToken(ctx.adminTokenHash, ctx.sessions));
  api.use('*', limitBodies());
  api.use('*', checkWrites());
  api.route('/auth', authRoutes(ctx));
  api.route('/events', eventRoutes(ctx));
  api.route('/vms', vmRoutes(ctx));
  api.route('/vms', guestRoutes(ctx));
  api.route('/vms', vmDiskRoutes(ctx));
  api.route('/vms', vmMigrateRoutes(ctx));
  api.route('/vms', vmTemplateRoutes(ctx));
  api.route('/vms', vmHaRoutes(ctx));
  api.route('/images', imageRoutes(ctx));
  api.route('/vms', vmBackupRoutes(ctx));
  api.route('/imports', importRoutes(ctx));
  api.route('/backup/repositories', backupRepositoryRoutes(ctx));
  api.route('/backups', backupRoutes(ctx));
  api.route('/networks', networkRoutes(ctx));
  api.route('/routers', routerRoutes(ctx));
  api.route('/security-groups', securityGroupRoutes(ctx));
  api.route('/backup/jobs', backupJobRoutes(ctx));
  api.route('/nodes', nodeRoutes(ctx));
  api.route('/pools', poolRoutes(ctx));
  api.route('/ceph', cephRoutes(ctx));
  api.route('/cluster', clusterRoutes(ctx));
  api.route('/tasks', taskRoutes(ctx));
  api.route('/drs', drsRoutes(ctx));
  api.route('/ha', haRoutes(ctx));
  app.route('/api/v1', api);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  // the document, with links from what POST answers make to the routes on it (src/api/links.ts)
  let doc: unknown;
  app.get('/api/v1/openapi.json', (c) => {
    doc ??= addLinks(
      app.getOpenAPIDocument({
        openapi: '3.0.3',
        info: {
          title: 'NeuroFlow API',
          version: ctx.version,
          description: 'Manage virtual machines, images and hosts.',
        },
        security: [{ bearer: [] }],
      }),
    );
    return c.json(doc as object);
  });
  return app;
}
