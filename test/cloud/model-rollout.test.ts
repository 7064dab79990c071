import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import type { CommandRecord } from '../../cloud/control/command-log.ts';
import type { ModelEntry } from '../../cloud/control/model-library.ts';
import type { Rollout } from '../../cloud/control/model-rollout.ts';
import { DaemonApp } from '../../daemon/app.ts';
import type { ModelState } from '../../daemon/control/model-updater.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from '../daemon/helpers.ts';
import { roomToneWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { BRIDGE_USER, SENSOR_PASSWORD, sensorHash, startBridge } from './bridge-harness.ts';
import { apiLogin, commandAnswered } from './control-support.ts';

/*
 * Model rollout end to end: an admin uploads a model on the dashboard, rolls it to sensors in
 * batches; the bridge sends set-model with a signed download link over the real embedded
 * broker; the real daemon downloads it over HTTP from the bridge, checks size, hash, loads and
 * self-tests it, swaps it in while running and reports it in its answer and status. A restart
 * within control.modelTrialS goes back to the previous model.
 */

const ADMIN = { username: 'ops-admin', password: 'ops-admin-password' };
const VIEWER = { username: 'ops-viewer', password: 'ops-viewer-password' };
const SENSORS = ['hall-1', 'hall-2', 'hall-3'];
const URL_SECRET = 'test-model-url-secret-0123456789';

let fixtures: { dir: string; remove: () => Promise<void> };
let modelV1: string;
let v2Bytes: Buffer;
let wav: string;
let bridge: CloudApp;
let brokerUrl: string;
let web: string;
let admin: { cookie: string; csrf: string };
let viewer: { cookie: string; csrf: string };

async function upload(who: { cookie: string; csrf: string }, bytes: Buffer | string) {
  const form = new FormData();
  form.append('file', new Blob([typeof bytes === 'string' ? bytes : new Uint8Array(bytes)]), 'model.json');
  const res = await fetch(`${web}/api/models`, {
    method: 'POST',
    headers: { cookie: who.cookie, 'x-csrf-token': who.csrf },
    body: form,
  });
  return {
    status: res.status,
    json: (await res.json()) as {
      model?: ModelEntry;
      created?: boolean;
      error?: { code: string; message: string };
    },
  };
}

async function api<T>(path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${web}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      cookie: admin.cookie,
      'x-csrf-token': admin.csrf,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as T };
}

async function audit(sensorId: string): Promise<CommandRecord[]> {
  return (await api<{ commands: CommandRecord[] }>(`/api/sensors/${sensorId}/commands`)).json.commands;
}

const answered = (sensorId: string, commandId: string) => commandAnswered(audit, sensorId, commandId, 20_000);

const finished = (rolloutId: string) =>
  eventually(
    async () => {
      const r = (await api<{ rollout: Rollout }>(`/api/rollouts/${rolloutId}`)).json.rollout;
      return r.state !== 'running' ? r : null;
    },
    30_000,
    `rollout ${rolloutId} to end`,
  );

beforeAll(async () => {
  fixtures = await tempDir('sw-rollout-');
  modelV1 = await tinyModelFile(fixtures.dir);
  // a second version: same forest, other defaults and version (a different file and sha256)
  const v1 = JSON.parse(await readFile(modelV1, 'utf8'));
  v2Bytes = Buffer.from(JSON.stringify({ ...v1, version: 'test-tiny-2', threshold: 0.55 }));
  wav = await roomToneWav(join(fixtures.dir, 'room.wav'), 20);
  const hash = await sensorHash();
  ({ app: bridge } = await startBridge(
    {
      dataDir: join(fixtures.dir, 'cloud'),
      modelPath: modelV1,
      mqtt: {
        port: 0,
        host: '127.0.0.1',
        sensors: SENSORS.map((sensorId) => ({ sensorId, passwordHash: hash })),
        username: BRIDGE_USER.username,
        password: BRIDGE_USER.password,
      },
      sensors: SENSORS.map((id) => ({ id, name: `Room ${id}`, group: 'ward-a' })),
      web: {
        port: 0,
        users: [
          { username: ADMIN.username, passwordHash: await hashPassword(ADMIN.password), role: 'admin' },
          { username: VIEWER.username, passwordHash: await hashPassword(VIEWER.password), role: 'viewer' },
        ],
        sessionSecret: 'test-session-secret-0123456789abcdef',
      },
      models: { urlSecret: URL_SECRET, maxUploadBytes: 4 * 1024 * 1024 },
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

async function startSensor(sensorId: string, stateDir: string) {
  const logs = captureLogs();
  const app = new DaemonApp({
    config: daemonConfig({
      sensorId,
      stateDir,
      audio: { source: `file:${wav}` },
      detection: { modelPath: modelV1 },
      mqtt: { url: brokerUrl, username: sensorId, password: SENSOR_PASSWORD },
    }),
    logger: logs.logger,
    loopFileSource: true,
  });
  teardown.add(() => app.stop());
  await app.start();
  await eventually(() => app.publisher.isConnected, 10_000, `${sensorId} connected`);
  await eventually(
    () => bridge.registry.get(sensorId)?.status === 'online' && bridge.registry.get(sensorId)?.modelVersion,
    10_000,
    `${sensorId} online in the registry`,
  );
  return { app, logs };
}

let v2: ModelEntry;

describe('model rollout: upload, signed download, swap on a real daemon, rollback', () => {
  it('uploads a model (admin only, validated, once per file)', async () => {
    const listed = await api<{ models: ModelEntry[] }>('/api/models');
    expect(listed.json.models).toEqual([
      expect.objectContaining({ version: 'test-tiny-1', source: 'shipped' }),
    ]);

    expect((await upload(viewer, v2Bytes)).status).toBe(403);
    const up = await upload(admin, v2Bytes);
    expect(up.status).toBe(201);
    expect(up.json.model).toMatchObject({
      version: 'test-tiny-2',
      size: v2Bytes.byteLength,
      uploadedBy: ADMIN.username,
    });
    v2 = up.json.model!;
    expect(existsSync(join(fixtures.dir, 'cloud', 'models', `${v2.sha256}.json`))).toBe(true);
    const again = await upload(admin, v2Bytes);
    expect(again).toMatchObject({ status: 200, json: { created: false } });

    const junk = await upload(admin, '{"format":"nope"}');
    expect(junk.status).toBe(422);
    expect(junk.json.error!.code).toBe('MODEL_UPLOAD_INVALID');
    const v1 = JSON.parse(await readFile(modelV1, 'utf8'));
    const otherFeatures = await upload(admin, JSON.stringify({ ...v1, version: 'x', featureSet: 'other/1' }));
    expect(otherFeatures.status).toBe(422);
    expect(otherFeatures.json.error!.message).toMatch(/MODEL_FEATURES_MISMATCH/);
    const tooBig = await upload(admin, Buffer.alloc(4 * 1024 * 1024 + 1, 32));
    expect(tooBig.status).toBe(413);
    expect((await api<{ models: ModelEntry[] }>('/api/models')).json.models).toHaveLength(2);
  });

  it('the download needs a valid signed link: unsigned, wrong or expired 403, unknown 404', async () => {
    const ref = bridge.models.ref(v2.sha256, web);
    const ok = await fetch(ref.url);
    expect(ok.status).toBe(200);
    expect(Buffer.from(await ok.arrayBuffer()).equals(v2Bytes)).toBe(true);
    const bare = await fetch(`${web}/model-files/${v2.sha256}`);
    expect(bare.status).toBe(403);
    expect(((await bare.json()) as { error: { code: string } }).error.code).toBe('MODEL_URL_INVALID');
    expect((await fetch(ref.url.replace(/sig=./, 'sig=A'))).status).toBe(403);
    const sign = (sha: string, exp: number) =>
      createHmac('sha256', URL_SECRET).update(`${sha}.${exp}`).digest('base64url');
    const past = Math.floor(Date.now() / 1000) - 10;
    expect(
      (await fetch(`${web}/model-files/${v2.sha256}?exp=${past}&sig=${sign(v2.sha256, past)}`)).status,
    ).toBe(403);
    const unknown = 'a'.repeat(64);
    const exp = Math.floor(Date.now() / 1000) + 60;
    expect((await fetch(`${web}/model-files/${unknown}?exp=${exp}&sig=${sign(unknown, exp)}`)).status).toBe(
      404,
    );
  });

  it('rolls a model to a sensor: downloaded, verified, swapped live, reported; a restart in the trial rolls back', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const { app } = await startSensor('hall-1', state.dir);
    expect(app.model.version).toBe('test-tiny-1');

    const started = await api<{ rollout: Rollout }>(`/api/models/${v2.sha256}/rollout`, {
      sensorIds: ['hall-1'],
    });
    expect(started.status).toBe(202);
    const done = await finished(started.json.rollout.rolloutId);
    expect(done).toMatchObject({ state: 'done', sensors: [{ sensorId: 'hall-1', state: 'upgraded' }] });
    // honest: upgraded means the sensor said ok and its status reports the version
    expect(bridge.registry.get('hall-1')!.modelVersion).toBe('test-tiny-2');
    const record = (await audit('hall-1')).find((c) => c.commandId === done.sensors[0]!.commandId)!;
    expect(record).toMatchObject({
      state: 'applied',
      command: 'set-model',
      issuedBy: ADMIN.username,
      model: { sha256: v2.sha256, version: 'test-tiny-2' },
      result: { ok: true, modelVersion: 'test-tiny-2', detection: { threshold: 0.55 } },
    });
    // swapped without a restart: the running detector scores with the new model
    expect(app.detection.detector.model.version).toBe('test-tiny-2');
    expect(app.detection.detector.options.threshold).toBe(0.55);
    const files = JSON.parse(await readFile(join(state.dir, 'model-state.json'), 'utf8')) as ModelState;
    expect(files).toMatchObject({
      current: { version: 'test-tiny-2', sha256: v2.sha256 },
      previous: { version: 'test-tiny-1' },
      trial: 'running',
    });
    expect(existsSync(join(state.dir, 'models', 'test-tiny-2.json'))).toBe(true);
    expect(existsSync(join(state.dir, 'models', 'test-tiny-1.json'))).toBe(true);
    await eventually(
      async () => {
        app.beat();
        return bridge.registry.get('hall-1')?.modelVersion === 'test-tiny-2';
      },
      10_000,
      'the heartbeat reports the new version',
    );

    // "crash loop": stopped and started again within control.modelTrialS of the swap
    await app.stop();
    const again = await startSensor('hall-1', state.dir);
    expect(again.app.model.version).toBe('test-tiny-1');
    expect(again.logs.find(/MODEL_ROLLED_BACK/)).toHaveLength(1);
    await eventually(
      () => bridge.registry.get('hall-1')?.modelRollback?.from === 'test-tiny-2',
      10_000,
      'the status reports the rollback',
    );
    expect(bridge.registry.get('hall-1')).toMatchObject({
      modelVersion: 'test-tiny-1',
      modelRollback: { from: 'test-tiny-2', to: 'test-tiny-1', reason: expect.stringMatching(/modelTrialS/) },
    });
    const ping = await bridge.control.send('hall-1', { command: 'ping' }, 'test');
    const pong = await answered('hall-1', ping.commandId);
    expect(pong.result).toMatchObject({ ok: true, modelVersion: 'test-tiny-1' });
    expect(pong.result!.message).toMatch(/rolled back to test-tiny-1/);

    // a third start does not roll back again: the failed model is out of the state
    await again.app.stop();
    const third = await startSensor('hall-1', state.dir);
    expect(third.app.model.version).toBe('test-tiny-1');
    expect(third.logs.find(/MODEL_ROLLED_BACK/)).toHaveLength(0);
  });

  it('refuses a wrong hash, an oversized download and another feature set: the old model keeps running', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const { app } = await startSensor('hall-1', state.dir);
    const ref = bridge.models.ref(v2.sha256, web);
    const refused = async (model: typeof ref, code: string) => {
      const sent = await bridge.control.send('hall-1', { command: 'set-model', model }, 'test');
      const r = await answered('hall-1', sent.commandId);
      expect(r).toMatchObject({ state: 'refused', result: { ok: false, code } });
      expect(app.model.version).toBe('test-tiny-1');
      expect(app.detection.detector.model.version).toBe('test-tiny-1');
      expect(existsSync(join(state.dir, 'model-state.json'))).toBe(false);
      return r;
    };
    const hash = await refused({ ...ref, sha256: '0'.repeat(64) }, 'MODEL_HASH_MISMATCH');
    expect(hash.result!.message).toMatch(/nothing changed/);
    await refused({ ...ref, size: ref.size - 1 }, 'MODEL_TOO_LARGE');
    await refused({ ...ref, featureSet: 'screamwatch-features/9' }, 'MODEL_FEATURES_MISMATCH');
    await refused({ ...ref, url: `${web}/model-files/${v2.sha256}` }, 'MODEL_DOWNLOAD_FAILED');
    expect(bridge.registry.get('hall-1')!.modelVersion).toBe('test-tiny-1');
  });

  it('a batch rollout (batch size 1) stops at the first sensor that fails; the next batch is not sent', async () => {
    const s1 = await tempDir();
    const s3 = await tempDir();
    teardown.add(s1.remove);
    teardown.add(s3.remove);
    const one = await startSensor('hall-1', s1.dir);
    const three = await startSensor('hall-3', s3.dir);
    // hall-2 is configured in the group but never connected
    const started = await api<{ rollout: Rollout }>(`/api/models/${v2.sha256}/rollout`, {
      group: 'ward-a',
      batchSize: 1,
    });
    expect(started.status).toBe(202);
    expect(started.json.rollout.sensors.map((s) => s.sensorId)).toEqual(['hall-1', 'hall-2', 'hall-3']);
    const busy = await api<{ error: { code: string } }>(`/api/models/${v2.sha256}/rollout`, { all: true });
    expect(busy.status).toBe(409);
    const done = await finished(started.json.rollout.rolloutId);
    expect(done.state).toBe('failed');
    expect(done.sensors).toMatchObject([
      { sensorId: 'hall-1', state: 'upgraded' },
      { sensorId: 'hall-2', state: 'failed', code: 'ROLLOUT_SENSOR_OFFLINE' },
      { sensorId: 'hall-3', state: 'skipped', commandId: null },
    ]);
    expect(one.app.model.version).toBe('test-tiny-2');
    expect(three.app.model.version).toBe('test-tiny-1');
    expect((await audit('hall-3')).filter((c) => c.command === 'set-model')).toHaveLength(0);
    expect((await api<{ rollouts: Rollout[] }>('/api/rollouts')).json.rollouts[0]!.rolloutId).toBe(
      started.json.rollout.rolloutId,
    );

    const bad = await api<{ error: { code: string } }>(`/api/models/${v2.sha256}/rollout`, {
      group: 'ward-a',
      all: true,
    });
    expect(bad.status).toBe(400);
    const unknown = await api<{ error: { code: string } }>(`/api/models/${'b'.repeat(64)}/rollout`, {
      all: true,
    });
    expect(unknown).toMatchObject({ status: 404, json: { error: { code: 'MODEL_UNKNOWN' } } });
  });
});
