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

export type ProtocolErrorCode =
  | 'MQTT_PAYLOAD_TOO_LARGE'
  | 'MQTT_PAYLOAD_INVALID'
  | 'MQTT_VERSION_UNSUPPORTED'
  | 'MQTT_SENSOR_MISMATCH'
  | 'MQTT_TOPIC_INVALID';

export class ProtocolError extends ScreamwatchError {
  declare readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(code, message);
    this.name = 'ProtocolError';
  }
}
