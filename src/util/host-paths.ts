import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { NfError } from '../errors';

/**
 * Which host files the API may hand to a VM or copy into a pool (kernel, initrd, CD-ROM, image import).
 * Without this, anyone holding an API token could attach /etc/shadow or another VM's disk to a guest.
 * Paths are resolved through symlinks before the check, so a link cannot point out of an allowed dir.
 */
export class HostPaths {
  private readonly roots: string[];

  constructor(roots: string[]) {
    this.roots = roots.map((r) => {
      try {
        return realpathSync(resolve(r));
      } catch {
        return resolve(r);
      }
    });
  }

  get allowed(): readonly string[] {
    return this.roots;
  }

  /** An allowed, readable regular file, or a `forbidden` / `file_not_found` error naming the field. */
  file(path: string, field: string): void {
    this.check(path, field);
    readableFile(path, field);
  }

  /** Throws `forbidden` for a path outside every allowed directory (missing files are the caller's). */
  check(path: string, field: string): void {
    let real: string;
    try {
      real = realpathSync(resolve(path));
    } catch {
      real = resolve(path); // missing: let the caller report file_not_found if it is inside
    }
    if (this.roots.some((r) => real === r || real.startsWith(r.endsWith(sep) ? r : `${r}${sep}`))) return;
    throw new NfError(
      'forbidden',
      `${field}: ${path} is outside the directories this host allows (${this.roots.join(', ') || 'none'}); copy the file there or start serve with --host-path DIR`,
    );
  }
}

/** Throws `file_not_found` unless the path is a regular file this process can read. */
export function readableFile(path: string, field: string): void {
  try {
    accessSync(path, constants.R_OK);
    if (!statSync(path).isFile()) throw new Error('not a regular file');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new NfError('file_not_found', `${field}: ${path} is not a readable file on the host (${why})`);
  }
}
