import { type Registered, ScreamwatchError } from '../protocol/errors.ts';

export type CloudErrorCode =
  | 'CLOUD_CONFIG_INVALID'
  | 'CLOUD_CONFIG_UNREADABLE'
  | 'CLOUD_DATA_DIR'
  | 'CLOUD_STORE_OPEN_FAILED'
  | 'CLOUD_STORE_WRITE_FAILED'
  | 'CLOUD_BROKER_LISTEN_FAILED'
  | 'CLOUD_TLS_FILE_UNREADABLE'
  | 'CLOUD_BROKER_CONNECT_FAILED'
  | 'CLOUD_GEO_DATABASE'
  | 'CLOUD_ALERT_QUEUE'
  | 'CLOUD_START_ABORTED'
  | 'CLOUD_RETENTION_FAILED'
  | 'CLOUD_BACKUP_FAILED'
  | 'CLOUD_BACKUP_MONGODB'
  | 'CLI_USAGE'
  | 'STORE_CURSOR_INVALID'
  | 'EVENT_NOT_FOUND'
  | 'COMMAND_INVALID'
  | 'COMMAND_FAILED'
  | 'MODEL_UPLOAD_INVALID'
  | 'MODEL_UNKNOWN'
  | 'MODEL_URL_INVALID'
  | 'ROLLOUT_INVALID'
  | 'ROLLOUT_BUSY'
  | 'ROLLOUT_SENSOR_OFFLINE'
  | 'ROLLOUT_TIMEOUT';

/** Every code above is in protocol/errors.ts ERRORS (exit code, HTTP status, config or not). */
export type CloudCodesRegistered = Registered<CloudErrorCode>;

/** An error of the cloud bridge: the code is stable, the message names the key, file or host:port. */
export class CloudError extends ScreamwatchError {
  declare readonly code: CloudErrorCode;
  constructor(
    code: CloudErrorCode,
    message: string,
    context?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(code, message, context, options);
    this.name = 'CloudError';
  }
}
