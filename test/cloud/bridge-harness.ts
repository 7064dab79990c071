import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { CloudApp } from '../../cloud/app.ts';
import type { PasswordGate } from '../../cloud/auth/password-gate.ts';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import { type CloudConfigInput, parseCloudConfig } from '../../cloud/config/schema.ts';
import { encodeEvent } from '../../protocol/codec.ts';
import { UlidFactory } from '../../protocol/event-id.ts';
import type { EventMessage } from '../../protocol/messages.ts';
import { sensorTopic } from '../../protocol/topics.ts';
import { sampleEventMessage } from './fixtures.ts';

export const SENSOR_PASSWORD = 'hall-1-secret-pw';
export const BRIDGE_USER = { username: 'bridge-admin', password: 'bridge-admin-pw' };
let cachedHash: string | null = null;
export async function sensorHash(): Promise<string> {
  cachedHash ??= await hashPassword(SENSOR_PASSWORD);
  return cachedHash;
}

/** Captures the bridge's JSON log lines. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const l of chunk.toString().split('\n'))
      if (l.trim()) this.lines.push(JSON.parse(l) as Record<string, unknown>);
    cb();
  }
  find(msg: string): Record<string, unknown>[] {
    return this.lines.filter((l) => l.msg === msg);
  }
}

export async function tempDir(prefix = 'sw-cloud-'): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Starts a CloudApp from a config object; the dashboard is off unless asked for. */
export async function startBridge(
  input: CloudConfigInput,
  options: {
    web?: boolean;
    env?: NodeJS.ProcessEnv;
    offlineCheckMs?: number;
    clock?: () => Date;
    passwordGate?: PasswordGate;
  } = {},
): Promise<{ app: CloudApp; logs: LogCapture }> {
  const logs = new LogCapture();
  const config = parseCloudConfig(input, 'test config');
  const app = new CloudApp({
    config,
    env: options.env ?? {},
    logger: pino({ level: 'debug' }, logs),
    web: options.web ?? false,
    offlineCheckMs: options.offlineCheckMs,
    alertPollMs: 50,
    clock: options.clock,
    ...(options.passwordGate && { passwordGate: options.passwordGate }),
  });
  await app.start();
  return { app, logs };
}

export async function connectSensor(
  url: string,
  username: string | undefined,
  password: string | undefined,
): Promise<MqttClient> {
  return mqtt.connectAsync(url, {
    username,
    password,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    clientId: `t-${Math.random().toString(16).slice(2)}`,
  });
}

const ids = new UlidFactory();
export function newEvent(over: Partial<EventMessage> = {}): EventMessage {
  const now = Date.now();
  return sampleEventMessage({
    eventId: ids.next(now),
    timestamp: new Date(now).toISOString(),
    startedAt: new Date(now - 1500).toISOString(),
    ...over,
  });
}

export async function publishEvent(
  client: MqttClient,
  event: EventMessage,
  root = 'screamwatch',
): Promise<void> {
  await client.publishAsync(sensorTopic(root, event.sensorId, 'events'), encodeEvent(event), { qos: 1 });
}

/** The one polling helper lives in test/support (re-exported for the tests that import it from here). */
export { eventually } from '../support/eventually.ts';
