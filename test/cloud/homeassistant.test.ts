import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CloudApp } from '../../cloud/app.ts';
import { parseCloudConfig } from '../../cloud/config/schema.ts';
import { sensorTopic } from '../../protocol/topics.ts';
import { eventually } from '../support/eventually.ts';
import { startMosquitto, writePasswordFile } from '../support/mosquitto.ts';
import { connectSensor, LogCapture, newEvent, publishEvent, tempDir } from './bridge-harness.ts';

const ACL = fileURLToPath(new URL('../../deploy/mosquitto/screamwatch.acl', import.meta.url));
const USERS = { 'screamwatch-bridge': 'bridge-pw-123', 'hall-1': 'hall-pw-123', homeassistant: 'ha-pw-123' };

/**
 * What Home Assistant's MQTT discovery requires of each config payload (HA docs, "MQTT
 * Discovery" and the binary_sensor / sensor platform pages): state_topic is required for both
 * platforms; a device block needs identifiers (or connections) and, to be grouped under one
 * device, every entity needs a unique_id; each availability entry needs its topic.
 */
function checkAgainstHaRequiredKeys(component: string, c: Record<string, unknown>): string[] {
  const problems: string[] = [];
  if (component !== 'binary_sensor' && component !== 'sensor')
    problems.push(`unexpected component ${component}`);
  if (typeof c.state_topic !== 'string' || c.state_topic === '') problems.push('state_topic (required)');
  if (typeof c.unique_id !== 'string') problems.push('unique_id (required for a device)');
  const device = c.device as Record<string, unknown> | undefined;
  if (!device || !(Array.isArray(device.identifiers) && device.identifiers.length > 0))
    problems.push('device.identifiers');
  for (const a of (c.availability as { topic?: unknown }[] | undefined) ?? [])
    if (typeof a.topic !== 'string') problems.push('availability[].topic');
  if (component === 'binary_sensor' && c.device_class !== 'sound') problems.push('device_class sound');
  const allowed = new Set([
    'name',
    'unique_id',
    'object_id',
    'availability',
    'device',
    'origin',
    'device_class',
    'state_topic',
    'payload_on',
    'payload_off',
    'value_template',
    'unit_of_measurement',
    'state_class',
    'entity_category',
  ]);
  for (const k of Object.keys(c)) if (!allowed.has(k)) problems.push(`unknown key ${k}`);
  return problems;
}

interface Seen {
  topic: string;
  payload: string;
  retain: boolean;
}

async function watch(url: string, filters: string[]): Promise<{ client: MqttClient; seen: Seen[] }> {
  const client = await mqtt.connectAsync(url, {
    username: 'homeassistant',
    password: USERS.homeassistant,
    reconnectPeriod: 0,
    clientId: `ha-${Math.random().toString(16).slice(2)}`,
  });
  const seen: Seen[] = [];
  client.on('message', (topic, payload, packet) =>
    seen.push({ topic, payload: payload.toString(), retain: packet.retain }),
  );
  await client.subscribeAsync(filters, { qos: 1 });
  return { client, seen };
}

describe('Home Assistant MQTT discovery published by the bridge (Mosquitto, deploy ACL)', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('retained configs per sensor with HA required keys, availability from the status topic, a scream flips the state, removed sensors are cleared', async () => {
    const dir = await tempDir('sw-ha-');
    cleanup.push(dir.remove);
    const passwordFile = await writePasswordFile(join(dir.path, 'passwd'), USERS);
    const mosquitto = await startMosquitto({ passwordFile, aclFile: ACL });
    cleanup.push(() => mosquitto.stop());

    // An earlier bridge published entities for "old-1", which is no longer configured.
    const oldTopic = 'homeassistant/binary_sensor/screamwatch_old-1/scream/config';
    const old = await mqtt.connectAsync(mosquitto.url, {
      username: 'screamwatch-bridge',
      password: USERS['screamwatch-bridge'],
      reconnectPeriod: 0,
    });
    await old.publishAsync(oldTopic, '{"name":"Scream"}', { qos: 1, retain: true });
    await old.endAsync();
    await writeFile(join(dir.path, 'homeassistant-published.json'), JSON.stringify(['hall-1', 'old-1']));

    const logs = new LogCapture();
    const app = new CloudApp({
      config: parseCloudConfig(
        {
          dataDir: dir.path,
          mqtt: {
            broker: mosquitto.url,
            username: 'screamwatch-bridge',
            password: USERS['screamwatch-bridge'],
            clientId: 'bridge-ha',
          },
          sensors: [{ id: 'hall-1', name: 'Main hall', room: 'Hall' }],
          alerts: { policies: [{ group: 'default', cooldownS: 0, contacts: { sms: [], email: [] } }] },
          homeAssistant: { enabled: true, screamOffAfterS: 1 },
        },
        'test',
      ),
      env: {},
      logger: pino({ level: 'debug' }, logs),
      web: false,
      alertPollMs: 50,
      homeAssistantRefreshMs: 100,
    });
    cleanup.push(() => app.stop());
    await app.start();

    // Home Assistant connects later and gets everything from retained messages.
    const ha = await watch(mosquitto.url, [
      'homeassistant/#',
      'screamwatch/ha/#',
      'screamwatch/sensors/+/status',
    ]);
    cleanup.push(() => ha.client.endAsync(true));
    const configs = await eventually(
      () => {
        const c = ha.seen.filter((m) => m.topic.endsWith('/config') && m.payload !== '');
        return c.length >= 4 ? c : null;
      },
      5000,
      'four discovery configs',
    );
    expect(configs.map((m) => m.topic).sort()).toEqual([
      'homeassistant/binary_sensor/screamwatch_hall-1/scream/config',
      'homeassistant/sensor/screamwatch_hall-1/input_health/config',
      'homeassistant/sensor/screamwatch_hall-1/input_level/config',
      'homeassistant/sensor/screamwatch_hall-1/last_probability/config',
    ]);
    for (const m of configs) {
      expect(m.retain).toBe(true);
      const component = m.topic.split('/')[1]!;
      const c = JSON.parse(m.payload) as Record<string, unknown>;
      expect(checkAgainstHaRequiredKeys(component, c), m.topic).toEqual([]);
      expect(c.availability).toEqual([
        {
          topic: 'screamwatch/sensors/hall-1/status',
          value_template: '{{ value_json.state }}',
          payload_available: 'online',
          payload_not_available: 'offline',
        },
      ]);
      expect(c.device).toMatchObject({
        identifiers: ['screamwatch_hall-1'],
        name: 'Main hall',
        model: 'Screamwatch sound sensor',
        suggested_area: 'Hall',
      });
    }
    const binary = JSON.parse(configs.find((m) => m.topic.includes('binary_sensor'))!.payload);
    expect(binary.state_topic).toBe('screamwatch/ha/hall-1/scream');
    // the removed sensor's retained config is gone from the broker
    expect(ha.seen.some((m) => m.topic === oldTopic && m.payload !== '')).toBe(false);
    expect(ha.seen.find((m) => m.topic === 'screamwatch/ha/hall-1/scream')?.payload).toBe('OFF');

    // the sensor comes online: availability topic, and sw_version joins the device block
    const sensor = await connectSensor(mosquitto.url, 'hall-1', USERS['hall-1']);
    cleanup.push(() => sensor.endAsync(true));
    await sensor.publishAsync(
      sensorTopic('screamwatch', 'hall-1', 'status'),
      JSON.stringify({
        v: 1,
        sensorId: 'hall-1',
        state: 'online',
        timestamp: new Date().toISOString(),
        daemonVersion: '9.8.7',
      }),
      { qos: 1, retain: true },
    );
    await eventually(
      () =>
        ha.seen.some((m) => m.topic.endsWith('scream/config') && m.payload.includes('"sw_version":"9.8.7"')),
      5000,
      'sw_version in the device block',
    );
    const status = ha.seen.filter((m) => m.topic === 'screamwatch/sensors/hall-1/status').at(-1)!;
    expect(JSON.parse(status.payload).state).toBe('online'); // what value_template {{ value_json.state }} yields

    // a confirmed scream turns the binary_sensor on, and off screamOffAfterS later
    const before = ha.seen.length;
    await publishEvent(sensor, newEvent({ screamProbability: 0.95 }));
    const states = () =>
      ha.seen
        .slice(before)
        .filter((m) => m.topic === 'screamwatch/ha/hall-1/scream')
        .map((m) => m.payload);
    await eventually(() => states().includes('ON'), 5000, 'state ON');
    await eventually(() => states().join(',') === 'ON,OFF', 5000, 'state OFF after 1 s');

    // a near-miss report does not
    const n = ha.seen.length;
    await publishEvent(sensor, newEvent({ isScream: false, screamProbability: 0.6 }));
    await eventually(async () => (await app.store.count()) === 2, 5000, 'report stored');
    await new Promise((r) => setTimeout(r, 200));
    expect(ha.seen.slice(n).filter((m) => m.topic === 'screamwatch/ha/hall-1/scream')).toEqual([]);

    // a fresh subscriber (HA restarting) finds no trace of the removed sensor
    const fresh = await watch(mosquitto.url, ['homeassistant/#']);
    cleanup.push(() => fresh.client.endAsync(true));
    await eventually(() => fresh.seen.length >= 4, 5000, 'retained configs');
    await new Promise((r) => setTimeout(r, 200));
    expect(fresh.seen.filter((m) => m.topic.includes('old-1'))).toEqual([]);
  });
});
