import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * `mkdir -p` without `{ recursive: true }`: Node 20's recursive mkdirSync never returns for
 * some paths on special or read-only filesystems (seen with /proc), and a daemon that hangs
 * at boot is worse than one that fails with the errno.
 */
export function ensureDir(dir: string): void {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (parent !== dir) ensureDir(parent);
  try {
    mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}
