import { describe, expect, it } from 'vitest';
import type { FeatureWindow } from '../../core/features/window-stream.ts';
import { loadBareForest } from '../../core/model/scream-model.ts';
import { type ClipFeatures, DEFAULT_MINING, fitForest, NO_MINING } from '../../core/train/pipeline.ts';
import { seededRandom } from '../../core/train/random.ts';

/** Two-feature rows: screams near (1, 1), most non-screams near (-1, -1), a few hard ones near the screams. */
function cloud(n: number, cx: number, cy: number, sd: number, random: () => number): Float64Array[] {
  const gauss = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  return Array.from({ length: n }, () => Float64Array.of(cx + sd * gauss(), cy + sd * gauss()));
}
const clipOf = (clip: number, label: 0 | 1, source: string, rows: Float64Array[]): ClipFeatures => ({
  clip,
  label,
  source,
  durationS: rows.length * 0.512,
  windows: rows.map(
    (values, index): FeatureWindow => ({
      values,
      levelDbfs: -20,
      index,
      startS: index * 0.512,
      endS: index * 0.512 + 1.024,
    }),
  ),
});
const forest = { nEstimators: 30, maxDepth: 6, minSamplesSplit: 8, minSamplesLeaf: 4, seed: 2 };

describe('hard-negative mining', () => {
  const r = seededRandom(11);
  const parts = [
    clipOf(0, 1, 'screams-a', cloud(150, 1, 1, 0.35, r)),
    clipOf(1, 1, 'screams-b', cloud(150, 1, 1, 0.35, r)),
    // one source: 1,500 easy non-screams and 40 that sit among the screams' edge
    clipOf(2, 0, 'household', [...cloud(1500, -1, -1, 0.4, r), ...cloud(40, 0.45, 0.45, 0.08, r)]),
    clipOf(3, 0, 'street', cloud(600, -1.2, -0.8, 0.4, r)),
  ];
  const hardProbe = cloud(200, 0.45, 0.45, 0.08, seededRandom(12));
  const meanScore = (json: unknown) => {
    const p = loadBareForest(json).predict(hardProbe);
    return p.reduce((a, b) => a + b, 0) / p.length;
  };

  it('teaches the forest the non-screams it would call screams', () => {
    const rounds: { round: number; firing: number; added: number }[] = [];
    const mined = meanScore(
      fitForest(parts, forest, undefined, { ...DEFAULT_MINING, onRound: (x) => rounds.push(x) }),
    );
    const plain = meanScore(fitForest(parts, forest, undefined, NO_MINING));
    expect(rounds).toHaveLength(1);
    expect(rounds[0]!.added).toBe(rounds[0]!.firing);
    expect(rounds[0]!.firing).toBeGreaterThan(10);
    expect(plain).toBeGreaterThan(0.5);
    expect(mined).toBeLessThan(plain - 0.2);
  });

  it('repeats while the out-of-bag false alarms fall, and stops when they do not', () => {
    const rounds: { round: number; firing: number; added: number }[] = [];
    fitForest(parts, forest, undefined, { ...DEFAULT_MINING, rounds: 6, onRound: (x) => rounds.push(x) });
    expect(rounds.length).toBeGreaterThanOrEqual(2);
    expect(rounds.length).toBeLessThan(6);
    // every round but the last cut the firing rows by at least a tenth
    for (let i = 1; i < rounds.length - 1; i++)
      expect(rounds[i]!.firing).toBeLessThanOrEqual(rounds[i - 1]!.firing * 0.9);
    const last = rounds.at(-1)!;
    expect(last.added === 0 || last.firing > rounds.at(-2)!.firing * 0.9).toBe(true);
  });
});
