import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ModelError, ScreamModel } from './scream-model.ts';

/** The model shipped in models/ (trained by `screamwatch train`). */
export const DEFAULT_MODEL_PATH = fileURLToPath(
  new URL('../../models/screamwatch-forest.json', import.meta.url),
);

export function loadModelFile(path: string = DEFAULT_MODEL_PATH): ScreamModel {
  const { json } = readModelFile(path);
  return ScreamModel.fromJSON(json, path);
}

/**
 * A model file's text and parsed JSON, not yet checked as a model (MODEL_NOT_FOUND when it
 * cannot be read, MODEL_INVALID when it is not JSON). For tools that need the file's own
 * fields (size, training record) beside the loaded model.
 */
export function readModelFile(path: string): { text: string; json: unknown } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ModelError(
      'MODEL_NOT_FOUND',
      `cannot read model file ${path}: ${(err as NodeJS.ErrnoException).code}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelError('MODEL_INVALID', `${path}: not JSON (${(err as Error).message})`);
  }
  return { text, json };
}
