import type { BlockdevNode } from './driver';

/** QEMU's nested option form of a -blockdev node list (references to other nodes inlined). */
export function nestBlockdev(nodes: BlockdevNode[]): Record<string, unknown> {
  const byName = new Map(nodes.map((n) => [n['node-name'], n]));
  const nest = (n: BlockdevNode): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(n)) {
      if (k === 'node-name' || k === 'auto-read-only') continue;
      const ref = typeof v === 'string' && k === 'file' ? byName.get(v) : undefined;
      out[k] = ref ? nest(ref) : v;
    }
    return out;
  };
  return nest(nodes.at(-1)!);
}

/**
 * A nested node as qemu-img's `--image-opts` takes it: dotted keys, booleans as on/off, commas in values
 * doubled (QEMU's escape), so a path with a comma cannot add an option.
 */
export function imageOpts(nested: Record<string, unknown>, prefix = ''): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(nested)) {
    if (v === undefined) continue;
    if (v !== null && typeof v === 'object')
      parts.push(imageOpts(v as Record<string, unknown>, `${prefix}${k}.`));
    else {
      const val = typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
      parts.push(`${prefix}${k}=${val.replaceAll(',', ',,')}`);
    }
  }
  return parts.join(',');
}
