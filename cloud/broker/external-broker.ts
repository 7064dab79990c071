import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import mqtt, { type IPublishPacket, type ISubscriptionMap, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { redactUrl } from '../../protocol/redact.ts';
import { sensorsFilter, sharedFilter } from '../../protocol/topics.ts';
import type { CloudConfig } from '../config/schema.ts';
import { CloudError } from '../errors.ts';
import type { MessageHandler, MessageSource } from './message-source.ts';

type MqttConfig = CloudConfig['mqtt'];

export interface ExternalBrokerOptions {
  config: MqttConfig;
  logger: Logger;
  /** Give up the first connection after this long (later reconnects retry forever). */
  connectTimeoutMs?: number;
  reconnectPeriodMs?: number;
}

/**
 * The bridge as a client of an external broker (Mosquitto, EMQX, ...). Events arrive through
 * an MQTT 5 shared subscription (`$share/<group>/<root>/sensors/+/events`), so several bridges
 * split the load and each event reaches one of them. Status and heartbeats are subscribed
 * without sharing: every bridge keeps a full sensor registry, and retained status messages
 * are never sent to shared subscriptions [MQTT-4.8.2].
 * A persistent session (clean=false + a short session expiry, `mqtt.sessionExpiryS`) keeps QoS 1
 * events queued on the broker while the bridge restarts; an event is acknowledged only after it
 * is stored. Takeover: a bridge started with a dead bridge's clientId within the expiry resumes
 * its session and receives what was queued for it.
 */
export class ExternalBroker implements MessageSource {
  private client: MqttClient | null = null;
  private handler: MessageHandler | null = null;

  constructor(private readonly options: ExternalBrokerOptions) {}

  setHandler(handler: MessageHandler): void {
    this.handler = handler;
  }

  notReadyReason(): string | null {
    if (!this.client) return 'not started';
    return this.client.connected ? null : `not connected to ${this.options.config.broker}`;
  }

  connectionCount(): number {
    return this.client?.connected ? 1 : 0;
  }

  async publish(topic: string, payload: string | Buffer, options: { retain: boolean }): Promise<void> {
    if (!this.client) throw new Error('not connected to the external broker');
    await this.client.publishAsync(topic, payload, { qos: 1, retain: options.retain });
  }

  get filters(): string[] {
    const { topicRoot, sharedGroup } = this.options.config;
    const events = sensorsFilter(topicRoot, 'events');
    return [
      sharedGroup ? sharedFilter(sharedGroup, events) : events,
      sensorsFilter(topicRoot, 'status'),
      sensorsFilter(topicRoot, 'heartbeat'),
      // every bridge records a sensor's answer to a command (idempotent), so each dashboard sees it
      sensorsFilter(topicRoot, 'command-results'),
      // an event's whole timeline: idempotent (the longer one is kept), so every bridge may take it
      sensorsFilter(topicRoot, 'evidence'),
    ];
  }

  async start(): Promise<void> {
    const { config, logger } = this.options;
    const brokerUrl = config.broker;
    if (!brokerUrl) throw new CloudError('CLOUD_CONFIG_INVALID', 'mqtt.broker is not set');
    // what logs and errors show: never the password of a mqtt://user:pass@host URL
    const url = redactUrl(brokerUrl);
    // Stable across restarts (a new id per start would strand the old session's queued share).
    const clientId = config.clientId ?? `screamwatch-bridge-${hostname()}`;
    let ca: Buffer | undefined;
    if (config.caFile) {
      try {
        ca = readFileSync(config.caFile);
      } catch (err) {
        throw new CloudError(
          'CLOUD_BROKER_CONNECT_FAILED',
          `mqtt.caFile: cannot read ${config.caFile}: ${(err as Error).message}`,
        );
      }
    }
    const client = mqtt.connect(brokerUrl, {
      ...(ca ? { ca } : {}),
      clientId,
      protocolVersion: 5,
      clean: false,
      // Short (default 60 s, mqtt.sessionExpiryS): long enough for systemd to restart a crashed
      // bridge or for a replacement to take its clientId over, short enough that the broker soon
      // stops queueing the share of a member that is gone (README "Scaling out").
      properties: { sessionExpiryInterval: config.sessionExpiryS },
      username: config.username ?? undefined,
      password: config.password ?? undefined,
      reconnectPeriod: this.options.reconnectPeriodMs ?? 2000,
      connectTimeout: this.options.connectTimeoutMs ?? 10_000,
      manualConnect: true,
    });
    this.client = client;
    // Acknowledge only after the handler settles (mqtt.js sends PUBACK when callback is called).
    client.handleMessage = (packet: IPublishPacket, callback) => {
      const handler = this.handler;
      if (!handler) return callback();
      const payload =
        typeof packet.payload === 'string' ? Buffer.from(packet.payload) : Buffer.from(packet.payload);
      handler(packet.topic, payload, { ip: null }).then(
        () => callback(),
        (err: unknown) => {
          // Not acknowledging would stall every later message on this connection, so the
          // failed message is logged and the connection restarted: the broker redelivers it.
          logger.error({ err, topic: packet.topic }, 'ingest failed; reconnecting so the broker redelivers');
          client.stream.destroy();
        },
      );
    };
    client.on('connect', (connack) => {
      logger.info(
        { url, clientId, sessionPresent: connack.sessionPresent, sessionExpiryS: config.sessionExpiryS },
        'connected to external MQTT broker',
      );
      // Re-subscribe on every connect: a broker that lost the session has lost the subscriptions too.
      // `resubscribe: true` makes mqtt.js send the SUBSCRIBE even for filters it thinks are live:
      // Mosquitto 2.0 with persistence restores the session (sessionPresent) but not its shared
      // subscriptions, so without it a restarted broker silently stops delivering (test/system).
      const subs: Record<string, { qos: 1 }> = {};
      for (const f of this.filters) subs[f] = { qos: 1 };
      client.subscribe({ ...subs, resubscribe: true } as ISubscriptionMap, (err, granted) => {
        if (err) logger.error({ err }, 'subscribe failed');
        const refused = (granted ?? []).filter((g) => g.qos >= 0x80);
        if (refused.length)
          logger.error({ refused }, 'broker refused subscriptions (check the ACL for the bridge user)');
      });
    });
    client.on('error', (err) => logger.warn({ err: err.message, url }, 'MQTT client error'));
    client.on('offline', () => logger.warn({ url }, 'external MQTT broker unreachable, retrying'));

    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new CloudError(
            'CLOUD_BROKER_CONNECT_FAILED',
            `cannot connect to MQTT broker ${url} (mqtt.broker)`,
            { url },
          ),
        );
      }, this.options.connectTimeoutMs ?? 10_000);
      const onConnect = () => {
        cleanup();
        resolve();
      };
      const onError = (err: Error & { code?: number | string }) => {
        // CONNACK refusals (bad credentials, not authorised) will not heal by retrying.
        if (typeof err.code === 'number') {
          cleanup();
          reject(
            new CloudError(
              'CLOUD_BROKER_CONNECT_FAILED',
              `MQTT broker ${url} refused the bridge: ${err.message}`,
              { url },
            ),
          );
        }
      };
      const cleanup = () => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('error', onError);
      };
      client.on('connect', onConnect);
      client.on('error', onError);
      client.connect();
    }).catch(async (err: unknown) => {
      await this.stop();
      throw err;
    });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (!client) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        client.end(true);
        resolve();
      }, 3000);
      client.end(false, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
