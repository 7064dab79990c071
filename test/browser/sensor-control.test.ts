import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import { DaemonApp } from '../../daemon/app.ts';
import { SENSOR_PASSWORD, sensorHash, startBridge } from '../cloud/bridge-harness.ts';
import { ADMIN, pitchModel, tempDir, VIEWER } from '../cloud/web/support.ts';
import { captureLogs, daemonConfig } from '../daemon/helpers.ts';
import { roomToneWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { launchChromium, screenshot, signIn, watchErrors } from './support.ts';

// A sensor page as an admin and a viewer use it, against the real bridge, broker and daemon:
// the settings the sensor reports, a remote threshold change that the page calls applied only
// once the sensor answered, and the audit list of who changed what.
describe('sensor page: detection settings changed remotely', () => {
  const dir = tempDir('sw-sensor-control-');
  let app: CloudApp;
  let daemon: DaemonApp;
  let browser: Browser;
  let admin: Page;
  let viewer: Page;
  let errors: string[];

  beforeAll(async () => {
    const webModel = join(dir.dir, 'model.json');
    writeFileSync(webModel, JSON.stringify(pitchModel().toJSON()));
    ({ app } = await startBridge(
      {
        dataDir: join(dir.dir, 'cloud'),
        modelPath: webModel,
        mqtt: {
          host: '127.0.0.1',
          port: 0,
          sensors: [{ sensorId: 'hall-1', passwordHash: await sensorHash() }],
        },
        sensors: [{ id: 'hall-1', name: 'Main hall', room: 'Ground floor' }],
        web: {
          host: '127.0.0.1',
          port: 0,
          users: [
            { username: ADMIN.username, passwordHash: await hashPassword(ADMIN.password), role: 'admin' },
            { username: VIEWER.username, passwordHash: await hashPassword(VIEWER.password), role: 'viewer' },
          ],
          sessionSecret: 'sensor-control-test-secret-0123456789',
          tileUrl: 'http://127.0.0.1:9/{z}/{x}/{y}.png',
        },
      },
      { web: true },
    ));
    const wav = await roomToneWav(join(dir.dir, 'room.wav'), 20);
    daemon = new DaemonApp({
      config: daemonConfig({
        sensorId: 'hall-1',
        stateDir: join(dir.dir, 'sensor'),
        audio: { source: `file:${wav}` },
        detection: { modelPath: await tinyModelFile(dir.dir) },
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
    await eventually(() => app.registry.get('hall-1')?.detection ?? null, 10_000, 'settings reported');
    browser = await launchChromium();
    admin = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    errors = watchErrors(admin);
    await signIn(admin, app.web!.url, ADMIN.username, ADMIN.password);
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    viewer = await ctx.newPage();
    await signIn(viewer, app.web!.url, VIEWER.username, VIEWER.password);
  });

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
    await app?.stop();
    dir.remove();
  });

  it('shows what the sensor runs with; an admin change is "applied" only after the sensor answered', async () => {
    const threshold = daemon.effectiveDetection().threshold;
    await admin.goto(`${app.web!.url}/sensors/hall-1`);
    const row = admin.locator('#settings-table tr[data-key="threshold"]');
    await row.waitFor({ timeout: 5000 });
    expect(await row.innerText()).toContain(String(threshold));
    expect(await row.innerText()).toContain('config');
    await screenshot(admin, 'sensor-settings-before');

    await admin.fill('#settings-form input[name="threshold"]', '0.86');
    await admin.click('#settings-apply');
    const status = admin.locator('#command-status');
    await eventually(async () => /Applied by the sensor/.test(await status.innerText()), 10_000, 'applied');
    expect(daemon.detection.detector.options.threshold).toBe(0.86);
    // the table follows the sensor's retained status, live
    await eventually(async () => (await row.innerText()).includes('0.86'), 10_000, 'table shows 0.86');
    expect(await row.innerText()).toContain('remote');
    const audit = admin.locator('#audit-body tr').first();
    expect(await audit.innerText()).toContain(ADMIN.username);
    expect(await audit.innerText()).toContain('threshold 0.86');
    expect(await audit.getAttribute('data-state')).toBe('applied');
    await screenshot(admin, 'sensor-settings-applied');
    expect(errors).toEqual([]);
  });

  it('a refused change says so, with the sensor’s reason; the settings stay', async () => {
    const n = daemon.effectiveDetection().n;
    await admin.fill('#settings-form input[name="k"]', String(n + 1));
    await admin.click('#settings-apply');
    const status = admin.locator('#command-status');
    await eventually(async () => /Refused by the sensor/.test(await status.innerText()), 10_000, 'refused');
    expect(await status.innerText()).toMatch(/k must be/);
    expect(daemon.detection.detector.options.threshold).toBe(0.86);
    await screenshot(admin, 'sensor-settings-refused');
  });

  it('a command to an offline sensor is shown as queued, never as applied', async () => {
    await daemon.publisher.stop();
    await eventually(() => app.registry.get('hall-1')?.status === 'offline', 10_000, 'offline');
    await admin.reload();
    await admin.locator('#settings-form').waitFor();
    await admin.click('#settings-clear');
    const status = admin.locator('#command-status');
    await eventually(
      async () => /Queued: the sensor is offline/.test(await status.innerText()),
      10_000,
      'queued',
    );
    await screenshot(admin, 'sensor-settings-queued');
    await daemon.publisher.start();
    await eventually(
      async () => /Applied by the sensor/.test(await status.innerText()),
      15_000,
      'applied later',
    );
  });

  it('a viewer sees the settings and the changes, without the form (phone)', async () => {
    await viewer.goto(`${app.web!.url}/sensors/hall-1`);
    await viewer.locator('#settings-table').waitFor({ timeout: 5000 });
    await eventually(async () => (await viewer.locator('#audit-body tr').count()) >= 3, 5000, 'audit rows');
    expect(await viewer.locator('#settings-form').count()).toBe(0);
    await viewer.locator('#detection-settings').scrollIntoViewIfNeeded();
    await screenshot(viewer, 'sensor-settings-viewer-phone');
  });
});
