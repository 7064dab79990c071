import { join } from 'node:path';
import type { Logger } from 'pino';
import { sensorTopic } from '../../protocol/topics.ts';
import { readJsonFile, writeJsonFileAtomic } from '../../runtime/json-file.ts';
import type { SensorView } from '../ingest/sensor-registry.ts';

export interface HomeAssistantConfig {
  enabled: boolean;
  /** Home Assistant's `discovery_prefix` (default `homeassistant`). */
  discoveryPrefix: string;
  /** The scream binary_sensor turns off this long after the last confirmed scream. */
  screamOffAfterS: number;
}

export interface HomeAssistantOptions {
  config: HomeAssistantConfig;
  topicRoot: string;
  dataDir: string;
  /** Configured sensors (`sensors:`): they keep their entities; others are removed. */
  configuredIds: () => string[];
  sensors: () => SensorView[];
  publish: (topic: string, payload: string, retain: boolean) => Promise<void>;
  logger: Logger;
  /** How often the registry is looked at for new sensors and changed device facts. */
  refreshMs?: number;
}

/** HA object ids and node ids: [a-zA-Z0-9_-] only (the sensor id may contain dots). */
export function haId(sensorId: string): string {
  return `screamwatch_${sensorId.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

interface Entity {
  component: 'binary_sensor' | 'sensor';
  objectId: string;
  payload: Record<string, unknown>;
}

/**
 * The discovery config payloads of one sensor, as Home Assistant's MQTT discovery expects
 * them (`<prefix>/<component>/<node_id>/<object_id>/config`, Zigbee2MQTT's layout): a
 * `binary_sensor` with device_class `sound` for a confirmed scream, `sensor`s for the input
 * level, the last probability and the input health. Availability follows the sensor's own
 * retained status topic (online / offline, the last will), so HA shows a dead sensor as
 * unavailable without the bridge doing anything.
 */
export function discoveryEntities(s: SensorView, topicRoot: string): Entity[] {
  const node = haId(s.id);
  const status = sensorTopic(topicRoot, s.id, 'status');
  const heartbeat = sensorTopic(topicRoot, s.id, 'heartbeat');
  const device: Record<string, unknown> = {
    identifiers: [node],
    name: s.name ?? s.id,
    manufacturer: 'Screamwatch',
    model: 'Screamwatch sound sensor',
    ...(s.daemonVersion && { sw_version: s.daemonVersion }),
    ...(s.room && { suggested_area: s.room }),
  };
  const availability = [
    {
      topic: status,
      value_template: '{{ value_json.state }}',
      payload_available: 'online',
      payload_not_available: 'offline',
    },
  ];
  const common = (objectId: string, name: string) => ({
    name,
    unique_id: `${node}_${objectId}`,
    object_id: `${node}_${objectId}`,
    availability,
    device,
    origin: { name: 'Screamwatch', url: 'https://github.com/screamwatch/screamwatch' },
  });
  return [
    {
      component: 'binary_sensor',
      objectId: 'scream',
      payload: {
        ...common('scream', 'Scream'),
        device_class: 'sound',
        state_topic: screamStateTopic(topicRoot, s.id),
        payload_on: 'ON',
        payload_off: 'OFF',
      },
    },
    {
      component: 'sensor',
      objectId: 'input_level',
      payload: {
        ...common('input_level', 'Input level'),
        state_topic: heartbeat,
        value_template: '{{ value_json.inputLevelDbfs }}',
        unit_of_measurement: 'dBFS',
        state_class: 'measurement',
        entity_category: 'diagnostic',
      },
    },
    {
      component: 'sensor',
      objectId: 'last_probability',
      payload: {
        ...common('last_probability', 'Last scream probability'),
        state_topic: heartbeat,
        value_template: '{{ (value_json.lastMaxProbability * 100) | round(0) }}',
        unit_of_measurement: '%',
        state_class: 'measurement',
      },
    },
    {
      component: 'sensor',
      objectId: 'input_health',
      payload: {
        ...common('input_health', 'Input health'),
        state_topic: status,
        value_template: "{{ value_json.health | default('ok') }}",
        entity_category: 'diagnostic',
      },
    },
  ];
}

/** Where the bridge publishes the scream state (retained ON/OFF). */
export function screamStateTopic(topicRoot: string, sensorId: string): string {
  return `${topicRoot}/ha/${sensorId}/scream`;
}

const PUBLISHED_FILE = 'homeassistant-published.json';

/**
 * Publishes Home Assistant discovery for every known sensor (configured, or seen on the
 * broker), retained, and republishes when a device fact changes (name, room, daemon version).
 * A sensor removed from `sensors:` gets its configs cleared (an empty retained payload is
 * HA's "remove this entity"); the ids published are kept in `<dataDir>/homeassistant-published.json`
 * so this also works after a restart.
 */
export class HomeAssistantDiscovery {
  private timer: NodeJS.Timeout | null = null;
  private readonly published = new Map<string, string>();
  private readonly offTimers = new Map<string, NodeJS.Timeout>();
  private running = false;
  private refreshing: Promise<void> | null = null;

  constructor(private readonly options: HomeAssistantOptions) {}

  private get file(): string {
    return join(this.options.dataDir, PUBLISHED_FILE);
  }

  private publishedIds(): string[] {
    try {
      const ids = readJsonFile(this.file);
      return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : [];
    } catch {
      return [];
    }
  }

  private savePublishedIds(ids: string[]): void {
    writeJsonFileAtomic(this.file, [...new Set(ids)].sort());
  }

  private configTopic(e: Entity, sensorId: string): string {
    return `${this.options.config.discoveryPrefix}/${e.component}/${haId(sensorId)}/${e.objectId}/config`;
  }

  async start(): Promise<void> {
    this.running = true;
    // Sensors no longer configured and not seen: remove their entities from HA.
    const known = new Set([...this.options.configuredIds(), ...this.options.sensors().map((s) => s.id)]);
    const stale = this.publishedIds().filter((id) => !known.has(id));
    for (const id of stale) await this.remove(id);
    for (const s of this.options.sensors()) {
      await this.options.publish(screamStateTopic(this.options.topicRoot, s.id), 'OFF', true);
    }
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.refreshMs ?? 10_000);
    this.timer.unref();
  }

  /** Publishes the configs that are new or changed. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const ids: string[] = [];
        for (const s of this.options.sensors()) {
          ids.push(s.id);
          for (const e of discoveryEntities(s, this.options.topicRoot)) {
            const topic = this.configTopic(e, s.id);
            const body = JSON.stringify(e.payload);
            if (this.published.get(topic) === body) continue;
            await this.options.publish(topic, body, true);
            this.published.set(topic, body);
          }
        }
        this.savePublishedIds([...ids, ...this.publishedIds()]);
      } catch (err) {
        this.options.logger.warn(
          { err: (err as Error).message },
          'Home Assistant discovery: publish failed; retrying',
        );
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  private async remove(sensorId: string): Promise<void> {
    const view = { id: sensorId, name: null, room: null, daemonVersion: null } as SensorView;
    for (const e of discoveryEntities(view, this.options.topicRoot)) {
      await this.options.publish(this.configTopic(e, sensorId), '', true);
    }
    await this.options.publish(screamStateTopic(this.options.topicRoot, sensorId), '', true);
    this.savePublishedIds(this.publishedIds().filter((id) => id !== sensorId));
    this.options.logger.info({ sensorId }, 'Home Assistant discovery: removed a sensor no longer configured');
  }

  /** A confirmed scream was stored: the binary_sensor is ON, and OFF screamOffAfterS later. */
  scream(sensorId: string): void {
    if (!this.running) return;
    const topic = screamStateTopic(this.options.topicRoot, sensorId);
    const fail = (err: Error) =>
      this.options.logger.warn({ err: err.message, sensorId }, 'Home Assistant: scream state not published');
    this.options.publish(topic, 'ON', true).catch(fail);
    const prev = this.offTimers.get(sensorId);
    if (prev) clearTimeout(prev);
    const t = setTimeout(() => {
      this.offTimers.delete(sensorId);
      this.options.publish(topic, 'OFF', true).catch(fail);
    }, this.options.config.screamOffAfterS * 1000);
    t.unref();
    this.offTimers.set(sensorId, t);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const t of this.offTimers.values()) clearTimeout(t);
    this.offTimers.clear();
    await this.refreshing;
  }
}
