/**
 * MQTT topic layout, defined once for both sides.
 *
 *   <root>/sensors/<sensorId>/events     QoS 1, one confirmed detection
 *   <root>/sensors/<sensorId>/status     retained online/offline (offline is the last will)
 *   <root>/sensors/<sensorId>/heartbeat  periodic health
 *   <root>/sensors/<sensorId>/evidence   QoS 1, an event's whole timeline, 10 s after it
 *   <root>/sensors/<sensorId>/command-results  QoS 1, the sensor's answer to a command
 *   <root>/sensors/<sensorId>/commands/<command>  QoS 1, bridge -> sensor (never a sensor's to publish)
 */
export const DEFAULT_TOPIC_ROOT = 'screamwatch';

export const MESSAGE_KINDS = ['events', 'status', 'heartbeat', 'command-results', 'evidence'] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];

/** Sensor ids become topic levels: no MQTT wildcards, separators or whitespace. */
export const SENSOR_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function isValidSensorId(id: string): boolean {
  return SENSOR_ID_PATTERN.test(id);
}

export function isValidTopicRoot(root: string): boolean {
  return root.length > 0 && !/[#+\s]/.test(root) && !root.startsWith('/') && !root.endsWith('/');
}

export function sensorTopic(root: string, sensorId: string, kind: MessageKind): string {
  return `${root}/sensors/${sensorId}/${kind}`;
}

/** Subscription filter for one kind from every sensor, e.g. `screamwatch/sensors/+/events`. */
export function sensorsFilter(root: string, kind: MessageKind | '#'): string {
  return kind === '#' ? `${root}/sensors/#` : `${root}/sensors/+/${kind}`;
}

/**
 * MQTT v5 / Mosquitto shared subscription: `$share/<group>/<filter>` [MQTT-4.8.2].
 * Brokers deliver each message to one member of the group, so several bridges split the load.
 */
export function sharedFilter(group: string, filter: string): string {
  return `$share/${group}/${filter}`;
}

export interface ParsedTopic {
  sensorId: string;
  kind: MessageKind;
}

/** Parses `<root>/sensors/<id>/<kind>`; null for anything else. */
export function parseSensorTopic(root: string, topic: string): ParsedTopic | null {
  const prefix = `${root}/sensors/`;
  if (!topic.startsWith(prefix)) return null;
  const rest = topic.slice(prefix.length).split('/');
  if (rest.length !== 2) return null;
  const [sensorId, kind] = rest as [string, string];
  if (!isValidSensorId(sensorId)) return null;
  if (!(MESSAGE_KINDS as readonly string[]).includes(kind)) return null;
  return { sensorId, kind: kind as MessageKind };
}

/** `<root>/sensors/<id>/commands/<command>`: where the bridge sends a command to one sensor. */
export function commandTopic(root: string, sensorId: string, command: string): string {
  return `${root}/sensors/${sensorId}/commands/${command}`;
}

/** What a sensor subscribes to for its commands. */
export function commandsFilter(root: string, sensorId: string): string {
  return `${root}/sensors/${sensorId}/commands/#`;
}
