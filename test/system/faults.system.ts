import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import { ulidTime } from '../../protocol/event-id.ts';
import { screamSequenceWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { canMount, smallTmpfs } from '../support/disk-faults.ts';
import { eventually } from '../support/eventually.ts';
import { freePort } from '../support/free-port.ts';
import { type MosquittoHarness, startMosquitto } from '../support/mosquitto.ts';
import { type SmtpHarness, startSmtp } from '../support/smtp.ts';
import { startTwilioEndpoint, type TwilioEndpoint } from '../support/twilio-endpoint.ts';
import {
  alertJobs,
  alertTally,
  deliveredAlerts,
  type Proc,
  record,
  sleep,
  startBridge,
  startDaemon,
  storedIds,
  tally,
} from './harness.ts';

// Secrets the bridge and daemons get through the environment / config; the last scenario
// checks none of them was ever written to a log.
const TWILIO_TOKEN = `tw-${randomBytes(12).toString('hex')}`;
const SMTP_PASS = `smtp-${randomBytes(12).toString('hex')}`;
const SENSOR_PASSWORD = `sensor-${randomBytes(12).toString('hex')}`;
const SECRETS = [TWILIO_TOKEN, SMTP_PASS, SENSOR_PASSWORD];

let root = '';
let twilio: TwilioEndpoint;
let smtp: SmtpHarness;
// The sensors run a tiny forest trained here on sox-made sounds, and replay sox-made scream
// sequences: the suite tests the system, not the shipped model (retrained now and then).
let track: { path: string };
let longTrack: { path: string };
let modelPath = '';
let sensorHash = '';
const procs: Proc[] = [];
const logs: string[] = [];
const brokers: MosquittoHarness[] = [];

function bridgeConfig(sensorIds: string[], extra: { broker?: string; clientId?: string } = {}) {
  return {
    mqtt: {
      host: '127.0.0.1',
      ...(extra.broker ? { broker: extra.broker, clientId: extra.clientId ?? 'sw-bridge-system' } : {}),
      sensors: sensorIds.map((sensorId) => ({ sensorId, passwordHash: sensorHash })),
    },
    sensors: sensorIds.map((id) => ({ id, name: `Sensor ${id}` })),
    offlineAfterS: 3600,
    alerts: {
      policies: [
        {
          group: 'default',
          // the daemon publishes at confirmation: alert on every confirmed scream
          threshold: 0.01,
          cooldownS: 0,
          ratePerContactPerHour: 100_000,
          contacts: { sms: ['+15551230001'], email: ['ops@example.org'] },
          alertOnSensorOffline: false,
        },
      ],
      twilio: { accountSid: 'ACsystemtest', from: '+15550001111', apiBaseUrl: twilio.url },
      smtp: { host: '127.0.0.1', port: smtp.port, user: 'screamwatch', from: 'screamwatch@example.org' },
      retry: { maxRetries: 8, initialDelayMs: 200, maxDelayMs: 2000, multiplier: 2 },
      timeoutMs: 3000,
    },
    web: { host: '127.0.0.1' },
  };
}

const secretEnv = {
  SCREAMWATCH_ALERTS_TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
  SCREAMWATCH_ALERTS_SMTP_PASS: SMTP_PASS,
};

function bridge(dir: string, mqttPort: number, sensorIds: string[], extra: { broker?: string } = {}): Proc {
  const p = startBridge({
    dir,
    mqttPort,
    httpPort: 0,
    config: bridgeConfig(sensorIds, extra),
    env: secretEnv,
  });
  procs.push(p);
  logs.push(p.logFile);
  return p;
}

function daemon(o: Parameters<typeof startDaemon>[0]): Proc {
  const p = startDaemon({ password: SENSOR_PASSWORD, modelPath, ...o });
  procs.push(p);
  logs.push(p.logFile);
  return p;
}

/** How many of the sensor's events were confirmed while the far side was down. */
function whileDown(ids: string[], fromMs: number, toMs: number): string {
  const n = ids.filter((id) => ulidTime(id) >= fromMs && ulidTime(id) <= toMs).length;
  return `${n} of ${ids.length} events confirmed while it was down`;
}

const FINAL = new Set(['sent', 'failed', 'not-configured', 'suppressed']);

/** Waits until every alert job is final (sent, failed with a reason, ...) and returns counts. */
async function settleAlerts(dataDir: string, expectedEvents: Set<string>) {
  await eventually(
    () => {
      const jobs = alertJobs(dataDir).filter((j) => expectedEvents.has(j.event_id));
      const events = new Set(jobs.map((j) => j.event_id));
      return events.size === expectedEvents.size && jobs.every((j) => FINAL.has(j.status));
    },
    60_000,
    'every alert delivered or marked failed',
    200,
  );
  const jobs = alertJobs(dataDir).filter((j) => expectedEvents.has(j.event_id));
  for (const j of jobs)
    if (j.status === 'failed') expect(j.last_error, `${j.event_id} ${j.channel}`).toBeTruthy();
  return jobs;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sw-system-'));
  twilio = await startTwilioEndpoint();
  smtp = await startSmtp();
  sensorHash = await hashPassword(SENSOR_PASSWORD);
  modelPath = await tinyModelFile(root);
  track = await screamSequenceWav(root, 'screams', 8, { gapS: 3, screamS: 2 });
  longTrack = await screamSequenceWav(root, 'screams-long', 16, { gapS: 3, screamS: 2 });
});

afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop()));
  await Promise.all(brokers.splice(0).map((b) => b.stop()));
});

afterAll(async () => {
  await twilio?.stop();
  await smtp?.stop();
  if (root && !process.env.SW_SYSTEM_KEEP) rmSync(root, { recursive: true, force: true });
});

function resetCarriers(): void {
  twilio.requests.length = 0;
  twilio.fallback = 201;
  smtp.mails.length = 0;
}

describe('system: faults between real processes', () => {
  it('bridge killed -9 mid-stream and restarted: nothing lost, nothing stored or alerted twice', async () => {
    resetCarriers();
    const dir = join(root, 'bridge-kill');
    const mqttPort = await freePort();
    let b = bridge(dir, mqttPort, ['s1']);
    await b.waitFor(/cloud bridge running/, 30_000);
    const d = daemon({
      dir,
      sensorId: 's1',
      broker: `mqtt://127.0.0.1:${mqttPort}`,
      source: `file:${track.path}`,
    });
    await eventually(
      () => storedIds(join(dir, 'data')).size > 0 || undefined,
      60_000,
      'a first stored event',
      200,
    );
    const downAt = Date.now();
    await b.kill9();
    await sleep(2000);
    b = bridge(dir, mqttPort, ['s1']);
    const restartedAt = Date.now();
    await b.waitFor(/cloud bridge running/, 30_000);
    expect(await d.exited).toBe(0);
    const sent = d.confirmedIds();
    await eventually(
      () => sent.every((id) => storedIds(join(dir, 'data')).has(id)) || undefined,
      60_000,
      'all confirmed events stored',
      200,
    );
    const recoverS = (Date.now() - restartedAt) / 1000;
    await settleAlerts(join(dir, 'data'), new Set(sent));
    const t = tally(sent, storedIds(join(dir, 'data')));
    const a = alertTally(deliveredAlerts(twilio, smtp));
    record({
      scenario: 'bridge killed -9, restarted',
      ...t,
      ...a,
      recoverS,
      note: whileDown(sent, downAt, restartedAt),
    });
    expect(t.sent).toBeGreaterThan(1);
    expect(t.lost).toBe(0);
    expect(t.duplicated).toBe(0);
    expect(a.duplicatedAlerts).toBe(0);
  });

  it('daemon killed -9 in a loop while publishing: outbox rows survive, nothing lost or duplicated', async () => {
    resetCarriers();
    const dir = join(root, 'daemon-kill');
    const mqttPort = await freePort();
    const b = bridge(dir, mqttPort, ['s2']);
    await b.waitFor(/cloud bridge running/, 30_000);
    const sent = new Set<string>();
    const opts = {
      dir,
      sensorId: 's2',
      broker: `mqtt://127.0.0.1:${mqttPort}`,
      source: `file:${track.path}`,
    };
    for (let i = 0; i < 5; i++) {
      const d = daemon(opts);
      await d.waitFor(/scream confirmed/, 60_000);
      await sleep(300 + ((i * 397) % 900));
      await d.kill9();
      for (const id of d.confirmedIds()) sent.add(id);
    }
    const last = daemon(opts);
    const restartedAt = Date.now();
    expect(await last.exited).toBe(0);
    for (const id of last.confirmedIds()) sent.add(id);
    await eventually(
      () => [...sent].every((id) => storedIds(join(dir, 'data')).has(id)) || undefined,
      60_000,
      'all confirmed events stored',
      200,
    );
    const recoverS = (Date.now() - restartedAt) / 1000;
    await settleAlerts(join(dir, 'data'), sent);
    const t = tally(sent, storedIds(join(dir, 'data')));
    const a = alertTally(deliveredAlerts(twilio, smtp));
    record({ scenario: 'daemon killed -9 x5 while publishing', ...t, ...a, recoverS });
    expect(t.lost).toBe(0);
    expect(t.duplicated).toBe(0);
    expect(a.duplicatedAlerts).toBe(0);
  });

  it('Mosquitto stopped mid-stream, then restarted: the outbox holds events until it is back', async () => {
    resetCarriers();
    const dir = join(root, 'broker-restart');
    const port = await freePort();
    const persistDir = join(dir, 'mosquitto');
    // as deploy/mosquitto/mosquitto.conf: persistence on, so queued events survive the restart
    const conf = {
      port,
      configExtra: `persistence true\npersistence_location ${persistDir}/\nautosave_interval 1`,
    };
    const { mkdirSync } = await import('node:fs');
    mkdirSync(persistDir, { recursive: true });
    let m = await startMosquitto(conf);
    brokers.push(m);
    const b = bridge(dir, 0, ['s3'], { broker: m.url });
    await b.waitFor(/connected|subscribed|cloud bridge running/, 30_000);
    await b.waitFor(/cloud bridge running/, 30_000);
    const d = daemon({ dir, sensorId: 's3', broker: m.url, source: `file:${track.path}`, drainTimeoutS: 90 });
    await eventually(
      () => storedIds(join(dir, 'data')).size > 0 || undefined,
      60_000,
      'a first stored event',
      200,
    );
    const downAt = Date.now();
    await m.stop();
    brokers.splice(brokers.indexOf(m), 1);
    await sleep(4000);
    m = await startMosquitto(conf);
    brokers.push(m);
    const restartedAt = Date.now();
    expect(await d.exited).toBe(0);
    const sent = d.confirmedIds();
    await eventually(
      () => sent.every((id) => storedIds(join(dir, 'data')).has(id)) || undefined,
      60_000,
      'all confirmed events stored',
      200,
    );
    const recoverS = (Date.now() - restartedAt) / 1000;
    await settleAlerts(join(dir, 'data'), new Set(sent));
    const t = tally(sent, storedIds(join(dir, 'data')));
    const a = alertTally(deliveredAlerts(twilio, smtp));
    record({
      scenario: 'Mosquitto (persistent) stopped 4 s mid-stream',
      ...t,
      ...a,
      recoverS,
      note: whileDown(sent, downAt, restartedAt),
    });
    expect(t.lost).toBe(0);
    expect(t.duplicated).toBe(0);
    expect(a.duplicatedAlerts).toBe(0);
  });

  it('SMTP and Twilio failing, then recovering: every alert delivered once, none lost', async () => {
    resetCarriers();
    const dir = join(root, 'carriers');
    const mqttPort = await freePort();
    twilio.respondWith(503, 500, 503, 'hang', 503, 500);
    smtp.rejectNext(6, 451);
    const failingFrom = Date.now();
    const b = bridge(dir, mqttPort, ['s4']);
    await b.waitFor(/cloud bridge running/, 30_000);
    const d = daemon({
      dir,
      sensorId: 's4',
      broker: `mqtt://127.0.0.1:${mqttPort}`,
      source: `file:${track.path}`,
    });
    expect(await d.exited).toBe(0);
    const sent = d.confirmedIds();
    const jobs = await settleAlerts(join(dir, 'data'), new Set(sent));
    const recoverS = (Date.now() - failingFrom) / 1000;
    const t = tally(sent, storedIds(join(dir, 'data')));
    const a = alertTally(deliveredAlerts(twilio, smtp));
    const failed = jobs.filter((j) => j.status === 'failed');
    record({
      scenario: 'SMTP 451 x6 + Twilio 5xx/hang x6',
      ...t,
      ...a,
      recoverS,
      ...(failed.length ? { note: `${failed.length} alert(s) marked failed: ${failed[0]!.last_error}` } : {}),
    });
    expect(t.lost).toBe(0);
    expect(a.duplicatedAlerts).toBe(0);
    // with 8 retries each, every alert got through after the carriers recovered
    expect(a.alertsSent).toBe(sent.length * 2);
    expect(twilio.requests.length).toBeGreaterThan(twilio.accepted().length);
  });

  it("the sensor's outbox full while the bridge is down: events are kept over the limit and all arrive", async () => {
    resetCarriers();
    const dir = join(root, 'outbox-full');
    const mqttPort = await freePort();
    const d = daemon({
      dir,
      sensorId: 's5',
      broker: `mqtt://127.0.0.1:${mqttPort}`,
      source: `file:${longTrack.path}`,
      outboxMaxRows: 10,
      drainTimeoutS: 120,
    });
    await d.waitFor(/waiting up to/, 120_000);
    const b = bridge(dir, mqttPort, ['s5']);
    const restartedAt = Date.now();
    await b.waitFor(/cloud bridge running/, 30_000);
    expect(await d.exited).toBe(0);
    const sent = d.confirmedIds();
    await eventually(
      () => sent.every((id) => storedIds(join(dir, 'data')).has(id)) || undefined,
      60_000,
      'all confirmed events stored',
      200,
    );
    const recoverS = (Date.now() - restartedAt) / 1000;
    await settleAlerts(join(dir, 'data'), new Set(sent));
    const t = tally(sent, storedIds(join(dir, 'data')));
    const a = alertTally(deliveredAlerts(twilio, smtp));
    record({ scenario: 'outbox full (maxRows 10), bridge down', ...t, ...a, recoverS });
    expect(t.sent).toBeGreaterThan(10);
    expect(t.lost).toBe(0);
    expect(t.duplicated).toBe(0);
    expect(a.duplicatedAlerts).toBe(0);
  });

  it.skipIf(!canMount)(
    "the sensor's disk is full (a real 1 MB tmpfs): events go out directly from memory, none lost",
    async () => {
      resetCarriers();
      const dir = join(root, 'disk-full');
      const sensorId = 's6';
      const disk = smallTmpfs(1024);
      try {
        const stateDir = join(dir, `state-${sensorId}`);
        mkdirSync(stateDir, { recursive: true });
        execFileSync('mount', ['--bind', disk.dir, stateDir]);
        try {
          disk.fill();
          const mqttPort = await freePort();
          const b = bridge(dir, mqttPort, [sensorId]);
          await b.waitFor(/cloud bridge running/, 30_000);
          const startedAt = Date.now();
          const d = daemon({
            dir,
            sensorId,
            broker: `mqtt://127.0.0.1:${mqttPort}`,
            source: `file:${track.path}`,
          });
          expect(await d.exited).toBe(0);
          const sent = d.confirmedIds();
          await eventually(
            () => sent.every((id) => storedIds(join(dir, 'data')).has(id)) || undefined,
            60_000,
            'all confirmed events stored',
            200,
          );
          const recoverS = (Date.now() - startedAt) / 1000;
          await settleAlerts(join(dir, 'data'), new Set(sent));
          const t = tally(sent, storedIds(join(dir, 'data')));
          const a = alertTally(deliveredAlerts(twilio, smtp));
          record({
            scenario: 'sensor disk full (1 MB tmpfs), bridge up',
            ...t,
            ...a,
            recoverS: null,
            note: `OUTBOX_WRITE_FAILED logged ${d.out.split('OUTBOX_WRITE_FAILED').length - 1}x; all ${sent.length} events published from memory in ${recoverS.toFixed(1)} s`,
          });
          expect(d.out).toContain('OUTBOX_WRITE_FAILED');
          expect(t.sent).toBeGreaterThan(0);
          expect(t.lost).toBe(0);
          expect(t.duplicated).toBe(0);
        } finally {
          execFileSync('umount', ['-l', stateDir]);
        }
      } finally {
        disk.unmount();
      }
    },
  );

  it('no secret (sensor password, Twilio token, SMTP password) appears in any bridge or daemon log', async () => {
    const { readFileSync, existsSync } = await import('node:fs');
    const files = logs.filter((f) => existsSync(f));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const s of SECRETS) expect(text.includes(s), `a secret in ${f}`).toBe(false);
    }
  });
});
