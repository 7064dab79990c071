import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertQueue } from '../../../cloud/alerts/alert-queue.ts';
import type { AlertStateStore, NewJob } from '../../../cloud/alerts/alert-state.ts';
import { MongoAlertState } from '../../../cloud/alerts/mongo-alert-state.ts';
import { CloudApp } from '../../../cloud/app.ts';
import { parseCloudConfig } from '../../../cloud/config/schema.ts';
import { MongoEventStore } from '../../../cloud/store/mongo-store.ts';
import { RetentionService } from '../../../cloud/store/retention.ts';
import { SqliteEventStore } from '../../../cloud/store/sqlite-store.ts';
import type { EventStore, StoredEvent } from '../../../cloud/store/types.ts';
import { UlidFactory } from '../../../protocol/event-id.ts';
import { type MongoWireServer, startMongoWireServer } from '../../support/mongo-wire-server.ts';
import { eventually, LogCapture, tempDir } from '../bridge-harness.ts';
import { sampleStoredEvent } from '../fixtures.ts';

/**
 * The retention purge (store.retentionDays / keepReviewedDays) end to end on each backend: the
 * real event store and alert state, the service's own batching, its log line; then wired into
 * the bridge (first purge shortly after start), and a failing purge logged with its code.
 */
const DAY = 86_400_000;
const now = Date.parse('2027-03-01T12:00:00.000Z');
const ids = new UlidFactory();
const event = (ageDays: number, over: Partial<StoredEvent> = {}): StoredEvent => {
  const at = now - ageDays * DAY;
  return sampleStoredEvent({ eventId: ids.next(at), timestamp: new Date(at).toISOString(), ...over });
};
const job = (eventId: string): NewJob => ({
  eventId,
  channel: 'sms',
  recipient: '+15550001',
  kind: 'alert',
  subject: 's',
  text: 't',
  html: 'h',
  status: 'sent',
  nextAtMs: now,
  recordOnEvent: true,
});
const falseAlarm = { verdict: 'false-alarm' as const, userId: 'ops', at: new Date(now).toISOString() };

/** 5 old events (one a reviewed false alarm), 2 recent, 1 false alarm past keepReviewedDays; each with a job and a decision. */
async function seed(store: EventStore, alerts: AlertStateStore) {
  const old = [400, 401, 402, 500, 700].map((d) => event(d));
  const kept = [event(10), event(364), event(400, { review: falseAlarm })];
  const ancient = event(800, { review: falseAlarm });
  for (const e of [...old, ...kept, ancient]) {
    await store.insertIfNew(e);
    await alerts.addJob(job(e.eventId), now);
    await alerts.recordDecision(e.eventId, 'alerted', now);
  }
  return { purged: [...old, ancient], kept };
}

interface Backend {
  name: string;
  open(): Promise<{ store: EventStore; alerts: AlertStateStore; close(): Promise<void> }>;
}

let dir: Awaited<ReturnType<typeof tempDir>>;
let wire: MongoWireServer;
beforeAll(async () => {
  dir = await tempDir('sw-retention-');
  wire = await startMongoWireServer();
});
afterAll(async () => {
  await wire.stop();
  await dir.remove();
});

const backends: Backend[] = [
  {
    name: 'SQLite',
    async open() {
      const n = randomBytes(4).toString('hex');
      const store = new SqliteEventStore(join(dir.path, `events-${n}.sqlite`));
      const alerts = new AlertQueue(join(dir.path, `alerts-${n}.sqlite`));
      await store.start();
      await alerts.open();
      return {
        store,
        alerts,
        close: async () => {
          await alerts.close();
          await store.stop();
        },
      };
    },
  },
  {
    name: 'MongoDB wire-protocol test server',
    async open() {
      const uri = `${wire.uri}/retention_${randomBytes(4).toString('hex')}`;
      const store = new MongoEventStore({ uri, serverSelectionTimeoutMs: 3000 });
      const alerts = new MongoAlertState({ uri, serverSelectionTimeoutMs: 3000 });
      await store.start();
      await alerts.open();
      return {
        store,
        alerts,
        close: async () => {
          await alerts.close();
          await store.stop();
        },
      };
    },
  },
];

for (const backend of backends) {
  describe(`retention: ${backend.name}`, () => {
    it('purges events past retentionDays in batches with their jobs and decisions, keeps reviewed false alarms until keepReviewedDays, and logs the count', async () => {
      const { store, alerts, close } = await backend.open();
      const logs = new LogCapture();
      try {
        const { purged, kept } = await seed(store, alerts);
        const service = new RetentionService({
          config: { retentionDays: 365, keepReviewedDays: 730 },
          store,
          alerts,
          logger: pino(logs),
          clock: () => new Date(now),
          batch: 2,
        });
        const run = await service.runOnce();
        expect(run).toMatchObject({ events: 6, alertRows: 12 });
        for (const e of purged) {
          expect(await store.get(e.eventId)).toBeNull();
          expect(await alerts.jobsForEvent(e.eventId)).toEqual([]);
          expect(await alerts.decided(e.eventId)).toBeNull();
        }
        for (const e of kept) {
          expect(await store.get(e.eventId)).not.toBeNull();
          expect(await alerts.jobsForEvent(e.eventId)).toHaveLength(1);
          expect(await alerts.decided(e.eventId)).toBe('alerted');
        }
        expect(await store.count()).toBe(3);
        const line = logs.lines.find((l) => String(l.msg).startsWith('retention: purged'));
        expect(line).toMatchObject({
          msg: 'retention: purged 6 event(s) older than 365 days',
          purged: 6,
          alertRows: 12,
          before: new Date(now - 365 * DAY).toISOString(),
          keepReviewedBefore: new Date(now - 730 * DAY).toISOString(),
        });
        // a second run finds nothing
        expect((await service.runOnce()).events).toBe(0);
      } finally {
        await close();
      }
    });
  });
}

describe('retention: the rule', () => {
  const service = (retentionDays: number | null, keepReviewedDays: number | null) =>
    new RetentionService({
      config: { retentionDays, keepReviewedDays },
      store: null as unknown as EventStore,
      alerts: null as unknown as AlertStateStore,
      logger: pino({ level: 'silent' }),
      clock: () => new Date(now),
    });
  it('never keeps reviewed false alarms shorter than other events, and null means kept for good', () => {
    const iso = (days: number) => new Date(now - days * DAY).toISOString();
    expect(service(365, 730).cutoffs(now)).toEqual({ before: iso(365), keepReviewedBefore: iso(730) });
    expect(service(365, 30).cutoffs(now)).toEqual({ before: iso(365), keepReviewedBefore: iso(365) });
    expect(service(365, null).cutoffs(now)).toEqual({ before: iso(365), keepReviewedBefore: null });
    expect(service(null, 730).cutoffs(now)).toBeNull();
  });
});

describe('retention in the bridge', () => {
  it('runs shortly after start on the bridge clock and purges the SQLite store and alert state', async () => {
    const data = join(dir.path, 'bridge');
    const store = new SqliteEventStore(join(data, 'events.sqlite'));
    const alerts = new AlertQueue(join(data, 'alerts.sqlite'));
    await store.start();
    await alerts.open();
    await seed(store, alerts);
    await alerts.close();
    await store.stop();

    const logs = new LogCapture();
    const app = new CloudApp({
      config: parseCloudConfig({ dataDir: data, mqtt: { port: 0 }, store: { retentionDays: 365 } }),
      env: {},
      logger: pino(logs),
      web: false,
      clock: () => new Date(now),
      retentionFirstRunMs: 20,
    });
    await app.start();
    try {
      const line = await eventually(
        () => logs.lines.find((l) => String(l.msg).startsWith('retention: purged')),
        10_000,
        'the first purge',
      );
      expect(line).toMatchObject({ purged: 6, alertRows: 12, component: 'retention' });
      expect(await app.store.count()).toBe(3);
    } finally {
      await app.stop();
    }
  });

  it('logs a failed purge with CLOUD_RETENTION_FAILED and keeps the bridge running', async () => {
    const store = new SqliteEventStore(join(dir.path, 'stopped.sqlite'));
    const alerts = new AlertQueue(join(dir.path, 'stopped-alerts.sqlite'));
    // never started: every call fails like a store that went away
    const logs = new LogCapture();
    const service = new RetentionService({
      config: { retentionDays: 30, keepReviewedDays: null },
      store,
      alerts,
      logger: pino(logs),
      clock: () => new Date(now),
      firstRunMs: 0,
    });
    await service.start();
    try {
      const line = await eventually(
        () => logs.lines.find((l) => l.code === 'CLOUD_RETENTION_FAILED'),
        5000,
        'the coded failure',
      );
      expect(line).toMatchObject({
        level: 50,
        msg: 'retention: purging old events failed; trying again in an hour',
      });
    } finally {
      await service.stop();
    }
  });
});
