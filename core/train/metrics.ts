import { type ConfirmerOptions, ScreamConfirmer } from '../detect/confirmer.ts';

/** Area under the ROC curve (Mann-Whitney U with ties counted half). */
export function rocAuc(scores: readonly number[], labels: readonly number[]): number {
  const idx = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let rankSumPos = 0;
  let nPos = 0;
  let i = 0;
  while (i < idx.length) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]!] === scores[idx[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++)
      if (labels[idx[k]!] === 1) {
        rankSumPos += rank;
        nPos++;
      }
    i = j + 1;
  }
  const nNeg = labels.length - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Average precision (area under the precision-recall curve, step-wise). */
export function averagePrecision(scores: readonly number[], labels: readonly number[]): number {
  const idx = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const nPos = labels.filter((l) => l === 1).length;
  if (nPos === 0) return Number.NaN;
  let tp = 0;
  let fp = 0;
  let ap = 0;
  let i = 0;
  while (i < idx.length) {
    let j = i;
    let tpHere = 0;
    while (j < idx.length && scores[idx[j]!] === scores[idx[i]!]) {
      if (labels[idx[j]!] === 1) tpHere++;
      else fp++;
      j++;
    }
    tp += tpHere;
    ap += (tpHere / nPos) * (tp / (tp + fp));
    i = j;
  }
  return ap;
}

/** How well scores rank one label over the other: counts, ROC-AUC and average precision. */
export function rankSummary(
  scores: readonly number[],
  labels: readonly number[],
): { count: number; screams: number; rocAuc: number; averagePrecision: number } {
  return {
    count: scores.length,
    screams: labels.filter((l) => l === 1).length,
    rocAuc: rocAuc(scores, labels),
    averagePrecision: averagePrecision(scores, labels),
  };
}

export interface ThresholdMetrics {
  threshold: number;
  precision: number;
  recall: number;
  f1: number;
  falsePositiveRate: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

export function metricsAt(
  scores: readonly number[],
  labels: readonly number[],
  threshold: number,
): ThresholdMetrics {
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  scores.forEach((s, i) => {
    const p = s >= threshold;
    if (labels[i] === 1) p ? tp++ : fn++;
    else p ? fp++ : tn++;
  });
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return {
    threshold,
    precision,
    recall,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
    falsePositiveRate: fp + tn ? fp / (fp + tn) : 0,
    tp,
    fp,
    tn,
    fn,
  };
}

export interface ScoredClip {
  label: 0 | 1;
  durationS: number;
  /** Window probabilities in time order, with their times. */
  windows: { index: number; startS: number; endS: number; probability: number; levelDbfs?: number }[];
  /** For latency: when the scream starts in this clip (s), if known. */
  onsetS?: number;
}

export interface EventMetrics {
  /** Scream clips with at least one confirmed event / scream clips. */
  eventRecall: number;
  screamClips: number;
  /** Confirmed events in non-scream audio per hour of it. */
  falseAlarmsPerHour: number;
  falseAlarms: number;
  nonScreamHours: number;
  /** Median and 90th percentile of detectedAtS - onset over detected scream clips. */
  medianLatencyS: number;
  p90LatencyS: number;
}

/** Runs the real confirmer over each clip's windows and counts events. */
export function eventMetrics(clips: readonly ScoredClip[], options: ConfirmerOptions): EventMetrics {
  let screamClips = 0;
  let detected = 0;
  let falseAlarms = 0;
  let negSeconds = 0;
  const latencies: number[] = [];
  for (const clip of clips) {
    const c = new ScreamConfirmer(options);
    const confirmed: number[] = [];
    for (const w of clip.windows) {
      const u = c.push(w);
      if (u?.type === 'confirmed') confirmed.push(u.event.detectedAtS);
    }
    if (clip.label === 1) {
      screamClips++;
      if (confirmed.length) {
        detected++;
        latencies.push(confirmed[0]! - (clip.onsetS ?? 0));
      }
    } else {
      falseAlarms += confirmed.length;
      negSeconds += clip.durationS;
    }
  }
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    latencies.length
      ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!
      : Number.NaN;
  const hours = negSeconds / 3600;
  return {
    eventRecall: screamClips ? detected / screamClips : Number.NaN,
    screamClips,
    falseAlarmsPerHour: hours > 0 ? falseAlarms / hours : 0,
    falseAlarms,
    nonScreamHours: hours,
    medianLatencyS: q(0.5),
    p90LatencyS: q(0.9),
  };
}
