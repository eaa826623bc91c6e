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
