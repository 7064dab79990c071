import type { MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import type { CloudConfigInput } from '../../cloud/config/schema.ts';
import { sensorTopic } from '../../protocol/topics.ts';
import { eventually } from '../support/eventually.ts';
import { freePort } from '../support/free-port.ts';
import { mailText, type SmtpHarness, startSmtp } from '../support/smtp.ts';
import { startTwilioEndpoint, type TwilioEndpoint } from '../support/twilio-endpoint.ts';
import {
  BRIDGE_USER,
  connectSensor,
  type LogCapture,
  newEvent,
  publishEvent,
  SENSOR_PASSWORD,
  sensorHash,
  startBridge,
  tempDir,
} from './bridge-harness.ts';

const SMS_TO = '+15550001111';
const MAIL_TO = 'ops@example.org';

describe('cloud bridge with the embedded aedes broker', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let twilio: TwilioEndpoint;
  let smtp: SmtpHarness | null;
  let smtpPort: number;
  let bridge: { app: CloudApp; logs: LogCapture } | null;
  const clients: MqttClient[] = [];

  async function config(over: (c: CloudConfigInput) => void = () => {}): Promise<CloudConfigInput> {
    const c: CloudConfigInput = {
      dataDir: dir.path,
      mqtt: {
        port: 0,
        host: '127.0.0.1',
        sensors: [{ sensorId: 'hall-1', passwordHash: await sensorHash() }],
        username: BRIDGE_USER.username,
        password: BRIDGE_USER.password,
      },
      sensors: [
        {
          id: 'hall-1',
          name: 'Hall <main>',
          room: 'Ground floor hall',
          location: { latitude: 48.8566, longitude: 2.3522, accuracy: 5, address: '1 Rue de Rivoli, Paris' },
        },
      ],
      alerts: {
        policies: [
          { group: 'default', threshold: 0.5, cooldownS: 0, contacts: { sms: [SMS_TO], email: [MAIL_TO] } },
        ],
        twilio: {
          accountSid: 'ACtest0000000000000000000000000000',
          authToken: 'test-token',
          from: '+15550009999',
          apiBaseUrl: twilio.url,
        },
        smtp: { host: '127.0.0.1', port: smtpPort, secure: false, from: 'Screamwatch <alerts@example.org>' },
        retry: { maxRetries: 3, initialDelayMs: 100, maxDelayMs: 400, multiplier: 2 },
        timeoutMs: 1000,
      },
    };
    over(c);
    return c;
  }

  async function sensor(
    username: string | undefined = 'hall-1',
    password: string | undefined = SENSOR_PASSWORD,
  ): Promise<MqttClient> {
    const url = `mqtt://127.0.0.1:${bridge!.app.brokerPorts!.tcp}`;
    const c = await connectSensor(url, username, password);
    clients.push(c);
    return c;
  }

  beforeEach(async () => {
    dir = await tempDir();
    twilio = await startTwilioEndpoint();
    smtp = await startSmtp();
    smtpPort = smtp.port;
    bridge = null;
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true).catch(() => {});
    await bridge?.app.stop();
    await twilio.stop();
    await smtp?.stop();
    await dir.remove();
  });

  it('stores a published event once, located, and sends SMS and email with the right content', async () => {
    bridge = await startBridge(await config());
    const s = await sensor();
    const ev = newEvent({ screamProbability: 0.91 });
    await publishEvent(s, ev);

    const stored = await eventually(
      async () => {
        const e = await bridge!.app.store.get(ev.eventId);
        return e?.responseStatus === 'alerted' ? e : null;
      },
      10_000,
      'event alerted',
    );
    expect(stored).toMatchObject({
      eventId: ev.eventId,
      sensorId: 'hall-1',
      isScream: true,
      screamProbability: 0.91,
      alertType: 'scream',
      location: {
        latitude: 48.8566,
        longitude: 2.3522,
        accuracy: 5,
        address: '1 Rue de Rivoli, Paris',
        source: 'sensor-config',
        room: 'Ground floor hall',
      },
    });
    expect(stored.deliveries.map((d) => [d.channel, d.to, d.status, d.attempts]).sort()).toEqual([
      ['email', MAIL_TO, 'sent', 1],
      ['sms', SMS_TO, 'sent', 1],
    ]);
    expect(await bridge.app.store.count()).toBe(1);

    const [sms] = twilio.accepted();
    expect(sms).toMatchObject({
      to: SMS_TO,
      from: '+15550009999',
      accountSid: 'ACtest0000000000000000000000000000',
      authUser: 'ACtest0000000000000000000000000000',
    });
    expect(sms!.body).toContain('Scream detected at Hall <main>');
    expect(sms!.body).toContain('Ground floor hall, 1 Rue de Rivoli, Paris');
    expect(sms!.body).toContain('https://www.openstreetmap.org/?mlat=48.856600&mlon=2.352200');
    expect(sms!.body).toContain('91%');
    expect(sms!.body).toContain('hall-1');
    expect(sms!.body).toContain(`${ev.timestamp.slice(0, 19).replace('T', ' ')} UTC`);

    const mails = await smtp!.waitFor((m) => m.length === 1);
    expect(mails[0]!.to).toEqual([MAIL_TO]);
    const body = mailText(mails[0]!.raw);
    expect(body).toContain('Subject: [Screamwatch] Scream detected at Hall <main>');
    // HTML part is escaped: the sensor name's angle brackets never become markup.
    expect(body).toContain('Hall &lt;main&gt;');
    expect(body).not.toMatch(/<h2>[^<]*<main>/);
    expect(body).toContain('href="https://www.openstreetmap.org/?mlat=48.856600&amp;mlon=2.352200');

    const storedLines = bridge.logs.find('event stored');
    expect(storedLines).toHaveLength(1);
    expect(storedLines[0]).toMatchObject({ eventId: ev.eventId, sensorId: 'hall-1' });
    expect(
      bridge.logs
        .find('alert attempt')
        .map((l) => [l.channel, l.status])
        .sort(),
    ).toEqual([
      ['email', 'sent'],
      ['sms', 'sent'],
    ]);
  });

  it('stores and alerts a duplicate eventId once', async () => {
    bridge = await startBridge(await config());
    const s = await sensor();
    const ev = newEvent();
    await publishEvent(s, ev);
    await publishEvent(s, ev);
    await publishEvent(s, { ...ev, screamProbability: 0.99 });
    await eventually(
      async () => (await bridge!.app.store.get(ev.eventId))?.responseStatus === 'alerted',
      10_000,
      'alerted',
    );
    await smtp!.waitFor((m) => m.length >= 1);
    // A later event proves the duplicates were processed before it.
    const later = newEvent();
    await publishEvent(s, later);
    await eventually(
      async () => (await bridge!.app.store.get(later.eventId))?.responseStatus === 'alerted',
      10_000,
      'later alerted',
    );
    expect(await bridge.app.store.count()).toBe(2);
    expect((await bridge.app.store.get(ev.eventId))?.screamProbability).toBe(ev.screamProbability);
    expect(twilio.accepted().filter((r) => r.body.includes(ev.eventId))).toHaveLength(1);
    expect(bridge.app.ingest.stats).toMatchObject({ stored: 2, duplicates: 2 });
  });

  it('rejects malformed, oversized and unknown-version payloads without storing or crashing', async () => {
    bridge = await startBridge(await config());
    const s = await sensor();
    const topic = sensorTopic('screamwatch', 'hall-1', 'events');
    await s.publishAsync(topic, Buffer.from('{not json'), { qos: 1 });
    await s.publishAsync(topic, Buffer.from(JSON.stringify({ ...newEvent(), v: 99 })), { qos: 1 });
    await s.publishAsync(topic, Buffer.from(JSON.stringify({ ...newEvent(), screamProbability: 7 })), {
      qos: 1,
    });
    await s.publishAsync(topic, Buffer.alloc(70 * 1024, 0x20), { qos: 1 });
    await s.publishAsync(sensorTopic('screamwatch', 'hall-1', 'heartbeat'), Buffer.from('[]'), { qos: 1 });
    const good = newEvent();
    await publishEvent(s, good);
    await eventually(async () => bridge!.app.store.get(good.eventId), 10_000, 'good event');
    expect(await bridge.app.store.count()).toBe(1);
    expect(bridge.app.ingest.stats.rejectedByCode).toEqual({
      MQTT_PAYLOAD_INVALID: 3,
      MQTT_VERSION_UNSUPPORTED: 1,
      MQTT_PAYLOAD_TOO_LARGE: 1,
    });
    expect(bridge.logs.find('message rejected')).toHaveLength(5);
  });

  it('refuses a sensor publishing under another sensor id, and rejects a payload whose sensorId does not match the topic', async () => {
    bridge = await startBridge(await config());
    // ACL: hall-1 may not publish under yard-2's topics; aedes drops the client.
    const s = await sensor();
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.publish(
      sensorTopic('screamwatch', 'yard-2', 'events'),
      Buffer.from(JSON.stringify(newEvent({ sensorId: 'yard-2' }))),
      { qos: 1 },
    );
    await closed;
    // Payload/topic mismatch from a client allowed everywhere (the bridge's own user).
    const admin = await sensor(BRIDGE_USER.username, BRIDGE_USER.password);
    const spoofed = newEvent({ sensorId: 'hall-1' });
    await admin.publishAsync(
      sensorTopic('screamwatch', 'yard-2', 'events'),
      Buffer.from(JSON.stringify(spoofed)),
      { qos: 1 },
    );
    await eventually(
      () => bridge!.app.ingest.stats.rejectedByCode.MQTT_SENSOR_MISMATCH === 1,
      5000,
      'mismatch counted',
    );
    expect(await bridge.app.store.count()).toBe(0);
    expect(bridge.logs.find('MQTT publish refused by ACL')).toHaveLength(1);
  });

  it('refuses unknown sensors and wrong passwords at CONNECT', async () => {
    bridge = await startBridge(await config());
    const url = `mqtt://127.0.0.1:${bridge.app.brokerPorts!.tcp}`;
    await expect(connectSensor(url, 'hall-1', 'wrong-password')).rejects.toThrow(
      /Bad username or password|Not authorized/i,
    );
    await expect(connectSensor(url, 'ghost-9', 'whatever-pw')).rejects.toThrow(
      /Bad username or password|Not authorized/i,
    );
    await expect(connectSensor(url, undefined, undefined)).rejects.toThrow(
      /Bad username or password|Not authorized/i,
    );
  });

  it('retries SMS after a Twilio 500 and records the attempts; a 400 is not retried', async () => {
    bridge = await startBridge(
      await config((c) => {
        c.alerts!.policies![0]!.contacts = { sms: [SMS_TO, '+15550002222'], email: [] };
      }),
    );
    twilio.respondWith(500, 400);
    const s = await sensor();
    const ev = newEvent();
    await publishEvent(s, ev);
    const stored = await eventually(
      async () => {
        const e = await bridge!.app.store.get(ev.eventId);
        return e && e.responseStatus !== 'pending' ? e : null;
      },
      10_000,
      'deliveries settled',
    );
    expect(twilio.requests.map((r) => r.status).sort()).toEqual([201, 400, 500].sort());
    const byTo = Object.fromEntries(stored.deliveries.map((d) => [d.to, d]));
    const retried = stored.deliveries.find((d) => d.attempts === 2)!;
    const refused = stored.deliveries.find((d) => d.status === 'failed')!;
    expect(retried.status).toBe('sent');
    expect(refused).toMatchObject({ attempts: 1 });
    expect(refused.lastError).toMatch(/HTTP 400/);
    expect(Object.keys(byTo).sort()).toEqual([SMS_TO, '+15550002222'].sort());
    expect(stored.responseStatus).toBe('partial');
    expect(
      bridge.logs
        .find('alert attempt')
        .map((l) => l.status)
        .sort(),
    ).toEqual(['failed', 'retrying', 'sent']);
  });

  it('treats a Twilio request that hangs as a timeout and retries it', async () => {
    bridge = await startBridge(
      await config((c) => {
        c.alerts!.policies![0]!.contacts = { sms: [SMS_TO], email: [] };
      }),
    );
    twilio.respondWith('hang');
    const s = await sensor();
    const ev = newEvent();
    await publishEvent(s, ev);
    const stored = await eventually(
      async () => {
        const e = await bridge!.app.store.get(ev.eventId);
        return e?.responseStatus === 'alerted' ? e : null;
      },
      15_000,
      'alerted after timeout',
    );
    expect(stored.deliveries[0]).toMatchObject({ status: 'sent', attempts: 2 });
    expect(twilio.requests.map((r) => r.status)).toEqual(['hang', 201]);
  });

  it('delivers email once the SMTP server comes back', async () => {
    await smtp!.stop();
    smtpPort = await freePort();
    smtp = null;
    bridge = await startBridge(
      await config((c) => {
        c.alerts!.policies![0]!.contacts = { sms: [], email: [MAIL_TO] };
        c.alerts!.retry = { maxRetries: 10, initialDelayMs: 100, maxDelayMs: 300, multiplier: 2 };
      }),
    );
    const s = await sensor();
    const ev = newEvent();
    await publishEvent(s, ev);
    await eventually(
      () => bridge!.logs.find('alert attempt').some((l) => l.status === 'retrying'),
      10_000,
      'a failed attempt',
    );
    smtp = await startSmtp({ port: smtpPort });
    const mails = await smtp.waitFor((m) => m.length === 1, 10_000);
    expect(mailText(mails[0]!.raw)).toContain(ev.eventId);
    const stored = await eventually(
      async () => {
        const e = await bridge!.app.store.get(ev.eventId);
        return e?.responseStatus === 'alerted' ? e : null;
      },
      5000,
      'alerted',
    );
    expect(stored.deliveries[0]!.attempts).toBeGreaterThan(1);
    expect(stored.deliveries[0]!.lastError).toBeNull();
  });

  it('survives a bridge restart during retries without losing or double-sending alerts', async () => {
    const cfg = await config((c) => {
      c.alerts!.retry = { maxRetries: 20, initialDelayMs: 100, maxDelayMs: 200, multiplier: 2 };
    });
    twilio.fallback = 500;
    bridge = await startBridge(cfg);
    const s = await sensor();
    const ev = newEvent();
    await publishEvent(s, ev);
    await smtp!.waitFor((m) => m.length === 1);
    await twilio.waitFor((r) => r.length >= 2);
    await s.endAsync(true);
    await bridge.app.stop();
    const before = twilio.requests.length;
    expect(twilio.accepted()).toHaveLength(0);

    twilio.fallback = 201;
    bridge = await startBridge({ ...cfg, mqtt: { ...cfg.mqtt, port: 0 } });
    const stored = await eventually(
      async () => {
        const e = await bridge!.app.store.get(ev.eventId);
        return e?.responseStatus === 'alerted' ? e : null;
      },
      10_000,
      'alerted after restart',
    );
    expect(twilio.accepted()).toHaveLength(1);
    expect(twilio.requests.length).toBe(before + 1);
    expect(stored.deliveries.find((d) => d.channel === 'sms')!.attempts).toBe(before + 1);
    // Email was sent before the restart and is not sent again.
    await new Promise((r) => setTimeout(r, 300));
    expect(smtp!.mails).toHaveLength(1);
  });

  it('sends one alert per cooldown and then a follow-up summary', async () => {
    bridge = await startBridge(
      await config((c) => {
        c.alerts!.policies![0]!.cooldownS = 1;
        c.alerts!.policies![0]!.contacts = { sms: [SMS_TO], email: [] };
      }),
    );
    const s = await sensor();
    const events = [
      newEvent({ screamProbability: 0.8 }),
      newEvent({ screamProbability: 0.95 }),
      newEvent({ screamProbability: 0.7 }),
    ];
    for (const e of events) await publishEvent(s, e);
    await twilio.waitFor((r) => r.length === 2, 5000);
    expect(twilio.requests[0]!.body).toContain('Scream detected');
    expect(twilio.requests[1]!.body).toContain('Follow-up: 2 more detections at Hall <main>');
    expect(twilio.requests[1]!.body).toContain('Peak probability: 95%');
    expect((await bridge.app.store.get(events[1]!.eventId))?.responseStatus).toBe('suppressed');
  });

  it('limits messages per contact per hour', async () => {
    bridge = await startBridge(
      await config((c) => {
        c.alerts!.policies![0]!.ratePerContactPerHour = 1;
        c.alerts!.policies![0]!.contacts = { sms: [SMS_TO], email: [] };
      }),
    );
    const s = await sensor();
    const [a, b] = [newEvent(), newEvent()];
    await publishEvent(s, a);
    await publishEvent(s, b);
    const second = await eventually(
      async () => {
        const e = await bridge!.app.store.get(b.eventId);
        return e?.responseStatus === 'suppressed' ? e : null;
      },
      5000,
      'rate limited',
    );
    expect(second.deliveries[0]).toMatchObject({ status: 'suppressed' });
    expect(second.deliveries[0]!.lastError).toMatch(/rate limit/);
    await eventually(() => twilio.accepted().length === 1, 5000, 'first sms');
  });

  it('records "not-configured" when no credentials are set, and keeps running', async () => {
    bridge = await startBridge(
      await config((c) => {
        c.alerts!.twilio = {};
        c.alerts!.smtp = {};
      }),
    );
    const s = await sensor();
    const ev = newEvent();
    await publishEvent(s, ev);
    const stored = await eventually(
      async () => {
        const e = await bridge!.app.store.get(ev.eventId);
        return e?.responseStatus === 'not-configured' ? e : null;
      },
      5000,
      'not-configured',
    );
    expect(stored.deliveries.map((d) => d.status)).toEqual(['not-configured', 'not-configured']);
    expect(twilio.requests).toHaveLength(0);
    expect(bridge.logs.find('alert attempt').every((l) => l.status === 'not-configured')).toBe(true);
  });

  it('does not alert near-misses or events under the policy threshold', async () => {
    bridge = await startBridge(
      await config((c) => {
        c.alerts!.policies![0]!.threshold = 0.8;
      }),
    );
    const s = await sensor();
    const nearMiss = newEvent({ isScream: false, screamProbability: 0.45 });
    const low = newEvent({ screamProbability: 0.6 });
    await publishEvent(s, nearMiss);
    await publishEvent(s, low);
    await eventually(
      async () => (await bridge!.app.store.get(low.eventId))?.responseStatus === 'none',
      5000,
      'decided',
    );
    expect(await bridge.app.store.get(nearMiss.eventId)).toMatchObject({
      alertType: 'near-miss',
      responseStatus: 'none',
    });
    expect(twilio.requests).toHaveLength(0);
  });

  it('tracks sensor health and raises a sensor-offline alert after offlineAfterS of silence', async () => {
    bridge = await startBridge(
      await config((c) => {
        c.offlineAfterS = 1;
      }),
      { offlineCheckMs: 100 },
    );
    const s = await sensor();
    await s.publishAsync(
      sensorTopic('screamwatch', 'hall-1', 'heartbeat'),
      Buffer.from(
        JSON.stringify({
          v: 1,
          sensorId: 'hall-1',
          timestamp: new Date().toISOString(),
          uptimeS: 10,
          outboxDepth: 3,
          outboxFull: false,
          droppedFrames: 0,
          inputLevelDbfs: -42,
          lastMaxProbability: 0.1,
          cpuPercent: 12,
          rssBytes: 1000,
          modelVersion: 'forest-test',
        }),
      ),
      { qos: 1 },
    );
    const online = await eventually(
      () =>
        bridge!.app.registry.get('hall-1')?.status === 'online' ? bridge!.app.registry.get('hall-1') : null,
      5000,
      'online',
    );
    expect(online).toMatchObject({
      outboxDepth: 3,
      inputLevelDbfs: -42,
      modelVersion: 'forest-test',
      name: 'Hall <main>',
    });
    expect(online.ip).toMatch(/127\.0\.0\.1/);
    await s.endAsync(true);
    const sms = await twilio.waitFor((r) => r.some((x) => x.body.includes('Sensor offline')), 8000);
    expect(sms.find((x) => x.body.includes('Sensor offline'))!.body).toContain('Hall <main> (hall-1)');
    expect(bridge.app.registry.get('hall-1')?.status).toBe('offline');
    const [offline] = await bridge.app.store.list({ sensorId: 'hall-1' });
    expect(offline).toMatchObject({ alertType: 'sensor-offline', isScream: false });
  });
});
