import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AlertService } from '../../../cloud/alerts/alert-service.ts';
import { escapeHtml, screamAlert } from '../../../cloud/alerts/alert-text.ts';
import { createSenders } from '../../../cloud/alerts/senders.ts';
import { type CloudConfigInput, parseCloudConfig } from '../../../cloud/config/schema.ts';
import { SqliteEventStore } from '../../../cloud/store/sqlite-store.ts';
import { UlidFactory } from '../../../protocol/event-id.ts';
import { eventually } from '../../support/eventually.ts';
import { startTwilioEndpoint, type TwilioEndpoint } from '../../support/twilio-endpoint.ts';
import { LogCapture, tempDir } from '../bridge-harness.ts';
import { sampleStoredEvent } from '../fixtures.ts';
import { decideAndStore } from './decide-and-store.ts';

const ids = new UlidFactory();

/** True when none of the service's alert jobs is still queued or being sent: every send it
 * will make has reached the endpoint. */
async function settled(service: AlertService): Promise<boolean> {
  const counts = await service.queue.jobCounts();
  return counts.every((c) => c.status !== 'queued' && c.status !== 'in-flight');
}

describe('alert service', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let twilio: TwilioEndpoint;
  let store: SqliteEventStore;
  let service: AlertService | null;

  beforeEach(async () => {
    dir = await tempDir('sw-alerts-');
    twilio = await startTwilioEndpoint();
    store = new SqliteEventStore(join(dir.path, 'events.sqlite'));
    await store.start();
    service = null;
  });
  afterEach(async () => {
    await service?.stop();
    await store.stop();
    await twilio.stop();
    await dir.remove();
  });

  function start(
    alerts: CloudConfigInput['alerts'],
    random?: () => number,
  ): { service: AlertService; logs: LogCapture } {
    const config = parseCloudConfig({
      alerts: {
        twilio: {
          accountSid: 'ACunit0000000000000000000000000000',
          authToken: 't',
          from: '+15550009999',
          apiBaseUrl: twilio.url,
        },
        ...alerts,
      },
    });
    const logs = new LogCapture();
    service = new AlertService({
      alerts: config.alerts,
      dataDir: dir.path,
      store,
      senders: createSenders(config.alerts),
      sensorConfig: () => undefined,
      logger: pino({ level: 'info' }, logs),
      pollMs: 20,
      random,
    });
    return { service, logs };
  }

  it('gives up after maxRetries transient failures and records the failure', async () => {
    twilio.fallback = 500;
    const { service: s, logs } = start({
      policies: [{ contacts: { sms: ['+15550001111'] }, cooldownS: 0 }],
      retry: { maxRetries: 2, initialDelayMs: 20, maxDelayMs: 40, multiplier: 2 },
    });
    await s.start();
    const ev = sampleStoredEvent({ eventId: ids.next(Date.now()) });
    expect((await decideAndStore(s, store, ev)).responseStatus).toBe('pending');
    const stored = await eventually(
      async () => {
        const e = await store.get(ev.eventId);
        return e?.responseStatus === 'failed' ? e : null;
      },
      5000,
      'failed',
    );
    expect(twilio.requests).toHaveLength(3);
    expect(stored.deliveries[0]).toMatchObject({
      status: 'failed',
      attempts: 3,
      lastError: expect.stringContaining('HTTP 500'),
    });
    expect(logs.find('alert attempt').map((l) => l.status)).toEqual(['retrying', 'retrying', 'failed']);
  });

  it('escalates when an alert is not acknowledged in time, and not when it was reviewed', async () => {
    const { service: s } = start({
      policies: [
        {
          contacts: { sms: ['+15550001111'] },
          escalateAfterS: 1,
          escalateTo: { sms: ['+15550003333'] },
          cooldownS: 0,
        },
      ],
    });
    await s.start();
    const ignored = sampleStoredEvent({ eventId: ids.next(Date.now()) });
    const reviewed = sampleStoredEvent({ eventId: ids.next(Date.now()), sensorId: 'yard-2' });
    for (const e of [ignored, reviewed]) {
      await decideAndStore(s, store, e);
    }
    await store.setReview(reviewed.eventId, {
      verdict: 'confirmed',
      userId: 'ops',
      at: new Date().toISOString(),
    });
    await twilio.waitFor((r) => r.some((x) => x.to === '+15550003333'), 5000);
    // Both escalations fall due together; once both jobs are final, no further SMS can come.
    await eventually(() => settled(s), 5000, 'both escalation jobs final');
    const esc = twilio.requests.filter((x) => x.to === '+15550003333');
    expect(esc).toHaveLength(1);
    expect(esc[0]!.body).toContain('ESCALATION (not acknowledged after 1 s)');
    expect(esc[0]!.body).toContain(ignored.eventId);
    const jobs = (await s.queue.jobsForEvent(reviewed.eventId)).filter((j) => j.kind === 'escalation');
    expect(jobs[0]).toMatchObject({ status: 'suppressed', lastError: 'acknowledged by ops' });
  });

  it('raises a sensor-offline alert once when two bridges share the store', async () => {
    const alerts = parseCloudConfig({
      alerts: {
        policies: [{ contacts: { sms: ['+15550001111'] } }],
        twilio: {
          accountSid: 'ACunit0000000000000000000000000000',
          authToken: 't',
          from: '+15550009999',
          apiBaseUrl: twilio.url,
        },
      },
    }).alerts;
    const bridges = ['a', 'b'].map(
      (name) =>
        new AlertService({
          alerts,
          dataDir: join(dir.path, name),
          store,
          senders: createSenders(alerts),
          sensorConfig: () => undefined,
          logger: pino({ level: 'silent' }),
          pollMs: 20,
        }),
    );
    try {
      for (const b of bridges) await b.start();
      const view = {
        id: 'hall-1',
        name: 'Hall',
        room: null,
        group: 'default',
        location: null,
        status: 'offline' as const,
        configured: true,
        lastSeen: '2026-11-24T10:00:00.400Z',
        outboxDepth: 0,
        inputLevelDbfs: -40,
        modelVersion: 'm',
        daemonVersion: null,
        lastEventAt: null,
        droppedFrames: 0,
        ip: null,
        lastBeaconAt: '2026-11-24T10:00:00.000Z',
      };
      const [ra, rb] = [
        await bridges[0]!.onSensorOffline(view),
        await bridges[1]!.onSensorOffline({ ...view, lastSeen: '2026-11-24T10:00:00.900Z' }),
      ];
      expect(ra?.eventId).toBeTruthy();
      expect(rb).toBeNull();
      expect(await store.count()).toBe(1);
      await twilio.waitFor((r) => r.length === 1);
      // Every job of both bridges final: a second send, if any, has reached the endpoint.
      await eventually(async () => (await settled(bridges[0]!)) && settled(bridges[1]!), 5000, 'jobs final');
      expect(twilio.requests).toHaveLength(1);
      expect(twilio.requests[0]!.body).toContain('Sensor offline: hall-1');
    } finally {
      for (const b of bridges) await b.stop();
    }
  });
});

describe('alert text', () => {
  it('escapes HTML and never links a made-up location', () => {
    const e = sampleStoredEvent({
      location: {
        latitude: null,
        longitude: null,
        accuracy: null,
        address: null,
        source: 'unknown',
        room: '<script>x</script>',
      },
    });
    const m = screamAlert(e, { id: 'hall-1', name: 'A & B "hall"', room: null }, 'https://sw.example.org/');
    expect(m.html).not.toContain('<script>');
    expect(m.html).toContain('&lt;script&gt;x&lt;/script&gt;');
    expect(m.html).toContain('A &amp; B &quot;hall&quot;');
    expect(m.text).not.toContain('openstreetmap');
    expect(m.text).toContain('[location: unknown]');
    expect(m.text).toContain(`Details: https://sw.example.org/events/${e.eventId}`);
    expect(escapeHtml(`'`)).toBe('&#39;');
  });
});
