import { ScreamwatchError } from '../../protocol/errors.ts';

export type WebErrorCode =
  | 'WEB_UNAUTHENTICATED'
  | 'WEB_FORBIDDEN'
  | 'WEB_CSRF_INVALID'
  | 'WEB_LOGIN_FAILED'
  | 'WEB_RATE_LIMITED'
  | 'WEB_NOT_FOUND'
  | 'WEB_BAD_REQUEST'
  | 'WEB_UPLOAD_TOO_LARGE'
  | 'WEB_UPLOAD_MISSING'
  | 'WEB_CONFLICT'
  | 'WEB_LISTEN_FAILED'
  | 'WEB_BUNDLE_FAILED'
  | 'WEB_DATA_DIR'
  | 'WEB_ANALYSIS_FAILED'
  | 'WEB_UNAVAILABLE';

const STATUS: Record<WebErrorCode, number> = {
  WEB_UNAUTHENTICATED: 401,
  WEB_FORBIDDEN: 403,
  WEB_CSRF_INVALID: 403,
  WEB_LOGIN_FAILED: 401,
  WEB_RATE_LIMITED: 429,
  WEB_NOT_FOUND: 404,
  WEB_BAD_REQUEST: 400,
  WEB_UPLOAD_TOO_LARGE: 413,
  WEB_UPLOAD_MISSING: 400,
  WEB_CONFLICT: 409,
  WEB_LISTEN_FAILED: 500,
  WEB_BUNDLE_FAILED: 500,
  WEB_DATA_DIR: 500,
  WEB_ANALYSIS_FAILED: 500,
  WEB_UNAVAILABLE: 503,
};

/** A dashboard error; `statusCode` is what the API answers with, `code` goes in the JSON body. */
export class WebError extends ScreamwatchError {
  declare readonly code: WebErrorCode;
  readonly statusCode: number;
  constructor(
    code: WebErrorCode,
    message: string,
    context?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(code, message, context, options);
    this.name = 'WebError';
    this.statusCode = STATUS[code];
  }
}
