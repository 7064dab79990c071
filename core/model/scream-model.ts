import { ScreamwatchError } from '../../protocol/errors.ts';
import type { ConfirmerOptions } from '../detect/confirmer.ts';
import { FEATURE_SET, WINDOW_FEATURE_NAMES } from '../features/window-features.ts';
import { FlatForest } from './flat-forest.ts';

export const MODEL_FORMAT = 'screamwatch-forest/1';

/** What a model file holds besides the forest itself (ml-random-forest's own toJSON). */
export interface ModelFileMeta {
  format: typeof MODEL_FORMAT;
  /** e.g. `2026-11-24-a1b2c3`: date + hash of the forest; reported in every event. */
  version: string;
  featureNames: string[];
  /** The feature computation the forest was trained on (FEATURE_SET). */
  featureSet: string;
  /** Default decision threshold on the window probability, chosen on validation data. */
  threshold: number;
  confirm: Omit<ConfirmerOptions, 'threshold'>;
  /** Windows quieter than this (dBFS) are not scored as screams. */
  levelGateDbfs: number;
  trainedAt: string;
  training: Record<string, unknown>;
  metrics?: Record<string, unknown>;
}

export interface ModelFile extends ModelFileMeta {
  forest: unknown;
}

export class ModelError extends ScreamwatchError {}

/** A loaded forest plus the defaults that were validated with it. */
export class ScreamModel {
  private constructor(
    readonly meta: ModelFileMeta,
    private readonly forest: FlatForest,
  ) {}

  get version(): string {
    return this.meta.version;
  }
  get threshold(): number {
    return this.meta.threshold;
  }
  confirmerOptions(overrides: Partial<ConfirmerOptions> = {}): ConfirmerOptions {
    return { threshold: this.meta.threshold, ...this.meta.confirm, ...overrides };
  }

  static fromJSON(json: unknown, source = 'model'): ScreamModel {
    const file = json as Partial<ModelFile>;
    if (!file || typeof file !== 'object' || file.format !== MODEL_FORMAT) {
      throw new ModelError('MODEL_INVALID', `${source}: not a ${MODEL_FORMAT} model file`);
    }
    const names = file.featureNames ?? [];
    if (
      file.featureSet !== FEATURE_SET ||
      names.length !== WINDOW_FEATURE_NAMES.length ||
      names.some((n, i) => n !== WINDOW_FEATURE_NAMES[i])
    ) {
      throw new ModelError(
        'MODEL_FEATURES_MISMATCH',
        `${source}: trained on different features than this version computes; retrain with \`screamwatch train\``,
      );
    }
    let forest: FlatForest;
    try {
      forest = FlatForest.fromJSON(file.forest);
      if (forest.nFeatures > names.length) {
        throw new Error(`it reads feature ${forest.nFeatures - 1} of ${names.length}`);
      }
    } catch (err) {
      throw new ModelError(
        'MODEL_INVALID',
        `${source}: forest cannot be loaded: ${(err as Error).message}`,
        undefined,
        {
          cause: err,
        },
      );
    }
    const { forest: _forest, ...meta } = file as ModelFile;
    return new ScreamModel(meta, forest);
  }

  /** The model file this was loaded from: the dashboard serves it to the browser's live mode. */
  toJSON(): ModelFile {
    return { ...this.meta, forest: this.forest.toJSON() };
  }

  /** Probability of "scream" for each feature row. */
  predict(rows: readonly Float64Array[]): number[] {
    // The share of trees voting "scream" (class 1), vote for vote what ml-random-forest's
    // predictionValues() gives (test/core/flat-forest.test.ts). Not the library's
    // predictProbability(): in 2.1 its reduce() has no initial value, so the first tree's vote is
    // dropped and its class label leaks in as a 1e-6 offset.
    const out = new Array<number>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = this.forest.voteShare(rows[i]!, 1);
    return out;
  }
}

/**
 * A bare forest (any number of features) for training-time checks, such as the shortcut
 * check's forest on bandwidth and level features.
 */
export function loadBareForest(json: unknown): { predict(rows: readonly Float64Array[]): number[] } {
  const forest = FlatForest.fromJSON(json);
  return { predict: (rows) => rows.map((r) => forest.voteShare(r, 1)) };
}
