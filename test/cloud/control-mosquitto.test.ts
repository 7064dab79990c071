import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import { DaemonApp } from '../../daemon/app.ts';
import { encodeCommand } from '../../protocol/codec.ts';
import { UlidFactory } from '../../protocol/event-id.ts';
import { PROTOCOL_VERSION } from '../../protocol/messages.ts';
import { commandTopic } from '../../protocol/topics.ts';
import { captureLogs, daemonConfig } from '../daemon/helpers.ts';
import { roomToneWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { type MosquittoHarness, startMosquitto, writePasswordFile } from '../support/mosquitto.ts';
import { startBridge, tempDir } from './bridge-harness.ts';

const ACL = fileURLToPath(new URL('../../deploy/mosquitto/screamwatch.acl', import.meta.url));
const USERS = { 'screamwatch-bridge': 'bridge-pw-123', 'hall-1': 'hall-pw-123', 'yard-2': 'yard-pw-123' };

/*
 * The control plane on Mosquitto with the documented ACL (deploy/mosquitto), persistence on:
 * a command sent while the sensor is away waits in its persistent session, through a broker
 * restart, and applies when the sensor returns; only the bridge account may send commands.
 */
describe('remote control over Mosquitto', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let mosquitto: MosquittoHarness;
  let passwordFile: string;
  let bridge: CloudApp;
  let wav: string;
  let modelPath: string;
  const daemons: DaemonApp[] = [];

  const daemon = async () => {
    const app = new DaemonApp({
      config: daemonConfig({
        sensorId: 'hall-1',
        stateDir: join(dir.path, 'sensor'),
        audio: { source: `file:${wav}` },
        detection: { modelPath },
        mqtt: { url: mosquitto.url, username: 'hall-1', password: USERS['hall-1'] },
      }),
      logger: captureLogs().logger,
      loopFileSource: true,
      mqttReconnect: { initialDelayMs: 100, maxDelayMs: 500, multiplier: 2 },
    });
    daemons.push(app);
    await app.start();
    await eventually(() => app.publisher.isConnected, 10_000, 'sensor connected');
    return app;
  };

  beforeAll(async () => {
    dir = await tempDir('sw-control-mosq-');
    passwordFile = await writePasswordFile(join(dir.path, 'passwd'), USERS);
    mosquitto = await startMosquitto({ passwordFile, aclFile: ACL, persistenceDir: dir.path });
    wav = await roomToneWav(join(dir.path, 'room.wav'), 20);
    modelPath = await tinyModelFile(dir.path);
    ({ app: bridge } = await startBridge({
      dataDir: join(dir.path, 'cloud'),
      mqtt: {
        broker: mosquitto.url,
        username: 'screamwatch-bridge',
        password: USERS['screamwatch-bridge'],
        clientId: 'bridge-a',
      },
      sensors: [{ id: 'hall-1', name: 'Hall' }],
    }));
  });

  afterAll(async () => {
    for (const d of daemons) await d.stop();
    await bridge?.stop();
    await mosquitto?.stop();
    await dir?.remove();
  });

  it('a command for an absent sensor survives a broker restart and applies when the sensor returns', async () => {
    const first = await daemon();
    await first.stop();
    const sent = await bridge.control.send(
      'hall-1',
      { command: 'set-detection', detection: { threshold: 0.81 } },
      'ops',
    );
    expect(sent.state).toBe('queued');
    // Mosquitto restarts (SIGTERM saves its persistence) while the sensor is away
    const port = mosquitto.port;
    await mosquitto.stop();
    mosquitto = await startMosquitto({ port, passwordFile, aclFile: ACL, persistenceDir: dir.path });
    const back = await daemon();
    await eventually(
      async () =>
        (await bridge.control.list('hall-1', 10)).find((c) => c.commandId === sent.commandId)?.result ?? null,
      20_000,
      'the answer recorded by the bridge',
    );
    expect(back.detection.detector.options.threshold).toBe(0.81);
    const [record] = await bridge.control.list('hall-1', 1);
    expect(record).toMatchObject({ state: 'applied', issuedBy: 'ops', result: { ok: true } });
    await eventually(() => bridge.registry.get('hall-1')?.detection?.threshold === 0.81, 10_000, 'status');
  });

  it('the ACL lets only the bridge account send commands', async () => {
    const app = daemons.at(-1)!;
    const applied = app.commands!.counts.applied;
    const other = await mqtt.connectAsync(mosquitto.url, {
      username: 'yard-2',
      password: USERS['yard-2'],
      reconnectPeriod: 0,
    });
    const ids = new UlidFactory();
    // Mosquitto acknowledges a publish it denies by ACL (MQTT 3.1.1 has no way to say no) and drops it
    await other.publishAsync(
      commandTopic('screamwatch', 'hall-1', 'set-detection'),
      encodeCommand({
        v: PROTOCOL_VERSION,
        commandId: ids.next(Date.now()),
        sensorId: 'hall-1',
        command: 'set-detection',
        issuedAt: new Date().toISOString(),
        issuedBy: 'intruder',
        detection: { threshold: 0.99 },
      }),
      { qos: 1 },
    );
    await other.endAsync();
    // a bridge command after it arrives: if the intruder's had been delivered, it came first
    const ping = await bridge.control.send('hall-1', { command: 'ping' }, 'ops');
    await eventually(
      async () =>
        (await bridge.control.list('hall-1', 10)).find((c) => c.commandId === ping.commandId)?.result ?? null,
      10_000,
      'ping answered',
    );
    expect(app.detection.detector.options.threshold).toBe(0.81);
    // only the ping
    expect(app.commands!.counts.applied).toBe(applied + 1);
  });
});
