import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { s16leToFloat } from '../../core/audio/decode.ts';
import { backoffDelay } from '../../runtime/backoff.ts';
import { DaemonError } from '../errors.ts';
import type { AudioSource, AudioSourceEvents, RetryPolicy } from './audio-source.ts';

interface Recording {
  process: ChildProcess;
  stream(): Readable;
  stop(): void;
}
interface RecorderModule {
  record(options: Record<string, unknown>): Recording;
}
const recorder = createRequire(import.meta.url)('node-record-lpcm16') as RecorderModule;

export interface AlsaSourceOptions {
  device: string;
  retry: RetryPolicy;
  /** arecord running but silent this long (no bytes at all) is killed and reopened. */
  stallTimeoutMs?: number;
  events: AudioSourceEvents;
  logger: Logger;
}

/**
 * The microphone through `arecord` (node-record-lpcm16), raw S16_LE 16 kHz mono. When
 * arecord exits (device unplugged, busy, missing), the error is logged with ALSA's own
 * words and capture is retried with backoff, forever: a sensor with its mic back must
 * recover by itself, and systemd restarting us in a loop would not help.
 */
export class AlsaSource implements AudioSource {
  readonly description: string;
  private recording: Recording | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private stopping = false;
  private leftover: Buffer | null = null;
  /** Exit count, for tests and the log. */
  failures = 0;
  lastError: DaemonError | null = null;
  private stallTimer: NodeJS.Timeout | null = null;

  /** True while the device failed and a reopen is scheduled (the watchdog is kept fed). */
  get retrying(): boolean {
    return this.retryTimer !== null;
  }

  constructor(private readonly options: AlsaSourceOptions) {
    this.description = `alsa:${options.device}`;
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.open();
  }

  private open(): void {
    this.retryTimer = null;
    if (this.stopping) return;
    const { device, logger } = this.options;
    let stderr = '';
    let flowing = false;
    let stalled = false;
    // A device can open and then deliver nothing (USB hiccup, a wedged driver): treat
    // silence-without-bytes as a failure. Real silence still arrives as zero-valued bytes.
    const stallMs = this.options.stallTimeoutMs ?? 10_000;
    const armStall = () => {
      if (this.stallTimer) clearTimeout(this.stallTimer);
      this.stallTimer = setTimeout(() => {
        stalled = true;
        rec.process.kill('SIGKILL');
      }, stallMs);
    };
    const rec = recorder.record({
      recorder: 'arecord',
      device,
      sampleRate: 16_000,
      channels: 1,
      audioType: 'raw',
    });
    this.recording = rec;
    const cp = rec.process;
    const stream = rec.stream();
    cp.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 4000) stderr += d.toString();
    });
    // node-record-lpcm16 does not listen for spawn errors (arecord not installed)
    cp.on('error', (err: NodeJS.ErrnoException) => {
      stderr += err.code === 'ENOENT' ? 'arecord not found on PATH (install alsa-utils)' : err.message;
    });
    // it reports every non-zero exit (including its own stop()) as a string 'error' on the stream
    stream.on('error', () => {});
    armStall();
    stream.on('data', (chunk: Buffer) => {
      armStall();
      if (!flowing) {
        flowing = true;
        this.attempt = 0;
        logger.info({ device }, 'audio capture running');
        this.options.events.flowing();
      }
      this.options.events.samples(this.toSamples(chunk));
    });
    cp.once('close', (code: number | null, signal: string | null) => {
      if (this.stallTimer) clearTimeout(this.stallTimer);
      this.stallTimer = null;
      if (this.recording === rec) this.recording = null;
      this.leftover = null;
      if (this.stopping) return;
      this.failures++;
      const why = stalled
        ? `no audio for ${stallMs} ms (device stalled)`
        : stderr.trim().split('\n').slice(-2).join(' ') || `exit code ${code ?? signal}`;
      const code_ = flowing
        ? 'ALSA_CAPTURE_STOPPED'
        : /not found on PATH/.test(why)
          ? 'ARECORD_NOT_FOUND'
          : 'ALSA_OPEN_FAILED';
      const delay = backoffDelay(this.options.retry, this.attempt++);
      this.lastError = new DaemonError(
        code_,
        `${flowing ? 'audio capture stopped' : 'cannot open audio device'} alsa:${device}: ${why}; retrying in ${delay} ms`,
        { device, delayMs: delay },
      );
      logger.error(
        { code: code_, device, delayMs: delay, err: this.lastError.message },
        this.lastError.message,
      );
      this.retryTimer = setTimeout(() => this.open(), delay);
      this.options.events.failed?.(this.lastError);
    });
  }

  /** arecord chunks need not end on a sample boundary. */
  private toSamples(chunk: Buffer): Float32Array {
    let buf = chunk;
    if (this.leftover) {
      buf = Buffer.concat([this.leftover, chunk]);
      this.leftover = null;
    }
    if (buf.length % 2 === 1) {
      this.leftover = Buffer.from(buf.subarray(buf.length - 1));
      buf = buf.subarray(0, buf.length - 1);
    }
    return s16leToFloat(buf);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    const rec = this.recording;
    this.recording = null;
    if (!rec) return;
    const cp = rec.process;
    if (cp.exitCode !== null || cp.signalCode !== null) return;
    const closed = new Promise<void>((resolve) => cp.once('close', () => resolve()));
    rec.stop();
    const timer = setTimeout(() => cp.kill('SIGKILL'), 2000);
    await closed;
    clearTimeout(timer);
  }
}
