import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloudApp } from '../../cloud/app.ts';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import { parseCloudConfig } from '../../cloud/config/schema.ts';
import { eventually } from '../support/eventually.ts';
import { type MongoWireServer, startMongoWireServer } from '../support/mongo-wire-server.ts';
import { startTwilioEndpoint, type TwilioEndpoint } from '../support/twilio-endpoint.ts';
import { connectSensor, LogCapture, newEvent, publishEvent, startBridge, tempDir } from './bridge-harness.ts';
import { pitchModel } from './web/support.ts';

const SMS_TO = '+15550001111';

describe('cloud app wiring', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let twilio: TwilioEndpoint;
  let apps: CloudApp[];
  let clients: MqttClient[];

  beforeEach(async () => {
    dir = await tempDir('sw-app-');
    twilio = await startTwilioEndpoint();
    apps = [];
    clients = [];
  });
  afterEach(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    for (const a of apps) await a.stop();
    await twilio.stop();
    await dir.remove();
  });

  const baseConfig = () => ({
    dataDir: dir.path,
    mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true },
    sensors: [
      {
        id: 'hall-1',
        name: 'Hall',
        room: 'Hall',
        location: { latitude: 48.85, longitude: 2.35, address: '1 Main St' },
      },
    ],
    alerts: {
      policies: [{ group: 'default', cooldownS: 600, contacts: { sms: [SMS_TO], email: [] } }],
      twilio: {
        accountSid: 'ACwiring000000000000000000000000000',
        authToken: 'tok',
        from: '+15550009999',
        apiBaseUrl: twilio.url,
      },
      retry: { maxRetries: 2, initialDelayMs: 50, maxDelayMs: 100, multiplier: 2 },
    },
  });

  it('serves the dashboard over the same store, registry and alerts (manual alert reaches Twilio)', async () => {
    const logs = new LogCapture();
    const config = parseCloudConfig({
      ...baseConfig(),
      web: {
        host: '127.0.0.1',
        port: 0,
        users: [{ username: 'admin', passwordHash: await hashPassword('admin-password-1'), role: 'admin' }],
      },
    });
    const app = new CloudApp({
      config,
      env: {},
      logger: pino({ level: 'info' }, logs),
      model: pitchModel(),
      alertPollMs: 50,
    });
    apps.push(app);
    await app.start();
    expect(app.web?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const url = app.web!.url;

    const client = await connectSensor(`mqtt://127.0.0.1:${app.brokerPorts!.tcp}`, undefined, undefined);
    clients.push(client);
    const ev = newEvent();
    await publishEvent(client, ev);
    await twilio.waitFor((r) => r.length === 1);

    const login = await fetch(`${url}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: 'admin-password-1' }),
    });
    expect(login.status).toBe(200);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const { csrfToken } = (await login.json()) as { csrfToken: string };

    const list = (await (await fetch(`${url}/api/events`, { headers: { cookie } })).json()) as
      | { events?: { eventId: string }[] }
      | { eventId: string }[];
    const events = Array.isArray(list) ? list : (list.events ?? []);
    expect(events.map((e) => e.eventId)).toContain(ev.eventId);

    const sensors = await (await fetch(`${url}/api/sensors`, { headers: { cookie } })).text();
    expect(sensors).toContain('hall-1');

    // Within the cooldown: only an operator's manual alert sends again.
    const res = await fetch(`${url}/api/events/${ev.eventId}/alert`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': csrfToken },
    });
    expect(res.status).toBe(200);
    const sms = await twilio.waitFor((r) => r.length === 2);
    expect(sms[1]!.body).toContain('Alert sent by an operator');
    expect(sms[1]!.to).toBe(SMS_TO);
  });

  it('stores into MongoDB when MONGODB_URI is set (wire-protocol test server)', async () => {
    const wire: MongoWireServer = await startMongoWireServer();
    try {
      const bridge = await startBridge(baseConfig(), {
        env: { MONGODB_URI: `${wire.uri}/screamwatch_wiring` },
      });
      apps.push(bridge.app);
      const client = await connectSensor(
        `mqtt://127.0.0.1:${bridge.app.brokerPorts!.tcp}`,
        undefined,
        undefined,
      );
      clients.push(client);
      const ev = newEvent();
      await publishEvent(client, ev);
      await publishEvent(client, ev);
      const stored = await eventually(
        async () => {
          const e = await bridge.app.store.get(ev.eventId);
          return e?.responseStatus === 'alerted' ? e : null;
        },
        10_000,
        'alerted',
      );
      expect(stored.location.source).toBe('sensor-config');
      expect(wire.databases.get('screamwatch_wiring')?.get('events')?.docs).toHaveLength(1);
      expect(bridge.logs.find('event store: MongoDB (MONGODB_URI)')).toHaveLength(1);
      expect(twilio.accepted()).toHaveLength(1);
      // With MONGODB_URI the alert state is in MongoDB too (shared by the bridges), not in the data dir.
      expect(bridge.logs.find('alert state: MongoDB (MONGODB_URI), shared by the bridges')).toHaveLength(1);
      const jobs = wire.databases.get('screamwatch_wiring')?.get('alert_jobs')?.docs ?? [];
      expect(jobs.map((j) => [j.channel, j.status])).toEqual([['sms', 'sent']]);
      expect(existsSync(join(dir.path, 'alerts.sqlite'))).toBe(false);
    } finally {
      for (const a of apps.splice(0)) await a.stop();
      await wire.stop();
    }
  });

  it('rolls back what it started when a later service fails (port in use)', async () => {
    const first = await startBridge(baseConfig());
    apps.push(first.app);
    const port = first.app.brokerPorts!.tcp!;
    const cfg = baseConfig();
    const err = await startBridge({
      ...cfg,
      dataDir: join(dir.path, 'second'),
      mqtt: { ...cfg.mqtt, port },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CLOUD_BROKER_LISTEN_FAILED' });
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
  });
});
