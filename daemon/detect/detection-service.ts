import type { Logger } from 'pino';
import {
  type DetectedEvent,
  type DetectedWindow,
  type DetectorOptions,
  StreamDetector,
} from '../../core/detect/detector.ts';
import { HOP_S } from '../../core/features/window-features.ts';
import type { ScreamModel } from '../../core/model/scream-model.ts';
import { UlidFactory } from '../../protocol/event-id.ts';
import {
  type EventMessage,
  type EvidenceMessage,
  PROTOCOL_VERSION,
  type TimelineWindow,
} from '../../protocol/messages.ts';
import type { FrameQueue } from '../capture/frame-queue.ts';
import type { ClipRecorder } from '../clips/clip-recorder.ts';
import type { Clock } from '../clock.ts';
import type { DaemonConfig } from '../config/schema.ts';
import {
  buildEventMessage,
  type DeviceInfo,
  type EventFacts,
  type SensorLocation,
  wireTimeline,
} from './event-message.ts';

export interface DetectionSink {
  /** Commits the message durably (outbox) before returning; publishing happens later. */
  commit(kind: 'event' | 'report', message: EventMessage): void;
  /** An event's whole timeline, once the 10 s after its confirmation have passed (optional). */
  evidence?(message: EvidenceMessage): void;
}

export interface DetectionServiceOptions {
  model: ScreamModel;
  detection: DaemonConfig['detection'];
  sensorId: string;
  audioSource: string;
  deviceInfo: DeviceInfo;
  location: SensorLocation | undefined;
  queue: FrameQueue;
  sink: DetectionSink;
  clock: Clock;
  logger: Logger;
  clips?: ClipRecorder | undefined;
  /** Called from the analysis loop after each processed chunk (sd_notify WATCHDOG). */
  onProgress?: () => void;
  /** Each scored window's probability (metrics). */
  onWindow?: (probability: number) => void;
}

/** Chunks processed per turn of the event loop before yielding to I/O. */
const CHUNKS_PER_TURN = 8;
/** Seconds of window scores before and after the confirmation that go with an event (evidence, no audio). */
const TIMELINE_S = 10;
/** Windows kept for it: 10 s of hops before, 10 s after, and the confirming one. */
const TIMELINE_WINDOWS = 2 * Math.ceil(TIMELINE_S / HOP_S) + 1;

/**
 * The analysis loop: pulls audio from the bounded queue, runs the shared StreamDetector,
 * and on each confirmation builds the EventMessage and commits it to the outbox.
 * Near-miss reports (off by default): a run of windows over `reportThreshold` that never
 * got confirmed becomes one isScream=false event when it ends.
 */
export class DetectionService {
  readonly detector: StreamDetector;
  private readonly ulid = new UlidFactory();
  private scheduled: NodeJS.Immediate | null = null;
  private running = false;
  private eventOpen = false;
  private nearMiss: DetectedWindow | null = null;
  private nearMissStartS: number | null = null;
  /** Confirmed events waiting for the 10 s after their confirmation (their evidence follow-up). */
  private readonly evidence: { message: EventMessage; detectedAtS: number }[] = [];
  /** Score and level of the last windows (a small ring, no features), for the event's timeline. */
  private readonly lastScores: { endS: number; probability: number; levelDbfs: number }[] = [];
  /** Audio seconds analysed since start. */
  processedS = 0;
  /** RMS level of the last chunk, dBFS. */
  inputLevelDbfs = -200;
  /** Highest window probability since the last `takeMaxProbability()`. */
  private maxProbability = 0;
  windowsScored = 0;
  eventsConfirmed = 0;
  reportsSent = 0;

  /** The detection section in force: the config file's, with remote overrides laid over it. */
  private detection: DaemonConfig['detection'];

  constructor(private readonly options: DetectionServiceOptions) {
    this.detection = options.detection;
    this.detector = new StreamDetector(options.model, detectorOptions(options.detection));
  }

  /**
   * Takes new settings while running (remote set-detection, a reload): the confirmer from the
   * next window on (an open event ends under its own rule), near-miss reports at once.
   * Throws RangeError for settings the confirmer refuses, changing nothing.
   */
  applyDetection(detection: DaemonConfig['detection']): void {
    this.detector.reconfigure(detectorOptions(detection));
    this.detection = detection;
    if (detection.reportThreshold === null) {
      this.nearMiss = null;
      this.nearMissStartS = null;
    }
    this.options.logger.info(
      { ...this.detector.options, reportThreshold: detection.reportThreshold },
      'detection settings changed',
    );
  }

  /**
   * Another model while running (remote set-model), with the detection section to use with it:
   * from the next window on, or once an open event has ended under the model that confirmed it
   * (core/detect/detector.ts setModel). Events carry the version of the model that scored them.
   */
  setModel(model: ScreamModel, detection: DaemonConfig['detection']): void {
    const from = this.detector.model.version;
    this.detector.setModel(model, detectorOptions(detection));
    this.detection = detection;
    this.options.logger.info(
      { from, modelVersion: model.version, ...this.detector.options },
      this.eventOpen ? 'model switch waits for the open event to end' : 'model switched',
    );
  }

  async start(): Promise<void> {
    this.running = true;
    this.options.queue.setListener(() => this.schedule());
    this.options.logger.info(
      {
        modelVersion: this.detector.model.version,
        ...this.detector.options,
        reportThreshold: this.detection.reportThreshold,
      },
      'detector ready',
    );
  }

  takeMaxProbability(): number {
    const m = this.maxProbability;
    this.maxProbability = 0;
    return m;
  }

  private schedule(): void {
    if (!this.running || this.scheduled) return;
    this.scheduled = setImmediate(() => {
      this.scheduled = null;
      this.drain(CHUNKS_PER_TURN);
      if (this.options.queue.queuedSamples > 0) this.schedule();
    });
  }

  /** Processes queued audio; `Infinity` empties the queue (shutdown: finish the current window). */
  drain(maxChunks: number): void {
    for (let i = 0; i < maxChunks; i++) {
      const chunk = this.options.queue.shift();
      if (!chunk) break;
      this.process(chunk);
    }
  }

  private process(chunk: Float32Array): void {
    let sum = 0;
    for (let i = 0; i < chunk.length; i++) sum += chunk[i]! * chunk[i]!;
    this.inputLevelDbfs = chunk.length ? Math.max(-200, 10 * Math.log10(sum / chunk.length + 1e-20)) : -200;
    this.options.clips?.push(chunk);
    const out = this.detector.push(chunk);
    this.processedS += chunk.length / 16_000;
    for (const w of out.windows) {
      this.windowsScored++;
      this.lastScores.push({ endS: w.endS, probability: w.probability, levelDbfs: w.levelDbfs });
      if (this.lastScores.length > TIMELINE_WINDOWS) this.lastScores.shift();
      this.options.onWindow?.(w.probability);
      if (w.probability > this.maxProbability) this.maxProbability = w.probability;
      this.trackNearMiss(w);
      this.completeEvidence(w.endS);
    }
    for (const u of out.updates) {
      if (u.type === 'confirmed') {
        this.eventOpen = true;
        this.nearMiss = null;
        this.nearMissStartS = null;
        this.onConfirmed(u.event);
      } else {
        this.eventOpen = false;
        this.options.logger.info(
          { startS: u.event.startS, endS: u.event.endS, peakProbability: u.event.peakProbability },
          'scream ended',
        );
      }
    }
    this.options.onProgress?.();
  }

  private onConfirmed(e: DetectedEvent): void {
    // the confirmer's event carries its peak window (level and features) itself
    const peak = e.peakWindow;
    const nowMs = this.options.clock.now();
    // The confirming window ended at detectedAtS of audio time; what was analysed after it
    // in this same chunk is a few ms, so "now" is the confirmation time on the wall clock.
    const lagS = Math.max(0, this.processedS - e.detectedAtS);
    const timestampMs = nowMs;
    const startedAtMs = nowMs - (lagS + (e.detectedAtS - e.startS)) * 1000;
    const eventId = this.ulid.next(timestampMs);
    const msg = this.message(
      eventId,
      timestampMs,
      startedAtMs,
      e.peakProbability,
      true,
      this.detector.options.threshold,
      peak,
      {
        timeline: this.timeline(e.detectedAtS),
        ...(this.options.clips && {
          notes: `clip kept on the sensor (${this.options.deviceInfo.hostname}): ${this.options.clips.clipPath(eventId)}`,
        }),
      },
    );
    this.eventsConfirmed++;
    this.options.sink.commit('event', msg);
    this.evidence.push({ message: msg, detectedAtS: e.detectedAtS });
    this.options.clips?.capture(eventId);
    this.options.logger.warn(
      {
        eventId,
        screamProbability: e.peakProbability,
        startedAt: msg.startedAt,
        audioS: e.detectedAtS,
        rule: e.rule,
      },
      'scream confirmed',
    );
  }

  /**
   * The window scores from TIMELINE_S seconds before the confirmation up to `untilS` after it
   * (numbers only: no audio leaves the sensor). The event goes out at once with the part up to
   * the confirmation (an alert never waits for evidence); the rest follows (completeEvidence).
   */
  private timeline(detectedAtS: number, untilS = 0): TimelineWindow[] {
    return this.lastScores
      .filter((w) => w.endS <= detectedAtS + untilS + 1e-6 && w.endS >= detectedAtS - TIMELINE_S - 1e-6)
      .map((w) => ({ t: w.endS - detectedAtS, p: w.probability, levelDbfs: w.levelDbfs }));
  }

  /**
   * Once TIMELINE_S of audio has passed a confirmation (or at stop, with what there is), the
   * event's whole timeline goes out as an EvidenceMessage; the bridge completes the stored
   * event's evidence from it.
   */
  private completeEvidence(nowS: number, force = false): void {
    while (this.evidence.length) {
      const first = this.evidence[0]!;
      if (!force && nowS < first.detectedAtS + TIMELINE_S - 1e-6) return;
      this.evidence.shift();
      const timeline = this.timeline(first.detectedAtS, TIMELINE_S);
      if (!timeline.some((w) => w.t > 0)) continue;
      const m = first.message;
      this.options.sink.evidence?.({
        v: PROTOCOL_VERSION,
        eventId: m.eventId,
        sensorId: m.sensorId,
        timestamp: m.timestamp,
        timeline: wireTimeline(timeline),
      });
    }
  }

  private trackNearMiss(w: DetectedWindow): void {
    const reportThreshold = this.detection.reportThreshold;
    if (reportThreshold === null || this.eventOpen) return;
    if (w.probability >= reportThreshold) {
      this.nearMissStartS ??= w.startS;
      if (!this.nearMiss || w.probability > this.nearMiss.probability) this.nearMiss = w;
      return;
    }
    if (!this.nearMiss) return;
    const peak = this.nearMiss;
    const startS = this.nearMissStartS ?? peak.startS;
    this.nearMiss = null;
    this.nearMissStartS = null;
    const nowMs = this.options.clock.now();
    const lagS = Math.max(0, this.processedS - w.endS);
    const msg = this.message(
      this.ulid.next(nowMs),
      nowMs,
      nowMs - (lagS + (w.endS - startS)) * 1000,
      peak.probability,
      false,
      reportThreshold,
      peak,
      { notes: 'near-miss: windows over reportThreshold, not confirmed as a scream' },
    );
    this.reportsSent++;
    this.options.sink.commit('report', msg);
  }

  private message(
    eventId: string,
    timestampMs: number,
    startedAtMs: number,
    probability: number,
    isScream: boolean,
    threshold: number,
    peak: DetectedWindow | undefined,
    extra: Pick<EventFacts, 'notes' | 'timeline'> = {},
  ): EventMessage {
    return buildEventMessage({
      ...extra,
      eventId,
      sensorId: this.options.sensorId,
      timestampMs,
      startedAtMs,
      screamProbability: probability,
      isScream,
      thresholdValue: threshold,
      audioSource: this.options.audioSource,
      levelDbfs: peak?.levelDbfs ?? this.inputLevelDbfs,
      modelVersion: this.detector.model.version,
      deviceInfo: this.options.deviceInfo,
      location: this.options.location,
      features: peak?.features,
    });
  }

  /** Stops the loop after analysing what capture already delivered. */
  async stop(): Promise<void> {
    this.options.queue.setListener(null);
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = null;
    if (this.running) this.drain(Number.POSITIVE_INFINITY);
    this.completeEvidence(this.processedS, true);
    this.running = false;
    this.options.clips?.flush();
  }
}

/** The detector options a detection section asks for (null = the model's default). */
function detectorOptions(d: DaemonConfig['detection']): DetectorOptions {
  return {
    ...(d.threshold !== null && { threshold: d.threshold }),
    ...(d.k !== null && { k: d.k }),
    ...(d.n !== null && { n: d.n }),
    ...(d.releaseWindows !== null && { releaseWindows: d.releaseWindows }),
    ...(d.singleWindowThreshold !== null && { singleWindowThreshold: d.singleWindowThreshold }),
    ...(d.levelGateDbfs !== null && { levelGateDbfs: d.levelGateDbfs }),
  };
}
