import { describe, expect, it } from 'vitest';
import { chipTags, MAX_TAGS, parseTags, sameTags, TAG, tagsPatch, tagsText } from './tags';

describe('a tag', () => {
  it('is what the API takes', () => {
    for (const ok of ['nightly', 'env:prod', 'a', '0', 'backup-nightly', 'a_b.c:d-e', 'x'.repeat(63)])
      expect(TAG.test(ok)).toBe(true);
    for (const bad of ['', 'Env', '-a', ':a', '_a', '.a', 'a b', 'a,b', 'é', 'a/b', 'x'.repeat(64)])
      expect(TAG.test(bad)).toBe(false);
  });
});

describe('tags as typed', () => {
  it('are split on commas and spaces, sorted and de-duplicated', () => {
    expect(parseTags('')).toEqual({ tags: [], problem: '' });
    expect(parseTags(' , ')).toEqual({ tags: [], problem: '' });
    expect(parseTags('nightly, env:prod')).toEqual({ tags: ['env:prod', 'nightly'], problem: '' });
    expect(parseTags('b a,b\n c,,a')).toEqual({ tags: ['a', 'b', 'c'], problem: '' });
  });
  it('say which are not tags', () => {
    expect(parseTags('nightly Env').problem).toBe(
      '"Env" is not a tag: lowercase letters, digits, _ . : - (up to 63, starting with a letter or digit).',
    );
    expect(parseTags('-a, B, ok').problem).toMatch(/^"-a", "B" are not tags: lowercase/);
    expect(parseTags('Env').tags).toEqual([]);
  });
  it(`are at most ${MAX_TAGS}`, () => {
    const many = Array.from({ length: MAX_TAGS + 1 }, (_, i) => `t${i}`);
    expect(parseTags(many.slice(0, MAX_TAGS).join(' ')).problem).toBe('');
    expect(parseTags(many.join(' ')).problem).toBe(`At most ${MAX_TAGS} tags (${MAX_TAGS + 1} given).`);
    // repeats count once
    expect(parseTags([...many.slice(0, MAX_TAGS), 't0'].join(' ')).problem).toBe('');
  });
  it('fill an input', () => {
    expect(tagsText(['env:prod', 'nightly'])).toBe('env:prod, nightly');
    expect(tagsText(undefined)).toBe('');
    // read back as they were
    expect(parseTags(tagsText(['env:prod', 'nightly'])).tags).toEqual(['env:prod', 'nightly']);
  });
});

describe('the PATCH of the tags', () => {
  it('replaces them, [] removes them, nothing when they are the same', () => {
    expect(tagsPatch(['a'], 'a, b')).toEqual({ tags: ['a', 'b'] });
    expect(tagsPatch(['a', 'b'], '')).toEqual({ tags: [] });
    expect(tagsPatch(undefined, 'nightly')).toEqual({ tags: ['nightly'] });
    expect(tagsPatch(['a', 'b'], 'b a a')).toEqual({});
    expect(tagsPatch(undefined, ' ')).toEqual({});
    expect(tagsPatch(['a'], 'a Bad')).toBeUndefined();
  });
  it('compares tags whatever their order and repeats', () => {
    expect(sameTags(['a', 'b'], ['b', 'a', 'a'])).toBe(true);
    expect(sameTags(undefined, [])).toBe(true);
    expect(sameTags(['a'], ['a', 'b'])).toBe(false);
  });
});

describe('tag chips', () => {
  it('show the first ones and how many more', () => {
    expect(chipTags(['a', 'b', 'c', 'd', 'e'], 3)).toEqual({ shown: ['a', 'b', 'c'], more: 2 });
    expect(chipTags(['a', 'b'], 3)).toEqual({ shown: ['a', 'b'], more: 0 });
    expect(chipTags(undefined, 3)).toEqual({ shown: [], more: 0 });
  });
});
