import { describe, expect, it } from 'vitest';
import { analyzeSamples } from '../../core/detect/analyze.ts';
import { WINDOW_FEATURE_NAMES } from '../../core/features/window-features.ts';
import { DEFAULT_MODEL_PATH, loadModelFile } from '../../core/model/load.ts';
import { ScreamModel } from '../../core/model/scream-model.ts';
import { seededRandom } from '../../core/train/random.ts';
import { synthesizeDemoRecording } from '../../demo/scream-recording.ts';

describe('the shipped model', () => {
  const model = loadModelFile();

  it('loads from models/ with its validated defaults and metrics', () => {
    expect(DEFAULT_MODEL_PATH).toMatch(/models\/screamwatch-forest\.json$/);
    expect(model.version).toMatch(/^\d{4}-\d{2}-\d{2}-[0-9a-f]{8}$/);
    expect(model.meta.featureNames).toEqual(WINDOW_FEATURE_NAMES);
    expect(model.threshold).toBeGreaterThan(0);
    expect(model.threshold).toBeLessThan(1);
    expect(model.meta.confirm.k).toBeLessThanOrEqual(model.meta.confirm.n);
    expect(model.meta.metrics).toHaveProperty('windows.rocAuc');
  });

  it('scores the same audio the same way every time', () => {
    const x = Float32Array.from(
      { length: 16000 * 4 },
      (_, i) => 0.3 * Math.sin((2 * Math.PI * (700 + (i % 8000) / 20) * i) / 16000),
    );
    const a = analyzeSamples(x, model);
    const b = analyzeSamples(x, loadModelFile());
    expect(a).toEqual(b);
    expect(a.windows).toHaveLength(6);
    for (const w of a.windows) expect(w.probability).toBeGreaterThanOrEqual(0);
  });

  it('silence scores zero (level gate) and loads fail with coded errors', () => {
    expect(analyzeSamples(new Float32Array(32000), model).maxProbability).toBe(0);
    expect(() => ScreamModel.fromJSON({ format: 'other' })).toThrow(/not a screamwatch-forest/);
    expect(() => ScreamModel.fromJSON({ ...model.meta, featureNames: ['x'], forest: {} })).toThrow(/retrain/);
  });
});

describe('the shipped model and its short-scream rule', () => {
  const model = loadModelFile();

  it('confirms a 0.7 s scream-like cry in a quiet room, within 1.5 s of its onset', () => {
    const rec = synthesizeDemoRecording({ leadS: 3, screamS: 0.7, tailS: 3, babbleLevel: 0.002, seed: 5 });
    const r = analyzeSamples(rec.samples, model);
    const onset = rec.screams[0]!.startS;
    const hit = r.events.find((e) => e.endS > onset && e.startS < rec.screams[0]!.endS + 0.5);
    expect(hit, JSON.stringify(r.windows)).toBeDefined();
    expect(hit!.detectedAtS - onset).toBeLessThanOrEqual(1.5);
  });

  it('does not confirm a 0.7 s click train', () => {
    const x = new Float32Array(16000 * 7);
    const r0 = seededRandom(3);
    for (let i = 0; i < x.length; i++) x[i] = 0.003 * (r0() * 2 - 1);
    // 0.7 s of sharp clicks every 12 ms (a ratchet, a keyboard, a Geiger counter)
    for (let t = 3 * 16000; t < 3.7 * 16000; t += 192) {
      for (let k = 0; k < 24; k++) x[t + k]! += 0.8 * Math.exp(-k / 4) * (k % 2 ? -1 : 1);
    }
    expect(analyzeSamples(x, model).events).toEqual([]);
  });
});
