import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { CloudError } from '../errors.ts';

/** The bridge's SQLite files a backup holds, and the table counted in the summary. */
const FILES = [
  { file: 'events.sqlite', what: 'event store', count: 'events' },
  { file: 'alerts.sqlite', what: 'alert state', count: 'jobs' },
] as const;

export interface BackupFile {
  file: string;
  /** Where it was copied from. */
  source: string;
  /** PRAGMA user_version of the copy (the schema version a restore needs a release for). */
  schemaVersion: number;
  /** Rows of its main table (events, jobs). */
  rows: number;
  bytes: number;
}

export interface BackupResult {
  out: string;
  takenAt: string;
  files: BackupFile[];
}

/**
 * `screamwatch cloud backup --out DIR`: a consistent online copy of `<dataDir>/events.sqlite`
 * and `<dataDir>/alerts.sqlite` into the new directory DIR (plus `manifest.json`), while the
 * bridge may be running and writing. SQLite's online backup API (better-sqlite3's
 * `db.backup()`) reads each file inside one read transaction: in WAL mode that neither blocks
 * the bridge's writes nor sees half of them, and the copy is a complete database file without
 * a -wal beside it. The two files are copied one after the other (events first), each
 * consistent in itself; the alert state is the younger, so it covers every restored event.
 *
 * Written into `DIR.partial-<pid>` and renamed to DIR at the end: a failed or interrupted
 * backup never leaves a DIR that looks complete. Each copy is checked (quick_check) and counted.
 */
export async function backupSqlite(options: {
  dataDir: string;
  out: string;
  now?: () => Date;
}): Promise<BackupResult> {
  const dataDir = resolve(options.dataDir);
  const out = resolve(options.out);
  const fail = (why: string, cause?: unknown) =>
    new CloudError('CLOUD_BACKUP_FAILED', `backup to ${out} failed: ${why}`, { out, dataDir }, { cause });
  for (const f of FILES) {
    if (!existsSync(join(dataDir, f.file)))
      throw fail(
        `no ${f.what} at ${join(dataDir, f.file)} (is dataDir right? With MONGODB_URI, e.g. in /etc/screamwatch/cloud.env, the data is in MongoDB: use mongodump)`,
      );
  }
  if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0))
    throw fail('it exists and is not an empty directory (each backup goes into a new one)');
  if (!existsSync(dirname(out))) throw fail(`its parent directory ${dirname(out)} does not exist`);

  const partial = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { mode: 0o700 });
  const takenAt = (options.now ?? (() => new Date()))().toISOString();
  const files: BackupFile[] = [];
  try {
    for (const f of FILES) {
      const source = join(dataDir, f.file);
      const target = join(partial, f.file);
      let db: Database.Database | null = null;
      try {
        // not readonly: a reader of a WAL file may have to create its -shm (bridge stopped)
        db = new Database(source, { fileMustExist: true });
        db.pragma('busy_timeout = 5000');
        // Everything left in one step after the first: a step-by-step copy restarts whenever
        // the bridge commits in between, and might never finish under a steady event stream.
        await db.backup(target, { progress: () => 0x7fffffff });
      } catch (err) {
        throw fail(`${source}: ${(err as Error).message}`, err);
      } finally {
        db?.close();
      }
      files.push({ file: f.file, source, ...checkCopy(target, f.count, fail) });
    }
    const manifest = { takenAt, dataDir, files };
    writeFileSync(join(partial, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    if (existsSync(out)) rmSync(out, { recursive: true }); // empty (checked above)
    renameSync(partial, out);
  } catch (err) {
    rmSync(partial, { recursive: true, force: true });
    throw err instanceof CloudError ? err : fail((err as Error).message, err);
  }
  return { out, takenAt, files };
}

function checkCopy(
  path: string,
  table: string,
  fail: (why: string, cause?: unknown) => Error,
): Omit<BackupFile, 'file' | 'source'> {
  const db = new Database(path, { fileMustExist: true });
  try {
    // one self-contained file (the copy inherits WAL mode from the bridge's file); the bridge
    // switches it back to WAL when it opens a restored copy
    db.pragma('journal_mode = DELETE');
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw fail(`the copy ${path} does not check out: ${String(check)}`);
    return {
      schemaVersion: db.pragma('user_version', { simple: true }) as number,
      rows: db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get() as number,
      bytes: statSync(path).size,
    };
  } finally {
    db.close();
  }
}
