import { MongoClient, MongoServerError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoEventStore } from '../../../cloud/store/mongo-store.ts';
import { type MongoWireServer, startMongoWireServer } from '../../support/mongo-wire-server.ts';
import { sampleStoredEvent } from '../fixtures.ts';

// The harness itself must behave like MongoDB where the store relies on it, or the
// contract suite above proves nothing about the real server.
describe('MongoDB wire-protocol test server', () => {
  let wire: MongoWireServer;
  let client: MongoClient;
  beforeAll(async () => {
    wire = await startMongoWireServer();
    client = new MongoClient(wire.uri, { serverSelectionTimeoutMS: 3000 });
    await client.connect();
  });
  afterAll(async () => {
    await client.close();
    await wire.stop();
  });

  it('answers the driver handshake and honours unique indexes with E11000', async () => {
    const c = client.db('t1').collection('things');
    await c.createIndex({ key: 1 }, { unique: true, name: 'key_unique' });
    await c.insertOne({ key: 'a', n: 1 });
    const err = await c.insertOne({ key: 'a', n: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoServerError);
    expect((err as MongoServerError).code).toBe(11000);
    expect((err as MongoServerError).message).toMatch(
      /E11000 duplicate key error collection: t1\.things index: key_unique/,
    );
    expect(await c.countDocuments({})).toBe(1);
    expect(wire.commands).toContain('ismaster');
  });

  it('creates the store indexes: unique eventId, time, sensor + time', async () => {
    const store = new MongoEventStore({ uri: `${wire.uri}/t2`, serverSelectionTimeoutMs: 3000 });
    await store.start();
    try {
      await store.insertIfNew(sampleStoredEvent());
      const indexes = await client.db('t2').collection('events').listIndexes().toArray();
      expect(indexes.map((i) => [i.name, i.key, i.unique ?? false])).toEqual([
        ['_id_', { _id: 1 }, false],
        ['eventId_unique', { eventId: 1 }, true],
        ['time', { timestamp: -1, eventId: -1 }, false],
        ['sensor_time', { sensorId: 1, timestamp: -1, eventId: -1 }, false],
      ]);
      // timestamp is a BSON date in MongoDB (range queries), an ISO string through the store.
      const raw = await client.db('t2').collection('events').findOne({});
      expect(raw?.timestamp).toBeInstanceOf(Date);
    } finally {
      await store.stop();
    }
  });

  it('fails start() with a coded error naming the server when nothing listens', async () => {
    const store = new MongoEventStore({
      uri: 'mongodb://user:secret@127.0.0.1:9/db',
      serverSelectionTimeoutMs: 300,
    });
    const err = await store.start().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CLOUD_STORE_OPEN_FAILED' });
    expect((err as Error).message).toContain('mongodb://***@127.0.0.1:9/db');
    expect((err as Error).message).not.toContain('secret');
  });
});
