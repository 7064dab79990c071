import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_TOPIC_ROOT, isValidSensorId, isValidTopicRoot } from '../../protocol/topics.ts';
import { CloudError } from '../errors.ts';

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
  geo: z.object({ ipDatabase: nullableString.default(null) }).prefault({}),
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
    })
    .prefault({}),
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
    })
    .prefault({}),
  log: z
    .object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') })
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

const ENV_PREFIX = 'SCREAMWATCH_';

function envName(path: string[]): string {
  return ENV_PREFIX + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every settable path, from the defaults: objects recurse, everything else is a leaf. */
function leafPaths(value: Record<string, unknown>, prefix: string[] = []): string[][] {
  const out: string[][] = [];
  for (const [k, v] of Object.entries(value)) {
    if (isPlainObject(v)) out.push(...leafPaths(v, [...prefix, k]));
    else out.push([...prefix, k]);
  }
  return out;
}

/** The environment variable for each config key, e.g. `mqtt.sharedGroup` -> SCREAMWATCH_MQTT_SHARED_GROUP. */
export function cloudEnvVariables(): Record<string, string> {
  const defaults = CloudConfigSchema.parse({}) as unknown as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const path of leafPaths(defaults)) out[envName(path)] = path.join('.');
  return out;
}

function parseEnvValue(raw: string): unknown {
  const t = raw.trim();
  // Numbers, booleans, null and JSON arrays/objects; anything else is a plain string
  // (so a password that happens to look like JSON must be quoted: '"123"').
  if (
    /^(-?\d+(\.\d+)?|true|false|null)$/.test(t) ||
    t.startsWith('[') ||
    t.startsWith('{') ||
    t.startsWith('"')
  ) {
    try {
      return JSON.parse(t);
    } catch {
      return raw;
    }
  }
  return raw;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (!isPlainObject(node[key])) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CloudError(
      'CLOUD_CONFIG_UNREADABLE',
      `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { file },
      { cause: err },
    );
  }
  try {
    const parsed = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
    return parsed ?? {};
  } catch (err) {
    throw new CloudError('CLOUD_CONFIG_INVALID', `${file}: not valid YAML/JSON: ${(err as Error).message}`, {
      file,
    });
  }
}

/** Validates a raw config object; the error names the key path and the source. */
export function parseCloudConfig(raw: unknown, source = 'config'): CloudConfig {
  const parsed = CloudConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const detail = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new CloudError('CLOUD_CONFIG_INVALID', `${source}: ${detail}`, {
      source,
      paths: parsed.error.issues.map((i) => i.path.map(String).join('.')),
    });
  }
  const config = parsed.data;
  const ids = new Set<string>();
  for (const [i, s] of config.sensors.entries()) {
    if (ids.has(s.id))
      throw new CloudError(
        'CLOUD_CONFIG_INVALID',
        `${source}: sensors.${i}.id: duplicate sensor id "${s.id}"`,
      );
    ids.add(s.id);
  }
  return config;
}

/** File, then SCREAMWATCH_* environment, then CLI flags; validated once, at boot. */
export function loadCloudConfig(options: LoadCloudConfigOptions = {}): CloudConfig {
  const env = options.env ?? process.env;
  const raw = options.file ? readConfigFile(options.file) : {};
  if (!isPlainObject(raw)) {
    throw new CloudError(
      'CLOUD_CONFIG_INVALID',
      `${options.file}: (root): expected a mapping of config keys`,
    );
  }
  const merged = structuredClone(raw);
  const sources: string[] = [];
  for (const [name, path] of Object.entries(cloudEnvVariables())) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(merged, path.split('.'), parseEnvValue(value));
    sources.push(name);
  }
  const o = options.overrides ?? {};
  if (o.mqttPort !== undefined) setPath(merged, ['mqtt', 'port'], o.mqttPort);
  if (o.httpPort !== undefined) setPath(merged, ['web', 'port'], o.httpPort);
  if (o.dataDir !== undefined) setPath(merged, ['dataDir'], o.dataDir);
  if (o.broker !== undefined) setPath(merged, ['mqtt', 'broker'], o.broker);
  const source = [options.file ?? 'defaults', ...sources].join(' + ');
  return parseCloudConfig(merged, source);
}
