import { type Collection, type Filter, MongoClient, MongoServerError } from 'mongodb';
import { CloudError } from '../errors.ts';
import { mergeDelivery, summarise } from './deliveries.ts';
import { clampLimit, decodeCursor, KeyedMutex, normaliseEvent } from './query.ts';
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

/** The document: the StoredEvent fields as documented, with `timestamp` as a BSON date for range queries. */
type EventDoc = Omit<StoredEvent, 'timestamp'> & { timestamp: Date };

export interface MongoEventStoreOptions {
  uri: string;
  /** Database name; default: the one in the URI, else `screamwatch`. */
  dbName?: string | null;
  collection?: string;
  /** Server selection timeout: how long start() waits for an unreachable server. */
  serverSelectionTimeoutMs?: number;
}

/** Revision of `deliveries` (compare-and-set between bridges); not part of the StoredEvent. */
const REV = 'deliveriesRev';
const MAX_CAS_TRIES = 16;

function toEvent(doc: EventDoc): StoredEvent {
  const { _id, [REV]: _rev, ...rest } = doc as EventDoc & { _id?: unknown; [REV]?: number };
  return { ...rest, timestamp: doc.timestamp.toISOString() } as StoredEvent;
}

/**
 * The MongoDB store (MONGODB_URI), through the official driver: an `events` collection with a
 * unique index on eventId (writes are upserts by eventId, so a redelivered event is a no-op)
 * and indexes for the time and per-sensor queries the dashboard makes.
 */
export class MongoEventStore implements EventStore {
  private client: MongoClient | null = null;
  private events: Collection<EventDoc> | null = null;
  private readonly mutex = new KeyedMutex();

  constructor(private readonly options: MongoEventStoreOptions) {}

  private get where(): string {
    // Never log the password from the URI.
    return this.options.uri.replace(/\/\/[^@/]*@/, '//***@');
  }

  async start(): Promise<void> {
    if (this.client) return;
    const client = new MongoClient(this.options.uri, {
      serverSelectionTimeoutMS: this.options.serverSelectionTimeoutMs ?? 10_000,
      appName: 'screamwatch-cloud',
    });
    try {
      await client.connect();
      const db = client.db(this.options.dbName ?? undefined);
      const name = db.databaseName && db.databaseName !== 'test' ? db.databaseName : 'screamwatch';
      const events = client
        .db(this.options.dbName ?? name)
        .collection<EventDoc>(this.options.collection ?? 'events');
      await events.createIndexes([
        { key: { eventId: 1 }, name: 'eventId_unique', unique: true },
        { key: { timestamp: -1, eventId: -1 }, name: 'time' },
        { key: { sensorId: 1, timestamp: -1, eventId: -1 }, name: 'sensor_time' },
      ]);
      this.client = client;
      this.events = events;
    } catch (err) {
      await client.close().catch(() => {});
      throw new CloudError(
        'CLOUD_STORE_OPEN_FAILED',
        `cannot open MongoDB event store at ${this.where}: ${(err as Error).message}`,
        {
          uri: this.where,
        },
        { cause: err },
      );
    }
  }

  /** Readiness probe: the primary answers a ping (the driver fails it when no writable server is selectable). */
  async checkWritable(): Promise<void> {
    if (!this.client || !this.events)
      throw new CloudError('CLOUD_STORE_OPEN_FAILED', `MongoDB store ${this.where} is not open`);
    await this.events.db.command({ ping: 1 }, { readPreference: 'primary', timeoutMS: 2000 });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.events = null;
    await client?.close();
  }

  private get c(): Collection<EventDoc> {
    if (!this.events)
      throw new CloudError('CLOUD_STORE_OPEN_FAILED', `MongoDB event store ${this.where} is not started`);
    return this.events;
  }

  async insertIfNew(event: StoredEvent): Promise<boolean> {
    const e = normaliseEvent(event);
    const doc: EventDoc = { ...e, timestamp: new Date(e.timestamp) };
    try {
      const r = await this.c.updateOne({ eventId: e.eventId }, { $setOnInsert: doc }, { upsert: true });
      return r.upsertedCount === 1;
    } catch (err) {
      // Two concurrent upserts of a new eventId: the unique index lets one win [E11000].
      if (err instanceof MongoServerError && err.code === 11000) return false;
      throw err;
    }
  }

  async get(eventId: string): Promise<StoredEvent | null> {
    const doc = await this.c.findOne({ eventId }, { projection: { _id: 0 } });
    return doc ? toEvent(doc) : null;
  }

  async list(query: EventQuery): Promise<StoredEvent[]> {
    const and: Filter<EventDoc>[] = [];
    if (query.sensorId !== undefined) and.push({ sensorId: query.sensorId });
    if (query.from !== undefined) and.push({ timestamp: { $gte: new Date(query.from) } });
    if (query.to !== undefined) and.push({ timestamp: { $lte: new Date(query.to) } });
    if (query.isScream !== undefined) and.push({ isScream: query.isScream });
    if (query.responseState === 'new') {
      and.push({ $or: [{ 'response.state': 'new' }, { response: { $exists: false } }, { response: null }] });
    } else if (query.responseState !== undefined) {
      and.push({ 'response.state': query.responseState });
    }
    if (query.verdict !== undefined) and.push({ 'review.verdict': query.verdict });
    if (query.before !== undefined) {
      const c = decodeCursor(query.before);
      const at = new Date(c.ms);
      and.push({ $or: [{ timestamp: { $lt: at } }, { timestamp: at, eventId: { $lt: c.eventId } }] });
    }
    const docs = await this.c
      .find(and.length ? { $and: and } : {}, { projection: { _id: 0 } })
      .sort({ timestamp: -1, eventId: -1 })
      .limit(clampLimit(query.limit))
      .toArray();
    return docs.map(toEvent);
  }

  private notFound(eventId: string): CloudError {
    return new CloudError('CLOUD_STORE_WRITE_FAILED', `event ${eventId} not found in ${this.where}`, {
      eventId,
    });
  }

  /**
   * Read, merge, write back only if nobody wrote in between (compare-and-set on `deliveriesRev`):
   * two bridges finishing attempts of the same event at once both land, and a stale write is a
   * no-op (cloud/store/deliveries.ts). Serialised per event in this process so one bridge does
   * not race itself; bounded retries against other bridges.
   */
  updateDelivery(eventId: string, delivery: ChannelDelivery): Promise<void> {
    return this.mutex.run(eventId, async () => {
      for (let attempt = 0; attempt < MAX_CAS_TRIES; attempt++) {
        const doc = await this.c.findOne({ eventId }, { projection: { _id: 0, deliveries: 1, [REV]: 1 } });
        if (!doc) throw this.notFound(eventId);
        const current = doc.deliveries ?? [];
        const deliveries = mergeDelivery(current, delivery);
        if (deliveries === current) return;
        const rev = (doc as { [REV]?: number })[REV] ?? null;
        const r = await this.c.updateOne({ eventId, [REV]: rev } as Filter<EventDoc>, {
          $set: {
            deliveries,
            responseStatus: summarise(deliveries),
            [REV]: (rev ?? 0) + 1,
          } as Partial<EventDoc>,
        });
        if (r.matchedCount === 1) return;
      }
      throw new CloudError(
        'CLOUD_STORE_WRITE_FAILED',
        `event ${eventId}: delivery update lost ${MAX_CAS_TRIES} races with other writers in ${this.where}`,
        { eventId },
      );
    });
  }

  private async set(eventId: string, fields: Partial<EventDoc>): Promise<void> {
    const r = await this.c.updateOne({ eventId }, { $set: fields });
    if (r.matchedCount === 0) throw this.notFound(eventId);
  }

  async setReview(eventId: string, review: Review): Promise<void> {
    await this.set(eventId, { review });
  }

  async setTimeline(eventId: string, timeline: NonNullable<StoredEvent['timeline']>): Promise<void> {
    await this.set(eventId, { timeline });
  }

  async setResponseStatus(
    eventId: string,
    responseStatus: ResponseStatus,
    detail: { suppressedBy?: AlertSuppression | null } = {},
  ): Promise<void> {
    await this.set(eventId, { responseStatus, ...detail });
  }

  /**
   * One update: $set the state (and the review when resolved) and $push the history entry, so
   * two people acting at once on different bridges both land in the history, in server order.
   */
  async recordResponse(eventId: string, change: ResponseChange): Promise<StoredEvent | null> {
    const set: Partial<EventDoc> = { response: change.response };
    const review = applyResponseChange({ history: [] } as unknown as StoredEvent, change).review;
    if (review !== undefined) set.review = review;
    const r = await this.c.updateOne({ eventId }, { $set: set, $push: { history: change.entry } });
    if (r.matchedCount === 0) return null;
    return this.get(eventId);
  }

  async count(): Promise<number> {
    return this.c.countDocuments({});
  }

  /** The retention rule as a filter (uses the `time` index). */
  private expired(cutoffs: RetentionCutoffs): Filter<EventDoc> {
    const before = new Date(cutoffs.before);
    const notFalseAlarm: Filter<EventDoc> = {
      timestamp: { $lt: before },
      'review.verdict': { $ne: 'false-alarm' },
    };
    if (cutoffs.keepReviewedBefore === null) return notFalseAlarm;
    return { $or: [{ timestamp: { $lt: new Date(cutoffs.keepReviewedBefore) } }, notFalseAlarm] };
  }

  async findExpired(cutoffs: RetentionCutoffs, limit: number): Promise<string[]> {
    const docs = await this.c
      .find(this.expired(cutoffs), { projection: { _id: 0, eventId: 1 } })
      .sort({ timestamp: 1 })
      .limit(limit)
      .toArray();
    return docs.map((d) => d.eventId);
  }

  async deleteExpired(eventIds: readonly string[], cutoffs: RetentionCutoffs): Promise<number> {
    if (eventIds.length === 0) return 0;
    // The rule is checked again by the server: an event reviewed as a false alarm since stays.
    const r = await this.c.deleteMany({ $and: [{ eventId: { $in: [...eventIds] } }, this.expired(cutoffs)] });
    return r.deletedCount;
  }
}
