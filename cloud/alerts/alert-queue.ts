import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { CloudError } from '../errors.ts';
import type { Channel } from './senders.ts';

export type JobStatus = 'queued' | 'in-flight' | 'sent' | 'failed' | 'not-configured' | 'suppressed';
/** alert: the first alert of a cooldown; follow-up: its summary; offline; escalation; manual-<ms>. */
export type JobKind = string;

export interface AlertJob {
  id: number;
  eventId: string;
  channel: Channel;
  recipient: string;
  kind: JobKind;
  subject: string;
  text: string;
  html: string;
  status: JobStatus;
  attempts: number;
  nextAtMs: number;
  lastError: string | null;
  providerId: string | null;
  createdAtMs: number;
  updatedAtMs: number;
  /** Whether this job's status is mirrored on the event's deliveries[]. */
  recordOnEvent: boolean;
}

export interface CooldownRow {
  key: string;
  sensorId: string;
  policyIndex: number;
  firstEventId: string;
  untilMs: number;
  suppressed: number;
  peak: number;
  lastAt: string | null;
}

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
}

const toJob = (r: JobRow): AlertJob => ({
  id: r.id,
  eventId: r.event_id,
  channel: r.channel,
  recipient: r.recipient,
  kind: r.kind,
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
});

export type NewJob = Pick<
  AlertJob,
  | 'eventId'
  | 'channel'
  | 'recipient'
  | 'kind'
  | 'subject'
  | 'text'
  | 'html'
  | 'status'
  | 'nextAtMs'
  | 'recordOnEvent'
> & {
  lastError?: string | null;
};

/**
 * The durable alert queue: SQLite under the data dir, whatever the event store is. A job is
 * unique per (event, channel, recipient, kind), so deciding twice never sends twice, and it
 * survives restarts: queued jobs resume with their attempt count and next-attempt time.
 */
export class AlertQueue {
  private db: Database.Database | null = null;

  constructor(readonly path: string) {}

  open(): void {
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      const db = new Database(this.path);
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode survives a process crash (the bridge's failure mode); only an OS crash
      // or power cut can lose the last commits, as for the event store.
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
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
      `);
      this.db = db;
    } catch (err) {
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
  checkWritable(): void {
    const db = this.d;
    if (db.readonly) throw new CloudError('CLOUD_ALERT_QUEUE', `alert queue ${this.path} is read-only`);
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
  }

  /** Jobs by channel and status (metrics: queue depth, outcomes so far). */
  jobCounts(): { channel: string; status: string; n: number }[] {
    return this.st('SELECT channel, status, COUNT(*) AS n FROM jobs GROUP BY channel, status').all() as {
      channel: string;
      status: string;
      n: number;
    }[];
  }

  close(): void {
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

  transaction<T>(fn: () => T): T {
    return this.d.transaction(fn)();
  }

  /** A job that was being sent when the process died: its outcome is unknown, so it is sent
   * again (a duplicate alert is better than a lost one). A clean stop waits for sends instead. */
  recoverInFlight(nowMs: number): number {
    return this.st(
      "UPDATE jobs SET status = 'queued', next_at = ?, updated_at = ? WHERE status = 'in-flight'",
    ).run(nowMs, nowMs).changes;
  }

  decided(eventId: string): string | null {
    const r = this.st('SELECT outcome FROM decisions WHERE event_id = ?').get(eventId) as
      | { outcome: string }
      | undefined;
    return r?.outcome ?? null;
  }

  recordDecision(eventId: string, outcome: string, nowMs: number): boolean {
    return (
      this.st('INSERT OR IGNORE INTO decisions (event_id, outcome, decided_at) VALUES (?, ?, ?)').run(
        eventId,
        outcome,
        nowMs,
      ).changes === 1
    );
  }

  /** Inserts the job unless the same (event, channel, recipient, kind) exists; returns the stored one. */
  addJob(job: NewJob, nowMs: number): AlertJob {
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
  }

  /** Claims up to `limit` due jobs (queued -> in-flight, attempts + 1). */
  claimDue(nowMs: number, limit: number): AlertJob[] {
    return this.transaction(() => {
      const rows = this.st(
        "SELECT * FROM jobs WHERE status = 'queued' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
      ).all(nowMs, limit) as JobRow[];
      const claim = this.st(
        "UPDATE jobs SET status = 'in-flight', attempts = attempts + 1, updated_at = ? WHERE id = ?",
      );
      for (const r of rows) claim.run(nowMs, r.id);
      return rows.map((r) =>
        toJob({ ...r, status: 'in-flight', attempts: r.attempts + 1, updated_at: nowMs }),
      );
    });
  }

  nextDueMs(): number | null {
    const r = this.st("SELECT MIN(next_at) AS t FROM jobs WHERE status = 'queued'").get() as {
      t: number | null;
    };
    return r.t;
  }

  finish(
    id: number,
    status: JobStatus,
    nowMs: number,
    fields: { lastError?: string | null; providerId?: string | null; nextAtMs?: number },
  ): AlertJob {
    this.st(
      "UPDATE jobs SET status = ?, updated_at = ?, last_error = CASE WHEN ? = 'sent' THEN NULL ELSE COALESCE(?, last_error) END, provider_id = COALESCE(?, provider_id), next_at = COALESCE(?, next_at) WHERE id = ?",
    ).run(
      status,
      nowMs,
      status,
      fields.lastError ?? null,
      fields.providerId ?? null,
      fields.nextAtMs ?? null,
      id,
    );
    return this.job(id)!;
  }

  job(id: number): AlertJob | null {
    const r = this.st('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return r ? toJob(r) : null;
  }

  jobsForEvent(eventId: string): AlertJob[] {
    return (this.st('SELECT * FROM jobs WHERE event_id = ? ORDER BY id').all(eventId) as JobRow[]).map(toJob);
  }

  allJobs(): AlertJob[] {
    return (this.st('SELECT * FROM jobs ORDER BY id').all() as JobRow[]).map(toJob);
  }

  /** Messages to this recipient that were or will be sent since `sinceMs` (for the per-contact rate limit). */
  sentOrPendingTo(recipient: string, sinceMs: number): number {
    const r = this.st(
      "SELECT COUNT(*) AS n FROM jobs WHERE recipient = ? AND created_at >= ? AND status IN ('queued', 'in-flight', 'sent')",
    ).get(recipient, sinceMs) as { n: number };
    return r.n;
  }

  cooldown(key: string): CooldownRow | null {
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

  startCooldown(row: Omit<CooldownRow, 'suppressed' | 'peak' | 'lastAt'>): void {
    this.st(
      'INSERT OR REPLACE INTO cooldowns (key, sensor_id, policy_index, first_event_id, until_ms, suppressed, peak, last_at) VALUES (?, ?, ?, ?, ?, 0, 0, NULL)',
    ).run(row.key, row.sensorId, row.policyIndex, row.firstEventId, row.untilMs);
  }

  noteSuppressed(key: string, probability: number, at: string): void {
    this.st(
      'UPDATE cooldowns SET suppressed = suppressed + 1, peak = MAX(peak, ?), last_at = ? WHERE key = ?',
    ).run(probability, at, key);
  }

  expiredCooldowns(nowMs: number): CooldownRow[] {
    const keys = this.st('SELECT key FROM cooldowns WHERE until_ms <= ?').all(nowMs) as {
      key: string;
    }[];
    return keys.map((k) => this.cooldown(k.key)!).filter(Boolean);
  }

  deleteCooldown(key: string): void {
    this.st('DELETE FROM cooldowns WHERE key = ?').run(key);
  }
}
