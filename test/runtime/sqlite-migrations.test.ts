import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALERT_QUEUE_MIGRATIONS, AlertQueue } from '../../cloud/alerts/alert-queue.ts';
import { SENSOR_HISTORY_MIGRATIONS, SensorHistory } from '../../cloud/ingest/sensor-history.ts';
import { EVENT_STORE_MIGRATIONS, SqliteEventStore } from '../../cloud/store/sqlite-store.ts';
import { Outbox } from '../../daemon/outbox/outbox.ts';
import { OUTBOX_MIGRATIONS, OutboxStore } from '../../daemon/outbox/outbox-store.ts';
import { exitCodeFor } from '../../protocol/errors.ts';
import { type Migration, migrate } from '../../runtime/sqlite-migrations.ts';
import { tempDir } from '../cloud/bridge-harness.ts';
import { sampleStoredEvent } from '../cloud/fixtures.ts';

/**
 * Schema versions (PRAGMA user_version) of every SQLite file: the shared helper, then each
 * database upgraded from a file made the way the releases before user_version made it.
 *
 * FROZEN FIXTURES: the CREATE statements below are copied from the code as it was when
 * user_version was introduced (commit 3caa485). Never update them to match the code: they
 * stand for the files already on disks in the field. A new schema gets a migration, and its
 * test upgrades from one of these.
 */
const FROZEN_V0 = {
  outbox: `CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('event', 'report', 'heartbeat')),
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        event_id TEXT
      )`,
  events: `
        CREATE TABLE IF NOT EXISTS events (
          event_id   TEXT PRIMARY KEY,
          sensor_id  TEXT NOT NULL,
          ts_ms      INTEGER NOT NULL,
          is_scream  INTEGER NOT NULL,
          doc        TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS events_time ON events (ts_ms DESC, event_id DESC);
        CREATE INDEX IF NOT EXISTS events_sensor_time ON events (sensor_id, ts_ms DESC, event_id DESC);
      `,
  // alerts.sqlite of the releases before leases: the columns owner, lease_until and
  // closing_until were added to it in place by the later ones (ALTER TABLE below).
  alertsBeforeLeases: `
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
      `,
  alertsLeaseColumns: `
        ALTER TABLE jobs ADD COLUMN owner TEXT;
        ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
        ALTER TABLE cooldowns ADD COLUMN closing_until INTEGER NOT NULL DEFAULT 0;
      `,
  sensorHistory: `
        CREATE TABLE IF NOT EXISTS buckets (
          sensor_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL, n INTEGER NOT NULL,
          level_min REAL NOT NULL, level_max REAL NOT NULL, level_sum REAL NOT NULL,
          max_prob REAL NOT NULL, PRIMARY KEY (sensor_id, bucket_ms)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS states (
          sensor_id TEXT NOT NULL, at_ms INTEGER NOT NULL, state TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS states_by_sensor ON states (sensor_id, at_ms);
      `,
};

/** A file written the old way: WAL, the frozen schema, rows, no user_version. */
function oldFile(path: string, sql: string, fill: (db: Database.Database) => void): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(sql);
  fill(db);
  db.close();
}

function versionOf(path: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
}

function setVersion(path: string, v: number): void {
  const db = new Database(path);
  db.pragma(`user_version = ${v}`);
  db.close();
}

let dir: Awaited<ReturnType<typeof tempDir>>;
let n = 0;
const fresh = (name: string) => join(dir.path, `${n++}-${name}`);
beforeAll(async () => {
  dir = await tempDir('sw-migrations-');
});
afterAll(async () => {
  await dir.remove();
});

describe('migrate (runtime/sqlite-migrations.ts)', () => {
  const steps: Migration[] = [
    { description: 'a', up: (db) => db.exec('CREATE TABLE a (x INTEGER)') },
    { description: 'b', up: (db) => db.exec('ALTER TABLE a ADD COLUMN y TEXT') },
    { description: 'c', up: (db) => db.exec('CREATE TABLE c (z INTEGER)') },
  ];

  it('runs the steps in order from the file’s version, once, and sets user_version', () => {
    const path = fresh('steps.sqlite');
    const db = new Database(path);
    try {
      expect(migrate(db, steps.slice(0, 1), { name: 't', path })).toEqual({ from: 0, to: 1 });
      db.prepare('INSERT INTO a (x) VALUES (1)').run();
      expect(migrate(db, steps, { name: 't', path })).toEqual({ from: 1, to: 3 });
      expect(db.prepare('SELECT x, y FROM a').all()).toEqual([{ x: 1, y: null }]);
      // nothing left to do: no step runs again (b would fail: duplicate column)
      expect(migrate(db, steps, { name: 't', path })).toEqual({ from: 3, to: 3 });
      expect(db.pragma('user_version', { simple: true })).toBe(3);
    } finally {
      db.close();
    }
  });

  it('a failing step leaves the file at the version before it, with nothing of the step applied', () => {
    const path = fresh('failing.sqlite');
    const db = new Database(path);
    try {
      const broken: Migration = {
        description: 'half done',
        up: (d) => {
          d.exec('CREATE TABLE half (x INTEGER)');
          throw new Error('disk said no');
        },
      };
      expect(() => migrate(db, [steps[0]!, broken], { name: 't', path })).toThrow(/disk said no/);
      expect(db.pragma('user_version', { simple: true })).toBe(1);
      expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'half'").all()).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('refuses a newer file with DB_SCHEMA_TOO_NEW naming the file and both versions (exit 78)', () => {
    const path = fresh('newer.sqlite');
    setVersion(path, 7);
    const db = new Database(path);
    try {
      let err: unknown;
      try {
        migrate(db, steps, { name: 'thing', path });
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({
        code: 'DB_SCHEMA_TOO_NEW',
        message: `${path}: thing schema version 7 is newer than this release knows (3); run the release that wrote it, or restore a backup`,
        context: { file: path, found: 7, known: 3 },
      });
      expect(exitCodeFor(err)).toBe(78);
      expect(db.pragma('user_version', { simple: true })).toBe(7);
    } finally {
      db.close();
    }
  });
});

/** Every SQLite database of both sides: how to open it with today's code, and today's version. */
describe('every database starts at schema version 1', () => {
  it('knows version 1 for the outbox, events, alerts and sensor history', () => {
    for (const m of [
      OUTBOX_MIGRATIONS,
      EVENT_STORE_MIGRATIONS,
      ALERT_QUEUE_MIGRATIONS,
      SENSOR_HISTORY_MIGRATIONS,
    ])
      expect(m).toHaveLength(1);
  });
});

describe('upgrade from the files of the releases before user_version (version 0)', () => {
  it('outbox.sqlite: rows survive, user_version 1, a second open changes nothing', () => {
    const stateDir = fresh('state');
    mkdirSync(stateDir);
    const path = join(stateDir, 'outbox.sqlite');
    oldFile(path, FROZEN_V0.outbox, (db) => {
      const ins = db.prepare(
        'INSERT INTO outbox (kind, topic, payload, created_at_ms, event_id) VALUES (?, ?, ?, ?, ?)',
      );
      ins.run('event', 'screamwatch/sensors/hall-1/events', Buffer.from('{"e":1}'), 1000, '01EVENT1');
      ins.run('heartbeat', 'screamwatch/sensors/hall-1/heartbeat', Buffer.from('{"h":1}'), 2000, null);
    });
    expect(versionOf(path)).toBe(0);
    for (let open = 0; open < 2; open++) {
      const store = new OutboxStore(stateDir, { maxRows: 100 });
      try {
        expect(store.depth).toBe(2);
        const rows = store.peek(0, 10);
        expect(rows.map((r) => [r.kind, r.eventId, r.payload.toString()])).toEqual([
          ['event', '01EVENT1', '{"e":1}'],
          ['heartbeat', null, '{"h":1}'],
        ]);
        // and it still takes writes, after the old rows
        const added = store.add('event', 't', Buffer.from('x'), 3000, '01EVENT2');
        expect(added.id).toBeGreaterThan(rows[1]!.id);
        store.remove(added.id!);
      } finally {
        store.close();
      }
      expect(versionOf(path)).toBe(1);
    }
  });

  it('events.sqlite: events survive field for field, user_version 1', async () => {
    const path = fresh('events.sqlite');
    const e = sampleStoredEvent({ eventId: '01KAXT0000AAAAAAAAAAAAAAAB', notes: 'from the old file' });
    oldFile(path, FROZEN_V0.events, (db) => {
      db.prepare(
        'INSERT INTO events (event_id, sensor_id, ts_ms, is_scream, doc) VALUES (?, ?, ?, ?, ?)',
      ).run(e.eventId, e.sensorId, Date.parse(e.timestamp), 1, JSON.stringify(e));
    });
    for (let open = 0; open < 2; open++) {
      const store = new SqliteEventStore(path);
      await store.start();
      try {
        expect(await store.get(e.eventId)).toEqual(e);
        expect((await store.list({ sensorId: 'hall-1' })).map((x) => x.eventId)).toEqual([e.eventId]);
      } finally {
        await store.stop();
      }
      expect(versionOf(path)).toBe(1);
    }
  });

  for (const variant of ['with lease columns', 'before leases'] as const) {
    it(`alerts.sqlite (${variant}): jobs and decisions survive, leases work, user_version 1`, async () => {
      const path = fresh('alerts.sqlite');
      oldFile(
        path,
        FROZEN_V0.alertsBeforeLeases + (variant === 'with lease columns' ? FROZEN_V0.alertsLeaseColumns : ''),
        (db) => {
          db.prepare('INSERT INTO decisions (event_id, outcome, decided_at) VALUES (?, ?, ?)').run(
            'E1',
            'alerted',
            5,
          );
          db.prepare(
            `INSERT INTO jobs (event_id, channel, recipient, kind, subject, text, html, status, attempts, next_at, created_at, updated_at)
             VALUES ('E1', 'sms', '+15550001', 'alert', 's', 't', 'h', 'queued', 1, 10, 5, 5)`,
          ).run();
        },
      );
      for (let open = 0; open < 2; open++) {
        const q = new AlertQueue(path);
        await q.open();
        try {
          expect(await q.decided('E1')).toBe('alerted');
          const [job] = await q.jobsForEvent('E1');
          expect(job).toMatchObject({
            recipient: '+15550001',
            status: open ? 'in-flight' : 'queued',
            attempts: open + 1,
          });
          if (open === 0) {
            const claimed = await q.claimDue(100, 10, { owner: 'bridge-a', ms: 60_000 });
            expect(claimed.map((j) => [j.eventId, j.owner])).toEqual([['E1', 'bridge-a']]);
          }
        } finally {
          await q.close();
        }
        expect(versionOf(path)).toBe(1);
      }
    });
  }

  it('sensor-history.sqlite: buckets and states survive, user_version 1', () => {
    const path = fresh('sensor-history.sqlite');
    const now = Date.parse('2027-01-10T12:00:00.000Z');
    const bucket = Math.floor((now - 600_000) / 300_000) * 300_000;
    oldFile(path, FROZEN_V0.sensorHistory, (db) => {
      db.prepare(
        'INSERT INTO buckets (sensor_id, bucket_ms, n, level_min, level_max, level_sum, max_prob) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ).run('hall-1', bucket, 2, -50, -40, -90, 0.25);
      db.prepare('INSERT INTO states (sensor_id, at_ms, state) VALUES (?, ?, ?)').run(
        'hall-1',
        now - 3_600_000,
        'online',
      );
    });
    for (let open = 0; open < 2; open++) {
      const h = new SensorHistory({ path });
      h.open();
      try {
        const got = h.history('hall-1', '24h', now);
        expect(got.buckets).toEqual([
          {
            at: new Date(bucket).toISOString(),
            n: 2,
            levelMinDbfs: -50,
            levelMaxDbfs: -40,
            levelMeanDbfs: -45,
            maxProbability: 0.25,
          },
        ]);
        expect(got.periods).toEqual([
          { state: 'online', from: new Date(now - 3_600_000).toISOString(), to: null },
        ]);
      } finally {
        h.close();
      }
      expect(versionOf(path)).toBe(1);
    }
  });
});

describe('a file from a newer release (user_version 999) is refused, and left as it was', () => {
  const expectTooNew = (err: unknown, path: string) => {
    expect(err).toMatchObject({ code: 'DB_SCHEMA_TOO_NEW', context: { file: path, found: 999, known: 1 } });
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain('version 999');
    expect((err as Error).message).toContain('(1)');
  };
  const catchOf = async (fn: () => unknown): Promise<unknown> => {
    try {
      await fn();
    } catch (err) {
      return err;
    }
    throw new Error('expected a refusal');
  };

  it('events, alerts and sensor history on the bridge', async () => {
    const events = fresh('events.sqlite');
    oldFile(events, FROZEN_V0.events, () => {});
    setVersion(events, 999);
    expectTooNew(await catchOf(() => new SqliteEventStore(events).start()), events);

    const alerts = fresh('alerts.sqlite');
    oldFile(alerts, FROZEN_V0.alertsBeforeLeases, () => {});
    setVersion(alerts, 999);
    expectTooNew(await catchOf(() => new AlertQueue(alerts).open()), alerts);

    const history = fresh('sensor-history.sqlite');
    oldFile(history, FROZEN_V0.sensorHistory, () => {});
    setVersion(history, 999);
    expectTooNew(await catchOf(() => new SensorHistory({ path: history }).open()), history);

    for (const p of [events, alerts, history]) expect(versionOf(p)).toBe(999);
  });

  it('the daemon outbox: refused with the code (exit 78), not taken for a corrupt file and moved aside', async () => {
    const stateDir = fresh('state');
    mkdirSync(stateDir);
    const path = join(stateDir, 'outbox.sqlite');
    oldFile(path, FROZEN_V0.outbox, (db) => {
      db.prepare(
        "INSERT INTO outbox (kind, topic, payload, created_at_ms, event_id) VALUES ('event', 't', x'00', 1, '01KEEP')",
      ).run();
    });
    setVersion(path, 999);
    expectTooNew(await catchOf(() => new OutboxStore(stateDir, { maxRows: 10 })), path);
    const outbox = new Outbox({
      stateDir,
      maxRows: 10,
      memoryMaxRows: 10,
      retry: { initialDelayMs: 1000, maxDelayMs: 1000, multiplier: 1 },
      logger: pino({ level: 'silent' }),
      clock: { now: () => Date.now() },
    });
    const err = await catchOf(() => outbox.open());
    expectTooNew(err, path);
    expect(exitCodeFor(err)).toBe(78);
    outbox.close();
    expect(readdirSync(stateDir).filter((f) => f.includes('corrupt'))).toEqual([]);
    expect(versionOf(path)).toBe(999);
  });
});
