import { z } from 'zod';
import { DEFAULT_TOPIC_ROOT, isValidSensorId, isValidTopicRoot } from '../../protocol/topics.ts';
import {
  type ConfigErrors,
  type ConfigSpec,
  envKeys,
  type JsonObject,
  loadConfig,
} from '../../runtime/config.ts';
import { CloudError, type CloudErrorCode } from '../errors.ts';

/**
 * The cloud bridge's one config schema: defaults, validation at boot, and the environment
 * overrides derived from it (SCREAMWATCH_<PATH>, e.g. SCREAMWATCH_ALERTS_TWILIO_AUTH_TOKEN).
 * Secrets belong in the environment (or a file outside the repo), never in an example config.
 */

const port = z.number().int().min(0).max(65535);
const nullableString = z.string().min(1).nullable();
const sensorIdString = z
  .string()
  .refine(isValidSensorId, 'must be 1-64 of [A-Za-z0-9_.-], starting alphanumeric');

export const SensorLocationConfigSchema = z.object({
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  /** Metres. */
  accuracy: z.number().min(0).nullable().default(null),
  address: z.string().nullable().default(null),
});

export const SensorConfigSchema = z.object({
  id: sensorIdString,
  name: z.string().nullable().default(null),
  room: z.string().nullable().default(null),
  location: SensorLocationConfigSchema.nullable().default(null),
  /** Selects the alert policy (alerts.policies[].group). */
  group: z.string().min(1).default('default'),
  /** The sensor's public IP when the broker cannot see it (external broker): used for IP geolocation. */
  publicIp: z.string().nullable().default(null),
});
export type SensorConfig = z.infer<typeof SensorConfigSchema>;

export const AlertPolicySchema = z.object({
  group: z.string().min(1).default('default'),
  /** Optional: the policy applies to these sensors whatever their group. */
  sensorIds: z.array(sensorIdString).default([]),
  /** An event alerts when isScream and screamProbability >= threshold. */
  threshold: z.number().min(0).max(1).default(0.5),
  /** One alert per sensor per cooldown; later detections go into one follow-up summary. */
  cooldownS: z.number().min(0).default(120),
  contacts: z
    .object({
      sms: z
        .array(z.string().regex(/^\+[1-9]\d{6,14}$/, 'must be an E.164 number like +15551234567'))
        .default([]),
      email: z.array(z.email()).default([]),
    })
    .prefault({}),
  ratePerContactPerHour: z.number().int().min(1).default(10),
  /** Send to `escalateTo` when an alert is not acknowledged (reviewed on the dashboard) in time. */
  escalateAfterS: z.number().min(1).nullable().default(null),
  escalateTo: z
    .object({
      sms: z.array(z.string().regex(/^\+[1-9]\d{6,14}$/, 'must be an E.164 number')).default([]),
      email: z.array(z.email()).default([]),
    })
    .prefault({}),
  /** Also alert when a sensor goes silent for offlineAfterS. */
  alertOnSensorOffline: z.boolean().default(true),
});
export type AlertPolicy = z.infer<typeof AlertPolicySchema>;

export const CloudConfigSchema = z.object({
  dataDir: z.string().min(1).default('./data'),
  /** The detection model for uploads on the dashboard; null = models/screamwatch-forest.json. */
  modelPath: nullableString.default(null),
  mqtt: z
    .object({
      broker: z
        .string()
        .regex(/^(mqtts?|wss?|tcp|tls|ssl):\/\//, 'must be a URL like mqtt://host:1883')
        .nullable()
        .default(null),
      port: port.default(1883),
      host: z.string().min(1).default('0.0.0.0'),
      tls: z
        .object({
          port: port.nullable().default(null),
          certFile: nullableString.default(null),
          keyFile: nullableString.default(null),
        })
        .prefault({})
        .refine((t) => t.port === null || (t.certFile !== null && t.keyFile !== null), {
          message: 'tls.port needs tls.certFile and tls.keyFile',
        }),
      wsPort: port.nullable().default(null),
      sharedGroup: z
        .string()
        .regex(/^[^/#+$\s]+$/, 'no /, #, +, $ or whitespace')
        .nullable()
        .default('screamwatch-bridges'),
      /** External broker over TLS with a private CA: the CA certificate (PEM). */
      caFile: nullableString.default(null),
      clientId: nullableString.default(null),
      /**
       * External broker: MQTT 5 session expiry of the bridge's session (with its shared
       * subscription). While a bridge is away the broker keeps queueing its share of the events
       * for this long; a bridge (or a replacement with the same clientId) that reconnects in time
       * gets them; after it Mosquitto drops the session and sends that share to the others.
       */
      sessionExpiryS: z.number().int().min(0).max(4_294_967_295).default(60),
      username: nullableString.default(null),
      password: nullableString.default(null),
      topicRoot: z
        .string()
        .refine(isValidTopicRoot, 'no wildcards, whitespace or leading/trailing /')
        .default(DEFAULT_TOPIC_ROOT),
      allowAnonymous: z.boolean().default(false),
      /** Embedded broker: largest MQTT packet accepted; a bigger one closes the connection at its header. */
      maxPacketBytes: z.number().int().min(1024).max(268_435_455).default(131_072),
      /** Embedded broker: a connection without a valid CONNECT after this long is dropped. */
      connectTimeoutMs: z.number().int().min(500).max(120_000).default(5000),
      /** Embedded broker: connections per IP that may be waiting for their CONNECT at once. */
      maxPendingPerIp: z.number().int().min(1).max(10_000).default(32),
      sensors: z
        .array(
          z.object({
            sensorId: sensorIdString,
            /** `scrypt$N$r$p$salt$hash`, from `screamwatch cloud hash-password`. */
            passwordHash: z
              .string()
              .regex(
                /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/,
                'must be an scrypt hash from `screamwatch cloud hash-password`',
              ),
          }),
        )
        .default([]),
    })
    .prefault({}),
  sensors: z.array(SensorConfigSchema).default([]),
  offlineAfterS: z.number().min(1).default(300),
  /**
   * An event stamped further in the future than this (a sensor clock gone wrong) is listed and
   * sorted by when the bridge received it; its own time stays in `sensorTimestamp`.
   */
  maxClockSkewS: z.number().min(1).default(300),
  geo: z.object({ ipDatabase: nullableString.default(null) }).prefault({}),
  /** Data lifecycle of the event store and the alert state (SQLite and MongoDB alike). */
  store: z
    .object({
      /**
       * Events older than this (by `timestamp`) are purged daily, with their alert jobs and
       * decisions; null = kept for good.
       */
      retentionDays: z.number().positive().max(36_500).nullable().default(365),
      /**
       * Events reviewed as false alarms are kept this long instead (retraining reads them);
       * never shorter than retentionDays; null = kept for good.
       */
      keepReviewedDays: z.number().positive().max(36_500).nullable().default(730),
    })
    .prefault({}),
  alerts: z
    .object({
      policies: z.array(AlertPolicySchema).default([AlertPolicySchema.parse({})]),
      twilio: z
        .object({
          accountSid: nullableString.default(null),
          authToken: nullableString.default(null),
          from: nullableString.default(null),
          /** Only to point the client elsewhere (a test endpoint, a proxy); null = api.twilio.com. */
          apiBaseUrl: z.url().nullable().default(null),
        })
        .prefault({}),
      smtp: z
        .object({
          host: nullableString.default(null),
          port: port.default(587),
          secure: z.boolean().default(false),
          user: nullableString.default(null),
          pass: nullableString.default(null),
          from: nullableString.default(null),
        })
        .prefault({}),
      retry: z
        .object({
          maxRetries: z.number().int().min(0).default(6),
          initialDelayMs: z.number().int().min(1).default(2000),
          maxDelayMs: z.number().int().min(1).default(300_000),
          multiplier: z.number().min(1).default(2),
        })
        .prefault({}),
      /** Per attempt: a provider that does not answer in time counts as a transient failure. */
      timeoutMs: z.number().int().min(100).default(15_000),
      /**
       * A bridge holds a job it is sending for this long; if it dies, another bridge sharing the
       * alert state (MongoDB) sends the job after it. Longer than one attempt (timeoutMs), so a
       * job is never sent by two bridges at once.
       */
      leaseS: z.number().int().min(1).max(3600).default(60),
    })
    .prefault({})
    .refine((a) => a.leaseS * 1000 >= a.timeoutMs * 2, {
      message: 'leaseS must be at least twice timeoutMs (a send must end well inside its lease)',
      path: ['leaseS'],
    }),
  web: z
    .object({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(8080),
      publicUrl: z.url().nullable().default(null),
      users: z
        .array(
          z.object({
            username: z.string().min(1),
            passwordHash: z.string().min(1),
            role: z.enum(['admin', 'viewer']).default('viewer'),
          }),
        )
        .default([]),
      sessionSecret: z.string().min(16).nullable().default(null),
      tileUrl: z.string().min(1).default('https://tile.openstreetmap.org/{z}/{x}/{y}.png'),
      maxUploadBytes: z
        .number()
        .int()
        .min(1)
        .default(20 * 1024 * 1024),
      /** Longest decoded audio "Analyse a file" accepts (413 beyond it): bounds a decompression bomb. */
      maxAnalysisSeconds: z.number().positive().max(86_400).default(600),
    })
    .prefault({}),
  log: z
    .object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') })
    .prefault({}),
  /** Home Assistant MQTT discovery, published by the bridge for every known sensor. */
  homeAssistant: z
    .object({
      enabled: z.boolean().default(false),
      discoveryPrefix: z
        .string()
        .refine(isValidTopicRoot, 'no wildcards, whitespace or leading/trailing /')
        .default('homeassistant'),
      /** The scream binary_sensor turns off this long after the last confirmed scream. */
      screamOffAfterS: z.number().positive().max(86_400).default(30),
    })
    .prefault({}),
  /** Prometheus `/metrics`, `/healthz`, `/livez` on their own port (never the dashboard's). */
  metrics: z
    .object({
      /** null = off. 9464 is the conventional exporter port. */
      port: port.nullable().default(null),
      host: z.string().min(1).default('127.0.0.1'),
    })
    .prefault({}),
  /** Model rollout (cloud/control/model-library.ts, model-rollout.ts). */
  models: z
    .object({
      /** Largest model file an admin may upload (413 beyond it); the shipped one is ~2 MB. */
      maxUploadBytes: z
        .number()
        .int()
        .min(1024)
        .max(32 * 1024 * 1024)
        .default(16 * 1024 * 1024),
      /** How long a download link in a set-model command stays valid (a sensor away longer gets a 403). */
      urlTtlS: z
        .number()
        .int()
        .min(60)
        .max(30 * 86_400)
        .default(86_400),
      /** Signs the download links; null: generated once and kept in `<dataDir>/models/url-secret`. */
      urlSecret: z.string().min(16).nullable().default(null),
      /** How long a rollout waits for each sensor of a batch to answer and report the new version. */
      rolloutTimeoutS: z.number().int().min(5).max(86_400).default(600),
    })
    .prefault({}),
});

export type CloudConfig = z.infer<typeof CloudConfigSchema>;
export type CloudConfigInput = z.input<typeof CloudConfigSchema>;

/** Command-line overrides (the CLI contract), applied after the file and the environment. */
export interface CloudCliOverrides {
  mqttPort?: number;
  httpPort?: number;
  dataDir?: string;
  broker?: string;
}

export interface LoadCloudConfigOptions {
  /** YAML or JSON; absent = defaults + environment. */
  file?: string | null;
  env?: NodeJS.ProcessEnv;
  overrides?: CloudCliOverrides;
}

const errors: ConfigErrors = {
  read: 'CLOUD_CONFIG_UNREADABLE',
  parse: 'CLOUD_CONFIG_INVALID',
  invalid: 'CLOUD_CONFIG_INVALID',
  make: (code, message, context) => new CloudError(code as CloudErrorCode, message, context),
};

const spec: ConfigSpec<typeof CloudConfigSchema> = {
  schema: CloudConfigSchema,
  name: 'cloud config',
  errors,
  check: (config) => {
    const problems: string[] = [];
    const ids = new Set<string>();
    for (const [i, s] of config.sensors.entries()) {
      if (ids.has(s.id)) problems.push(`sensors.${i}.id: duplicate sensor id "${s.id}"`);
      ids.add(s.id);
    }
    return problems;
  },
};

/** The environment variable for each config key, e.g. `mqtt.sharedGroup` -> SCREAMWATCH_MQTT_SHARED_GROUP. */
export function cloudEnvVariables(): Record<string, string> {
  return Object.fromEntries(envKeys(CloudConfigSchema).map((k) => [k.name, k.path.join('.')]));
}

/** Validates a config object built in code (the demo, tests); errors name `source`. */
export function parseCloudConfig(raw: unknown, source = 'config'): CloudConfig {
  return loadConfig(spec, { object: { value: raw, source }, env: {} });
}

/** File, then SCREAMWATCH_* environment, then CLI flags; validated once, at boot (runtime/config.ts). */
export function loadCloudConfig(options: LoadCloudConfigOptions = {}): CloudConfig {
  const o = options.overrides ?? {};
  const flags: JsonObject = {};
  const mqtt: JsonObject = {};
  if (o.mqttPort !== undefined) mqtt.port = o.mqttPort;
  if (o.broker !== undefined) mqtt.broker = o.broker;
  if (Object.keys(mqtt).length) flags.mqtt = mqtt;
  if (o.httpPort !== undefined) flags.web = { port: o.httpPort };
  if (o.dataDir !== undefined) flags.dataDir = o.dataDir;
  return loadConfig(spec, {
    file: options.file ?? null,
    env: options.env ?? process.env,
    overrides: flags,
  });
}
