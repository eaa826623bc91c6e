import { QmpTimeoutError } from './errors';
import type { QmpEvent } from './protocol';

export type QmpEventListener = (ev: QmpEvent) => void;

export interface WaitForEventOptions {
  /** Default 10000. Infinity waits until the event arrives or the connection closes. */
  timeoutMs?: number;
  match?: (ev: QmpEvent) => boolean;
}

/** Listener registry and event waits; owned by QmpClient. */
export class EventHub {
  private readonly listeners = new Set<QmpEventListener>();
  private readonly waiterAborts = new Set<(err: Error) => void>();

  on(listener: QmpEventListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  emit(ev: QmpEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(ev);
      } catch (err) {
        // Surface listener bugs without breaking the socket read loop.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  wait(name: string, opts: WaitForEventOptions = {}): Promise<QmpEvent> {
    const { timeoutMs = 10_000, match } = opts;
    return new Promise<QmpEvent>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = (fn: () => void) => {
        unsubscribe();
        this.waiterAborts.delete(abort);
        clearTimeout(timer);
        fn();
      };
      const unsubscribe = this.on((ev) => {
        if (ev.event !== name) return;
        let ok: boolean;
        try {
          ok = match ? match(ev) : true;
        } catch (err) {
          settle(() => reject(err));
          return;
        }
        if (ok) settle(() => resolve(ev));
      });
      const abort = (err: Error) => settle(() => reject(err));
      this.waiterAborts.add(abort);
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => abort(new QmpTimeoutError(`event ${name}`, timeoutMs)), timeoutMs);
      }
    });
  }

  /** Rejects every outstanding wait and drops all listeners. */
  shutdown(err: Error): void {
    for (const abort of [...this.waiterAborts]) abort(err);
    this.listeners.clear();
  }
}
