/** Live updates for the UI and scripts: VM state changes and task progress, fanned out to listeners. */
export type LiveEvent =
  | { type: 'vm'; id: string; state: string; reason?: string; agent?: string }
  | {
      type: 'task';
      id: string;
      taskType: string;
      target: string;
      status: string;
      progress: number;
      error?: string;
    };

export class EventBus {
  private readonly listeners = new Set<(e: LiveEvent) => void>();

  publish(e: LiveEvent): void {
    for (const l of this.listeners) l(e);
  }

  subscribe(l: (e: LiveEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
