import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../../cloud/app.ts';
import type { EventMessage } from '../../../protocol/messages.ts';
import { eventually } from '../../support/eventually.ts';
import { freePort } from '../../support/free-port.ts';
import { type MosquittoHarness, startMosquitto } from '../../support/mosquitto.ts';
import {
  connectSensor,
  type LogCapture,
  newEvent,
  publishEvent,
  startBridge,
  tempDir,
} from '../bridge-harness.ts';

const BIN = fileURLToPath(new URL('../../../bin/screamwatch.js', import.meta.url));

/**
 * Shared subscriptions on Mosquitto 2.0: the broker keeps handing a dead member its share of the
 * events (queued in its session) until the session expires, and then drops them. So a bridge
 * that dies either comes back (or is replaced with its clientId) within mqtt.sessionExpiryS, or
 * its share since it died is gone; after the expiry the others get everything.
 */
describe('bridge sessions on Mosquitto: stranded share, expiry, takeover', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let mosquitto: MosquittoHarness;
  let sensor: MqttClient;
  const apps: { app: CloudApp; logs: LogCapture }[] = [];
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = await tempDir('sw-share-');
    mosquitto = await startMosquitto();
    sensor = await connectSensor(mosquitto.url, undefined, undefined);
  });
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const a of apps.splice(0)) await a.app.stop();
  });
  afterAll(async () => {
    await sensor?.endAsync(true);
    await mosquitto?.stop();
    await dir?.remove();
  });

  // One share group per test: a stopped bridge's session (and its share) outlives the test.
  let group = 'none';
  const config = (name: string, clientId: string, sessionExpiryS: number) => ({
    dataDir: join(dir.path, name),
    mqtt: { broker: mosquitto.url, clientId, sessionExpiryS, sharedGroup: group },
    sensors: [{ id: 'hall-1', name: 'Hall' }],
    alerts: { policies: [{ group: 'default', cooldownS: 0, contacts: { sms: [], email: [] } }] },
  });

  /** A bridge as its own process (`screamwatch cloud`), to be killed with SIGKILL. */
  const spawnBridge = async (name: string, clientId: string, sessionExpiryS: number) => {
    const cfg = join(dir.path, `${name}.json`);
    await writeFile(cfg, JSON.stringify(config(name, clientId, sessionExpiryS)));
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env))
      if (!k.startsWith('SCREAMWATCH_') && k !== 'MONGODB_URI') env[k] = v;
    const child = spawn(
      process.execPath,
      [BIN, 'cloud', '--config', cfg, '--http-port', String(await freePort())],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    await eventually(
      () => {
        if (child.exitCode !== null) throw new Error(`bridge ${name} exited: ${out.slice(-2000)}`);
        return out.includes('connected to external MQTT broker');
      },
      20_000,
      `bridge ${name} connected`,
    );
    // The SUBSCRIBE goes out after the CONNACK that the log line reports: let it reach the
    // broker, or the "dead" bridge never joined the group (seen on a loaded machine).
    await new Promise((r) => setTimeout(r, 1500));
    return {
      kill9: async () => {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await gone;
      },
    };
  };

  const storedIn = async (app: CloudApp, events: EventMessage[]) => {
    const ids: string[] = [];
    for (const e of events) if (await app.store.get(e.eventId)) ids.push(e.eventId);
    return ids;
  };

  it('takeover: a replacement bridge started with the dead one`s clientId gets its queued share', async () => {
    group = 'takeover';
    const survivor = await startBridge(config('b1', 'bridge-b1', 60));
    apps.push(survivor);
    const dead = await spawnBridge('a1', 'bridge-a1', 60);
    await dead.kill9();
    const events = Array.from({ length: 10 }, () => newEvent());
    for (const e of events) await publishEvent(sensor, e);
    // Round robin: the survivor gets its half, the dead member's half waits in its session.
    await eventually(
      async () => (await storedIn(survivor.app, events)).length >= 5,
      10_000,
      'survivor share',
    );
    await new Promise((r) => setTimeout(r, 500));
    const survivorIds = await storedIn(survivor.app, events);
    expect(survivorIds.length).toBeLessThan(10);

    // The recipe: same clientId, any host and data dir (the stores are shared in production).
    const replacement = await startBridge(config('a1-replacement', 'bridge-a1', 60));
    apps.push(replacement);
    expect(replacement.logs.find('connected to external MQTT broker')[0]).toMatchObject({
      clientId: 'bridge-a1',
      sessionPresent: true,
    });
    await eventually(
      async () =>
        (await storedIn(replacement.app, events)).length + (await storedIn(survivor.app, events)).length ===
        10,
      10_000,
      'stranded share delivered to the replacement',
    );
    const replacementIds = await storedIn(replacement.app, events);
    expect(new Set([...survivorIds, ...replacementIds]).size).toBe(10);
    expect(replacementIds.filter((id) => survivorIds.includes(id))).toEqual([]);
  });

  it('after mqtt.sessionExpiryS the broker stops queueing for a dead bridge: the others get every event', async () => {
    group = 'expiry';
    const survivor = await startBridge(config('b2', 'bridge-b2', 60));
    apps.push(survivor);
    const dead = await spawnBridge('a2', 'bridge-a2', 1);
    await dead.kill9();
    // Mosquitto expires sessions on its once-a-second housekeeping.
    await new Promise((r) => setTimeout(r, 2500));
    const events = Array.from({ length: 6 }, () => newEvent());
    for (const e of events) await publishEvent(sensor, e);
    await eventually(
      async () => (await storedIn(survivor.app, events)).length === 6,
      10_000,
      'every event on the survivor',
    );
    // And a bridge coming back after the expiry starts a new session.
    const late = await startBridge(config('a2-late', 'bridge-a2', 1));
    apps.push(late);
    expect(late.logs.find('connected to external MQTT broker')[0]).toMatchObject({ sessionPresent: false });
  });
});

/**
 * Mosquitto 2.0 with persistence restores a persistent session after a restart, but not its
 * shared subscriptions: until the bridge subscribes again, an event has no subscriber and is
 * acknowledged to the sensor and dropped. A plain subscription is restored and queues it. This is
 * why the README's zero-loss setup on Mosquitto uses `mqtt.sharedGroup: null` with MongoDB.
 */
describe('Mosquitto restart: shared vs plain subscription (the documented guarantee)', () => {
  for (const [mode, filter, expected] of [
    ['shared', '$share/g/t', ['before', 'queued']],
    ['plain', 't', ['before', 'queued', 'after-restart']],
  ] as const) {
    it(`${mode}: receives ${expected.join(', ')}`, async () => {
      const dir = await tempDir('sw-mosq-restart-');
      const port = await freePort();
      const conf = {
        port,
        configExtra: `persistence true\npersistence_location ${dir.path}/\nautosave_interval 1`,
      };
      let broker = await startMosquitto(conf);
      const got: string[] = [];
      const bridgeClient = () => {
        const c = mqtt.connect(broker.url, {
          clientId: `bridge-${mode}`,
          protocolVersion: 5,
          clean: false,
          properties: { sessionExpiryInterval: 60 },
          reconnectPeriod: 0,
        });
        c.on('message', (_t, p) => got.push(p.toString()));
        return c;
      };
      try {
        let bridge = bridgeClient();
        await new Promise((r) => bridge.once('connect', r));
        await bridge.subscribeAsync(filter, { qos: 1 });
        const sensor = await mqtt.connectAsync(broker.url, { clientId: `s-${mode}`, reconnectPeriod: 0 });
        await sensor.publishAsync('t', 'before', { qos: 1 });
        await eventually(() => got.length === 1, 5000, 'first message');
        await bridge.endAsync(true);
        await sensor.publishAsync('t', 'queued', { qos: 1 });
        await new Promise((r) => setTimeout(r, 1500)); // autosave
        await sensor.endAsync(true);
        await broker.stop();
        broker = await startMosquitto(conf);
        const again = await mqtt.connectAsync(broker.url, { clientId: `s-${mode}`, reconnectPeriod: 0 });
        // Acknowledged by the broker either way.
        await again.publishAsync('t', 'after-restart', { qos: 1 });
        await again.endAsync(true);
        bridge = bridgeClient();
        await new Promise((r) => bridge.once('connect', r));
        await new Promise((r) => setTimeout(r, 800));
        await bridge.endAsync(true);
        expect(got).toEqual(expected);
      } finally {
        await broker.stop();
        await dir.remove();
      }
    });
  }
});
