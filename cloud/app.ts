import { hostname } from 'node:os';
import { resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import { redactUrl } from '../protocol/redact.ts';
import { type NamedService, ServiceRunner, type StopTier } from '../runtime/lifecycle.ts';
import { OpsServer, type Readiness } from '../runtime/ops-server.ts';
import { AlertQueue } from './alerts/alert-queue.ts';
import { AlertService } from './alerts/alert-service.ts';
import type { AlertStateStore } from './alerts/alert-state.ts';
import { type Channel, type ChannelSender, createSenders } from './alerts/senders.ts';
import { EmbeddedBroker } from './broker/embedded-broker.ts';
import { ExternalBroker } from './broker/external-broker.ts';
import type { MessageSource } from './broker/message-source.ts';
import type { CloudConfig } from './config/schema.ts';
import { type CommandLog, MongoCommandLog, SqliteCommandLog } from './control/command-log.ts';
import { ModelLibrary } from './control/model-library.ts';
import { ModelRollouts } from './control/model-rollout.ts';
import { SensorControl } from './control/sensor-control.ts';
import { Geolocator } from './geo/locator.ts';
import { HomeAssistantDiscovery } from './homeassistant/discovery.ts';
import { EventIngest } from './ingest/event-ingest.ts';
import { SensorHistory } from './ingest/sensor-history.ts';
import { SensorRegistry } from './ingest/sensor-registry.ts';
import { BridgeMetrics } from './observability/bridge-metrics.ts';
import { ObservedEventStore } from './store/observed-store.ts';
import { RetentionService } from './store/retention.ts';
import { SqliteEventStore } from './store/sqlite-store.ts';
import type { EventStore } from './store/types.ts';
import type { WebService } from './web/types.ts';

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
  /** How often Home Assistant discovery looks for new sensors (tests shorten it). */
  homeAssistantRefreshMs?: number;
  /** The model for dashboard uploads; default: loaded from config.modelPath / the shipped model. */
  model?: import('../core/model/scream-model.ts').ScreamModel;
  /** The first retention purge after start (default 60 s; tests shorten it). */
  retentionFirstRunMs?: number;
  /** Password-check limits for the embedded broker (tests shorten them). */
  passwordGate?: import('./auth/password-gate.ts').PasswordGate;
}

/** Stop order and budgets: a hung network peer must not keep the process from exiting. */
const STOP_TIERS: readonly StopTier[] = [
  { name: 'network', budgetMs: 5000 },
  { name: 'processing', budgetMs: 5000 },
  { name: 'storage', budgetMs: 5000 },
];

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

/** With MONGODB_URI the alert state is shared by every bridge in MongoDB; else SQLite (one bridge). */
export async function openAlertState(
  config: CloudConfig,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<AlertStateStore> {
  const uri = env.MONGODB_URI;
  if (uri) {
    const { MongoAlertState } = await import('./alerts/mongo-alert-state.ts');
    const state = new MongoAlertState({ uri, dbName: env.MONGODB_DB ?? null });
    logger.info(
      { alertState: 'mongodb', where: state.where },
      'alert state: MongoDB (MONGODB_URI), shared by the bridges',
    );
    return state;
  }
  const state = new AlertQueue(resolve(config.dataDir, 'alerts.sqlite'));
  logger.info({ alertState: 'sqlite', where: state.where }, 'alert state: SQLite (this bridge only)');
  return state;
}

/**
 * The cloud bridge, wired: broker -> ingest (validate, de-duplicate) -> geolocation -> store
 * -> alerts, plus the dashboard, as services of one ServiceRunner (runtime/lifecycle.ts):
 * started in order, rolled back in reverse if one fails, stopped in tiers (see services()).
 */
export class CloudApp {
  readonly logger: Logger;
  store!: EventStore;
  readonly registry: SensorRegistry;
  /** Heartbeat buckets and state changes per sensor, for its page (`<dataDir>/sensor-history.sqlite`). */
  readonly history: SensorHistory;
  readonly locator: Geolocator;
  alerts!: AlertService;
  /** The daily purge of events past store.retentionDays (and their alert rows). */
  retention!: RetentionService;
  ingest!: EventIngest;
  source!: MessageSource;
  /** The dashboard, when cloud/web/server.ts is present. */
  web: Pick<WebService, 'url' | 'start' | 'stop' | 'analysisStats'> | null = null;
  /** Prometheus metrics; served by `ops` when metrics.port is set. */
  readonly metrics: BridgeMetrics;
  ops: OpsServer | null = null;
  /** Home Assistant MQTT discovery, when homeAssistant.enabled. */
  homeAssistant: HomeAssistantDiscovery | null = null;
  /** Commands to sensors and their answers (the sensor pages' settings and audit list). */
  control!: SensorControl;
  /** Model files sensors may fetch (shipped + uploaded), and batch rollouts of them. */
  models!: ModelLibrary;
  rollouts!: ModelRollouts;
  private commandLog!: CommandLog;
  private readonly runner: ServiceRunner;
  private readonly clock: () => Date;
  /** Heartbeats the sensor history could not write since the last one it could. */
  private heartbeatWriteFailures = 0;

  constructor(private readonly options: CloudAppOptions) {
    const { config } = options;
    this.logger = options.logger ?? pino({ level: config.log.level });
    this.clock = options.clock ?? (() => new Date());
    this.locator = new Geolocator({
      ipDatabase: config.geo.ipDatabase,
      logger: this.logger.child({ component: 'geo' }),
    });
    this.history = new SensorHistory({ path: resolve(options.config.dataDir, 'sensor-history.sqlite') });
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
      onDegraded: (sensor) => {
        this.alerts
          ?.onSensorDegraded(sensor)
          .catch((err: unknown) => this.logger.error({ err, sensorId: sensor.id }, 'degraded alert failed'));
      },
    });
    this.metrics = new BridgeMetrics({
      ingest: () => this.ingest?.stats ?? null,
      alertQueue: () => this.alerts?.queue ?? null,
      broker: () => this.source ?? null,
      sensors: () => this.registry.list(),
      analysis: () => this.web?.analysisStats() ?? null,
    });
    this.runner = new ServiceRunner({
      services: this.services(),
      tiers: STOP_TIERS,
      logger: this.logger,
      abortedCode: 'CLOUD_START_ABORTED',
    });
  }

  get config(): CloudConfig {
    return this.options.config;
  }

  /**
   * Takes a re-read config (SIGHUP, `systemctl reload screamwatch-cloud`) without a restart:
   * the sensor list (names, rooms, locations, groups) and the embedded broker's sensor
   * credentials (`mqtt.sensors`) change at once, so adding a sensor does not drop the bridge's
   * connections or its queue. Anything else that changed is named in the log and needs a restart.
   */
  reload(next: CloudConfig): { added: string[]; removed: string[]; needsRestart: string[] } {
    const current = this.options.config;
    const { added, removed } = this.registry.setConfigs(next.sensors);
    // The embedded broker reads mqtt.sensors at every login (cloud/broker/embedded-broker.ts).
    current.mqtt.sensors.splice(0, current.mqtt.sensors.length, ...next.mqtt.sensors);
    current.sensors.splice(0, current.sensors.length, ...next.sensors);
    const needsRestart: string[] = [];
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    for (const key of Object.keys(next) as (keyof CloudConfig)[]) {
      if (key === 'sensors') continue;
      if (key === 'mqtt') {
        const { sensors: _a, ...restNext } = next.mqtt;
        const { sensors: _b, ...restNow } = current.mqtt;
        for (const k of Object.keys(restNext) as (keyof typeof restNext)[])
          if (!same(restNext[k], restNow[k])) needsRestart.push(`mqtt.${k}`);
        continue;
      }
      if (!same(next[key], current[key])) needsRestart.push(key);
    }
    this.logger.info(
      { added, removed, sensors: next.sensors.length, credentials: next.mqtt.sensors.length },
      'config reloaded: sensors and credentials',
    );
    if (needsRestart.length)
      this.logger.warn(
        { keys: needsRestart },
        'config reload: these changes take effect only after a restart',
      );
    return { added, removed, needsRestart };
  }

  /** The embedded broker's ports (null with an external broker). */
  get brokerPorts(): EmbeddedBroker['ports'] | null {
    return this.source instanceof EmbeddedBroker ? this.source.ports : null;
  }

  /**
   * The services, in start order. Stop goes by tier: the network first (dashboard, broker),
   * then what processes (registry, geolocation, alert queue), storage last.
   */
  private services(): NamedService[] {
    return [
      { name: 'store', tier: 'storage', start: () => this.startStore(), stop: () => this.store.stop() },
      {
        name: 'commands',
        tier: 'storage',
        start: () => this.startCommandLog(),
        stop: () => this.commandLog.stop(),
      },
      {
        name: 'alerts',
        tier: 'processing',
        start: () => this.startAlerts(),
        stop: () => this.alerts.stop(),
      },
      {
        // stopped with the first tier: a purge under way ends its batch before the alert state
        // and the store close under it (one tier's members stop at once)
        name: 'retention',
        tier: 'network',
        start: () => this.startRetention(),
        stop: () => this.retention.stop(),
      },
      { name: 'geo', tier: 'processing', start: () => this.locator.start(), stop: () => this.locator.stop() },
      {
        name: 'history',
        tier: 'storage',
        start: async () => {
          this.history.open();
          this.history.track(
            () => this.registry.list(),
            () => this.clock().getTime(),
            (err) =>
              this.logger.error(
                { err, code: 'CLOUD_STORE_WRITE_FAILED' },
                'cannot record sensor states in the sensor history; retried every 5 s',
              ),
          );
        },
        stop: async () => this.history.close(),
      },
      {
        name: 'registry',
        tier: 'processing',
        start: () => this.registry.start(),
        stop: () => this.registry.stop(),
      },
      {
        name: 'rollouts',
        tier: 'network',
        start: async () => this.startModels(),
        stop: async () => this.rollouts?.stop(),
      },
      { name: 'mqtt', tier: 'network', start: () => this.startMqtt(), stop: () => this.source.stop() },
      {
        name: 'homeassistant',
        tier: 'network',
        start: () => this.startHomeAssistant(),
        stop: async () => this.homeAssistant?.stop(),
      },
      { name: 'web', tier: 'network', start: () => this.startWeb(), stop: async () => this.web?.stop() },
      { name: 'ops', tier: 'network', start: () => this.startOps(), stop: async () => this.ops?.stop() },
    ];
  }

  async start(): Promise<void> {
    const { config } = this.options;
    await this.runner.start();
    this.logger.info(
      {
        mqtt: config.mqtt.broker ? redactUrl(config.mqtt.broker) : { embedded: this.brokerPorts },
        web: this.web?.url ?? null,
        dataDir: resolve(config.dataDir),
      },
      'cloud bridge running',
    );
  }

  private async startStore(): Promise<void> {
    // observed: every write is pushed to the dashboard's live stream
    this.store = new ObservedEventStore(
      await openEventStore(this.options.config, this.options.env ?? process.env, this.logger),
    );
    await this.store.start();
  }

  private async startCommandLog(): Promise<void> {
    const env = this.options.env ?? process.env;
    this.commandLog = env.MONGODB_URI
      ? new MongoCommandLog({ uri: env.MONGODB_URI, dbName: env.MONGODB_DB ?? null })
      : new SqliteCommandLog(resolve(this.options.config.dataDir, 'commands.sqlite'));
    await this.commandLog.start();
    this.control = new SensorControl({
      log: this.commandLog,
      topicRoot: this.options.config.mqtt.topicRoot,
      publish: async (topic, payload) => {
        const publish = this.source?.publish?.bind(this.source);
        if (!publish) throw new Error('this broker connection cannot publish');
        await publish(topic, payload, { retain: false });
      },
      knows: (id) => this.registry.get(id) !== undefined,
      clock: this.clock,
      logger: this.logger.child({ component: 'control' }),
    });
  }

  private startModels(): void {
    const { config } = this.options;
    this.models = new ModelLibrary({
      dataDir: config.dataDir,
      shippedPath: config.modelPath,
      maxUploadBytes: config.models.maxUploadBytes,
      urlSecret: config.models.urlSecret,
      urlTtlS: config.models.urlTtlS,
      clock: this.clock,
      logger: this.logger.child({ component: 'models' }),
    });
    this.models.start();
    this.rollouts = new ModelRollouts({
      library: this.models,
      control: this.control,
      registry: this.registry,
      // the link must reach the bridge from the sensors: web.publicUrl behind a proxy
      baseUrl: () => config.web.publicUrl ?? this.web?.url ?? '',
      timeoutMs: config.models.rolloutTimeoutS * 1000,
      clock: this.clock,
      logger: this.logger.child({ component: 'rollout' }),
    });
  }

  private async startAlerts(): Promise<void> {
    const { config } = this.options;
    this.alerts = new AlertService({
      state: await openAlertState(config, this.options.env ?? process.env, this.logger),
      bridgeId: config.mqtt.clientId ?? `screamwatch-bridge-${hostname()}`,
      alerts: config.alerts,
      dataDir: resolve(config.dataDir),
      store: this.store,
      senders: this.options.senders ?? createSenders(config.alerts),
      sensorConfig: (id) => this.registry.config(id),
      logger: this.logger.child({ component: 'alerts' }),
      publicUrl: config.web.publicUrl,
      clock: this.clock,
      pollMs: this.options.alertPollMs,
      onAttempt: (channel, kind, outcome) => this.metrics.alertAttempt(channel, kind, outcome),
    });
    this.ingest = new EventIngest({
      store: this.store,
      registry: this.registry,
      locator: this.locator,
      alerter: this.alerts,
      topicRoot: config.mqtt.topicRoot,
      logger: this.logger.child({ component: 'ingest' }),
      clock: this.clock,
      maxClockSkewS: config.maxClockSkewS,
      onHeartbeat: (m) => {
        try {
          this.history.heartbeat(m.sensorId, this.clock().getTime(), m.inputLevelDbfs, m.lastMaxProbability);
          if (this.heartbeatWriteFailures > 0)
            this.logger.info(
              { failed: this.heartbeatWriteFailures },
              'the sensor history takes heartbeats again',
            );
          this.heartbeatWriteFailures = 0;
        } catch (err) {
          // once per run of failures (a full disk fails every heartbeat of every sensor)
          if (this.heartbeatWriteFailures++ === 0)
            this.logger.error(
              { err, code: 'CLOUD_STORE_WRITE_FAILED', sensorId: m.sensorId },
              'cannot record heartbeats in the sensor history; logged again when it recovers',
            );
        }
      },
      onStored: (event) => {
        if (event.isScream && event.alertType === 'scream') this.homeAssistant?.scream(event.sensorId);
      },
      onCommandResult: (m) => this.control.onResult(m),
    });
    await this.alerts.start();
  }

  private async startRetention(): Promise<void> {
    this.retention = new RetentionService({
      config: this.options.config.store,
      store: this.store,
      alerts: this.alerts.queue,
      logger: this.logger.child({ component: 'retention' }),
      clock: this.clock,
      ...(this.options.retentionFirstRunMs !== undefined && { firstRunMs: this.options.retentionFirstRunMs }),
    });
    await this.retention.start();
  }

  private async startMqtt(): Promise<void> {
    const { config } = this.options;
    if (config.mqtt.broker) {
      this.source = new ExternalBroker({
        config: config.mqtt,
        logger: this.logger.child({ component: 'mqtt' }),
      });
    } else {
      this.source = new EmbeddedBroker({
        config: config.mqtt,
        logger: this.logger.child({ component: 'broker' }),
        onSensorSeen: (id, ip) => this.registry.noteConnection(id, ip),
        ...(this.options.passwordGate && { passwordGate: this.options.passwordGate }),
      });
    }
    this.source.setHandler((topic, payload, meta) => this.ingest.handleMessage(topic, payload, meta));
    await this.source.start();
  }

  /**
   * Readiness, truthfully: the broker accepts (or the bridge is connected to the external one),
   * the event store and the alert queue can take a write now. /healthz answers 503 otherwise.
   */
  async readiness(): Promise<Readiness> {
    const checks: Readiness = {};
    const reason = this.source ? (this.source.notReadyReason?.() ?? null) : 'not started';
    checks.broker = reason ? { ok: false, detail: reason } : { ok: true };
    const probe = async (name: string, fn: () => unknown | Promise<unknown>) => {
      try {
        await fn();
        checks[name] = { ok: true };
      } catch (err) {
        checks[name] = { ok: false, detail: (err as Error).message };
      }
    };
    await probe('store', async () => {
      if (!this.store) throw new Error('not started');
      await this.store.checkWritable?.();
    });
    await probe('alertQueue', async () => {
      if (!this.alerts) throw new Error('not started');
      await this.alerts.queue.checkWritable();
    });
    return checks;
  }

  private async startHomeAssistant(): Promise<void> {
    const { config } = this.options;
    if (!config.homeAssistant.enabled) return;
    const source = this.source;
    const publish = source.publish?.bind(source);
    if (!publish) throw new Error('homeAssistant.enabled: this broker cannot publish');
    const ha = new HomeAssistantDiscovery({
      config: config.homeAssistant,
      topicRoot: config.mqtt.topicRoot,
      dataDir: resolve(config.dataDir),
      configuredIds: () => config.sensors.map((s) => s.id),
      sensors: () => this.registry.list(),
      publish: (topic, payload, retain) => publish(topic, payload, { retain }),
      logger: this.logger.child({ component: 'homeassistant' }),
      ...(this.options.homeAssistantRefreshMs !== undefined && {
        refreshMs: this.options.homeAssistantRefreshMs,
      }),
    });
    await ha.start();
    this.homeAssistant = ha;
  }

  private async startOps(): Promise<void> {
    const { metrics } = this.options.config;
    if (metrics.port === null) return;
    const ops = new OpsServer({
      host: metrics.host,
      port: metrics.port,
      registry: this.metrics.registry,
      readiness: () => this.readiness(),
      logger: this.logger.child({ component: 'ops' }),
    });
    await ops.start();
    this.ops = ops;
  }

  /** The dashboard (cloud/web, built separately; adjust createWeb() when WebDeps changes). */
  private async startWeb(): Promise<void> {
    if (this.options.web === false) return;
    const web = await this.createWeb();
    if (!web) return;
    await web.start();
    this.web = web;
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

  private async createWeb(): Promise<WebService | null> {
    const { config } = this.options;
    const model = this.options.model ?? (await this.loadModel());
    if (!model) return null;
    // A literal specifier, so the build (scripts/build.mjs) bundles the dashboard, loaded lazily.
    const { createWebService } = await import('./web/server.ts');
    return createWebService({
      config: { ...config.web, dataDir: resolve(config.dataDir) },
      store: this.store,
      ...(this.store instanceof ObservedEventStore ? { changes: this.store } : {}),
      registry: this.registry,
      history: this.history,
      control: this.control,
      models: {
        library: this.models,
        rollouts: this.rollouts,
        group: (name) =>
          this.registry
            .list()
            .filter((s) => s.configured && s.group === name)
            .map((s) => s.id),
        maxUploadBytes: config.models.maxUploadBytes,
      },
      alerts: this.alerts,
      ingestLocal: async (event) => {
        await this.ingest.ingestEvent(event);
      },
      locateIp: async (ip) => this.locator.locateIp(ip),
      model,
      logger: this.logger,
      clock: this.clock,
      readiness: () => this.readiness(),
    });
  }

  /** Tier by tier, each within its budget; a second call returns the first call's promise. */
  stop(): Promise<void> {
    return this.runner.stop();
  }
}
