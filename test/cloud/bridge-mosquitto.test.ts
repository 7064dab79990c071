import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import { ExternalBroker } from '../../cloud/broker/external-broker.ts';
import { type CloudConfigInput, CloudConfigSchema } from '../../cloud/config/schema.ts';
import { sensorTopic } from '../../protocol/topics.ts';
import { eventually } from '../support/eventually.ts';
import { freePort } from '../support/free-port.ts';
import { type MosquittoHarness, startMosquitto, writePasswordFile } from '../support/mosquitto.ts';
import {
  connectSensor,
  type LogCapture,
  newEvent,
  publishEvent,
  startBridge,
  tempDir,
} from './bridge-harness.ts';

const ACL = fileURLToPath(new URL('../../deploy/mosquitto/screamwatch.acl', import.meta.url));
const USERS = { 'screamwatch-bridge': 'bridge-pw-123', 'hall-1': 'hall-pw-123', 'yard-2': 'yard-pw-123' };

describe('cloud bridges on an external Mosquitto with a shared subscription', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let mosquitto: MosquittoHarness;
  const bridges: { app: CloudApp; logs: LogCapture }[] = [];
  const clients: MqttClient[] = [];

  const bridgeConfig = (name: string): CloudConfigInput => ({
    dataDir: join(dir.path, name),
    mqtt: {
      broker: mosquitto.url,
      username: 'screamwatch-bridge',
      password: USERS['screamwatch-bridge'],
      clientId: `bridge-${name}`,
    },
    sensors: [{ id: 'hall-1', name: 'Hall' }],
    alerts: { policies: [{ group: 'default', cooldownS: 0, contacts: { sms: [], email: [] } }] },
  });

  beforeAll(async () => {
    dir = await tempDir('sw-mosq-');
    const passwordFile = await writePasswordFile(join(dir.path, 'passwd'), USERS);
    // The documented ACL from deploy/mosquitto, verbatim.
    mosquitto = await startMosquitto({ passwordFile, aclFile: ACL });
  });

  afterAll(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true).catch(() => {});
    for (const b of bridges.splice(0)) await b.app.stop();
    await mosquitto?.stop();
    await dir.remove();
  });

  it('splits events between two bridges, each stored exactly once, while both see every status', async () => {
    const a = await startBridge(bridgeConfig('a'));
    const b = await startBridge(bridgeConfig('b'));
    bridges.push(a, b);
    const hall = await connectSensor(mosquitto.url, 'hall-1', USERS['hall-1']);
    clients.push(hall);
    await hall.publishAsync(
      sensorTopic('screamwatch', 'hall-1', 'status'),
      Buffer.from(
        JSON.stringify({ v: 1, sensorId: 'hall-1', state: 'online', timestamp: new Date().toISOString() }),
      ),
      { qos: 1, retain: true },
    );
    const events = Array.from({ length: 20 }, () => newEvent());
    for (const e of events) await publishEvent(hall, e);

    await eventually(
      async () => (await a.app.store.count()) + (await b.app.store.count()) === 20,
      10_000,
      '20 events stored',
    );
    const [na, nb] = [await a.app.store.count(), await b.app.store.count()];
    expect(na).toBeGreaterThan(0);
    expect(nb).toBeGreaterThan(0);
    for (const e of events) {
      const inA = (await a.app.store.get(e.eventId)) !== null;
      const inB = (await b.app.store.get(e.eventId)) !== null;
      expect(inA !== inB).toBe(true);
    }
    await eventually(
      () =>
        a.app.registry.get('hall-1')?.status === 'online' &&
        b.app.registry.get('hall-1')?.status === 'online',
      5000,
      'both see status',
    );
  });

  it('drops a publish under another sensor id at the broker (ACL) and never stores it', async () => {
    const [a, b] = [bridges[0]!, bridges[1]!];
    const before = (await a.app.store.count()) + (await b.app.store.count());
    const hall = clients[0]!;
    const forged = newEvent({ sensorId: 'yard-2' });
    await hall.publishAsync(
      sensorTopic('screamwatch', 'yard-2', 'events'),
      Buffer.from(JSON.stringify(forged)),
      { qos: 1 },
    );
    const marker = newEvent();
    await publishEvent(hall, marker);
    await eventually(
      async () => (await a.app.store.get(marker.eventId)) ?? (await b.app.store.get(marker.eventId)),
      5000,
      'marker stored',
    );
    expect((await a.app.store.get(forged.eventId)) ?? (await b.app.store.get(forged.eventId))).toBeNull();
    expect((await a.app.store.count()) + (await b.app.store.count())).toBe(before + 1);
  });

  it('receives events published while the bridges were down (persistent session)', async () => {
    for (const b of bridges.splice(0)) await b.app.stop();
    const hall = clients[0]!;
    const queued = [newEvent(), newEvent(), newEvent()];
    // No bridge is connected now: only the bridges' persistent sessions can hold these.
    for (const e of queued) await publishEvent(hall, e);
    const a = await startBridge(bridgeConfig('a'));
    bridges.push(a);
    const b = await startBridge(bridgeConfig('b'));
    bridges.push(b);
    // Each bridge resumed its session (a clean session would have had nothing queued)...
    for (const x of [a, b])
      expect(x.logs.find('connected to external MQTT broker')[0]).toMatchObject({ sessionPresent: true });
    // ...and every event queued in them is stored, once, by one of the two.
    const where = await eventually(
      async () => {
        const out: string[] = [];
        for (const e of queued) {
          const inA = (await a.app.store.get(e.eventId)) !== null;
          const inB = (await b.app.store.get(e.eventId)) !== null;
          if (!inA && !inB) return null;
          out.push(inA && inB ? 'both' : inA ? 'a' : 'b');
        }
        return out;
      },
      10_000,
      'queued events delivered after restart',
    );
    expect(where).not.toContain('both');
  });

  it('refuses to start with bad broker credentials, naming the broker', async () => {
    const cfg = bridgeConfig('c');
    cfg.mqtt!.password = 'wrong';
    const err = await startBridge(cfg).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CLOUD_BROKER_CONNECT_FAILED' });
    expect((err as Error).message).toContain(mosquitto.url);
  });
});

describe('deploy/mosquitto/mosquitto.conf', () => {
  it('starts Mosquitto as documented (paths and port substituted) and enforces its password file', async () => {
    const dir = await tempDir('sw-mosq-conf-');
    const port = await freePort();
    const bridgePort = await freePort();
    const conf = (
      await readFile(fileURLToPath(new URL('../../deploy/mosquitto/mosquitto.conf', import.meta.url)), 'utf8')
    )
      .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
      .replace(/^listener 1884 127\.0\.0\.1$/m, `listener ${bridgePort} 127.0.0.1`)
      .replaceAll('/etc/mosquitto/screamwatch-bridges.passwd', join(dir.path, 'bridges.passwd'))
      .replaceAll('/etc/mosquitto/screamwatch.passwd', join(dir.path, 'passwd'))
      .replaceAll('/etc/mosquitto/screamwatch.acl', ACL)
      .replace('/var/lib/mosquitto/', `${dir.path}/`);
    const confPath = join(dir.path, 'mosquitto.conf');
    await writeFile(confPath, `${process.getuid?.() === 0 ? 'user root\n' : ''}${conf}`);
    const { 'screamwatch-bridge': bridgePw, ...sensors } = USERS;
    await writePasswordFile(join(dir.path, 'passwd'), sensors);
    await writePasswordFile(join(dir.path, 'bridges.passwd'), { 'screamwatch-bridge': bridgePw });
    const child = spawn('mosquitto', ['-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      const url = `mqtt://127.0.0.1:${port}`;
      const sensor = await eventually(
        () => connectSensor(url, 'hall-1', USERS['hall-1']).catch(() => null),
        5000,
        `mosquitto up (${log})`,
      );
      await sensor.endAsync();
      await expect(connectSensor(url, 'hall-1', 'nope')).rejects.toThrow();
      await expect(connectSensor(url, undefined, undefined)).rejects.toThrow();

      // Client-id takeover (issue 11.7): a bridge holds a persistent session on its listener;
      // sensors connecting with its client id (or another sensor's) replace nobody.
      const bridgeUrl = `mqtt://127.0.0.1:${bridgePort}`;
      const bridge = await mqtt.connectAsync(bridgeUrl, {
        clientId: 'bridge-a',
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 60 },
        username: 'screamwatch-bridge',
        password: bridgePw,
        reconnectPeriod: 0,
      });
      const received: string[] = [];
      bridge.on('message', (_t, p) => received.push(p.toString()));
      await bridge.subscribeAsync('$share/g/screamwatch/sensors/+/events', { qos: 1 });
      let bridgeClosed = 0;
      bridge.on('close', () => bridgeClosed++);
      const yard = await mqtt.connectAsync(url, {
        clientId: 'screamwatch-yard-2',
        username: 'yard-2',
        password: USERS['yard-2'],
        reconnectPeriod: 0,
      });
      let yardClosed = 0;
      yard.on('close', () => yardClosed++);
      // (both get client id `hall-1` on the sensors' listener, so one at a time)
      const thief = (clientId: string) =>
        mqtt.connectAsync(url, {
          clientId,
          clean: false,
          username: 'hall-1',
          password: USERS['hall-1'],
          reconnectPeriod: 0,
        });
      await (await thief('bridge-a')).endAsync();
      const thieves = [await thief('screamwatch-yard-2')];
      // sensor credentials do not work on the bridges' listener
      await expect(connectSensor(bridgeUrl, 'hall-1', USERS['hall-1'])).rejects.toThrow();
      await thieves[0]!.publishAsync('screamwatch/sensors/hall-1/events', 'from-hall-1', { qos: 1 });
      await eventually(() => received.includes('from-hall-1'), 5000, 'the bridge still receives');
      expect(bridgeClosed).toBe(0);
      expect(yardClosed).toBe(0);
      expect(bridge.connected && yard.connected).toBe(true);
      for (const c of [...thieves, yard, bridge]) await c.endAsync(true);
    } finally {
      child.kill('SIGTERM');
      await exited;
      await dir.remove();
    }
  });
});

describe('external broker client', () => {
  it('does not acknowledge a message it failed to store: the broker delivers it again', async () => {
    const dir = await tempDir('sw-ext-');
    const passwordFile = await writePasswordFile(join(dir.path, 'passwd'), USERS);
    const broker = await startMosquitto({ passwordFile, aclFile: ACL });
    const config = CloudConfigSchema.parse({
      mqtt: {
        broker: broker.url,
        username: 'screamwatch-bridge',
        password: USERS['screamwatch-bridge'],
        clientId: 'ext-redelivery',
      },
    }).mqtt;
    const source = new ExternalBroker({ config, logger: pino({ level: 'silent' }), reconnectPeriodMs: 100 });
    const deliveries: string[] = [];
    source.setHandler(async (topic, payload) => {
      deliveries.push(`${topic} ${payload.toString()}`);
      if (deliveries.length === 1) throw new Error('store unavailable');
    });
    const sensor = await connectSensor(broker.url, 'hall-1', USERS['hall-1']);
    try {
      await source.start();
      await sensor.publishAsync(sensorTopic('screamwatch', 'hall-1', 'events'), 'payload-1', { qos: 1 });
      await eventually(() => deliveries.length >= 2, 10_000, 'redelivery');
      expect(deliveries.slice(0, 2)).toEqual([
        'screamwatch/sensors/hall-1/events payload-1',
        'screamwatch/sensors/hall-1/events payload-1',
      ]);
      // Acknowledged the second time: not delivered a third time.
      await new Promise((r) => setTimeout(r, 500));
      expect(deliveries).toHaveLength(2);
    } finally {
      await sensor.endAsync(true);
      await source.stop();
      await broker.stop();
      await dir.remove();
    }
  });
});
