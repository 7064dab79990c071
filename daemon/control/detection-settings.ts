import { join } from 'node:path';
import type { Logger } from 'pino';
import { validateConfirmerOptions } from '../../core/detect/confirmer.ts';
import type { ScreamModel } from '../../core/model/scream-model.ts';
import {
  DETECTION_SETTING_KEYS,
  type DetectionOverrides,
  DetectionOverridesSchema,
  type EffectiveDetection,
} from '../../protocol/messages.ts';
import { readJsonFile, writeJsonFileAtomic } from '../../runtime/json-file.ts';
import type { DaemonConfig } from '../config/schema.ts';
import { DaemonError } from '../errors.ts';

type DetectionConfig = DaemonConfig['detection'];

/** What `<stateDir>/detection-overrides.json` holds: the admin's settings and where they came from. */
export interface SavedOverrides {
  overrides: DetectionOverrides;
  commandId: string;
  issuedBy: string;
  savedAt: string;
}

/** The config file's detection section with the remote overrides laid over it. */
export function mergeDetection(config: DetectionConfig, overrides: DetectionOverrides): DetectionConfig {
  const merged = { ...config };
  for (const key of DETECTION_SETTING_KEYS) {
    const value = overrides[key];
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  return merged;
}

/**
 * The settings a detector would run with (model defaults < config < overrides), checked the way
 * the confirmer checks them: throws COMMAND_INVALID naming the problem (k 3 with n 2 from the
 * config file, say) before anything is saved or applied.
 */
export function effectiveDetection(
  model: ScreamModel,
  config: DetectionConfig,
  overrides: DetectionOverrides,
): EffectiveDetection {
  const d = mergeDetection(config, overrides);
  const confirm = model.confirmerOptions({
    ...(d.threshold !== null && { threshold: d.threshold }),
    ...(d.k !== null && { k: d.k }),
    ...(d.n !== null && { n: d.n }),
    ...(d.releaseWindows !== null && { releaseWindows: d.releaseWindows }),
    ...(d.singleWindowThreshold !== null && { singleWindowThreshold: d.singleWindowThreshold }),
  });
  try {
    validateConfirmerOptions(confirm);
  } catch (err) {
    throw new DaemonError('COMMAND_INVALID', (err as Error).message, { problem: (err as Error).message });
  }
  return {
    threshold: confirm.threshold,
    k: confirm.k,
    n: confirm.n,
    levelGateDbfs: d.levelGateDbfs ?? model.meta.levelGateDbfs,
    reportThreshold: d.reportThreshold,
    remote: DETECTION_SETTING_KEYS.filter((k) => overrides[k] !== undefined),
  };
}

/**
 * The remote detection settings, persisted in the state dir: they survive restarts and take
 * precedence over the config file until an admin clears them (set-detection with `{}`).
 */
export class DetectionOverridesFile {
  readonly path: string;

  constructor(
    stateDir: string,
    private readonly logger: Logger,
  ) {
    this.path = join(stateDir, 'detection-overrides.json');
  }

  /** The saved overrides; none when there is no file. A damaged file is logged and ignored. */
  load(): SavedOverrides | null {
    let raw: unknown;
    try {
      raw = readJsonFile(this.path);
    } catch (err) {
      this.corrupt((err as Error).message);
      return null;
    }
    if (raw === undefined) return null;
    const saved = raw as Partial<SavedOverrides>;
    const parsed = DetectionOverridesSchema.safeParse(saved?.overrides);
    if (!parsed.success) {
      this.corrupt(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      return null;
    }
    return {
      overrides: parsed.data,
      commandId: String(saved.commandId ?? ''),
      issuedBy: String(saved.issuedBy ?? ''),
      savedAt: String(saved.savedAt ?? ''),
    };
  }

  /** Throws SETTINGS_WRITE_FAILED (disk full, read-only) with the old file in place. */
  save(saved: SavedOverrides): void {
    try {
      writeJsonFileAtomic(this.path, saved);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new DaemonError(
        'SETTINGS_WRITE_FAILED',
        `cannot save the remote settings to ${this.path} (${reason}); nothing changed`,
        { file: this.path },
      );
    }
  }

  private corrupt(problem: string): void {
    this.logger.error(
      { code: 'SETTINGS_CORRUPT', file: this.path, problem },
      `the remote settings file ${this.path} is unreadable (${problem}); the config file's detection settings apply`,
    );
  }
}
