import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { sensorTopic } from '../../../protocol/topics.ts';
import {
  connectSensor,
  eventually,
  newEvent,
  publishEvent,
  startBridge,
  tempDir,
} from '../bridge-harness.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const YEAR_MS = 365 * 86_400_000;

describe('sensor clock skew (issue 11.12)', () => {
  it('an event stamped years ahead is listed by its received time, the skew shown on the event and the sensor', async () => {
    const dir = await tempDir('sw-skew-');
    cleanups.push(() => dir.remove());
    const { app, logs } = await startBridge({
      dataDir: dir.path,
      mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true },
      sensors: [{ id: 'hall-1' }, { id: 'yard-2' }],
      maxClockSkewS: 120,
    });
    cleanups.push(() => app.stop());
    const client = await connectSensor(`mqtt://127.0.0.1:${app.brokerPorts!.tcp}`, undefined, undefined);
    cleanups.push(() => client.endAsync(true));

    const ahead = new Date(Date.now() + 3 * YEAR_MS).toISOString();
    const future = newEvent({ sensorId: 'hall-1', timestamp: ahead });
    const before = Date.now();
    await publishEvent(client, future);
    // a little ahead (inside maxClockSkewS) is kept as the sensor stamped it
    const slightly = newEvent({ sensorId: 'yard-2', timestamp: new Date(Date.now() + 60_000).toISOString() });
    await publishEvent(client, slightly);
    const timeline = [
      { t: -0.512, p: 0.42, levelDbfs: -30.1 },
      { t: 0, p: 0.93, levelDbfs: -21 },
    ];
    const later = newEvent({
      sensorId: 'yard-2',
      timestamp: new Date(Date.now() + 1000).toISOString(),
      timeline,
    });
    await publishEvent(client, later);
    const hb = JSON.parse(readFileSync('test/protocol/golden/heartbeat.minimal.json', 'utf8'));
    await client.publishAsync(
      sensorTopic('screamwatch', 'hall-1', 'heartbeat'),
      JSON.stringify({ ...hb, sensorId: 'hall-1', timestamp: ahead }),
      { qos: 1 },
    );
    await eventually(() => logs.find('event stored').length === 3, 5000, 'three stored');

    const stored = await app.store.get(future.eventId);
    expect(stored?.sensorTimestamp).toBe(ahead);
    expect(stored!.clockSkewS!).toBeGreaterThan(3 * 365 * 86_400 - 60);
    expect(Date.parse(stored!.timestamp)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(stored!.timestamp)).toBeLessThanOrEqual(Date.now());
    expect(stored!.timestamp).toBe(stored!.receivedAt);
    expect((await app.store.get(slightly.eventId))?.timestamp).toBe(slightly.timestamp);
    expect((await app.store.get(slightly.eventId))?.sensorTimestamp).toBeUndefined();
    // the sensor's evidence timeline is stored as sent; an event without one has none
    expect((await app.store.get(later.eventId))?.timeline).toEqual(timeline);
    expect((await app.store.get(slightly.eventId))?.timeline).toBeUndefined();

    // newest first by the times we trust: the skewed event does not stay on top
    const list = await app.store.list({ limit: 10 });
    expect(list.map((e) => e.eventId)).toEqual([slightly.eventId, later.eventId, future.eventId]);

    const warn = logs.lines.filter((l) => l.code === 'SENSOR_CLOCK_SKEW');
    expect(warn).toHaveLength(1);
    expect(warn[0]).toMatchObject({ sensorId: 'hall-1', eventId: future.eventId, sensorTimestamp: ahead });

    const sensor = await eventually(() => {
      const s = app.registry.get('hall-1');
      return s?.clockSkewS != null ? s : null;
    });
    expect(sensor.clockSkewS!).toBeGreaterThan(3 * 365 * 86_400 - 60);
    // the fleet's "last event" is not pinned years ahead either
    expect(Date.parse(sensor.lastEventAt!)).toBeLessThanOrEqual(Date.now());
  });
});
