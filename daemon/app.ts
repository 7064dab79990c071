import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_MODEL_PATH, loadModelFile } from '../core/model/load.ts';
import type { ScreamModel } from '../core/model/scream-model.ts';
import { encodeEvent, encodeHeartbeat } from '../protocol/codec.ts';
import type { EventMessage } from '../protocol/messages.ts';
import { sensorTopic } from '../protocol/topics.ts';
import { AlsaSource } from './capture/alsa-source.ts';
import { type AudioSource, parseAudioSource, type RetryPolicy } from './capture/audio-source.ts';
import { FileSource } from './capture/file-source.ts';
import { FrameQueue } from './capture/frame-queue.ts';
import { ClipRecorder } from './clips/clip-recorder.ts';
import { type Clock, systemClock } from './clock.ts';
import type { DaemonConfig } from './config/schema.ts';
import { DetectionService } from './detect/detection-service.ts';
import { deviceInfo, sensorLocation } from './detect/event-message.ts';
import { DaemonError } from './errors.ts';
import { HeartbeatService } from './health/heartbeat-service.ts';
import { SystemdNotifier } from './health/sd-notify.ts';
import { Outbox } from './outbox/outbox.ts';
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
}

interface Service {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
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

/**
 * Wires the daemon: model → outbox → MQTT publisher → detection → heartbeat → capture.
 * Started in that order (capture last, so audio flows into a ready pipeline), rolled back
 * in reverse if a step fails. Stopped in tiers: capture, then analysis of what was already
 * captured (the current window), heartbeat, the network (with a budget for PUBACKs), and
 * storage last.
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
  model!: ScreamModel;
  outbox!: Outbox;
  publisher!: MqttPublisher;
  detection!: DetectionService;
  heartbeat!: HeartbeatService;
  source!: AudioSource;
  private started: Service[] = [];
  private readonly abort = new AbortController();
  private stopping: Promise<void> | null = null;
  private outboxFull = false;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private lastFullLogMs = 0;

  constructor(private readonly options: DaemonAppOptions) {
    super();
    this.config = options.config;
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.notifier = new SystemdNotifier(this.logger, options.env ?? process.env);
    this.queue = new FrameQueue(Math.round((options.queueCapacityS ?? 10) * 16_000));
  }

  async start(): Promise<void> {
    const c = this.config;
    const log = this.logger;
    const source = parseAudioSource(c.audio.source);
    const steps: Service[] = [
      {
        name: 'model',
        start: async () => {
          this.model = this.options.model ?? loadModelFile(c.detection.modelPath ?? DEFAULT_MODEL_PATH);
          log.info(
            { modelVersion: this.model.version, path: c.detection.modelPath ?? DEFAULT_MODEL_PATH },
            'model loaded',
          );
        },
        stop: async () => {},
      },
      {
        name: 'outbox',
        start: async () => {
          this.outbox = new Outbox({
            stateDir: c.stateDir,
            maxRows: c.outbox.maxRows,
            memoryMaxRows: c.outbox.memoryMaxRows,
            retry: c.outbox.retry,
            logger: log.child({ service: 'outbox' }),
            clock: this.clock,
          });
          this.outbox.open();
          // the retained status says whether the disk takes writes
          this.outbox.on('writable', () => this.publisher?.republishStatus());
        },
        stop: async () => this.outbox.close(),
      },
      {
        name: 'publisher',
        start: async () => {
          this.publisher = new MqttPublisher({
            mqtt: c.mqtt,
            sensorId: c.sensorId,
            topicRoot: c.topicRoot,
            modelVersion: this.model.version,
            outbox: this.outbox,
            outboxWritable: () => this.outbox.writable,
            clock: this.clock,
            logger: log.child({ service: 'mqtt' }),
            ...(this.options.mqttReconnect && { reconnect: this.options.mqttReconnect }),
          });
          await this.publisher.start();
        },
        stop: () => this.publisher.stop(3000),
      },
      {
        name: 'detection',
        start: async () => {
          const clipsDir = c.clips.dir ?? join(c.stateDir, 'clips');
          const clips = c.clips.enabled
            ? new ClipRecorder({
                dir: clipsDir,
                maxBytes: c.clips.maxBytes,
                preS: c.clips.preS,
                postS: c.clips.postS,
                logger: log,
              })
            : undefined;
          this.detection = new DetectionService({
            model: this.model,
            detection: c.detection,
            sensorId: c.sensorId,
            audioSource: c.audio.source,
            deviceInfo: deviceInfo(),
            location: sensorLocation(c.location),
            queue: this.queue,
            sink: { commit: (kind, message) => this.commitEvent(kind, message) },
            clock: this.clock,
            logger: log.child({ service: 'detect' }),
            clips,
            onProgress: () => this.notifier.watchdog(),
          });
          await this.detection.start();
        },
        stop: () => this.detection.stop(),
      },
      {
        name: 'heartbeat',
        start: async () => {
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
            }),
            emit: (m) => {
              const r = this.outbox.add(
                'heartbeat',
                sensorTopic(c.topicRoot, c.sensorId, 'heartbeat'),
                encodeHeartbeat(m),
                this.clock.now(),
              );
              if (r.full) this.reportFull();
              this.publisher.kick();
            },
          });
          await this.heartbeat.start();
        },
        stop: () => this.heartbeat.stop(),
      },
      {
        name: 'capture',
        start: async () => {
          const events = {
            samples: (s: Float32Array) => {
              const dropped = this.queue.push(s);
              if (dropped > 0) this.warnDropped();
            },
            flowing: () => {
              this.notifier.ready();
              this.notifier.status(`listening on ${c.audio.source}`);
              this.emit('flowing');
            },
            end: () => this.onSourceEnd(),
          };
          this.source =
            source.kind === 'alsa'
              ? new AlsaSource({
                  device: source.device,
                  retry: c.audio.retry,
                  events,
                  logger: log.child({ service: 'capture' }),
                })
              : new FileSource({
                  path: source.path,
                  fast: c.audio.fast,
                  events,
                  queue: this.queue,
                  logger: log,
                });
          await this.source.start();
          // WATCHDOG comes from the analysis loop. While the microphone is known to be
          // missing and being retried, keep systemd from restarting us in a loop: we are
          // handling it. A stall we do not know about (no data, no error) stops the pings.
          if (this.notifier.watchdogIntervalMs > 0) {
            const src = this.source;
            this.watchdogTimer = setInterval(() => {
              if (src instanceof AlsaSource && src.retrying) this.notifier.watchdog();
            }, this.notifier.watchdogIntervalMs);
            this.watchdogTimer.unref();
          }
        },
        stop: async () => {
          if (this.watchdogTimer) clearInterval(this.watchdogTimer);
          this.watchdogTimer = null;
          await this.source.stop();
        },
      },
    ];
    for (const step of steps) {
      if (this.abort.signal.aborted) {
        await this.rollback();
        throw new DaemonError('DAEMON_START_ABORTED', `start aborted before ${step.name}`);
      }
      try {
        await step.start();
        this.started.push(step);
      } catch (err) {
        log.error(
          { service: step.name, err: (err as Error).message, code: (err as DaemonError).code },
          `${step.name} failed to start`,
        );
        await this.rollback();
        throw err;
      }
    }
    log.info({ sensorId: c.sensorId, source: c.audio.source, broker: c.mqtt.url }, 'daemon started');
  }

  private async rollback(): Promise<void> {
    while (this.started.length) {
      const s = this.started.pop()!;
      try {
        await s.stop();
      } catch (err) {
        this.logger.warn({ service: s.name, err: (err as Error).message }, 'rollback: stop failed');
      }
    }
  }

  private commitEvent(kind: 'event' | 'report', message: EventMessage): void {
    const c = this.config;
    const payload = encodeEvent(message);
    const r = this.outbox.add(
      kind,
      sensorTopic(c.topicRoot, c.sensorId, 'events'),
      payload,
      this.clock.now(),
      message.eventId,
    );
    if (r.full) this.reportFull();
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
    this.publisher.kick();
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

  private lastDropWarnMs = 0;
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
      this.abort.abort();
      this.notifier.stopping();
      const order = ['capture', 'detection', 'heartbeat', 'publisher', 'outbox', 'model'];
      for (const name of order) {
        const i = this.started.findIndex((s) => s.name === name);
        if (i < 0) continue;
        const [s] = this.started.splice(i, 1);
        try {
          await s!.stop();
        } catch (err) {
          this.logger.warn({ service: name, err: (err as Error).message }, 'stop failed');
        }
      }
      await this.rollback();
      this.logger.info('daemon stopped');
    })();
    return this.stopping;
  }
}
