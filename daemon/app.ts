import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_MODEL_PATH, loadModelFile } from '../core/model/load.ts';
import type { ScreamModel } from '../core/model/scream-model.ts';
import { encodeCommandResult, encodeEvent, encodeEvidence, encodeHeartbeat } from '../protocol/codec.ts';
import type {
  CommandResultMessage,
  DetectionOverrides,
  EffectiveDetection,
  EventMessage,
  ModelRef,
} from '../protocol/messages.ts';
import { redactUrl } from '../protocol/redact.ts';
import { sensorTopic } from '../protocol/topics.ts';
import { type NamedService, ServiceRunner, type StopTier } from '../runtime/lifecycle.ts';
import { OpsServer, type Readiness } from '../runtime/ops-server.ts';
import { SystemdNotifier } from '../runtime/sd-notify.ts';
import { AlsaSource } from './capture/alsa-source.ts';
import { type AudioSource, parseAudioSource, type RetryPolicy } from './capture/audio-source.ts';
import { FileSource } from './capture/file-source.ts';
import { FrameQueue } from './capture/frame-queue.ts';
import { ClipRecorder } from './clips/clip-recorder.ts';
import { type Clock, systemClock } from './clock.ts';
import type { DaemonConfig } from './config/schema.ts';
import { CommandService } from './control/command-service.ts';
import { DetectionOverridesFile, effectiveDetection, mergeDetection } from './control/detection-settings.ts';
import { ModelUpdater } from './control/model-updater.ts';
import { DetectionService } from './detect/detection-service.ts';
import { deviceInfo, sensorLocation } from './detect/event-message.ts';
import { DaemonError } from './errors.ts';
import { HeartbeatService } from './health/heartbeat-service.ts';
import { InputHealthMonitor } from './health/input-health-monitor.ts';
import { DaemonMetrics } from './observability/daemon-metrics.ts';
import { Outbox, type OutboxAddResult } from './outbox/outbox.ts';
import type { OutboxKind } from './outbox/outbox-store.ts';
import { MqttPublisher } from './publish/mqtt-publisher.ts';

export interface DaemonAppOptions {
  config: DaemonConfig;
  logger: Logger;
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
  /** A model already loaded (tests, benchmarks); default: detection.modelPath or the shipped one. */
  model?: ScreamModel;
  /** MQTT reconnect backoff (default 1 s doubling to 30 s). */
  mqttReconnect?: RetryPolicy;
  /** Audio the capture→analysis hand-off may hold before dropping the oldest (default 10 s). */
  queueCapacityS?: number;
  /** A file: source starts over at its end instead of ending (the demo's replay: one daemon run). */
  loopFileSource?: boolean;
  /** Re-reads the config file for the `reload` command (the CLI passes its loader); absent = refused. */
  reloadConfig?: () => DaemonConfig;
}

export interface DaemonStats {
  outboxDepth: number;
  outboxFull: boolean;
  outboxWritable: boolean;
  outboxLost: number;
  droppedFrames: number;
  processedS: number;
  eventsConfirmed: number;
  acked: number;
  connected: boolean;
}

/** How long the publisher waits for outstanding PUBACKs at shutdown. */
const PUBACK_BUDGET_MS = 3000;

/** Stop order and budgets; the network tier fits the PUBACK wait, `offline` and the disconnect. */
const STOP_TIERS: readonly StopTier[] = [
  { name: 'capture', budgetMs: 3000 },
  { name: 'analysis', budgetMs: 3000 },
  { name: 'network', budgetMs: PUBACK_BUDGET_MS + 2500 },
  { name: 'storage', budgetMs: 3000 },
];

/**
 * Wires the daemon: model → outbox → MQTT publisher → detection → heartbeat → capture, as
 * services of one ServiceRunner (runtime/lifecycle.ts): started in that order, rolled back in
 * reverse if one fails, stopped in tiers (see services()).
 *
 * Events: 'flowing' (audio arrived), 'source-end' (a file replay finished and was analysed),
 * 'committed' (row id, message) after each outbox commit.
 */
export class DaemonApp extends EventEmitter {
  readonly config: DaemonConfig;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly notifier: SystemdNotifier;
  readonly queue: FrameQueue;
  readonly inputHealth: InputHealthMonitor;
  readonly metrics: DaemonMetrics;
  /** The localhost metrics endpoint, when metrics.port is set. */
  ops: OpsServer | null = null;
  private audioFlowing = false;
  model!: ScreamModel;
  outbox!: Outbox;
  publisher!: MqttPublisher;
  detection!: DetectionService;
  heartbeat!: HeartbeatService;
  source!: AudioSource;
  /** The remote control plane (daemon/control), when control.enabled. */
  commands: CommandService | null = null;
  /** Remote model rollout (set-model) and its trial/rollback state, when control.enabled. */
  models: ModelUpdater | null = null;
  /** A rollback at start not yet told in a command result (the next one carries it). */
  private rollbackUntold: string | null = null;
  /** The remote detection overrides (`<stateDir>/detection-overrides.json`) in force. */
  overrides: DetectionOverrides = {};
  private overridesFile!: DetectionOverridesFile;
  /** Commands that arrived before the control service started (handled once it has). */
  private earlyCommands: [string, Buffer][] | null = [];
  private readonly runner: ServiceRunner;
  private stopping: Promise<void> | null = null;
  private outboxFull = false;
  private stopWatchdogPings: () => void = () => {};
  private lastFullLogMs = 0;
  private lastDropWarnMs = 0;

  constructor(private readonly options: DaemonAppOptions) {
    super();
    this.config = options.config;
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.notifier = new SystemdNotifier(this.logger, options.env ?? process.env);
    this.queue = new FrameQueue(Math.round((options.queueCapacityS ?? 10) * 16_000));
    this.inputHealth = new InputHealthMonitor({
      thresholds: this.config.health,
      source: this.config.audio.source,
      clock: this.clock,
      logger: this.logger.child({ service: 'input-health' }),
      onChange: (health, since) => {
        this.publisher?.setHealth(health, since);
        this.emit('health', health, since);
      },
    });
    this.metrics = new DaemonMetrics({
      windowsScored: () => this.detection?.windowsScored ?? 0,
      eventsConfirmed: () => this.detection?.eventsConfirmed ?? 0,
      reportsSent: () => this.detection?.reportsSent ?? 0,
      outboxDepth: () => this.outbox?.depth ?? 0,
      outboxWritable: () => this.outbox?.writable ?? false,
      droppedFrames: () => this.queue.droppedFrames,
      inputLevelDbfs: () => this.detection?.inputLevelDbfs ?? null,
      health: () => this.inputHealth.health,
      mqttConnected: () => this.publisher?.isConnected ?? false,
    });
    this.runner = new ServiceRunner({
      services: this.services(),
      tiers: STOP_TIERS,
      logger: this.logger,
      abortedCode: 'DAEMON_START_ABORTED',
    });
  }

  /**
   * The services, in start order. Capture comes last, so audio flows into a ready pipeline.
   * Stop goes by tier: capture, then the analysis of what was already captured (the current
   * window) and the heartbeat, then the network (with a budget for PUBACKs), storage last.
   */
  private services(): NamedService[] {
    return [
      { name: 'model', tier: 'storage', start: async () => this.loadModel(), stop: async () => {} },
      {
        name: 'outbox',
        tier: 'storage',
        start: async () => this.openOutbox(),
        stop: async () => this.outbox.close(),
      },
      {
        name: 'publisher',
        tier: 'network',
        start: () => this.startPublisher(),
        stop: () => this.publisher.stop(PUBACK_BUDGET_MS),
      },
      {
        name: 'detection',
        tier: 'analysis',
        start: () => this.startDetection(),
        stop: () => this.detection.stop(),
      },
      {
        name: 'heartbeat',
        tier: 'analysis',
        start: () => this.startHeartbeat(),
        stop: () => this.heartbeat.stop(),
      },
      {
        name: 'control',
        tier: 'analysis',
        start: () => this.startControl(),
        stop: async () => {
          // a download in progress ends first, so the command being handled can finish
          this.models?.stop();
          await this.commands?.stop();
        },
      },
      { name: 'capture', tier: 'capture', start: () => this.startCapture(), stop: () => this.stopCapture() },
      { name: 'ops', tier: 'network', start: () => this.startOps(), stop: async () => this.ops?.stop() },
    ];
  }

  /** Ready = the outbox takes writes, the broker is connected and audio flows (/healthz). */
  async readiness(): Promise<Readiness> {
    const o = this.outbox;
    const health = this.inputHealth.health;
    return {
      outbox: o?.writable
        ? { ok: true }
        : { ok: false, detail: o ? `outbox not writable: ${o.reason ?? 'disk fault'}` : 'not open' },
      mqtt: this.publisher?.isConnected
        ? { ok: true }
        : {
            ok: false,
            detail: this.publisher?.authError?.message ?? `not connected to ${this.config.mqtt.url}`,
          },
      audio:
        this.audioFlowing && health !== 'no-device'
          ? { ok: true, ...(health !== 'ok' && { detail: `input health ${health}` }) }
          : { ok: false, detail: health === 'no-device' ? 'no audio device' : 'no audio yet' },
    };
  }

  private async startOps(): Promise<void> {
    const { port, host } = this.config.metrics;
    if (port === null) return;
    const ops = new OpsServer({
      host,
      port,
      registry: this.metrics.registry,
      readiness: () => this.readiness(),
      logger: this.logger.child({ service: 'ops' }),
    });
    await ops.start();
    this.ops = ops;
  }

  /** Names of the services running now, in start order (tests, diagnostics). */
  get running(): string[] {
    return this.runner.runningNames;
  }

  async start(): Promise<void> {
    const c = this.config;
    await this.runner.start();
    this.logger.info(
      { sensorId: c.sensorId, source: c.audio.source, broker: redactUrl(c.mqtt.url) },
      'daemon started',
    );
  }

  private loadModel(): void {
    const c = this.config;
    const path = c.detection.modelPath ?? DEFAULT_MODEL_PATH;
    if (this.options.model) this.model = this.options.model;
    else if (c.control.enabled) {
      // a model rolled out remotely takes precedence over detection.modelPath (like set-detection)
      this.models = new ModelUpdater({
        stateDir: c.stateDir,
        trialS: c.control.modelTrialS,
        downloadTimeoutMs: c.control.modelDownloadTimeoutS * 1000,
        clock: this.clock,
        logger: this.logger.child({ service: 'control' }),
      });
      const started = this.models.startupModel(() => loadModelFile(path));
      this.model = started.model;
      const rb = this.models.rollback;
      if (rb && this.models.rolledBackAtStart)
        this.rollbackUntold = `model ${rb.from} rolled back to ${rb.to} at start: ${rb.reason}`;
      if (started.source !== 'config')
        this.logger.info(
          { modelVersion: this.model.version, file: started.source },
          'remote model in force (it takes precedence over detection.modelPath)',
        );
    } else this.model = loadModelFile(path);
    this.logger.info({ modelVersion: this.model.version, path }, 'model loaded');
    this.overridesFile = new DetectionOverridesFile(
      this.config.stateDir,
      this.logger.child({ service: 'control' }),
    );
    const saved = this.config.control.enabled ? this.overridesFile.load() : null;
    if (!saved) return;
    try {
      effectiveDetection(this.model, this.config.detection, saved.overrides);
      this.overrides = saved.overrides;
      this.logger.info(
        {
          overrides: saved.overrides,
          issuedBy: saved.issuedBy,
          savedAt: saved.savedAt,
          file: this.overridesFile.path,
        },
        'remote detection settings in force (they take precedence over the config file)',
      );
    } catch (err) {
      // e.g. the config file's n was lowered under a saved k: the config file wins, visibly
      this.logger.error(
        { code: 'SETTINGS_CORRUPT', file: this.overridesFile.path, err: (err as Error).message },
        'the saved remote detection settings do not fit this config; the config file applies',
      );
    }
  }

  /** The detection settings in force (model defaults < config file < remote overrides). */
  effectiveDetection(): EffectiveDetection {
    return effectiveDetection(this.model, this.config.detection, this.overrides);
  }

  private openOutbox(): void {
    const c = this.config;
    this.outbox = new Outbox({
      stateDir: c.stateDir,
      maxRows: c.outbox.maxRows,
      memoryMaxRows: c.outbox.memoryMaxRows,
      retry: c.outbox.retry,
      logger: this.logger.child({ service: 'outbox' }),
      clock: this.clock,
    });
    this.outbox.open();
    // the retained status says whether the disk takes writes
    this.outbox.on('writable', () => this.publisher?.republishStatus());
  }

  private async startPublisher(): Promise<void> {
    const c = this.config;
    this.publisher = new MqttPublisher({
      mqtt: c.mqtt,
      sensorId: c.sensorId,
      topicRoot: c.topicRoot,
      modelVersion: this.model.version,
      outbox: this.outbox,
      outboxWritable: () => this.outbox.writable,
      clock: this.clock,
      logger: this.logger.child({ service: 'mqtt' }),
      commands: c.control.enabled,
      ...(this.options.mqttReconnect && { reconnect: this.options.mqttReconnect }),
    });
    this.publisher.setHealth(this.inputHealth.health, this.inputHealth.since);
    this.publisher.setDetection(this.effectiveDetection());
    if (this.models?.rollback) this.publisher.setModelRollback(this.models.rollback);
    this.publisher.on('command', (topic: string, payload: Buffer) => {
      if (this.earlyCommands) this.earlyCommands.push([topic, payload]);
      else this.commands?.receive(topic, payload);
    });
    this.publisher.on('acked', (row: { kind: string; createdAtMs: number }) =>
      this.metrics.acked(row.kind, (this.clock.now() - row.createdAtMs) / 1000),
    );
    await this.publisher.start();
  }

  private async startDetection(): Promise<void> {
    const c = this.config;
    const clips = c.clips.enabled
      ? new ClipRecorder({
          dir: c.clips.dir ?? join(c.stateDir, 'clips'),
          maxBytes: c.clips.maxBytes,
          preS: c.clips.preS,
          postS: c.clips.postS,
          logger: this.logger,
        })
      : undefined;
    this.detection = new DetectionService({
      model: this.model,
      detection: mergeDetection(c.detection, this.overrides),
      sensorId: c.sensorId,
      audioSource: c.audio.source,
      deviceInfo: deviceInfo(),
      location: sensorLocation(c.location),
      queue: this.queue,
      sink: {
        commit: (kind, message) => this.commitEvent(kind, message),
        // kind 'report': dropped before events when the outbox is full (the event itself is safe)
        evidence: (message) =>
          void this.commit('report', 'evidence', encodeEvidence(message), message.eventId),
      },
      clock: this.clock,
      logger: this.logger.child({ service: 'detect' }),
      clips,
      onProgress: () => this.notifier.watchdog(),
      onWindow: (p) => this.metrics.window(p),
    });
    await this.detection.start();
  }

  private async startHeartbeat(): Promise<void> {
    const c = this.config;
    this.heartbeat = new HeartbeatService({
      sensorId: c.sensorId,
      modelVersion: this.model.version,
      intervalS: c.heartbeatIntervalS,
      clock: this.clock,
      facts: () => ({
        outboxDepth: this.outbox.depth,
        outboxFull: this.outboxFull,
        outboxWritable: this.outbox.writable,
        outboxLost: this.outbox.lost,
        droppedFrames: this.queue.droppedFrames,
        inputLevelDbfs: this.detection.inputLevelDbfs,
        lastMaxProbability: this.detection.takeMaxProbability(),
        health: { health: this.inputHealth.health, since: this.inputHealth.since },
      }),
      emit: (m) => {
        this.commit('heartbeat', 'heartbeat', encodeHeartbeat(m));
      },
    });
    await this.heartbeat.start();
  }

  private async startControl(): Promise<void> {
    const c = this.config;
    const early = this.earlyCommands ?? [];
    this.earlyCommands = null;
    if (!c.control.enabled) return;
    this.commands = new CommandService({
      sensorId: c.sensorId,
      topicRoot: c.topicRoot,
      stateDir: c.stateDir,
      maxCommandAgeS: c.control.maxCommandAgeS,
      clock: this.clock,
      logger: this.logger.child({ service: 'control' }),
      commitResult: (result) => this.commitResult(result),
      handlers: {
        ping: () => ({ detection: this.effectiveDetection(), modelVersion: this.model.version }),
        'set-detection': (command) => this.setDetection(command.detection ?? {}, command),
        reload: () => this.reloadConfig(),
        'set-model': (command) => this.setModel(command.model!),
      },
    });
    await this.commands.start();
    for (const [topic, payload] of early) this.commands.receive(topic, payload);
  }

  /**
   * set-detection: checked against the config and the model, saved (so it survives a restart),
   * then applied; a refusal at any step leaves the running settings and the file as they were.
   */
  private setDetection(
    overrides: DetectionOverrides,
    command: { commandId: string; issuedBy: string },
  ): { detection: EffectiveDetection; modelVersion: string } {
    const effective = effectiveDetection(this.model, this.config.detection, overrides);
    this.overridesFile.save({
      overrides,
      commandId: command.commandId,
      issuedBy: command.issuedBy,
      savedAt: new Date(this.clock.now()).toISOString(),
    });
    this.overrides = overrides;
    this.applyDetection();
    return { detection: effective, modelVersion: this.model.version };
  }

  /**
   * set-model: download, verify and self-test (model-updater.ts), check that the remote
   * detection settings fit the new model, write it to the state dir, then switch the running
   * detector (an open event ends under the old model) and report the new version in the
   * status and heartbeats. A refusal at any step leaves the model and its files as they were.
   */
  private async setModel(ref: ModelRef): Promise<{
    detection: EffectiveDetection;
    modelVersion: string;
    message: string;
  }> {
    const models = this.models;
    if (!models) {
      throw new DaemonError('COMMAND_INVALID', 'this daemon runs a model given in code; set-model is off', {
        problem: 'no model state',
      });
    }
    if (ref.version === this.model.version) {
      if (models.current?.sha256 === ref.sha256 || models.current === null) {
        return {
          detection: this.effectiveDetection(),
          modelVersion: this.model.version,
          message: `model ${ref.version} is already running`,
        };
      }
      throw new DaemonError('COMMAND_INVALID', `another file is running as model ${ref.version}`, {
        problem: 'same version, other sha256',
      });
    }
    const { model, bytes } = await models.fetchAndVerify(ref);
    // the saved remote settings must make a valid rule with the new model's defaults too
    const detection = effectiveDetection(model, this.config.detection, this.overrides);
    const previous = this.model;
    models.install(ref, bytes, previous);
    this.model = model;
    this.detection.setModel(model, mergeDetection(this.config.detection, this.overrides));
    this.heartbeat.setModelVersion(model.version);
    this.publisher.setModelRollback(null);
    this.publisher.setDetection(detection);
    this.publisher.setModelVersion(model.version);
    const message = `model ${model.version} installed (previous ${previous.version} kept; a restart within ${this.config.control.modelTrialS} s rolls back)`;
    this.logger.info(
      { modelVersion: model.version, previous: previous.version, sha256: ref.sha256 },
      message,
    );
    return { detection, modelVersion: model.version, message };
  }

  /** The detector and the retained status take the settings in force now. */
  private applyDetection(): void {
    this.detection.applyDetection(mergeDetection(this.config.detection, this.overrides));
    this.publisher.setDetection(this.effectiveDetection());
  }

  /**
   * reload: the config file again. Its detection section applies at once (under the remote
   * overrides, which stay until cleared); anything else that changed needs a restart, and the
   * answer says which keys.
   */
  private reloadConfig(): { detection: EffectiveDetection; modelVersion: string; message: string } {
    if (!this.options.reloadConfig) {
      throw new DaemonError('COMMAND_INVALID', 'this daemon was started without a config file to reload', {
        problem: 'no config file',
      });
    }
    let next: DaemonConfig;
    try {
      next = this.options.reloadConfig();
    } catch (err) {
      throw new DaemonError('COMMAND_FAILED', (err as Error).message, { problem: (err as Error).message });
    }
    // refuse before changing anything when the new file and the overrides do not fit together
    effectiveDetection(this.model, next.detection, this.overrides);
    const needsRestart = (Object.keys(next) as (keyof DaemonConfig)[]).filter(
      (k) => k !== 'detection' && JSON.stringify(next[k]) !== JSON.stringify(this.config[k]),
    );
    const { modelPath: nextModel, ...nextDetection } = next.detection;
    if (nextModel !== this.config.detection.modelPath) needsRestart.push('detection.modelPath' as never);
    Object.assign(this.config.detection, nextDetection);
    this.applyDetection();
    const message = needsRestart.length
      ? `detection settings reloaded; these changes need a restart: ${needsRestart.join(', ')}`
      : 'detection settings reloaded';
    this.logger.info({ needsRestart }, message);
    return { detection: this.effectiveDetection(), modelVersion: this.model.version, message };
  }

  private commitResult(result: CommandResultMessage): void {
    if (this.rollbackUntold) {
      // the first answer after a rollback at start says so (the status does too)
      const note = this.rollbackUntold;
      this.rollbackUntold = null;
      result.message = (result.message ? `${note}; ${result.message}` : note).slice(0, 1000);
    }
    // Kind 'report': evicted before events when the outbox is full, like near-miss reports; a
    // lost answer is covered by the retained status, which carries the settings in force.
    const r = this.commit('report', 'command-results', encodeCommandResult(result));
    if (r.id === null)
      this.logger.warn({ commandId: result.commandId }, 'outbox full: command result not queued');
  }

  private async startCapture(): Promise<void> {
    const c = this.config;
    const source = parseAudioSource(c.audio.source);
    const events = {
      samples: (s: Float32Array) => {
        this.inputHealth.samples(s);
        const dropped = this.queue.push(s);
        if (dropped > 0) this.warnDropped();
      },
      hasRoomFor: (samples: number) => this.queue.hasRoomFor(samples),
      flowing: () => {
        this.audioFlowing = true;
        this.notifier.ready();
        this.notifier.status(`listening on ${c.audio.source}`);
        this.emit('flowing');
      },
      end: () => this.onSourceEnd(),
      // Microphone missing at boot (or lost): the daemon is up and handling it, so READY goes
      // out now (systemd must not kill us in a start-timeout loop that cannot bring the mic
      // back); WATCHDOG comes from the retry loop below and the retained status says
      // health "no-device".
      failed: () => {
        this.audioFlowing = false;
        this.notifier.ready();
        this.notifier.status(`no audio device ${c.audio.source}: retrying`);
        this.inputHealth.deviceFailed();
      },
    };
    this.source =
      source.kind === 'alsa'
        ? new AlsaSource({
            device: source.device,
            retry: c.audio.retry,
            events,
            logger: this.logger.child({ service: 'capture' }),
          })
        : new FileSource({
            path: source.path,
            fast: c.audio.fast,
            maxSeconds: c.audio.maxFileSeconds,
            loop: this.options.loopFileSource ?? false,
            events,
            logger: this.logger,
          });
    await this.inputHealth.start();
    try {
      await this.source.start();
    } catch (err) {
      // The runner rolls back only services that started: a capture that fails to start
      // stops its own health monitor, whose interval otherwise ran on after app.stop().
      await this.inputHealth.stop();
      throw err;
    }
    // WATCHDOG comes from the analysis loop. While the microphone is known to be missing and
    // being retried, keep systemd from restarting us in a loop: we are handling it. A stall we
    // do not know about (no data, no error) stops the pings.
    const src = this.source;
    this.stopWatchdogPings = this.notifier.pingWhile(() => src instanceof AlsaSource && src.retrying);
  }

  private async stopCapture(): Promise<void> {
    this.stopWatchdogPings();
    this.stopWatchdogPings = () => {};
    try {
      await this.source.stop();
    } finally {
      await this.inputHealth.stop();
    }
  }

  /**
   * The one way into the outbox, for events, near-miss reports and heartbeats: written first,
   * the cap reported, then the publisher is told there is something to send.
   */
  private commit(
    kind: OutboxKind,
    channel: 'events' | 'heartbeat' | 'command-results' | 'evidence',
    payload: Buffer,
    eventId?: string,
  ): OutboxAddResult {
    const c = this.config;
    const r = this.outbox.add(
      kind,
      sensorTopic(c.topicRoot, c.sensorId, channel),
      payload,
      this.clock.now(),
      eventId,
    );
    if (r.full) this.reportFull();
    if (r.id !== null) this.publisher.kick();
    return r;
  }

  private commitEvent(kind: 'event' | 'report', message: EventMessage): void {
    const r = this.commit(kind, 'events', encodeEvent(message), message.eventId);
    if (r.id === null) {
      this.logger.warn({ eventId: message.eventId }, 'outbox full of events: near-miss report not queued');
      return;
    }
    if (r.memory) {
      this.logger.warn(
        { eventId: message.eventId, kind, memoryDepth: this.outbox.memoryDepth },
        'outbox not writable: event held in memory and published directly',
      );
    }
    this.emit('committed', r.id, message);
  }

  private reportFull(): void {
    this.outboxFull = true;
    const now = this.clock.now();
    if (now - this.lastFullLogMs < 60_000) return;
    this.lastFullLogMs = now;
    this.logger.error(
      {
        code: 'OUTBOX_FULL',
        depth: this.outbox.depth,
        maxRows: this.config.outbox.maxRows,
        path: this.outbox.path,
      },
      `outbox ${this.outbox.path} reached outbox.maxRows=${this.config.outbox.maxRows}: heartbeats and near-miss reports are dropped first; events are kept beyond the cap`,
    );
  }

  private warnDropped(): void {
    const now = this.clock.now();
    if (now - this.lastDropWarnMs < 10_000) return;
    this.lastDropWarnMs = now;
    this.logger.warn(
      { droppedFrames: this.queue.droppedFrames },
      'analysis is behind capture: audio dropped',
    );
  }

  private onSourceEnd(): void {
    // analyse what is still queued, close an open event, then tell the runner
    this.detection.drain(Number.POSITIVE_INFINITY);
    this.detection.detector.finish();
    this.logger.info(
      { audioS: Math.round(this.detection.processedS * 10) / 10, events: this.detection.eventsConfirmed },
      'audio file finished',
    );
    this.emit('source-end');
  }

  /** Sends a heartbeat now (tests; on boot). */
  beat(): void {
    this.heartbeat.beat();
  }

  stats(): DaemonStats {
    return {
      outboxDepth: this.outbox?.depth ?? 0,
      outboxFull: this.outboxFull,
      outboxWritable: this.outbox?.writable ?? true,
      outboxLost: this.outbox?.lost ?? 0,
      droppedFrames: this.queue.droppedFrames,
      processedS: this.detection?.processedS ?? 0,
      eventsConfirmed: this.detection?.eventsConfirmed ?? 0,
      acked: this.publisher?.acked ?? 0,
      connected: this.publisher?.isConnected ?? false,
    };
  }

  /** Idempotent: a second call (second SIGTERM) returns the same promise. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.notifier.stopping();
      await this.runner.stop();
      this.logger.info('daemon stopped');
    })();
    return this.stopping;
  }
}
