import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AlertService } from '../../../cloud/alerts/alert-service.ts';
import { MongoAlertState } from '../../../cloud/alerts/mongo-alert-state.ts';
import { type ChannelSender, createSenders } from '../../../cloud/alerts/senders.ts';
import { type CloudConfigInput, parseCloudConfig } from '../../../cloud/config/schema.ts';
import { MongoEventStore } from '../../../cloud/store/mongo-store.ts';
import type { StoredEvent } from '../../../cloud/store/types.ts';
import { UlidFactory } from '../../../protocol/event-id.ts';
import { eventually } from '../../support/eventually.ts';
import { type MongoWireServer, startMongoWireServer } from '../../support/mongo-wire-server.ts';
import { startTwilioEndpoint, type TwilioEndpoint } from '../../support/twilio-endpoint.ts';
import { LogCapture } from '../bridge-harness.ts';
import { sampleStoredEvent } from '../fixtures.ts';
import { decideAndStore } from './decide-and-store.ts';

/**
 * Several bridges, one MongoDB (the measured failure: a re-sent event landing on the
 * other bridge gave 2 SMS, cooldowns and rate limits multiplied by the number of bridges).
 * Two AlertServices stand for two bridges; they share the event store and the alert state.
 */
describe('two bridges sharing the alert state in MongoDB (wire-protocol test server)', () => {
  let wire: MongoWireServer;
  let twilio: TwilioEndpoint;
  let uri: string;
  const running: { service: AlertService; store: MongoEventStore }[] = [];
  const ids = new UlidFactory();

  beforeAll(async () => {
    wire = await startMongoWireServer();
    twilio = await startTwilioEndpoint();
  });
  afterAll(async () => {
    await twilio?.stop();
    await wire?.stop();
  });
  beforeEach(() => {
    uri = `${wire.uri}/shared_${randomBytes(4).toString('hex')}`;
  });
  afterEach(async () => {
    for (const r of running.splice(0)) {
      await r.service.stop();
      await r.store.stop();
    }
  });

  const alertsConfig = (over: CloudConfigInput['alerts'] = {}) =>
    parseCloudConfig({
      alerts: {
        twilio: {
          accountSid: 'ACunit0000000000000000000000000000',
          authToken: 't',
          from: '+15550009999',
          apiBaseUrl: twilio.url,
        },
        policies: [
          { group: 'default', cooldownS: 300, contacts: { sms: ['+15550001', '+15550002'], email: [] } },
        ],
        ...over,
      },
    }).alerts;

  async function bridge(
    bridgeId: string,
    alerts: ReturnType<typeof alertsConfig>,
    senders?: Partial<Record<'sms' | 'email', ChannelSender>>,
  ) {
    const store = new MongoEventStore({ uri, serverSelectionTimeoutMs: 3000 });
    await store.start();
    const logs = new LogCapture();
    const service = new AlertService({
      alerts,
      dataDir: '/nonexistent-not-used',
      state: new MongoAlertState({ uri, serverSelectionTimeoutMs: 3000 }),
      bridgeId,
      store,
      senders: senders ?? createSenders(alerts),
      sensorConfig: () => undefined,
      logger: pino({ level: 'info' }, logs),
      pollMs: 20,
    });
    await service.start();
    running.push({ service, store });
    return { service, store, logs };
  }

  const event = (over: Partial<StoredEvent> = {}): StoredEvent => {
    const now = Date.now();
    return sampleStoredEvent({ eventId: ids.next(now), timestamp: new Date(now).toISOString(), ...over });
  };
  const smsFor = (eventId: string) => twilio.accepted().filter((r) => r.body.includes(eventId));

  it('one event delivered to both bridges (a sensor re-send), at once and again later: one SMS per contact', async () => {
    const alerts = alertsConfig();
    const a = await bridge('bridge-a', alerts);
    const b = await bridge('bridge-b', alerts);
    const e = event();
    await a.store.insertIfNew(e);
    await Promise.all([decideAndStore(a.service, a.store, e), decideAndStore(b.service, b.store, e)]);
    await eventually(() => smsFor(e.eventId).length >= 2, 10_000, 'two SMS');
    await decideAndStore(b.service, b.store, e);
    await decideAndStore(a.service, a.store, e);
    await new Promise((r) => setTimeout(r, 300));
    expect(
      smsFor(e.eventId)
        .map((r) => r.to)
        .sort(),
    ).toEqual(['+15550001', '+15550002']);
    const stored = await eventually(async () => {
      const s = await a.store.get(e.eventId);
      return s?.responseStatus === 'alerted' ? s : null;
    });
    expect(stored.deliveries.map((d) => [d.to, d.status, d.attempts])).toEqual([
      ['+15550001', 'sent', 1],
      ['+15550002', 'sent', 1],
    ]);
  });

  it('the cooldown holds across bridges: the next scream of the sensor on the other bridge is suppressed', async () => {
    const alerts = alertsConfig();
    const a = await bridge('bridge-a', alerts);
    const b = await bridge('bridge-b', alerts);
    const first = event({ sensorId: 'yard-1' });
    const second = event({ sensorId: 'yard-1' });
    await a.store.insertIfNew(first);
    await a.store.insertIfNew(second);
    await Promise.all([
      decideAndStore(a.service, a.store, first),
      decideAndStore(b.service, b.store, second),
    ]);
    await eventually(
      () => twilio.accepted().filter((r) => /yard-1/.test(r.body)).length >= 2,
      10_000,
      'alert',
    );
    await new Promise((r) => setTimeout(r, 300));
    const alerted = [first, second].filter((e) => smsFor(e.eventId).length > 0);
    expect(alerted).toHaveLength(1);
    expect(smsFor(alerted[0]!.eventId)).toHaveLength(2);
    const suppressed = alerted[0] === first ? second : first;
    expect((await b.store.get(suppressed.eventId))?.responseStatus).toBe('suppressed');
  });

  it('the per-contact rate limit is one budget for all bridges', async () => {
    const alerts = alertsConfig({
      policies: [
        {
          group: 'default',
          cooldownS: 0,
          ratePerContactPerHour: 2,
          contacts: { sms: ['+15550007'], email: [] },
        },
      ],
    });
    const a = await bridge('bridge-a', alerts);
    const b = await bridge('bridge-b', alerts);
    const events = ['s1', 's2', 's3', 's4', 's5'].map((sensorId) => event({ sensorId }));
    for (const e of events) await a.store.insertIfNew(e);
    await Promise.all(
      events.map((e, i) => decideAndStore((i % 2 ? a : b).service, (i % 2 ? a : b).store, e)),
    );
    await eventually(
      () => twilio.accepted().filter((r) => r.to === '+15550007').length >= 2,
      10_000,
      'two SMS',
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(twilio.accepted().filter((r) => r.to === '+15550007')).toHaveLength(2);
    // outcomes reach the events off the ingest path
    const statuses = await eventually(
      async () => {
        const s = await Promise.all(events.map(async (e) => (await a.store.get(e.eventId))?.responseStatus));
        return s.includes('pending') ? null : s;
      },
      10_000,
      'every event recorded',
    );
    expect(statuses.filter((s) => s === 'alerted')).toHaveLength(2);
    expect(statuses.filter((s) => s === 'failed' || s === 'suppressed')).toHaveLength(3);
  });

  it('a bridge that dies mid-send: another sends the job once its lease ends; the dead one cannot record it', async () => {
    const alerts = alertsConfig({
      timeoutMs: 1000,
      leaseS: 2,
      policies: [{ group: 'default', cooldownS: 0, contacts: { sms: ['+15550003'], email: [] } }],
    });
    // Bridge a hangs in its send (as a process that was killed -9 would never answer).
    let release: (() => void) | null = null;
    const hung: ChannelSender = {
      channel: 'sms',
      send: () =>
        new Promise((resolve) => {
          release = () => resolve({ providerId: 'SM-too-late' });
        }),
      close: () => {},
    };
    const a = await bridge('bridge-a', alerts, { sms: hung });
    const e = event({ sensorId: 'gate-1' });
    await a.store.insertIfNew(e);
    await decideAndStore(a.service, a.store, e);
    await eventually(() => release !== null, 5000, 'bridge a sending');
    // Bridge a stops claiming (its stop() waits for the hung send: a dead process does neither).
    const aStopped = a.service.stop();
    const b = await bridge('bridge-b', alerts);
    // Not before the lease runs out...
    await new Promise((r) => setTimeout(r, 1000));
    expect(smsFor(e.eventId)).toHaveLength(0);
    // ...then bridge b sends it, once.
    await eventually(() => smsFor(e.eventId).length === 1, 10_000, 'sent by bridge b');
    const job = await eventually(async () => {
      const [j] = await b.service.queue.jobsForEvent(e.eventId);
      return j?.status === 'sent' ? j : null;
    });
    expect(job.attempts).toBe(2);
    (release as unknown as () => void)();
    await aStopped;
    await eventually(
      () =>
        a.logs.find('alert job lease lost before its outcome was recorded (the send outlasted alerts.leaseS)')
          .length === 1,
    );
    expect((await b.service.queue.job(job.id))?.providerId).toBe(job.providerId);
    expect(smsFor(e.eventId)).toHaveLength(1);
  });
});
