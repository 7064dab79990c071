import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { parseSensorTopic } from '../../protocol/topics.ts';
import { PasswordGate } from '../auth/password-gate.ts';
import { verifyPassword } from '../auth/passwords.ts';
import type { CloudConfig } from '../config/schema.ts';
import { CloudError } from '../errors.ts';
import type { MessageHandler, MessageSource } from './message-source.ts';
import { MqttPacketGuard, type PacketGuardError } from './packet-guard.ts';

type MqttConfig = CloudConfig['mqtt'];

/** Who a connected client is, decided once at CONNECT. */
type Identity = { kind: 'sensor'; sensorId: string } | { kind: 'bridge' } | { kind: 'anonymous' };
const identities = new WeakMap<Client, Identity>();

/** Costs as much as a real check, so unknown usernames are not told apart by timing. */
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/** The client id a sensor's daemon uses; no other identity may take it. */
export const sensorClientId = (sensorId: string): string => `screamwatch-${sensorId}`;

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
  /** Rate limits and caches password checks (tests inject one with a small window). */
  passwordGate?: PasswordGate;
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
  /** Connections per IP that have not completed CONNECT yet. */
  private readonly pending = new Map<string, number>();
  private readonly gate: PasswordGate;
  /** clientId → who first held it since start; another identity may not take it over. */
  private readonly owners = new Map<string, string>();
  private refusedLogAt = 0;
  /** Ports actually listened on (the real ones when configured as 0). */
  readonly ports: { tcp: number | null; tls: number | null; ws: number | null } = {
    tcp: null,
    tls: null,
    ws: null,
  };

  constructor(private readonly options: EmbeddedBrokerOptions) {
    this.gate = options.passwordGate ?? new PasswordGate();
  }

  setHandler(handler: MessageHandler): void {
    this.handler = handler;
  }

  get aedes(): Aedes | null {
    return this.broker;
  }

  notReadyReason(): string | null {
    if (!this.broker || this.broker.closed) return 'embedded broker not running';
    const down = this.servers.filter((s) => !s.server.listening).map((s) => s.name);
    if (this.servers.length === 0 || down.length)
      return `embedded broker not listening (${down.join(', ') || 'no listener'})`;
    return null;
  }

  connectionCount(): number {
    return this.broker?.connectedClients ?? 0;
  }

  /** In-process publish as the bridge (no client, so no ACL check and no ingest). */
  publish(topic: string, payload: string | Buffer, options: { retain: boolean }): Promise<void> {
    const broker = this.broker;
    if (!broker || broker.closed) return Promise.reject(new Error('embedded broker not running'));
    return new Promise((resolve, reject) => {
      broker.publish(
        {
          cmd: 'publish',
          topic,
          payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
          qos: 1,
          retain: options.retain,
          dup: false,
        },
        (err) => (err ? reject(err) : resolve()),
      );
    });
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
    const ip = clientIp(client);
    if (!entry) {
      this.options.logger.warn(
        { username, ip },
        'MQTT login refused: unknown sensor (add it to mqtt.sensors)',
      );
    }
    const hash = entry?.passwordHash ?? DUMMY_HASH;
    return this.gate
      .check(ip, username, pw, hash, () => verifyPassword(pw, hash))
      .then((verdict) => {
        if (verdict === 'rate-limited' || verdict === 'busy') {
          this.logRefusal(
            { username, ip, verdict },
            `MQTT login refused without a password check: ${verdict}`,
          );
        }
        return verdict === 'ok' && entry ? { kind: 'sensor', sensorId: username } : null;
      });
  }

  /** One line per 10 s at most: a flood of refusals must not flood the log. */
  private logRefusal(fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - this.refusedLogAt < 10_000) return;
    this.refusedLogAt = now;
    this.options.logger.warn(fields, msg);
  }

  private identityKey(identity: Identity): string {
    return identity.kind === 'sensor' ? `sensor:${identity.sensorId}` : identity.kind;
  }

  /**
   * [MQTT-3.1.4-2] a second CONNECT with a client id disconnects the first: so a client id is
   * bound to the identity that authenticates with it. `screamwatch-<id>` belongs to sensor
   * <id>; any other id belongs to whoever held it first since start.
   */
  private clientIdAllowed(clientId: string, identity: Identity): boolean {
    const key = this.identityKey(identity);
    for (const s of this.options.config.sensors) {
      if (clientId === sensorClientId(s.sensorId)) return key === `sensor:${s.sensorId}`;
    }
    const owner = this.owners.get(clientId);
    if (owner !== undefined && owner !== key) {
      // aedes keeps connected clients by id (not in its typings)
      const clients = (this.broker as unknown as { clients?: Record<string, Client> } | null)?.clients;
      const live = clients?.[clientId];
      if (live && !live.closed) return false;
    }
    if (this.owners.size > 100_000) this.owners.clear();
    this.owners.set(clientId, key);
    return true;
  }

  /** A start that fails half-way (a port in use, an unreadable certificate) closes what it opened. */
  async start(): Promise<void> {
    try {
      await this.open();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async open(): Promise<void> {
    const { config, logger } = this.options;
    const root = config.topicRoot;
    if (!config.allowAnonymous && config.sensors.length === 0) {
      logger.warn(
        'embedded broker: mqtt.sensors is empty and mqtt.allowAnonymous is false, so no sensor can connect',
      );
    }
    const broker = await Aedes.createBroker({
      // drop sockets that have not sent a valid CONNECT in time (aedes' default is 30 s)
      connectTimeout: config.connectTimeoutMs,
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
            if (!this.clientIdAllowed(client.id, identity)) {
              logger.warn(
                { clientId: client.id, username, ip: clientIp(client) },
                'MQTT login refused: client id belongs to another identity (takeover refused)',
              );
              // [MQTT-3.2.2] return code 2: identifier rejected
              return done(
                Object.assign(new Error('client id belongs to another identity'), { returnCode: 2 }) as never,
                false,
              );
            }
            const conn = client.conn as unknown;
            if (conn instanceof MqttPacketGuard) this.settle(conn);
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
        // Sensors may listen only to their own commands, never to other sensors. Anonymous
        // clients (mqtt.allowAnonymous, a lab setup) may already publish as any sensor, so they
        // may also take any one sensor's commands (no wildcard for the sensor).
        const m = /^([^/]+(?:\/[^/]+)*)\/sensors\/([^/+#]+)\/commands\/#$/.exec(sub.topic);
        const mine =
          m !== null &&
          m[1] === root &&
          ((identity?.kind === 'sensor' && identity.sensorId === m[2]) || identity?.kind === 'anonymous');
        if (mine) return done(null, sub);
        this.options.logger.warn(
          {
            topic: sub.topic,
            clientId: client.id,
            sensorId: identity?.kind === 'sensor' ? identity.sensorId : null,
          },
          'MQTT subscribe refused by ACL',
        );
        // a negative SUBACK (0x80), not a dropped connection: the client keeps publishing its events
        done(null, null);
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
      const guard = this.admit(socket, socket.remoteAddress ?? null);
      if (guard) broker.handle(guard as never);
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
          'CLOUD_TLS_FILE_UNREADABLE',
          `mqtt.tls: cannot read ${config.tls.certFile} / ${config.tls.keyFile}: ${(err as Error).message}`,
          { certFile: config.tls.certFile, keyFile: config.tls.keyFile },
        );
      }
      const tls = createTlsServer({ cert, key }, (socket) => {
        track(socket);
        const guard = this.admit(socket, socket.remoteAddress ?? null);
        if (guard) broker.handle(guard as never);
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
        // one MQTT packet per WebSocket message at most; ws' default is 100 MiB
        maxPayload: config.maxPacketBytes + 8,
        handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
      });
      wss.on('connection', (ws, req) => {
        const guard = this.admit(createWebSocketStream(ws), req.socket.remoteAddress ?? null);
        if (guard) broker.handle(guard as never, req);
      });
      this.wss = wss;
      this.ports.ws = await this.listen('ws', http, config.wsPort, config.host);
    }
    logger.info(
      { ports: this.ports, host: config.host, anonymous: config.allowAnonymous },
      'embedded MQTT broker listening',
    );
  }

  /**
   * Every connection goes through the packet guard (size limit at the header, CONNECT
   * first); at most `maxPendingPerIp` connections per IP may be waiting for their CONNECT.
   */
  private admit(inner: Duplex, ip: string | null): MqttPacketGuard | null {
    const { config } = this.options;
    const key = ip ?? 'unknown';
    const n = this.pending.get(key) ?? 0;
    if (n >= config.maxPendingPerIp) {
      this.logRefusal(
        { ip, pending: n, code: 'MQTT_TOO_MANY_PENDING' },
        `MQTT connection from ${key} refused: ${n} connections from it have not authenticated yet (mqtt.maxPendingPerIp)`,
      );
      inner.destroy();
      return null;
    }
    this.pending.set(key, n + 1);
    const guard = new MqttPacketGuard(inner, config.maxPacketBytes, ip);
    guard.once('close', () => this.settle(guard));
    guard.on('violation', (err: PacketGuardError) => {
      this.logRefusal(
        { ip, reason: err.reason, code: 'MQTT_PACKET_REFUSED' },
        `MQTT connection from ${key} closed: ${err.message} (mqtt.maxPacketBytes)`,
      );
    });
    return guard;
  }

  /** The connection authenticated or closed: it no longer counts as pending. */
  private settle(guard: MqttPacketGuard): void {
    if (guard.authenticated) return;
    guard.authenticated = true;
    const key = guard.remoteAddress ?? 'unknown';
    const n = (this.pending.get(key) ?? 1) - 1;
    if (n <= 0) this.pending.delete(key);
    else this.pending.set(key, n);
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
