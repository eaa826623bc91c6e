import { streamSSE } from 'hono/streaming';
import type { ApiContext } from '../context';
import type { LiveEvent } from '../events';
import { newRouter } from '../router';

/**
 * GET /api/v1/events: server-sent events (`vm` and `task`), so pages update without polling. A comment
 * line every 15 s keeps proxies from closing an idle stream.
 */
export function eventRoutes(ctx: ApiContext) {
  const r = newRouter();
  r.get('/', (c) =>
    streamSSE(c, async (stream) => {
      const queue: LiveEvent[] = [];
      let wake: (() => void) | undefined;
      const unsubscribe = ctx.events.subscribe((e) => {
        queue.push(e);
        wake?.();
      });
      stream.onAbort(() => {
        unsubscribe();
        wake?.();
      });
      await stream.writeSSE({ event: 'hello', data: JSON.stringify({ user: c.get('user') }) });
      while (!stream.aborted) {
        const e = queue.shift();
        if (e) {
          await stream.writeSSE({ event: e.type, data: JSON.stringify(e) });
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 15_000);
        });
        wake = undefined;
        if (queue.length === 0 && !stream.aborted) await stream.write(': keep-alive\n\n');
      }
      unsubscribe();
    }),
  );
  return r;
}
