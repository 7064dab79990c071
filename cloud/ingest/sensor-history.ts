import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ScreamwatchError } from '../../protocol/errors.ts';
import { type Migration, migrate } from '../../runtime/sqlite-migrations.ts';
import { CloudError } from '../errors.ts';

/** A sensor's state as its history records it: degraded = online but its input is not ok. */
export type HistoryState = 'online' | 'offline' | 'degraded' | 'unknown';

export interface HistoryBucket {
  /** Bucket start (ISO). */
  at: string;
  /** Heartbeats in the bucket. */
  n: number;
  levelMinDbfs: number;
  levelMaxDbfs: number;
  levelMeanDbfs: number;
  /** Highest window probability the sensor reported in the bucket. */
  maxProbability: number;
}

export interface HistoryPeriod {
  state: HistoryState;
  /** ISO; the range's start when the period began earlier. */
  from: string;
  /** ISO; null while it lasts. */
  to: string | null;
}

export interface SensorHistoryView {
  history(
    sensorId: string,
    range: '24h' | '7d',
    nowMs: number,
  ): { bucketS: number; buckets: HistoryBucket[]; periods: HistoryPeriod[] };
}

export interface SensorHistoryOptions {
  path: string;
  /** Kept this long (default 7 days: the sensor page's longest range). */
  retentionDays?: number;
  /** State changes kept per sensor at most (a flapping sensor cannot grow the file). */
  maxStatesPerSensor?: number;
}

/**
 * The schema of sensor-history.sqlite, one step per `user_version` (runtime/sqlite-migrations.ts);
 * version 1 is the first release's, and adopts such a file (version 0) as it is.
 */
export const SENSOR_HISTORY_MIGRATIONS: readonly Migration[] = [
  {
    description: 'heartbeat buckets and state changes per sensor',
    up: (db) =>
      db.exec(`
        CREATE TABLE IF NOT EXISTS buckets (
          sensor_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL, n INTEGER NOT NULL,
          level_min REAL NOT NULL, level_max REAL NOT NULL, level_sum REAL NOT NULL,
          max_prob REAL NOT NULL, PRIMARY KEY (sensor_id, bucket_ms)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS states (
          sensor_id TEXT NOT NULL, at_ms INTEGER NOT NULL, state TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS states_by_sensor ON states (sensor_id, at_ms);
      `),
  },
];

const BUCKET_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

/**
 * A bounded history per sensor for its page: heartbeats folded into 5-minute buckets (input
 * level min/mean/max, highest window probability) and every change of state (online,
 * offline, degraded, unknown), in `<dataDir>/sensor-history.sqlite`. Every bridge receives
 * every heartbeat (they are not shared-subscription topics), so each keeps its own copy.
 * Bounded: rows older than `retentionDays` are deleted hourly, state changes are capped per
 * sensor; 100 sensors x 7 days is about 200,000 bucket rows.
 */
export class SensorHistory implements SensorHistoryView {
  private db: Database.Database | null = null;
  private statements: ReturnType<SensorHistory['prepare']> | null = null;
  private readonly lastState = new Map<string, HistoryState>();
  private lastPruneMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly retentionMs: number;
  private readonly maxStates: number;

  constructor(private readonly options: SensorHistoryOptions) {
    this.retentionMs = (options.retentionDays ?? 7) * DAY_MS;
    this.maxStates = options.maxStatesPerSensor ?? 5000;
  }

  open(): void {
    if (this.db) return;
    let db: Database.Database | null = null;
    try {
      // the data dir may not exist yet: with MONGODB_URI nothing else in it is a local file
      mkdirSync(dirname(this.options.path), { recursive: true });
      db = new Database(this.options.path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      migrate(db, SENSOR_HISTORY_MIGRATIONS, { name: 'sensor-history', path: this.options.path });
      this.db = db;
      this.statements = this.prepare(db);
      for (const r of db
        .prepare(
          'SELECT sensor_id AS id, state FROM states s WHERE at_ms = (SELECT MAX(at_ms) FROM states WHERE sensor_id = s.sensor_id)',
        )
        .all() as { id: string; state: HistoryState }[])
        this.lastState.set(r.id, r.state);
    } catch (err) {
      db?.close();
      if ((err as ScreamwatchError).code === 'DB_SCHEMA_TOO_NEW') throw err;
      throw new CloudError(
        'CLOUD_STORE_OPEN_FAILED',
        `cannot open the sensor history ${this.options.path}: ${(err as Error).message}`,
        { path: this.options.path },
        { cause: err },
      );
    }
  }

  /**
   * Records each sensor's state from the registry every `everyMs` (changes only) until close():
   * offline is decided by the registry's own check, so its time is within `everyMs` of it.
   */
  track(
    sensors: () => readonly { id: string; status: HistoryState; degraded?: boolean }[],
    now: () => number,
    onError: (err: unknown) => void,
    everyMs = 5000,
  ): void {
    let failing = false;
    const sample = () => {
      try {
        const at = now();
        for (const v of sensors())
          this.state(v.id, v.status === 'online' && v.degraded ? 'degraded' : v.status, at);
        failing = false;
      } catch (err) {
        // said once per run of failures (a full disk would otherwise log every sample)
        if (!failing) onError(err);
        failing = true;
      }
    };
    sample();
    this.timer = setInterval(sample, everyMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.db?.close();
    this.db = null;
    this.statements = null;
  }

  private prepare(db: Database.Database) {
    return {
      upsert: db.prepare(`
        INSERT INTO buckets (sensor_id, bucket_ms, n, level_min, level_max, level_sum, max_prob)
        VALUES (@id, @bucket, 1, @level, @level, @level, @prob)
        ON CONFLICT (sensor_id, bucket_ms) DO UPDATE SET n = n + 1,
          level_min = MIN(level_min, excluded.level_min), level_max = MAX(level_max, excluded.level_max),
          level_sum = level_sum + excluded.level_sum, max_prob = MAX(max_prob, excluded.max_prob)`),
      addState: db.prepare('INSERT INTO states (sensor_id, at_ms, state) VALUES (?, ?, ?)'),
      capStates: db.prepare(`
        DELETE FROM states WHERE sensor_id = ? AND at_ms < (
          SELECT at_ms FROM states WHERE sensor_id = ? ORDER BY at_ms DESC LIMIT 1 OFFSET CAST(? AS INTEGER))`),
      pruneBuckets: db.prepare('DELETE FROM buckets WHERE bucket_ms < ?'),
      // the last state before the cut stays: it says what the sensor was at the range's start
      pruneStates: db.prepare(`
        DELETE FROM states WHERE at_ms < ? AND at_ms < (
          SELECT MAX(at_ms) FROM states s2 WHERE s2.sensor_id = states.sensor_id AND s2.at_ms < ?)`),
      buckets: db.prepare(`
        SELECT (bucket_ms / CAST(@size AS INTEGER)) * CAST(@size AS INTEGER) AS at, SUM(n) AS n, MIN(level_min) AS lmin, MAX(level_max) AS lmax,
          SUM(level_sum) / SUM(n) AS lmean, MAX(max_prob) AS prob
        FROM buckets WHERE sensor_id = @id AND bucket_ms >= @from GROUP BY at ORDER BY at`),
      statesSince: db.prepare(`
        SELECT at_ms AS at, state FROM states WHERE sensor_id = @id AND at_ms >= @from
        UNION ALL SELECT * FROM (SELECT at_ms, state FROM states WHERE sensor_id = @id AND at_ms < @from
          ORDER BY at_ms DESC LIMIT 1)
        ORDER BY at`),
    };
  }

  private get s() {
    if (!this.statements) throw new CloudError('CLOUD_STORE_WRITE_FAILED', 'sensor history is not open');
    return this.statements;
  }

  /** One heartbeat: its input level and the highest window probability since the last one. */
  heartbeat(sensorId: string, atMs: number, levelDbfs: number, maxProbability: number): void {
    this.s.upsert.run({
      id: sensorId,
      bucket: Math.floor(atMs / BUCKET_MS) * BUCKET_MS,
      level: levelDbfs,
      prob: maxProbability,
    });
    this.maybePrune(atMs);
  }

  /** The sensor's state now; a change from the last one recorded is appended. */
  state(sensorId: string, state: HistoryState, atMs: number): void {
    if (this.lastState.get(sensorId) === state) return;
    this.s.addState.run(sensorId, atMs, state);
    // remembered once written: a write that failed (disk full) is tried again at the next sample
    this.lastState.set(sensorId, state);
    this.s.capStates.run(sensorId, sensorId, this.maxStates - 1);
  }

  private maybePrune(nowMs: number): void {
    if (nowMs - this.lastPruneMs < 3_600_000) return;
    this.lastPruneMs = nowMs;
    const cut = nowMs - this.retentionMs;
    this.s.pruneBuckets.run(cut);
    this.s.pruneStates.run(cut, cut);
  }

  history(sensorId: string, range: '24h' | '7d', nowMs: number) {
    const span = range === '24h' ? DAY_MS : 7 * DAY_MS;
    const size = range === '24h' ? BUCKET_MS : 3_600_000;
    const from = nowMs - span;
    const rows = this.s.buckets.all({ id: sensorId, from, size }) as {
      at: number;
      n: number;
      lmin: number;
      lmax: number;
      lmean: number;
      prob: number;
    }[];
    const r1 = (x: number) => Math.round(x * 10) / 10;
    const buckets = rows.map((r) => ({
      at: new Date(r.at).toISOString(),
      n: r.n,
      levelMinDbfs: r1(r.lmin),
      levelMaxDbfs: r1(r.lmax),
      levelMeanDbfs: r1(r.lmean),
      maxProbability: Math.round(r.prob * 1e4) / 1e4,
    }));
    const changes = this.s.statesSince.all({ id: sensorId, from }) as { at: number; state: HistoryState }[];
    const periods: HistoryPeriod[] = changes.map((c, i) => ({
      state: c.state,
      from: new Date(Math.max(c.at, from)).toISOString(),
      to: i + 1 < changes.length ? new Date(changes[i + 1]!.at).toISOString() : null,
    }));
    return { bucketS: size / 1000, buckets, periods };
  }
}
