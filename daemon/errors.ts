import { type Registered, ScreamwatchError } from '../protocol/errors.ts';

export type DaemonErrorCode =
  | 'CONFIG_READ_FAILED'
  | 'CONFIG_PARSE_FAILED'
  | 'CONFIG_INVALID'
  | 'CLI_USAGE'
  | 'AUDIO_SOURCE_INVALID'
  | 'ALSA_OPEN_FAILED'
  | 'ALSA_CAPTURE_STOPPED'
  | 'ARECORD_NOT_FOUND'
  | 'OUTBOX_OPEN_FAILED'
  | 'OUTBOX_FULL'
  | 'MQTT_AUTH_REFUSED'
  | 'MQTT_CONNECT_FAILED'
  | 'MQTT_TLS_FILE_UNREADABLE'
  | 'CLIPS_WRITE_FAILED'
  | 'DAEMON_START_ABORTED'
  | 'COMMAND_INVALID'
  | 'COMMAND_EXPIRED'
  | 'COMMAND_FAILED'
  | 'SETTINGS_WRITE_FAILED'
  | 'SETTINGS_CORRUPT'
  | 'MODEL_INVALID'
  | 'MODEL_FEATURES_MISMATCH'
  | 'MODEL_DOWNLOAD_FAILED'
  | 'MODEL_TOO_LARGE'
  | 'MODEL_HASH_MISMATCH'
  | 'MODEL_SELF_TEST_FAILED'
  | 'MODEL_ROLLED_BACK'
  | 'MODEL_STATE_WRITE_FAILED';

/** Every code above is in protocol/errors.ts ERRORS (exit code, config or not). */
export type DaemonCodesRegistered = Registered<DaemonErrorCode>;

/** A daemon failure with a stable code; the message names the key, file or host:port. */
export class DaemonError extends ScreamwatchError {
  declare readonly code: DaemonErrorCode;
  constructor(
    code: DaemonErrorCode,
    message: string,
    context?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(code, message, context, options);
    this.name = 'DaemonError';
  }
}
