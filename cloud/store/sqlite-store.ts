import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ScreamwatchError } from '../../protocol/errors.ts';
import { type Migration, migrate } from '../../runtime/sqlite-migrations.ts';
import { CloudError } from '../errors.ts';
import { mergeDelivery, summarise } from './deliveries.ts';
import { clampLimit, decodeCursor, normaliseEvent } from './query.ts';
import { applyResponseChange } from './response.ts';
import type {
  AlertSuppression,
  ChannelDelivery,
  EventQuery,
  EventStore,
  ResponseChange,
  ResponseStatus,
  RetentionCutoffs,
  Review,
  StoredEvent,
} from './types.ts';

/**
 * The schema of events.sqlite, one step per `user_version` (runtime/sqlite-migrations.ts).
 * Version 1 is the schema of the first releases, which had no user_version: its CREATE ... IF
 * NOT EXISTS also adopts such a file as it is. Add a step at the end; never edit a shipped one.
 */
export const EVENT_STORE_MIGRATIONS: readonly Migration[] = [
  {
    description: 'events table with the time and sensor+time indexes',
    up: (db) =>
      db.exec(`
        CREATE TABLE IF NOT EXISTS events (
          event_id   TEXT PRIMARY KEY,
          sensor_id  TEXT NOT NULL,
          ts_ms      INTEGER NOT NULL,
          is_scream  INTEGER NOT NULL,
          doc        TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS events_time ON events (ts_ms DESC, event_id DESC);
        CREATE INDEX IF NOT EXISTS events_sensor_time ON events (sensor_id, ts_ms DESC, event_id DESC);
      `),
  },
];

/** The retention rule in SQL (the event's time; a reviewed false alarm is kept until keepReviewedBefore). */
const EXPIRED = `ts_ms < @before AND (ts_ms < @keepReviewedBefore OR COALESCE(json_extract(doc, '$.review.verdict'), '') <> 'false-alarm')`;

/**
 * The embedded default store: one SQLite file (WAL) under the data dir. The event is kept
 * as JSON, with the queried fields as indexed columns beside it.
 */
export class SqliteEventStore implements EventStore {
  private db: Database.Database | null = null;
  private stmts: ReturnType<SqliteEventStore['prepare']> | null = null;

  constructor(readonly path: string) {}

  async start(): Promise<void> {
    if (this.db) return;
    let db: Database.Database | null = null;
    try {
      if (this.path !== ':memory:') mkdirSync(dirname(this.path), { recursive: true });
      db = new Database(this.path);
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode: a power cut may lose the last commits but never corrupts the file,
      // and a full fsync per event would cap ingest far below what a fleet can burst.
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      migrate(db, EVENT_STORE_MIGRATIONS, { name: 'events', path: this.path });
      this.db = db;
      this.stmts = this.prepare(db);
    } catch (err) {
      db?.close();
      // a file from a newer release keeps its own code (exit 78): the operator has to act
      if ((err as ScreamwatchError).code === 'DB_SCHEMA_TOO_NEW') throw err;
      throw new CloudError(
        'CLOUD_STORE_OPEN_FAILED',
        `cannot open event store ${this.path}: ${(err as Error).message}`,
        {
          path: this.path,
        },
        { cause: err },
      );
    }
  }

  /** A write lock can be taken now (BEGIN IMMEDIATE fails on a read-only or locked database). */
  async checkWritable(): Promise<void> {
    const db = this.db;
    if (!db) throw new CloudError('CLOUD_STORE_OPEN_FAILED', `event store ${this.path} is not open`);
    if (db.readonly) throw new CloudError('CLOUD_STORE_OPEN_FAILED', `event store ${this.path} is read-only`);
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
  }

  async stop(): Promise<void> {
    if (this.pending.length && this.stmts) this.flush(this.stmts);
    this.db?.close();
    this.db = null;
    this.stmts = null;
  }

  private prepare(db: Database.Database) {
    return {
      insert: db.prepare(
        'INSERT INTO events (event_id, sensor_id, ts_ms, is_scream, doc) VALUES (?, ?, ?, ?, ?) ON CONFLICT(event_id) DO NOTHING',
      ),
      get: db.prepare('SELECT doc FROM events WHERE event_id = ?'),
      update: db.prepare('UPDATE events SET doc = ? WHERE event_id = ?'),
      count: db.prepare('SELECT COUNT(*) AS n FROM events'),
    };
  }

  private get s() {
    if (!this.stmts)
      throw new CloudError('CLOUD_STORE_OPEN_FAILED', `event store ${this.path} is not started`);
    return this.stmts;
  }

  private pending: { row: unknown[]; resolve: (v: boolean) => void; reject: (e: unknown) => void }[] = [];

  /**
   * Inserts that arrive in the same tick (the broker hands over a socket read's worth of
   * publishes at once) are committed in one transaction: one WAL commit for many events.
   * Each promise still resolves only after its row is committed.
   */
  insertIfNew(event: StoredEvent): Promise<boolean> {
    const e = normaliseEvent(event);
    const row = [e.eventId, e.sensorId, Date.parse(e.timestamp), e.isScream ? 1 : 0, JSON.stringify(e)];
    const s = this.s;
    return new Promise<boolean>((resolve, reject) => {
      this.pending.push({ row, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush(s));
    });
  }

  private flush(s: NonNullable<SqliteEventStore['stmts']>): void {
    const batch = this.pending;
    this.pending = [];
    if (!this.db) {
      const err = new CloudError('CLOUD_STORE_OPEN_FAILED', `event store ${this.path} was stopped`);
      for (const p of batch) p.reject(err);
      return;
    }
    let results: boolean[];
    try {
      results = this.db.transaction(() => batch.map((p) => s.insert.run(...p.row).changes === 1))();
    } catch (err) {
      const e = new CloudError(
        'CLOUD_STORE_WRITE_FAILED',
        `cannot write to ${this.path}: ${(err as Error).message}`,
        undefined,
        {
          cause: err,
        },
      );
      for (const p of batch) p.reject(e);
      return;
    }
    for (const [k, p] of batch.entries()) p.resolve(results[k]!);
  }

  async get(eventId: string): Promise<StoredEvent | null> {
    const row = this.s.get.get(eventId) as { doc: string } | undefined;
    return row ? (JSON.parse(row.doc) as StoredEvent) : null;
  }

  async list(query: EventQuery): Promise<StoredEvent[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.sensorId !== undefined) {
      where.push('sensor_id = ?');
      params.push(query.sensorId);
    }
    if (query.from !== undefined) {
      where.push('ts_ms >= ?');
      params.push(Date.parse(query.from));
    }
    if (query.to !== undefined) {
      where.push('ts_ms <= ?');
      params.push(Date.parse(query.to));
    }
    if (query.isScream !== undefined) {
      where.push('is_scream = ?');
      params.push(query.isScream ? 1 : 0);
    }
    if (query.responseState !== undefined) {
      // no column: the filter runs on the JSON doc (these lists are time-bounded pages)
      where.push("COALESCE(json_extract(doc, '$.response.state'), 'new') = ?");
      params.push(query.responseState);
    }
    if (query.verdict !== undefined) {
      where.push("json_extract(doc, '$.review.verdict') = ?");
      params.push(query.verdict);
    }
    if (query.before !== undefined) {
      const c = decodeCursor(query.before);
      where.push('(ts_ms < ? OR (ts_ms = ? AND event_id < ?))');
      params.push(c.ms, c.ms, c.eventId);
    }
    const sql = `SELECT doc FROM events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ts_ms DESC, event_id DESC LIMIT ?`;
    params.push(clampLimit(query.limit));
    if (!this.db) throw new CloudError('CLOUD_STORE_OPEN_FAILED', `event store ${this.path} is not started`);
    const rows = this.db.prepare(sql).all(...params) as { doc: string }[];
    return rows.map((r) => JSON.parse(r.doc) as StoredEvent);
  }

  /** Synchronous inside: better-sqlite3 runs the read-modify-write without interleaving. */
  private modify(eventId: string, fn: (e: StoredEvent) => StoredEvent): void {
    const row = this.s.get.get(eventId) as { doc: string } | undefined;
    if (!row)
      throw new CloudError('CLOUD_STORE_WRITE_FAILED', `event ${eventId} not found in ${this.path}`, {
        eventId,
      });
    this.s.update.run(JSON.stringify(fn(JSON.parse(row.doc) as StoredEvent)), eventId);
  }

  async updateDelivery(eventId: string, delivery: ChannelDelivery): Promise<void> {
    this.modify(eventId, (e) => {
      const deliveries = mergeDelivery(e.deliveries ?? [], delivery);
      return { ...e, deliveries, responseStatus: summarise(deliveries) };
    });
  }

  async setReview(eventId: string, review: Review): Promise<void> {
    this.modify(eventId, (e) => ({ ...e, review }));
  }

  async setTimeline(eventId: string, timeline: NonNullable<StoredEvent['timeline']>): Promise<void> {
    this.modify(eventId, (e) => ({ ...e, timeline }));
  }

  async setResponseStatus(
    eventId: string,
    responseStatus: ResponseStatus,
    detail: { suppressedBy?: AlertSuppression | null } = {},
  ): Promise<void> {
    this.modify(eventId, (e) => ({ ...e, responseStatus, ...detail }));
  }

  async recordResponse(eventId: string, change: ResponseChange): Promise<StoredEvent | null> {
    if (!this.s.get.get(eventId)) return null;
    let out: StoredEvent | null = null;
    this.modify(eventId, (e) => {
      out = applyResponseChange(e, change);
      return out;
    });
    return out;
  }

  async count(): Promise<number> {
    return (this.s.count.get() as { n: number }).n;
  }

  private cutoffParams(cutoffs: RetentionCutoffs) {
    return {
      before: Date.parse(cutoffs.before),
      // null: reviewed false alarms are kept for good
      keepReviewedBefore: cutoffs.keepReviewedBefore === null ? -1 : Date.parse(cutoffs.keepReviewedBefore),
    };
  }

  async findExpired(cutoffs: RetentionCutoffs, limit: number): Promise<string[]> {
    if (!this.db) throw new CloudError('CLOUD_STORE_OPEN_FAILED', `event store ${this.path} is not started`);
    return this.db
      .prepare(`SELECT event_id FROM events WHERE ${EXPIRED} ORDER BY ts_ms LIMIT @limit`)
      .pluck()
      .all({ ...this.cutoffParams(cutoffs), limit }) as string[];
  }

  async deleteExpired(eventIds: readonly string[], cutoffs: RetentionCutoffs): Promise<number> {
    if (!this.db) throw new CloudError('CLOUD_STORE_OPEN_FAILED', `event store ${this.path} is not started`);
    if (eventIds.length === 0) return 0;
    const ids = JSON.stringify(eventIds);
    // The rule is checked again: an event reviewed as a false alarm since findExpired stays.
    return this.db
      .prepare(`DELETE FROM events WHERE event_id IN (SELECT value FROM json_each(@ids)) AND ${EXPIRED}`)
      .run({ ...this.cutoffParams(cutoffs), ids }).changes;
  }
}
