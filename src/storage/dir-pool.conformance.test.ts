import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import { type ConformanceTarget, storageConformance } from './conformance';
import { DirPool } from './dir-pool';
import { qemuImg, qemuIo } from './qemu-img';

describe('storage conformance: dir (qcow2 files)', () => {
  let dir: string;
  let pool: DirPool;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nf-dir-conformance-'));
    pool = new DirPool('local', dir);
    pool.init();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  let n = 0;
  const target = (): ConformanceTarget => ({
    driver: pool,
    async makeImage(name, sizeBytes, pattern) {
      const path = pool.imagePath(name);
      await qemuImg(['create', '-q', '-f', 'qcow2', path, String(sizeBytes)]);
      await qemuIo({ driver: 'qcow2', file: { driver: 'file', filename: path } }, [
        `write -P ${pattern} 0 1M`,
      ]);
      return { format: 'qcow2' };
    },
  });
  storageConformance(target, (base) => `${base}-${++n}.qcow2`);
});
