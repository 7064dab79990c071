import type { MqttClient } from 'mqtt';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import { parseCloudConfig } from '../../cloud/config/schema.ts';
import { connectSensor, LogCapture, newEvent, publishEvent, tempDir } from '../cloud/bridge-harness.ts';
import { pitchModel } from '../cloud/web/support.ts';
import { eventually } from '../support/eventually.ts';
import { startTwilioEndpoint, type TwilioEndpoint } from '../support/twilio-endpoint.ts';
import { launchChromium, screenshot, signIn, startTileServer, watchErrors } from './support.ts';

/**
 * The whole bridge (embedded broker, SQLite store, alert queue, dashboard) with events
 * published over MQTT and SMS going to the Twilio loopback endpoint; no SMTP server is
 * configured, so e-mail outcomes are "not configured", as on a fresh install.
 */
describe('alert outcomes in the browser, from the real alert path', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let twilio: TwilioEndpoint;
  let tiles: Awaited<ReturnType<typeof startTileServer>>;
  let app: CloudApp;
  let sensor: MqttClient;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  let url: string;
  const PASSWORD = 'admin-password-1';

  beforeAll(async () => {
    dir = await tempDir('sw-outcomes-');
    twilio = await startTwilioEndpoint();
    tiles = await startTileServer();
    const { CloudApp } = await import('../../cloud/app.ts');
    const pino = (await import('pino')).default;
    const hash = await hashPassword(PASSWORD);
    const policy = (sensorIds: string[], over: Record<string, unknown>) => ({
      group: `g-${sensorIds[0]}`,
      sensorIds,
      threshold: 0.5,
      cooldownS: 0,
      ...over,
    });
    const config = parseCloudConfig({
      dataDir: dir.path,
      mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true },
      sensors: ['ok-1', 'retry-2', 'fail-3', 'cool-4', 'rate-5', 'none-6', 'mail-7', 'live-8'].map(
        (id, i) => ({
          id,
          name: `Room ${i + 1} (${id})`,
          location: {
            latitude: 48.85 + i * 0.01,
            longitude: 2.35,
            accuracy: 10,
            address: `${i + 1} Rue de Test`,
          },
        }),
      ),
      alerts: {
        policies: [
          policy(['ok-1'], { contacts: { sms: ['+15550000001'], email: ['ops@example.org'] } }),
          policy(['retry-2'], { contacts: { sms: ['+15550000002'], email: [] } }),
          policy(['fail-3'], { contacts: { sms: ['+15550000003'], email: [] } }),
          policy(['cool-4'], { cooldownS: 600, contacts: { sms: ['+15550000004'], email: [] } }),
          policy(['rate-5'], { ratePerContactPerHour: 1, contacts: { sms: ['+15550000005'], email: [] } }),
          policy(['none-6'], { contacts: { sms: [], email: [] } }),
          policy(['mail-7'], { contacts: { sms: [], email: ['ops@example.org'] } }),
          policy(['live-8'], { contacts: { sms: [], email: [] } }),
          { group: 'default', contacts: { sms: [], email: [] } },
        ],
        twilio: {
          accountSid: 'ACoutcomes00000000000000000000000',
          authToken: 'tok',
          from: '+15550009999',
          apiBaseUrl: twilio.url,
        },
        // a failed try waits two minutes: long enough to see "retrying" in the page
        retry: { maxRetries: 3, initialDelayMs: 120_000, maxDelayMs: 240_000, multiplier: 2 },
        timeoutMs: 2000,
      },
      web: {
        host: '127.0.0.1',
        port: 0,
        tileUrl: tiles.tileUrl,
        users: [
          { username: 'alice', passwordHash: hash, role: 'admin' },
          { username: 'bob', passwordHash: hash, role: 'admin' },
        ],
      },
    });
    app = new CloudApp({
      config,
      env: {},
      logger: pino({ level: 'warn' }, new LogCapture()),
      model: pitchModel(),
      alertPollMs: 50,
    });
    await app.start();
    url = app.web!.url;
    sensor = await connectSensor(`mqtt://127.0.0.1:${app.brokerPorts!.tcp}`, undefined, undefined);
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
    page = await context.newPage();
    errors = watchErrors(page);
    await signIn(page, url, 'alice', PASSWORD);
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await sensor?.endAsync(true).catch(() => {});
    await app?.stop();
    await twilio?.stop();
    await tiles?.close();
    await dir?.remove();
  });

  /** Publishes a scream over MQTT and waits until the bridge has stored it with a settled status. */
  async function publish(sensorId: string, settled: (status: string) => boolean): Promise<string> {
    const ev = newEvent({ sensorId, screamProbability: 0.93 });
    await publishEvent(sensor, ev);
    await eventually(
      async () => {
        const e = await app.store.get(ev.eventId);
        return (
          e &&
          settled(e.responseStatus) &&
          e.deliveries.every((d) => d.status !== 'pending' || d.attempts > 0)
        );
      },
      10_000,
      `${sensorId} alert outcome`,
    );
    return ev.eventId;
  }

  async function open(
    eventId: string,
    shot: string,
  ): Promise<{ badge: string; summary: string; rows: string }> {
    await page.goto(`${url}/events/${eventId}`);
    await page.waitForSelector('#alert-badge');
    const out = {
      badge: await page.locator('#alert-badge').innerText(),
      summary: await page.locator('#alert-summary').innerText(),
      rows: (await page.locator('table.deliveries').count())
        ? await page.locator('table.deliveries').innerText()
        : '',
    };
    await screenshot(page, shot);
    return out;
  }

  it('sent: the SMS the carrier accepted; e-mail not configured on the bridge, so only partly sent', async () => {
    const id = await publish('ok-1', (s) => s !== 'pending');
    const o = await open(id, 'alert-sent-partly');
    expect(o.badge).toBe('Partly sent');
    expect(o.summary).toContain('Sent to 1 of 2 contacts');
    expect(await page.locator('tr[data-channel=sms]').innerText()).toContain('Sent');
    expect(await page.locator('tr[data-channel=email]').innerText()).toContain(
      'no e-mail server (alerts.smtp)',
    );
  });

  it('queued-retrying: a 500 from the carrier, with the reason and the next try time', async () => {
    twilio.respondWith(500);
    const id = await publish('retry-2', () => true);
    await eventually(
      async () => (await app.store.get(id))?.deliveries[0]?.attempts === 1,
      10_000,
      'first try',
    );
    const o = await open(id, 'alert-retrying');
    expect(o.badge).toBe('Alert retrying');
    expect(o.rows).toContain('Retrying');
    expect(o.rows).toMatch(/Try 1 failed: .+\. Next try at /);
  });

  it('failed: the carrier refused the number for good, with its reason', async () => {
    twilio.respondWith(400);
    const id = await publish('fail-3', (s) => s === 'failed');
    const o = await open(id, 'alert-failed');
    expect(o.badge).toBe('Alert failed');
    expect(o.rows).toContain('Failed');
    expect(o.rows).toMatch(/Not delivered after 1 try: .+/);
  });

  it('not configured: e-mail only, and no SMTP server configured', async () => {
    const id = await publish('mail-7', (s) => s === 'not-configured');
    const o = await open(id, 'alert-not-configured');
    expect(o.badge).toBe('Not sent');
    expect(o.summary).toContain('no SMS provider or e-mail server is configured');
    expect(o.rows).toContain('Not configured');
  });

  it('no contacts: the policy has nobody to alert, and the manual alert says so instead of "sent"', async () => {
    const id = await publish('none-6', (s) => s === 'not-configured');
    const o = await open(id, 'alert-no-contacts');
    expect(o.badge).toBe('No contacts');
    expect(o.summary).toContain('has no contacts');
    page.once('dialog', (d) => void d.accept());
    await page.click('#manual-alert');
    await page.waitForSelector('#toast:not([hidden])');
    const t = await page.locator('#toast').innerText();
    expect(t).not.toMatch(/Alert sent/);
    expect(t).toContain('has no contacts');
  });

  it('suppressed by the cooldown, linking to the event that alerted', async () => {
    const first = await publish('cool-4', (s) => s === 'alerted');
    const second = await publish('cool-4', (s) => s === 'suppressed');
    const o = await open(second, 'alert-cooldown');
    expect(o.badge).toBe('Cooldown');
    expect(o.summary).toMatch(
      /another event of this sensor alerted; cooldown until .+, then one follow-up summary/,
    );
    expect(await page.locator('#alerted-event').getAttribute('href')).toBe(`/events/${first}`);
    await page.click('#alerted-event');
    await page.waitForURL(new RegExp(`/events/${first}$`));
    await page.waitForSelector('#alert-badge');
    expect(await page.locator('#alert-badge').innerText()).toBe('Alert sent');
  });

  it('rate-limited until a time: the contact had its hourly alert already', async () => {
    await publish('rate-5', (s) => s === 'alerted');
    const second = await publish('rate-5', (s) => s === 'suppressed');
    const o = await open(second, 'alert-rate-limited');
    expect(o.badge).toBe('Rate-limited');
    expect(o.rows).toMatch(/can be alerted again at /);
    // the list says it too, in the badge
    await page.goto(`${url}/events?sensorId=rate-5`);
    await page.waitForSelector(`.event-row[data-event-id="${second}"]`);
    expect(await page.locator(`.event-row[data-event-id="${second}"] .event-status`).innerText()).toContain(
      'Rate-limited',
    );
  });

  it('on a phone the response actions come first', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
    });
    try {
      await phone.addCookies(await context.cookies());
      const p = await phone.newPage();
      const id = (await app.store.list({ sensorId: 'cool-4', limit: 1 }))[0]!.eventId;
      await p.goto(`${url}/events/${id}`);
      await p.waitForSelector('#acknowledge');
      const ack = await p.locator('#acknowledge').boundingBox();
      expect(ack!.y).toBeLessThan(844);
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await screenshot(p, 'alert-cooldown-phone');
    } finally {
      await phone.close();
    }
  });

  it('shows a scream published over MQTT without a reload, counts it in the tab title, and an acknowledgement in another browser within 2 s', async () => {
    await page.goto(`${url}/events`);
    await page.waitForSelector('.event-row');
    await page.waitForFunction(() => document.body.dataset.stream === 'live');
    const ev = newEvent({ sensorId: 'live-8', screamProbability: 0.95 });
    await publishEvent(sensor, ev);
    const row = page.locator(`.event-row[data-event-id="${ev.eventId}"]`);
    await row.waitFor({ timeout: 5000 });
    expect(await page.locator('.event-row').first().getAttribute('data-event-id')).toBe(ev.eventId);
    await page.waitForFunction(() => document.title.startsWith('(1) Scream'));
    await screenshot(page, 'live-arrival');

    // alice watches the event; bob, in another browser, says he is responding
    await row.click();
    await page.waitForSelector('#response-state[data-state="new"]');
    const other = await browser.newContext({ viewport: { width: 1366, height: 860 } });
    try {
      const bob = await other.newPage();
      await signIn(bob, url, 'bob', PASSWORD);
      await bob.goto(`${url}/events/${ev.eventId}`);
      await bob.click('#acknowledge');
      const clicked = Date.now();
      await page.waitForSelector('#response-state[data-state="acknowledged"]', { timeout: 2000 });
      expect(Date.now() - clicked).toBeLessThan(2000);
      expect(await page.locator('#response-state').innerText()).toContain('Acknowledged · bob');
      expect(await page.locator('#event-history').innerText()).toContain('bob acknowledged');
      await screenshot(page, 'acknowledged-by-other');
      // alice resolves it; bob sees the verdict and both entries in the history
      await page.fill('#review-note', 'Two pupils fighting; separated');
      await page.click('#mark-confirmed');
      await bob.waitForSelector('#response-state[data-state="resolved"]', { timeout: 2000 });
      const hist = await bob.locator('#event-history').innerText();
      expect(hist).toContain('bob acknowledged');
      expect(hist).toContain('alice resolved: confirmed');
      expect(hist).toContain('Two pupils fighting; separated');
      await screenshot(bob, 'resolved-history');
    } finally {
      await other.close();
    }
    const stored = await app.store.get(ev.eventId);
    expect(stored?.history?.map((x) => x.action)).toEqual(['acknowledged', 'resolved']);
  });

  it('ran without front-end errors', () => {
    expect(errors).toEqual([]);
  });
});
