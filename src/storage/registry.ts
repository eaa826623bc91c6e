import { DIR_CAPABILITIES, DirPool } from './dir-pool';
import type { StorageCapabilities, StorageDriver } from './driver';
import { RBD_CAPABILITIES, RbdPool, type RbdPoolConfig } from './rbd-pool';

/** A storage type: what its pools can do, and how a host opens one from its configuration. */
interface StorageType<C> {
  capabilities: StorageCapabilities;
  open(config: C): StorageDriver;
}

/** Storage types by name (Incus-style name → factory map). */
export const STORAGE_TYPES = {
  dir: {
    capabilities: DIR_CAPABILITIES,
    open: (c: { name: string; path: string }) => {
      const pool = new DirPool(c.name, c.path);
      pool.init();
      return pool;
    },
  } satisfies StorageType<{ name: string; path: string }>,
  rbd: {
    capabilities: RBD_CAPABILITIES,
    open: (c: RbdPoolConfig) => new RbdPool(c),
  } satisfies StorageType<RbdPoolConfig>,
};

export type StorageTypeName = keyof typeof STORAGE_TYPES;

/** What pools of a type can do; undefined for a type this version does not know. */
export function capabilitiesOf(type: string): StorageCapabilities | undefined {
  return Object.hasOwn(STORAGE_TYPES, type) ? STORAGE_TYPES[type as StorageTypeName].capabilities : undefined;
}
