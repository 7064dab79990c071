import { z } from 'zod';
import { DEFAULT_TOPIC_ROOT, isValidTopicRoot, SENSOR_ID_PATTERN } from '../../protocol/topics.ts';
import { DEFAULT_INPUT_HEALTH } from '../health/input-health.ts';

/**
 * The daemon's configuration, one schema for the file, the SCREAMWATCH_* environment and
 * the CLI flags. Key names are a contract: deploy/ansible templates them from host vars.
 */
const positiveInt = z.number().int().positive();
const probabilityOrNull = z.number().gt(0).max(1).nullable().default(null);

export const AUDIO_SOURCE_PATTERN = /^(alsa:.+|file:.+)$/;

export const RetrySchema = z
  .object({
    initialDelayMs: positiveInt.default(1000),
    maxDelayMs: positiveInt.default(60_000),
    multiplier: z.number().min(1).default(2),
  })
  .refine((r) => r.maxDelayMs >= r.initialDelayMs, { message: 'maxDelayMs must be >= initialDelayMs' });

export const DaemonConfigSchema = z
  .object({
    sensorId: z
      .string()
      .regex(SENSOR_ID_PATTERN, 'must be 1-64 of [A-Za-z0-9_.-], starting with a letter or digit'),
    topicRoot: z
      .string()
      .refine(isValidTopicRoot, 'must be non-empty, without + # or spaces, not starting or ending with /')
      .default(DEFAULT_TOPIC_ROOT),
    audio: z
      .object({
        source: z
          .string()
          .regex(AUDIO_SOURCE_PATTERN, 'must be alsa:<device> or file:<path>')
          .default('alsa:default'),
        fast: z.boolean().default(false),
        /** A file: source that decodes to more audio than this is refused (AUDIO_TOO_LONG). */
        maxFileSeconds: z
          .number()
          .positive()
          .max(7 * 86_400)
          .default(3600),
        retry: RetrySchema.default({ initialDelayMs: 1000, maxDelayMs: 60_000, multiplier: 2 }),
      })
      .strict()
      .default({
        source: 'alsa:default',
        fast: false,
        maxFileSeconds: 3600,
        retry: { initialDelayMs: 1000, maxDelayMs: 60_000, multiplier: 2 },
      }),
    detection: z
      .object({
        modelPath: z.string().min(1).nullable().default(null),
        threshold: probabilityOrNull,
        k: positiveInt.nullable().default(null),
        n: positiveInt.nullable().default(null),
        releaseWindows: positiveInt.nullable().default(null),
        singleWindowThreshold: probabilityOrNull,
        levelGateDbfs: z.number().max(0).nullable().default(null),
        reportThreshold: probabilityOrNull,
      })
      .strict()
      .refine((d) => d.k === null || d.n === null || d.k <= d.n, { message: 'k must be <= n', path: ['k'] })
      .default({
        modelPath: null,
        threshold: null,
        k: null,
        n: null,
        releaseWindows: null,
        singleWindowThreshold: null,
        levelGateDbfs: null,
        reportThreshold: null,
      }),
    clips: z
      .object({
        enabled: z.boolean().default(false),
        dir: z.string().min(1).nullable().default(null),
        maxBytes: positiveInt.default(52_428_800),
        preS: z.number().min(0).max(30).default(2),
        postS: z.number().min(0).max(30).default(2),
      })
      .strict()
      .default({ enabled: false, dir: null, maxBytes: 52_428_800, preS: 2, postS: 2 }),
    mqtt: z
      .object({
        url: z
          .string()
          .regex(/^(mqtts?|wss?|tcp|ssl):\/\/[^\s]+$/, 'must be mqtt://host:port or mqtts://host:port')
          .default('mqtt://localhost:1883'),
        username: z.string().nullable().default(null),
        password: z.string().nullable().default(null),
        caFile: z.string().min(1).nullable().default(null),
        certFile: z.string().min(1).nullable().default(null),
        keyFile: z.string().min(1).nullable().default(null),
        rejectUnauthorized: z.boolean().default(true),
        keepaliveS: z.number().int().min(5).max(3600).default(30),
      })
      .strict()
      .refine((m) => (m.certFile === null) === (m.keyFile === null), {
        message: 'certFile and keyFile go together',
        path: ['certFile'],
      })
      .default({
        url: 'mqtt://localhost:1883',
        username: null,
        password: null,
        caFile: null,
        certFile: null,
        keyFile: null,
        rejectUnauthorized: true,
        keepaliveS: 30,
      }),
    stateDir: z.string().min(1).default('/var/lib/screamwatch'),
    outbox: z
      .object({
        maxRows: z.number().int().min(10).default(100_000),
        /** Rows held in memory while the disk refuses writes (full, read-only). */
        memoryMaxRows: z.number().int().min(10).max(100_000).default(1000),
        /** Backoff between attempts to write to the disk again. */
        retry: RetrySchema.default({ initialDelayMs: 1000, maxDelayMs: 60_000, multiplier: 2 }),
      })
      .strict()
      .default({
        maxRows: 100_000,
        memoryMaxRows: 1000,
        retry: { initialDelayMs: 1000, maxDelayMs: 60_000, multiplier: 2 },
      }),
    heartbeatIntervalS: z.number().min(1).max(86_400).default(60),
    /** Input health classifier (daemon/health/input-health.ts): when the mic counts as deaf. */
    health: z
      .object({
        silentAfterS: z.number().positive().max(86_400).default(300),
        silentFloorDbfs: z.number().min(-200).max(0).default(-90),
        stuckAfterS: z.number().positive().max(86_400).default(30),
        clipAfterS: z.number().positive().max(86_400).default(10),
        clipShare: z.number().gt(0).max(1).default(0.05),
        noDeviceAfterS: z.number().min(0).max(86_400).default(5),
        recoverAfterS: z.number().min(0).max(86_400).default(10),
      })
      .strict()
      .default(() => ({ ...DEFAULT_INPUT_HEALTH })),
    location: z
      .object({
        latitude: z.number().min(-90).max(90).nullable().default(null),
        longitude: z.number().min(-180).max(180).nullable().default(null),
        accuracy: z.number().min(0).nullable().default(null),
        address: z.string().max(500).nullable().default(null),
        room: z.string().max(200).nullable().default(null),
      })
      .strict()
      .refine((l) => (l.latitude === null) === (l.longitude === null), {
        message: 'latitude and longitude go together',
        path: ['latitude'],
      })
      .default({ latitude: null, longitude: null, accuracy: null, address: null, room: null }),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .default({ level: 'info' }),
    /** Remote control over MQTT (daemon/control): commands from the bridge (set-detection, ...). */
    control: z
      .object({
        /** false: the sensor does not subscribe to its commands topic (settings only by config file). */
        enabled: z.boolean().default(true),
        /** A command older than this (its issuedAt, e.g. queued while the sensor was away) is refused. */
        maxCommandAgeS: z
          .number()
          .positive()
          .max(30 * 86_400)
          .default(7 * 86_400),
        /**
         * After a set-model swap: a restart within this many seconds (a crash loop under the new
         * model, or a restart by hand) goes back to the previous model (MODEL_ROLLED_BACK).
         */
        modelTrialS: z
          .number()
          .min(0)
          .max(7 * 86_400)
          .default(600),
        /** A set-model download that takes longer is abandoned (MODEL_DOWNLOAD_FAILED). */
        modelDownloadTimeoutS: z.number().positive().max(3600).default(120),
      })
      .strict()
      .default({ enabled: true, maxCommandAgeS: 7 * 86_400, modelTrialS: 600, modelDownloadTimeoutS: 120 }),
    /** Prometheus /metrics + /healthz + /livez, loopback only; off unless a port is set. */
    metrics: z
      .object({
        port: z.number().int().min(0).max(65535).nullable().default(null),
        host: z
          .enum(['127.0.0.1', '::1', 'localhost'], {
            message:
              'must be a loopback address (127.0.0.1, ::1 or localhost): the endpoint has no authentication',
          })
          .default('127.0.0.1'),
      })
      .strict()
      .default({ port: null, host: '127.0.0.1' }),
  })
  .strict();

export type DaemonConfig = z.infer<typeof DaemonConfigSchema>;
/** What a config file may contain: every key optional except the ones without a default. */
export type DaemonConfigInput = z.input<typeof DaemonConfigSchema>;
