import { beforeAll, describe } from 'vitest';
import { type ConformanceTarget, io, storageConformance } from '../../src/storage/conformance';
import type { RbdPool } from '../../src/storage/rbd-pool';
import { sharedCephLab } from '../harness/ceph';

describe('storage conformance: rbd (a real Ceph cluster)', () => {
  let pool: RbdPool;
  beforeAll(async () => {
    pool = (await (await sharedCephLab()).newPool()).rbdPool();
  }, 300_000);

  let n = 0;
  const target = (): ConformanceTarget => ({
    driver: pool,
    async makeImage(name, sizeBytes, pattern) {
      // an image is a volume of the pool that templates' clones hang off
      await pool.createVolume(name, sizeBytes);
      await io(pool, name, [`write -P ${pattern} 0 1M`]);
      return { format: 'raw' };
    },
  });
  storageConformance(target, (base) => `${base}-${++n}`);
});
