/**
 * VM tags: lowercase labels that group VMs (`env:prod`, `nightly`); backup jobs select VMs by tag. The
 * API sorts and de-duplicates them; a VM carries at most MAX_TAGS.
 */

/** A tag, as the API checks it (src/api/schemas.ts TAG). */
export const TAG = /^[a-z0-9][a-z0-9_.:-]{0,62}$/;

/** The most tags a VM (or a backup job's selection) carries. */
export const MAX_TAGS = 32;

/** What a tag is, for the messages. */
export const TAG_RULE = 'lowercase letters, digits, _ . : - (up to 63, starting with a letter or digit)';

/** The tags as typed: a comma- or space-separated list; sorted, unique, with what is wrong ('' when right). */
export function parseTags(text: string): { tags: string[]; problem: string } {
  const words = text.split(/[\s,]+/).filter(Boolean);
  const bad = words.filter((w) => !TAG.test(w));
  const tags = [...new Set(words.filter((w) => TAG.test(w)))].sort();
  let problem = '';
  if (bad.length === 1) problem = `"${bad[0]}" is not a tag: ${TAG_RULE}.`;
  else if (bad.length > 1) problem = `${bad.map((b) => `"${b}"`).join(', ')} are not tags: ${TAG_RULE}.`;
  else if (tags.length > MAX_TAGS) problem = `At most ${MAX_TAGS} tags (${tags.length} given).`;
  return { tags, problem };
}

/** The tags in an input: "a, b" ('' for none). */
export function tagsText(tags: string[] | undefined): string {
  return (tags ?? []).join(', ');
}

/** The same tags, whatever their order and repeats. */
export function sameTags(a: string[] | undefined, b: string[] | undefined): boolean {
  const x = [...new Set(a ?? [])].sort();
  const y = [...new Set(b ?? [])].sort();
  return x.length === y.length && x.every((t, i) => t === y[i]);
}

/**
 * PATCH /vms/{id} for the tags as typed: {tags} replacing the VM's ([] removes them), {} when they are
 * the VM's already; undefined while the text has a problem.
 */
export function tagsPatch(vmTags: string[] | undefined, text: string): { tags?: string[] } | undefined {
  const { tags, problem } = parseTags(text);
  if (problem) return undefined;
  return sameTags(tags, vmTags) ? {} : { tags };
}

/** The chips of a narrow place: the first `max` tags, and how many more there are. */
export function chipTags(tags: string[] | undefined, max: number): { shown: string[]; more: number } {
  const all = tags ?? [];
  return { shown: all.slice(0, max), more: Math.max(0, all.length - max) };
}
