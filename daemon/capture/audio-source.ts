import type { DaemonConfig } from '../config/schema.ts';
import { DaemonError } from '../errors.ts';

/** Something that produces 16 kHz mono float samples: the microphone or a file replay. */
export interface AudioSource {
  /** As configured, e.g. `alsa:plughw:CARD=Device,DEV=0`; reported in events. */
  readonly description: string;
  /** Resolves once the source is running (a device that is absent is retried, not fatal). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface AudioSourceEvents {
  samples(samples: Float32Array): void;
  /**
   * Back-pressure for a source that can wait (a file replayed in fast mode): is there room for
   * this many samples without dropping? A microphone never waits and never asks.
   */
  hasRoomFor?(samples: number): boolean;
  /** First audio after start or after a recovery: READY for sd_notify. */
  flowing(): void;
  /** Only a file source ends. */
  end(): void;
  /** The device could not be opened or was lost; a reopen is scheduled (input health: no-device). */
  failed?(error: DaemonError): void;
}

export type ParsedSource = { kind: 'alsa'; device: string } | { kind: 'file'; path: string };

export function parseAudioSource(source: string): ParsedSource {
  const m = /^(alsa|file):(.+)$/.exec(source);
  if (!m)
    throw new DaemonError(
      'AUDIO_SOURCE_INVALID',
      `audio.source ${JSON.stringify(source)} is not alsa:<device> or file:<path>`,
    );
  return m[1] === 'alsa' ? { kind: 'alsa', device: m[2]! } : { kind: 'file', path: m[2]! };
}

export type RetryPolicy = DaemonConfig['audio']['retry'];
