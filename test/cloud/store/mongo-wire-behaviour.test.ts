import { randomBytes } from 'node:crypto';
import { type Db, MongoClient, MongoServerError } from 'mongodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type MongoWireServer, startMongoWireServer } from '../../support/mongo-wire-server.ts';

/**
 * What the alert queue relies on, checked on the wire-protocol test server and, with
 * MONGODB_TEST_URI set, on a real MongoDB: the same assertions must hold on both, or the
 * alert-state contract suite proves nothing about MongoDB.
 */
const targets: { name: string; skip: boolean; uri: () => Promise<{ uri: string; stop(): Promise<void> }> }[] =
  [
    {
      name: 'wire-protocol test server',
      skip: false,
      uri: async () => {
        const wire: MongoWireServer = await startMongoWireServer();
        return { uri: wire.uri, stop: () => wire.stop() };
      },
    },
    {
      name: 'MongoDB at MONGODB_TEST_URI',
      skip: !process.env.MONGODB_TEST_URI,
      uri: async () => ({ uri: process.env.MONGODB_TEST_URI ?? '', stop: async () => {} }),
    },
  ];

for (const target of targets) {
  describe.skipIf(target.skip)(`MongoDB behaviour the alert queue needs: ${target.name}`, () => {
    let server: { uri: string; stop(): Promise<void> };
    let client: MongoClient;
    let db: Db;
    beforeAll(async () => {
      server = await target.uri();
      client = new MongoClient(server.uri, { serverSelectionTimeoutMS: 3000 });
      await client.connect();
    });
    afterAll(async () => {
      await client?.close();
      await server?.stop();
    });
    beforeEach(async (ctx) => {
      if (db) await db.dropDatabase();
      db = client.db(`sw_wire_${randomBytes(4).toString('hex')}`);
      ctx.onTestFinished(async () => {
        await db.dropDatabase();
      });
    });

    it('findOneAndUpdate with upsert: inserts from the filter + $setOnInsert, then only updates', async () => {
      const c = db.collection<{ _id: string; n?: number; first?: string; low?: number; high?: number }>(
        'counters',
      );
      const first = await c.findOneAndUpdate(
        { _id: 'a' },
        { $inc: { n: 1 }, $setOnInsert: { first: 'x' }, $min: { low: 5 }, $max: { high: 5 } },
        { upsert: true, returnDocument: 'after' },
      );
      expect(first).toEqual({ _id: 'a', n: 1, first: 'x', low: 5, high: 5 });
      const second = await c.findOneAndUpdate(
        { _id: 'a' },
        { $inc: { n: 2 }, $setOnInsert: { first: 'y' }, $min: { low: 3 }, $max: { high: 4 } },
        { upsert: true, returnDocument: 'after' },
      );
      expect(second).toEqual({ _id: 'a', n: 3, first: 'x', low: 3, high: 5 });
      // returnDocument 'before' on an insert is null; with metadata it says what happened.
      const before = await c.findOneAndUpdate(
        { _id: 'b' },
        { $inc: { n: 1 } },
        { upsert: true, returnDocument: 'before', includeResultMetadata: true },
      );
      expect(before.value).toBeNull();
      expect(before.lastErrorObject).toMatchObject({ n: 1, updatedExisting: false, upserted: 'b' });
      const again = await c.findOneAndUpdate(
        { _id: 'b' },
        { $inc: { n: 1 } },
        { upsert: true, returnDocument: 'before', includeResultMetadata: true },
      );
      expect(again.value).toEqual({ _id: 'b', n: 1 });
      expect(again.lastErrorObject).toMatchObject({ n: 1, updatedExisting: true });
    });

    it('a conditional claim succeeds once: the second claimer gets null', async () => {
      const jobs = db.collection<{ _id: number; status: string; nextAt: number; owner?: string }>('jobs');
      await jobs.insertMany([
        { _id: 1, status: 'queued', nextAt: 30 },
        { _id: 2, status: 'queued', nextAt: 10 },
        { _id: 3, status: 'sent', nextAt: 0 },
      ]);
      const claim = (owner: string) =>
        jobs.findOneAndUpdate(
          { status: 'queued', nextAt: { $lte: 100 } },
          { $set: { status: 'in-flight', owner } },
          { sort: { nextAt: 1 }, returnDocument: 'after' },
        );
      const [a, b] = await Promise.all([claim('bridge-a'), claim('bridge-b')]);
      expect([a?._id, b?._id].sort()).toEqual([1, 2]);
      expect(a?.owner).toBe('bridge-a');
      expect(b?.owner).toBe('bridge-b');
      expect(await claim('bridge-c')).toBeNull();
      // Finishing only if still the owner: a stale owner matches nothing.
      const stale = await jobs.updateOne({ _id: 2, owner: 'bridge-x' }, { $set: { status: 'sent' } });
      expect(stale.matchedCount).toBe(0);
      const mine = await jobs.updateOne(
        { _id: a!._id, owner: 'bridge-a', status: 'in-flight' },
        { $set: { status: 'sent' } },
      );
      expect(mine.matchedCount).toBe(1);
      expect(mine.modifiedCount).toBe(1);
    });

    it('an upsert whose filter misses an existing _id fails with E11000 (keyPattern, keyValue)', async () => {
      const cd = db.collection<{ _id: string; owner: string; until: number }>('cooldowns');
      await cd.insertOne({ _id: 'hall-1|0', owner: 'e1', until: 1000 });
      const claim = (owner: string, now: number) =>
        cd.findOneAndUpdate(
          { _id: 'hall-1|0', $or: [{ until: { $lte: now } }, { owner }] },
          { $set: { owner, until: now + 1000 } },
          { upsert: true, returnDocument: 'after' },
        );
      const err = await claim('e2', 500).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MongoServerError);
      expect((err as MongoServerError).code).toBe(11000);
      expect((err as MongoServerError).keyPattern).toEqual({ _id: 1 });
      expect((err as MongoServerError).keyValue).toEqual({ _id: 'hall-1|0' });
      // The owner itself, or anyone once the window is over, gets it.
      expect(await claim('e1', 500)).toMatchObject({ owner: 'e1', until: 1500 });
      expect(await claim('e3', 1500)).toMatchObject({ owner: 'e3', until: 2500 });
    });

    it('a compound unique index refuses a second (eventId, channel, recipient) by insert and by upsert', async () => {
      const d = db.collection<{ eventId: string; channel: string; recipient: string; outcome?: string }>(
        'decisions',
      );
      await d.createIndex({ eventId: 1, channel: 1, recipient: 1 }, { unique: true, name: 'one_decision' });
      await d.insertOne({ eventId: 'e1', channel: 'sms', recipient: '+1', outcome: 'alert' });
      await d.insertOne({ eventId: 'e1', channel: 'email', recipient: '+1', outcome: 'alert' });
      const dup = await d
        .insertOne({ eventId: 'e1', channel: 'sms', recipient: '+1', outcome: 'again' })
        .catch((e: unknown) => e);
      expect((dup as MongoServerError).code).toBe(11000);
      expect((dup as MongoServerError).message).toMatch(
        /E11000 duplicate key error collection: .*one_decision/,
      );
      // An unordered batch inserts what it can and reports the duplicate by index.
      const batch = await d
        .insertMany(
          [
            { eventId: 'e2', channel: 'sms', recipient: '+1' },
            { eventId: 'e1', channel: 'sms', recipient: '+1' },
            { eventId: 'e3', channel: 'sms', recipient: '+1' },
          ],
          { ordered: false },
        )
        .catch((e: unknown) => e as { code: number; writeErrors: { index: number; code: number }[] });
      expect((batch as { code: number }).code).toBe(11000);
      expect(await d.countDocuments({})).toBe(4);
      // Upsert by the full key is idempotent: the second one finds the first.
      const up = (outcome: string) =>
        d.findOneAndUpdate(
          { eventId: 'e9', channel: 'sms', recipient: '+2' },
          { $setOnInsert: { outcome } },
          { upsert: true, returnDocument: 'after' },
        );
      expect((await up('first'))?.outcome).toBe('first');
      expect((await up('second'))?.outcome).toBe('first');
      // Changing an existing document into a duplicate is refused too.
      const clash = await d
        .updateOne({ eventId: 'e2' }, { $set: { eventId: 'e3' } })
        .catch((e: unknown) => e);
      expect((clash as MongoServerError).code).toBe(11000);
      expect(await d.countDocuments({ eventId: 'e2' })).toBe(1);
    });

    it('updateOne with upsert reports upsertedId; $inc on a filter with operators seeds only equalities', async () => {
      const c = db.collection<{ _id?: unknown; key: string; bucket: number; n?: number }>('rate');
      const r1 = await c.updateOne(
        { key: '+1', bucket: 7, n: { $lt: 3 } },
        { $inc: { n: 1 } },
        { upsert: true },
      );
      expect(r1.upsertedCount).toBe(1);
      expect(await c.findOne({ key: '+1' }, { projection: { _id: 0 } })).toEqual({
        key: '+1',
        bucket: 7,
        n: 1,
      });
      const r2 = await c.updateOne(
        { key: '+1', bucket: 7, n: { $lt: 3 } },
        { $inc: { n: 1 } },
        { upsert: true },
      );
      expect(r2.modifiedCount).toBe(1);
      expect(r2.upsertedCount).toBe(0);
    });

    it('findOneAndDelete removes the first by sort and returns it', async () => {
      const c = db.collection<{ _id: number; at: number }>('gone');
      await c.insertMany([
        { _id: 1, at: 5 },
        { _id: 2, at: 1 },
      ]);
      expect(await c.findOneAndDelete({}, { sort: { at: 1 } })).toEqual({ _id: 2, at: 1 });
      expect(await c.countDocuments({})).toBe(1);
      expect(await c.findOneAndDelete({ _id: 9 })).toBeNull();
    });

    it('a sparse unique index ignores documents without the field; createIndex is idempotent', async () => {
      const c = db.collection<{ a?: number; b: number }>('sparse');
      await c.createIndex({ a: 1 }, { unique: true, sparse: true, name: 'a_sparse' });
      await c.createIndex({ a: 1 }, { unique: true, sparse: true, name: 'a_sparse' });
      await c.insertMany([{ b: 1 }, { b: 2 }, { a: 1, b: 3 }]);
      expect((await c.insertOne({ a: 1, b: 4 }).catch((e: unknown) => e)) as MongoServerError).toMatchObject({
        code: 11000,
      });
      const conflict = await c
        .createIndex({ a: 1 }, { unique: false, name: 'a_sparse' })
        .catch((e: unknown) => e);
      expect(conflict).toBeInstanceOf(MongoServerError);
    });
  });
}
