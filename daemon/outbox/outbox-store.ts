import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ScreamwatchError } from '../../protocol/errors.ts';
import { type Migration, migrate } from '../../runtime/sqlite-migrations.ts';
import { ensureDir } from '../ensure-dir.ts';
import { DaemonError } from '../errors.ts';

/**
 * Row kinds, in the order they are sacrificed when the outbox is full: heartbeats first
 * (a newer one replaces them anyway), then near-miss reports. Events are never dropped.
 */
export type OutboxKind = 'event' | 'report' | 'heartbeat';

export interface OutboxRow {
  id: number;
  kind: OutboxKind;
  topic: string;
  payload: Buffer;
  createdAtMs: number;
  eventId: string | null;
}

export interface AddResult {
  /** null when a non-event row was refused because the outbox is full of events. */
  id: number | null;
  /** Rows of lower priority deleted to make room. */
  evicted: number;
  /** The outbox was at its cap when this row arrived. */
  full: boolean;
}

/**
 * The schema of outbox.sqlite, one step per `user_version` (runtime/sqlite-migrations.ts);
 * version 1 is the first release's, and adopts such a file (version 0) as it is. Add a step at
 * the end; never edit a shipped one.
 */
export const OUTBOX_MIGRATIONS: readonly Migration[] = [
  {
    description: 'outbox table',
    up: (db) =>
      db.exec(`CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('event', 'report', 'heartbeat')),
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        event_id TEXT
      )`),
  },
];

export interface OutboxStoreOptions {
  /** Cap on rows; see `add` for what happens at the cap. */
  maxRows: number;
}

/**
 * The durable queue between detection and MQTT: an event is committed here (WAL,
 * synchronous=FULL, so it survives power loss once `add` returns) before anything is
 * published, and deleted only when the broker has acknowledged it (PUBACK).
 * Row ids are AUTOINCREMENT, so reading by id is insertion order, across restarts.
 */
export class OutboxStore {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly maxRows: number;
  private count: number;
  private readonly stmts: ReturnType<typeof prepareStatements>;

  constructor(stateDir: string, options: OutboxStoreOptions) {
    this.path = join(stateDir, 'outbox.sqlite');
    this.maxRows = options.maxRows;
    let db: Database.Database | null = null;
    try {
      ensureDir(stateDir);
      db = new Database(this.path);
      this.db = db;
      this.db.pragma('journal_mode = WAL');
      // FULL: a commit is on the medium before add() returns; an SD card losing power
      // right after a detection must not lose it. Writes are rare (events, a heartbeat a minute).
      this.db.pragma('synchronous = FULL');
      this.db.pragma('busy_timeout = 2000');
      migrate(db, OUTBOX_MIGRATIONS, { name: 'outbox', path: this.path });
      this.stmts = prepareStatements(db);
      this.count = this.stmts.count.get() as number;
    } catch (err) {
      // a corrupt file fails here (SQLITE_NOTADB) or at the first read: close before reporting
      db?.close();
      // a file from a newer release keeps its own code (exit 78); it is not corrupt, and moving
      // it aside would lose the events in it
      if ((err as ScreamwatchError).code === 'DB_SCHEMA_TOO_NEW') throw err;
      throw new DaemonError(
        'OUTBOX_OPEN_FAILED',
        `cannot open outbox ${this.path}: ${(err as Error).message} (check stateDir and its permissions)`,
        { path: this.path },
        { cause: err },
      );
    }
  }

  get depth(): number {
    return this.count;
  }

  depthOf(kind: OutboxKind): number {
    return this.stmts.countKind.get(kind) as number;
  }

  /**
   * Commits one row. At the cap: the oldest heartbeats, then the oldest reports, are
   * deleted to make room; if only events are left, an event is still accepted (over the
   * cap: losing a detection is worse than using more disk) and a heartbeat or report is
   * refused. Either way `full` is true so the caller logs it and reports it.
   */
  add(
    kind: OutboxKind,
    topic: string,
    payload: Buffer,
    createdAtMs: number,
    eventId: string | null = null,
  ): AddResult {
    try {
      return this.addNow(kind, topic, payload, createdAtMs, eventId);
    } catch (err) {
      // the transaction rolled back: evictions counted above did not happen
      try {
        this.count = this.stmts.count.get() as number;
      } catch {
        // unreadable too; the caller handles the first error
      }
      throw err;
    }
  }

  private addNow(
    kind: OutboxKind,
    topic: string,
    payload: Buffer,
    createdAtMs: number,
    eventId: string | null,
  ): AddResult {
    return this.db.transaction((): AddResult => {
      let evicted = 0;
      if (kind === 'heartbeat') {
        // only the newest heartbeat is worth sending after an outage
        evicted += this.stmts.removeKind.run('heartbeat').changes;
        this.count -= evicted;
      }
      const full = this.count >= this.maxRows;
      if (full) {
        let need = this.count - this.maxRows + 1;
        for (const victim of ['heartbeat', 'report'] as const) {
          if (need <= 0) break;
          const n = this.stmts.evictOldest.run(victim, need).changes;
          evicted += n;
          need -= n;
          this.count -= n;
        }
        if (need > 0 && kind !== 'event') return { id: null, evicted, full };
      }
      const info = this.stmts.insert.run(kind, topic, payload, Math.round(createdAtMs), eventId);
      this.count++;
      return { id: Number(info.lastInsertRowid), evicted, full };
    })();
  }

  /** Up to `limit` rows with id > `afterId`, oldest first. */
  peek(afterId: number, limit: number): OutboxRow[] {
    return this.stmts.after.all(afterId, limit) as OutboxRow[];
  }

  /** A committed write that leaves no row: does the disk take writes again? */
  probe(): void {
    this.db.transaction(() => {
      const id = this.stmts.probeInsert.run().lastInsertRowid;
      this.stmts.remove.run(id);
    })();
  }

  /** Called on PUBACK. Deleting a row twice (a duplicate ack) is harmless. */
  remove(id: number): void {
    this.count -= this.stmts.remove.run(id).changes;
  }

  close(): void {
    if (!this.db.open) return;
    // Merge the WAL into the main file so a clean stop leaves one file on the SD card.
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // a failed checkpoint loses nothing; the WAL is replayed on next open
    }
    this.db.close();
  }
}

function prepareStatements(db: Database.Database) {
  return {
    insert: db.prepare(
      'INSERT INTO outbox (kind, topic, payload, created_at_ms, event_id) VALUES (?, ?, ?, ?, ?)',
    ),
    count: db.prepare('SELECT COUNT(*) AS n FROM outbox').pluck(),
    countKind: db.prepare('SELECT COUNT(*) AS n FROM outbox WHERE kind = ?').pluck(),
    after: db.prepare(
      'SELECT id, kind, topic, payload, created_at_ms AS createdAtMs, event_id AS eventId FROM outbox WHERE id > ? ORDER BY id LIMIT ?',
    ),
    remove: db.prepare('DELETE FROM outbox WHERE id = ?'),
    removeKind: db.prepare('DELETE FROM outbox WHERE kind = ?'),
    evictOldest: db.prepare(
      'DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)',
    ),
    probeInsert: db.prepare(
      "INSERT INTO outbox (kind, topic, payload, created_at_ms) VALUES ('heartbeat', '', x'', 0)",
    ),
  };
}
