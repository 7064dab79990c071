import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, login, sampleEvent, startWeb, VIEWER, type WebHarness } from './support.ts';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field
type Res = { status: number; body: any; headers: Headers };

async function call(
  h: WebHarness,
  method: string,
  path: string,
  auth: { cookie: string; csrf?: string },
  body?: unknown,
): Promise<Res> {
  const headers: Record<string, string> = { cookie: auth.cookie };
  if (auth.csrf) headers['x-csrf-token'] = auth.csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${h.web.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // CSV
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

interface Frame {
  id: string;
  event: string;
  data: string;
}

/** Reads server-sent events from GET /api/stream with fetch, as EventSource would. */
async function openStream(h: WebHarness, auth: { cookie: string }, lastEventId?: string) {
  const ac = new AbortController();
  const headers: Record<string, string> = { cookie: auth.cookie, accept: 'text/event-stream' };
  if (lastEventId) headers['last-event-id'] = lastEventId;
  const res = await fetch(`${h.web.url}/api/stream`, { headers, signal: ac.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const frames: Frame[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        let i = buf.indexOf('\n\n');
        while (i !== -1) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const f: Frame = { id: '', event: 'message', data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) f.id = line.slice(4);
            else if (line.startsWith('event: ')) f.event = line.slice(7);
            else if (line.startsWith('data: ')) f.data += line.slice(6);
          }
          if (f.data) frames.push(f);
          i = buf.indexOf('\n\n');
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    frames,
    async waitFor(pred: (f: Frame[]) => boolean, what: string) {
      const deadline = Date.now() + 5000;
      while (!pred(frames)) {
        if (Date.now() > deadline)
          throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(frames)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      ac.abort();
      await pump;
    },
  };
}

const eventIds = (frames: Frame[]) =>
  frames.filter((f) => f.event === 'event').map((f) => JSON.parse(f.data).event.eventId as string);

describe('live stream, response state and export', () => {
  let h: WebHarness;
  let admin: { cookie: string; csrf: string };
  let viewer: { cookie: string; csrf: string };

  beforeAll(async () => {
    h = await startWeb();
    admin = await login(h.web.url, ADMIN);
    viewer = await login(h.web.url, VIEWER);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('pushes stored and changed events, and resumes after Last-Event-ID with no gap and no duplicate', async () => {
    const s = await openStream(h, viewer);
    const a = sampleEvent({ sensorId: 'live-1' });
    await h.store.insertIfNew(a);
    await s.waitFor((f) => eventIds(f).includes(a.eventId), 'event a');
    const first = s.frames.find((f) => f.event === 'event')!;
    expect(JSON.parse(first.data)).toMatchObject({
      type: 'event',
      created: true,
      event: { eventId: a.eventId },
    });
    await s.close();

    // while disconnected: two new events and a change to the first
    const b = sampleEvent({ sensorId: 'live-1' });
    const c = sampleEvent({ sensorId: 'live-1' });
    await h.store.insertIfNew(b);
    await h.store.insertIfNew(c);
    await h.store.setResponseStatus(a.eventId, 'failed');
    const again = await openStream(h, viewer, first.id);
    await again.waitFor((f) => eventIds(f).length >= 3, 'the missed changes');
    await new Promise((r) => setTimeout(r, 200));
    expect(eventIds(again.frames)).toEqual([b.eventId, c.eventId, a.eventId]);
    const ids = again.frames.map((f) => f.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(JSON.parse(again.frames.at(-1)!.data).event.responseStatus).toBe('failed');
    await again.close();
  });

  it('tells a client to reload when it cannot resume (another process, unknown id)', async () => {
    const s = await openStream(h, viewer, 'deadbeef-12');
    await s.waitFor((f) => f.some((x) => x.event === 'reset'), 'reset');
    await s.close();
  });

  it('starts from the liveCursor of a REST snapshot, so an event stored in between is not lost', async () => {
    const page = await call(h, 'GET', '/api/events?limit=5', viewer);
    expect(page.body.liveCursor).toMatch(/^[0-9a-f]+-\d+$/);
    const d = sampleEvent({ sensorId: 'live-2' });
    await h.store.insertIfNew(d);
    await new Promise((r) => setTimeout(r, 100));
    const s = await openStream(h, viewer, page.body.liveCursor);
    await s.waitFor((f) => eventIds(f).includes(d.eventId), 'the event stored after the snapshot');
    await s.close();
  });

  it('pushes sensor changes from the registry', async () => {
    const s = await openStream(h, viewer);
    h.registry.set({ id: 'push-3', status: 'online', outboxDepth: 4 });
    await s.waitFor(
      (f) => f.some((x) => x.event === 'sensor' && JSON.parse(x.data).sensor.id === 'push-3'),
      'sensor',
    );
    await s.close();
  });

  it('acknowledges, then resolves, appending each change; a second responder learns who is on it', async () => {
    const e = sampleEvent();
    await h.store.insertIfNew(e);
    const ack = await call(h, 'POST', `/api/events/${e.eventId}/acknowledge`, admin, {});
    expect(ack.status).toBe(200);
    expect(ack.body.event.response).toMatchObject({ state: 'acknowledged', userId: 'alice' });
    // the viewer cannot acknowledge
    expect((await call(h, 'POST', `/api/events/${e.eventId}/acknowledge`, viewer, {})).status).toBe(403);
    const res1 = await call(h, 'POST', `/api/events/${e.eventId}/resolve`, admin, {
      verdict: 'confirmed',
      note: 'first look',
    });
    expect(res1.body.event.review).toMatchObject({ verdict: 'confirmed', note: 'first look' });
    const res2 = await call(h, 'POST', `/api/events/${e.eventId}/review`, admin, {
      verdict: 'false-alarm',
      note: 'on second look: TV',
    });
    expect(res2.body.event.response).toMatchObject({ state: 'resolved', verdict: 'false-alarm' });
    expect(
      res2.body.event.history.map((x: { action: string; verdict?: string; note?: string }) => [
        x.action,
        x.verdict ?? null,
        x.note ?? null,
      ]),
    ).toEqual([
      ['acknowledged', null, null],
      ['resolved', 'confirmed', 'first look'],
      ['resolved', 'false-alarm', 'on second look: TV'],
    ]);
    const other = sampleEvent();
    await h.store.insertIfNew(other);
    await h.store.recordResponse(other.eventId, {
      response: { state: 'acknowledged', userId: 'bob', at: new Date().toISOString() },
      entry: { action: 'acknowledged', state: 'acknowledged', userId: 'bob', at: new Date().toISOString() },
    });
    const conflict = await call(h, 'POST', `/api/events/${other.eventId}/acknowledge`, admin, {});
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.message).toContain('already acknowledged by bob');
  });

  it('filters by response state and verdict, and resolves many false alarms at once', async () => {
    const batch = [
      sampleEvent({ sensorId: 'bulk-9' }),
      sampleEvent({ sensorId: 'bulk-9' }),
      sampleEvent({ sensorId: 'bulk-9' }),
    ];
    for (const e of batch) await h.store.insertIfNew(e);
    const r = await call(h, 'POST', '/api/events/review-bulk', admin, {
      eventIds: [batch[0]!.eventId, batch[1]!.eventId, '01JZZZZZZZZZZZZZZZZZZZZZZZ'],
      verdict: 'false-alarm',
    });
    expect(r.status).toBe(200);
    expect(r.body.resolved.sort()).toEqual([batch[0]!.eventId, batch[1]!.eventId].sort());
    expect(r.body.missing).toEqual(['01JZZZZZZZZZZZZZZZZZZZZZZZ']);
    const fa = await call(h, 'GET', '/api/events?sensorId=bulk-9&verdict=false-alarm', viewer);
    expect(fa.body.events.map((e: { eventId: string }) => e.eventId).sort()).toEqual(
      [batch[0]!.eventId, batch[1]!.eventId].sort(),
    );
    const fresh = await call(h, 'GET', '/api/events?sensorId=bulk-9&response=new', viewer);
    expect(fresh.body.events.map((e: { eventId: string }) => e.eventId)).toEqual([batch[2]!.eventId]);
    expect((await call(h, 'GET', '/api/events?response=maybe', viewer)).status).toBe(400);
  });

  it('refuses a From later than To with a message that says so', async () => {
    const r = await call(h, 'GET', '/api/events?from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z', viewer);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('later than');
  });

  it('exports the filtered list as CSV (formula cells neutralised) and JSON', async () => {
    const e = sampleEvent({
      sensorId: 'exp-1',
      notes: '=HYPERLINK("http://x")',
      location: {
        latitude: -33.9,
        longitude: 18.4,
        accuracy: 10,
        address: 'Cape Town, "Bo-Kaap"',
        source: 'sensor-config',
      },
    });
    await h.store.insertIfNew(e);
    await h.store.insertIfNew(sampleEvent({ sensorId: 'exp-2' }));
    const csv = await call(h, 'GET', '/api/events/export?sensorId=exp-1&format=csv', viewer);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toContain('text/csv');
    expect(csv.headers.get('content-disposition')).toMatch(
      /attachment; filename="screamwatch-events-.*\.csv"/,
    );
    const lines = (csv.body as string).trim().split('\r\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]!.split(',').slice(0, 4)).toEqual(['eventId', 'timestamp', 'receivedAt', 'sensorId']);
    expect(lines[1]).toContain(e.eventId);
    expect(lines[1]).toContain(',-33.9,18.4,');
    expect(lines[1]).toContain('"Cape Town, ""Bo-Kaap"""');
    expect(lines[1]).toContain(`"'=HYPERLINK(""http://x"")"`);
    const json = await call(h, 'GET', '/api/events/export?sensorId=exp-1&format=json', viewer);
    expect(json.body.events.map((x: { eventId: string }) => x.eventId)).toEqual([e.eventId]);
  });
});
