import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, sampleEvent, screamWav, startWeb, tempDir, type WebHarness } from '../cloud/web/support.ts';
import { ARTIFACTS, launchChromium, screenshot, signIn, startTileServer, watchErrors } from './support.ts';

describe('dashboard in Chromium', () => {
  let h: WebHarness;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  const fixtures = tempDir('sw-browser-');
  let tiles: Awaited<ReturnType<typeof startTileServer>>;

  beforeAll(async () => {
    tiles = await startTileServer();
    h = await startWeb({ config: { tileUrl: tiles.tileUrl } });
    const now = Date.now();
    h.registry.set({
      id: 'hall-1',
      name: 'Main hall',
      room: 'Ground floor',
      status: 'online',
      lastSeen: new Date(now - 20_000).toISOString(),
      outboxDepth: 0,
      inputLevelDbfs: -52.3,
      modelVersion: '2026-11-24-abc123',
      lastEventAt: new Date(now - 3_600_000).toISOString(),
      droppedFrames: 0,
    });
    h.registry.set({
      id: 'yard-2',
      name: 'Courtyard',
      room: 'Outside, north gate',
      status: 'offline',
      lastSeen: new Date(now - 5_400_000).toISOString(),
      outboxDepth: 7,
      inputLevelDbfs: -61,
      modelVersion: '2026-11-20-9f0e11',
      lastEventAt: null,
      droppedFrames: 3,
    });
    h.registry.set({
      id: 'gym-3',
      name: 'Gym',
      room: 'Building B',
      status: 'online',
      lastSeen: new Date(now - 5000).toISOString(),
      inputLevelDbfs: -48,
      modelVersion: '2026-11-24-abc123',
      outboxDepth: 0,
    });
    await h.store.insertIfNew(
      sampleEvent({
        sensorId: 'gym-3',
        timestamp: new Date(now - 7_200_000).toISOString(),
        isScream: false,
        screamProbability: 0.52,
        responseStatus: 'none',
        deliveries: [],
        location: {
          latitude: 52.5219,
          longitude: 13.4132,
          accuracy: 20,
          address: 'Karl-Liebknecht-Str. 8, Berlin',
          source: 'sensor-config',
          room: 'Building B',
        },
      }),
    );
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
    page = await context.newPage();
    errors = watchErrors(page);
    await signIn(page, h.web.url, ADMIN.username, ADMIN.password);
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await h?.close();
    await tiles?.close();
    fixtures.remove();
  });

  it('shows a clear error on a wrong password', async () => {
    const p = await browser.newPage({ viewport: { width: 1366, height: 860 } });
    try {
      await p.goto(`${h.web.url}/events`);
      await p.waitForURL(/\/login\?next=%2Fevents/);
      await p.fill('input[name=username]', ADMIN.username);
      await p.fill('input[name=password]', 'wrong password');
      await p.click('button[type=submit]');
      await p.waitForSelector('#login-error:not([hidden])');
      expect(await p.locator('#login-error').innerText()).toContain('wrong username or password');
      await screenshot(p, 'login');
    } finally {
      await p.close();
    }
  });

  it('shows a newly stored event in the list and on the map without a reload', async () => {
    await page.waitForSelector('.event-row');
    const before = await page.locator('.event-row').count();
    const event = sampleEvent({ sensorId: 'hall-1', timestamp: new Date().toISOString() });
    await h.store.insertIfNew(event);
    const row = page.locator(`.event-row[data-event-id="${event.eventId}"]`);
    await row.waitFor({ timeout: 15_000 });
    expect(await page.locator('.event-row').count()).toBe(before + 1);
    // newest first
    expect(await page.locator('.event-row').first().getAttribute('data-event-id')).toBe(event.eventId);
    expect(await row.innerText()).toContain('Main hall');
    await expect.poll(() => page.locator('path.event-marker').count(), { timeout: 5000 }).toBe(2);
    expect(await page.locator('#map-note').innerText()).toContain('2 on the map');
    // tiles come from the configured web.tileUrl, never a CDN
    await expect.poll(() => tiles.requests.length, { timeout: 5000 }).toBeGreaterThan(0);
    expect(tiles.requests[0]).toMatch(/^\/tiles\/\d+\/\d+\/\d+\.png$/);
    await screenshot(page, 'events-desktop');
  });

  it('filters by sensor', async () => {
    await page.selectOption('select[name=sensorId]', 'gym-3');
    await expect.poll(() => page.locator('.event-row').count(), { timeout: 5000 }).toBe(1);
    expect(page.url()).toContain('sensorId=gym-3');
    await page.click('button[type=reset]');
    await expect.poll(() => page.locator('.event-row').count(), { timeout: 5000 }).toBe(2);
  });

  it('opens an event and marks it as a false alarm, showing who and when', async () => {
    await page.locator('.event-row').first().click();
    await page.waitForSelector('#review');
    expect(await page.locator('main').innerText()).toContain('Alexanderplatz 1, Berlin');
    expect(await page.locator('main').innerText()).toContain('sensor installation');
    expect(await page.locator('tr[data-channel=sms]').innerText()).toContain('Delivered');
    await page.fill('#review-note', 'Kids playing <b>loudly</b>');
    await page.click('#mark-false-alarm');
    await page.waitForSelector('.review-state');
    const review = await page.locator('#review').innerText();
    expect(review).toContain('False alarm');
    expect(review).toContain('by alice');
    // a note is text, never markup
    expect(review).toContain('Kids playing <b>loudly</b>');
    await screenshot(page, 'event-detail');
  });

  it('sends a manual alert after confirming, recorded with the user', async () => {
    const eventId = page.url().split('/').pop()!;
    page.once('dialog', (d) => void d.accept());
    await page.click('#manual-alert');
    await page.waitForSelector('#toast:not([hidden])');
    expect(await page.locator('#toast').innerText()).toBe('Alert sent to the contact.');
    expect(h.alerts.calls).toContainEqual({ eventId, userId: 'alice' });
    expect(await page.locator('tr[data-channel=sms]').innerText()).toContain('Sent');
  });

  it('shows the fleet with the offline sensor standing out', async () => {
    await page.click('nav a[href="/fleet"]');
    await page.waitForSelector('.sensor-card');
    expect(await page.locator('.sensor-card').count()).toBe(3);
    const first = page.locator('.sensor-card').first();
    expect(await first.getAttribute('data-sensor-id')).toBe('yard-2');
    expect(await first.getAttribute('class')).toContain('status-offline');
    expect(await first.innerText()).toContain('7 queued');
    expect(await page.locator('#fleet-summary').innerText()).toMatch(/1\s+offline/);
    await screenshot(page, 'fleet');
    // a page per sensor: its status, location and events per day
    await page.locator('.sensor-card[data-sensor-id="hall-1"] a.sensor-link').click();
    await page.waitForURL(/\/sensors\/hall-1$/, { timeout: 5000 });
    await page
      .waitForSelector('#events-per-day svg rect.bar-scream', { timeout: 5000, state: 'attached' })
      .catch(async (err) => {
        await screenshot(page, 'sensor-page-failed');
        throw new Error(`${err}; errors: ${errors.join(' | ')}`);
      });
    expect(await page.locator('h1').innerText()).toBe('Main hall');
    const today = await page.locator('#events-per-day rect.bar-scream').last().getAttribute('data-count');
    expect(Number(today)).toBeGreaterThanOrEqual(1);
    expect(await page.locator('#detection-settings').innerText()).toContain('2026-11-24-abc123');
    await screenshot(page, 'sensor-page');
  });

  it("shows a sensor's last 24 h and 7 days: state periods, input level and max probability from its heartbeats", async () => {
    const now = Date.now();
    const H = 3_600_000;
    // a day of heartbeats every 5 minutes, a 2-hour gap while it was offline, an hour it could not hear
    h.history.state('hall-1', 'online', now - 30 * H);
    h.history.state('hall-1', 'offline', now - 10 * H);
    h.history.state('hall-1', 'online', now - 8 * H);
    h.history.state('hall-1', 'degraded', now - 3 * H);
    h.history.state('hall-1', 'online', now - 2 * H);
    for (let t = now - 24 * H; t < now; t += 5 * 60_000) {
      if (t > now - 10 * H && t < now - 8 * H) continue;
      const deaf = t > now - 3 * H && t < now - 2 * H;
      h.history.heartbeat('hall-1', t, deaf ? -120 : -50 + 5 * Math.sin(t / H), deaf ? 0 : 0.05);
    }
    await page.goto(`${h.web.url}/sensors/hall-1`);
    const host = page.locator('#sensor-history');
    await host.locator('svg').waitFor({ timeout: 5000 });
    expect(await host.locator('rect.period-offline').count()).toBe(1);
    expect(await host.locator('rect.period-degraded').count()).toBe(1);
    // the level line breaks at the offline gap: two runs
    expect(await host.locator('polyline.level-line').count()).toBe(2);
    expect(await page.locator('#history-summary').innerText()).toMatch(
      /^\d+ heartbeats; 2 offline or cannot-hear periods in the last 24h\.$/,
    );
    await page.locator('#history-card').screenshot({ path: `${ARTIFACTS}/sensor-history-24h.png` });
    await page.click('#history-card button[data-range="7d"]');
    await page.waitForFunction(() =>
      document.querySelector('#sensor-history svg')?.getAttribute('aria-label')?.includes('7d'),
    );
    expect(await page.locator('#history-card button[data-range="7d"]').getAttribute('aria-pressed')).toBe(
      'true',
    );
    await screenshot(page, 'sensor-page-history');
  });

  it('says when a sensor clock is off: on its fleet card and on an event it stamped years ahead', async () => {
    const now = Date.now();
    const skewS = 3 * 365 * 86_400;
    const view = h.registry.get('gym-3')!;
    h.registry.set({ ...view, clockSkewS: skewS });
    const e = sampleEvent({
      sensorId: 'gym-3',
      timestamp: new Date(now - 60_000).toISOString(),
      receivedAt: new Date(now - 60_000).toISOString(),
      sensorTimestamp: new Date(now - 60_000 + skewS * 1000).toISOString(),
      clockSkewS: skewS,
    });
    await h.store.insertIfNew(e);
    await page.goto(`${h.web.url}/fleet`);
    const card = page.locator('.sensor-card[data-sensor-id="gym-3"]');
    await card.locator('.clock-skew').waitFor({ timeout: 5000 });
    expect(await card.locator('.clock-skew').innerText()).toBe(
      'Sensor clock 1095 days ahead: check its time sync (NTP)',
    );
    expect(await page.locator('.sensor-card[data-sensor-id="hall-1"] .clock-skew').count()).toBe(0);
    await page.goto(`${h.web.url}/events/${e.eventId}`);
    const skew = page.locator('.clock-skew');
    await skew.waitFor({ timeout: 5000 });
    expect(await skew.innerText()).toMatch(/^1095 days ahead: stamped .+; listed by its received time$/);
    await screenshot(page, 'event-clock-skew');
  });

  it("plots a sensor event's evidence timeline (window scores up to the detection, no audio)", async () => {
    const e = sampleEvent({
      sensorId: 'hall-1',
      timestamp: new Date(Date.now() - 30_000).toISOString(),
      thresholdValue: 0.6,
      timeline: Array.from({ length: 20 }, (_, i) => ({
        t: Math.round((i - 19) * 512) / 1000,
        p: i < 16 ? 0.05 + 0.01 * (i % 3) : [0.55, 0.72, 0.88, 0.93][i - 16]!,
        levelDbfs: i < 16 ? -55 : -22,
      })),
    });
    await h.store.insertIfNew(e);
    await page.goto(`${h.web.url}/events/${e.eventId}`);
    await page.waitForSelector('.plot-wrap svg polyline.prob-line', { timeout: 5000 });
    expect(await page.locator('#timeline-caption').innerText()).toBe(
      "The sensor's window scores for the 11 s up to the detection (the right edge); the 10 s after follow from the sensor. Numbers only, no audio left the sensor.",
    );
    const points = (await page.locator('.plot-wrap polyline.prob-line').getAttribute('points'))!
      .trim()
      .split(/\s+/);
    expect(points.length).toBeGreaterThanOrEqual(20);
    await screenshot(page, 'event-evidence-timeline');

    // the sensor's evidence message completes it: 10 s before to 10 s after, the detection marked
    const after = Array.from({ length: 20 }, (_, i) => ({
      t: Math.round((i + 1) * 512) / 1000,
      p: i < 4 ? [0.9, 0.81, 0.64, 0.3][i]! : 0.06,
      levelDbfs: i < 4 ? -24 : -54,
    }));
    await h.store.setTimeline!(e.eventId, [...e.timeline!, ...after]);
    await page.reload();
    await page.waitForSelector('.plot-wrap svg polyline.prob-line', { timeout: 5000 });
    expect(await page.locator('#timeline-caption').innerText()).toBe(
      "The sensor's window scores from 11 s before to 10 s after the detection (marked); numbers only, no audio left the sensor.",
    );
    const all = (await page.locator('.plot-wrap polyline.prob-line').getAttribute('points'))!
      .trim()
      .split(/\s+/);
    expect(all.length).toBeGreaterThanOrEqual(40);
    await screenshot(page, 'event-evidence-timeline-after');
  });

  it('analyses an uploaded WAV and plots probability, threshold and the detected event', async () => {
    await page.click('nav a[href="/analyse"]');
    await page.setInputFiles('#audio-file', screamWav(fixtures.dir, 'hallway-test.wav', 44_100));
    await page.check('#store-event');
    await page.click('#analyse-submit');
    await page.waitForSelector('#analysis-plot svg polyline.prob-line', { timeout: 20_000 });
    expect(await page.locator('.verdict').innerText()).toContain('Scream detected');
    expect(await page.locator('#analysis-plot line.threshold').count()).toBe(1);
    expect(await page.locator('#analysis-plot rect.event-span').count()).toBeGreaterThanOrEqual(1);
    expect(await page.locator('#stored-event').count()).toBe(1);
    await screenshot(page, 'analyse');
    await page.click('#stored-event');
    await page.waitForSelector('svg.plot polyline.prob-line');
    expect(await page.locator('main').innerText()).toContain('upload:hallway-test.wav');
  });

  it('rejects a file that is not audio with a clear message', async () => {
    await page.goto(`${h.web.url}/analyse`);
    await page.setInputFiles('#audio-file', {
      name: 'minutes.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('not audio at all'),
    });
    await page.click('#analyse-submit');
    await page.waitForSelector('#analyse-error:not([hidden])');
    expect(await page.locator('#analyse-error').innerText()).toContain('minutes.txt: not a WAV or MP3 file');
  });

  it('works on a phone-sized screen', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    try {
      await phone.addCookies((await context.cookies()).map((c) => ({ ...c })));
      const p = await phone.newPage();
      await p.goto(`${h.web.url}/events`);
      await p.waitForSelector('.event-row');
      // nothing wider than the screen
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await screenshot(p, 'events-phone');
      await p.goto(`${h.web.url}/fleet`);
      await p.waitForSelector('.sensor-card');
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await screenshot(p, 'fleet-phone');
      await p.goto(`${h.web.url}/events`);
      await p.locator('.event-row').first().click();
      await p.waitForSelector('#review');
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      // the on-call person's actions come first: acknowledge and both verdicts on the first screen
      for (const sel of [
        '#acknowledge',
        '#review button:has-text("False alarm")',
        '#review button:has-text("Confirmed")',
      ]) {
        const box = await p.locator(sel).boundingBox();
        expect(box, sel).not.toBeNull();
        expect(box!.y + box!.height, `${sel} within the first 844 px`).toBeLessThanOrEqual(844);
      }
      await screenshot(p, 'event-detail-phone');
      await p.goto(`${h.web.url}/analyse`);
      await p.setInputFiles('#audio-file', screamWav(fixtures.dir, 'phone.wav'));
      await p.click('#analyse-submit');
      await p.waitForSelector('#analysis-plot svg polyline.prob-line', { timeout: 20_000 });
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await screenshot(p, 'analyse-phone');
    } finally {
      await phone.close();
    }
  });

  it('pages back through older events', async () => {
    const base = Date.now() - 86_400_000;
    for (let i = 0; i < 110; i++) {
      await h.store.insertIfNew(
        sampleEvent({ sensorId: 'bulk-5', timestamp: new Date(base + i * 60_000).toISOString() }),
      );
    }
    await page.goto(`${h.web.url}/events?sensorId=bulk-5`);
    await expect.poll(() => page.locator('.event-row').count(), { timeout: 10_000 }).toBe(100);
    // events keep arriving while someone pages back: none may push a row out or appear twice
    const arrivals = [];
    for (let i = 0; i < 5; i++) {
      const e = sampleEvent({ sensorId: 'bulk-5', timestamp: new Date(Date.now() - i * 1000).toISOString() });
      arrivals.push(e.eventId);
      await h.store.insertIfNew(e);
    }
    await expect.poll(() => page.locator('.event-row').count(), { timeout: 5000 }).toBe(105);
    await page.click('#show-older');
    await expect.poll(() => page.locator('.event-row').count(), { timeout: 10_000 }).toBe(115);
    await h.store.insertIfNew(sampleEvent({ sensorId: 'bulk-5', timestamp: new Date().toISOString() }));
    await expect.poll(() => page.locator('.event-row').count(), { timeout: 5000 }).toBe(116);
    const ids = await page
      .locator('.event-row')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-event-id')));
    expect(new Set(ids).size).toBe(116);
    const stored = (await h.store.list({ sensorId: 'bulk-5', limit: 500 })).map((e) => e.eventId);
    expect(ids).toEqual(stored);
    for (const id of arrivals) expect(ids).toContain(id);
    expect(await page.locator('#show-older').count()).toBe(0);
    // oldest last
    const lastTime = await page.locator('.event-row time').last().getAttribute('datetime');
    expect(lastTime).toBe(new Date(base).toISOString());
  });

  it('keeps the list through a server outage under a banner, and catches up after', async () => {
    await page.goto(`${h.web.url}/events?sensorId=bulk-5`);
    await expect.poll(() => page.locator('.event-row').count(), { timeout: 10_000 }).toBe(100);
    await page.waitForFunction(() => document.body.dataset.stream === 'live');
    const missed = sampleEvent({ sensorId: 'bulk-5', timestamp: new Date().toISOString() });
    await h.outage(async () => {
      await page.waitForSelector('#outage-banner:not([hidden])', { timeout: 10_000 });
      expect(await page.locator('#outage-banner').innerText()).toMatch(
        /Cannot reach the server since .+ Showing the last known events/,
      );
      expect(await page.locator('.event-row').count()).toBe(100);
      expect(await page.locator('#event-count').innerText()).toContain('100 shown');
      await screenshot(page, 'events-outage');
      // stored while the dashboard was down (the bridge's ingest goes on)
      await h.store.insertIfNew(missed);
    });
    await page.waitForSelector('#outage-banner[hidden]', { state: 'attached', timeout: 15_000 });
    await page.locator(`.event-row[data-event-id="${missed.eventId}"]`).waitFor({ timeout: 10_000 });
  });

  it('refuses a From later than To, draws a one-window file, and answers unknown pages with its 404 page', async () => {
    await page.goto(`${h.web.url}/events`);
    await page.waitForSelector('.event-row');
    await page.fill('input[name=from]', '2026-11-25T10:00');
    await page.fill('input[name=to]', '2026-11-24T10:00');
    await page.dispatchEvent('#filters', 'change');
    await page.waitForSelector('#filter-error:not([hidden])');
    expect(await page.locator('#filter-error').innerText()).toContain('"From" is later than "To"');
    expect(await page.locator('.event-row').count()).toBe(0);

    await page.goto(`${h.web.url}/analyse`);
    const short = join(fixtures.dir, 'one-window.wav');
    execFileSync('sox', [
      '-n',
      '-r',
      '16000',
      '-c',
      '1',
      '-b',
      '16',
      short,
      'synth',
      '1.1',
      'sine',
      '1200',
      'vol',
      '0.5',
    ]);
    await page.setInputFiles('#audio-file', short);
    await page.click('#analyse-submit');
    await page.waitForSelector('#analysis-plot svg polyline.prob-line', {
      timeout: 20_000,
      state: 'attached',
    });
    const pts = await page.locator('#analysis-plot polyline.prob-line').getAttribute('points');
    const xs = pts!
      .trim()
      .split(/\s+/)
      .map((p) => Number(p.split(',')[0]));
    expect(xs.length).toBeGreaterThanOrEqual(2);
    expect(Math.max(...xs) - Math.min(...xs)).toBeGreaterThan(50);
    await screenshot(page, 'analyse-one-window');

    const res = await page.goto(`${h.web.url}/no/such/page`);
    expect(res!.status()).toBe(404);
    expect(await page.locator('main h1').innerText()).toBe('Page not found');
    expect(await page.locator('nav a[href="/fleet"]').count()).toBe(1);
    await screenshot(page, 'not-found');
  });

  it('clusters many events at one place into one bubble with their count', async () => {
    const t0 = Date.now() - 3_600_000;
    for (let i = 0; i < 77; i++) {
      await h.store.insertIfNew(
        sampleEvent({ sensorId: 'cluster-7', timestamp: new Date(t0 + i * 1000).toISOString() }),
      );
    }
    await page.goto(`${h.web.url}/events?sensorId=cluster-7`);
    await expect.poll(() => page.locator('.event-row').count(), { timeout: 10_000 }).toBe(77);
    const bubble = page.locator('.event-cluster');
    await bubble.first().waitFor({ timeout: 5000 });
    await expect.poll(() => bubble.count(), { timeout: 5000 }).toBe(1);
    await expect.poll(() => bubble.innerText(), { timeout: 5000 }).toBe('77');
    expect(await bubble.getAttribute('class')).toContain('event-cluster-danger');
    await screenshot(page, 'events-cluster');
  });

  it('says so when map tiles cannot load, and follows a dark system theme', async () => {
    const offline = await startWeb(); // its tile URL points at a closed loopback port
    const dark = await browser.newContext({ viewport: { width: 1366, height: 860 }, colorScheme: 'dark' });
    try {
      await offline.store.insertIfNew(sampleEvent({ sensorId: 'hall-1' }));
      const p = await dark.newPage();
      await signIn(p, offline.web.url, ADMIN.username, ADMIN.password);
      await p.waitForSelector('.event-row');
      await p.waitForSelector('.map-tiles-note:not([hidden])', { timeout: 10_000 });
      expect(await p.locator('.map-tiles-note').innerText()).toContain('Map tiles unavailable');
      expect(await p.locator('path.event-marker').count()).toBe(1);
      const bg = await p.evaluate(() =>
        getComputedStyle(document.documentElement).getPropertyValue('--bg').trim(),
      );
      expect(bg).toBe('#111318');
      await screenshot(p, 'events-dark-no-tiles');
      await p.locator('.event-row').first().click();
      await p.waitForSelector('#review');
      await screenshot(p, 'event-detail-dark');
    } finally {
      await dark.close();
      await offline.close();
    }
  });

  it('ran without front-end errors', () => {
    expect(errors).toEqual([]);
  });
});
