import { describe, expect, it } from 'vitest';
import { explain } from './tools';

describe('explain', () => {
  it('keeps the tool’s own words and names a refused key', () => {
    const err = [
      '2026-12-06T10:07:37.365+0000 7fe2117006c0 -1 monclient(hunting): handle_auth_bad_method server allowed_methods [2] but i only support [2]',
      "rbd: couldn't connect to the cluster!",
    ].join('\n');
    expect(explain(err)).toBe(
      "authentication refused (wrong user or key, or the user lacks the caps): rbd: couldn't connect to the cluster!",
    );
  });

  it('says when no monitor answers', () => {
    expect(explain('[errno 110] RADOS timed out (error connecting to the cluster)')).toMatch(
      /^no monitor answered/,
    );
  });

  it('falls back to the log lines when there is nothing else', () => {
    expect(explain('2026-12-06T10:07:37.365+0000 7fe2117006c0 -1 something odd')).toContain('something odd');
  });
});
