import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import { AlertService } from './alerts/alert-service.ts';
import { type Channel, type ChannelSender, createSenders } from './alerts/senders.ts';
import { EmbeddedBroker } from './broker/embedded-broker.ts';
import { ExternalBroker } from './broker/external-broker.ts';
import type { MessageSource } from './broker/message-source.ts';
import type { CloudConfig } from './config/schema.ts';
import { Geolocator } from './geo/locator.ts';
import { EventIngest } from './ingest/event-ingest.ts';
import { SensorRegistry } from './ingest/sensor-registry.ts';
import { ObservedEventStore } from './store/observed-store.ts';
import { SqliteEventStore } from './store/sqlite-store.ts';
import type { EventStore } from './store/types.ts';

export interface CloudAppOptions {
  config: CloudConfig;
  /** MONGODB_URI selects the MongoDB store; default process.env. */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  clock?: () => Date;
  /** Replace the senders built from config (tests count calls this way only when they must). */
  senders?: Partial<Record<Channel, ChannelSender>>;
  /** Start the dashboard when cloud/web/server.ts exists (default true). */
  web?: boolean;
  /** Registry silence check period (tests shorten it). */
  offlineCheckMs?: number;
  /** Alert queue poll period. */
  alertPollMs?: number;
  /** The model for dashboard uploads; default: loaded from config.modelPath / the shipped model. */
  model?: import('../core/model/scream-model.ts').ScreamModel;
}

interface Service {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Stop budget per service: a hung network peer must not keep the process from exiting. */
const STOP_BUDGET_MS = 5000;

export async function openEventStore(
  config: CloudConfig,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<EventStore> {
  const uri = env.MONGODB_URI;
  if (uri) {
    const { MongoEventStore } = await import('./store/mongo-store.ts');
    logger.info({ store: 'mongodb', database: env.MONGODB_DB ?? null }, 'event store: MongoDB (MONGODB_URI)');
    return new MongoEventStore({ uri, dbName: env.MONGODB_DB ?? null });
  }
  const path = resolve(config.dataDir, 'events.sqlite');
  logger.info({ store: 'sqlite', path }, 'event store: SQLite');
  return new SqliteEventStore(path);
}

/**
 * The cloud bridge, wired: broker -> ingest (validate, de-duplicate) -> geolocation -> store
 * -> alerts, plus the dashboard. Services start in order and stop in reverse: network first
 * (web, broker), storage last, each within a time budget.
 */
export class CloudApp {
  readonly logger: Logger;
  store!: EventStore;
  readonly registry: SensorRegistry;
  readonly locator: Geolocator;
  alerts!: AlertService;
  ingest!: EventIngest;
  source!: MessageSource;
  /** The dashboard, when cloud/web/server.ts is present. */
  web: { url: string; start(): Promise<void>; stop(): Promise<void> } | null = null;
  private started: Service[] = [];
  private stopping: Promise<void> | null = null;
  private readonly clock: () => Date;

  constructor(private readonly options: CloudAppOptions) {
    const { config } = options;
    this.logger = options.logger ?? pino({ level: config.log.level });
    this.clock = options.clock ?? (() => new Date());
    this.locator = new Geolocator({
      ipDatabase: config.geo.ipDatabase,
      logger: this.logger.child({ component: 'geo' }),
    });
    this.registry = new SensorRegistry({
      sensors: config.sensors,
      offlineAfterS: config.offlineAfterS,
      logger: this.logger.child({ component: 'registry' }),
      clock: this.clock,
      checkIntervalMs: options.offlineCheckMs,
      onOffline: (sensor) => {
        this.alerts
          .onSensorOffline(sensor)
          .catch((err: unknown) => this.logger.error({ err, sensorId: sensor.id }, 'offline alert failed'));
      },
    });
  }

  get config(): CloudConfig {
    return this.options.config;
  }

  /** The embedded broker's ports (null with an external broker). */
  get brokerPorts(): EmbeddedBroker['ports'] | null {
    return this.source instanceof EmbeddedBroker ? this.source.ports : null;
  }

  async start(): Promise<void> {
    const { config } = this.options;
    const env = this.options.env ?? process.env;
    const logger = this.logger;
    // observed: every write is pushed to the dashboard's live stream
    this.store = new ObservedEventStore(await openEventStore(config, env, logger));
    this.alerts = new AlertService({
      alerts: config.alerts,
      dataDir: resolve(config.dataDir),
      store: this.store,
      senders: this.options.senders ?? createSenders(config.alerts),
      sensorConfig: (id) => this.registry.config(id),
      logger: logger.child({ component: 'alerts' }),
      publicUrl: config.web.publicUrl,
      clock: this.clock,
      pollMs: this.options.alertPollMs,
    });
    this.ingest = new EventIngest({
      store: this.store,
      registry: this.registry,
      locator: this.locator,
      alerter: this.alerts,
      topicRoot: config.mqtt.topicRoot,
      logger: logger.child({ component: 'ingest' }),
      clock: this.clock,
    });
    if (config.mqtt.broker) {
      this.source = new ExternalBroker({ config: config.mqtt, logger: logger.child({ component: 'mqtt' }) });
    } else {
      this.source = new EmbeddedBroker({
        config: config.mqtt,
        logger: logger.child({ component: 'broker' }),
        onSensorSeen: (id, ip) => this.registry.noteConnection(id, ip),
      });
    }
    this.source.setHandler((topic, payload, meta) => this.ingest.handleMessage(topic, payload, meta));

    const services: Service[] = [
      { name: 'store', start: () => this.store.start(), stop: () => this.store.stop() },
      { name: 'alerts', start: () => this.alerts.start(), stop: () => this.alerts.stop() },
      { name: 'geo', start: () => this.locator.start(), stop: () => this.locator.stop() },
      { name: 'registry', start: () => this.registry.start(), stop: () => this.registry.stop() },
      { name: 'mqtt', start: () => this.source.start(), stop: () => this.source.stop() },
    ];
    for (const s of services) await this.startOne(s);

    // --- dashboard wiring (cloud/web, built separately; adjust here when WebDeps changes) ---
    if (this.options.web !== false) {
      const web = await this.createWeb();
      if (web) {
        this.web = web;
        await this.startOne({ name: 'web', start: () => web.start(), stop: () => web.stop() });
      }
    }
    // --- end dashboard wiring ---
    logger.info(
      {
        mqtt: config.mqtt.broker ?? { embedded: this.brokerPorts },
        web: this.web?.url ?? null,
        dataDir: resolve(config.dataDir),
      },
      'cloud bridge running',
    );
  }

  private async startOne(s: Service): Promise<void> {
    try {
      await s.start();
      this.started.push(s);
    } catch (err) {
      this.logger.error({ err, service: s.name }, 'start failed; rolling back');
      await this.stop();
      throw err;
    }
  }

  private async loadModel(): Promise<import('../core/model/scream-model.ts').ScreamModel | null> {
    const { modelPath } = this.options.config;
    try {
      const { loadModelFile } = await import('../core/model/load.ts');
      return modelPath ? loadModelFile(modelPath) : loadModelFile();
    } catch (err) {
      this.logger.error(
        { err: (err as Error).message },
        'dashboard not started: the detection model cannot be loaded (modelPath)',
      );
      return null;
    }
  }

  private async createWeb(): Promise<{ url: string; start(): Promise<void>; stop(): Promise<void> } | null> {
    const serverPath = new URL('./web/server.ts', import.meta.url);
    if (!existsSync(serverPath)) return null;
    const { config } = this.options;
    const model = this.options.model ?? (await this.loadModel());
    if (!model) return null;
    const { createWebService } = (await import(serverPath.href)) as typeof import('./web/server.ts');
    return createWebService({
      config: { ...config.web, dataDir: resolve(config.dataDir) },
      store: this.store,
      ...(this.store instanceof ObservedEventStore ? { changes: this.store } : {}),
      registry: this.registry,
      alerts: this.alerts,
      ingestLocal: async (event) => {
        await this.ingest.ingestEvent(event);
      },
      locateIp: async (ip) => this.locator.locateIp(ip),
      model,
      logger: this.logger,
      clock: this.clock,
    });
  }

  /** Reverse order, each within a budget; a second call waits for the first. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const s of [...this.started].reverse()) {
        let timer: NodeJS.Timeout | undefined;
        const budget = new Promise<'timeout'>((r) => {
          timer = setTimeout(() => r('timeout'), STOP_BUDGET_MS);
        });
        try {
          const result = await Promise.race([s.stop().then(() => 'ok' as const), budget]);
          if (result === 'timeout')
            this.logger.warn({ service: s.name, budgetMs: STOP_BUDGET_MS }, 'stop timed out');
        } catch (err) {
          this.logger.error({ err, service: s.name }, 'stop failed');
        } finally {
          clearTimeout(timer);
        }
      }
      this.started = [];
    })();
    return this.stopping;
  }
}
