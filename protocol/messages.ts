import { z } from 'zod';
import { SENSOR_ID_PATTERN } from './topics.ts';

/**
 * The MQTT payload contract. Field names are frozen once published: golden fixtures in
 * test/protocol pin them. A breaking change bumps PROTOCOL_VERSION; receivers reject
 * versions they do not know instead of guessing.
 */
export const PROTOCOL_VERSION = 1;

/** Largest payload either side accepts (bytes). Events are ~2 KB; this leaves room for features. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

const isoTimestamp = z.iso.datetime({ offset: true });
const sensorId = z.string().regex(SENSOR_ID_PATTERN, 'sensorId must be 1-64 of [A-Za-z0-9_.-]');
const finite = z.number().finite();
const probability = z.number().min(0).max(1);

export const DeviceInfoSchema = z.object({
  hostname: z.string().max(255),
  daemonVersion: z.string().max(64),
  platform: z.string().max(128),
});

/** A location as a sensor knows it (configured at install time). */
export const SensorLocationSchema = z.object({
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  accuracy: z.number().min(0).max(1e7).optional(),
  address: z.string().max(500).optional(),
});

/** Summary of the features of the peak window: small, numeric, for later analysis. */
export const FeatureSummarySchema = z
  .record(z.string().max(64), finite)
  .refine((o) => Object.keys(o).length <= 128, {
    message: 'at most 128 feature values',
  });

/** Longest evidence timeline a sensor sends: 10 s before and after at the 0.512 s hop is 41. */
export const MAX_TIMELINE_WINDOWS = 64;

/**
 * Evidence without audio (optional, added after v1 shipped: absent = an older daemon): the
 * window scores around the confirmation, numbers only. `t` is the window's end in seconds
 * relative to the confirmation (0 = the confirming window, -10 = ten seconds before). The event
 * goes out with the part up to 0 at once; the whole timeline, with the 10 s after (`t` > 0),
 * follows in an EvidenceMessage.
 */
export const TimelineWindowSchema = z.object({
  t: z.number().min(-120).max(30),
  p: probability,
  levelDbfs: z.number().min(-200).max(10),
});
export type TimelineWindow = z.infer<typeof TimelineWindowSchema>;

export const EventMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  /** Stable, time-ordered id minted on the sensor (ULID). The cloud de-duplicates on it. */
  eventId: z.string().regex(/^[0-9A-HJKMNP-TV-Z]{26}$/, 'eventId must be a ULID'),
  sensorId,
  /** When the event was confirmed, sensor clock, ISO 8601. */
  timestamp: isoTimestamp,
  /** When the scream began (the first window over threshold), sensor clock. */
  startedAt: isoTimestamp,
  /** Peak window probability. */
  screamProbability: probability,
  /** true: a confirmed scream; false: a near-miss report (optional, low priority). */
  isScream: z.boolean(),
  thresholdValue: probability,
  /** e.g. `alsa:plughw:CARD=Device,DEV=0` or `file:demo.wav`. */
  audioSource: z.string().max(300),
  levelDbfs: z.number().min(-200).max(10),
  modelVersion: z.string().max(100),
  deviceInfo: DeviceInfoSchema,
  location: SensorLocationSchema.optional(),
  features: FeatureSummarySchema.optional(),
  notes: z.string().max(2000).optional(),
  timeline: z.array(TimelineWindowSchema).max(MAX_TIMELINE_WINDOWS).optional(),
});
export type EventMessage = z.infer<typeof EventMessageSchema>;

/**
 * The rest of an event's evidence, on `<root>/sensors/<id>/evidence` (QoS 1; optional, added
 * after v1 shipped): the whole timeline from 10 s before to 10 s after the confirmation, sent
 * once the 10 s after have passed. The bridge replaces the stored event's timeline with it;
 * it alerts nobody.
 */
export const EvidenceMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  eventId: z.string().regex(/^[0-9A-HJKMNP-TV-Z]{26}$/, 'eventId must be a ULID'),
  sensorId,
  timestamp: isoTimestamp,
  timeline: z.array(TimelineWindowSchema).min(1).max(MAX_TIMELINE_WINDOWS),
});
export type EvidenceMessage = z.infer<typeof EvidenceMessageSchema>;

/**
 * What the sensor's input classifier says about its microphone (daemon/health/input-health.ts).
 * `ok` or absent: audio looks like a room. Anything else: the sensor is up but cannot hear.
 */
export const INPUT_HEALTH_STATES = ['ok', 'silent', 'stuck', 'clipping', 'no-device'] as const;
export type InputHealth = (typeof INPUT_HEALTH_STATES)[number];
export const InputHealthSchema = z.enum(INPUT_HEALTH_STATES);

/**
 * Detection settings a sensor runs with, and what an admin may set remotely (`set-detection`).
 * Bounds are the sensor's: a command outside them is refused before anything changes.
 */
export const DETECTION_SETTING_KEYS = ['threshold', 'k', 'n', 'levelGateDbfs', 'reportThreshold'] as const;
export type DetectionSettingKey = (typeof DETECTION_SETTING_KEYS)[number];
export const DETECTION_BOUNDS = {
  threshold: { min: 0.05, max: 0.99 },
  k: { min: 1, max: 16 },
  n: { min: 1, max: 16 },
  levelGateDbfs: { min: -120, max: 0 },
  reportThreshold: { min: 0.05, max: 0.99 },
} as const;
const bounded = (key: Exclude<DetectionSettingKey, 'k' | 'n'>) =>
  z.number().min(DETECTION_BOUNDS[key].min).max(DETECTION_BOUNDS[key].max);
const windows = z.number().int().min(DETECTION_BOUNDS.k.min).max(DETECTION_BOUNDS.k.max);

/**
 * Remote overrides: each key present replaces the sensor's config file value; absent keys keep
 * it. `reportThreshold: null` switches near-miss reports off. `{}` clears every override.
 */
export const DetectionOverridesSchema = z
  .object({
    threshold: bounded('threshold').optional(),
    k: windows.optional(),
    n: windows.optional(),
    levelGateDbfs: bounded('levelGateDbfs').optional(),
    reportThreshold: bounded('reportThreshold').nullable().optional(),
  })
  .strict()
  .refine((d) => d.k === undefined || d.n === undefined || d.k <= d.n, {
    message: 'k must be <= n',
    path: ['k'],
  });
export type DetectionOverrides = z.infer<typeof DetectionOverridesSchema>;

/** What the sensor runs with now; `remote` names the keys an admin's set-detection overrides. */
export const EffectiveDetectionSchema = z.object({
  threshold: probability,
  k: z.number().int().min(1),
  n: z.number().int().min(1),
  levelGateDbfs: z.number().min(-200).max(10),
  reportThreshold: probability.nullable(),
  remote: z.array(z.enum(DETECTION_SETTING_KEYS)).max(DETECTION_SETTING_KEYS.length),
});
export type EffectiveDetection = z.infer<typeof EffectiveDetectionSchema>;

/**
 * The sensor went back to its previous model (a restart within control.modelTrialS of a
 * set-model swap, or the new model failing to load at start). Reported until the next swap.
 */
export const ModelRollbackSchema = z.object({
  from: z.string().max(100),
  to: z.string().max(100),
  at: isoTimestamp,
  reason: z.string().max(500),
});
export type ModelRollback = z.infer<typeof ModelRollbackSchema>;

export const StatusMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  sensorId,
  state: z.enum(['online', 'offline']),
  timestamp: isoTimestamp,
  daemonVersion: z.string().max(64).optional(),
  modelVersion: z.string().max(100).optional(),
  /** false while the sensor's disk refuses outbox writes (events then wait in memory only). */
  outboxWritable: z.boolean().optional(),
  /** Optional (added after v1 shipped; absent = not reported): the input classifier's state. */
  health: InputHealthSchema.optional(),
  /** When `health` entered its current state, sensor clock. */
  since: isoTimestamp.optional(),
  /** Optional (added after v1 shipped): the detection settings in force (set-detection changes them). */
  detection: EffectiveDetectionSchema.optional(),
  /** Optional (added after v1 shipped): the last automatic model rollback, until the next swap. */
  modelRollback: ModelRollbackSchema.optional(),
});
export type StatusMessage = z.infer<typeof StatusMessageSchema>;

export const HeartbeatMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  sensorId,
  timestamp: isoTimestamp,
  uptimeS: z.number().min(0),
  outboxDepth: z.number().int().min(0),
  /** The outbox reached its cap at least once since start (events are never dropped). */
  outboxFull: z.boolean(),
  droppedFrames: z.number().int().min(0),
  inputLevelDbfs: z.number().min(-200).max(10),
  lastMaxProbability: probability,
  cpuPercent: z.number().min(0),
  rssBytes: z.number().int().min(0),
  modelVersion: z.string().max(100),
  daemonVersion: z.string().max(64).optional(),
  /** false while the disk refuses outbox writes: queued rows are in memory only (lost on restart). */
  outboxWritable: z.boolean().optional(),
  /** Outbox rows known lost since start (a deleted/corrupt file, a full memory queue). */
  outboxLost: z.number().int().min(0).optional(),
  /** Optional, as in the status: the input classifier's state and since when. */
  health: InputHealthSchema.optional(),
  healthSince: isoTimestamp.optional(),
});
export type HeartbeatMessage = z.infer<typeof HeartbeatMessageSchema>;

/**
 * Commands from the bridge to one sensor, on `<root>/sensors/<id>/commands/<command>` (QoS 1;
 * the sensor's persistent session keeps them while it is offline). Added after v1 shipped: a
 * daemon that does not know them never subscribes. Only bridges may publish there (ACL).
 */
export const COMMAND_NAMES = ['set-detection', 'set-model', 'reload', 'ping'] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

/** Where a sensor fetches a model from (`set-model`), and what the file must be. */
export const ModelRefSchema = z.object({
  url: z
    .string()
    .max(2000)
    .regex(/^https?:\/\/[^\s]+$/, 'url must be http(s)://'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits'),
  /** Bytes; the sensor refuses a download that is longer. */
  size: z
    .number()
    .int()
    .min(1)
    .max(32 * 1024 * 1024),
  featureSet: z.string().min(1).max(100),
  version: z.string().min(1).max(100),
});
export type ModelRef = z.infer<typeof ModelRefSchema>;

export const CommandMessageSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    /** Minted by the bridge (ULID); the sensor applies each id once. */
    commandId: z.string().regex(/^[0-9A-HJKMNP-TV-Z]{26}$/, 'commandId must be a ULID'),
    sensorId,
    command: z.enum(COMMAND_NAMES),
    issuedAt: isoTimestamp,
    /** The dashboard user who sent it (audit). */
    issuedBy: z.string().min(1).max(100),
    /** set-detection: the complete set of overrides wanted (`{}` clears them). */
    detection: DetectionOverridesSchema.optional(),
    /** set-model: the model to fetch, verify and switch to. */
    model: ModelRefSchema.optional(),
  })
  .superRefine((c, ctx) => {
    if (c.command === 'set-detection' && !c.detection)
      ctx.addIssue({ code: 'custom', path: ['detection'], message: 'set-detection needs detection' });
    if (c.command === 'set-model' && !c.model)
      ctx.addIssue({ code: 'custom', path: ['model'], message: 'set-model needs model' });
  });
export type CommandMessage = z.infer<typeof CommandMessageSchema>;

/** The sensor's answer on `<root>/sensors/<id>/command-results` (QoS 1, through its outbox). */
export const CommandResultMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  commandId: z.string().regex(/^[0-9A-HJKMNP-TV-Z]{26}$/, 'commandId must be a ULID'),
  sensorId,
  command: z.enum(COMMAND_NAMES),
  /** When the sensor finished with it, sensor clock. */
  timestamp: isoTimestamp,
  ok: z.boolean(),
  /** Why not (a registry code, e.g. COMMAND_INVALID, COMMAND_EXPIRED, MODEL_HASH_MISMATCH). */
  code: z.string().max(64).optional(),
  message: z.string().max(1000).optional(),
  /** The settings in force after the command. */
  detection: EffectiveDetectionSchema.optional(),
  modelVersion: z.string().max(100).optional(),
  daemonVersion: z.string().max(64).optional(),
});
export type CommandResultMessage = z.infer<typeof CommandResultMessageSchema>;
