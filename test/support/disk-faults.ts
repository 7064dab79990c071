import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

/**
 * Real filesystems that fail like a sensor's SD card: a small tmpfs that fills up, and an
 * ext4 image on a loop device that the kernel remounts read-only after an error
 * (`errors=remount-ro`, triggered through ext4's own sysfs knob). Root only (CI runs as
 * root); `canMount` says whether this process may.
 */
export const canMount = process.getuid?.() === 0;

export interface SmallDisk {
  dir: string;
  /** Fills the filesystem to the last byte (a file `fill` that `free` removes). */
  fill(): void;
  free(): void;
  unmount(): void;
}

export function smallTmpfs(sizeKb = 1024): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), 'sw-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKb}k`, 'tmpfs', dir]);
  const fillPath = join(dir, 'fill');
  return {
    dir,
    fill() {
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${fillPath}`, 'bs=4k'], { stdio: 'ignore' });
      } catch {
        // dd exits 1 with ENOSPC: that is the point
      }
    },
    free() {
      rmSync(fillPath, { force: true });
    },
    unmount() {
      execFileSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Ext4Disk {
  dir: string;
  /** What the kernel does on an ext4 error with errors=remount-ro: writes fail from now on. */
  remountReadOnly(): void;
  unmount(): void;
}

export function loopExt4(sizeMb = 8): Ext4Disk {
  const work = mkdtempSync(join(tmpdir(), 'sw-ext4-'));
  const image = join(work, 'disk.img');
  const dir = join(work, 'mnt');
  writeFileSync(image, Buffer.alloc(0));
  execFileSync('truncate', ['-s', `${sizeMb}M`, image]);
  execFileSync('mkfs.ext4', ['-q', '-F', image]);
  execFileSync('mkdir', [dir]);
  execFileSync('mount', ['-o', 'loop,errors=remount-ro', image, dir]);
  const device = execFileSync('findmnt', ['-n', '-o', 'SOURCE', dir]).toString().trim();
  return {
    dir,
    remountReadOnly() {
      writeFileSync(`/sys/fs/ext4/${basename(device)}/trigger_fs_error`, 'screamwatch test\n');
    },
    unmount() {
      execFileSync('umount', [dir]);
      rmSync(work, { recursive: true, force: true });
    },
  };
}
