import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';

/**
 * Replaces `file` with `value` as JSON, all or nothing: written to `<file>.tmp`, flushed to the
 * disk, then renamed over the old one (atomic on POSIX), so a power cut leaves the old file or
 * the new one, never half of either. Throws (ENOSPC, EROFS, ...) with the old file untouched.
 */
export function writeJsonFileAtomic(file: string, value: unknown, mode = 0o640): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, JSON.stringify(value));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** The parsed JSON of `file`; undefined when it does not exist. Throws on unreadable or bad JSON. */
export function readJsonFile(file: string): unknown {
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as unknown;
}

/** Replaces `file` with `data`, all or nothing, like writeJsonFileAtomic (bytes kept as they are). */
export function writeFileAtomic(file: string, data: Uint8Array | string, mode = 0o640): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    // writeFileSync on a descriptor loops until every byte is written (writeSync may not)
    writeFileSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
