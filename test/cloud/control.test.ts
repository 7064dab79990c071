import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import type { CommandRecord } from '../../cloud/control/command-log.ts';
import { loadModelFile } from '../../core/model/load.ts';
import { DaemonApp } from '../../daemon/app.ts';
import { encodeCommand } from '../../protocol/codec.ts';
import { UlidFactory } from '../../protocol/event-id.ts';
import { type CommandMessage, PROTOCOL_VERSION } from '../../protocol/messages.ts';
import { commandTopic } from '../../protocol/topics.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from '../daemon/helpers.ts';
import { roomToneWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { BRIDGE_USER, type LogCapture, SENSOR_PASSWORD, sensorHash, startBridge } from './bridge-harness.ts';
import { apiLogin, commandAnswered } from './control-support.ts';

/*
 * The remote control plane end to end: a dashboard admin changes a sensor's detection settings
 * over HTTP, the bridge publishes the command (QoS 1) on the real embedded broker, the real
 * daemon validates, saves and applies it and answers through its outbox, and the audit list
 * shows who changed what and what the sensor said. Offline sensors get their commands from
 * their persistent session when they return.
 */

const ADMIN = { username: 'ops-admin', password: 'ops-admin-password' };
const VIEWER = { username: 'ops-viewer', password: 'ops-viewer-password' };
const SENSORS = ['hall-1', 'hall-2'];

let fixtures: { dir: string; remove: () => Promise<void> };
let modelPath: string;
let wav: string;
let bridge: CloudApp;
let bridgeLogs: LogCapture;
let brokerUrl: string;
let web: string;
let admin: { cookie: string; csrf: string };
let viewer: { cookie: string; csrf: string };

async function send(
  who: { cookie: string; csrf: string },
  sensorId: string,
  body: unknown,
): Promise<{ status: number; json: { command?: CommandRecord; error?: { code: string; message: string } } }> {
  const res = await fetch(`${web}/api/sensors/${sensorId}/commands`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: who.cookie, 'x-csrf-token': who.csrf },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as never };
}

async function audit(sensorId: string): Promise<CommandRecord[]> {
  const res = await fetch(`${web}/api/sensors/${sensorId}/commands`, { headers: { cookie: viewer.cookie } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { commands: CommandRecord[] }).commands;
}

const answered = (sensorId: string, commandId: string) => commandAnswered(audit, sensorId, commandId, 15_000);

beforeAll(async () => {
  fixtures = await tempDir('sw-control-');
  modelPath = await tinyModelFile(fixtures.dir);
  wav = await roomToneWav(join(fixtures.dir, 'room.wav'), 20);
  const hash = await sensorHash();
  ({ app: bridge, logs: bridgeLogs } = await startBridge(
    {
      dataDir: join(fixtures.dir, 'cloud'),
      mqtt: {
        port: 0,
        host: '127.0.0.1',
        sensors: SENSORS.map((sensorId) => ({ sensorId, passwordHash: hash })),
        username: BRIDGE_USER.username,
        password: BRIDGE_USER.password,
      },
      sensors: SENSORS.map((id) => ({ id, name: `Room ${id}` })),
      web: {
        port: 0,
        users: [
          { username: ADMIN.username, passwordHash: await hashPassword(ADMIN.password), role: 'admin' },
          { username: VIEWER.username, passwordHash: await hashPassword(VIEWER.password), role: 'viewer' },
        ],
        sessionSecret: 'test-session-secret-0123456789abcdef',
      },
    },
    { web: true },
  ));
  brokerUrl = `mqtt://127.0.0.1:${bridge.brokerPorts!.tcp}`;
  web = bridge.web!.url;
  admin = await apiLogin(web, ADMIN);
  viewer = await apiLogin(web, VIEWER);
});
afterAll(async () => {
  await bridge?.stop();
  await fixtures?.remove();
});

const teardown = new Teardown();
afterEach(() => teardown.run());

async function startSensor(sensorId: string, stateDir: string, extra: Record<string, unknown> = {}) {
  const logs = captureLogs();
  const app = new DaemonApp({
    config: daemonConfig({
      sensorId,
      stateDir,
      audio: { source: `file:${wav}` },
      detection: { modelPath },
      mqtt: { url: brokerUrl, username: sensorId, password: SENSOR_PASSWORD },
      ...extra,
    }),
    logger: logs.logger,
    loopFileSource: true,
  });
  teardown.add(() => app.stop());
  await app.start();
  await eventually(() => app.publisher.isConnected, 10_000, `${sensorId} connected`);
  return { app, logs };
}

describe('remote control: set-detection from the dashboard to a real daemon', () => {
  it('applies, saves, reports in the retained status and the audit list; survives a restart', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const modelDefaults = loadModelFile(modelPath);
    const { app } = await startSensor('hall-1', state.dir);
    // the status carries the settings in force before anything changed
    await eventually(() => bridge.registry.get('hall-1')?.detection ?? null, 10_000, 'detection in status');
    expect(bridge.registry.get('hall-1')!.detection).toMatchObject({
      threshold: modelDefaults.threshold,
      remote: [],
    });

    const sent = await send(admin, 'hall-1', {
      command: 'set-detection',
      detection: { threshold: 0.83, reportThreshold: null },
    });
    expect(sent.status).toBe(202);
    expect(sent.json.command).toMatchObject({ state: 'queued', issuedBy: ADMIN.username, result: null });
    const done = await answered('hall-1', sent.json.command!.commandId);
    expect(done).toMatchObject({
      state: 'applied',
      command: 'set-detection',
      issuedBy: ADMIN.username,
      detection: { threshold: 0.83, reportThreshold: null },
      result: { ok: true, detection: { threshold: 0.83, remote: ['threshold', 'reportThreshold'] } },
    });
    expect(app.detection.detector.options.threshold).toBe(0.83);
    await eventually(
      () => bridge.registry.get('hall-1')?.detection?.threshold === 0.83,
      10_000,
      'the retained status shows the new threshold',
    );
    const saved = JSON.parse(await readFile(join(state.dir, 'detection-overrides.json'), 'utf8'));
    expect(saved).toMatchObject({ overrides: { threshold: 0.83 }, issuedBy: ADMIN.username });

    // a restart keeps the remote settings (they take precedence over the config file)
    await app.stop();
    const again = await startSensor('hall-1', state.dir);
    expect(again.app.detection.detector.options.threshold).toBe(0.83);
    expect(again.app.effectiveDetection().remote).toEqual(['threshold', 'reportThreshold']);
    expect(again.logs.find(/remote detection settings in force/)).toHaveLength(1);

    // clearing: {} brings the config file / model defaults back
    const cleared = await send(admin, 'hall-1', { command: 'set-detection', detection: {} });
    const c = await answered('hall-1', cleared.json.command!.commandId);
    expect(c.result).toMatchObject({
      ok: true,
      detection: { threshold: modelDefaults.threshold, remote: [] },
    });
    expect(again.app.detection.detector.options.threshold).toBe(modelDefaults.threshold);
  });

  it('refuses what is out of bounds at the bridge, what does not fit on the sensor, and viewers', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const { app } = await startSensor('hall-1', state.dir);
    const before = app.detection.detector.options.threshold;

    const bad = await send(admin, 'hall-1', { command: 'set-detection', detection: { threshold: 1.5 } });
    expect(bad.status).toBe(400);
    expect(bad.json.error!.message).toMatch(/threshold/);
    const unknownKey = await send(admin, 'hall-1', { command: 'set-detection', detection: { thresh: 0.5 } });
    expect(unknownKey.status).toBe(400);
    const forbidden = await send(viewer, 'hall-1', { command: 'ping' });
    expect(forbidden.status).toBe(403);
    const nobody = await send(admin, 'nobody', { command: 'ping' });
    expect(nobody.status).toBe(404);

    // k 3 of the model's n: within the protocol's bounds, but not a valid rule on this sensor
    const n = app.effectiveDetection().n;
    const misfit = await send(admin, 'hall-1', { command: 'set-detection', detection: { k: n + 1 } });
    expect(misfit.status).toBe(202);
    const r = await answered('hall-1', misfit.json.command!.commandId);
    expect(r).toMatchObject({ state: 'refused', result: { ok: false, code: 'COMMAND_INVALID' } });
    expect(r.result!.message).toMatch(/k must be/);
    expect(app.detection.detector.options.threshold).toBe(before);
    expect(app.effectiveDetection().remote).toEqual([]);

    const ping = await send(admin, 'hall-1', { command: 'ping' });
    const p = await answered('hall-1', ping.json.command!.commandId);
    expect(p.result).toMatchObject({ ok: true, modelVersion: app.model.version });
  });

  it('a command to an offline sensor waits in its persistent session and applies when it returns', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const first = await startSensor('hall-2', state.dir);
    await first.app.stop();
    await eventually(() => bridge.registry.get('hall-2')?.status === 'offline', 10_000, 'hall-2 offline');

    const sent = await send(admin, 'hall-2', { command: 'set-detection', detection: { threshold: 0.77 } });
    expect(sent.json.command!.state).toBe('queued');
    // nothing on the sensor yet: the audit list says queued, not applied
    expect((await audit('hall-2')).find((c) => c.commandId === sent.json.command!.commandId)).toMatchObject({
      state: 'queued',
      result: null,
    });
    const back = await startSensor('hall-2', state.dir);
    const done = await answered('hall-2', sent.json.command!.commandId);
    expect(done.state).toBe('applied');
    expect(back.app.detection.detector.options.threshold).toBe(0.77);
  });

  it('a duplicate or replayed commandId applies once; an expired one is refused; a sensor cannot command another', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const { app } = await startSensor('hall-1', state.dir);
    const bridgeClient: MqttClient = await mqtt.connectAsync(brokerUrl, {
      username: BRIDGE_USER.username,
      password: BRIDGE_USER.password,
      reconnectPeriod: 0,
    });
    teardown.add(() => bridgeClient.endAsync(true));
    const ids = new UlidFactory();
    const command = (over: Partial<CommandMessage>): CommandMessage => ({
      v: PROTOCOL_VERSION,
      commandId: ids.next(Date.now()),
      sensorId: 'hall-1',
      command: 'set-detection',
      issuedAt: new Date().toISOString(),
      issuedBy: 'test',
      detection: { threshold: 0.61 },
      ...over,
    });
    const topic = commandTopic('screamwatch', 'hall-1', 'set-detection');
    const once = command({});
    await bridgeClient.publishAsync(topic, encodeCommand(once), { qos: 1 });
    await bridgeClient.publishAsync(topic, encodeCommand(once), { qos: 1 });
    await eventually(() => app.commands!.counts.duplicate === 1, 10_000, 'the duplicate ignored');
    expect(app.commands!.counts.applied).toBe(1);
    expect(app.detection.detector.options.threshold).toBe(0.61);

    // a replay after a restart is still known (commands-seen.json)
    await app.stop();
    const again = await startSensor('hall-1', state.dir);
    await bridgeClient.publishAsync(topic, encodeCommand({ ...once, detection: { threshold: 0.9 } }), {
      qos: 1,
    });
    await eventually(() => again.app.commands!.counts.duplicate === 1, 10_000, 'the replay ignored');
    expect(again.app.detection.detector.options.threshold).toBe(0.61);

    const old = command({
      issuedAt: new Date(Date.now() - 8 * 86_400_000).toISOString(),
      detection: { threshold: 0.95 },
    });
    await bridgeClient.publishAsync(topic, encodeCommand(old), { qos: 1 });
    await eventually(() => again.app.commands!.counts.refused === 1, 10_000, 'the expired command refused');
    expect(again.app.detection.detector.options.threshold).toBe(0.61);

    // hall-2 publishing a command to hall-1: the broker's ACL refuses it
    const other = await mqtt.connectAsync(brokerUrl, {
      username: 'hall-2',
      password: SENSOR_PASSWORD,
      reconnectPeriod: 0,
    });
    teardown.add(() => other.endAsync(true).catch(() => {}));
    // (aedes neither acknowledges nor forwards a refused publish: do not wait for its PUBACK)
    other.publish(topic, encodeCommand(command({ detection: { threshold: 0.99 } })), { qos: 1 }, () => {});
    await eventually(
      () => bridgeLogs.lines.filter((l) => /MQTT publish refused by ACL/.test(String(l.msg))).length > 0,
      10_000,
      'the ACL refusal',
    );

    // garbage on the commands topic is logged with a code, not applied
    await bridgeClient.publishAsync(topic, Buffer.from('{"v":1,"command":"set-detection"}'), { qos: 1 });
    await eventually(() => again.app.commands!.counts.invalid === 1, 10_000, 'the invalid command logged');
    expect(again.logs.find(/MQTT_PAYLOAD_INVALID/).length).toBeGreaterThanOrEqual(1);
    expect(again.app.commands!.counts).toMatchObject({ applied: 0, refused: 1 });
    expect(again.app.detection.detector.options.threshold).toBe(0.61);
  });

  it('reload re-reads the config file: detection applies at once, other changes are named', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const file = join(state.dir, 'daemon.json');
    const base = {
      sensorId: 'hall-1',
      stateDir: state.dir,
      audio: { source: `file:${wav}` },
      detection: { modelPath, threshold: 0.7 },
      mqtt: { url: brokerUrl, username: 'hall-1', password: SENSOR_PASSWORD },
    };
    await writeFile(file, JSON.stringify(base));
    const { loadDaemonConfig } = await import('../../daemon/config/load.ts');
    const app = new DaemonApp({
      config: loadDaemonConfig({ file, env: {} }),
      logger: captureLogs().logger,
      loopFileSource: true,
      reloadConfig: () => loadDaemonConfig({ file, env: {} }),
    });
    teardown.add(() => app.stop());
    await app.start();
    await eventually(() => app.publisher.isConnected, 10_000, 'connected');
    expect(app.detection.detector.options.threshold).toBe(0.7);
    await writeFile(
      file,
      JSON.stringify({ ...base, detection: { modelPath, threshold: 0.74 }, heartbeatIntervalS: 5 }),
    );
    const sent = await send(admin, 'hall-1', { command: 'reload' });
    const r = await answered('hall-1', sent.json.command!.commandId);
    expect(r.result).toMatchObject({ ok: true, detection: { threshold: 0.74 } });
    expect(r.result!.message).toMatch(/need a restart: heartbeatIntervalS/);
    expect(app.detection.detector.options.threshold).toBe(0.74);
  });
});
