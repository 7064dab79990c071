import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { safeNext } from '../../../cloud/web/routes/auth.ts';
import { launchChromium } from '../../browser/support.ts';
import { ADMIN, login, startWeb, type WebHarness } from './support.ts';

const post = (h: WebHarness, body: unknown) =>
  fetch(`${h.web.url}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

describe('sign-in hardening', () => {
  let h: WebHarness;
  beforeAll(async () => {
    h = await startWeb();
  });
  afterAll(() => h?.close());

  it('the lockout counts only failures: 15 correct sign-ins in a row all succeed', async () => {
    for (let i = 0; i < 15; i++) await login(h.web.url, ADMIN);
  });

  it('10 failures lock the username for this address, said as a time of day with Retry-After', async () => {
    const user = { username: 'victor', password: 'wrong' };
    for (let i = 0; i < 10; i++) expect((await post(h, user)).status).toBe(401);
    const locked = await post(h, { username: 'victor', password: 'viewer password 1' });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(800);
    const body = (await locked.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('WEB_RATE_LIMITED');
    expect(body.error.message).toMatch(/try again at \d\d:\d\d/);
    expect(body.error.message).not.toMatch(/in \d+ s/);
  });

  it('next= accepts only same-origin paths after URL parsing', () => {
    expect(safeNext('/events?sensorId=a#x')).toBe('/events?sensorId=a#x');
    for (const evil of [
      '/\t/evil.example',
      '//evil.example',
      '/\\evil.example',
      'https://evil.example',
      '/\n/evil.example',
      'javascript:alert(1)',
    ]) {
      expect(safeNext(evil)).toBe('/events');
    }
  });
});

describe('open redirect in Chromium', () => {
  let h: WebHarness;
  let browser: Browser;
  beforeAll(async () => {
    h = await startWeb();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  for (const next of ['/%09/evil.example', '//evil.example', '/%5Cevil.example', '/%0A/evil.example']) {
    it(`/login?next=${next} signs in and stays on the dashboard`, async () => {
      const page = await browser.newPage();
      const requested: string[] = [];
      page.on('request', (r) => requested.push(r.url()));
      await page.goto(`${h.web.url}/login?next=${next}`);
      await page.fill('input[name=username]', ADMIN.username);
      await page.fill('input[name=password]', ADMIN.password);
      await Promise.all([
        page.waitForURL(/\/events/, { timeout: 10_000 }),
        page.click('button[type=submit]'),
      ]);
      expect(new URL(page.url()).origin).toBe(new URL(h.web.url).origin);
      // signed in already: the server's own redirect is checked the same way
      await page.goto(`${h.web.url}/login?next=${next}`);
      expect(new URL(page.url()).origin).toBe(new URL(h.web.url).origin);
      expect(requested.some((u) => u.includes('evil.example') && !u.startsWith(h.web.url))).toBe(false);
      await page.close();
    });
  }
});

describe('sign-out survives a restart', () => {
  it('a cookie signed out before the restart is refused after it', async () => {
    const { mkdtempSync, rmSync, statSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dataDir = mkdtempSync(join(tmpdir(), 'sw-revoke-'));
    try {
      const first = await startWeb({ config: { dataDir } });
      const s = await login(first.web.url, ADMIN);
      const kept = await login(first.web.url, ADMIN);
      const logout = await fetch(`${first.web.url}/api/logout`, {
        method: 'POST',
        headers: { cookie: s.cookie, 'x-csrf-token': s.csrf },
      });
      expect(logout.status).toBe(204);
      await first.close();
      expect(statSync(join(dataDir, 'web-revoked-sessions.json')).mode & 0o777).toBe(0o600);
      const second = await startWeb({ config: { dataDir } });
      try {
        const get = (c: string) => fetch(`${second.web.url}/api/session`, { headers: { cookie: c } });
        expect((await get(s.cookie)).status).toBe(401);
        expect((await get(kept.cookie)).status).toBe(200); // only the signed-out one
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
