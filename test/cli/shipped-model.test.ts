import { describe, expect, it } from 'vitest';
import { analyzeSamples } from '../../core/detect/analyze.ts';
import { WINDOW_FEATURE_NAMES } from '../../core/features/window-features.ts';
import { DEFAULT_MODEL_PATH, loadModelFile } from '../../core/model/load.ts';
import { ScreamModel } from '../../core/model/scream-model.ts';

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
