import type Database from 'better-sqlite3';
import { codedError } from '../protocol/errors.ts';

/**
 * One step of a database's schema. Migration N (1-based, its place in the list) takes a file
 * from `PRAGMA user_version` N-1 to N. Steps are written so that they also accept a file that
 * already has their tables (CREATE ... IF NOT EXISTS, columns added only when missing): a file
 * from before user_version existed (version 0 with today's tables) is upgraded in place.
 */
export interface Migration {
  /** What it changes, for the log and for errors. */
  readonly description: string;
  up(db: Database.Database): void;
}

export interface MigrateOptions {
  /** Which database (events, alerts, outbox, sensor-history): for errors and logs. */
  name: string;
  /** The file, named in the error when it is newer than this release. */
  path: string;
}

export interface MigrateResult {
  /** user_version before. */
  from: number;
  /** user_version now (= migrations.length). */
  to: number;
}

function userVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Brings `db` to the newest schema in `migrations`, in order, each step in its own IMMEDIATE
 * transaction together with its `user_version` bump (a crash mid-step leaves the previous
 * version, and the step runs again at the next start). Two processes opening the same file at
 * once are serialised by the write lock, and each re-reads the version inside its transaction.
 *
 * A file whose user_version is newer than this release knows was written by a later release
 * (a rollback after an upgrade): refused with DB_SCHEMA_TOO_NEW (exit 78, no restart loop),
 * naming the file and both versions, rather than guessing at tables this code does not know.
 */
export function migrate(
  db: Database.Database,
  migrations: readonly Migration[],
  options: MigrateOptions,
): MigrateResult {
  const known = migrations.length;
  const from = userVersion(db);
  const tooNew = (found: number) =>
    codedError('DB_SCHEMA_TOO_NEW', { name: options.name, file: options.path, found, known });
  if (from > known) throw tooNew(from);
  for (let version = from + 1; version <= known; version++) {
    const step = migrations[version - 1]!;
    db.transaction(() => {
      const now = userVersion(db);
      if (now > known) throw tooNew(now);
      if (now >= version) return; // another process got there first
      step.up(db);
      // PRAGMA user_version is part of the transaction: it commits with the step or not at all.
      db.pragma(`user_version = ${version}`);
    }).immediate();
  }
  return { from, to: Math.max(from, known) };
}
