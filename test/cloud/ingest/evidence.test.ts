import { afterEach, describe, expect, it } from 'vitest';
import { encodeEvidence } from '../../../protocol/codec.ts';
import { PROTOCOL_VERSION } from '../../../protocol/messages.ts';
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

describe('event evidence: the 10 s after the confirmation follow the event', () => {
  it("completes the stored timeline from the sensor's evidence message; another sensor's is not taken", async () => {
    const dir = await tempDir('sw-evidence-');
    cleanups.push(() => dir.remove());
    const { app } = await startBridge({
      dataDir: dir.path,
      mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true },
      sensors: [{ id: 'hall-1' }, { id: 'yard-2' }],
    });
    cleanups.push(() => app.stop());
    const client = await connectSensor(`mqtt://127.0.0.1:${app.brokerPorts!.tcp}`, undefined, undefined);
    cleanups.push(() => client.endAsync(true));

    const before = [
      { t: -0.512, p: 0.42, levelDbfs: -30.1 },
      { t: 0, p: 0.93, levelDbfs: -21 },
    ];
    const event = newEvent({ sensorId: 'hall-1', timeline: before });
    await publishEvent(client, event);
    await eventually(() => app.store.get(event.eventId), 5000, 'event stored');
    const whole = [...before, { t: 0.512, p: 0.88, levelDbfs: -22.4 }, { t: 1.024, p: 0.12, levelDbfs: -40 }];
    const evidence = (sensorId: string, timeline = whole) =>
      encodeEvidence({
        v: PROTOCOL_VERSION,
        eventId: event.eventId,
        sensorId,
        timestamp: event.timestamp,
        timeline,
      });

    // another sensor cannot rewrite hall-1's evidence
    await client.publishAsync(
      sensorTopic('screamwatch', 'yard-2', 'evidence'),
      evidence('yard-2', [whole[0]!]),
      {
        qos: 1,
      },
    );
    await client.publishAsync(sensorTopic('screamwatch', 'hall-1', 'evidence'), evidence('hall-1'), {
      qos: 1,
    });
    const stored = await eventually(
      async () => {
        const e = await app.store.get(event.eventId);
        return e?.timeline?.length === 4 ? e : null;
      },
      5000,
      'timeline completed',
    );
    expect(stored.timeline).toEqual(whole);
    // a shorter (stale) one does not replace it
    await client.publishAsync(sensorTopic('screamwatch', 'hall-1', 'evidence'), evidence('hall-1', before), {
      qos: 1,
    });
    expect((await app.store.get(event.eventId))!.timeline).toEqual(whole);
    expect(await app.store.count()).toBe(1);
    expect(app.ingest.stats.stored).toBe(1);
  });
});
