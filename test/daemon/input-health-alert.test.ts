import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import { DaemonApp } from '../../daemon/app.ts';
import { StatusMessageSchema } from '../../protocol/messages.ts';
import { BRIDGE_USER, SENSOR_PASSWORD, sensorHash, startBridge } from '../cloud/bridge-harness.ts';
import { tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { useFakeArecord } from '../support/fake-arecord.ts';
import { mailText, type SmtpHarness, startSmtp } from '../support/smtp.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from './helpers.ts';

/** A 16 kHz mono 16-bit WAV from a sample generator (values in -1..1). */
async function pcmWav(path: string, seconds: number, gen: (i: number) => number): Promise<string> {
  const n = Math.round(seconds * 16_000);
  const data = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++)
    data.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(gen(i) * 32767))), i * 2);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVEfmt ', 8, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(16_000, 24);
  h.writeUInt32LE(32_000, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(data.length, 40);
  await writeFile(path, Buffer.concat([h, data]));
  return path;
}

const ADMIN = { username: 'ops', password: 'ops-password-123' };
const MAIL_TO = 'night-shift@example.org';
/** Short thresholds so the real-time path is testable in seconds. */
const HEALTH = {
  silentAfterS: 1.5,
  stuckAfterS: 1.5,
  clipAfterS: 1.5,
  clipShare: 0.05,
  silentFloorDbfs: -90,
  noDeviceAfterS: 0.5,
  recoverAfterS: 1,
};

let fixtures: { dir: string; remove: () => Promise<void> };
let modelPath: string;
const wavs: Record<string, string> = {};

beforeAll(async () => {
  fixtures = await tempDir('sw-health-');
  modelPath = await tinyModelFile(fixtures.dir);
  // long enough that the fake mic is still playing them when the test asserts
  wavs.silent = await pcmWav(join(fixtures.dir, 'zeros.wav'), 30, () => 0);
  wavs.stuck = await pcmWav(join(fixtures.dir, 'dc.wav'), 30, () => 0.3);
  // 200 Hz square wave, clipped at full scale
  wavs.clipping = await pcmWav(join(fixtures.dir, 'square.wav'), 30, (i) =>
    Math.floor(i / 40) % 2 ? 1.2 : -1.2,
  );
});
afterAll(() => fixtures.remove());

const teardown = new Teardown();
afterEach(() => teardown.run());

describe('a deaf microphone through the real capture path, the bridge, the fleet API and e-mail', () => {
  it('digital silence, a constant value and a clipped square wave: retained status, amber fleet entry, sensor-degraded alert', async () => {
    const smtp: SmtpHarness = await startSmtp();
    teardown.add(() => smtp.stop());
    const cloudDir = await tempDir('sw-health-cloud-');
    teardown.add(cloudDir.remove);
    const ids = { silent: 'hall-silent', stuck: 'hall-stuck', clipping: 'hall-clip' } as const;
    const hash = await sensorHash();
    const { app: bridge } = await startBridge(
      {
        dataDir: cloudDir.dir,
        mqtt: {
          port: 0,
          host: '127.0.0.1',
          sensors: Object.values(ids).map((sensorId) => ({ sensorId, passwordHash: hash })),
          username: BRIDGE_USER.username,
          password: BRIDGE_USER.password,
        },
        sensors: Object.values(ids).map((id) => ({ id, name: `Room ${id}` })),
        alerts: {
          policies: [
            { group: 'default', threshold: 0.5, cooldownS: 0, contacts: { sms: [], email: [MAIL_TO] } },
          ],
          smtp: {
            host: '127.0.0.1',
            port: smtp.port,
            secure: false,
            from: 'Screamwatch <alerts@example.org>',
          },
          retry: { maxRetries: 2, initialDelayMs: 100, maxDelayMs: 400, multiplier: 2 },
          timeoutMs: 2000,
        },
        web: {
          port: 0,
          users: [
            { username: ADMIN.username, passwordHash: await hashPassword(ADMIN.password), role: 'viewer' },
          ],
          sessionSecret: 'test-session-secret-0123456789abcdef',
        },
      },
      { web: true },
    );
    teardown.add(() => bridge.stop());
    const brokerUrl = `mqtt://127.0.0.1:${bridge.brokerPorts!.tcp}`;

    // subscribe as an operator tool would, to see the retained statuses
    const watcher = await mqtt.connectAsync(brokerUrl, {
      username: BRIDGE_USER.username,
      password: BRIDGE_USER.password,
      reconnectPeriod: 0,
    });
    teardown.add(() => watcher.endAsync(true));
    const statuses = new Map<string, ReturnType<typeof StatusMessageSchema.parse>>();
    watcher.on('message', (_t, payload) => {
      const m = StatusMessageSchema.parse(JSON.parse(payload.toString()));
      statuses.set(m.sensorId, m);
    });
    await watcher.subscribeAsync('screamwatch/sensors/+/status', { qos: 1 });

    const apps: Record<string, DaemonApp> = {};
    for (const [kind, sensorId] of Object.entries(ids)) {
      const state = await tempDir();
      teardown.add(state.remove);
      // the fake arecord reads its WAV from the environment when it is spawned (in start())
      const restore = useFakeArecord({ wav: wavs[kind]! });
      const app = new DaemonApp({
        config: daemonConfig({
          sensorId,
          stateDir: state.dir,
          audio: { source: 'alsa:plughw:CARD=Device,DEV=0' },
          detection: { modelPath },
          mqtt: { url: brokerUrl, username: sensorId, password: SENSOR_PASSWORD },
          health: HEALTH,
        }),
        logger: captureLogs().logger,
      });
      teardown.add(() => app.stop());
      await app.start();
      restore();
      apps[kind] = app;
    }

    for (const [kind, sensorId] of Object.entries(ids)) {
      const s = await eventually(
        () => (statuses.get(sensorId)?.health === kind ? statuses.get(sensorId) : null),
        15_000,
        `${sensorId} status health=${kind}`,
      );
      expect(s).toMatchObject({ state: 'online', health: kind });
      // since: when the condition began, not when it was reported (thresholds are 1.5 s)
      expect(Date.parse(s.timestamp) - Date.parse(s.since!)).toBeGreaterThanOrEqual(1400);
      expect(apps[kind]!.inputHealth.health).toBe(kind);
    }

    // the fleet API, signed in as a viewer
    const web = bridge.web!.url;
    const login = await fetch(`${web}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const fleet = (await (await fetch(`${web}/api/sensors`, { headers: { cookie } })).json()) as {
      sensors: { id: string; status: string; health: string; healthSince: string; degraded: boolean }[];
      counts: Record<string, number>;
    };
    expect(fleet.counts).toMatchObject({ online: 3, degraded: 3, offline: 0 });
    for (const [kind, sensorId] of Object.entries(ids)) {
      expect(fleet.sensors.find((x) => x.id === sensorId)).toMatchObject({
        status: 'online',
        health: kind,
        degraded: true,
        healthSince: statuses.get(sensorId)!.since,
      });
    }

    // one sensor-degraded e-mail per sensor, through the policy's contacts
    const mails = await smtp.waitFor((m) => m.length >= 3, 15_000);
    const texts = mails.map((m) => mailText(m.raw));
    for (const [kind, sensorId] of Object.entries(ids)) {
      const t = texts.find((x) => x.includes(`Sensor cannot hear (${kind}): Room ${sensorId}`));
      expect(t, `mail for ${sensorId}`).toBeDefined();
    }
    expect(mails.every((m) => m.to.includes(MAIL_TO))).toBe(true);
    const stored = await bridge.store.list({ sensorId: ids.silent });
    expect(stored.filter((e) => e.alertType === 'sensor-degraded')).toHaveLength(1);
    expect(stored[0]).toMatchObject({ isScream: false, alertType: 'sensor-degraded' });

    // heartbeats repeat the same episode (same health, same since): no second alert
    for (const app of Object.values(apps)) app.beat();
    await eventually(
      () => Object.values(apps).every((a) => a.outbox.depth === 0),
      5000,
      'heartbeats acknowledged',
    );
    await new Promise((r) => setTimeout(r, 300));
    expect((await bridge.store.list({})).filter((e) => e.alertType === 'sensor-degraded')).toHaveLength(3);
    expect(smtp.mails).toHaveLength(3);
  });
});

describe('a microphone missing at boot', () => {
  it('reports no-device in the retained status and recovers to ok when the device appears', async () => {
    const cloudDir = await tempDir('sw-health-cloud-');
    teardown.add(cloudDir.remove);
    const state = await tempDir();
    teardown.add(state.remove);
    const room = await pcmWav(
      join(fixtures.dir, 'room.wav'),
      20,
      (i) => 0.02 * Math.sin(i / 3) + 0.01 * Math.sin(i / 7.3),
    );
    teardown.add(useFakeArecord({ wav: room, missingDevices: ['plughw:CARD=Gone,DEV=0'] }));
    const { app: bridge } = await startBridge({
      dataDir: cloudDir.dir,
      mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true },
      sensors: [{ id: 'hall-1' }],
    });
    teardown.add(() => bridge.stop());
    const app = new DaemonApp({
      config: daemonConfig({
        stateDir: state.dir,
        audio: {
          source: 'alsa:plughw:CARD=Gone,DEV=0',
          retry: { initialDelayMs: 100, maxDelayMs: 200, multiplier: 2 },
        },
        detection: { modelPath },
        mqtt: { url: `mqtt://127.0.0.1:${bridge.brokerPorts!.tcp}` },
        health: HEALTH,
      }),
      logger: captureLogs().logger,
    });
    teardown.add(() => app.stop());
    await app.start();
    await eventually(
      () => bridge.registry.get('hall-1')?.health === 'no-device',
      10_000,
      'no-device at the bridge',
    );
    expect(bridge.registry.get('hall-1')).toMatchObject({ status: 'online', degraded: true });
    process.env.FAKE_ARECORD_MISSING = ''; // the mic is plugged in
    await eventually(() => bridge.registry.get('hall-1')?.health === 'ok', 10_000, 'ok at the bridge');
    expect(bridge.registry.get('hall-1')?.degraded).toBe(false);
  });
});
