import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ScreamwatchError } from '../../protocol/errors.ts';
import { type Migration, migrate } from '../../runtime/sqlite-migrations.ts';
import { CloudError } from '../errors.ts';
import type {
  AlertJob,
  AlertStateStore,
  CooldownRow,
  FinishFields,
  JobKind,
  JobStatus,
  Lease,
  NewJob,
} from './alert-state.ts';
import type { Channel } from './senders.ts';

export type { AlertJob, CooldownRow, JobKind, JobStatus, NewJob } from './alert-state.ts';

interface JobRow {
  id: number;
  event_id: string;
  channel: Channel;
  recipient: string;
  kind: string;
  subject: string;
  text: string;
  html: string;
  status: JobStatus;
  attempts: number;
  next_at: number;
  last_error: string | null;
  provider_id: string | null;
  created_at: number;
  updated_at: number;
  record_on_event: number;
  owner: string | null;
  lease_until: number | null;
}

const toJob = (r: JobRow): AlertJob => ({
  id: r.id,
  eventId: r.event_id,
  channel: r.channel,
  recipient: r.recipient,
  kind: r.kind as JobKind,
  subject: r.subject,
  text: r.text,
  html: r.html,
  status: r.status,
  attempts: r.attempts,
  nextAtMs: r.next_at,
  lastError: r.last_error,
  providerId: r.provider_id,
  createdAtMs: r.created_at,
  updatedAtMs: r.updated_at,
  recordOnEvent: r.record_on_event === 1,
  owner: r.owner ?? null,
  leaseUntilMs: r.lease_until ?? null,
});

const HOUR_MS = 3_600_000;

/**
 * The schema of alerts.sqlite, one step per `user_version` (runtime/sqlite-migrations.ts).
 * Version 1 is today's schema; files of the releases before user_version (version 0) get it in
 * place: the tables if missing, and the lease and closing columns that were added to those
 * releases' files by hand. Add a step at the end; never edit a shipped one.
 */
export const ALERT_QUEUE_MIGRATIONS: readonly Migration[] = [
  {
    description: 'decisions, jobs (with leases), cooldowns, cooldown_suppressed, rate_reservations',
    up: (db) => {
      db.exec(`
          CREATE TABLE IF NOT EXISTS decisions (
            event_id TEXT PRIMARY KEY,
            outcome TEXT NOT NULL,
            decided_at INTEGER NOT NULL
          );
          CREATE TABLE IF NOT EXISTS jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL,
            channel TEXT NOT NULL,
            recipient TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            text TEXT NOT NULL,
            html TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at INTEGER NOT NULL,
            last_error TEXT,
            provider_id TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            record_on_event INTEGER NOT NULL DEFAULT 1,
            UNIQUE (event_id, channel, recipient, kind)
          );
          CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, next_at);
          CREATE INDEX IF NOT EXISTS jobs_recipient ON jobs (recipient, created_at);
          CREATE TABLE IF NOT EXISTS cooldowns (
            key TEXT PRIMARY KEY,
            sensor_id TEXT NOT NULL,
            policy_index INTEGER NOT NULL,
            first_event_id TEXT NOT NULL,
            until_ms INTEGER NOT NULL,
            suppressed INTEGER NOT NULL DEFAULT 0,
            peak REAL NOT NULL DEFAULT 0,
            last_at TEXT
          );
          CREATE TABLE IF NOT EXISTS cooldown_suppressed (
            key TEXT NOT NULL,
            event_id TEXT NOT NULL,
            PRIMARY KEY (key, event_id)
          );
          CREATE TABLE IF NOT EXISTS rate_reservations (
            recipient TEXT NOT NULL,
            job_key TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            PRIMARY KEY (recipient, job_key)
          );
        `);
      const has = (table: string, column: string) =>
        (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).some(
          (c) => c.name === column,
        );
      if (!has('jobs', 'owner')) db.exec('ALTER TABLE jobs ADD COLUMN owner TEXT');
      if (!has('jobs', 'lease_until')) db.exec('ALTER TABLE jobs ADD COLUMN lease_until INTEGER');
      if (!has('cooldowns', 'closing_until'))
        db.exec('ALTER TABLE cooldowns ADD COLUMN closing_until INTEGER NOT NULL DEFAULT 0');
    },
  },
];

/**
 * The durable alert queue of a single bridge: SQLite under the data dir (`alerts.sqlite`). A job
 * is unique per (event, channel, recipient, kind), so deciding twice never sends twice, and it
 * survives restarts: queued jobs resume with their attempt count and next-attempt time. Several
 * bridges share their alert state in MongoDB instead (mongo-alert-state.ts), same interface.
 */
export class AlertQueue implements AlertStateStore {
  private db: Database.Database | null = null;

  constructor(readonly path: string) {}

  get where(): string {
    return this.path;
  }

  async open(): Promise<void> {
    let db: Database.Database | null = null;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      db = new Database(this.path);
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode survives a process crash (the bridge's failure mode); only an OS crash
      // or power cut can lose the last commits, as for the event store.
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      migrate(db, ALERT_QUEUE_MIGRATIONS, { name: 'alerts', path: this.path });
      this.db = db;
    } catch (err) {
      db?.close();
      if ((err as ScreamwatchError).code === 'DB_SCHEMA_TOO_NEW') throw err;
      throw new CloudError(
        'CLOUD_ALERT_QUEUE',
        `cannot open alert queue ${this.path}: ${(err as Error).message}`,
        {
          path: this.path,
        },
      );
    }
  }

  /** Readiness probe: a write lock can be taken now. Throws with the reason otherwise. */
  async checkWritable(): Promise<void> {
    const db = this.d;
    if (db.readonly) throw new CloudError('CLOUD_ALERT_QUEUE', `alert queue ${this.path} is read-only`);
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
  }

  /** Jobs by channel and status (metrics: queue depth, outcomes so far). */
  async jobCounts(): Promise<{ channel: string; status: string; n: number }[]> {
    return this.st('SELECT channel, status, COUNT(*) AS n FROM jobs GROUP BY channel, status').all() as {
      channel: string;
      status: string;
      n: number;
    }[];
  }

  async close(): Promise<void> {
    this.statements.clear();
    this.db?.close();
    this.db = null;
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** Prepared once per SQL text: preparing costs more than running these small statements. */
  private st(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.d.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private get d(): Database.Database {
    if (!this.db) throw new CloudError('CLOUD_ALERT_QUEUE', `alert queue ${this.path} is not open`);
    return this.db;
  }

  private transaction<T>(fn: () => T): T {
    return this.d.transaction(fn)();
  }

  async recoverInFlight(owner: string, nowMs: number): Promise<number> {
    // owner NULL: claimed by a release without leases.
    return this.st(
      "UPDATE jobs SET status = 'queued', next_at = ?, updated_at = ?, owner = NULL, lease_until = NULL WHERE status = 'in-flight' AND (owner = ? OR owner IS NULL)",
    ).run(nowMs, nowMs, owner).changes;
  }

  async decided(eventId: string): Promise<string | null> {
    const r = this.st('SELECT outcome FROM decisions WHERE event_id = ?').get(eventId) as
      | { outcome: string }
      | undefined;
    return r?.outcome ?? null;
  }

  async recordDecision(eventId: string, outcome: string, nowMs: number): Promise<boolean> {
    return (
      this.st('INSERT OR IGNORE INTO decisions (event_id, outcome, decided_at) VALUES (?, ?, ?)').run(
        eventId,
        outcome,
        nowMs,
      ).changes === 1
    );
  }

  async addJob(job: NewJob, nowMs: number): Promise<AlertJob> {
    return this.transaction(() => {
      this.st(
        `INSERT OR IGNORE INTO jobs (event_id, channel, recipient, kind, subject, text, html, status, attempts, next_at, last_error, created_at, updated_at, record_on_event)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)`,
      ).run(
        job.eventId,
        job.channel,
        job.recipient,
        job.kind,
        job.subject,
        job.text,
        job.html,
        job.status,
        job.nextAtMs,
        job.lastError ?? null,
        nowMs,
        nowMs,
        job.recordOnEvent ? 1 : 0,
      );
      const row = this.st(
        'SELECT * FROM jobs WHERE event_id = ? AND channel = ? AND recipient = ? AND kind = ?',
      ).get(job.eventId, job.channel, job.recipient, job.kind) as JobRow;
      return toJob(row);
    });
  }

  async claimDue(nowMs: number, limit: number, lease: Lease): Promise<AlertJob[]> {
    return this.transaction(() => {
      const rows = this.st(
        `SELECT * FROM jobs WHERE (status = 'queued' AND next_at <= ?) OR (status = 'in-flight' AND lease_until <= ?)
           ORDER BY next_at, id LIMIT ?`,
      ).all(nowMs, nowMs, limit) as JobRow[];
      const claim = this.st(
        "UPDATE jobs SET status = 'in-flight', attempts = attempts + 1, updated_at = ?, owner = ?, lease_until = ? WHERE id = ?",
      );
      const until = nowMs + lease.ms;
      for (const r of rows) claim.run(nowMs, lease.owner, until, r.id);
      return rows.map((r) =>
        toJob({
          ...r,
          status: 'in-flight',
          attempts: r.attempts + 1,
          updated_at: nowMs,
          owner: lease.owner,
          lease_until: until,
        }),
      );
    });
  }

  async finish(
    id: number,
    owner: string,
    status: JobStatus,
    nowMs: number,
    fields: FinishFields,
  ): Promise<AlertJob | null> {
    const changed = this.st(
      `UPDATE jobs SET status = ?, updated_at = ?, owner = NULL, lease_until = NULL,
         last_error = CASE WHEN ? = 'sent' THEN NULL ELSE COALESCE(?, last_error) END,
         provider_id = COALESCE(?, provider_id), next_at = COALESCE(?, next_at)
       WHERE id = ? AND status = 'in-flight' AND owner = ?`,
    ).run(
      status,
      nowMs,
      status,
      fields.lastError ?? null,
      fields.providerId ?? null,
      fields.nextAtMs ?? null,
      id,
      owner,
    ).changes;
    return changed === 1 ? this.jobSync(id) : null;
  }

  private jobSync(id: number): AlertJob | null {
    const r = this.st('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return r ? toJob(r) : null;
  }

  async job(id: number): Promise<AlertJob | null> {
    return this.jobSync(id);
  }

  async jobsForEvent(eventId: string): Promise<AlertJob[]> {
    return (this.st('SELECT * FROM jobs WHERE event_id = ? ORDER BY id').all(eventId) as JobRow[]).map(toJob);
  }

  async reserveRate(recipient: string, jobKey: string, limit: number, nowMs: number): Promise<boolean> {
    return this.transaction(() => {
      this.st('DELETE FROM rate_reservations WHERE recipient = ? AND at_ms <= ?').run(
        recipient,
        nowMs - HOUR_MS,
      );
      if (
        this.st('SELECT 1 FROM rate_reservations WHERE recipient = ? AND job_key = ?').get(recipient, jobKey)
      )
        return true;
      const { n } = this.st('SELECT COUNT(*) AS n FROM rate_reservations WHERE recipient = ?').get(
        recipient,
      ) as {
        n: number;
      };
      if (n >= limit) return false;
      this.st('INSERT INTO rate_reservations (recipient, job_key, at_ms) VALUES (?, ?, ?)').run(
        recipient,
        jobKey,
        nowMs,
      );
      return true;
    });
  }

  async rateFreeAt(recipient: string, nowMs: number): Promise<number | null> {
    const r = this.st('SELECT MIN(at_ms) AS t FROM rate_reservations WHERE recipient = ? AND at_ms > ?').get(
      recipient,
      nowMs - HOUR_MS,
    ) as { t: number | null };
    return r.t === null ? null : r.t + HOUR_MS;
  }

  async cooldownOf(key: string): Promise<Pick<CooldownRow, 'firstEventId' | 'untilMs'> | null> {
    const cd = this.cooldownSync(key);
    return cd ? { firstEventId: cd.firstEventId, untilMs: cd.untilMs } : null;
  }

  private cooldownSync(key: string): CooldownRow | null {
    const r = this.st('SELECT * FROM cooldowns WHERE key = ?').get(key) as
      | {
          key: string;
          sensor_id: string;
          policy_index: number;
          first_event_id: string;
          until_ms: number;
          suppressed: number;
          peak: number;
          last_at: string | null;
        }
      | undefined;
    return r
      ? {
          key: r.key,
          sensorId: r.sensor_id,
          policyIndex: r.policy_index,
          firstEventId: r.first_event_id,
          untilMs: r.until_ms,
          suppressed: r.suppressed,
          peak: r.peak,
          lastAt: r.last_at,
        }
      : null;
  }

  async claimCooldown(
    row: Omit<CooldownRow, 'suppressed' | 'peak' | 'lastAt'>,
    nowMs: number,
  ): Promise<'owner' | 'held'> {
    return this.transaction(() => {
      const cd = this.cooldownSync(row.key);
      if (cd && cd.firstEventId === row.firstEventId) return 'owner';
      if (cd && cd.untilMs > nowMs) return 'held';
      this.st('DELETE FROM cooldown_suppressed WHERE key = ?').run(row.key);
      this.st(
        'INSERT OR REPLACE INTO cooldowns (key, sensor_id, policy_index, first_event_id, until_ms, suppressed, peak, last_at, closing_until) VALUES (?, ?, ?, ?, ?, 0, 0, NULL, 0)',
      ).run(row.key, row.sensorId, row.policyIndex, row.firstEventId, row.untilMs);
      return 'owner';
    });
  }

  async noteSuppressed(key: string, eventId: string, probability: number, at: string): Promise<void> {
    this.transaction(() => {
      if (!this.cooldownSync(key)) return;
      if (
        this.st('INSERT OR IGNORE INTO cooldown_suppressed (key, event_id) VALUES (?, ?)').run(key, eventId)
          .changes === 0
      )
        return;
      this.st(
        'UPDATE cooldowns SET suppressed = suppressed + 1, peak = MAX(peak, ?), last_at = CASE WHEN last_at IS NULL OR last_at < ? THEN ? ELSE last_at END WHERE key = ?',
      ).run(probability, at, at, key);
    });
  }

  async claimExpiredCooldown(nowMs: number, lease: Lease): Promise<CooldownRow | null> {
    return this.transaction(() => {
      const r = this.st(
        'SELECT key FROM cooldowns WHERE until_ms <= ? AND closing_until <= ? ORDER BY until_ms LIMIT 1',
      ).get(nowMs, nowMs) as { key: string } | undefined;
      if (!r) return null;
      this.st('UPDATE cooldowns SET closing_until = ? WHERE key = ?').run(nowMs + lease.ms, r.key);
      return this.cooldownSync(r.key);
    });
  }

  async purgeEvents(eventIds: readonly string[]): Promise<number> {
    if (eventIds.length === 0) return 0;
    const ids = JSON.stringify(eventIds);
    return this.transaction(
      () =>
        this.st('DELETE FROM jobs WHERE event_id IN (SELECT value FROM json_each(?))').run(ids).changes +
        this.st('DELETE FROM decisions WHERE event_id IN (SELECT value FROM json_each(?))').run(ids).changes +
        this.st('DELETE FROM cooldown_suppressed WHERE event_id IN (SELECT value FROM json_each(?))').run(ids)
          .changes,
    );
  }

  async deleteCooldown(key: string, firstEventId: string): Promise<void> {
    this.transaction(() => {
      if (
        this.st('DELETE FROM cooldowns WHERE key = ? AND first_event_id = ?').run(key, firstEventId).changes
      )
        this.st('DELETE FROM cooldown_suppressed WHERE key = ?').run(key);
    });
  }
}
