import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { CephLab } from './ceph';

declare module 'vitest' {
  interface ProvidedContext {
    /** Where the shared Ceph lab's description appears once it is up (see sharedCephLab()). */
    cephLabFile: string;
  }
}

/** Projects whose tests may use the shared Ceph lab. */
const CEPH_PROJECTS = new Set(['integration', 'e2e']);

/**
 * One Ceph lab for the whole run, shared by every test that needs Ceph: it bootstraps in the background
 * while the first tests run (sharedCephLab() waits for it) and is torn down after the last test file.
 */
export default function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), 'nf-ceph-lab-info-'));
  const file = join(dir, 'lab.json');
  project.provide('cephLabFile', file);
  const wanted = project.vitest.projects.some((p) => CEPH_PROJECTS.has(p.name));
  const lab = wanted
    ? CephLab.start().then(
        (l) => {
          writeFileSync(file, JSON.stringify(l.describe()));
          return l;
        },
        (err: Error) => {
          writeFileSync(file, JSON.stringify({ error: err.message }));
          return undefined;
        },
      )
    : Promise.resolve(undefined);
  if (!wanted) writeFileSync(file, JSON.stringify({ error: 'no Ceph lab in this run (unit tests only)' }));
  return async () => {
    await (await lab)?.[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  };
}
