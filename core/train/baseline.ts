import {
  FRAME_SIZE,
  FrameFeatureExtractor,
  type FrameFeatures,
  N_CHROMA,
  N_MFCC,
} from '../features/frame-features.ts';
import { loadBareForest } from '../model/scream-model.ts';
import { type ForestOptions, trainForest } from './forest-trainer.ts';
import { rankSummary, rocAuc } from './metrics.ts';

/**
 * The plain method this product replaced (issue 10): one row per whole clip, the time means of
 * its MFCC, chroma, zero-crossing rate and RMS level, and one random forest, no augmentation.
 * `eval --cross-validate --baseline` validates it on the same folds as the recipe, so the model
 * card can say whether the window model ranks held-out clips better than that, not only better
 * than its own past. Reimplemented from the description with this project's frame
 * features (Meyda's MFCC and chroma on 32 ms frames), so it is a reference, not the original.
 */
export const BASELINE_FOREST: ForestOptions = {
  nEstimators: 100,
  maxDepth: 30,
  minSamplesSplit: 2,
  minSamplesLeaf: 1,
  seed: 1,
};

/** What the report says the baseline is. */
export function baselineDescription(forest: ForestOptions = BASELINE_FOREST): string {
  return `plain whole-clip baseline: time means of ${N_MFCC} MFCC, ${N_CHROMA} chroma, ZCR and RMS level over the clip's non-silent 32 ms frames, one ${forest.nEstimators}-tree forest (class-balanced bootstraps drawn evenly across sources, as the recipe's), no augmentation`;
}

export interface BaselineClip {
  label: 0 | 1;
  source: string;
  baselineRow?: Float64Array;
  samples?: Float32Array;
}

export interface BaselineReport {
  description: string;
  clips: ReturnType<typeof rankSummary>;
  groups: { group: string; clipRocAuc: number | null }[];
}

/**
 * The baseline's row for one clip, built frame by frame: 13 MFCC, 12 chroma, ZCR and RMS dBFS,
 * each a time mean over the non-silent frames. `clipFeaturesOf` feeds it the frames the
 * window features are made of, so `train` does not analyse every clip a second time.
 */
export class BaselineMeans {
  private readonly sums = new Float64Array(N_MFCC + N_CHROMA + 2);
  private n = 0;

  add(f: FrameFeatures): void {
    if (f.silent) return;
    const s = this.sums;
    for (let i = 0; i < N_MFCC; i++) s[i]! += f.mfcc[i]!;
    for (let i = 0; i < N_CHROMA; i++) s[N_MFCC + i]! += f.chroma[i]!;
    s[N_MFCC + N_CHROMA]! += f.zcr;
    s[N_MFCC + N_CHROMA + 1]! += f.rmsDb;
    this.n++;
  }

  row(): Float64Array {
    const out = new Float64Array(this.sums.length);
    if (this.n === 0) {
      // digital silence: no spectral shape, and a level marker instead of NaN
      out[N_MFCC + N_CHROMA + 1] = -200;
      return out;
    }
    for (let i = 0; i < out.length; i++) out[i] = this.sums[i]! / this.n;
    return out;
  }
}

/** The baseline's row for one clip (16 kHz), from its consecutive 32 ms frames. */
export function baselineFeatures(samples: Float32Array): Float64Array {
  const fx = new FrameFeatureExtractor();
  const means = new BaselineMeans();
  for (let o = 0; o + FRAME_SIZE <= samples.length; o += FRAME_SIZE) {
    means.add(fx.extract(samples.subarray(o, o + FRAME_SIZE)));
  }
  return means.row();
}

/**
 * Validates the baseline by group: each group held out in turn (where the others hold both
 * classes), its clips scored by a forest trained on every other group's clips. `groups[i]` is
 * clip i's fold key; bootstraps draw evenly across the clips' sources, as the recipe's do.
 * A clip brings its row (`baselineRow`, from `clipFeaturesOf`) or its samples.
 */
export function validateBaseline(
  clips: readonly BaselineClip[],
  groups: readonly string[],
  forest: ForestOptions = BASELINE_FOREST,
): BaselineReport {
  const rows = clips.map((c) => {
    if (c.baselineRow) return c.baselineRow;
    if (!c.samples) throw new TypeError('a baseline clip needs its baselineRow or its samples');
    return baselineFeatures(c.samples);
  });
  const labels = clips.map((c) => c.label);
  const score = new Float64Array(clips.length).fill(Number.NaN);
  const names = [...new Set(groups)].sort();
  for (const g of names) {
    const train: number[] = [];
    const test: number[] = [];
    groups.forEach((x, i) => {
      (x === g ? test : train).push(i);
    });
    if (!train.some((i) => labels[i] === 1) || !train.some((i) => labels[i] === 0)) continue;
    const json = trainForest(
      train.map((i) => rows[i]!),
      train.map((i) => labels[i]!),
      forest,
      undefined,
      train.map((i) => clips[i]!.source),
    );
    const p = loadBareForest(json).predict(test.map((i) => rows[i]!));
    test.forEach((i, j) => {
      score[i] = p[j]!;
    });
  }
  const scoredIdx = clips.map((_, i) => i).filter((i) => !Number.isNaN(score[i]!));
  const pooled = (idx: number[]) => ({
    scores: idx.map((i) => score[i]!),
    labels: idx.map((i) => labels[i]!),
  });
  const all = pooled(scoredIdx);
  return {
    description: baselineDescription(forest),
    clips: rankSummary(all.scores, all.labels),
    groups: names.map((group) => {
      const mine = pooled(scoredIdx.filter((i) => groups[i] === group));
      const both = mine.labels.includes(1) && mine.labels.includes(0);
      return { group, clipRocAuc: both ? rocAuc(mine.scores, mine.labels) : null };
    }),
  };
}
