import { beforeEach, describe, expect, it } from 'vitest';
import { applyTaskEvent, getState, putTask, setState, sinceTaskEvent } from './store';

const event = (over: Record<string, unknown> = {}) => ({
  id: 't1',
  type: '',
  taskType: 'vm.migrate',
  target: 'web1',
  status: 'running' as const,
  progress: 0.2,
  ...over,
});

describe('task events in the store', () => {
  beforeEach(() => setState({ tasks: [] }));

  it('notes when a running task last had an event; nothing for a task without one', () => {
    expect(sinceTaskEvent('t1', 10_000)).toBe(Number.POSITIVE_INFINITY);
    applyTaskEvent(event({ details: { phase: 'memory' } }), 10_000);
    expect(sinceTaskEvent('t1', 12_500)).toBe(2_500);
    applyTaskEvent(event({ progress: 0.5 }), 12_000);
    expect(sinceTaskEvent('t1', 12_500)).toBe(500);
    const [t] = getState().tasks;
    expect(t).toMatchObject({ id: 't1', type: 'vm.migrate', progress: 0.5, details: { phase: 'memory' } });
  });

  it('forgets an ended task, and a late GET answer saying running does not undo the end', () => {
    applyTaskEvent(event(), 1_000);
    const ended = applyTaskEvent(event({ status: 'ok', progress: 1, result: { downtimeMs: 40 } }), 2_000);
    expect(ended.endedAt).toBe(new Date(2_000).toISOString());
    expect(sinceTaskEvent('t1', 3_000)).toBe(Number.POSITIVE_INFINITY);
    putTask({ id: 't1', type: 'vm.migrate', target: 'web1', status: 'running', progress: 0.9 });
    expect(getState().tasks[0]).toMatchObject({ status: 'ok', result: { downtimeMs: 40 } });
  });

  it('turns an error message into the API error shape', () => {
    applyTaskEvent(event({ id: 't2', status: 'error', error: 'host gone' }), 1_000);
    expect(getState().tasks[0]!.error).toEqual({ code: 'error', message: 'host gone' });
  });
});
