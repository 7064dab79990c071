// Cloud bridge benchmark (prints figures; not a test).
//
//  - ingest: events per second from MQTT (embedded aedes, QoS 1, 4 publishers, 10 % duplicate
//    redeliveries) through validation, de-duplication, geolocation and the store, until every
//    PUBACK is back (an event is acknowledged only once stored). Target >= 5,000/s into SQLite.
//    The same run against MongoDB uses MONGODB_BENCH_URI when set, else the in-memory wire
//    server from test/support (a linear-scan test double: its figure says nothing about MongoDB).
//  - ingest with alerts: the same, with a policy alerting 10 contacts per event (5 SMS, 5 e-mail;
//    no carrier configured, so every delivery is recorded as not-configured and nothing is sent):
//    the alert decision and the event's deliveries[] are on the ingest path. Plus PUBACK latency,
//    one event at a time, with that policy.
//  - alert latency: publish -> the SMS request reaching a loopback Twilio endpoint, one event
//    at a time. Target median <= 200 ms.
//
// Environment: BENCH_CLOUD_EVENTS (default 20000), BENCH_CLOUD_MONGO_EVENTS (default 2000),
// BENCH_CLOUD_ALERTS (default 50), BENCH_CLOUD_ALERTING_EVENTS (default 5000), MONGODB_BENCH_URI.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import mqtt from 'mqtt';
import pino from 'pino';
import { CloudApp } from '../cloud/app.ts';
import { type CloudConfigInput, parseCloudConfig } from '../cloud/config/schema.ts';
import { encodeEvent } from '../protocol/codec.ts';
import { UlidFactory } from '../protocol/event-id.ts';
import type { EventMessage } from '../protocol/messages.ts';
import { sensorTopic } from '../protocol/topics.ts';
import { startMongoWireServer } from '../test/support/mongo-wire-server.ts';
import { startTwilioEndpoint } from '../test/support/twilio-endpoint.ts';

const ids = new UlidFactory();
const SENSORS = ['hall-1', 'yard-2', 'lab-3', 'gym-4'];

function event(sensorId: string): EventMessage {
  const now = Date.now();
  return {
    v: 1,
    eventId: ids.next(now),
    sensorId,
    timestamp: new Date(now).toISOString(),
    startedAt: new Date(now - 1500).toISOString(),
    screamProbability: 0.9,
    isScream: true,
    thresholdValue: 0.5,
    audioSource: 'alsa:plughw:CARD=Device,DEV=0',
    levelDbfs: -10,
    modelVersion: 'bench',
    deviceInfo: { hostname: 'pi', daemonVersion: '0.1.0', platform: 'linux-arm64' },
    features: { rms: 0.3, centroid: 1800, flatness: 0.2 },
  };
}

async function startApp(
  dataDir: string,
  over: Partial<CloudConfigInput>,
  env: NodeJS.ProcessEnv = {},
): Promise<CloudApp> {
  const config = parseCloudConfig({
    dataDir,
    mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true },
    sensors: SENSORS.map((id, i) => ({
      id,
      name: id,
      location: { latitude: 48 + i, longitude: 2 + i, address: `${i} Main St` },
    })),
    alerts: { policies: [] },
    log: { level: 'silent' },
    ...over,
  });
  const app = new CloudApp({ config, env, logger: pino({ level: 'silent' }), web: false, alertPollMs: 20 });
  await app.start();
  return app;
}

/** PUBACK latency (publish -> acknowledged = stored), one event at a time: [median, p95] ms. */
async function pubackLatency(app: CloudApp, n: number): Promise<[number, number]> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${app.brokerPorts!.tcp}`, { reconnectPeriod: 0 });
  const latencies: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const payload = encodeEvent(event('hall-1'));
      const t0 = performance.now();
      await client.publishAsync(sensorTopic('screamwatch', 'hall-1', 'events'), payload, { qos: 1 });
      latencies.push(performance.now() - t0);
    }
  } finally {
    await client.endAsync();
  }
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]! * 100) / 100;
  return [q(0.5), q(0.95)];
}

const TEN_CONTACTS = {
  sms: ['+15550000001', '+15550000002', '+15550000003', '+15550000004', '+15550000005'],
  email: ['a@example.org', 'b@example.org', 'c@example.org', 'd@example.org', 'e@example.org'],
};

async function ingestRate(app: CloudApp, total: number, alreadyStored = 0): Promise<number> {
  const url = `mqtt://127.0.0.1:${app.brokerPorts!.tcp}`;
  const clients = await Promise.all(
    SENSORS.map((id) => mqtt.connectAsync(url, { clientId: `bench-${id}`, reconnectPeriod: 0 })),
  );
  const per = Math.ceil(total / clients.length);
  const batches = clients.map((_, i) => {
    const sensorId = SENSORS[i]!;
    const payloads: { topic: string; payload: Buffer }[] = [];
    for (let n = 0; n < per; n++) {
      const p = {
        topic: sensorTopic('screamwatch', sensorId, 'events'),
        payload: encodeEvent(event(sensorId)),
      };
      payloads.push(p);
      if (n % 10 === 9) payloads.push(p); // a redelivery
    }
    return payloads;
  });
  const started = performance.now();
  await Promise.all(
    clients.map((c, i) =>
      Promise.all(batches[i]!.map((m) => c.publishAsync(m.topic, m.payload, { qos: 1 }))),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  const stored = (await app.store.count()) - alreadyStored;
  await Promise.all(clients.map((c) => c.endAsync()));
  if (stored !== per * clients.length)
    throw new Error(`bench: stored ${stored}, expected ${per * clients.length}`);
  return Math.round(stored / seconds);
}

export async function runCloudBench(): Promise<Record<string, number | string>> {
  const total = Number(process.env.BENCH_CLOUD_EVENTS ?? 20_000);
  const mongoTotal = Number(process.env.BENCH_CLOUD_MONGO_EVENTS ?? 2000);
  const alerts = Number(process.env.BENCH_CLOUD_ALERTS ?? 50);
  const dir = await mkdtemp(join(tmpdir(), 'sw-bench-cloud-'));
  const out: Record<string, number | string> = {};
  try {
    // SQLite
    let app = await startApp(join(dir, 'sqlite'), {});
    try {
      out.ingestSqlitePerS = await ingestRate(app, total);
      out.ingestSqliteEvents = total;
    } finally {
      await app.stop();
    }

    // SQLite, every event alerting 10 contacts (not-configured carriers: nothing is sent)
    const alerting = Number(process.env.BENCH_CLOUD_ALERTING_EVENTS ?? 5000);
    app = await startApp(join(dir, 'sqlite-alerting'), {
      alerts: {
        policies: [
          { group: 'default', cooldownS: 0, ratePerContactPerHour: 1_000_000, contacts: TEN_CONTACTS },
        ],
      },
    });
    try {
      [out.pubackAlertingMedianMs, out.pubackAlertingP95Ms] = await pubackLatency(app, 300);
      out.ingestSqliteAlertingPerS = await ingestRate(app, alerting, 300);
      out.ingestSqliteAlertingEvents = alerting;
    } finally {
      await app.stop();
    }

    // MongoDB
    const realUri = process.env.MONGODB_BENCH_URI;
    const wire = realUri ? null : await startMongoWireServer();
    try {
      const uri = realUri ?? `${wire!.uri}/screamwatch_bench`;
      app = await startApp(
        join(dir, 'mongo'),
        {},
        { MONGODB_URI: uri, MONGODB_DB: `screamwatch_bench_${process.pid}` },
      );
      try {
        out.ingestMongoPerS = await ingestRate(app, mongoTotal);
        out.ingestMongoEvents = mongoTotal;
        out.ingestMongoTarget = realUri ? 'MONGODB_BENCH_URI' : 'test wire server (in-memory, not MongoDB)';
      } finally {
        await app.stop();
      }
    } finally {
      await wire?.stop();
    }

    // publish -> Twilio request latency
    const twilio = await startTwilioEndpoint();
    app = await startApp(join(dir, 'alerts'), {
      alerts: {
        policies: [
          {
            group: 'default',
            cooldownS: 0,
            ratePerContactPerHour: 100_000,
            contacts: { sms: ['+15550001111'], email: [] },
          },
        ],
        twilio: {
          accountSid: 'ACbench00000000000000000000000000',
          authToken: 'bench',
          from: '+15550009999',
          apiBaseUrl: twilio.url,
        },
      },
    });
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${app.brokerPorts!.tcp}`, {
      reconnectPeriod: 0,
    });
    try {
      const latencies: number[] = [];
      for (let i = 0; i < alerts; i++) {
        const e = event('hall-1');
        const arrived = new Promise<number>((resolve) => {
          twilio.onRequest = (r) => {
            if (r.body.includes(e.eventId)) resolve(performance.now());
          };
        });
        const t0 = performance.now();
        await client.publishAsync(sensorTopic('screamwatch', 'hall-1', 'events'), encodeEvent(e), { qos: 1 });
        latencies.push((await arrived) - t0);
      }
      latencies.sort((a, b) => a - b);
      const q = (p: number) =>
        Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]! * 10) / 10;
      out.alertLatencyMedianMs = q(0.5);
      out.alertLatencyP95Ms = q(0.95);
      out.alertLatencySamples = latencies.length;
    } finally {
      await client.endAsync();
      await app.stop();
      await twilio.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runCloudBench();
  for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(24)} ${v}`);
}
