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
  it('a redelivery is dropped quietly; the same id with other content or from another sensor is logged as EVENT_ID_CONFLICT', async () => {
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
    await publishEvent(client, { ...ev, sensorId: 'yard-2' });
    const conflicts = await eventually(
      () => {
        const c = logs.lines.filter((l) => l.code === 'EVENT_ID_CONFLICT');
        return c.length >= 2 ? c : null;
      },
      5000,
      'two conflicts',
    );
    expect(conflicts.map((c) => c.differs)).toEqual([['screamProbability'], ['sensorId']]);
    expect(conflicts[1]).toMatchObject({ sensorId: 'yard-2', storedSensorId: 'hall-1' });
    expect(logs.find('event stored')).toHaveLength(1);
  });
});
