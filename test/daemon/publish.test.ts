import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DaemonApp } from '../../daemon/app.ts';
import { OutboxStore } from '../../daemon/outbox/outbox-store.ts';
import type { EventMessage } from '../../protocol/messages.ts';
import { startAedes } from '../support/aedes.ts';
import { screamSequenceWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { freePort } from '../support/free-port.ts';
import { startMosquitto, writePasswordFile } from '../support/mosquitto.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from './helpers.ts';

let fixtures: { dir: string; remove: () => Promise<void> };
let modelPath: string;
let threeScreams: string;
let oneScream: string;

beforeAll(async () => {
  fixtures = await tempDir('sw-fixtures-');
  modelPath = await tinyModelFile(fixtures.dir);
  threeScreams = (await screamSequenceWav(fixtures.dir, 'three', 3, { gapS: 2 })).path;
  oneScream = (await screamSequenceWav(fixtures.dir, 'one', 1, { gapS: 2 })).path;
});
afterAll(() => fixtures.remove());

const teardown = new Teardown();
afterEach(() => teardown.run());

const fastReconnect = { initialDelayMs: 100, maxDelayMs: 400, multiplier: 2 };

function startApp(input: Parameters<typeof daemonConfig>[0]) {
  const logs = captureLogs();
  const app = new DaemonApp({
    config: daemonConfig(input),
    logger: logs.logger,
    mqttReconnect: fastReconnect,
  });
  teardown.add(() => app.stop());
  const committed: EventMessage[] = [];
  app.on('committed', (_id: number, m: EventMessage) => committed.push(m));
  const ended = new Promise<void>((r) => app.once('source-end', () => r()));
  return { app, logs, committed, ended };
}

const eventsOf = (messages: { topic: string; payload: Buffer }[]) =>
  messages
    .filter((m) => m.topic.endsWith('/events'))
    .map((m) => JSON.parse(m.payload.toString()) as EventMessage);

describe('outbox and MQTT delivery', () => {
  it('broker down while screams happen: events wait in the outbox, then all arrive in order', async () => {
    const port = await freePort();
    const state = await tempDir();
    teardown.add(state.remove);
    const { app, logs, committed, ended } = startApp({
      stateDir: state.dir,
      audio: { source: `file:${threeScreams}`, fast: true },
      detection: { modelPath },
      mqtt: { url: `mqtt://127.0.0.1:${port}` },
    });
    await app.start();
    await ended;
    expect(committed).toHaveLength(3);
    expect(app.outbox.depthOf('event')).toBe(3);
    expect(app.publisher.isConnected).toBe(false);
    await eventually(() => logs.find(/MQTT_CONNECT_FAILED/).length > 0, 3000, 'connect failure logged');
    expect(String(logs.find(/MQTT_CONNECT_FAILED/)[0]!.msg)).toContain(`mqtt://127.0.0.1:${port}`);

    const broker = await startAedes({ port });
    teardown.add(() => broker.stop());
    await broker.waitFor((m) => eventsOf(m).length >= 3, 10_000);
    await eventually(() => app.outbox.depth === 0, 5000, 'outbox empty');
    expect(eventsOf(broker.messages).map((e) => e.eventId)).toEqual(committed.map((e) => e.eventId));
  });

  it('the broker vanishing mid-stream loses nothing: unacknowledged rows are sent again', async () => {
    const port = await freePort();
    let broker = await startAedes({ port });
    const state = await tempDir();
    teardown.add(state.remove);
    const { app, committed } = startApp({
      stateDir: state.dir,
      audio: { source: `file:${threeScreams}` }, // real time, 17 s
      detection: { modelPath },
      mqtt: { url: broker.url },
    });
    await app.start();
    await broker.waitFor((m) => eventsOf(m).length >= 1, 15_000);
    const firstBroker = broker;
    await firstBroker.stop(); // crash: sockets dropped
    await eventually(() => committed.length >= 2, 15_000, 'second scream while the broker is down');
    broker = await startAedes({ port });
    teardown.add(() => broker.stop());
    await eventually(() => committed.length === 3, 15_000, 'third scream');
    await broker.waitFor((m) => eventsOf(m).length >= 2, 10_000);
    await eventually(() => app.outbox.depthOf('event') === 0, 5000, 'events acknowledged');
    const delivered = [...eventsOf(firstBroker.messages), ...eventsOf(broker.messages)].map((e) => e.eventId);
    // at least once: every committed event arrived, in order of first arrival
    const firstSeen = [...new Set(delivered)];
    expect(firstSeen).toEqual(committed.map((e) => e.eventId));
  }, 45_000);

  it('a full outbox is logged and reported; events beyond the cap are kept and delivered', async () => {
    const port = await freePort();
    const state = await tempDir();
    teardown.add(state.remove);
    const pre = new OutboxStore(state.dir, { maxRows: 10 });
    for (let i = 0; i < 10; i++)
      pre.add('event', 'screamwatch/sensors/hall-1/events', Buffer.from(`{"old":${i}}`), i);
    pre.close();
    const { app, logs, committed, ended } = startApp({
      stateDir: state.dir,
      audio: { source: `file:${oneScream}`, fast: true },
      detection: { modelPath },
      mqtt: { url: `mqtt://127.0.0.1:${port}` },
      outbox: { maxRows: 10 },
    });
    await app.start();
    await ended;
    expect(committed).toHaveLength(1);
    expect(app.outbox.depth).toBe(11);
    const full = logs.find(/OUTBOX_FULL/);
    expect(full).toHaveLength(1);
    expect(String(full[0]!.msg)).toMatch(/reached outbox\.maxRows=10: .*events are kept beyond the cap/);
    expect(app.heartbeat.message()).toMatchObject({ outboxFull: true, outboxDepth: 11 });

    const broker = await startAedes({ port });
    teardown.add(() => broker.stop());
    await broker.waitFor((m) => m.filter((x) => x.topic.endsWith('/events')).length >= 11, 10_000);
    const payloads = broker.messages
      .filter((m) => m.topic.endsWith('/events'))
      .map((m) => m.payload.toString());
    expect(payloads.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `{"old":${i}}`));
    expect(JSON.parse(payloads[10]!).eventId).toBe(committed[0]!.eventId);
  });

  it('Mosquitto refusing the password: a clear MQTT_AUTH_REFUSED error, backoff, no crash, the event kept', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const passwordFile = await writePasswordFile(join(state.dir, 'passwd'), { sensor: 'right-password' });
    const broker = await startMosquitto({ passwordFile });
    teardown.add(() => broker.stop());
    const { app, logs, committed, ended } = startApp({
      stateDir: join(state.dir, 'state'),
      audio: { source: `file:${oneScream}`, fast: true },
      detection: { modelPath },
      mqtt: { url: broker.url, username: 'sensor', password: 'wrong-password' },
    });
    await app.start();
    await ended;
    await eventually(() => logs.find(/MQTT_AUTH_REFUSED/).length > 0, 5000, 'auth refusal logged');
    const refusal = logs.find(/MQTT_AUTH_REFUSED/)[0]!;
    expect(String(refusal.msg)).toMatch(
      new RegExp(
        `MQTT broker mqtt://127.0.0.1:${broker.port} refused the credentials of user "sensor" .*check mqtt\\.username / mqtt\\.password`,
      ),
    );
    expect(app.publisher.authError?.code).toBe('MQTT_AUTH_REFUSED');
    // retried with backoff (100 ms doubling to 400 ms): every refusal is logged, the repeats at
    // debug level; wait for the first and two retries
    await eventually(() => logs.find(/MQTT_AUTH_REFUSED/).length >= 3, 5000, 'two refused retries');
    // logged once as an error, not once per attempt
    expect(logs.find(/MQTT_AUTH_REFUSED/).filter((l) => l.level === 50)).toHaveLength(1);
    expect(committed).toHaveLength(1);
    expect(app.outbox.depthOf('event')).toBe(1);
    expect(app.publisher.connects).toBe(0);
  });

  it('Mosquitto restarted while screams happen: a persistent subscriber gets every event, in order', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const port = await freePort();
    const persistenceDir = join(state.dir, 'mosquitto');
    await mkdir(persistenceDir);
    // a cloud-side subscriber with a persistent session (clean: false, QoS 1)
    const subscriberOptions = { clientId: 'test-cloud', clean: false, reconnectPeriod: 0 } as const;
    let broker = await startMosquitto({ port, persistenceDir });
    const sub1 = await mqtt.connectAsync(broker.url, subscriberOptions);
    await sub1.subscribeAsync('screamwatch/sensors/+/events', { qos: 1 });
    await sub1.endAsync();
    await broker.stop(); // down before the screams

    const { app, committed, ended } = startApp({
      stateDir: join(state.dir, 'state'),
      audio: { source: `file:${threeScreams}`, fast: true },
      detection: { modelPath },
      mqtt: { url: `mqtt://127.0.0.1:${port}` },
    });
    await app.start();
    await ended;
    expect(app.outbox.depthOf('event')).toBe(3);

    broker = await startMosquitto({ port, persistenceDir });
    teardown.add(() => broker.stop());
    await eventually(() => app.outbox.depthOf('event') === 0, 10_000, 'events acknowledged by Mosquitto');
    const received: string[] = [];
    const sub2 = mqtt.connect(broker.url, subscriberOptions);
    teardown.add(() => sub2.endAsync());
    sub2.on('message', (_t, payload) =>
      received.push((JSON.parse(payload.toString()) as EventMessage).eventId),
    );
    await eventually(() => received.length >= 3, 10_000, 'queued events at the subscriber');
    expect(received).toEqual(committed.map((e) => e.eventId));
  });
});
