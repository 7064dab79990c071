import { createHash } from 'node:crypto';
import type { ConfirmerOptions } from '../detect/confirmer.ts';
import { FRAME_SIZE, type FrameFeatures } from '../features/frame-features.ts';
import { FEATURE_SET, HOP_S, WINDOW_FEATURE_NAMES } from '../features/window-features.ts';
import { type FeatureWindow, padToOneWindow, WindowFeatureStream } from '../features/window-stream.ts';
import { loadBareForest, MODEL_FORMAT, type ModelFile, ScreamModel } from '../model/scream-model.ts';
import {
  activeRms,
  applyRecordingChain,
  bandEnergies,
  changeSpeed,
  mixAtSnr,
  randomRecordingChain,
} from './augment.ts';
import { BaselineMeans, type BaselineReport } from './baseline.ts';
import type { Clip } from './dataset.ts';
import { familyOf } from './families.ts';
import { type ForestOptions, trainForest, trainForestWithOob } from './forest-trainer.ts';
import {
  averagePrecision,
  type EventMetrics,
  eventMetrics,
  metricsAt,
  rankSummary,
  rocAuc,
  type ScoredClip,
  type ThresholdMetrics,
} from './metrics.ts';
import { seededRandom } from './random.ts';

export const DEFAULT_FOREST: ForestOptions = {
  // 100 trees of depth 12 on the grown, augmented folder made a 2.5 MB file (limit 2 MB)
  nEstimators: 80,
  maxDepth: 11,
  // leaves of >= 20 rows: smoother vote shares, which hold their scale better on held-out
  // families (leave-one-family-out ROC-AUC 0.867 against 0.864 with 6; leaves of 40: 0.867)
  minSamplesSplit: 40,
  minSamplesLeaf: 20,
  seed: 1,
};

/** Scream windows more than this below the clip's loudest window are gaps, not screams. */
const SCREAM_GAP_DB = 15;

export interface ClipFeatures {
  clip: number;
  label: 0 | 1;
  source: string;
  durationS: number;
  windows: FeatureWindow[];
  /** The plain baseline's whole-clip row (`BaselineMeans`), from the same frames as `windows`. */
  baselineRow?: Float64Array;
}

/** Feature windows of a whole clip, padded with silence to at least one window. */
export function windowsOf(samples: Float32Array, onFrame?: (frame: FrameFeatures) => void): FeatureWindow[] {
  return new WindowFeatureStream(onFrame).push(padToOneWindow(samples));
}

/** Every clip's feature windows, with what validation and augmentation need to know of it. */
export function clipFeaturesOf(
  clips: readonly Clip[],
  onProgress?: (done: number, of: number) => void,
): ClipFeatures[] {
  return clips.map((c, i) => {
    onProgress?.(i + 1, clips.length);
    // whole frames of the clip only: a short clip's last frame runs into its padding
    const means = new BaselineMeans();
    let frames = 0;
    const windows = windowsOf(c.samples, (f) => {
      if (++frames * FRAME_SIZE <= c.samples.length) means.add(f);
    });
    return {
      clip: i,
      label: c.label,
      source: c.source,
      durationS: c.durationS,
      windows,
      baselineRow: means.row(),
    };
  });
}

/**
 * Training rows of one clip. Labels are clip-level and scream clips contain breaths and
 * gaps; windows far below the clip's peak level are left out rather than taught as screams.
 */
export function rowsOf(cf: { label: 0 | 1; windows: FeatureWindow[]; screamWindowsOnly?: boolean }): {
  rows: Float64Array[];
  labels: number[];
} {
  let windows = cf.windows;
  if (cf.label === 1 && !cf.screamWindowsOnly && windows.length) {
    const peak = Math.max(...windows.map((w) => w.levelDbfs));
    windows = windows.filter((w) => w.levelDbfs >= peak - SCREAM_GAP_DB);
  }
  return { rows: windows.map((w) => w.values), labels: windows.map(() => cf.label) };
}

/** An augmented copy of a clip: through a random recording chain, maybe mixed into a background. */
export interface Mix {
  label: 0 | 1;
  /** Both recordings that went into the copy: a fold may use it only if it holds both. */
  sources: [string, string];
  clips: [number, number];
  /** SNR of the mix in dB, or null when the copy was not mixed into a background. */
  snrDb: number | null;
  windows: FeatureWindow[];
  /** Windows were already cut to the scream's own extent (screams), or are all kept. */
  screamWindowsOnly: true;
  /** The copy's bandwidth/level/clipping figures (the shortcut check). */
  shortcut: number[];
}

/** A background is noise-like when few of its windows are voiced (no cries, barks, speech). */
const MAX_BACKGROUND_VOICED = 0.3;
const VOICED_FRACTION = WINDOW_FEATURE_NAMES.indexOf('voicedFraction');

/** A non-scream clip of at least `minS` seconds that is mostly unvoiced: usable as background noise. */
function isNoiseLikeBackground(f: ClipFeatures, minS: number): boolean {
  if (f.label !== 0 || f.durationS < minS) return false;
  const voiced =
    f.windows.reduce((a, w) => a + w.values[VOICED_FRACTION]!, 0) / Math.max(1, f.windows.length);
  return voiced <= MAX_BACKGROUND_VOICED;
}

export interface AugmentOptions {
  /** Augmented copies per scream clip. */
  perScream: number;
  /** Augmented copies per non-scream clip, on average (1.5: one each, a second for half). */
  nonScreamShare: number;
  /** Share of copies mixed into a background (screams; non-screams use half of it). */
  mixShare: number;
  /** SNRs a scream is mixed at (dB). */
  snrsDb: readonly number[];
  /**
   * Share of copies (both classes) played faster or slower, by a factor within
   * 1 +- speedRange: pitch and duration move together, as from another voice or throat.
   */
  speedShare?: number;
  speedRange?: number;
  /** Non-scream copies are random excerpts of at most this many seconds (default 4). */
  nonScreamCopyS?: number;
  /**
   * A scream copy mixed into a background is first set inside it: 0..leadMaxS seconds of the
   * background before the scream and tailMinS..tailMaxS after, as a sensor hears it. Without
   * this a short scream's window is the scream and then digital silence (the clip's padding),
   * never the scream and then the room.
   */
  mixContext?: { leadMaxS: number; tailMinS: number; tailMaxS: number };
}

/** Non-scream copies are excerpts of at most this many seconds (feature time is training time). */
const NON_SCREAM_COPY_S = 4;

/**
 * Measured leave-one-family-out (40-tree forests, pooled window ROC-AUC): a copy of every
 * second non-scream clip and 60% speed copies 0.864; a copy of every non-scream clip 0.879
 * and 0.877 (two seeds); with 80% speed copies 0.891 and 0.876; speed +-25% 0.869; 80% mixed
 * into backgrounds 0.844; five copies per scream 0.848. Non-scream excerpts of 2.5 s instead
 * of 4 s: 0.889 (0.892 with a 20-tree mining probe) for a sixth less training time.
 * With 80-tree folds and the polyphase speed copies: one copy per non-scream clip 0.891,
 * average precision 0.549, 58.6% of scream clips at 112 false alarms/h at its default;
 * two copies 0.884, AP 0.601, 64.2% at 127/h, and at ~185/h 70.4% (10 dB: 50.0%) against
 * 69.1% (43.8%): two ship.
 * Mixed scream copies set inside their background (mixContext; 80-tree folds, at equal false
 * alarms per hour): 10 dB recall within 50 / 100 / 200 FA/h 27.4 / 39.0 / 55.6% against
 * 23.1 / 36.8 / 50.5%, at 20 dB 56.5% against 49.5% at the chosen default; clean clips
 * 43.0 / 54.8 / 71.2% against 44.1 / 58.6 / 71.0%; window AP 0.547 against 0.600.
 */
export const DEFAULT_AUGMENT: AugmentOptions = {
  perScream: 3,
  nonScreamShare: 2,
  mixShare: 0.6,
  snrsDb: [-5, 0, 5, 10, 15, 20],
  speedShare: 0.8,
  speedRange: 0.15,
  nonScreamCopyS: 2.5,
  mixContext: { leadMaxS: 1.5, tailMinS: 1, tailMaxS: 1.5 },
};

/**
 * Recording-chain augmentation of both classes (issue 10 item 2). Every copy goes through
 * a random chain (band limit or telephone band, EQ tilt, synthetic room, soft clipping,
 * gain) and is often mixed into a noise-like background at -5..20 dB SNR. Screams and
 * non-screams get the same chains, so bandwidth, tilt, room and level stop telling the
 * classes apart (the training folder's 8 kHz baby cries taught the old model that a
 * band-limited voice is never a scream). Backgrounds are the non-scream clips that are
 * mostly unvoiced (street, engines, rooms, rain) plus colour noise: mixing a scream into a
 * baby's cry or a barking dog would teach the forest that cries and barks are screams.
 * A scream copy keeps only the windows where the clean scream was present.
 */
export function buildMixes(
  clips: readonly Clip[],
  features: readonly ClipFeatures[],
  seed: number,
  options: AugmentOptions = DEFAULT_AUGMENT,
  onProgress?: (done: number, of: number) => void,
  featurize: (samples: Float32Array) => FeatureWindow[] = windowsOf,
): Mix[] {
  const random = seededRandom(seed);
  const backgrounds: { samples: Float32Array; source: string; clip: number }[] = [];
  for (const f of features) {
    if (isNoiseLikeBackground(f, 1))
      backgrounds.push({ samples: clips[f.clip]!.samples, source: f.source, clip: f.clip });
  }
  for (const colour of ['white', 'pink', 'brown'] as const) {
    backgrounds.push({
      samples: colouredNoise(colour, 16000 * 10, random),
      source: `synthetic:${colour}-noise`,
      clip: -1,
    });
  }
  const jobs: { clip: number; mix: boolean }[] = [];
  clips.forEach((c, i) => {
    if (c.label === 1)
      for (let m = 0; m < options.perScream; m++) jobs.push({ clip: i, mix: random() < options.mixShare });
    else {
      // nonScreamShare copies per clip on average: its whole part always, its fraction by chance
      const copies = Math.floor(options.nonScreamShare) + (random() < options.nonScreamShare % 1 ? 1 : 0);
      for (let m = 0; m < copies; m++) jobs.push({ clip: i, mix: random() < options.mixShare / 2 });
    }
  });
  const mixes: Mix[] = [];
  jobs.forEach((job, ji) => {
    onProgress?.(ji + 1, jobs.length);
    const c = clips[job.clip]!;
    const chain = randomRecordingChain(random);
    let audio = c.samples;
    let speed = 1;
    if (options.speedShare && random() < options.speedShare) {
      speed = 1 + (options.speedRange ?? 0) * (2 * random() - 1);
      audio = changeSpeed(audio, speed);
    }
    const copyS = options.nonScreamCopyS ?? NON_SCREAM_COPY_S;
    if (c.label === 0 && audio.length > copyS * 16000) {
      // a non-scream copy is a random excerpt: its sound, not its whole length, is the point
      const n = Math.round(copyS * 16000);
      const at = Math.floor(random() * (audio.length - n));
      audio = audio.subarray(at, at + n);
    }
    let bg: (typeof backgrounds)[number] | null = null;
    let snrDb: number | null = null;
    let leadS = 0;
    /** The scream's own span in a copy set inside its background (samples), else the whole copy. */
    let span: [number, number] | null = null;
    if (job.mix) {
      // a background never mixes with its own clip
      do bg = backgrounds[Math.floor(random() * backgrounds.length)]!;
      while (bg.clip === job.clip);
      snrDb = c.label === 1 ? options.snrsDb[Math.floor(random() * options.snrsDb.length)]! : 20 * random();
      const ctx = c.label === 1 ? options.mixContext : undefined;
      if (ctx) {
        // mixAtSnr measures the scream's active RMS, which the silent margins do not change
        leadS = ctx.leadMaxS * random();
        const lead = Math.round(leadS * 16000);
        const tail = Math.round((ctx.tailMinS + (ctx.tailMaxS - ctx.tailMinS) * random()) * 16000);
        const padded = new Float32Array(lead + audio.length + tail);
        padded.set(audio, lead);
        span = [lead, lead + audio.length];
        audio = padded;
        leadS = lead / 16000;
      }
      audio = mixAtSnr(audio, bg.samples, snrDb, random);
    }
    audio = applyRecordingChain(audio, chain, random);
    let windows = featurize(audio);
    if (c.label === 1) {
      // Which windows hold the scream is decided on the clean scream: after mixing, its
      // gaps are as loud as the background and would otherwise be taught as screams.
      const clean = features[job.clip]!.windows;
      const peak = Math.max(...clean.map((w) => w.levelDbfs));
      // (a copy played at another speed, or set after a lead-in, maps its window onto the
      // clean window at the same point of the scream; windows before the scream map to none)
      windows = windows.filter(
        (_w, wi) =>
          (clean[Math.round((wi - leadS / HOP_S) * speed)]?.levelDbfs ?? -Infinity) >= peak - SCREAM_GAP_DB,
      );
    }
    mixes.push({
      label: c.label,
      sources: [c.source, bg?.source ?? c.source],
      clips: [job.clip, bg?.clip ?? -1],
      snrDb,
      windows,
      screamWindowsOnly: true,
      // the check measures what the forest learns from: a scream copy's rows are its windows
      // on the scream (they reach up to a window past it), never the room before or long after
      // it, whose level would read as a level cue
      shortcut: shortcutFeatures(span ? audio.subarray(span[0], span[1]) : audio),
    });
  });
  return mixes;
}

/**
 * What a recording chain leaves in a clip regardless of the sound: its bandwidth (energy
 * share above 3.5, 4.5, 6 and 7.5 kHz), its level (active RMS, peak) and clipping (share
 * of samples at the peak). If a forest on these alone separates screams from the rest,
 * the data lets a model cheat.
 */
export const SHORTCUT_FEATURE_NAMES = [
  'shareAbove3k5Db',
  'shareAbove4k5Db',
  'shareAbove6kDb',
  'shareAbove7k5Db',
  'activeRmsDbfs',
  'peakDbfs',
  'clippedShare',
] as const;

export function shortcutFeatures(x: Float32Array): number[] {
  const e = bandEnergies(x, [3500, 4500, 6000, 7500]);
  const total = e.reduce((a, b) => a + b, 0) + 1e-20;
  let above = 0;
  const shares: number[] = [];
  for (let b = e.length - 1; b >= 1; b--) {
    above += e[b]!;
    shares.unshift(10 * Math.log10(above / total + 1e-12));
  }
  let peak = 0;
  for (const v of x) peak = Math.max(peak, Math.abs(v));
  let clipped = 0;
  if (peak > 0) for (const v of x) if (Math.abs(v) >= peak * 0.999) clipped++;
  return [
    ...shares,
    20 * Math.log10(activeRms(x) + 1e-10),
    20 * Math.log10(peak + 1e-10),
    clipped / Math.max(1, x.length),
  ];
}

/** A shortcut ROC-AUC above this means the recording chain gives the class away. */
export const SHORTCUT_WARN_AUC = 0.75;

export interface ShortcutCheck {
  /** Leave-one-group-out ROC-AUC of a small forest on the shortcut features alone. */
  rocAuc: number;
  /** The same with only the bandwidth features, and with only level and clipping. */
  bandwidthOnlyRocAuc: number;
  levelOnlyRocAuc: number;
  items: number;
}

/**
 * How well bandwidth, level and clipping alone separate the classes, validated by the
 * given groups (a forest of 30 shallow trees). Near 0.5 is what we want: above about 0.75
 * a model can learn the recording chain instead of the sound.
 */
export function shortcutCheck(
  items: readonly { label: 0 | 1; group: string; values: readonly number[] }[],
): ShortcutCheck {
  const run = (cols: number[]) => {
    const groups = [...new Set(items.map((i) => i.group))];
    const scores: number[] = [];
    const labels: number[] = [];
    for (const g of groups) {
      const train = items.filter((i) => i.group !== g);
      const test = items.filter((i) => i.group === g);
      if (!train.some((i) => i.label === 1) || !train.some((i) => i.label === 0) || test.length === 0)
        continue;
      const rows = train.map((i) => Float64Array.from(cols, (c) => i.values[c]!));
      const forest = trainForest(
        rows,
        train.map((i) => i.label),
        {
          nEstimators: 30,
          maxDepth: 6,
          minSamplesSplit: 8,
          minSamplesLeaf: 4,
          seed: 3,
          maxFeatures: cols.length,
        },
        undefined,
        train.map((i) => i.group),
      );
      const model = loadBareForest(forest);
      const p = model.predict(test.map((i) => Float64Array.from(cols, (c) => i.values[c]!)));
      scores.push(...p);
      labels.push(...test.map((i) => i.label));
    }
    return rocAuc(scores, labels);
  };
  return {
    rocAuc: run([0, 1, 2, 3, 4, 5, 6]),
    bandwidthOnlyRocAuc: run([0, 1, 2, 3]),
    levelOnlyRocAuc: run([4, 5, 6]),
    items: items.length,
  };
}

/** White, pink (1/f, Voss-McCartney) or brown (integrated) noise at about -20 dBFS. */
export function colouredNoise(
  colour: 'white' | 'pink' | 'brown',
  n: number,
  random: () => number,
): Float32Array {
  const out = new Float32Array(n);
  const rows = new Float64Array(16);
  let brown = 0;
  for (let i = 0; i < n; i++) {
    const white = random() * 2 - 1;
    if (colour === 'white') out[i] = white;
    else if (colour === 'brown') {
      brown = (brown + 0.02 * white) * 0.998;
      out[i] = brown * 4;
    } else {
      const k = Math.min(15, Math.clz32(0) - Math.clz32((i + 1) & -(i + 1)));
      rows[k] = random() * 2 - 1;
      let s = white;
      for (const r of rows) s += r;
      out[i] = s / 5;
    }
  }
  let e = 0;
  for (const v of out) e += v * v;
  const g = 0.1 / Math.sqrt(e / n);
  return out.map((v) => Math.max(-1, Math.min(1, v * g)));
}

export interface MiningOptions {
  /** Trees of the probe forest whose out-of-bag scores find the hard negatives; 0 = no mining. */
  probeTrees: number;
  /** A non-scream row whose out-of-bag score reaches this is a hard negative. */
  minScore: number;
  /** Share of the non-scream bootstrap draws that go to the hard negatives. */
  share: number;
  /**
   * Mining rounds at most (default 1): each round trains a probe with the hard negatives
   * found so far and adds the non-scream rows it still calls screams; it stops early when
   * the probe's out-of-bag false alarms fall by less than a tenth.
   */
  rounds?: number;
  onRound?: (r: { round: number; firing: number; added: number }) => void;
}

/**
 * Measured leave-one-family-out, pooled window ROC-AUC of 40-tree forests: minScore 0.5 /
 * share 0.15 gave 0.843, 0.35 / 0.3 0.851, 0.35 / 0.5 0.859 (no mining: 0.822); with the
 * speed copies, 0.35 / 0.5 gave 0.864 and 0.862 (two seeds), a second round 0.857: one.
 * A 20-tree probe instead of 30: 0.892 against 0.889 (training time counts).
 */
export const DEFAULT_MINING: MiningOptions = { probeTrees: 20, minScore: 0.35, share: 0.5, rounds: 1 };
export const NO_MINING: MiningOptions = { probeTrees: 0, minScore: 1, share: 0 };

/**
 * Fits the forest, after hard-negative mining (issue 10 item 3): a probe forest scores
 * every non-scream row out of bag (with trees that never drew it), and the rows it would
 * call screams (`mining.rounds` times at most) become a bootstrap group of their own, drawn for
 * `mining.share` of the non-scream rows of every tree. Class balance per tree and the even
 * draw across sources stay as they are.
 */
export function fitForest(
  parts: readonly (ClipFeatures | Mix)[],
  forest: ForestOptions,
  onProgress?: (tree: number, of: number) => void,
  mining: MiningOptions = DEFAULT_MINING,
): unknown {
  const rows: Float64Array[] = [];
  const labels: number[] = [];
  const groups: string[] = [];
  for (const p of parts) {
    const r = rowsOf(p);
    rows.push(...r.rows);
    labels.push(...r.labels);
    // bootstrap evenly across recording sources (a copy counts as its clip's source)
    const source = 'sources' in p ? p.sources[0] : p.source;
    for (let i = 0; i < r.rows.length; i++) groups.push(source);
  }
  if (mining.probeTrees > 0) {
    const negSources = new Set(groups.filter((_g, i) => labels[i] === 0)).size;
    const copies = Math.max(1, Math.round((mining.share * negSources) / (1 - mining.share)));
    const originals = labels.length;
    const hard = new Set<number>();
    let lastFiring = Number.POSITIVE_INFINITY;
    for (let round = 0; round < (mining.rounds ?? 1); round++) {
      // the probe sees the hard negatives found so far as their own bootstrap groups, so
      // each round looks for what the last one still calls a scream
      const { oob } = trainForestWithOob(
        rows,
        labels,
        { ...forest, nEstimators: mining.probeTrees, seed: forest.seed + 101 + round },
        undefined,
        groups,
      );
      const found: number[] = [];
      let firing = 0;
      for (let i = 0; i < originals; i++) {
        if (labels[i] !== 0 || !(oob[i]! >= mining.minScore)) continue;
        firing++;
        if (!hard.has(i)) found.push(i);
      }
      mining.onRound?.({ round: round + 1, firing, added: found.length });
      // stop once the probe's out-of-bag false alarms no longer fall by a tenth
      if (found.length === 0 || firing > lastFiring * 0.9) break;
      lastFiring = firing;
      for (const i of found) hard.add(i);
      for (let c = 0; c < copies; c++) {
        for (const i of found) {
          rows.push(rows[i]!);
          labels.push(0);
          groups.push(`hard-negatives-${c}`);
        }
      }
    }
  }
  return trainForest(rows, labels, forest, onProgress ? (p) => onProgress(p.tree, p.of) : undefined, groups);
}

export interface ModelDefaults {
  threshold: number;
  confirm: Omit<ConfirmerOptions, 'threshold'>;
  levelGateDbfs: number;
}

export function buildModelFile(
  forest: unknown,
  defaults: ModelDefaults,
  training: Record<string, unknown>,
  metrics?: Record<string, unknown>,
): ModelFile {
  const hash = createHash('sha256').update(JSON.stringify(forest)).digest('hex').slice(0, 8);
  const now = new Date();
  return {
    format: MODEL_FORMAT,
    version: `${now.toISOString().slice(0, 10)}-${hash}`,
    featureNames: [...WINDOW_FEATURE_NAMES],
    featureSet: FEATURE_SET,
    threshold: defaults.threshold,
    confirm: defaults.confirm,
    levelGateDbfs: defaults.levelGateDbfs,
    trainedAt: now.toISOString(),
    training,
    ...(metrics ? { metrics } : {}),
    forest,
  };
}

/** A held-out clip's scores, with the validation group it was held out in. */
export type GroupScoredClip = ScoredClip & { group: string };
export type NoisyScoredClip = GroupScoredClip & { snrDb: number };

export interface GroupFigures {
  group: string;
  screamClips: number;
  nonScreamClips: number;
  nonScreamMinutes: number;
  /** Window ROC-AUC where the group holds both classes. */
  rocAuc: number | null;
  /** Clip ROC-AUC (each clip scored by its highest window) where the group holds both classes. */
  clipRocAuc: number | null;
  /** Share of the group's non-scream windows at or over the threshold. */
  windowFalsePositiveRate: number | null;
  eventRecall: number | null;
  falseAlarms: number;
  falseAlarmsPerHour: number | null;
  /** Event recall of the group's screams mixed into held-out backgrounds, per SNR. */
  noisyRecall: { snrDb: number; eventRecall: number; clips: number }[];
  /** Latency from onset over the group's detected noisy mixes (all SNRs). */
  medianLatencyS: number | null;
  p90LatencyS: number | null;
}

export interface RuleComparison {
  rule: string;
  /** The budget the rules were compared within (falseAlarmBudget). */
  falseAlarmBudgetPerHour: number;
  threshold: number;
  k: number;
  n: number;
  singleWindowThreshold: number | null;
  eventRecall: number;
  noisyRecall10Db: number;
  falseAlarmsPerHour: number;
  medianLatencyS: number;
}

export interface ValidationReport {
  method: string;
  folds: { heldOut: string; screamClips: number; nonScreamClips: number }[];
  windows: {
    count: number;
    screams: number;
    rocAuc: number;
    averagePrecision: number;
    atThreshold: ThresholdMetrics;
  };
  /**
   * Whole clips, each scored by its highest window probability (what `screamwatch analyze`
   * reports as a file's `max p`): how well the model ranks recordings rather than windows.
   */
  clips: { count: number; screams: number; rocAuc: number; averagePrecision: number };
  /** The plain whole-clip baseline validated on the same folds (`eval --cross-validate --baseline`). */
  baseline?: BaselineReport;
  events: EventMetrics;
  /** Held-out screams mixed into held-out backgrounds, per SNR. */
  noisy: { snrDb: number; eventRecall: number; medianLatencyS: number; p90LatencyS: number; clips: number }[];
  /** Latency from onset over every detected noisy mix (all SNRs). */
  latencyFromOnset: { medianS: number; p90S: number };
  groups: GroupFigures[];
  rules?: RuleComparison[];
  shortcut?: { folder: ShortcutCheck; trainingSet?: ShortcutCheck };
  defaults: ModelDefaults;
}

/** How validation folds are cut. */
export type GroupBy = 'family' | 'source' | 'recording';

/** Folds for grouped validation: source families, whole sources, or recordings hashed into five folds. */
export function foldKeys(clips: readonly Clip[], groupBy: GroupBy, folds = 5): string[] {
  if (groupBy === 'source') return clips.map((c) => c.source);
  if (groupBy === 'family') return clips.map((c) => familyOf(c.source));
  return clips.map(
    (c) =>
      `fold ${(parseInt(createHash('sha1').update(c.recording).digest('hex').slice(0, 8), 16) % folds) + 1} of ${folds}`,
  );
}

export const NOISY_SNRS_DB = [0, 5, 10, 20];
/** Seconds of background before a mixed scream starts (latency is measured from there). */
const NOISY_LEAD_S = 2;

const PLACEHOLDER_DEFAULTS: ModelDefaults = {
  threshold: 0.5,
  confirm: { k: 2, n: 3, releaseWindows: 4 },
  levelGateDbfs: -60,
};

/** Scores feature windows with a model, windows under the level gate scoring 0 (as at run time). */
function scoreWindows(model: ScreamModel, windows: readonly FeatureWindow[], levelGateDbfs: number) {
  const probs = model.predict(windows.map((w) => w.values));
  return windows.map((w, i) => ({
    index: w.index,
    startS: w.startS,
    endS: w.endS,
    probability: w.levelDbfs < levelGateDbfs ? 0 : probs[i]!,
    levelDbfs: w.levelDbfs,
  }));
}

/**
 * Each scream after a 2 s lead-in of a background, mixed at every SNR. Backgrounds are the
 * held-out clips' noise-like recordings when there are a few, else any of their non-scream
 * recordings of 3 s or more, else pink noise: never audio the model was trained on.
 */
export function noisyMixes(
  screams: readonly ClipFeatures[],
  negatives: readonly ClipFeatures[],
  samplesOf: (clip: number) => Float32Array,
  random: () => number,
): { samples: Float32Array; snrDb: number }[] {
  const noiseLike = negatives.filter((f) => isNoiseLikeBackground(f, 3));
  const long = negatives.filter((f) => f.durationS >= 3);
  const pool =
    noiseLike.length >= 3
      ? noiseLike.map((f) => samplesOf(f.clip))
      : long.length
        ? long.map((f) => samplesOf(f.clip))
        : [colouredNoise('pink', 16000 * 10, random)];
  const out: { samples: Float32Array; snrDb: number }[] = [];
  for (const s of screams) {
    const scream = samplesOf(s.clip);
    for (const snrDb of NOISY_SNRS_DB) {
      const lead = NOISY_LEAD_S * 16000;
      const padded = new Float32Array(lead + scream.length + 8000);
      padded.set(scream, lead);
      // mixAtSnr measures the scream's active RMS, which the silent lead-in does not change
      out.push({
        samples: mixAtSnr(padded, pool[Math.floor(random() * pool.length)]!, snrDb, random),
        snrDb,
      });
    }
  }
  return out;
}

/** One validation fold: the group held out, and its position among the sorted groups. */
export interface FoldTask {
  index: number;
  heldOut: string;
}

export interface FoldResult {
  fold: ValidationReport['folds'][number];
  scored: GroupScoredClip[];
  noisyScored: NoisyScoredClip[];
}

/** The validation folds: every clip's group and one fold per group, in sorted order. */
export function validationFolds(
  clips: readonly Clip[],
  groupBy: GroupBy,
): { keys: string[]; folds: FoldTask[] } {
  const keys = foldKeys(clips, groupBy);
  const folds = [...new Set(keys)].sort().map((heldOut, index) => ({ index, heldOut }));
  return { keys, folds };
}

/** The clips a fold scores (and whose audio its noisy mixes are made of): the held-out group's. */
export function foldTestClips(
  features: readonly ClipFeatures[],
  keys: readonly string[],
  task: FoldTask,
): ClipFeatures[] {
  return features.filter((f) => keys[f.clip] === task.heldOut);
}

/**
 * One fold of the grouped cross-validation: train on the other groups (their clips and the
 * augmented copies made only of their clips) and score the held-out group's clips, and its
 * screams mixed into its own backgrounds. Null when the other groups lack a class. A pure
 * function of its inputs: folds may run in any order, on any thread, with the same result.
 * `samplesOf` gives the audio of the held-out clips (foldTestClips) only.
 */
export function validateFold(
  task: FoldTask,
  keys: readonly string[],
  features: readonly ClipFeatures[],
  mixes: readonly Mix[],
  samplesOf: (clip: number) => Float32Array,
  forest: ForestOptions,
  mining: MiningOptions = DEFAULT_MINING,
  featurize: (samples: Float32Array) => FeatureWindow[] = windowsOf,
): FoldResult | null {
  const held = task.heldOut;
  const gate = PLACEHOLDER_DEFAULTS.levelGateDbfs;
  const test = foldTestClips(features, keys, task);
  const train = features.filter((f) => keys[f.clip] !== held);
  const trainMixes = mixes.filter(
    (m) => keys[m.clips[0]] !== held && (m.clips[1] < 0 || keys[m.clips[1]] !== held),
  );
  if (!train.some((f) => f.label === 1) || !train.some((f) => f.label === 0)) return null;
  const fold = {
    heldOut: held,
    screamClips: test.filter((f) => f.label === 1).length,
    nonScreamClips: test.filter((f) => f.label === 0).length,
  };
  const model = ScreamModel.fromJSON(
    buildModelFile(fitForest([...train, ...trainMixes], forest, undefined, mining), PLACEHOLDER_DEFAULTS, {}),
  );
  const scored: GroupScoredClip[] = test.map((t) => ({
    label: t.label,
    durationS: t.durationS,
    group: held,
    windows: scoreWindows(model, t.windows, gate),
  }));
  const noisyScored: NoisyScoredClip[] = [];
  const heldScreams = test.filter((f) => f.label === 1);
  if (heldScreams.length) {
    const mixed = noisyMixes(
      heldScreams,
      test.filter((f) => f.label === 0),
      samplesOf,
      seededRandom(1000 + task.index),
    );
    for (const m of mixed) {
      noisyScored.push({
        label: 1,
        snrDb: m.snrDb,
        group: held,
        onsetS: NOISY_LEAD_S,
        durationS: m.samples.length / 16000,
        windows: scoreWindows(model, featurize(m.samples), gate),
      });
    }
  }
  return { fold, scored, noisyScored };
}

/** Fold results in fold order, as one validation: what chooseDefaults and report read. */
export function mergeFolds(results: readonly (FoldResult | null)[]): {
  scored: GroupScoredClip[];
  noisyScored: NoisyScoredClip[];
  folds: ValidationReport['folds'];
} {
  const scored: GroupScoredClip[] = [];
  const noisyScored: NoisyScoredClip[] = [];
  const folds: ValidationReport['folds'] = [];
  for (const r of results) {
    if (!r) continue;
    folds.push(r.fold);
    for (const x of r.scored) scored.push(x);
    for (const x of r.noisyScored) noisyScored.push(x);
  }
  return { scored, noisyScored, folds };
}

/** The most false alarms per hour of held-out non-scream audio a default may cause. */
export const MAX_FALSE_ALARMS_PER_HOUR = 2;

export interface Candidate {
  threshold: number;
  k: number;
  n: number;
  single: number | undefined;
  eventRecall: number;
  noisyRecall: number;
  noisyRecall10Db: number;
  falseAlarmsPerHour: number;
  medianLatencyS: number;
}

/** Every decision setting the chooser considers, scored once (choosing and comparing rules share it). */
export function decisionCandidates(
  scored: readonly ScoredClip[],
  noisy: readonly NoisyScoredClip[],
): Candidate[] {
  const out: Candidate[] = [];
  const noisy10 = noisy.filter((c) => c.snrDb === 10);
  for (let t = 0.3; t <= 0.985; t += 0.02) {
    const threshold = Math.round(t * 100) / 100;
    for (const [k, n] of CONFIRM_CHOICES) {
      const singles: (number | undefined)[] = [undefined];
      if (k > 1)
        for (let s = threshold + 0.04; s <= 0.995; s += 0.04) singles.push(Math.round(s * 100) / 100);
      for (const single of singles) {
        const options = { threshold, k, n, releaseWindows: 4, singleWindowThreshold: single };
        const e = eventMetrics(scored, options);
        const nz = noisy.length ? eventMetrics(noisy, options) : null;
        out.push({
          threshold,
          k,
          n,
          single,
          eventRecall: e.eventRecall,
          noisyRecall: nz?.eventRecall ?? e.eventRecall,
          noisyRecall10Db: noisy10.length ? eventMetrics(noisy10, options).eventRecall : Number.NaN,
          falseAlarmsPerHour: e.falseAlarmsPerHour,
          medianLatencyS: nz?.medianLatencyS ?? e.medianLatencyS,
        });
      }
    }
  }
  return out;
}

/** Best first: within the false-alarm budget, the highest mean of clean and noisy recall, then the fastest. */
/**
 * Budgets tried in turn when the target one leaves most screams undetected: a detector
 * that misses most screams is no safety product, so the chooser then says how many false
 * alarms it takes to catch half of them, and the model card reports it.
 */
const FALSE_ALARM_BUDGETS = [MAX_FALSE_ALARMS_PER_HOUR, 5, 10, 20, 50, 100, 200];
const MIN_MEAN_RECALL = 0.5;

/** The smallest false-alarm budget (per hour) within which some setting catches MIN_MEAN_RECALL. */
export function falseAlarmBudget(all: readonly Candidate[]): number {
  for (const budget of FALSE_ALARM_BUDGETS) {
    if (
      all.some(
        (c) => c.falseAlarmsPerHour <= budget && (c.eventRecall + c.noisyRecall) / 2 >= MIN_MEAN_RECALL,
      )
    )
      return budget;
  }
  return FALSE_ALARM_BUDGETS.at(-1)!;
}

function better(a: Candidate, b: Candidate, budget: number): number {
  const ok = (c: Candidate) => (c.falseAlarmsPerHour <= budget ? 1 : 0);
  if (ok(a) !== ok(b)) return ok(b) - ok(a);
  if (!ok(a)) return a.falseAlarmsPerHour - b.falseAlarmsPerHour;
  const score = (c: Candidate) => (c.eventRecall + c.noisyRecall) / 2;
  if (Math.abs(score(a) - score(b)) > 1e-9) return score(b) - score(a);
  if (a.medianLatencyS !== b.medianLatencyS) return a.medianLatencyS - b.medianLatencyS;
  return b.threshold - a.threshold;
}

/**
 * Picks the default threshold, k-of-n and short-scream rule from pooled held-out scores:
 * among settings with at most MAX_FALSE_ALARMS_PER_HOUR confirmed false alarms per hour
 * of held-out non-scream audio, the one with the best mean of clean-clip event recall and
 * noisy-mix event recall, then the lowest latency from onset. When no setting within that
 * budget catches half the screams, the budget is relaxed step by step (falseAlarmBudget).
 */
export function chooseDefaults(
  scored: readonly ScoredClip[],
  noisy: readonly NoisyScoredClip[] = [],
  all: readonly Candidate[] = decisionCandidates(scored, noisy),
): ModelDefaults {
  const budget = falseAlarmBudget(all);
  let best = [...all].sort((a, b) => better(a, b, budget))[0]!;
  if (budget > MAX_FALSE_ALARMS_PER_HOUR) {
    // Out of reach: catching half the screams would take `budget` false alarms an hour.
    // Then the best balance of detected scream clips against false alarms (event F1) among
    // settings that flag at most 5% of non-scream windows, as a compromise a site can
    // move either way (detection.threshold, k, n, singleWindowThreshold).
    const { scores, labels } = windowScores(scored);
    const hours = eventMetrics(
      scored.filter((c) => c.label === 0),
      { threshold: 1, k: 1, n: 1, releaseWindows: 1 },
    ).nonScreamHours;
    const screams = scored.filter((c) => c.label === 1).length;
    const f1 = (c: Candidate) => {
      const detected = c.eventRecall * screams;
      const falseAlarms = c.falseAlarmsPerHour * hours;
      const precision = detected + falseAlarms > 0 ? detected / (detected + falseAlarms) : 0;
      const recall = (c.eventRecall + c.noisyRecall) / 2;
      return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    };
    const fpr = new Map<number, number>();
    const fprAt = (t: number) => {
      if (!fpr.has(t)) fpr.set(t, metricsAt(scores, labels, t).falsePositiveRate);
      return fpr.get(t)!;
    };
    const pool = all.filter((c) => fprAt(c.threshold) <= 0.05);
    if (pool.length)
      best = [...pool].sort((a, b) => f1(b) - f1(a) || a.medianLatencyS - b.medianLatencyS)[0]!;
  }
  return {
    threshold: best.threshold,
    confirm: {
      k: best.k,
      n: best.n,
      releaseWindows: 4,
      ...(best.single !== undefined ? { singleWindowThreshold: best.single } : {}),
    },
    levelGateDbfs: -60,
  };
}

/**
 * The short-scream options measured against each other (issue 10 item 1): the best
 * setting of each decision rule within the same false-alarm budget.
 */
export function compareRules(
  scored: readonly ScoredClip[],
  noisy: readonly NoisyScoredClip[],
  all: readonly Candidate[] = decisionCandidates(scored, noisy),
): RuleComparison[] {
  const rules: [string, (c: Candidate) => boolean][] = [
    ['1 of 1 (every window alone)', (c) => c.k === 1],
    ['k of n only (k >= 2)', (c) => c.k > 1 && c.single === undefined],
    ['k of n + single-window threshold', (c) => c.k > 1 && c.single !== undefined],
  ];
  const budget = falseAlarmBudget(all);
  return rules.map(([rule, pick]) => {
    const c = all.filter(pick).sort((a, b) => better(a, b, budget))[0]!;
    return {
      rule,
      falseAlarmBudgetPerHour: budget,
      threshold: c.threshold,
      k: c.k,
      n: c.n,
      singleWindowThreshold: c.single ?? null,
      eventRecall: c.eventRecall,
      noisyRecall10Db: c.noisyRecall10Db,
      falseAlarmsPerHour: c.falseAlarmsPerHour,
      medianLatencyS: c.medianLatencyS,
    };
  });
}

/** k-of-n choices, each window adding 0.512 s before a scream can be confirmed. */
const CONFIRM_CHOICES = [
  [1, 1],
  [2, 2],
  [2, 3],
  [3, 4],
] as const;

const quantileOf = (xs: number[], q: number) => {
  if (!xs.length) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

/** Latencies from onset of every noisy mix that got confirmed. */
function onsetLatencies(noisy: readonly ScoredClip[], options: ConfirmerOptions): number[] {
  const out: number[] = [];
  for (const c of noisy) {
    const e = eventMetrics([c], options);
    if (e.eventRecall === 1) out.push(e.medianLatencyS);
  }
  return out;
}

export function report(
  scored: readonly (ScoredClip & { group?: string })[],
  noisyScored: readonly (ScoredClip & { snrDb: number; group?: string })[],
  folds: ValidationReport['folds'],
  defaults: ModelDefaults,
  groupBy: GroupBy = 'family',
): ValidationReport {
  const { scores, labels } = windowScores(scored);
  const confirm: ConfirmerOptions = { threshold: defaults.threshold, ...defaults.confirm };
  const latencies = onsetLatencies(noisyScored, confirm);
  const groupNames = [
    ...new Set(scored.map((c) => c.group).filter((g): g is string => g !== undefined)),
  ].sort();
  const groups: GroupFigures[] = groupNames.map((group) => {
    const mine = scored.filter((c) => c.group === group);
    const myNoisy = noisyScored.filter((c) => c.group === group);
    const w = windowScores(mine);
    const hasBoth = w.labels.includes(1) && w.labels.includes(0);
    const negs = w.labels.filter((l) => l === 0).length;
    const e = eventMetrics(mine, confirm);
    const lat = onsetLatencies(myNoisy, confirm);
    const screamClips = mine.filter((c) => c.label === 1).length;
    return {
      group,
      screamClips,
      nonScreamClips: mine.length - screamClips,
      nonScreamMinutes: e.nonScreamHours * 60,
      rocAuc: hasBoth ? rocAuc(w.scores, w.labels) : null,
      clipRocAuc: hasBoth ? clipScores(mine).rocAuc : null,
      windowFalsePositiveRate: negs
        ? metricsAt(w.scores, w.labels, defaults.threshold).falsePositiveRate
        : null,
      eventRecall: screamClips ? e.eventRecall : null,
      falseAlarms: e.falseAlarms,
      falseAlarmsPerHour: e.nonScreamHours > 0 ? e.falseAlarmsPerHour : null,
      noisyRecall: NOISY_SNRS_DB.map((snrDb) => {
        const subset = myNoisy.filter((c) => c.snrDb === snrDb);
        return { snrDb, eventRecall: eventMetrics(subset, confirm).eventRecall, clips: subset.length };
      }).filter((n) => n.clips > 0),
      medianLatencyS: lat.length ? quantileOf(lat, 0.5) : null,
      p90LatencyS: lat.length ? quantileOf(lat, 0.9) : null,
    };
  });
  const method =
    groupBy === 'family'
      ? 'leave-one-family-out (sources grouped by family: core/train/families.ts); metrics pooled over held-out folds'
      : groupBy === 'source'
        ? 'leave-one-source-out (manifest source_repo); metrics pooled over held-out folds'
        : 'grouped 5-fold cross-validation by original recording (no recording on both sides); metrics pooled over held-out folds';
  return {
    method,
    folds,
    windows: {
      count: scores.length,
      screams: labels.filter((l) => l === 1).length,
      rocAuc: rocAuc(scores, labels),
      averagePrecision: averagePrecision(scores, labels),
      atThreshold: metricsAt(scores, labels, defaults.threshold),
    },
    clips: clipScores(scored),
    events: eventMetrics(scored, confirm),
    noisy: NOISY_SNRS_DB.map((snrDb) => {
      const subset = noisyScored.filter((c) => c.snrDb === snrDb);
      const e = eventMetrics(subset, confirm);
      return {
        snrDb,
        eventRecall: e.eventRecall,
        medianLatencyS: e.medianLatencyS,
        p90LatencyS: e.p90LatencyS,
        clips: subset.length,
      };
    }),
    latencyFromOnset: { medianS: quantileOf(latencies, 0.5), p90S: quantileOf(latencies, 0.9) },
    groups,
    defaults,
  };
}

/** Each clip scored by its highest window (0 for a clip with none), ranked against its label. */
export function clipScores(scored: readonly ScoredClip[]): ValidationReport['clips'] {
  const scores = scored.map((c) => c.windows.reduce((m, w) => Math.max(m, w.probability), 0));
  return rankSummary(
    scores,
    scored.map((c) => c.label),
  );
}

/**
 * Window-level scores for metrics. Scream clips' gap windows (far below the clip's peak
 * level) are left out, exactly as in training: they are not screams, whatever the clip says.
 */
export function windowScores(scored: readonly ScoredClip[]): { scores: number[]; labels: number[] } {
  const scores: number[] = [];
  const labels: number[] = [];
  for (const c of scored) {
    const peak = Math.max(...c.windows.map((w) => w.levelDbfs ?? 0));
    for (const w of c.windows) {
      if (c.label === 1 && w.levelDbfs !== undefined && w.levelDbfs < peak - SCREAM_GAP_DB) continue;
      scores.push(w.probability);
      labels.push(c.label);
    }
  }
  return { scores, labels };
}

/** The shortcut check's items for the folder as it is: one per clip. */
export function folderShortcutItems(clips: readonly Clip[], groupBy: GroupBy) {
  const keys = foldKeys(clips, groupBy);
  return clips.map((c, i) => ({ label: c.label, group: keys[i]!, values: shortcutFeatures(c.samples) }));
}

/** The same for the training set as the forest sees it: every clip and every augmented copy. */
export function trainingSetShortcutItems(clips: readonly Clip[], mixes: readonly Mix[], groupBy: GroupBy) {
  const keys = foldKeys(clips, groupBy);
  return [
    ...folderShortcutItems(clips, groupBy),
    ...mixes.map((m) => ({ label: m.label, group: keys[m.clips[0]]!, values: m.shortcut })),
  ];
}

/**
 * Scores a trained model on a labelled folder (the metrics of `screamwatch eval`): clean
 * clips, and each scream after a 2 s lead-in of a background from the same folder at
 * 0, 5, 10 and 20 dB SNR (event recall and latency from the scream's onset).
 */
export function evaluateModel(
  clips: readonly Clip[],
  features: readonly ClipFeatures[],
  model: ScreamModel,
  seed = 1,
): ValidationReport {
  const gate = model.meta.levelGateDbfs;
  const scored: GroupScoredClip[] = features.map((f) => ({
    label: f.label,
    durationS: f.durationS,
    group: familyOf(f.source),
    windows: scoreWindows(model, f.windows, gate),
  }));
  const random = seededRandom(seed);
  const noisyScored: NoisyScoredClip[] = [];
  const byGroup = new Map<string, ClipFeatures[]>();
  for (const f of features) byGroup.set(familyOf(f.source), [...(byGroup.get(familyOf(f.source)) ?? []), f]);
  for (const [group, fs] of byGroup) {
    const screams = fs.filter((f) => f.label === 1);
    if (!screams.length) continue;
    const negatives = fs.filter((f) => f.label === 0);
    for (const m of noisyMixes(
      screams,
      negatives.length ? negatives : features.filter((f) => f.label === 0),
      (clip) => clips[clip]!.samples,
      random,
    )) {
      noisyScored.push({
        label: 1,
        snrDb: m.snrDb,
        group,
        onsetS: NOISY_LEAD_S,
        durationS: m.samples.length / 16000,
        windows: scoreWindows(model, windowsOf(m.samples), gate),
      });
    }
  }
  const defaults: ModelDefaults = {
    threshold: model.threshold,
    confirm: model.meta.confirm,
    levelGateDbfs: model.meta.levelGateDbfs,
  };
  const r = report(scored, noisyScored, [], defaults);
  return {
    ...r,
    method: `model ${model.version} scored on every clip of the folder (no training on it); per family`,
  };
}
