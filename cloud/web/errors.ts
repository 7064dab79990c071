import { httpStatusFor, type Registered, ScreamwatchError } from '../../protocol/errors.ts';

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

export type WebCodesRegistered = Registered<WebErrorCode>;

/** A dashboard error; `statusCode` (from the registry) is what the API answers with, `code` goes in the JSON body. */
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
    this.statusCode = httpStatusFor(this);
  }
}
