import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import { DaemonApp } from '../../daemon/app.ts';
import { SENSOR_PASSWORD, sensorHash, startBridge } from '../cloud/bridge-harness.ts';
import { ADMIN, tempDir, VIEWER } from '../cloud/web/support.ts';
import { captureLogs, daemonConfig } from '../daemon/helpers.ts';
import { roomToneWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { launchChromium, screenshot, signIn, watchErrors } from './support.ts';

// The Models page as an admin uses it against the real bridge, broker and daemon: upload a
// model, roll it out to a sensor, and see it upgraded only once the sensor runs it.
describe('Models page: upload and roll out a model', () => {
  const dir = tempDir('sw-models-page-');
  let app: CloudApp;
  let daemon: DaemonApp;
  let browser: Browser;
  let admin: Page;
  let errors: string[];
  let v2Path: string;

  beforeAll(async () => {
    const v1 = await tinyModelFile(dir.dir);
    v2Path = join(dir.dir, 'model-v2.json');
    writeFileSync(
      v2Path,
      JSON.stringify({ ...JSON.parse(readFileSync(v1, 'utf8')), version: 'test-tiny-2' }),
    );
    ({ app } = await startBridge(
      {
        dataDir: join(dir.dir, 'cloud'),
        modelPath: v1,
        mqtt: {
          host: '127.0.0.1',
          port: 0,
          sensors: [{ sensorId: 'hall-1', passwordHash: await sensorHash() }],
        },
        sensors: [{ id: 'hall-1', name: 'Main hall' }],
        web: {
          host: '127.0.0.1',
          port: 0,
          users: [
            { username: ADMIN.username, passwordHash: await hashPassword(ADMIN.password), role: 'admin' },
            { username: VIEWER.username, passwordHash: await hashPassword(VIEWER.password), role: 'viewer' },
          ],
          sessionSecret: 'models-page-test-secret-0123456789',
          tileUrl: 'http://127.0.0.1:9/{z}/{x}/{y}.png',
        },
      },
      { web: true },
    ));
    daemon = new DaemonApp({
      config: daemonConfig({
        sensorId: 'hall-1',
        stateDir: join(dir.dir, 'sensor'),
        audio: { source: `file:${await roomToneWav(join(dir.dir, 'room.wav'), 20)}` },
        detection: { modelPath: v1 },
        mqtt: {
          url: `mqtt://127.0.0.1:${app.brokerPorts!.tcp}`,
          username: 'hall-1',
          password: SENSOR_PASSWORD,
        },
      }),
      logger: captureLogs().logger,
      loopFileSource: true,
    });
    await daemon.start();
    await eventually(
      () => app.registry.get('hall-1')?.modelVersion === 'test-tiny-1',
      10_000,
      'sensor online',
    );
    browser = await launchChromium();
    admin = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    errors = watchErrors(admin);
    await signIn(admin, app.web!.url, ADMIN.username, ADMIN.password);
  });

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
    await app?.stop();
    dir.remove();
  });

  it('uploads a model, rolls it out to one sensor, and shows it upgraded once the sensor runs it', async () => {
    await admin.goto(`${app.web!.url}/models`);
    const v1Row = admin.locator('#models-list tr', { hasText: 'test-tiny-1' });
    await v1Row.waitFor({ timeout: 5000 });
    expect(await v1Row.innerText()).toContain('shipped with the bridge');
    await admin.setInputFiles('#model-upload input[type=file]', v2Path);
    await admin.click('#model-upload button[type=submit]');
    const v2Row = admin.locator('#models-list tr', { hasText: 'test-tiny-2' });
    await v2Row.waitFor({ timeout: 10_000 });
    expect(await v2Row.innerText()).toContain(ADMIN.username);
    await v2Row.locator('select[name=target]').selectOption('sensor:hall-1');
    await v2Row.locator('button[type=submit]').click();
    const done = admin.locator('#rollouts-list li[data-state="upgraded"]', { hasText: 'hall-1' });
    await done.waitFor({ timeout: 20_000 });
    expect(daemon.model.version).toBe('test-tiny-2');
    await eventually(
      async () => /· done ·/.test(await admin.locator('#rollouts-list h3').first().innerText()),
      10_000,
      'rollout done',
    );
    await screenshot(admin, 'models-rollout-done');
    expect(errors).toEqual([]);
  });

  it('a viewer sees the models and rollouts without the forms', async () => {
    const viewer = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await signIn(viewer, app.web!.url, VIEWER.username, VIEWER.password);
    await viewer.goto(`${app.web!.url}/models`);
    await viewer.locator('#models-list tr', { hasText: 'test-tiny-2' }).waitFor({ timeout: 5000 });
    expect(await viewer.locator('#model-upload').count()).toBe(0);
    expect(await viewer.locator('.rollout-form').count()).toBe(0);
    await screenshot(viewer, 'models-viewer-phone');
    await viewer.close();
  });
});
