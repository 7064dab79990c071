import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { encodeStatus } from '../../protocol/codec.ts';
import {
  type EffectiveDetection,
  type InputHealth,
  type ModelRollback,
  PROTOCOL_VERSION,
  type StatusMessage,
} from '../../protocol/messages.ts';
import { redactUrl } from '../../protocol/redact.ts';
import { commandsFilter, sensorTopic } from '../../protocol/topics.ts';
import { backoffDelay, type RetryPolicy } from '../../runtime/backoff.ts';
import type { Clock } from '../clock.ts';
import type { DaemonConfig } from '../config/schema.ts';
import { DaemonError } from '../errors.ts';
import type { OutboxQueue } from '../outbox/outbox.ts';
import { sleep, withTimeout } from '../timeouts.ts';
import { DAEMON_VERSION } from '../version.ts';

export interface MqttPublisherOptions {
  mqtt: DaemonConfig['mqtt'];
  sensorId: string;
  topicRoot: string;
  modelVersion: string;
  outbox: OutboxQueue;
  /** Reported in the retained status (false while the disk refuses writes). */
  outboxWritable?: () => boolean;
  clock: Clock;
  logger: Logger;
  /** Reconnect backoff; default 1 s doubling to 30 s, with jitter. */
  reconnect?: RetryPolicy;
  /** Publishes awaiting PUBACK at once; more only adds memory, since order is kept anyway. */
  inflightLimit?: number;
  /**
   * Subscribe to `<root>/sensors/<id>/commands/#` (QoS 1) and emit 'command' (topic, payload).
   * The session is then persistent (clean: false), so commands sent while the sensor was away
   * are delivered when it returns.
   */
  commands?: boolean;
}

/** CONNACK return codes (v3.1.1: 4, 5; v5: 134, 135) that mean "your credentials". */
const AUTH_CODES = new Set([4, 5, 134, 135]);

/**
 * Drains the outbox to the broker, oldest first, QoS 1, deleting a row only on its PUBACK.
 * Each connection gets a fresh client: on any disconnect the unacknowledged rows are simply
 * published again from the outbox on the next connection (the cloud de-duplicates by
 * eventId), so the outbox is the only queue and nothing lives only in memory.
 * Status: `online` retained on every connect, `offline` retained as the last will and on
 * a clean stop. With `commands`, it also receives the bridge's commands ('command' events).
 */
export class MqttPublisher extends EventEmitter {
  private client: MqttClient | null = null;
  private connected = false;
  private stopping = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private cursor = 0;
  private readonly inflight = new Set<number>();
  private readonly tls: Pick<IClientOptions, 'ca' | 'cert' | 'key'>;
  private readonly statusTopic: string;
  private lastErrorCode: string | null = null;
  private rewinds = 0;
  private readonly onRewind = () => {
    // rows moved to new ids (memory → disk, a recreated file): read the outbox again from
    // the start; what is already in flight is skipped, a moved copy may go twice (the cloud
    // de-duplicates by sensorId + eventId)
    this.rewinds++;
    this.cursor = 0;
    setImmediate(() => this.pump());
  };
  /** Rows acknowledged by the broker since start. */
  acked = 0;
  /** Set when the broker refused our credentials; cleared on a successful connect. */
  authError: DaemonError | null = null;
  connects = 0;
  private health: { health: InputHealth; since: string } | null = null;
  private detection: EffectiveDetection | null = null;
  private modelVersion: string;
  private modelRollback: ModelRollback | null = null;

  constructor(private readonly options: MqttPublisherOptions) {
    super();
    this.modelVersion = options.modelVersion;
    this.statusTopic = sensorTopic(options.topicRoot, options.sensorId, 'status');
    // Unreadable TLS files are a configuration error: fail at boot, naming key and file.
    this.tls = {};
    const read = (key: 'caFile' | 'certFile' | 'keyFile') => {
      const file = options.mqtt[key];
      if (!file) return undefined;
      try {
        return readFileSync(file);
      } catch (err) {
        throw new DaemonError(
          'MQTT_TLS_FILE_UNREADABLE',
          `mqtt.${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          { key, file },
        );
      }
    };
    const ca = read('caFile');
    const cert = read('certFile');
    const key = read('keyFile');
    if (ca) this.tls.ca = ca;
    if (cert) this.tls.cert = cert;
    if (key) this.tls.key = key;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Returns at once: a broker that is down at boot must not hold up capture. */
  async start(): Promise<void> {
    this.stopping = false;
    this.options.outbox.on?.('rewind', this.onRewind);
    this.connect();
  }

  private endpoint(): string {
    try {
      const u = new URL(this.options.mqtt.url);
      return `${u.protocol}//${u.hostname}:${u.port || (u.protocol === 'mqtts:' ? 8883 : 1883)}`;
    } catch {
      return redactUrl(this.options.mqtt.url);
    }
  }

  private connect(): void {
    this.reconnectTimer = null;
    if (this.stopping) return;
    const m = this.options.mqtt;
    const options: IClientOptions = {
      clientId: `screamwatch-${this.options.sensorId}`,
      // A persistent session keeps the sensor's command subscription and the commands queued
      // for it while it is away (the broker's session expiry bounds how long).
      clean: !this.options.commands,
      keepalive: m.keepaliveS,
      reconnectPeriod: 0, // we reconnect ourselves, with backoff and a fresh client
      connectTimeout: 10_000,
      // mqtt-packet otherwise pre-builds a 2-byte Buffer for each of the 65,536 packet ids on
      // the first write: 6.3 MB of heap on a sensor that sends a handful of messages a minute.
      writeCache: false,
      rejectUnauthorized: m.rejectUnauthorized,
      will: {
        topic: this.statusTopic,
        payload: this.statusPayload('offline'),
        qos: 1,
        retain: true,
      },
      ...this.tls,
    };
    if (m.username !== null) options.username = m.username;
    if (m.password !== null) options.password = m.password;
    const client = mqtt.connect(m.url, options);
    this.client = client;
    client.on('connect', () => {
      if (this.client !== client) return;
      this.connected = true;
      this.connects++;
      this.attempt = 0;
      this.lastErrorCode = null;
      if (this.authError) this.options.logger.info('broker accepted the credentials now');
      this.authError = null;
      this.options.logger.info(
        { broker: this.endpoint(), depth: this.options.outbox.depth },
        'connected to MQTT broker',
      );
      client.publish(this.statusTopic, this.statusPayload('online'), { qos: 1, retain: true }, () => {});
      if (this.options.commands) {
        // on every connect: a broker that lost the session (restarted without persistence) forgot it
        client.subscribe(
          commandsFilter(this.options.topicRoot, this.options.sensorId),
          { qos: 1 },
          (err, granted) => {
            if (this.client !== client) return;
            const refused =
              err ?? (granted?.some((g) => g.qos === 128) ? new Error('subscription refused') : null);
            if (refused)
              this.options.logger.error(
                { code: 'MQTT_CONNECT_FAILED', err: refused.message },
                'cannot subscribe to the commands topic: remote settings will not reach this sensor',
              );
          },
        );
      }
      this.emit('connected');
      this.pump();
    });
    client.on('message', (topic, payload) => {
      if (this.client !== client) return;
      this.emit('command', topic, payload);
    });
    client.on('error', (err: Error & { code?: number | string }) => {
      if (this.client !== client) return;
      const rc = typeof err.code === 'number' ? err.code : null;
      if (rc !== null && AUTH_CODES.has(rc)) {
        this.authError = new DaemonError(
          'MQTT_AUTH_REFUSED',
          `MQTT broker ${this.endpoint()} refused the credentials of user ${JSON.stringify(m.username)} (${err.message}); check mqtt.username / mqtt.password. Events stay in the outbox.`,
          { broker: this.endpoint(), returnCode: rc },
        );
        this.logOnce('MQTT_AUTH_REFUSED', this.authError.message);
        this.emit('auth-refused', this.authError);
      } else {
        this.logOnce(
          'MQTT_CONNECT_FAILED',
          `MQTT broker ${this.endpoint()}: ${err.message}; retrying with backoff, events stay in the outbox`,
        );
      }
    });
    client.on('close', () => {
      if (this.client !== client) return;
      const was = this.connected;
      this.connected = false;
      this.client = null;
      // unacknowledged rows go again, in order, on the next connection
      this.inflight.clear();
      this.cursor = 0;
      client.removeAllListeners();
      client.on('error', () => {});
      client.end(true);
      if (was) this.options.logger.warn({ broker: this.endpoint() }, 'disconnected from MQTT broker');
      this.emit('disconnected');
      this.scheduleReconnect();
    });
  }

  /** One log line per kind of failure streak, not one per retry. */
  private logOnce(code: string, message: string): void {
    if (this.lastErrorCode === code) {
      this.options.logger.debug({ code }, message);
      return;
    }
    this.lastErrorCode = code;
    this.options.logger.error({ code }, message);
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer) return;
    const policy = this.options.reconnect ?? { initialDelayMs: 1000, maxDelayMs: 30_000, multiplier: 2 };
    const delay = backoffDelay(policy, this.attempt++);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** Call after committing a row. */
  kick(): void {
    this.pump();
  }

  private pump(): void {
    const client = this.client;
    if (!client || !this.connected || this.stopping) return;
    let room = (this.options.inflightLimit ?? 16) - this.inflight.size;
    if (room <= 0) return;
    const seen = this.rewinds;
    const rows = this.options.outbox.peek(this.cursor, room + this.inflight.size);
    if (seen !== this.rewinds) return; // the peek itself rewound; the scheduled pump reads again
    for (const row of rows) {
      if (room <= 0) break;
      this.cursor = row.id;
      if (this.inflight.has(row.id)) continue;
      room--;
      this.inflight.add(row.id);
      client.publish(row.topic, row.payload, { qos: 1 }, (err) => {
        if (this.client !== client) return; // a dead connection's callback: the row goes again
        this.inflight.delete(row.id);
        if (err) {
          this.options.logger.warn({ id: row.id, err: err.message }, 'publish failed; will retry');
          return;
        }
        this.options.outbox.remove(row.id); // PUBACK received
        this.acked++;
        this.emit('acked', row);
        this.pump();
      });
    }
  }

  /** Resolves when the outbox is empty; false when `timeoutMs` passed first. */
  waitForEmpty(timeoutMs: number): Promise<boolean> {
    if (this.options.outbox.depth === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onAck = () => {
        if (this.options.outbox.depth > 0) return;
        done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.off('acked', onAck);
        resolve(v);
      };
      this.on('acked', onAck);
    });
  }

  /**
   * The input classifier's state goes into the retained `online` status, republished at once
   * when connected (and on every connect), so the bridge and Home Assistant see a deaf mic
   * without waiting for the next heartbeat.
   */
  setHealth(health: InputHealth, since: string): void {
    this.health = { health, since };
    if (!this.stopping) this.republishStatus();
  }

  /** The detection settings in force go into the retained `online` status (the fleet view shows them). */
  setDetection(detection: EffectiveDetection): void {
    this.detection = detection;
    if (!this.stopping) this.republishStatus();
  }

  /**
   * The model in force after a set-model swap or a rollback: the retained status says so at
   * once (the bridge counts a sensor upgraded only when its status reports the new version).
   */
  setModelVersion(version: string): void {
    this.modelVersion = version;
    if (!this.stopping) this.republishStatus();
  }

  /** The last automatic rollback (null: none since the last swap), in the retained status. */
  setModelRollback(rollback: ModelRollback | null): void {
    this.modelRollback = rollback;
    if (!this.stopping) this.republishStatus();
  }

  /** Publishes the retained `online` status again (its facts changed, e.g. outboxWritable). */
  republishStatus(): void {
    if (!this.client || !this.connected) return;
    this.client.publish(this.statusTopic, this.statusPayload('online'), { qos: 1, retain: true }, () => {});
  }

  private statusPayload(state: 'online' | 'offline'): Buffer {
    const writable = this.options.outboxWritable?.();
    const m: StatusMessage = {
      ...(writable !== undefined && { outboxWritable: writable }),
      v: PROTOCOL_VERSION,
      sensorId: this.options.sensorId,
      state,
      timestamp: new Date(this.options.clock.now()).toISOString(),
      daemonVersion: DAEMON_VERSION,
      modelVersion: this.modelVersion.slice(0, 100),
    };
    // offline (the last will, a clean stop) says nothing about the microphone
    if (state === 'online' && this.health) {
      m.health = this.health.health;
      m.since = this.health.since;
    }
    if (state === 'online' && this.detection) m.detection = this.detection;
    if (state === 'online' && this.modelRollback) m.modelRollback = this.modelRollback;
    return encodeStatus(m);
  }

  /**
   * Waits up to `budgetMs` for the PUBACKs of what is in flight, publishes `offline`, and
   * disconnects. Whatever was not acknowledged stays in the outbox for the next start.
   */
  async stop(budgetMs = 3000): Promise<void> {
    this.stopping = true;
    this.options.outbox.off?.('rewind', this.onRewind);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const client = this.client;
    if (!client) return;
    const deadline = Date.now() + budgetMs;
    while (this.connected && this.inflight.size > 0 && Date.now() < deadline) {
      await sleep(20);
    }
    if (this.connected) {
      await withTimeout(
        client
          .publishAsync(this.statusTopic, this.statusPayload('offline'), { qos: 1, retain: true })
          .catch(() => {}),
        Math.max(200, deadline - Date.now()),
        undefined,
      );
    }
    this.client = null;
    this.connected = false;
    await withTimeout(
      client.endAsync(false).catch(() => {}),
      1000,
      undefined,
    );
    // Not removeAllListeners(): that also drops mqtt.js's own 'close' handler, the one that
    // clears its CONNACK timer, so a stop while a connect was still pending (the installer's
    // `--source file:… --fast` against an unreachable broker) crashed 10 s later with an
    // unhandled 'error' event "connack timeout". Our handlers ignore a client that is no
    // longer this.client; late errors of the closing client are swallowed here.
    client.on('error', () => {});
    client.end(true);
  }
}
