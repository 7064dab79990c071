import { afterEach, describe, expect, it } from 'vitest';
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

describe('duplicate eventIds', () => {
  it('de-duplicates per (sensorId, eventId): a redelivery is dropped quietly, other content of the same sensor is kept out with EVENT_ID_CONFLICT, another sensor with the same id is stored under a derived id', async () => {
    const dir = await tempDir('sw-conflict-');
    cleanups.push(() => dir.remove());
    const { app, logs } = await startBridge({
      dataDir: dir.path,
      mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true },
      sensors: [{ id: 'hall-1' }, { id: 'yard-2' }],
    });
    cleanups.push(() => app.stop());
    const client = await connectSensor(`mqtt://127.0.0.1:${app.brokerPorts!.tcp}`, undefined, undefined);
    cleanups.push(() => client.endAsync(true));
    const ev = newEvent({ sensorId: 'hall-1' });
    await publishEvent(client, ev);
    await publishEvent(client, ev); // a redelivery
    await publishEvent(client, { ...ev, screamProbability: 0.31 });
    const other = { ...ev, sensorId: 'yard-2', screamProbability: 0.97 };
    await publishEvent(client, other);
    await publishEvent(client, other); // its redelivery: still one copy
    const conflicts = await eventually(
      () => {
        const c = logs.lines.filter((l) => l.code === 'EVENT_ID_CONFLICT');
        return c.length >= 3 ? c : null;
      },
      5000,
      'three conflicts',
    );
    expect(conflicts.map((c) => c.differs)).toEqual([['screamProbability'], ['sensorId'], ['sensorId']]);
    expect(conflicts[1]).toMatchObject({
      sensorId: 'yard-2',
      storedSensorId: 'hall-1',
      sensorEventId: ev.eventId,
    });
    const derived = conflicts[1]!.eventId as string;
    expect(derived).not.toBe(ev.eventId);
    expect(conflicts[2]!.eventId).toBe(derived);
    // the derived id keeps the sensor's time, so the list order is unchanged
    expect(derived.slice(0, 10)).toBe(ev.eventId.slice(0, 10));
    await eventually(() => logs.find('event stored').length === 2, 5000, 'both stored');
    const stored = await app.store.get(derived);
    expect(stored).toMatchObject({ sensorId: 'yard-2', screamProbability: 0.97, sensorEventId: ev.eventId });
    expect((await app.store.get(ev.eventId))?.sensorId).toBe('hall-1');
    expect(await app.store.count()).toBe(2);
  });
});
