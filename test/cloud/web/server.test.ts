import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../../cloud/auth/passwords.ts';
import type { StoredEvent } from '../../../cloud/store/types.ts';
import { tileOrigin } from '../../../cloud/web/server.ts';
import { ScreamModel } from '../../../core/model/scream-model.ts';
import {
  ADMIN,
  humWav,
  login,
  sampleEvent,
  screamWav,
  startWeb,
  tempDir,
  VIEWER,
  type WebHarness,
} from './support.ts';

const json = (body: unknown) => ({ 'content-type': 'application/json', body: JSON.stringify(body) });

async function call(
  h: WebHarness,
  method: string,
  path: string,
  auth: { cookie: string; csrf?: string } | null,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (auth) headers.cookie = auth.cookie;
  if (auth?.csrf) headers['x-csrf-token'] = auth.csrf;
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    const j = json(body);
    headers['content-type'] = j['content-type'];
    payload = j.body;
  }
  const res = await fetch(`${h.web.url}${path}`, { method, headers, body: payload, redirect: 'manual' });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // HTML or empty
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

function wavForm(path: string, name: string): FormData {
  const form = new FormData();
  form.append('file', new Blob([readFileSync(path)], { type: 'audio/wav' }), name);
  return form;
}

describe('web dashboard API', () => {
  let h: WebHarness;
  let admin: { cookie: string; csrf: string };
  let viewer: { cookie: string; csrf: string };
  const fixtures = tempDir('sw-web-fx-');

  beforeAll(async () => {
    h = await startWeb({
      locateIp: async (ip) => ({
        latitude: 48.1,
        longitude: 11.6,
        accuracy: 25_000,
        address: `near ${ip}`,
        source: 'ip-database',
      }),
    });
    admin = await login(h.web.url, ADMIN);
    viewer = await login(h.web.url, VIEWER);
  });
  afterAll(async () => {
    await h.close();
    fixtures.remove();
  });

  it('refuses the API without a session (401 JSON) and redirects pages to the login', async () => {
    const api = await call(h, 'GET', '/api/events', null);
    expect(api.status).toBe(401);
    expect(api.body.error.code).toBe('WEB_UNAUTHENTICATED');
    const page = await call(h, 'GET', '/events?sensorId=x', null);
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toBe('/login?next=%2Fevents%3FsensorId%3Dx');
    const loginPage = await call(h, 'GET', '/login', null);
    expect(loginPage.status).toBe(200);
    expect(loginPage.body).toContain('id="login-form"');
    for (const path of ['/api/sensors', '/api/model', '/fleet', '/live', '/analyse']) {
      expect((await call(h, 'GET', path, null)).status, path).not.toBe(200);
    }
  });

  it('serves the bundled front end and Leaflet locally, with a strict CSP', async () => {
    const app = await fetch(`${h.web.url}/static/app.js`);
    expect(app.status).toBe(200);
    expect(app.headers.get('content-type')).toMatch(/javascript/);
    expect((await app.text()).length).toBeGreaterThan(10_000);
    const live = await fetch(`${h.web.url}/static/live.js`);
    expect(live.status).toBe(200);
    const leaflet = await fetch(`${h.web.url}/static/leaflet.css`);
    expect(await leaflet.text()).toContain('.leaflet-container');
    const gz = await fetch(`${h.web.url}/static/live.js`, { headers: { 'accept-encoding': 'gzip' } });
    expect(gz.headers.get('content-encoding')).toBe('gzip'); // fetch decodes it transparently
    expect((await gz.text()).length).toBeGreaterThan(10_000);
    const csp = app.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain('img-src');
    expect(csp).toContain('http://127.0.0.1:9');
    expect(csp).not.toMatch(/googleapis|unpkg|cdn/);
  });

  it('signs in with a scrypt-hashed config user and sets a hardened session cookie', async () => {
    const bad = await call(h, 'POST', '/api/login', null, { username: ADMIN.username, password: 'nope' });
    expect(bad.status).toBe(401);
    expect(bad.body.error.code).toBe('WEB_LOGIN_FAILED');
    const unknown = await call(h, 'POST', '/api/login', null, { username: 'mallory', password: 'x' });
    expect(unknown.status).toBe(401);
    const res = await fetch(`${h.web.url}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    expect(res.status).toBe(200);
    const cookie = res.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^sw_session=/);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    expect(cookie).not.toMatch(/Secure/i); // plain http without an https publicUrl
    const session = await call(h, 'GET', '/api/session', { cookie: cookie.split(';')[0]! });
    expect(session.body).toMatchObject({ username: 'alice', role: 'admin' });
  });

  it('takes the login only as JSON, so a cross-site form cannot post it', async () => {
    const res = await fetch(`${h.web.url}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `username=${ADMIN.username}&password=${encodeURIComponent(ADMIN.password)}`,
    });
    expect(res.status).toBe(400);
  });

  it('rejects a tampered session cookie', async () => {
    const [name, value] = admin.cookie.split('=');
    const forged = `${name}=${value!.slice(0, -3)}abc`;
    expect((await call(h, 'GET', '/api/events', { cookie: forged })).status).toBe(401);
  });

  it('lists events newest first and filters by sensor and time', async () => {
    const base = Date.now() - 3_600_000;
    const events = [
      sampleEvent({ sensorId: 'hall-1', timestamp: new Date(base).toISOString() }),
      sampleEvent({ sensorId: 'yard-2', timestamp: new Date(base + 60_000).toISOString(), isScream: false }),
      sampleEvent({ sensorId: 'hall-1', timestamp: new Date(base + 120_000).toISOString() }),
    ];
    for (const e of events) await h.store.insertIfNew(e);
    const all = await call(h, 'GET', '/api/events', admin);
    expect(all.status).toBe(200);
    const ids = all.body.events.map((e: StoredEvent) => e.eventId);
    expect(ids.indexOf(events[2]!.eventId)).toBeLessThan(ids.indexOf(events[1]!.eventId));
    expect(ids.indexOf(events[1]!.eventId)).toBeLessThan(ids.indexOf(events[0]!.eventId));
    const hall = await call(h, 'GET', '/api/events?sensorId=hall-1', admin);
    expect(hall.body.events.every((e: StoredEvent) => e.sensorId === 'hall-1')).toBe(true);
    const window = await call(
      h,
      'GET',
      `/api/events?from=${encodeURIComponent(new Date(base + 30_000).toISOString())}&to=${encodeURIComponent(new Date(base + 90_000).toISOString())}`,
      admin,
    );
    expect(window.body.events.map((e: StoredEvent) => e.eventId)).toEqual([events[1]!.eventId]);
    const bad = await call(h, 'GET', '/api/events?from=yesterday', admin);
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('WEB_BAD_REQUEST');
    const detail = await call(h, 'GET', `/api/events/${events[0]!.eventId}`, viewer);
    expect(detail.body.event.location.address).toBe('Alexanderplatz 1, Berlin');
    expect((await call(h, 'GET', '/api/events/01JDNOPE000000000000000000', admin)).status).toBe(404);
  });

  it('pages through events with an opaque cursor', async () => {
    const base = Date.now() - 7_200_000;
    for (let i = 0; i < 3; i++) {
      await h.store.insertIfNew(
        sampleEvent({ sensorId: 'page-9', timestamp: new Date(base + i * 1000).toISOString() }),
      );
    }
    const first = await call(h, 'GET', '/api/events?sensorId=page-9&limit=2', admin);
    expect(first.body.events).toHaveLength(2);
    expect(first.body.nextBefore).toEqual(expect.any(String));
    const second = await call(
      h,
      'GET',
      `/api/events?sensorId=page-9&limit=2&before=${first.body.nextBefore}`,
      admin,
    );
    expect(second.body.events).toHaveLength(1);
    expect(second.body.nextBefore).toBeNull();
    expect(second.body.events[0].timestamp).toBe(new Date(base).toISOString());
    const bad = await call(h, 'GET', '/api/events?before=garbage', admin);
    expect(bad.status).toBe(400);
  });

  it('needs the CSRF token of the same session for state-changing requests, and records who reviewed', async () => {
    const e = sampleEvent();
    await h.store.insertIfNew(e);
    const path = `/api/events/${e.eventId}/review`;
    const none = await call(h, 'POST', path, { cookie: admin.cookie }, { verdict: 'false-alarm' });
    expect(none.status).toBe(403);
    expect(none.body.error.code).toBe('WEB_CSRF_INVALID');
    const other = await login(h.web.url, ADMIN);
    const crossed = await call(
      h,
      'POST',
      path,
      { cookie: admin.cookie, csrf: other.csrf },
      { verdict: 'false-alarm' },
    );
    expect(crossed.status).toBe(403);
    const ok = await call(h, 'POST', path, admin, { verdict: 'false-alarm', note: 'door slam <b>loud</b>' });
    expect(ok.status).toBe(200);
    expect(ok.body.event.review).toMatchObject({
      verdict: 'false-alarm',
      userId: 'alice',
      note: 'door slam <b>loud</b>',
    });
    expect((await h.store.get(e.eventId))!.review!.userId).toBe('alice');
  });

  it('lets viewers look but not review, alert or store', async () => {
    const e = sampleEvent();
    await h.store.insertIfNew(e);
    expect((await call(h, 'GET', '/api/events', viewer)).status).toBe(200);
    const review = await call(h, 'POST', `/api/events/${e.eventId}/review`, viewer, { verdict: 'confirmed' });
    expect(review.status).toBe(403);
    expect(review.body.error.code).toBe('WEB_FORBIDDEN');
    expect((await call(h, 'POST', `/api/events/${e.eventId}/alert`, viewer)).status).toBe(403);
    expect(h.alerts.calls.some((c) => c.eventId === e.eventId)).toBe(false);
  });

  it('sends a manual alert as the signed-in user and rate-limits it', async () => {
    const e = sampleEvent({ responseStatus: 'none', deliveries: [] });
    await h.store.insertIfNew(e);
    const first = await call(h, 'POST', `/api/events/${e.eventId}/alert`, admin);
    expect(first.status).toBe(200);
    expect(first.body.deliveries[0]).toMatchObject({ channel: 'sms', status: 'sent' });
    expect(first.body.event.responseStatus).toBe('alerted');
    expect(h.alerts.calls.at(-1)).toEqual({ eventId: e.eventId, userId: 'alice' });
    let last = first;
    for (let i = 0; i < 6 && last.status === 200; i++)
      last = await call(h, 'POST', `/api/events/${e.eventId}/alert`, admin);
    expect(last.status).toBe(429);
    expect(last.body.error.code).toBe('WEB_RATE_LIMITED');
    expect(Number(last.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(h.alerts.calls.filter((c) => c.eventId === e.eventId).length).toBe(5);
  });

  it('lists the fleet with offline sensors first', async () => {
    h.registry.set({ id: 'a-online', status: 'online', lastSeen: new Date().toISOString(), outboxDepth: 0 });
    h.registry.set({
      id: 'z-offline',
      status: 'offline',
      lastSeen: new Date(Date.now() - 3_600_000).toISOString(),
      outboxDepth: 12,
    });
    const r = await call(h, 'GET', '/api/sensors', viewer);
    expect(r.status).toBe(200);
    expect(r.body.sensors[0].id).toBe('z-offline');
    expect(r.body.counts).toMatchObject({ online: 1, offline: 1 });
    expect((await call(h, 'GET', '/api/sensors/z-offline', viewer)).body.sensor.outboxDepth).toBe(12);
    expect((await call(h, 'GET', '/api/sensors/nope', viewer)).status).toBe(404);
  });

  it('analyses an uploaded WAV with the shared core and can store it as an upload event', async () => {
    const wav = screamWav(fixtures.dir, 'scream-48k.wav', 48_000);
    const r = await call(h, 'POST', '/api/analyze', admin, wavForm(wav, 'scream-48k.wav'));
    expect(r.status).toBe(200);
    expect(r.body.file).toBe('scream-48k.wav');
    expect(r.body.originalSampleRate).toBe(48_000);
    expect(r.body.result.durationS).toBeCloseTo(5, 1);
    expect(r.body.result.windows.length).toBeGreaterThan(4);
    expect(r.body.result.isScream).toBe(true);
    expect(r.body.result.events[0].startS).toBeGreaterThan(0.3);
    expect(r.body.eventId).toBeNull();

    const stored = await call(
      h,
      'POST',
      '/api/analyze?store=true',
      admin,
      wavForm(wav, '../../etc/evil name.wav'),
    );
    expect(stored.status).toBe(200);
    const ev = await h.store.get(stored.body.eventId);
    expect(ev).toMatchObject({
      audioSource: 'upload:evil name.wav',
      alertType: 'upload',
      userId: 'alice',
      isScream: true,
    });
    expect(ev!.windows!.length).toBe(r.body.result.windows.length);
    // stored for the record, not sent through the alerting ingest
    expect(h.ingested.some((e) => e.eventId === stored.body.eventId)).toBe(false);
    expect(h.alerts.calls.some((c) => c.eventId === stored.body.eventId)).toBe(false);
  });

  it('analyses an MP3 too', async () => {
    const wav = screamWav(fixtures.dir, 'for-mp3.wav', 44_100);
    const mp3 = join(fixtures.dir, 'scream.mp3');
    execFileSync('sox', [wav, mp3]);
    const form = new FormData();
    form.append('file', new Blob([readFileSync(mp3)], { type: 'audio/mpeg' }), 'scream.mp3');
    const r = await call(h, 'POST', '/api/analyze', viewer, form);
    expect(r.status).toBe(200);
    expect(r.body.originalSampleRate).toBe(44_100);
    expect(r.body.result.isScream).toBe(true);
  });

  it('keeps answering other requests while a long upload is analysed (worker thread)', async () => {
    const long = join(fixtures.dir, 'long.wav');
    execFileSync('sox', [
      '-n',
      '-r',
      '44100',
      '-c',
      '1',
      '-b',
      '16',
      long,
      'synth',
      '20',
      'pinknoise',
      'vol',
      '0.2',
    ]);
    const order: string[] = [];
    const upload = call(h, 'POST', '/api/analyze', viewer, wavForm(long, 'long.wav')).then((r) => {
      order.push('analysis');
      return r;
    });
    // wait until the server has the upload (the analysis is then running), then ask for something else
    await expect
      .poll(() => h.logs.some((l) => l.msg === 'web: analysis started' && l.file === 'long.wav'), {
        timeout: 10_000,
      })
      .toBe(true);
    const health = await fetch(`${h.web.url}/healthz`);
    order.push('healthz');
    expect(health.status).toBe(200);
    expect((await upload).status).toBe(200);
    expect(order).toEqual(['healthz', 'analysis']);
  });

  it('reports no scream for a low hum', async () => {
    const r = await call(h, 'POST', '/api/analyze', viewer, wavForm(humWav(fixtures.dir), 'hum.wav'));
    expect(r.status).toBe(200);
    expect(r.body.result.isScream).toBe(false);
    expect(r.body.result.events).toEqual([]);
  });

  it('explains bad uploads: not audio, too large, missing, or a viewer storing', async () => {
    const txt = join(fixtures.dir, 'notes.txt');
    writeFileSync(txt, 'this is not audio');
    const bad = await call(h, 'POST', '/api/analyze', admin, wavForm(txt, 'notes.txt'));
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe('AUDIO_UNSUPPORTED');
    expect(bad.body.error.message).toContain('notes.txt');

    const truncated = join(fixtures.dir, 'cut.wav');
    writeFileSync(truncated, readFileSync(screamWav(fixtures.dir, 'full.wav')).subarray(0, 30));
    const cut = await call(h, 'POST', '/api/analyze', admin, wavForm(truncated, 'cut.wav'));
    expect(cut.status).toBe(422);
    expect(cut.body.error.code).toMatch(/^AUDIO_/);

    const big = join(fixtures.dir, 'big.wav');
    writeFileSync(big, Buffer.alloc(3 * 1024 * 1024, 1));
    const large = await call(h, 'POST', '/api/analyze', admin, wavForm(big, 'big.wav'));
    expect(large.status).toBe(413);
    expect(large.body.error.code).toBe('WEB_UPLOAD_TOO_LARGE');
    expect(large.body.error.message).toContain('web.maxUploadBytes');

    const missing = await call(h, 'POST', '/api/analyze', admin, {});
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe('WEB_UPLOAD_MISSING');

    const viewerStore = await call(
      h,
      'POST',
      '/api/analyze?store=true',
      viewer,
      wavForm(humWav(fixtures.dir), 'hum.wav'),
    );
    expect(viewerStore.status).toBe(403);
  });

  it('serves the same model to the browser', async () => {
    const r = await call(h, 'GET', '/api/model', viewer);
    expect(r.status).toBe(200);
    const model = ScreamModel.fromJSON(r.body, 'served');
    expect(model.version).toBe('test-centroid-750');
    expect(model.threshold).toBe(0.5);
  });

  it('stores a live browser alert with the browser position, or falls back to the IP location', async () => {
    const withPos = await call(h, 'POST', '/api/live/alert', admin, {
      screamProbability: 0.8,
      thresholdValue: 0.5,
      position: { latitude: 52.5, longitude: 13.4, accuracy: 12 },
      windows: [{ startS: 0, endS: 1.02, probability: 0.8 }],
    });
    expect(withPos.status).toBe(200);
    expect(withPos.body.event.location).toMatchObject({ latitude: 52.5, source: 'browser', accuracy: 12 });
    expect(withPos.body.event).toMatchObject({
      sensorId: 'browser',
      audioSource: 'browser:microphone',
      userId: 'alice',
      isScream: true,
    });
    const ingested = h.ingested.find((e) => e.eventId === withPos.body.event.eventId);
    expect(ingested?.alertType).toBe('scream');

    const noPos = await call(h, 'POST', '/api/live/alert', admin, {
      screamProbability: 0.7,
      thresholdValue: 0.5,
      position: null,
    });
    expect(noPos.status).toBe(200);
    expect(noPos.body.event.location).toMatchObject({ source: 'ip-database', address: 'near 127.0.0.1' });

    const invalid = await call(h, 'POST', '/api/live/alert', admin, {
      screamProbability: 3,
      thresholdValue: 0.5,
    });
    expect(invalid.status).toBe(400);
    expect(
      (await call(h, 'POST', '/api/live/alert', viewer, { screamProbability: 0.7, thresholdValue: 0.5 }))
        .status,
    ).toBe(403);
  });

  it('signs out: the old cookie stops working', async () => {
    const s = await login(h.web.url, VIEWER);
    expect((await call(h, 'POST', '/api/logout', s)).status).toBe(204);
    expect((await call(h, 'GET', '/api/events', s)).status).toBe(401);
  });

  it('does not redirect off-site after login and escapes what it echoes', async () => {
    const r = await call(
      h,
      'GET',
      `/login?next=${encodeURIComponent('//evil.example/"><script>alert(1)</script>')}`,
      null,
    );
    expect(r.body).not.toContain('<script>alert(1)');
    expect(r.body).toContain('value="/events"');
  });
});

describe('tile origin for the Content-Security-Policy', () => {
  it('allows exactly the configured tile host, with {s} subdomains as a wildcard', () => {
    expect(tileOrigin('https://tile.openstreetmap.org/{z}/{x}/{y}.png')).toBe(
      'https://tile.openstreetmap.org',
    );
    expect(tileOrigin('https://{s}.tile.example.net/{z}/{x}/{y}.png')).toBe('https://*.tile.example.net');
    expect(tileOrigin('/tiles/{z}/{x}/{y}.png')).toBe('');
  });
});

describe('web dashboard setup', () => {
  let h: WebHarness | null = null;
  afterEach(async () => {
    await h?.close();
    h = null;
  });

  it('creates a first-run admin when no users are configured: password in a 0600 file the log names, never in the log', async () => {
    h = await startWeb({ config: { users: [], sessionSecret: null } });
    const entry = h.logs.find((l) => typeof l.passwordFile === 'string');
    expect(entry).toBeDefined();
    const passwordFile = entry!.passwordFile as string;
    expect(statSync(passwordFile).mode & 0o777).toBe(0o600);
    const password = readFileSync(passwordFile, 'utf8').trim();
    expect(password.length).toBeGreaterThanOrEqual(12);
    expect(JSON.stringify(h.logs)).not.toContain(password);
    const stored = JSON.parse(readFileSync(join(h.dir, 'web-admin.json'), 'utf8'));
    expect(stored.passwordHash).toMatch(/^scrypt\$/);
    expect(JSON.stringify(stored)).not.toContain(password);
    const s = await login(h.web.url, { username: 'admin', password });
    expect(s.csrf.length).toBeGreaterThan(20);
    expect(readFileSync(join(h.dir, 'web-session-secret'), 'utf8').trim().length).toBeGreaterThanOrEqual(32);
  });

  it('applies the configured role on every request and drops users removed from the config', async () => {
    h = await startWeb();
    const s = await login(h.web.url, ADMIN);
    const adminHash = hashPassword(ADMIN.password);
    await h.close();
    // same session secret, alice demoted to viewer: her cookie still works but only as a viewer
    h = await startWeb({
      config: { users: [{ username: ADMIN.username, passwordHash: await adminHash, role: 'viewer' }] },
    });
    const session = await call(h, 'GET', '/api/session', s);
    expect(session.body.role).toBe('viewer');
    const e = sampleEvent();
    await h.store.insertIfNew(e);
    expect(
      (await call(h, 'POST', `/api/events/${e.eventId}/review`, s, { verdict: 'confirmed' })).status,
    ).toBe(403);
    await h.close();
    // alice removed: her cookie is refused
    h = await startWeb({
      config: { users: [{ username: 'bob', passwordHash: await adminHash, role: 'admin' }] },
    });
    expect((await call(h, 'GET', '/api/events', s)).status).toBe(401);
  });

  it('marks cookies Secure when the public URL is https', async () => {
    h = await startWeb({ config: { publicUrl: 'https://alerts.example.org' } });
    const res = await fetch(`${h.web.url}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    expect(res.headers.get('set-cookie')).toMatch(/; Secure/i);
  });

  it('rejects a config user whose password is not a hash, naming the config key', async () => {
    await expect(
      startWeb({ config: { users: [{ username: 'bob', passwordHash: 'hunter2', role: 'admin' }] } }),
    ).rejects.toThrow(/web\.users\[0\]\.passwordHash/);
  });

  it('fails to start with the host:port when the port is taken', async () => {
    h = await startWeb();
    const port = Number(new URL(h.web.url).port);
    await expect(startWeb({ config: { port } })).rejects.toThrow(`127.0.0.1:${port}`);
  });
});
