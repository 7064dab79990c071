import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { parseSensorTopic } from '../../protocol/topics.ts';
import type { CloudConfig } from '../config/schema.ts';
import { CloudError } from '../errors.ts';
import { verifyPassword } from '../auth/passwords.ts';
import type { MessageHandler, MessageSource } from './message-source.ts';

type MqttConfig = CloudConfig['mqtt'];

/** Who a connected client is, decided once at CONNECT. */
type Identity = { kind: 'sensor'; sensorId: string } | { kind: 'bridge' } | { kind: 'anonymous' };
const identities = new WeakMap<Client, Identity>();

function clientIp(client: Client | null): string | null {
  if (!client) return null;
  const req = client.req as { socket?: { remoteAddress?: string } } | undefined;
  const conn = client.conn as Partial<Socket> | undefined;
  return req?.socket?.remoteAddress ?? conn?.remoteAddress ?? null;
}

export interface EmbeddedBrokerOptions {
  config: MqttConfig;
  logger: Logger;
  /** A sensor authenticated or published: its address feeds IP geolocation. */
  onSensorSeen?: (sensorId: string, ip: string | null) => void;
}

/**
 * The default broker: aedes in this process, so one process is a complete installation.
 * Each sensor logs in with its own id and password (scrypt hashes in mqtt.sensors) and may
 * publish only under `<root>/sensors/<its id>/`. Messages are ingested in the broker's publish
 * authorisation step, so the PUBACK a sensor receives means the event is stored. Shared
 * subscriptions are not needed here: there is one bridge per embedded broker.
 */
export class EmbeddedBroker implements MessageSource {
  private broker: Aedes | null = null;
  private servers: { name: string; server: NetServer | TlsServer | HttpServer }[] = [];
  private wss: WebSocketServer | null = null;
  private readonly sockets = new Set<Socket>();
  private handler: MessageHandler | null = null;
  /** Ports actually listened on (the real ones when configured as 0). */
  readonly ports: { tcp: number | null; tls: number | null; ws: number | null } = {
    tcp: null,
    tls: null,
    ws: null,
  };

  constructor(private readonly options: EmbeddedBrokerOptions) {}

  setHandler(handler: MessageHandler): void {
    this.handler = handler;
  }

  get aedes(): Aedes | null {
    return this.broker;
  }

  private authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<Identity | null> {
    const c = this.options.config;
    if (username === undefined) return Promise.resolve(c.allowAnonymous ? { kind: 'anonymous' } : null);
    const pw = password?.toString() ?? '';
    if (c.username && username === c.username) {
      return Promise.resolve(c.password !== null && pw === c.password ? { kind: 'bridge' } : null);
    }
    const entry = c.sensors.find((s) => s.sensorId === username);
    if (!entry) {
      this.options.logger.warn(
        { username, ip: clientIp(client) },
        'MQTT login refused: unknown sensor (add it to mqtt.sensors)',
      );
      return Promise.resolve(null);
    }
    return verifyPassword(pw, entry.passwordHash).then((ok) =>
      ok ? { kind: 'sensor', sensorId: username } : null,
    );
  }

  async start(): Promise<void> {
    const { config, logger } = this.options;
    const root = config.topicRoot;
    if (!config.allowAnonymous && config.sensors.length === 0) {
      logger.warn(
        'embedded broker: mqtt.sensors is empty and mqtt.allowAnonymous is false, so no sensor can connect',
      );
    }
    const broker = await Aedes.createBroker({
      authenticate: (client, username, password, done) => {
        this.authenticate(client, username, password).then(
          (identity) => {
            if (!identity) {
              // [MQTT-3.2.2] CONNACK return code 4: bad user name or password
              return done(
                Object.assign(new Error('bad username or password'), { returnCode: 4 }) as never,
                false,
              );
            }
            identities.set(client, identity);
            if (identity.kind === 'sensor') this.options.onSensorSeen?.(identity.sensorId, clientIp(client));
            done(null, true);
          },
          (err: unknown) => done(Object.assign(err as Error, { returnCode: 4 }) as never, false),
        );
      },
      authorizePublish: (client, packet, done) => {
        if (!client) return done(null);
        const identity = identities.get(client);
        const parsed = parseSensorTopic(root, packet.topic);
        if (identity?.kind === 'bridge' && !parsed) return done(null);
        if (!parsed || (identity?.kind === 'sensor' && identity.sensorId !== parsed.sensorId)) {
          logger.warn(
            {
              topic: packet.topic,
              clientId: client.id,
              sensorId: identity?.kind === 'sensor' ? identity.sensorId : null,
            },
            'MQTT publish refused by ACL',
          );
          return done(new Error(`publish to ${packet.topic} not allowed`));
        }
        const ip = clientIp(client);
        if (identity?.kind === 'sensor' || identity?.kind === 'anonymous')
          this.options.onSensorSeen?.(parsed.sensorId, ip);
        // Ingest here, not in a subscription: aedes sends the QoS 1 PUBACK after this callback
        // but *before* delivering to subscribers, and the sensor deletes an event from its
        // outbox on PUBACK. So the PUBACK now means "stored". A store failure refuses the
        // publish (aedes drops the connection) and the sensor sends it again later. Invalid
        // payloads resolve normally (counted, logged, acknowledged) so they are not retried forever.
        const handler = this.handler;
        if (!handler) return done(null);
        handler(packet.topic, Buffer.from(packet.payload), { ip }).then(
          () => done(null),
          (err: unknown) => {
            logger.error(
              { err, topic: packet.topic },
              'ingest failed; publish refused so the sensor retries',
            );
            done(err as Error);
          },
        );
      },
      authorizeSubscribe: (client, sub, done) => {
        const identity = identities.get(client);
        if (identity?.kind === 'bridge') return done(null, sub);
        // Sensors may listen only to their own subtree (future commands); never to other sensors.
        const own = identity?.kind === 'sensor' ? `${root}/sensors/${identity.sensorId}/` : null;
        if (own && sub.topic.startsWith(own) && !sub.topic.slice(own.length).includes('+'))
          return done(null, sub);
        done(new Error(`subscribe to ${sub.topic} not allowed`));
      },
    });
    this.broker = broker;

    const track = (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
    };
    const tcp = createNetServer((socket) => {
      track(socket);
      broker.handle(socket);
    });
    this.ports.tcp = await this.listen('tcp', tcp, config.port, config.host);

    if (config.tls.port !== null && config.tls.certFile && config.tls.keyFile) {
      let cert: Buffer;
      let key: Buffer;
      try {
        cert = readFileSync(config.tls.certFile);
        key = readFileSync(config.tls.keyFile);
      } catch (err) {
        throw new CloudError(
          'CLOUD_BROKER_LISTEN_FAILED',
          `mqtt.tls: cannot read ${config.tls.certFile} / ${config.tls.keyFile}: ${(err as Error).message}`,
        );
      }
      const tls = createTlsServer({ cert, key }, (socket) => {
        track(socket);
        broker.handle(socket);
      });
      this.ports.tls = await this.listen('tls', tls, config.tls.port, config.host);
    }

    if (config.wsPort !== null) {
      const http = createHttpServer((_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n');
      });
      http.on('connection', track);
      const wss = new WebSocketServer({
        server: http,
        handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
      });
      wss.on('connection', (ws, req) => {
        broker.handle(createWebSocketStream(ws) as never, req);
      });
      this.wss = wss;
      this.ports.ws = await this.listen('ws', http, config.wsPort, config.host);
    }
    logger.info(
      { ports: this.ports, host: config.host, anonymous: config.allowAnonymous },
      'embedded MQTT broker listening',
    );
  }

  private async listen(
    name: string,
    server: NetServer | TlsServer | HttpServer,
    port: number,
    host: string,
  ): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new CloudError(
            'CLOUD_BROKER_LISTEN_FAILED',
            `embedded broker (${name}) cannot listen on ${host}:${port}: ${(err as Error).message}`,
            {
              host,
              port,
            },
          ),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    this.servers.push({ name, server });
    const addr = server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  async stop(): Promise<void> {
    const broker = this.broker;
    this.broker = null;
    this.wss?.close();
    this.wss = null;
    for (const s of this.sockets) s.destroy();
    await Promise.all(
      this.servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
    this.servers = [];
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
}
