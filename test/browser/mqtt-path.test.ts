import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import {
  connectSensor,
  newEvent,
  publishEvent,
  SENSOR_PASSWORD,
  sensorHash,
  startBridge,
} from '../cloud/bridge-harness.ts';
import { ADMIN, pitchModel, tempDir } from '../cloud/web/support.ts';
import { launchChromium, screenshot, signIn, watchErrors } from './support.ts';

// The whole path a user relies on: a sensor publishes over MQTT to the bridge's embedded
// broker, the bridge stores it, and the dashboard the bridge serves shows it.
describe('event published over MQTT appears on the dashboard', () => {
  const dir = tempDir('sw-mqtt-web-');
  let app: CloudApp;
  let sensor: MqttClient;
  let browser: Browser;
  let page: Page;
  let errors: string[];

  beforeAll(async () => {
    const modelPath = join(dir.dir, 'model.json');
    writeFileSync(modelPath, JSON.stringify(pitchModel().toJSON()));
    ({ app } = await startBridge(
      {
        dataDir: dir.dir,
        modelPath,
        mqtt: {
          host: '127.0.0.1',
          port: 0,
          sensors: [{ sensorId: 'hall-1', passwordHash: await sensorHash() }],
        },
        sensors: [
          {
            id: 'hall-1',
            name: 'Main hall',
            room: 'Ground floor',
            location: {
              latitude: 48.8566,
              longitude: 2.3522,
              accuracy: 5,
              address: '1 Rue de Rivoli, Paris',
            },
          },
        ],
        web: {
          host: '127.0.0.1',
          port: 0,
          users: [
            { username: ADMIN.username, passwordHash: await hashPassword(ADMIN.password), role: 'admin' },
          ],
          sessionSecret: 'mqtt-path-test-secret-0123456789',
          tileUrl: 'http://127.0.0.1:9/{z}/{x}/{y}.png',
        },
      },
      { web: true },
    ));
    if (!app.web) throw new Error('the bridge did not start the dashboard');
    sensor = await connectSensor(`mqtt://127.0.0.1:${app.brokerPorts!.tcp}`, 'hall-1', SENSOR_PASSWORD);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    errors = watchErrors(page);
    await signIn(page, app.web.url, ADMIN.username, ADMIN.password);
  });

  afterAll(async () => {
    await browser?.close();
    await sensor?.endAsync();
    await app?.stop();
    dir.remove();
  });

  it('shows the published event in the list and as a map marker, then its detail', async () => {
    await page.waitForSelector('#event-list .empty, #event-list .event-row');
    const ev = newEvent({ sensorId: 'hall-1', screamProbability: 0.93 });
    await publishEvent(sensor, ev);
    const row = page.locator(`.event-row[data-event-id="${ev.eventId}"]`);
    await row.waitFor({ timeout: 15_000 });
    expect(await row.innerText()).toContain('Main hall');
    expect(await row.innerText()).toContain('93%');
    await expect.poll(() => page.locator('path.event-marker').count(), { timeout: 5000 }).toBe(1);
    await screenshot(page, 'mqtt-events');
    await row.click();
    await page.waitForSelector('#review');
    expect(await page.locator('main').innerText()).toContain('1 Rue de Rivoli, Paris');
    expect(errors).toEqual([]);
  });
});
