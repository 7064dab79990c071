import { type Collection, type Db, MongoClient, MongoServerError } from 'mongodb';
import { CloudError } from '../errors.ts';
import type {
  AlertJob,
  AlertStateStore,
  CooldownRow,
  FinishFields,
  JobStatus,
  Lease,
  NewJob,
} from './alert-state.ts';

const HOUR_MS = 3_600_000;

type JobDoc = Omit<AlertJob, 'id'> & { _id: number };
interface DecisionDoc {
  _id: string;
  outcome: string;
  decidedAtMs: number;
}
interface CooldownDoc {
  _id: string;
  sensorId: string;
  policyIndex: number;
  firstEventId: string;
  untilMs: number;
  suppressed: number;
  peak: number;
  lastAt: string | null;
  /** Events counted in `suppressed` (so a redelivered one is not counted twice). */
  suppressedIds: string[];
  /** A bridge closing the ended window holds it until then. */
  closingUntilMs: number;
}
interface RateDoc {
  _id: string;
  /** Reservations of the last hour (older ones are pulled before each reservation). */
  recent: { key: string; at: number }[];
}
interface CounterDoc {
  _id: string;
  seq: number;
}

export interface MongoAlertStateOptions {
  uri: string;
  dbName?: string | null;
  serverSelectionTimeoutMs?: number;
}

const isDuplicateKey = (err: unknown): boolean => err instanceof MongoServerError && err.code === 11000;

const toJob = ({ _id, ...rest }: JobDoc): AlertJob => ({ id: _id, ...rest });

const toCooldown = (d: CooldownDoc): CooldownRow => ({
  key: d._id,
  sensorId: d.sensorId,
  policyIndex: d.policyIndex,
  firstEventId: d.firstEventId,
  untilMs: d.untilMs,
  suppressed: d.suppressed,
  peak: d.peak,
  lastAt: d.lastAt,
});

/**
 * The alert state of several bridges in one MongoDB (MONGODB_URI): collections `alert_jobs`,
 * `alert_decisions`, `alert_cooldowns`, `alert_rates` (and `alert_counters` for job ids). Every
 * step is one atomic document operation: unique indexes and conditional findOneAndUpdate with
 * upsert decide races between bridges (E11000 = someone else got there first), never a read
 * followed by a write. No multi-document transactions, so a standalone server works too.
 */
export class MongoAlertState implements AlertStateStore {
  private client: MongoClient | null = null;
  private db: Db | null = null;

  constructor(private readonly options: MongoAlertStateOptions) {}

  get where(): string {
    return this.options.uri.replace(/\/\/[^@/]*@/, '//***@');
  }

  async open(): Promise<void> {
    if (this.client) return;
    const client = new MongoClient(this.options.uri, {
      serverSelectionTimeoutMS: this.options.serverSelectionTimeoutMs ?? 10_000,
      appName: 'screamwatch-cloud-alerts',
    });
    try {
      await client.connect();
      const fromUri = client.db().databaseName;
      const db = client.db(this.options.dbName ?? (fromUri && fromUri !== 'test' ? fromUri : 'screamwatch'));
      await db.collection<JobDoc>('alert_jobs').createIndexes([
        // One decision per (event, contact, channel) and kind of message.
        { key: { eventId: 1, channel: 1, recipient: 1, kind: 1 }, name: 'one_job', unique: true },
        { key: { status: 1, nextAtMs: 1 }, name: 'due' },
        { key: { status: 1, leaseUntilMs: 1 }, name: 'lease' },
      ]);
      this.client = client;
      this.db = db;
    } catch (err) {
      await client.close().catch(() => {});
      throw new CloudError(
        'CLOUD_ALERT_QUEUE',
        `cannot open the alert state in MongoDB at ${this.where}: ${(err as Error).message}`,
        { uri: this.where },
        { cause: err },
      );
    }
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.db = null;
    await client?.close();
  }

  private c<T extends object>(name: string): Collection<T> {
    if (!this.db) throw new CloudError('CLOUD_ALERT_QUEUE', `alert state ${this.where} is not open`);
    return this.db.collection<T>(name);
  }
  private get jobs() {
    return this.c<JobDoc>('alert_jobs');
  }

  /** The primary answers a ping (the driver fails it when no writable server is selectable). */
  async checkWritable(): Promise<void> {
    if (!this.db) throw new CloudError('CLOUD_ALERT_QUEUE', `alert state ${this.where} is not open`);
    await this.db.command({ ping: 1 }, { readPreference: 'primary', timeoutMS: 2000 });
  }

  async jobCounts(): Promise<{ channel: string; status: string; n: number }[]> {
    const rows = await this.jobs
      .aggregate<{ _id: { channel: string; status: string }; n: number }>([
        { $group: { _id: { channel: '$channel', status: '$status' }, n: { $sum: 1 } } },
      ])
      .toArray();
    return rows.map((r) => ({ channel: r._id.channel, status: r._id.status, n: r.n }));
  }

  async recoverInFlight(owner: string, nowMs: number): Promise<number> {
    const r = await this.jobs.updateMany(
      { status: 'in-flight', owner },
      { $set: { status: 'queued', nextAtMs: nowMs, updatedAtMs: nowMs, owner: null, leaseUntilMs: null } },
    );
    return r.modifiedCount;
  }

  async decided(eventId: string): Promise<string | null> {
    return (await this.c<DecisionDoc>('alert_decisions').findOne({ _id: eventId }))?.outcome ?? null;
  }

  async recordDecision(eventId: string, outcome: string, nowMs: number): Promise<boolean> {
    try {
      const r = await this.c<DecisionDoc>('alert_decisions').updateOne(
        { _id: eventId },
        { $setOnInsert: { outcome, decidedAtMs: nowMs } },
        { upsert: true },
      );
      return r.upsertedCount === 1;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  private async nextId(): Promise<number> {
    const r = await this.c<CounterDoc>('alert_counters').findOneAndUpdate(
      { _id: 'alert_jobs' },
      { $inc: { seq: 1 } },
      { upsert: true, returnDocument: 'after' },
    );
    return r!.seq;
  }

  async addJob(job: NewJob, nowMs: number): Promise<AlertJob> {
    const key = { eventId: job.eventId, channel: job.channel, recipient: job.recipient, kind: job.kind };
    const existing = await this.jobs.findOne(key);
    if (existing) return toJob(existing);
    const doc: JobDoc = {
      _id: await this.nextId(),
      ...key,
      subject: job.subject,
      text: job.text,
      html: job.html,
      status: job.status,
      attempts: 0,
      nextAtMs: job.nextAtMs,
      lastError: job.lastError ?? null,
      providerId: null,
      createdAtMs: nowMs,
      updatedAtMs: nowMs,
      recordOnEvent: job.recordOnEvent,
      owner: null,
      leaseUntilMs: null,
    };
    try {
      // The unique index decides between two bridges adding the same job: the loser reads the winner's.
      const { _id, ...fields } = doc;
      const r = await this.jobs.findOneAndUpdate(
        key,
        { $setOnInsert: { _id, ...fields } },
        { upsert: true, returnDocument: 'after' },
      );
      return toJob(r!);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      const won = await this.jobs.findOne(key);
      if (!won) throw err;
      return toJob(won);
    }
  }

  async claimDue(nowMs: number, limit: number, lease: Lease): Promise<AlertJob[]> {
    const out: AlertJob[] = [];
    while (out.length < limit) {
      const doc = await this.jobs.findOneAndUpdate(
        {
          $or: [
            { status: 'queued', nextAtMs: { $lte: nowMs } },
            // Its bridge died mid-send (or hangs past the lease): someone else sends it.
            { status: 'in-flight', leaseUntilMs: { $lte: nowMs } },
          ],
        },
        {
          $set: {
            status: 'in-flight',
            owner: lease.owner,
            leaseUntilMs: nowMs + lease.ms,
            updatedAtMs: nowMs,
          },
          $inc: { attempts: 1 },
        },
        { sort: { nextAtMs: 1, _id: 1 }, returnDocument: 'after' },
      );
      if (!doc) break;
      out.push(toJob(doc));
    }
    return out;
  }

  async finish(
    id: number,
    owner: string,
    status: JobStatus,
    nowMs: number,
    fields: FinishFields,
  ): Promise<AlertJob | null> {
    const set: Partial<JobDoc> = { status, updatedAtMs: nowMs, owner: null, leaseUntilMs: null };
    if (status === 'sent') set.lastError = null;
    else if (fields.lastError != null) set.lastError = fields.lastError;
    if (fields.providerId != null) set.providerId = fields.providerId;
    if (fields.nextAtMs !== undefined) set.nextAtMs = fields.nextAtMs;
    const doc = await this.jobs.findOneAndUpdate(
      { _id: id, status: 'in-flight', owner },
      { $set: set },
      { returnDocument: 'after' },
    );
    return doc ? toJob(doc) : null;
  }

  async job(id: number): Promise<AlertJob | null> {
    const d = await this.jobs.findOne({ _id: id });
    return d ? toJob(d) : null;
  }

  async jobsForEvent(eventId: string): Promise<AlertJob[]> {
    return (await this.jobs.find({ eventId }).sort({ _id: 1 }).toArray()).map(toJob);
  }

  async reserveRate(recipient: string, jobKey: string, limit: number, nowMs: number): Promise<boolean> {
    if (limit <= 0) return false;
    const rates = this.c<RateDoc>('alert_rates');
    await rates.updateOne({ _id: recipient }, { $pull: { recent: { at: { $lte: nowMs - HOUR_MS } } } });
    try {
      // Matches only while this key is not reserved and fewer than `limit` are: then one push.
      await rates.updateOne(
        { _id: recipient, 'recent.key': { $ne: jobKey }, [`recent.${limit - 1}`]: { $exists: false } },
        { $push: { recent: { key: jobKey, at: nowMs } } },
        { upsert: true },
      );
      return true;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      // The document exists and did not match: either this key holds a reservation already
      // (a repeat: same answer) or the hour is full.
      return (await rates.findOne({ _id: recipient, 'recent.key': jobKey })) !== null;
    }
  }

  async rateFreeAt(recipient: string, nowMs: number): Promise<number | null> {
    const doc = await this.c<RateDoc>('alert_rates').findOne({ _id: recipient });
    const held = (doc?.recent ?? []).map((r) => r.at).filter((at) => at > nowMs - HOUR_MS);
    return held.length ? Math.min(...held) + HOUR_MS : null;
  }

  async cooldownOf(key: string): Promise<Pick<CooldownRow, 'firstEventId' | 'untilMs'> | null> {
    const cd = await this.c<CooldownDoc>('alert_cooldowns').findOne({ _id: key });
    return cd ? { firstEventId: cd.firstEventId, untilMs: cd.untilMs } : null;
  }

  async claimCooldown(
    row: Omit<CooldownRow, 'suppressed' | 'peak' | 'lastAt'>,
    nowMs: number,
  ): Promise<'owner' | 'held'> {
    const cds = this.c<CooldownDoc>('alert_cooldowns');
    for (let tries = 0; tries < 3; tries++) {
      try {
        // Opens a new window, or takes over one that has ended and belongs to another event.
        await cds.updateOne(
          { _id: row.key, untilMs: { $lte: nowMs }, firstEventId: { $ne: row.firstEventId } },
          {
            $set: {
              sensorId: row.sensorId,
              policyIndex: row.policyIndex,
              firstEventId: row.firstEventId,
              untilMs: row.untilMs,
              suppressed: 0,
              peak: 0,
              lastAt: null,
              suppressedIds: [],
              closingUntilMs: 0,
            },
          },
          { upsert: true },
        );
        return 'owner';
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        // A window exists and was not taken over: it is this event's own, or another's still open.
        const cd = await cds.findOne({ _id: row.key });
        if (cd) return cd.firstEventId === row.firstEventId ? 'owner' : 'held';
        // Deleted meanwhile (closed by another bridge): try again.
      }
    }
    throw new CloudError('CLOUD_ALERT_QUEUE', `cooldown ${row.key}: could not open or read the window`);
  }

  async noteSuppressed(key: string, eventId: string, probability: number, at: string): Promise<void> {
    await this.c<CooldownDoc>('alert_cooldowns').updateOne(
      { _id: key, suppressedIds: { $ne: eventId } },
      { $push: { suppressedIds: eventId }, $inc: { suppressed: 1 }, $max: { peak: probability, lastAt: at } },
    );
  }

  async claimExpiredCooldown(nowMs: number, lease: Lease): Promise<CooldownRow | null> {
    const d = await this.c<CooldownDoc>('alert_cooldowns').findOneAndUpdate(
      { untilMs: { $lte: nowMs }, closingUntilMs: { $lte: nowMs } },
      { $set: { closingUntilMs: nowMs + lease.ms } },
      { sort: { untilMs: 1 }, returnDocument: 'after' },
    );
    return d ? toCooldown(d) : null;
  }

  async purgeEvents(eventIds: readonly string[]): Promise<number> {
    if (eventIds.length === 0) return 0;
    const ids = [...eventIds];
    const jobs = await this.jobs.deleteMany({ eventId: { $in: ids } });
    const decisions = await this.c<DecisionDoc>('alert_decisions').deleteMany({ _id: { $in: ids } });
    return jobs.deletedCount + decisions.deletedCount;
  }

  async deleteCooldown(key: string, firstEventId: string): Promise<void> {
    await this.c<CooldownDoc>('alert_cooldowns').deleteOne({ _id: key, firstEventId });
  }
}
