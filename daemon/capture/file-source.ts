import type { Logger } from 'pino';
import { decodeAudioFile } from '../../core/audio/decode.ts';
import type { AudioSource, AudioSourceEvents } from './audio-source.ts';

/** 0.25 s, like arecord's chunks at 16 kHz. */
const CHUNK = 4000;

export interface FileSourceOptions {
  path: string;
  /** Refuse a file that decodes to more than this (AUDIO_TOO_LONG, exit 78); default 3600 s. */
  maxSeconds?: number;
  /** As fast as analysis takes it (never dropping), instead of real time. */
  fast: boolean;
  /** Real time only: start over at the end, never ending (the demo replays one file for ever). */
  loop?: boolean;
  /** In fast mode the source waits for `events.hasRoomFor` instead of making capture drop frames. */
  events: AudioSourceEvents & { hasRoomFor(samples: number): boolean };
  logger: Logger;
  now?: () => number;
}

/** Replays a WAV or MP3 file as if it were the microphone (installers, tests, benchmarks). */
export class FileSource implements AudioSource {
  readonly description: string;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Audio seconds delivered so far. */
  deliveredS = 0;

  constructor(private readonly options: FileSourceOptions) {
    this.description = `file:${options.path}`;
  }

  async start(): Promise<void> {
    this.stopped = false;
    const { samples, durationS } = await decodeAudioFile(this.options.path, {
      maxSeconds: this.options.maxSeconds ?? 3600,
    });
    this.options.logger.info(
      { file: this.options.path, durationS, fast: this.options.fast },
      'replaying audio file',
    );
    const now = this.options.now ?? (() => performance.now());
    let t0 = now();
    let at = 0;
    let first = true;
    const step = () => {
      this.timer = null;
      if (this.stopped) return;
      if (this.options.fast) {
        // fill the queue, then yield so analysis runs; never drop in fast mode
        while (at < samples.length && this.options.events.hasRoomFor(CHUNK)) emit();
        if (at >= samples.length) return this.options.events.end();
        this.timer = setTimeout(step, 1);
        return;
      }
      // real time: deliver everything whose time has come, drift-free against the start
      const dueSamples = Math.min(samples.length, Math.floor(((now() - t0) / 1000) * 16_000));
      while (at + CHUNK <= dueSamples || (dueSamples === samples.length && at < samples.length)) emit();
      if (at >= samples.length && this.options.loop) {
        // the clock restarts with the file, so the replay stays at real speed without drift
        t0 += (samples.length / 16_000) * 1000;
        at = 0;
      } else if (at >= samples.length) return this.options.events.end();
      this.timer = setTimeout(step, Math.max(1, ((at + CHUNK) / 16_000) * 1000 - (now() - t0)));
    };
    const emit = () => {
      const chunk = samples.slice(at, Math.min(samples.length, at + CHUNK));
      at += chunk.length;
      this.deliveredS = at / 16_000;
      if (first) {
        first = false;
        this.options.events.flowing();
      }
      this.options.events.samples(chunk);
    };
    this.timer = setTimeout(step, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
