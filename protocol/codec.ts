import type { z } from 'zod';
import { ProtocolError } from './errors.ts';
import {
  type CommandMessage,
  CommandMessageSchema,
  type CommandResultMessage,
  CommandResultMessageSchema,
  type EventMessage,
  EventMessageSchema,
  type EvidenceMessage,
  EvidenceMessageSchema,
  type HeartbeatMessage,
  HeartbeatMessageSchema,
  MAX_PAYLOAD_BYTES,
  PROTOCOL_VERSION,
  type StatusMessage,
  StatusMessageSchema,
} from './messages.ts';
import type { MessageKind } from './topics.ts';

export type SensorMessage =
  | { kind: 'events'; message: EventMessage }
  | { kind: 'status'; message: StatusMessage }
  | { kind: 'heartbeat'; message: HeartbeatMessage }
  | { kind: 'command-results'; message: CommandResultMessage }
  | { kind: 'evidence'; message: EvidenceMessage };

const schemas = {
  events: EventMessageSchema,
  status: StatusMessageSchema,
  heartbeat: HeartbeatMessageSchema,
  'command-results': CommandResultMessageSchema,
  evidence: EvidenceMessageSchema,
} as const;

function describe(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

/**
 * Validates a payload received on `<root>/sensors/<topicSensorId>/<kind>`. Throws a
 * ProtocolError with a code (MQTT_PAYLOAD_TOO_LARGE, MQTT_PAYLOAD_INVALID,
 * MQTT_VERSION_UNSUPPORTED, MQTT_SENSOR_MISMATCH) and never returns a half-valid message.
 */
export function decodeSensorMessage(
  kind: MessageKind,
  topicSensorId: string,
  payload: Uint8Array,
): SensorMessage {
  const raw = parsePayload(payload);
  const parsed = schemas[kind].safeParse(raw);
  if (!parsed.success) throw new ProtocolError('MQTT_PAYLOAD_INVALID', `${kind}: ${describe(parsed.error)}`);
  checkSensor(parsed.data.sensorId, topicSensorId);
  return { kind, message: parsed.data } as SensorMessage;
}

/**
 * Validates a command received on `<root>/sensors/<topicSensorId>/commands/<name>`: the same
 * checks as the bridge's, plus the topic's command name must be the payload's.
 */
export function decodeCommand(
  topicSensorId: string,
  topicCommand: string,
  payload: Uint8Array,
): CommandMessage {
  const raw = parsePayload(payload);
  const parsed = CommandMessageSchema.safeParse(raw);
  if (!parsed.success) throw new ProtocolError('MQTT_PAYLOAD_INVALID', `command: ${describe(parsed.error)}`);
  checkSensor(parsed.data.sensorId, topicSensorId);
  if (parsed.data.command !== topicCommand) {
    throw new ProtocolError(
      'MQTT_TOPIC_INVALID',
      `command ${JSON.stringify(parsed.data.command)} arrived on the topic of ${JSON.stringify(topicCommand)}`,
    );
  }
  return parsed.data;
}

function checkSensor(payloadSensorId: string, topicSensorId: string): void {
  if (payloadSensorId !== topicSensorId) {
    throw new ProtocolError(
      'MQTT_SENSOR_MISMATCH',
      `payload sensorId ${JSON.stringify(payloadSensorId)} does not match topic sensor ${JSON.stringify(topicSensorId)}`,
    );
  }
}

/** Size, UTF-8 JSON object, protocol version: what every message must pass before its schema. */
function parsePayload(payload: Uint8Array): unknown {
  if (payload.byteLength > MAX_PAYLOAD_BYTES) {
    throw new ProtocolError(
      'MQTT_PAYLOAD_TOO_LARGE',
      `payload is ${payload.byteLength} bytes, limit ${MAX_PAYLOAD_BYTES}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch (err) {
    throw new ProtocolError('MQTT_PAYLOAD_INVALID', `payload is not UTF-8 JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ProtocolError('MQTT_PAYLOAD_INVALID', 'payload is not a JSON object');
  }
  const version = (raw as { v?: unknown }).v;
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      'MQTT_VERSION_UNSUPPORTED',
      `protocol version ${JSON.stringify(version)} is not ${PROTOCOL_VERSION}`,
    );
  }
  return raw;
}

/** Validates before sending, so a sensor can never publish what the cloud would reject. */
export function encodeEvent(message: EventMessage): Buffer {
  return encode(EventMessageSchema, message, 'events');
}
export function encodeStatus(message: StatusMessage): Buffer {
  return encode(StatusMessageSchema, message, 'status');
}
export function encodeHeartbeat(message: HeartbeatMessage): Buffer {
  return encode(HeartbeatMessageSchema, message, 'heartbeat');
}
export function encodeEvidence(message: EvidenceMessage): Buffer {
  return encode(EvidenceMessageSchema, message, 'evidence');
}
export function encodeCommand(message: CommandMessage): Buffer {
  return encode(CommandMessageSchema, message, 'command');
}
export function encodeCommandResult(message: CommandResultMessage): Buffer {
  return encode(CommandResultMessageSchema, message, 'command-results');
}

function encode<T>(schema: z.ZodType<T>, message: T, kind: string): Buffer {
  const parsed = schema.safeParse(message);
  if (!parsed.success) throw new ProtocolError('MQTT_PAYLOAD_INVALID', `${kind}: ${describe(parsed.error)}`);
  const buf = Buffer.from(JSON.stringify(parsed.data));
  if (buf.byteLength > MAX_PAYLOAD_BYTES) {
    throw new ProtocolError('MQTT_PAYLOAD_TOO_LARGE', `${kind} payload is ${buf.byteLength} bytes`);
  }
  return buf;
}
