import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { type Collection, MongoClient } from 'mongodb';
import type {
  CommandName,
  CommandResultMessage,
  DetectionOverrides,
  EffectiveDetection,
  ModelRef,
} from '../../protocol/messages.ts';
import { type Migration, migrate } from '../../runtime/sqlite-migrations.ts';
import { CloudError } from '../errors.ts';

/**
 * Where a command is: `sending` (the bridge is publishing it), `queued` (the broker took it:
 * the sensor gets it when it is connected, from its persistent session otherwise), `send-failed`
 * (the broker did not take it: nothing reached the sensor), `applied` / `refused` (the sensor's
 * answer). Only the sensor's answer says something happened on the sensor.
 */
export type CommandState = 'sending' | 'queued' | 'send-failed' | 'applied' | 'refused';

/** One command and its outcome: the per-sensor audit list (who changed what, when, with what result). */
export interface CommandRecord {
  commandId: string;
  sensorId: string;
  command: CommandName;
  issuedAt: string;
  issuedBy: string;
  detection?: DetectionOverrides | undefined;
  model?: ModelRef | undefined;
  state: CommandState;
  /** Why it could not be sent (state send-failed). */
  sendError?: string | null;
  result?: {
    at: string;
    receivedAt: string;
    ok: boolean;
    code?: string | undefined;
    message?: string | undefined;
    detection?: EffectiveDetection | undefined;
    modelVersion?: string | undefined;
  } | null;
}

export interface CommandLog {
  start(): Promise<void>;
  stop(): Promise<void>;
  insert(record: CommandRecord): Promise<void>;
  /** The broker's answer to the bridge's publish. Never moves a command that already has a result. */
  setSendState(commandId: string, state: 'queued' | 'send-failed', error?: string): Promise<void>;
  /** The sensor's answer; idempotent (results arrive at every bridge, and may arrive twice). */
  recordResult(result: CommandResultMessage, receivedAt: string): Promise<CommandRecord | null>;
  get(commandId: string): Promise<CommandRecord | null>;
  /** Newest first. */
  list(sensorId: string, limit: number): Promise<CommandRecord[]>;
}

function resultOf(r: CommandResultMessage, receivedAt: string): NonNullable<CommandRecord['result']> {
  return {
    at: r.timestamp,
    receivedAt,
    ok: r.ok,
    ...(r.code !== undefined && { code: r.code }),
    ...(r.message !== undefined && { message: r.message }),
    ...(r.detection !== undefined && { detection: r.detection }),
    ...(r.modelVersion !== undefined && { modelVersion: r.modelVersion }),
  };
}

/** `commands.sqlite`'s schema, in order (runtime/sqlite-migrations.ts: PRAGMA user_version). */
export const COMMAND_LOG_MIGRATIONS: readonly Migration[] = [
  {
    description: 'commands with their audit record as JSON, by sensor and time',
    up: (db) =>
      db.exec(`CREATE TABLE IF NOT EXISTS commands (
        command_id TEXT PRIMARY KEY,
        sensor_id TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        doc TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS commands_sensor ON commands (sensor_id, issued_at DESC, command_id DESC);`),
  },
];

/** The embedded default: `<dataDir>/commands.sqlite` (one bridge). */
export class SqliteCommandLog implements CommandLog {
  private db: Database.Database | null = null;

  constructor(private readonly path: string) {}

  async start(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    const db = new Database(this.path);
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    try {
      migrate(db, COMMAND_LOG_MIGRATIONS, { name: 'commands', path: this.path });
    } catch (err) {
      db.close();
      throw err;
    }
    this.db = db;
  }

  async stop(): Promise<void> {
    this.db?.close();
    this.db = null;
  }

  private get d(): Database.Database {
    if (!this.db) throw new CloudError('CLOUD_STORE_OPEN_FAILED', `command log ${this.path} is not open`);
    return this.db;
  }

  async insert(record: CommandRecord): Promise<void> {
    this.d
      .prepare('INSERT INTO commands (command_id, sensor_id, issued_at, doc) VALUES (?, ?, ?, ?)')
      .run(record.commandId, record.sensorId, record.issuedAt, JSON.stringify(record));
  }

  private update(
    commandId: string,
    change: (r: CommandRecord) => CommandRecord | null,
  ): CommandRecord | null {
    const db = this.d;
    return db.transaction(() => {
      const row = db.prepare('SELECT doc FROM commands WHERE command_id = ?').get(commandId) as
        | { doc: string }
        | undefined;
      if (!row) return null;
      const next = change(JSON.parse(row.doc) as CommandRecord);
      if (next)
        db.prepare('UPDATE commands SET doc = ? WHERE command_id = ?').run(JSON.stringify(next), commandId);
      return next ?? (JSON.parse(row.doc) as CommandRecord);
    })();
  }

  async setSendState(commandId: string, state: 'queued' | 'send-failed', error?: string): Promise<void> {
    this.update(commandId, (r) =>
      r.result || r.state !== 'sending' ? null : { ...r, state, sendError: error ?? null },
    );
  }

  async recordResult(result: CommandResultMessage, receivedAt: string): Promise<CommandRecord | null> {
    return this.update(result.commandId, (r) =>
      r.result || r.sensorId !== result.sensorId
        ? null
        : { ...r, state: result.ok ? 'applied' : 'refused', result: resultOf(result, receivedAt) },
    );
  }

  async get(commandId: string): Promise<CommandRecord | null> {
    const row = this.d.prepare('SELECT doc FROM commands WHERE command_id = ?').get(commandId) as
      | { doc: string }
      | undefined;
    return row ? (JSON.parse(row.doc) as CommandRecord) : null;
  }

  async list(sensorId: string, limit: number): Promise<CommandRecord[]> {
    const rows = this.d
      .prepare(
        'SELECT doc FROM commands WHERE sensor_id = ? ORDER BY issued_at DESC, command_id DESC LIMIT ?',
      )
      .all(sensorId, limit) as { doc: string }[];
    return rows.map((r) => JSON.parse(r.doc) as CommandRecord);
  }
}

/** With MONGODB_URI: the `sensor_commands` collection, shared by every bridge. */
export class MongoCommandLog implements CommandLog {
  private client: MongoClient | null = null;
  private coll: Collection<CommandRecord> | null = null;

  constructor(private readonly options: { uri: string; dbName: string | null }) {}

  async start(): Promise<void> {
    const client = new MongoClient(this.options.uri, {
      serverSelectionTimeoutMS: 10_000,
      appName: 'screamwatch-cloud',
    });
    try {
      await client.connect();
      const db = client.db(this.options.dbName ?? undefined);
      const name = db.databaseName && db.databaseName !== 'test' ? db.databaseName : 'screamwatch';
      const coll = client.db(this.options.dbName ?? name).collection<CommandRecord>('sensor_commands');
      await coll.createIndexes([
        { key: { commandId: 1 }, name: 'commandId_unique', unique: true },
        { key: { sensorId: 1, issuedAt: -1, commandId: -1 }, name: 'sensor_time' },
      ]);
      this.client = client;
      this.coll = coll;
    } catch (err) {
      await client.close().catch(() => {});
      throw new CloudError(
        'CLOUD_STORE_OPEN_FAILED',
        `cannot open the MongoDB command log: ${(err as Error).message}`,
        {},
        {
          cause: err,
        },
      );
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.coll = null;
    await client?.close();
  }

  private get c(): Collection<CommandRecord> {
    if (!this.coll) throw new CloudError('CLOUD_STORE_OPEN_FAILED', 'the MongoDB command log is not started');
    return this.coll;
  }

  async insert(record: CommandRecord): Promise<void> {
    await this.c.insertOne({ ...record, result: record.result ?? null });
  }

  async setSendState(commandId: string, state: 'queued' | 'send-failed', error?: string): Promise<void> {
    // conditional on the state, so a result that landed first (another bridge) is never undone
    await this.c.updateOne({ commandId, state: 'sending' }, { $set: { state, sendError: error ?? null } });
  }

  async recordResult(result: CommandResultMessage, receivedAt: string): Promise<CommandRecord | null> {
    await this.c.updateOne(
      { commandId: result.commandId, sensorId: result.sensorId, result: null },
      { $set: { state: result.ok ? 'applied' : 'refused', result: resultOf(result, receivedAt) } },
    );
    return this.get(result.commandId);
  }

  async get(commandId: string): Promise<CommandRecord | null> {
    const doc = await this.c.findOne({ commandId }, { projection: { _id: 0 } });
    return (doc as CommandRecord | null) ?? null;
  }

  async list(sensorId: string, limit: number): Promise<CommandRecord[]> {
    const docs = await this.c
      .find({ sensorId }, { projection: { _id: 0 } })
      .sort({ issuedAt: -1, commandId: -1 })
      .limit(limit)
      .toArray();
    return docs as CommandRecord[];
  }
}
