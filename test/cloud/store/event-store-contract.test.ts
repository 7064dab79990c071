import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MongoEventStore } from '../../../cloud/store/mongo-store.ts';
import { SqliteEventStore } from '../../../cloud/store/sqlite-store.ts';
import type { ChannelDelivery, EventStore, StoredEvent } from '../../../cloud/store/types.ts';
import { UlidFactory } from '../../../protocol/event-id.ts';
import { type MongoWireServer, startMongoWireServer } from '../../support/mongo-wire-server.ts';
import { sampleStoredEvent } from '../fixtures.ts';

/**
 * One contract suite, run against every EventStore implementation (SQLite file, MongoDB via
 * the official driver against the wire-protocol server in test/support, and a real MongoDB
 * when MONGODB_TEST_URI is set).
 */
export interface StoreFactory {
  name: string;
  skip?: boolean;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A fresh, empty store each time (a new file / database). */
  create(): Promise<EventStore>;
  /** A second handle on the store `create` made last: another bridge's, for races between writers. */
  another(): Promise<EventStore>;
}

export function eventStoreContract(factory: StoreFactory): void {
  describe.skipIf(factory.skip ?? false)(`EventStore contract: ${factory.name}`, () => {
    let store: EventStore;
    const ids = new UlidFactory();
    const base = Date.parse('2026-11-24T10:00:00.000Z');
    const mk = (over: Partial<StoredEvent> = {}, at = base): StoredEvent =>
      sampleStoredEvent({ eventId: ids.next(at), timestamp: new Date(at).toISOString(), ...over });

    beforeAll(() => factory.setup());
    afterAll(() => factory.teardown());
    beforeEach(async () => {
      store = await factory.create();
      await store.start();
    });
    afterEach(async () => {
      await store.stop();
    });

    it('stores an event and returns it field for field', async () => {
      const e = mk({ features: { rms: 0.25, centroid: 1800.5 }, notes: 'note <b>', userId: null });
      expect(await store.insertIfNew(e)).toBe(true);
      expect(await store.get(e.eventId)).toEqual(e);
      expect(await store.count()).toBe(1);
    });

    it('returns null for an unknown eventId', async () => {
      expect(await store.get('01JZZZZZZZZZZZZZZZZZZZZZZZ')).toBeNull();
    });

    it('stores a duplicate eventId once and leaves the first version untouched', async () => {
      const e = mk({ screamProbability: 0.9 });
      expect(await store.insertIfNew(e)).toBe(true);
      expect(await store.insertIfNew({ ...e, screamProbability: 0.1, notes: 'second copy' })).toBe(false);
      expect(await store.count()).toBe(1);
      expect((await store.get(e.eventId))?.screamProbability).toBe(0.9);
    });

    it('keeps one copy when the same event is inserted concurrently', async () => {
      const e = mk();
      const results = await Promise.all(Array.from({ length: 8 }, () => store.insertIfNew(e)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.count()).toBe(1);
    });

    it('normalises timestamps with an offset to UTC', async () => {
      const e = mk({ timestamp: '2026-11-24T12:00:00+02:00' });
      await store.insertIfNew(e);
      expect((await store.get(e.eventId))?.timestamp).toBe('2026-11-24T10:00:00.000Z');
    });

    it('lists newest first, filters by sensor, time range and isScream, and pages with a cursor', async () => {
      const events: StoredEvent[] = [];
      for (let i = 0; i < 10; i++) {
        events.push(mk({ sensorId: i % 2 ? 'hall-1' : 'yard-2', isScream: i % 3 !== 0 }, base + i * 60_000));
      }
      // Same timestamp, two events: eventId breaks the tie.
      const tieAt = base + 20 * 60_000;
      const tieA = mk({ sensorId: 'tie-3' }, tieAt);
      const tieB = mk({ sensorId: 'tie-3' }, tieAt);
      for (const e of [...events].reverse()) await store.insertIfNew(e);
      await store.insertIfNew(tieB);
      await store.insertIfNew(tieA);

      const all = await store.list({});
      expect(all.map((e) => e.eventId)).toEqual([tieB, tieA, ...[...events].reverse()].map((e) => e.eventId));

      const hall = await store.list({ sensorId: 'hall-1' });
      expect(hall.map((e) => e.eventId)).toEqual(
        events
          .filter((e) => e.sensorId === 'hall-1')
          .reverse()
          .map((e) => e.eventId),
      );

      const range = await store.list({
        from: new Date(base + 2 * 60_000).toISOString(),
        to: new Date(base + 5 * 60_000).toISOString(),
      });
      expect(range.map((e) => e.eventId)).toEqual(
        events
          .slice(2, 6)
          .reverse()
          .map((e) => e.eventId),
      );

      const screams = await store.list({ isScream: false });
      expect(screams.every((e) => !e.isScream)).toBe(true);
      expect(screams).toHaveLength(events.filter((e) => !e.isScream).length);

      const seen: string[] = [];
      let page = await store.list({ limit: 5 });
      while (page.length > 0) {
        seen.push(...page.map((e) => e.eventId));
        const last = page[page.length - 1]!;
        const { encodeCursor } = await import('../../../cloud/store/query.ts');
        page = await store.list({ limit: 5, before: encodeCursor(last) });
        if (seen.length > 20) break;
      }
      expect(seen).toEqual(all.map((e) => e.eventId));
    });

    it('records deliveries per channel and recipient, replacing the earlier status', async () => {
      const e = mk();
      await store.insertIfNew(e);
      const at = '2026-11-24T10:00:05.000Z';
      const sms: ChannelDelivery = {
        channel: 'sms',
        to: '+15550001111',
        status: 'pending',
        attempts: 1,
        lastError: 'HTTP 500',
        updatedAt: at,
      };
      const email: ChannelDelivery = {
        channel: 'email',
        to: 'a@example.org',
        status: 'sent',
        attempts: 1,
        providerId: '<id@x>',
        updatedAt: at,
      };
      await Promise.all([store.updateDelivery(e.eventId, sms), store.updateDelivery(e.eventId, email)]);
      await store.updateDelivery(e.eventId, {
        ...sms,
        status: 'sent',
        attempts: 2,
        providerId: 'SM1',
        lastError: null,
      });
      const got = await store.get(e.eventId);
      expect(got?.responseStatus).toBe('alerted');
      expect(got?.deliveries).toHaveLength(2);
      expect(got?.deliveries.find((d) => d.channel === 'sms')).toMatchObject({
        status: 'sent',
        attempts: 2,
        providerId: 'SM1',
      });
      expect(got?.deliveries.find((d) => d.channel === 'email')).toMatchObject({
        status: 'sent',
        to: 'a@example.org',
      });
    });

    it('keeps the newer delivery when writes arrive out of order (more attempts, then later)', async () => {
      const e = mk();
      await store.insertIfNew(e);
      const t = (s: number) => new Date(base + s * 1000).toISOString();
      const sent: ChannelDelivery = {
        channel: 'sms',
        to: '+1555',
        status: 'sent',
        attempts: 1,
        updatedAt: t(2),
      };
      await store.updateDelivery(e.eventId, sent);
      // a re-sync read before the send finished: same attempt, earlier
      await store.updateDelivery(e.eventId, { ...sent, status: 'pending', updatedAt: t(1) });
      // a job created but not yet claimed (0 attempts), written last
      await store.updateDelivery(e.eventId, { ...sent, status: 'pending', attempts: 0, updatedAt: t(3) });
      let got = await store.get(e.eventId);
      expect(got?.deliveries).toEqual([sent]);
      expect(got?.responseStatus).toBe('alerted');
      // a retry taken over by another bridge whose clock is behind: more attempts wins
      const retry = {
        ...sent,
        status: 'failed' as const,
        attempts: 2,
        updatedAt: t(0),
        lastError: 'HTTP 400',
      };
      await store.updateDelivery(e.eventId, retry);
      got = await store.get(e.eventId);
      expect(got?.deliveries).toEqual([retry]);
      expect(got?.responseStatus).toBe('failed');
    });

    it('two writers finishing different contacts of one event at once: both land', async () => {
      const e = mk();
      await store.insertIfNew(e);
      const other = await factory.another();
      await other.start();
      try {
        const at = new Date(base).toISOString();
        const writes: Promise<void>[] = [];
        for (let i = 0; i < 6; i++) {
          const d: ChannelDelivery = {
            channel: 'sms',
            to: `+1555000${i}`,
            status: 'sent',
            attempts: 1,
            updatedAt: at,
          };
          writes.push((i % 2 ? other : store).updateDelivery(e.eventId, d));
        }
        await Promise.all(writes);
        const got = await store.get(e.eventId);
        expect(got?.deliveries.map((d) => d.to).sort()).toEqual(
          [0, 1, 2, 3, 4, 5].map((i) => `+1555000${i}`),
        );
        expect(got?.responseStatus).toBe('alerted');
        expect(await other.get(e.eventId)).toEqual(got);
      } finally {
        await other.stop();
      }
    });

    it('sets a review', async () => {
      const e = mk();
      await store.insertIfNew(e);
      await store.setReview(e.eventId, {
        verdict: 'false-alarm',
        userId: 'ops',
        at: '2026-11-24T11:00:00.000Z',
        note: 'door',
      });
      expect((await store.get(e.eventId))?.review).toEqual({
        verdict: 'false-alarm',
        userId: 'ops',
        at: '2026-11-24T11:00:00.000Z',
        note: 'door',
      });
    });

    it('records response changes in order, appending to the history and never rewriting it', async () => {
      const e = mk();
      const other = mk({}, base + 1000);
      await store.insertIfNew(e);
      await store.insertIfNew(other);
      const ack = await store.recordResponse(e.eventId, {
        response: { state: 'acknowledged', userId: 'ann', at: '2026-11-24T10:01:00.000Z' },
        entry: {
          action: 'acknowledged',
          state: 'acknowledged',
          userId: 'ann',
          at: '2026-11-24T10:01:00.000Z',
        },
      });
      expect(ack?.response).toEqual({ state: 'acknowledged', userId: 'ann', at: '2026-11-24T10:01:00.000Z' });
      expect(ack?.review ?? null).toBeNull();
      const first = {
        state: 'resolved' as const,
        userId: 'ann',
        at: '2026-11-24T10:05:00.000Z',
        verdict: 'confirmed' as const,
        note: 'fight in the hall',
      };
      await store.recordResponse(e.eventId, { response: first, entry: { action: 'resolved', ...first } });
      const second = {
        ...first,
        userId: 'bob',
        at: '2026-11-24T12:00:00.000Z',
        verdict: 'false-alarm' as const,
        note: 'it was a film',
      };
      const after = await store.recordResponse(e.eventId, {
        response: second,
        entry: { action: 'resolved', ...second },
      });
      expect(after?.response).toEqual(second);
      // the review (read for retraining) follows the latest verdict; the earlier one stays in the history
      expect(after?.review).toEqual({
        verdict: 'false-alarm',
        userId: 'bob',
        at: second.at,
        note: 'it was a film',
      });
      expect(after?.history?.map((h) => [h.action, h.userId, h.verdict ?? null, h.note ?? null])).toEqual([
        ['acknowledged', 'ann', null, null],
        ['resolved', 'ann', 'confirmed', 'fight in the hall'],
        ['resolved', 'bob', 'false-alarm', 'it was a film'],
      ]);
      expect(await store.get(e.eventId)).toEqual(after);
      expect(
        await store.recordResponse('01JZZZZZZZZZZZZZZZZZZZZZZZ', {
          response: second,
          entry: { action: 'resolved', ...second },
        }),
      ).toBeNull();

      // filters: 'new' includes events nobody touched
      const ids = async (q: Parameters<EventStore['list']>[0]) => (await store.list(q)).map((x) => x.eventId);
      expect(await ids({ responseState: 'new' })).toEqual([other.eventId]);
      expect(await ids({ responseState: 'resolved' })).toEqual([e.eventId]);
      expect(await ids({ responseState: 'acknowledged' })).toEqual([]);
      expect(await ids({ verdict: 'false-alarm' })).toEqual([e.eventId]);
      expect(await ids({ verdict: 'confirmed' })).toEqual([]);
    });

    it('keeps concurrent response changes of one event, all of them in the history', async () => {
      const e = mk();
      await store.insertIfNew(e);
      await Promise.all(
        ['ann', 'bob', 'cat', 'dan'].map((u, i) =>
          store.recordResponse(e.eventId, {
            response: { state: 'acknowledged', userId: u, at: new Date(base + i).toISOString() },
            entry: {
              action: 'acknowledged',
              state: 'acknowledged',
              userId: u,
              at: new Date(base + i).toISOString(),
            },
          }),
        ),
      );
      const got = await store.get(e.eventId);
      expect(got?.history?.map((h) => h.userId).sort()).toEqual(['ann', 'bob', 'cat', 'dan']);
    });

    it('records why an alert was suppressed by a cooldown', async () => {
      const e = mk({ responseStatus: 'pending', deliveries: [] });
      await store.insertIfNew(e);
      const suppressedBy = {
        reason: 'cooldown' as const,
        eventId: '01JAAAAAAAAAAAAAAAAAAAAAAA',
        until: '2026-11-24T10:10:00.000Z',
      };
      await store.setResponseStatus?.(e.eventId, 'suppressed', { suppressedBy });
      const got = await store.get(e.eventId);
      expect(got?.responseStatus).toBe('suppressed');
      expect(got?.suppressedBy).toEqual(suppressedBy);
    });

    it('rejects a delivery update for an unknown event with a coded error', async () => {
      await expect(
        store.updateDelivery('01JZZZZZZZZZZZZZZZZZZZZZZZ', {
          channel: 'sms',
          to: '+15550001111',
          status: 'sent',
          attempts: 1,
          updatedAt: new Date().toISOString(),
        }),
      ).rejects.toMatchObject({ code: 'CLOUD_STORE_WRITE_FAILED' });
    });

    it('retention: finds and deletes events before the cutoff, oldest first, keeping reviewed false alarms until theirs', async () => {
      const day = 86_400_000;
      const old = mk({}, base - 400 * day);
      const older = mk({}, base - 500 * day);
      const recent = mk({}, base - 10 * day);
      const falseAlarm = mk({}, base - 400 * day);
      const confirmed = mk({}, base - 400 * day);
      const ancientFalseAlarm = mk({}, base - 800 * day);
      for (const e of [old, older, recent, falseAlarm, confirmed, ancientFalseAlarm])
        await store.insertIfNew(e);
      const review = (verdict: 'false-alarm' | 'confirmed') => ({
        verdict,
        userId: 'ops',
        at: new Date(base).toISOString(),
      });
      await store.setReview(falseAlarm.eventId, review('false-alarm'));
      await store.setReview(ancientFalseAlarm.eventId, review('false-alarm'));
      await store.setReview(confirmed.eventId, review('confirmed'));
      const cutoffs = {
        before: new Date(base - 365 * day).toISOString(),
        keepReviewedBefore: new Date(base - 730 * day).toISOString(),
      };
      const found = await store.findExpired(cutoffs, 100);
      // oldest first; the confirmed one is not kept longer, only false alarms are
      expect(found[0]).toBe(ancientFalseAlarm.eventId);
      expect(found[1]).toBe(older.eventId);
      expect(found.slice(2).sort()).toEqual([old.eventId, confirmed.eventId].sort());
      expect(await store.findExpired(cutoffs, 2)).toEqual(found.slice(0, 2));
      // an event reviewed as a false alarm between the find and the delete stays
      await store.setReview(old.eventId, review('false-alarm'));
      expect(await store.deleteExpired([...found, recent.eventId], cutoffs)).toBe(3);
      expect(await store.get(old.eventId)).not.toBeNull();
      expect(await store.get(recent.eventId)).not.toBeNull();
      expect(await store.get(falseAlarm.eventId)).not.toBeNull();
      for (const gone of [older, confirmed, ancientFalseAlarm])
        expect(await store.get(gone.eventId)).toBeNull();
      expect(await store.count()).toBe(3);
      expect(await store.findExpired(cutoffs, 100)).toEqual([]);
      expect(await store.deleteExpired([], cutoffs)).toBe(0);
      // keepReviewedBefore null: reviewed false alarms are kept for good
      const forever = { before: new Date(base).toISOString(), keepReviewedBefore: null };
      expect((await store.findExpired(forever, 100)).sort()).toEqual([recent.eventId].sort());
    });

    it('keeps events across a restart', async () => {
      const e = mk();
      await store.insertIfNew(e);
      await store.stop();
      await store.start();
      expect(await store.get(e.eventId)).toEqual(e);
    });
  });
}

let sqliteDir = '';
let sqliteN = 0;
eventStoreContract({
  name: 'SQLite',
  async setup() {
    sqliteDir = await mkdtemp(join(tmpdir(), 'sw-store-'));
  },
  async teardown() {
    await rm(sqliteDir, { recursive: true, force: true });
  },
  async create() {
    return new SqliteEventStore(join(sqliteDir, `events-${sqliteN++}.sqlite`));
  },
  async another() {
    return new SqliteEventStore(join(sqliteDir, `events-${sqliteN - 1}.sqlite`));
  },
});

let wire: MongoWireServer | null = null;
let wireN = 0;
eventStoreContract({
  name: 'MongoDB (official driver against the test wire-protocol server)',
  async setup() {
    wire = await startMongoWireServer();
  },
  async teardown() {
    await wire?.stop();
  },
  async create() {
    return new MongoEventStore({
      uri: `${wire!.uri}/sw-contract-${wireN++}`,
      serverSelectionTimeoutMs: 3000,
    });
  },
  async another() {
    return new MongoEventStore({
      uri: `${wire!.uri}/sw-contract-${wireN - 1}`,
      serverSelectionTimeoutMs: 3000,
    });
  },
});

const realUri = process.env.MONGODB_TEST_URI;
let realN = 0;
const realDbs: string[] = [];
eventStoreContract({
  name: 'MongoDB (real server, MONGODB_TEST_URI)',
  skip: !realUri,
  async setup() {},
  async teardown() {
    if (!realUri) return;
    const { MongoClient } = await import('mongodb');
    const client = new MongoClient(realUri);
    try {
      for (const db of realDbs) await client.db(db).dropDatabase();
    } finally {
      await client.close();
    }
  },
  async create() {
    const dbName = `screamwatch_contract_${process.pid}_${realN++}`;
    realDbs.push(dbName);
    return new MongoEventStore({ uri: realUri!, dbName });
  },
  async another() {
    return new MongoEventStore({ uri: realUri!, dbName: realDbs.at(-1)! });
  },
});
