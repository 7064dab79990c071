import { readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { encodeWav16 } from '../../core/audio/wav.ts';
import { ensureDir } from '../ensure-dir.ts';

export interface ClipRecorderOptions {
  dir: string;
  maxBytes: number;
  preS: number;
  postS: number;
  logger: Logger;
}

interface PendingClip {
  eventId: string;
  chunks: Float32Array[];
  remaining: number;
}

/**
 * Optional, off by default (no raw audio leaves the device, and none is kept unless the
 * installer asks): keeps `preS` seconds of audio in memory and, for each confirmed event,
 * writes `<eventId>.wav` with `preS` before and `postS` after the confirmation. The folder
 * is a ring: oldest clips are deleted to stay under `maxBytes`.
 */
export class ClipRecorder {
  private ring: Float32Array[] = [];
  private ringSamples = 0;
  private pending: PendingClip[] = [];

  constructor(private readonly options: ClipRecorderOptions) {
    ensureDir(options.dir);
  }

  push(samples: Float32Array): void {
    for (const p of this.pending) {
      const take = samples.subarray(0, Math.min(samples.length, p.remaining));
      p.chunks.push(take.slice());
      p.remaining -= take.length;
    }
    const done = this.pending.filter((p) => p.remaining <= 0);
    this.pending = this.pending.filter((p) => p.remaining > 0);
    for (const p of done) this.write(p);
    const keep = Math.round(this.options.preS * 16_000);
    this.ring.push(samples);
    this.ringSamples += samples.length;
    while (this.ring.length > 1 && this.ringSamples - this.ring[0]!.length >= keep) {
      this.ringSamples -= this.ring.shift()!.length;
    }
  }

  /** Where the clip of `eventId` is written (the event's notes tell the dashboard). */
  clipPath(eventId: string): string {
    return join(this.options.dir, `${eventId}.wav`);
  }

  /** Starts a clip for an event confirmed at the end of the audio pushed so far. */
  capture(eventId: string): void {
    const pre = concat(this.ring);
    const preSamples = Math.round(this.options.preS * 16_000);
    const p: PendingClip = {
      eventId,
      chunks: [pre.subarray(Math.max(0, pre.length - preSamples))],
      remaining: Math.round(this.options.postS * 16_000),
    };
    if (p.remaining <= 0) this.write(p);
    else this.pending.push(p);
  }

  /** Writes what it has of pending clips (shutdown, end of a file). */
  flush(): void {
    for (const p of this.pending) this.write(p);
    this.pending = [];
  }

  private write(p: PendingClip): void {
    const { logger } = this.options;
    const file = this.clipPath(p.eventId);
    try {
      const tmp = `${file}.tmp`;
      writeFileSync(tmp, encodeWav16(concat(p.chunks), 16_000));
      renameSync(tmp, file);
      this.enforceLimit();
      logger.info({ eventId: p.eventId, file }, 'event clip saved');
    } catch (err) {
      logger.warn(
        { code: 'CLIPS_WRITE_FAILED', file, err: (err as Error).message },
        `cannot write clip ${file}`,
      );
    }
  }

  private enforceLimit(): void {
    const files = readdirSync(this.options.dir)
      .filter((f) => f.endsWith('.wav'))
      .sort(); // ULID names: lexicographic = chronological
    const sizes = files.map((f) => statSync(join(this.options.dir, f)).size);
    let total = sizes.reduce((a, b) => a + b, 0);
    for (let i = 0; i < files.length && total > this.options.maxBytes; i++) {
      unlinkSync(join(this.options.dir, files[i]!));
      total -= sizes[i]!;
    }
  }
}

function concat(chunks: Float32Array[]): Float32Array {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const out = new Float32Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
