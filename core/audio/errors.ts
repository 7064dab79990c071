import { type Registered, ScreamwatchError } from '../../protocol/errors.ts';

export type AudioErrorCode =
  | 'AUDIO_EMPTY'
  | 'AUDIO_CORRUPT'
  | 'AUDIO_TRUNCATED'
  | 'AUDIO_UNSUPPORTED'
  | 'AUDIO_TOO_LONG'
  | 'AUDIO_READ_FAILED';

export type AudioCodesRegistered = Registered<AudioErrorCode>;

/** A file that cannot be decoded; the message names the file and the problem. */
export class AudioDecodeError extends ScreamwatchError {
  declare readonly code: AudioErrorCode;
  constructor(code: AudioErrorCode, file: string, problem: string, options?: { cause?: unknown }) {
    super(code, `${file}: ${problem}`, { file }, options);
    this.name = 'AudioDecodeError';
  }
}
