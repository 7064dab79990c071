import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../cloud/store/types.ts';
import { ADMIN, startWeb, tempDir, type WebHarness } from '../cloud/web/support.ts';
import { launchChromium, screenshot, signIn, watchErrors } from './support.ts';

describe('live detection in Chromium with a fake microphone', () => {
  let h: WebHarness;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  const fixtures = tempDir('sw-live-');
  const ipLookups: string[] = [];

  beforeAll(async () => {
    // Chromium loops the file as the microphone: 2 s of quiet noise, then 3 s of a
    // scream-like warbling tone, so the level meter moves and the detector confirms.
    const wav = join(fixtures.dir, 'mic.wav');
    const quiet = join(fixtures.dir, 'quiet.wav');
    const tone = join(fixtures.dir, 'tone.wav');
    execFileSync('sox', [
      '-n',
      '-r',
      '48000',
      '-c',
      '1',
      '-b',
      '16',
      quiet,
      'synth',
      '2',
      'brownnoise',
      'vol',
      '0.02',
    ]);
    execFileSync('sox', [
      '-n',
      '-r',
      '48000',
      '-c',
      '1',
      '-b',
      '16',
      tone,
      'synth',
      '3',
      'sine',
      '900:1400',
      'tremolo',
      '6',
      '40',
      'vol',
      '0.6',
    ]);
    execFileSync('sox', [quiet, tone, wav]);
    h = await startWeb({
      locateIp: async (ip) => {
        ipLookups.push(ip);
        return { latitude: 50.1, longitude: 8.7, accuracy: 30_000, address: null, source: 'ip-database' };
      },
    });
    browser = await launchChromium({ fakeMicWav: wav });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    errors = watchErrors(page);
    await signIn(page, h.web.url, ADMIN.username, ADMIN.password);
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await h?.close();
    fixtures.remove();
  });

  it('loads the model in the browser and moves the level meter from the microphone', async () => {
    await page.click('nav a[href="/live"]');
    await page.waitForSelector('#live-toggle:not([disabled])', { timeout: 15_000 });
    expect(await page.locator('#live-status').innerText()).toContain('test-centroid-750');
    await page.click('#live-toggle');
    await page.waitForFunction(
      () => document.querySelector<HTMLElement>('#level-meter')?.dataset.level !== '',
      undefined,
      {
        timeout: 10_000,
      },
    );
    const levels = new Set<string>();
    for (let i = 0; i < 40 && levels.size < 3; i++) {
      levels.add((await page.locator('#level-meter').getAttribute('data-level')) ?? '');
      await page.waitForTimeout(150);
    }
    expect(levels.size).toBeGreaterThanOrEqual(3);
    const widths = await page
      .locator('#level-meter .meter-bar')
      .evaluate((el) => el.getBoundingClientRect().width);
    expect(widths).toBeGreaterThan(0);
  });

  it('scores windows in the browser and offers an alert on a confirmed scream', async () => {
    await page.waitForSelector('#alert-panel:not([hidden])', { timeout: 20_000 });
    const p = Number(await page.locator('#prob-value').getAttribute('data-probability'));
    expect(p).toBeGreaterThanOrEqual(0);
    expect(await page.locator('#alert-panel').innerText()).toContain('Scream detected');
    await screenshot(page, 'live');
  });

  it('sends the alert with the browser position when allowed', async () => {
    await context.grantPermissions(['geolocation'], { origin: h.web.url });
    await context.setGeolocation({ latitude: 52.52, longitude: 13.405, accuracy: 18 });
    await page.click('#send-live-alert');
    await page.waitForSelector('#live-alert-result a', { timeout: 15_000 });
    expect(await page.locator('#live-alert-result').innerText()).toContain('browser location');
    const stored = h.ingested.at(-1) as StoredEvent;
    expect(stored).toMatchObject({ sensorId: 'browser', audioSource: 'browser:microphone', userId: 'alice' });
    expect(stored.location).toMatchObject({ source: 'browser', latitude: 52.52, longitude: 13.405 });
    expect(stored.windows?.length).toBeGreaterThan(0);
    expect(ipLookups).toEqual([]);
  });

  it('falls back to the IP location when the browser position is refused', async () => {
    await context.clearPermissions();
    const p2 = await context.newPage();
    try {
      await p2.goto(`${h.web.url}/live`);
      await p2.waitForSelector('#live-toggle:not([disabled])', { timeout: 15_000 });
      await p2.click('#live-toggle');
      await p2.waitForSelector('#alert-panel:not([hidden])', { timeout: 20_000 });
      await p2.click('#send-live-alert');
      await p2.waitForSelector('#live-alert-result a', { timeout: 20_000 });
      expect(await p2.locator('#live-alert-result').innerText()).toContain('IP address');
      expect(ipLookups.length).toBe(1);
      expect(h.ingested.at(-1)!.location.source).toBe('ip-database');
    } finally {
      await p2.close();
    }
  });

  it('fits a phone screen', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    try {
      await phone.addCookies(await context.cookies());
      const p = await phone.newPage();
      await p.goto(`${h.web.url}/live`);
      await p.waitForSelector('#live-toggle:not([disabled])', { timeout: 15_000 });
      await p.click('#live-toggle');
      await p.waitForFunction(
        () => Number(document.querySelector<HTMLElement>('#level-meter')?.dataset.level) > -80,
        undefined,
        {
          timeout: 10_000,
        },
      );
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await screenshot(p, 'live-phone');
    } finally {
      await phone.close();
    }
  });

  it('stops listening and releases the microphone', async () => {
    await page.click('#live-toggle');
    await page.waitForFunction(
      () => document.querySelector('#live-status')?.textContent?.startsWith('Stopped'),
      undefined,
      {
        timeout: 5000,
      },
    );
    expect(errors).toEqual([]);
  });
});
