import { padToOneWindow } from '../features/window-stream.ts';
import type { ScreamModel } from '../model/scream-model.ts';
import { type DetectedEvent, type DetectorOptions, StreamDetector } from './detector.ts';

export interface AnalysisWindow {
  startS: number;
  endS: number;
  probability: number;
}

export interface AnalysisEvent {
  startS: number;
  endS: number;
  detectedAtS: number;
  peakProbability: number;
}

/** The result shape of `screamwatch analyze --json` (minus `file`), and of the upload API. */
export interface AnalysisResult {
  durationS: number;
  maxProbability: number;
  isScream: boolean;
  thresholdValue: number;
  modelVersion: string;
  windows: AnalysisWindow[];
  events: AnalysisEvent[];
}

/** Chunk size used when analysing a whole buffer: 0.25 s, like a live capture. */
const CHUNK = 4000;

/**
 * Analyses a whole 16 kHz recording through the same streaming detector the daemon uses.
 * A recording shorter than one window is padded with silence to one window, so a short
 * clip still gets a score.
 */
export function analyzeSamples(
  samples: Float32Array,
  model: ScreamModel,
  options: DetectorOptions = {},
): AnalysisResult {
  const detector = new StreamDetector(model, options);
  const input = padToOneWindow(samples);
  const windows: AnalysisWindow[] = [];
  const events: DetectedEvent[] = [];
  const collect = (u: { type: string; event: DetectedEvent }) => {
    if (u.type === 'ended') events.push(u.event);
  };
  for (let at = 0; at < input.length; at += CHUNK) {
    const out = detector.push(input.subarray(at, at + CHUNK));
    for (const w of out.windows) windows.push({ startS: w.startS, endS: w.endS, probability: w.probability });
    out.updates.forEach(collect);
  }
  detector.finish().forEach(collect);
  const maxProbability = windows.reduce((m, w) => Math.max(m, w.probability), 0);
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    durationS: r3(samples.length / 16_000),
    maxProbability,
    isScream: events.length > 0,
    thresholdValue: detector.options.threshold,
    modelVersion: model.version,
    windows: windows.map((w) => ({ startS: r3(w.startS), endS: r3(w.endS), probability: w.probability })),
    events: events.map((e) => ({
      startS: r3(e.startS),
      endS: r3(e.endS),
      detectedAtS: r3(e.detectedAtS),
      peakProbability: e.peakProbability,
    })),
  };
}
