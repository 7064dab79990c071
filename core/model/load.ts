import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ModelError, ScreamModel } from './scream-model.ts';

/** The model shipped in models/ (trained by `screamwatch train`). */
export const DEFAULT_MODEL_PATH = fileURLToPath(
  new URL('../../models/screamwatch-forest.json', import.meta.url),
);

export function loadModelFile(path: string = DEFAULT_MODEL_PATH): ScreamModel {
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
  return ScreamModel.fromJSON(json, path);
}
