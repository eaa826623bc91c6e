import type { DiskAio, DiskCache } from '../vmm/types';
import type { BlockdevNode } from './driver';

/**
 * A disk's nodes with its cache mode and AIO engine: the cache options on every node (as libvirt sets
 * them), the AIO engine on the file node (RBD has librbd's own I/O).
 */
export function withDiskIo(nodes: BlockdevNode[], io: { cache?: DiskCache; aio?: DiskAio }): BlockdevNode[] {
  if (!io.cache && !io.aio) return nodes;
  const direct = io.cache === 'none' || io.cache === 'directsync';
  return nodes.map((n) => ({
    ...n,
    ...(io.cache ? { cache: { direct, 'no-flush': io.cache === 'unsafe' } } : {}),
    ...(io.aio && (n.driver === 'file' || n.driver === 'host_device') ? { aio: io.aio } : {}),
  }));
}

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
