import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import { encodeEvent } from '../../protocol/codec.ts';
import { sensorTopic } from '../../protocol/topics.ts';
import { tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { freePort } from '../support/free-port.ts';
import { type MongoWireServer, startMongoWireServer } from '../support/mongo-wire-server.ts';
import { type SmtpHarness, startSmtp } from '../support/smtp.ts';
import { startTwilioEndpoint, type TwilioEndpoint } from '../support/twilio-endpoint.ts';
import {
  alertJobs,
  alertTally,
  deliveredAlerts,
  mongoAlertJobs,
  type Proc,
  record,
  startBridge,
  storedIds,
  systemEvent,
  tally,
} from './harness.ts';

const SENSOR_PASSWORD = `sensor-${randomBytes(12).toString('hex')}`;
const ADMIN_PASSWORD = `admin-${randomBytes(12).toString('hex')}`;
const TWILIO_TOKEN = `tw-${randomBytes(12).toString('hex')}`;
const SMTP_PASS = `smtp-${randomBytes(12).toString('hex')}`;
const FINAL = new Set(['sent', 'failed', 'not-configured', 'suppressed']);

let root = '';
let twilio: TwilioEndpoint;
let smtp: SmtpHarness;
let sensorHash = '';
let adminHash = '';
const procs: Proc[] = [];
const clients: MqttClient[] = [];

let modelPath = '';

function config(sensorIds: string[], contacts: { sms: string[]; email: string[] }) {
  return {
    // the dashboard's upload model: a tiny forest trained here, so these checks do not
    // depend on the shipped model (retrained now and then)
    modelPath,
    mqtt: {
      host: '127.0.0.1',
      sensors: sensorIds.map((sensorId) => ({ sensorId, passwordHash: sensorHash })),
    },
    offlineAfterS: 3600,
    alerts: {
      policies: [
        {
          group: 'default',
          threshold: 0.01,
          cooldownS: 0,
          ratePerContactPerHour: 100_000,
          contacts,
          alertOnSensorOffline: false,
        },
      ],
      twilio: { accountSid: 'ACsystemtest', from: '+15550001111', apiBaseUrl: twilio.url },
      smtp: { host: '127.0.0.1', port: smtp.port, user: 'screamwatch', from: 'screamwatch@example.org' },
      retry: { maxRetries: 8, initialDelayMs: 200, maxDelayMs: 2000, multiplier: 2 },
      timeoutMs: 3000,
    },
    web: { host: '127.0.0.1', users: [{ username: 'ops', passwordHash: adminHash, role: 'admin' }] },
  };
}

const secretEnv = {
  SCREAMWATCH_ALERTS_TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
  SCREAMWATCH_ALERTS_SMTP_PASS: SMTP_PASS,
};

async function bridge(
  dir: string,
  sensorIds: string[],
  contacts: { sms: string[]; email: string[] },
  env = {},
) {
  const mqttPort = await freePort();
  const p = startBridge({
    dir,
    mqttPort,
    httpPort: 0,
    config: config(sensorIds, contacts),
    env: { ...secretEnv, ...env },
  });
  procs.push(p);
  await p.waitFor(/cloud bridge running/, 30_000);
  const web = /"web":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(p.out)?.[1];
  return { proc: p, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, web: web! };
}

async function connectSensor(url: string, sensorId: string, password = SENSOR_PASSWORD): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, {
    username: sensorId,
    password,
    clientId: `${sensorId}-${randomBytes(3).toString('hex')}`,
    reconnectPeriod: 0,
    // scrypt password checks run on libuv's 4 threads: 50 logins at once take seconds
    connectTimeout: 30_000,
  });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sw-system-ls-'));
  twilio = await startTwilioEndpoint();
  smtp = await startSmtp();
  sensorHash = await hashPassword(SENSOR_PASSWORD);
  adminHash = await hashPassword(ADMIN_PASSWORD);
  modelPath = await tinyModelFile(root);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
  await Promise.all(procs.map((p) => p.stop()));
  await twilio?.stop();
  await smtp?.stop();
  if (root && !process.env.SW_SYSTEM_KEEP) rmSync(root, { recursive: true, force: true });
});

function mongoIds(mongo: MongoWireServer): Map<string, number> {
  const out = new Map<string, number>();
  for (const db of mongo.databases.values()) {
    const docs = db.get('events')?.docs ?? [];
    for (const d of docs) {
      const id = String((d as { eventId?: unknown }).eventId);
      out.set(id, (out.get(id) ?? 0) + 1);
    }
  }
  return out;
}

describe('system: load, clock skew and security', () => {
  it('a burst of 1,000 events from 50 sensors into the MongoDB store: none lost, none duplicated', async () => {
    twilio.requests.length = 0;
    smtp.mails.length = 0;
    const mongo = await startMongoWireServer();
    try {
      const ids = Array.from({ length: 50 }, (_, i) => `burst-${i}`);
      const dir = join(root, 'burst');
      const b = await bridge(
        dir,
        ids,
        { sms: ['+15551230002'], email: [] },
        { MONGODB_URI: `${mongo.uri}/screamwatch` },
      );
      const sensors: MqttClient[] = [];
      for (let i = 0; i < ids.length; i += 10)
        sensors.push(...(await Promise.all(ids.slice(i, i + 10).map((id) => connectSensor(b.mqttUrl, id)))));
      const sent: string[] = [];
      const t0 = Date.now();
      await Promise.all(
        sensors.map(async (c, i) => {
          const sensorId = ids[i]!;
          const pubs: Promise<unknown>[] = [];
          for (let k = 0; k < 20; k++) {
            const msg = systemEvent(sensorId);
            sent.push(msg.eventId);
            // a QoS 1 PUBACK from the embedded broker means "stored"
            pubs.push(
              c.publishAsync(sensorTopic('screamwatch', sensorId, 'events'), encodeEvent(msg), { qos: 1 }),
            );
          }
          await Promise.all(pubs);
        }),
      );
      // every PUBACK received: the store must already hold them all
      const stored = mongoIds(mongo);
      const ingestS = (Date.now() - t0) / 1000;
      await eventually(
        () => {
          // With MONGODB_URI the alert state is in MongoDB too.
          const jobs = mongoAlertJobs(mongo.databases).filter((j) => j.kind === 'alert');
          return jobs.length === sent.length && jobs.every((j) => FINAL.has(j.status));
        },
        180_000,
        'every burst alert final',
        200,
      );
      const t = tally(sent, stored);
      const a = alertTally(deliveredAlerts(twilio, null));
      record({
        scenario: 'burst: 1,000 events from 50 sensors (MongoDB store)',
        ...t,
        ...a,
        recoverS: null,
        note: `all 1,000 PUBACKs (= stored) in ${ingestS.toFixed(1)} s`,
      });
      expect(t.sent).toBe(1000);
      expect(t.lost).toBe(0);
      expect(t.duplicated).toBe(0);
      expect(a.duplicatedAlerts).toBe(0);
      expect(a.alertsSent).toBe(1000);
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => {})));
      await procs.splice(0).reduce((p, x) => p.then(() => x.stop()), Promise.resolve<unknown>(null));
      await mongo.stop();
    }
  });

  it('clock skew between sensors and cloud: events 2 h ahead and 3 days behind are stored and alerted once', async () => {
    twilio.requests.length = 0;
    smtp.mails.length = 0;
    const dir = join(root, 'skew');
    const b = await bridge(dir, ['ahead', 'behind'], { sms: ['+15551230003'], email: ['ops@example.org'] });
    const ahead = await connectSensor(b.mqttUrl, 'ahead');
    const behind = await connectSensor(b.mqttUrl, 'behind');
    const sent: string[] = [];
    for (let k = 0; k < 5; k++) {
      const a = systemEvent('ahead', Date.now() + 2 * 3600_000 + k);
      const z = systemEvent('behind', Date.now() - 3 * 86_400_000 + k);
      sent.push(a.eventId, z.eventId);
      await ahead.publishAsync(sensorTopic('screamwatch', 'ahead', 'events'), encodeEvent(a), { qos: 1 });
      await behind.publishAsync(sensorTopic('screamwatch', 'behind', 'events'), encodeEvent(z), { qos: 1 });
      // a redelivery after a lost PUBACK: same event id again
      await behind.publishAsync(sensorTopic('screamwatch', 'behind', 'events'), encodeEvent(z), { qos: 1 });
    }
    await eventually(
      () => {
        const jobs = alertJobs(join(dir, 'data'));
        return (
          new Set(jobs.map((j) => j.event_id)).size === sent.length && jobs.every((j) => FINAL.has(j.status))
        );
      },
      60_000,
      'skewed alerts final',
      200,
    );
    const t = tally(sent, storedIds(join(dir, 'data')));
    const a = alertTally(deliveredAlerts(twilio, smtp));
    record({ scenario: 'clock skew +2 h / -3 days (+ redelivery)', ...t, ...a, recoverS: null });
    expect(t.lost).toBe(0);
    expect(t.duplicated).toBe(0);
    expect(a.duplicatedAlerts).toBe(0);
    expect(a.alertsSent).toBe(sent.length * 2);
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => {})));
    await procs.splice(0).reduce((p, x) => p.then(() => x.stop()), Promise.resolve<unknown>(null));
  });

  it('carriers refusing for good (Twilio 400, SMTP 550): every alert is marked failed with the reason, once', async () => {
    twilio.requests.length = 0;
    smtp.mails.length = 0;
    twilio.fallback = 400;
    smtp.rejectNext(1000, 550);
    try {
      const dir = join(root, 'refused');
      const b = await bridge(dir, ['carol'], { sms: ['+15551230004'], email: ['ops@example.org'] });
      const carol = await connectSensor(b.mqttUrl, 'carol');
      const sent: string[] = [];
      for (let k = 0; k < 3; k++) {
        const e = systemEvent('carol');
        sent.push(e.eventId);
        await carol.publishAsync(sensorTopic('screamwatch', 'carol', 'events'), encodeEvent(e), { qos: 1 });
      }
      await eventually(
        () => {
          const jobs = alertJobs(join(dir, 'data'));
          return jobs.length === sent.length * 2 && jobs.every((j) => FINAL.has(j.status));
        },
        60_000,
        'refused alerts final',
        200,
      );
      const jobs = alertJobs(join(dir, 'data'));
      expect(jobs.every((j) => j.status === 'failed' && !!j.last_error)).toBe(true);
      const t = tally(sent, storedIds(join(dir, 'data')));
      const a = alertTally(deliveredAlerts(twilio, smtp));
      record({
        scenario: 'carriers refuse (Twilio 400, SMTP 550)',
        ...t,
        ...a,
        recoverS: null,
        note: `${jobs.length} alerts marked failed, e.g. "${jobs[0]!.last_error}"`,
      });
      expect(t.lost).toBe(0);
      expect(a.alertsSent).toBe(0);
      // a permanent refusal is not retried: one attempt per alert
      expect(twilio.requests.length).toBe(sent.length);
    } finally {
      twilio.fallback = 201;
      smtp.rejectNext(0, 250);
      await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => {})));
      await procs.splice(0).reduce((p, x) => p.then(() => x.stop()), Promise.resolve<unknown>(null));
    }
  });

  it('security: foreign topics and wrong passwords refused, 10,000 fuzzed payloads and junk uploads leave the bridge up and the store clean, no session = 401, no secrets in logs', async () => {
    const dir = join(root, 'security');
    const b = await bridge(dir, ['alice', 'bob'], { sms: [], email: [] });

    // wrong password: CONNACK refusal
    await expect(connectSensor(b.mqttUrl, 'alice', 'not-the-password')).rejects.toThrow(
      /not authori[sz]ed|bad user|password/i,
    );
    await expect(connectSensor(b.mqttUrl, 'mallory', SENSOR_PASSWORD)).rejects.toThrow();

    // alice publishing as bob: refused (the connection is dropped, nothing stored)
    const alice = await connectSensor(b.mqttUrl, 'alice');
    const forged = systemEvent('bob');
    const closed = new Promise<void>((r) => alice.once('close', () => r()));
    alice.publish(sensorTopic('screamwatch', 'bob', 'events'), encodeEvent(forged), { qos: 1 });
    await closed;
    expect(storedIds(join(dir, 'data')).has(forged.eventId)).toBe(false);

    // 10,000 malformed, oversized and fuzzed payloads on alice's own topics
    let fuzz = await connectSensor(b.mqttUrl, 'alice');
    const valid = encodeEvent(systemEvent('alice')).toString();
    const kinds = ['events', 'status', 'heartbeat'] as const;
    let reconnects = 0;
    let acked = 0;
    for (let i = 0; i < 10_000; i++) {
      let payload: Buffer;
      switch (i % 6) {
        case 0:
          payload = randomBytes(1 + (i % 300));
          break;
        case 1:
          payload = Buffer.from(valid.slice(0, i % valid.length));
          break;
        case 2: {
          const o = JSON.parse(valid) as Record<string, unknown>;
          const keys = Object.keys(o);
          o[keys[i % keys.length]!] = [null, -1, 'x'.repeat(5000), { a: 1 }, 1e308][i % 5];
          payload = Buffer.from(JSON.stringify(o));
          break;
        }
        case 3:
          // every tenth of these oversized (> MAX_PAYLOAD_BYTES), the others deeply nested JSON
          payload =
            i % 60 === 3
              ? Buffer.alloc(70_000 + (i % 1000), 0x7b)
              : Buffer.from(`${'['.repeat(5000)}${']'.repeat(5000)}`);
          break;
        case 4:
          payload = Buffer.from(
            JSON.stringify({ ...JSON.parse(valid), sensorId: 'bob', eventId: 'not-a-ulid' }),
          );
          break;
        default:
          payload = Buffer.from('{"v":1,"eventId":');
      }
      if (!fuzz.connected) {
        reconnects++;
        fuzz = await connectSensor(b.mqttUrl, 'alice');
      }
      const topic = sensorTopic('screamwatch', 'alice', kinds[i % 3]!);
      if (i % 50 === 0) {
        // QoS 1 now and then: its PUBACK comes after everything sent before it on this connection
        await fuzz.publishAsync(topic, payload, { qos: 1 }).then(
          () => acked++,
          () => undefined,
        );
      } else fuzz.publish(topic, payload, { qos: 0 });
    }
    // the last PUBACK: the broker has handled every payload before it
    await fuzz.publishAsync(sensorTopic('screamwatch', 'alice', 'status'), Buffer.from('{}'), { qos: 1 });
    expect(b.proc.running).toBe(true);
    expect(acked).toBe(200);
    expect(storedIds(join(dir, 'data')).size).toBe(0);

    // dashboard: no session = 401; junk uploads refused, nothing stored
    for (const path of ['/api/events', '/api/sensors', '/api/session', '/api/model'])
      expect((await fetch(`${b.web}${path}`)).status, path).toBe(401);
    expect((await fetch(`${b.web}/api/analyze`, { method: 'POST' })).status).toBe(401);
    const login = await fetch(`${b.web}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'ops', password: ADMIN_PASSWORD }),
    });
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const statuses = new Map<number, number>();
    for (let i = 0; i < 60; i++) {
      const form = new FormData();
      const junk =
        i % 3 === 0
          ? Buffer.concat([Buffer.from('RIFF\xff\xff\xff\xffWAVEfmt '), randomBytes(200)])
          : i % 3 === 1
            ? randomBytes(1 + i * 37)
            : Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00garbage');
      form.set('file', new Blob([junk]), `junk-${i}.wav`);
      const res = await fetch(`${b.web}/api/analyze?store=true`, {
        method: 'POST',
        headers: { cookie, 'x-csrf-token': csrfToken },
        body: form,
      });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      expect(res.status, `upload ${i}`).toBeLessThan(500);
    }
    expect(b.proc.running).toBe(true);
    expect(storedIds(join(dir, 'data')).size).toBe(0);

    // still healthy: a valid event after all that is stored
    const ok = systemEvent('alice');
    const good = await connectSensor(b.mqttUrl, 'alice');
    await good.publishAsync(sensorTopic('screamwatch', 'alice', 'events'), encodeEvent(ok), { qos: 1 });
    expect([...storedIds(join(dir, 'data')).keys()]).toEqual([ok.eventId]);
    record({
      scenario: 'security: 10,000 fuzzed MQTT payloads + 60 junk uploads',
      sent: 1,
      stored: 1,
      lost: 0,
      duplicated: 0,
      alertsSent: 0,
      duplicatedAlerts: 0,
      recoverS: null,
      note: `bridge up; ${acked}/200 QoS 1 fuzz payloads acknowledged, fuzz connection re-opened ${reconnects} time(s); upload statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    });

    // secrets never appear in the bridge's log
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => {})));
    await procs.splice(0).reduce((p, x) => p.then(() => x.stop()), Promise.resolve<unknown>(null));
    const log = readFileSync(b.proc.logFile, 'utf8');
    for (const s of [
      SENSOR_PASSWORD,
      ADMIN_PASSWORD,
      TWILIO_TOKEN,
      SMTP_PASS,
      csrfToken,
      cookie.split('=')[1]!,
    ])
      expect(log.includes(s), 'a secret in the bridge log').toBe(false);
  });
});
