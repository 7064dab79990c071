import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import type { Rollout } from '../../cloud/control/model-rollout.ts';
import { DaemonApp } from '../../daemon/app.ts';
import { captureLogs, daemonConfig, tempDir } from '../daemon/helpers.ts';
import { roomToneWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { type MosquittoHarness, startMosquitto, writePasswordFile } from '../support/mosquitto.ts';
import { startBridge } from './bridge-harness.ts';

/*
 * The same rollout over Debian's Mosquitto with the deployed ACL: the bridge publishes
 * set-model as the bridge account, the sensor answers on its own command-results topic.
 */

const ACL = fileURLToPath(new URL('../../deploy/mosquitto/screamwatch.acl', import.meta.url));
const USERS = { 'screamwatch-bridge': 'bridge-pw-123', 'hall-1': 'hall-pw-123' };
const ADMIN = { username: 'ops-admin', password: 'ops-admin-password' };

/**
 * The deployed ACL, with the control plane's two lines added when this checkout's copy does
 * not have them yet (they are on main: commands from the bridge only, answers from the sensor).
 */
async function controlAcl(path: string): Promise<string> {
  let acl = await readFile(ACL, 'utf8');
  if (!acl.includes('topic write screamwatch/sensors/+/commands/#'))
    acl = acl.replace(
      'topic read screamwatch/sensors/#\n',
      'topic read screamwatch/sensors/#\ntopic write screamwatch/sensors/+/commands/#\n',
    );
  if (!acl.includes('pattern write screamwatch/sensors/%u/command-results'))
    acl += '\npattern write screamwatch/sensors/%u/command-results\n';
  await writeFile(path, acl);
  return path;
}

describe('model rollout over Mosquitto', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let mosquitto: MosquittoHarness;
  let bridge: CloudApp;
  let sensor: DaemonApp | null = null;

  beforeAll(async () => {
    dir = await tempDir('sw-rollout-mosq-');
    const passwordFile = await writePasswordFile(join(dir.dir, 'passwd'), USERS);
    mosquitto = await startMosquitto({ passwordFile, aclFile: await controlAcl(join(dir.dir, 'acl')) });
    ({ app: bridge } = await startBridge(
      {
        dataDir: join(dir.dir, 'cloud'),
        mqtt: {
          broker: mosquitto.url,
          username: 'screamwatch-bridge',
          password: USERS['screamwatch-bridge'],
          clientId: 'bridge-rollout',
        },
        sensors: [{ id: 'hall-1', name: 'Hall' }],
        web: {
          port: 0,
          users: [
            { username: ADMIN.username, passwordHash: await hashPassword(ADMIN.password), role: 'admin' },
          ],
          sessionSecret: 'test-session-secret-0123456789abcdef',
        },
        alerts: { policies: [{ group: 'default', cooldownS: 0, contacts: { sms: [], email: [] } }] },
      },
      { web: true },
    ));
  });

  afterAll(async () => {
    await sensor?.stop();
    await bridge?.stop();
    await mosquitto?.stop();
    await dir?.remove();
  });

  it('uploads, rolls out to the sensor, which swaps and reports the version', async () => {
    const modelV1 = await tinyModelFile(dir.dir);
    const wav = await roomToneWav(join(dir.dir, 'room.wav'), 10);
    const v1 = JSON.parse(await readFile(modelV1, 'utf8'));
    const web = bridge.web!.url;
    const res = await fetch(`${web}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    const { csrfToken } = (await res.json()) as { csrfToken: string };
    const form = new FormData();
    form.append('file', new Blob([JSON.stringify({ ...v1, version: 'test-tiny-mq' })]), 'model.json');
    const up = await fetch(`${web}/api/models`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': csrfToken },
      body: form,
    });
    expect(up.status).toBe(201);
    const { model } = (await up.json()) as { model: { sha256: string } };

    const logs = captureLogs();
    sensor = new DaemonApp({
      config: daemonConfig({
        sensorId: 'hall-1',
        stateDir: join(dir.dir, 'state'),
        audio: { source: `file:${wav}` },
        detection: { modelPath: modelV1 },
        mqtt: { url: mosquitto.url, username: 'hall-1', password: USERS['hall-1'] },
      }),
      logger: logs.logger,
      loopFileSource: true,
    });
    await sensor.start();
    await eventually(
      () => bridge.registry.get('hall-1')?.modelVersion === 'test-tiny-1',
      15_000,
      'hall-1 online with its model',
    );
    const started = await fetch(`${web}/api/models/${model.sha256}/rollout`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' },
      body: JSON.stringify({ sensorIds: ['hall-1'], timeoutS: 30 }),
    });
    expect(started.status).toBe(202);
    const { rollout } = (await started.json()) as { rollout: Rollout };
    const done = await eventually(
      async () => {
        const r = (await (
          await fetch(`${web}/api/rollouts/${rollout.rolloutId}`, { headers: { cookie } })
        ).json()) as {
          rollout: Rollout;
        };
        return r.rollout.state !== 'running' ? r.rollout : null;
      },
      40_000,
      'the rollout to end',
    );
    expect(done).toMatchObject({ state: 'done', sensors: [{ sensorId: 'hall-1', state: 'upgraded' }] });
    expect(sensor.model.version).toBe('test-tiny-mq');
    expect(bridge.registry.get('hall-1')!.modelVersion).toBe('test-tiny-mq');
  });
});
