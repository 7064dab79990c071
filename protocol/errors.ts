/**
 * Every coded error of Screamwatch, in one registry (fastify's lib/errors.js does the same):
 * the code is stable and machine-readable (logs, the dashboard API, tests and the README rely
 * on it), the spec says what it means and how it surfaces: the process exit code when it stops
 * a process at start, the HTTP status when it reaches the dashboard API, and whether it is a
 * configuration problem (exit 78: systemd's RestartPreventExitStatus, no restart loop).
 *
 * Codes that are only logged (OUTBOX_WRITE_FAILED, INPUT_SILENT, ...) are listed too, so this is
 * the one place to look a code up. A new code goes here first; the area unions (DaemonErrorCode, CloudErrorCode, ...) stay
 * where they are and are checked against this table (see the end of this file).
 */

/** sysexits EX_CONFIG: the units set RestartPreventExitStatus=78, so bad config does not loop. */
export const EXIT_CONFIG = 78;
/** A command line that cannot be parsed (an unknown flag). */
export const EXIT_USAGE = 2;

export interface ErrorSpec {
  /** What the code means; `{name}` placeholders are filled by `formatError` from the context. */
  readonly message: string;
  /** A configuration problem: exit 78 at start (bad key, unreadable config/model/TLS file). */
  readonly config?: true;
  /** An unusable command line: exit 2 (the cloud's and the CLI's convention for bad flags). */
  readonly usage?: true;
  /** What the dashboard API answers when it reaches a request; default 500. */
  readonly status?: number;
}

export const ERRORS = {
  // --- configuration, both sides ---
  CONFIG_READ_FAILED: { message: 'cannot read config file {file}', config: true },
  CONFIG_PARSE_FAILED: { message: 'config file {file} is not valid YAML/JSON', config: true },
  CONFIG_INVALID: { message: 'invalid daemon config: {problems}', config: true },
  CLOUD_CONFIG_UNREADABLE: { message: 'cannot read config file {file}', config: true },
  CLOUD_CONFIG_INVALID: { message: 'invalid cloud config: {problems}', config: true },
  /** A flag with a bad value (`--mqtt-port eighty`), or unknown on the daemon. */
  CLI_USAGE: { message: 'bad command line: {problem}', config: true },
  // --- detection core ---
  MODEL_INVALID: { message: 'the model file {file} is not a usable Screamwatch model', config: true },
  MODEL_NOT_FOUND: { message: 'cannot read model file {file}', config: true },
  MODEL_FEATURES_MISMATCH: {
    message: 'the model expects other features than this code computes',
    config: true,
  },
  // An unreadable file is a configuration error for the daemon's file: source, and the
  // uploader's fault (422) on the dashboard.
  AUDIO_READ_FAILED: { message: '{file}: cannot read', config: true, status: 422 },
  AUDIO_EMPTY: { message: '{file}: no audio', config: true, status: 422 },
  AUDIO_CORRUPT: { message: '{file}: corrupt audio', config: true, status: 422 },
  AUDIO_TRUNCATED: { message: '{file}: truncated audio', config: true, status: 422 },
  AUDIO_UNSUPPORTED: { message: '{file}: unsupported audio encoding', config: true, status: 422 },
  /** Decodes to more audio than allowed (web.maxAnalysisSeconds, --max-seconds): a decompression bomb or just too long. */
  AUDIO_TOO_LONG: { message: '{file}: longer than the analysis limit', config: true, status: 413 },
  // --- the MQTT contract ---
  MQTT_PAYLOAD_TOO_LARGE: { message: 'payload of {bytes} bytes is over the limit', status: 413 },
  MQTT_PAYLOAD_INVALID: { message: 'payload does not match the message schema', status: 422 },
  MQTT_VERSION_UNSUPPORTED: { message: 'protocol version {v} is not supported', status: 422 },
  MQTT_SENSOR_MISMATCH: { message: 'sensorId in the payload differs from the topic', status: 422 },
  MQTT_TOPIC_INVALID: { message: 'topic {topic} is not a Screamwatch topic', status: 422 },
  // --- daemon ---
  AUDIO_SOURCE_INVALID: {
    message: 'audio.source {source} is not alsa:<device> or file:<path>',
    config: true,
  },
  ALSA_OPEN_FAILED: { message: 'cannot open ALSA device {device}; retrying' },
  ALSA_CAPTURE_STOPPED: { message: 'ALSA capture on {device} stopped; retrying' },
  ARECORD_NOT_FOUND: { message: 'arecord is not installed (alsa-utils)' },
  OUTBOX_OPEN_FAILED: { message: 'cannot open the outbox {path}', config: true },
  OUTBOX_FULL: { message: 'outbox {path} reached outbox.maxRows' },
  OUTBOX_WRITE_FAILED: {
    message: 'the outbox {path} refused a write; events held in memory and sent directly',
  },
  OUTBOX_WRITABLE: { message: 'the outbox {path} takes writes again' },
  OUTBOX_CORRUPT: { message: 'the outbox {path} was corrupt or replaced; a fresh one was opened' },
  // input health (logged on change, reported in the status message)
  INPUT_NO_DEVICE: { message: 'no audio device {source}' },
  INPUT_SILENT: { message: 'input {source} is silent' },
  INPUT_STUCK: { message: 'input {source} repeats the same samples' },
  INPUT_CLIPPING: { message: 'input {source} is clipping' },
  MQTT_AUTH_REFUSED: { message: 'MQTT broker {broker} refused the credentials' },
  MQTT_CONNECT_FAILED: { message: 'MQTT broker {broker} unreachable; retrying' },
  MQTT_TLS_FILE_UNREADABLE: { message: 'mqtt.{key}: cannot read {file}', config: true },
  CLIPS_WRITE_FAILED: { message: 'cannot write clip {file}' },
  DAEMON_START_ABORTED: { message: 'daemon start aborted by a stop request' },
  // remote control (daemon/control): answered in the command result, logged with the code
  COMMAND_INVALID: { message: 'command {commandId} refused: {problem}', status: 400 },
  COMMAND_EXPIRED: { message: 'command {commandId} was issued more than control.maxCommandAgeS ago' },
  COMMAND_FAILED: { message: 'command {commandId} failed: {problem}' },
  SETTINGS_WRITE_FAILED: { message: 'cannot save the remote settings to {file}; nothing changed' },
  SETTINGS_CORRUPT: { message: 'the remote settings file {file} is unreadable; the config file applies' },
  // model rollout (daemon/control/model-updater.ts): answered in the set-model result
  MODEL_DOWNLOAD_FAILED: { message: 'cannot download the model from {url}: {problem}' },
  MODEL_TOO_LARGE: { message: 'the model download is longer than {size} bytes', status: 413 },
  MODEL_HASH_MISMATCH: { message: 'the downloaded model has sha256 {actual}, not {expected}' },
  MODEL_SELF_TEST_FAILED: { message: 'the model {version} failed the self-test: {problem}' },
  /** Logged at start and reported in the status: the daemon went back to the previous model. */
  MODEL_ROLLED_BACK: { message: 'model {from} rolled back to {to}: {reason}' },
  MODEL_STATE_WRITE_FAILED: { message: 'cannot write the model state {file}; nothing changed' },
  // --- cloud bridge ---
  CLOUD_DATA_DIR: { message: 'dataDir {dir} cannot be created or written', config: true },
  CLOUD_STORE_OPEN_FAILED: { message: 'cannot open the event store' },
  CLOUD_STORE_WRITE_FAILED: { message: 'the event store refused a write', status: 503 },
  CLOUD_BROKER_LISTEN_FAILED: { message: 'embedded broker cannot listen on {host}:{port}' },
  CLOUD_TLS_FILE_UNREADABLE: { message: 'mqtt.tls: cannot read {file}', config: true },
  MQTT_PACKET_REFUSED: { message: 'an MQTT packet from {ip} was refused before authentication ({reason})' },
  MQTT_TOO_MANY_PENDING: { message: 'too many unauthenticated MQTT connections from {ip}' },
  CLOUD_BROKER_CONNECT_FAILED: { message: 'cannot connect to the MQTT broker {broker}' },
  CLOUD_GEO_DATABASE: { message: 'geo.ipDatabase {file} cannot be opened', config: true },
  CLOUD_ALERT_QUEUE: { message: 'the alert queue {path} failed' },
  CLOUD_START_ABORTED: { message: 'bridge start aborted by a stop request' },
  CLOUD_START_FAILED: { message: 'the bridge failed to start' },
  /** Logged: another sensor's event had this eventId; stored under a derived id (or same sensor, other content: kept out). */
  EVENT_ID_CONFLICT: { message: 'event {eventId} from {sensorId} has the id of a stored event' },
  /** Logged: an event stamped further ahead than maxClockSkewS is listed by its received time. */
  SENSOR_CLOCK_SKEW: { message: 'sensor {sensorId} clock is {skewS} s ahead; listed by received time' },
  /** A page cursor (`before=`) that this store did not hand out. */
  STORE_CURSOR_INVALID: { message: 'invalid page cursor {cursor}', status: 400 },
  EVENT_NOT_FOUND: { message: 'event {eventId} not found', status: 404 },
  // model library and rollout (cloud/control/model-library.ts, model-rollout.ts)
  MODEL_UPLOAD_INVALID: { message: 'the uploaded file is not a usable model: {problem}', status: 422 },
  MODEL_UNKNOWN: { message: 'no model {sha256} on this bridge', status: 404 },
  MODEL_URL_INVALID: { message: 'the model download link is unsigned, expired or wrong', status: 403 },
  ROLLOUT_INVALID: { message: 'rollout refused: {problem}', status: 400 },
  ROLLOUT_BUSY: { message: 'a rollout is already running', status: 409 },
  /** Recorded on a rollout's sensor: it was not online when its batch came, so nothing was sent. */
  ROLLOUT_SENSOR_OFFLINE: { message: 'sensor {sensorId} is not online; the rollout stopped' },
  /** Recorded on a rollout's sensor: no answer, or no status with the new version, in models.rolloutTimeoutS. */
  ROLLOUT_TIMEOUT: {
    message: 'sensor {sensorId} did not report model {version} in time; the rollout stopped',
  },
  /** A carrier failed for now (5xx, timeout, connection refused): retried with backoff. */
  ALERT_DELIVERY_RETRYABLE: { message: 'alert delivery failed for now; retrying' },
  /** A carrier refused for good (4xx: bad number, auth): not retried. */
  ALERT_DELIVERY_REFUSED: { message: 'alert delivery refused' },
  // --- dashboard ---
  WEB_UNAUTHENTICATED: { message: 'sign in first', status: 401 },
  WEB_FORBIDDEN: { message: 'not allowed for this role', status: 403 },
  WEB_CSRF_INVALID: { message: 'missing or wrong CSRF token', status: 403 },
  WEB_LOGIN_FAILED: { message: 'wrong username or password', status: 401 },
  WEB_RATE_LIMITED: { message: 'too many requests; try again later', status: 429 },
  WEB_NOT_FOUND: { message: 'not found', status: 404 },
  WEB_BAD_REQUEST: { message: 'bad request', status: 400 },
  WEB_UPLOAD_TOO_LARGE: { message: 'the upload is too large', status: 413 },
  WEB_UPLOAD_MISSING: { message: 'no file in the upload', status: 400 },
  WEB_CONFLICT: { message: 'conflict', status: 409 },
  WEB_LISTEN_FAILED: { message: 'the dashboard cannot listen on {host}:{port}' },
  WEB_BUNDLE_FAILED: { message: 'the dashboard front end could not be bundled' },
  WEB_DATA_DIR: { message: 'the dashboard cannot write to {dir}', config: true },
  WEB_ANALYSIS_FAILED: { message: 'the analysis failed' },
  WEB_UNAVAILABLE: { message: 'the dashboard is shutting down', status: 503 },
  WEB_INTERNAL: { message: 'internal error' },
  // --- storage lifecycle, both sides (runtime/sqlite-migrations.ts, cloud/store/retention.ts, backup) ---
  /** A SQLite file written by a newer release (a rollback after an upgrade): refused, not guessed at. */
  DB_SCHEMA_TOO_NEW: {
    message:
      '{file}: {name} schema version {found} is newer than this release knows ({known}); run the release that wrote it, or restore a backup',
    config: true,
  },
  /** Logged: the daily purge of events past store.retentionDays failed; tried again in an hour. */
  CLOUD_RETENTION_FAILED: { message: 'purging events past the retention period failed' },
  /** `screamwatch cloud backup`: the backup could not be taken or written. */
  CLOUD_BACKUP_FAILED: { message: 'backup to {out} failed' },
  /** `screamwatch cloud backup` with MONGODB_URI: the data is in MongoDB (use mongodump). */
  CLOUD_BACKUP_MONGODB: {
    message: 'the events and alerts are in MongoDB (MONGODB_URI): back them up with mongodump',
    config: true,
  },
  // --- `screamwatch train` ---
  /** A worker thread of the training run failed (an exception, out of memory, killed). */
  TRAIN_WORKER_FAILED: { message: 'a training worker failed: {message}' },
  // --- the demo and the generic runner ---
  DEMO_USAGE: { message: 'bad command line: {problem}', usage: true },
  DEMO_DATA_DIR: { message: '--data-dir {dir} cannot be created', config: true },
  DEMO_START_FAILED: { message: 'the demo failed to start' },
  START_ABORTED: { message: 'start aborted by a stop request' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * `Registered<AreaErrorCode>` fails to compile, naming the code, when an area's union has a code
 * this registry does not: add the code to ERRORS above.
 */
export type Registered<T extends ErrorCode> = T;

/** A coded error: `code` is stable and machine-readable, `message` says what and where. */
export class ScreamwatchError extends Error {
  readonly code: string;
  readonly context: Record<string, unknown> | undefined;
  constructor(
    code: string,
    message: string,
    context?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ScreamwatchError';
    this.code = code;
    this.context = context;
  }
}

/** The registry entry of a code; undefined for codes that are not ours (ENOENT, FST_...). */
export function errorSpec(code: string | undefined): ErrorSpec | undefined {
  return code !== undefined && Object.hasOwn(ERRORS, code) ? ERRORS[code as ErrorCode] : undefined;
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A registered configuration error (exit 78). */
export function isConfigError(err: unknown): boolean {
  return err instanceof ScreamwatchError && errorSpec(err.code)?.config === true;
}

/** The exit code for an error that stopped a process: 78 configuration, 2 usage, else 1. */
export function exitCodeFor(err: unknown): number {
  if (!(err instanceof ScreamwatchError)) return 1;
  const spec = errorSpec(err.code);
  return spec?.config ? EXIT_CONFIG : spec?.usage ? EXIT_USAGE : 1;
}

/** The HTTP status for an error reaching the dashboard API (500 when unregistered). */
export function httpStatusFor(err: unknown): number {
  return errorSpec(codeOf(err))?.status ?? 500;
}

/** The registry's message for `code` with `{name}` filled from `context` (unknown names kept). */
export function formatError(code: ErrorCode, context: Record<string, unknown> = {}): string {
  return ERRORS[code].message.replace(/\{(\w+)\}/g, (all, name: string) =>
    name in context ? String(context[name]) : all,
  );
}

/** A coded error whose message is the registry's template filled from `context`. */
export function codedError(code: ErrorCode, context: Record<string, unknown> = {}): ScreamwatchError {
  return new ScreamwatchError(code, formatError(code, context), context);
}

export type ProtocolErrorCode =
  | 'MQTT_PAYLOAD_TOO_LARGE'
  | 'MQTT_PAYLOAD_INVALID'
  | 'MQTT_VERSION_UNSUPPORTED'
  | 'MQTT_SENSOR_MISMATCH'
  | 'MQTT_TOPIC_INVALID';

export type ProtocolCodesRegistered = Registered<ProtocolErrorCode>;

export class ProtocolError extends ScreamwatchError {
  declare readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(code, message);
    this.name = 'ProtocolError';
  }
}
