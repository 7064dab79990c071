import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AlertService } from '../../../cloud/alerts/alert-service.ts';
import type { ChannelSender } from '../../../cloud/alerts/senders.ts';
import { parseCloudConfig } from '../../../cloud/config/schema.ts';
import { Geolocator } from '../../../cloud/geo/locator.ts';
import { EventIngest } from '../../../cloud/ingest/event-ingest.ts';
import { SensorRegistry } from '../../../cloud/ingest/sensor-registry.ts';
import { SqliteEventStore } from '../../../cloud/store/sqlite-store.ts';
import type { EventStore } from '../../../cloud/store/types.ts';
import { encodeEvent } from '../../../protocol/codec.ts';
import { UlidFactory } from '../../../protocol/event-id.ts';
import { sensorTopic } from '../../../protocol/topics.ts';
import { eventually } from '../../support/eventually.ts';
import { tempDir } from '../bridge-harness.ts';
import { sampleEventMessage } from '../fixtures.ts';

const ids = new UlidFactory();
const FIVE_SMS = ['+15550000001', '+15550000002', '+15550000003', '+15550000004', '+15550000005'];

/** An SMS carrier that accepts a send only when the test lets it (the carrier is the boundary). */
class GatedSms implements ChannelSender {
  readonly channel = 'sms' as const;
  readonly sent: string[] = [];
  private gate!: () => void;
  private readonly open = new Promise<void>((r) => {
    this.gate = r;
  });
  release(): void {
    this.gate();
  }
  async send(to: string): Promise<{ providerId: string | null }> {
    await this.open;
    this.sent.push(to);
    return { providerId: `SM${this.sent.length}` };
  }
  close(): void {}
}

describe('event ingest and the alert path', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let store: SqliteEventStore;
  let writes: string[];
  let alerts: AlertService;
  let sms: GatedSms;
  let ingest: EventIngest;

  beforeEach(async () => {
    dir = await tempDir('sw-ingest-');
    store = new SqliteEventStore(join(dir.path, 'events.sqlite'));
    await store.start();
    writes = [];
    // Counts the event-store writes, passing every call through to the real store.
    const counted = new Proxy(store, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (
            ['insertIfNew', 'updateDelivery', 'setResponseStatus', 'setReview', 'recordResponse'].includes(
              String(prop),
            )
          )
            writes.push(String(prop));
          return v.apply(target, args);
        };
      },
    }) as EventStore;
    const config = parseCloudConfig({
      alerts: {
        policies: [
          {
            cooldownS: 0,
            contacts: { sms: FIVE_SMS, email: ['a@example.org', 'b@example.org', 'c@example.org'] },
          },
        ],
      },
    });
    sms = new GatedSms();
    const logger = pino({ level: 'silent' });
    alerts = new AlertService({
      alerts: config.alerts,
      dataDir: dir.path,
      store: counted,
      senders: { sms },
      sensorConfig: () => undefined,
      logger,
      pollMs: 20,
    });
    await alerts.start();
    ingest = new EventIngest({
      store: counted,
      registry: new SensorRegistry({ sensors: [], offlineAfterS: 3600, logger }),
      locator: new Geolocator({ ipDatabase: null, logger }),
      alerter: alerts,
      topicRoot: 'screamwatch',
      logger,
    });
  });
  afterEach(async () => {
    sms.release();
    await alerts.stop();
    await store.stop();
    await dir.remove();
  });

  const publish = (m = sampleEventMessage({ eventId: ids.next(Date.now()) })) =>
    ingest.handleMessage(sensorTopic('screamwatch', m.sensorId, 'events'), encodeEvent(m)).then((o) => ({
      outcome: o,
      eventId: m.eventId,
      message: m,
    }));

  it('stores an alerting event in one write, with its deliveries, before any alert is sent', async () => {
    const { outcome, eventId } = await publish();
    expect(outcome).toBe('stored');
    // What the acknowledgement waited for: one insert, already carrying the decision.
    expect(writes).toEqual(['insertIfNew']);
    const stored = await store.get(eventId);
    expect(stored?.responseStatus).toBe('pending');
    expect(stored?.deliveries.map((d) => [d.channel, d.status])).toEqual([
      ...FIVE_SMS.map(() => ['sms', 'pending']),
      ['email', 'not-configured'],
      ['email', 'not-configured'],
      ['email', 'not-configured'],
    ]);
    expect(sms.sent).toEqual([]);

    // Each outcome is then one write of its own, off the ingest path.
    sms.release();
    const done = await eventually(
      async () => {
        const e = await store.get(eventId);
        return e?.responseStatus === 'partial' ? e : null;
      },
      5000,
      'every SMS recorded',
    );
    expect(sms.sent.sort()).toEqual([...FIVE_SMS].sort());
    expect(done.deliveries.filter((d) => d.status === 'sent')).toHaveLength(5);
    expect(writes.filter((w) => w === 'insertIfNew')).toHaveLength(1);
    // one write per outcome: five SMS sent, five updates
    expect(writes.filter((w) => w === 'updateDelivery')).toHaveLength(5);
  });

  it('a redelivered event is decided once: no second write, no second alert', async () => {
    const first = await publish();
    sms.release();
    await eventually(
      async () => (await store.get(first.eventId))?.responseStatus === 'partial',
      5000,
      'sent',
    );
    const before = writes.length;
    const again = await publish(first.message);
    expect(again.outcome).toBe('duplicate');
    expect(writes.slice(before)).toEqual(['insertIfNew']);
    expect(sms.sent).toHaveLength(5);
    expect((await alerts.queue.jobsForEvent(first.eventId)).length).toBe(8);
  });

  it('near-misses and events nobody is alerted about are stored as "none", in one write', async () => {
    const { eventId } = await publish(
      sampleEventMessage({ eventId: ids.next(Date.now()), isScream: false, screamProbability: 0.6 }),
    );
    expect(writes).toEqual(['insertIfNew']);
    expect(await store.get(eventId)).toMatchObject({
      alertType: 'near-miss',
      responseStatus: 'none',
      deliveries: [],
    });
    expect(await alerts.queue.jobsForEvent(eventId)).toEqual([]);
  });
});
