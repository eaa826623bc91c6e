import type { MiddlewareHandler } from 'hono';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { procRssBytes } from '../util/proc';
import type { ApiContext, Env } from './context';

export const registry = new Registry();

const requests = new Counter({
  name: 'neuroflow_api_requests_total',
  help: 'API requests by method, route and status',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
});
const latency = new Histogram({
  name: 'neuroflow_api_request_duration_seconds',
  help: 'API request latency',
  labelNames: ['method', 'route'] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30],
  registers: [registry],
});
const vmsByState = new Gauge({
  name: 'neuroflow_vms',
  help: 'VMs by state',
  labelNames: ['state'] as const,
  registers: [registry],
});
const rss = new Gauge({
  name: 'neuroflow_process_resident_memory_bytes',
  help: 'RSS of the daemon',
  registers: [registry],
});
const hostMem = new Gauge({
  name: 'neuroflow_node_memory_available_bytes',
  help: 'Host memory available',
  registers: [registry],
});

export function requestMetrics(): MiddlewareHandler<Env> {
  return async (c, next) => {
    const end = latency.startTimer();
    await next();
    // The matched route pattern, not the raw path: ids would blow up the label space.
    const route = c.req.routePath || 'unmatched';
    end({ method: c.req.method, route });
    requests.inc({ method: c.req.method, route, status: String(c.res.status) });
  };
}

export async function renderMetrics(ctx: ApiContext): Promise<string> {
  vmsByState.reset();
  try {
    const counts = new Map<string, number>();
    for (const vm of await ctx.vms.list()) counts.set(vm.state, (counts.get(vm.state) ?? 0) + 1);
    for (const state of [
      'pending',
      'stopped',
      'starting',
      'running',
      'stopping',
      'paused',
      'error',
      'unknown',
    ])
      vmsByState.set({ state }, counts.get(state) ?? 0);
  } catch {
    // etcd down: report what we can.
  }
  rss.set(procRssBytes() ?? 0);
  hostMem.set((await ctx.node.info()).memoryAvailableBytes);
  return registry.metrics();
}
