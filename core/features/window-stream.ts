import { FRAME_SIZE, FrameFeatureExtractor, type FrameFeatures } from './frame-features.ts';
import {
  FRAME_S,
  FRAMES_PER_HOP,
  FRAMES_PER_WINDOW,
  summariseWindow,
  WINDOW_S,
  type WindowFeatures,
} from './window-features.ts';

export interface FeatureWindow extends WindowFeatures {
  /** 0-based window number since the stream started. */
  index: number;
  /** Audio time of the window's first and last sample, seconds since the stream started. */
  startS: number;
  endS: number;
}

/**
 * Cuts a 16 kHz mono stream into overlapping windows and computes each window's features.
 * Frames are computed once and shared by the two windows that overlap them. Push any
 * chunk size; the result does not depend on how the stream was chunked.
 */
export class WindowFeatureStream {
  private readonly extractor = new FrameFeatureExtractor();
  private pending = new Float32Array(0);
  private frames: FrameFeatures[] = [];
  private framesSeen = 0;
  private windowIndex = 0;

  /** `onFrame` sees every 32 ms frame's features once, in order (training's whole-clip means). */
  constructor(private readonly onFrame?: (frame: FrameFeatures) => void) {}

  push(samples16k: Float32Array): FeatureWindow[] {
    let buf: Float32Array;
    if (this.pending.length === 0) buf = samples16k;
    else {
      buf = new Float32Array(this.pending.length + samples16k.length);
      buf.set(this.pending);
      buf.set(samples16k, this.pending.length);
    }
    const out: FeatureWindow[] = [];
    let at = 0;
    while (at + FRAME_SIZE <= buf.length) {
      const frame = this.extractor.extract(buf.subarray(at, at + FRAME_SIZE));
      this.onFrame?.(frame);
      this.frames.push(frame);
      this.framesSeen++;
      at += FRAME_SIZE;
      if (this.frames.length === FRAMES_PER_WINDOW) {
        const startFrame = this.framesSeen - FRAMES_PER_WINDOW;
        out.push({
          ...summariseWindow(this.frames),
          index: this.windowIndex++,
          startS: startFrame * FRAME_S,
          endS: this.framesSeen * FRAME_S,
        });
        this.frames = this.frames.slice(FRAMES_PER_HOP);
      }
    }
    this.pending = buf.slice(at);
    return out;
  }
}

/**
 * A recording shorter than one window, padded with silence to one window (plus a frame's
 * margin), so a short clip still gets a score; longer recordings are returned as they are.
 */
export function padToOneWindow(samples16k: Float32Array): Float32Array {
  const min = Math.ceil(WINDOW_S * 16_000) + 64;
  if (samples16k.length >= min) return samples16k;
  const padded = new Float32Array(min);
  padded.set(samples16k);
  return padded;
}
