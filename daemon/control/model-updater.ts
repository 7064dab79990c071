import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { StreamDetector } from '../../core/detect/detector.ts';
import { FEATURE_SET } from '../../core/features/window-features.ts';
import { WindowFeatureStream } from '../../core/features/window-stream.ts';
import { ScreamModel } from '../../core/model/scream-model.ts';
import { ScreamwatchError } from '../../protocol/errors.ts';
import type { ModelRef, ModelRollback } from '../../protocol/messages.ts';
import { readJsonFile, writeFileAtomic, writeJsonFileAtomic } from '../../runtime/json-file.ts';
import type { Clock } from '../clock.ts';
import { DaemonError } from '../errors.ts';

/** One model file the sensor keeps in `<stateDir>/models/`. */
export interface ModelSlot {
  version: string;
  file: string;
  /** Of the file as downloaded; null for the model the config file named (copied at the first swap). */
  sha256: string | null;
}

/** `<stateDir>/model-state.json`: which model runs, which one to go back to, and the trial. */
export interface ModelState {
  /** null: the model the config file names (after a rollback that found no previous file). */
  current: ModelSlot | null;
  previous: ModelSlot | null;
  swappedAt: string;
  /** `running` until the new model has run control.modelTrialS without a restart. */
  trial: 'running' | 'passed';
  /** The last automatic rollback, reported in the status until the next swap. */
  rollback?: ModelRollback;
}

export interface ModelUpdaterOptions {
  stateDir: string;
  /** control.modelTrialS */
  trialS: number;
  /** control.modelDownloadTimeoutS, in ms */
  downloadTimeoutMs: number;
  clock: Clock;
  logger: Logger;
  /** The HTTP client (global fetch by default). */
  fetch?: typeof fetch;
}

/** Sample rate of the detection core. */
const RATE = 16_000;

/**
 * The built-in self-test signal: 2 s of a gliding 900-1500 Hz tone with harmonics over noise,
 * from a fixed-seed generator, so every sensor scores the same samples. It is not a scream
 * test (a model need not call it one): it checks that the model runs, gives probabilities in
 * [0, 1], and gives the same ones twice.
 */
export function selfTestSignal(): Float32Array {
  const n = 2 * RATE;
  const out = new Float32Array(n);
  let seed = 0x5eed;
  let phase = 0;
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    const noise = seed / 0xffffffff - 0.5;
    const t = i / RATE;
    phase += (2 * Math.PI * (900 + 300 * t)) / RATE;
    out[i] = 0.25 * Math.sin(phase) + 0.08 * Math.sin(2 * phase) + 0.1 * noise;
  }
  return out;
}

/** Runs the self-test signal through `model` twice; throws MODEL_SELF_TEST_FAILED naming the problem. */
export function selfTest(model: ScreamModel): number[] {
  const fail = (problem: string) =>
    new DaemonError('MODEL_SELF_TEST_FAILED', `model ${model.version} failed the self-test: ${problem}`, {
      version: model.version,
      problem,
    });
  const run = (): number[] => {
    const signal = selfTestSignal();
    // the forest's raw scores (a level gate could hide a NaN) ...
    const raw = model.predict(new WindowFeatureStream().push(signal).map((w) => w.values));
    // ... and the whole detection path with the model's own confirmation settings
    const detector = new StreamDetector(model);
    const scored = detector.push(signal).windows.map((w) => w.probability);
    detector.finish();
    return [...raw, ...scored];
  };
  let first: number[];
  let second: number[];
  try {
    first = run();
    second = run();
  } catch (err) {
    throw fail((err as Error).message);
  }
  if (first.length === 0) throw fail('no window was scored');
  const bad = first.find((p) => !Number.isFinite(p) || p < 0 || p > 1);
  if (bad !== undefined) throw fail(`a window scored ${bad}, not a probability`);
  if (first.length !== second.length || first.some((p, i) => p !== second[i]))
    throw fail('two runs over the same samples gave different scores');
  return first;
}

const safeName = (version: string) => version.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100);

/**
 * The sensor's end of a model rollout (set-model). I/O stays here: the HTTP download, the state
 * dir. What is checked, in order: the feature set (before downloading anything), the size (the
 * command's `size`; reading stops past it), the sha256, that the file loads as a model of this
 * version, and the self-test. Only then are files written: the new model to
 * `<stateDir>/models/<version>.json`, the running one kept beside it, and model-state.json
 * replaced atomically. A refusal at any step changes nothing.
 *
 * Rollback: a restart within control.modelTrialS of a swap (a crash loop under the new model,
 * or a restart by hand: the sensor cannot tell them apart) or a model that no longer loads at
 * start goes back to the previous model (MODEL_ROLLED_BACK, logged and in the status).
 */
export class ModelUpdater {
  readonly stateFile: string;
  readonly modelsDir: string;
  /** The slot running now; null: the model the config file names. */
  current: ModelSlot | null = null;
  /** The last automatic rollback (since the last swap). */
  rollback: ModelRollback | null = null;
  /** startupModel() rolled back just now (the daemon's next command result says so). */
  rolledBackAtStart = false;
  private abort = new AbortController();
  private trialTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: ModelUpdaterOptions) {
    this.stateFile = join(options.stateDir, 'model-state.json');
    this.modelsDir = join(options.stateDir, 'models');
  }

  /**
   * The model to start with: the one model-state.json names (it takes precedence over
   * detection.modelPath), the previous one when the trial was cut short by this restart or the
   * current one does not load, and `fallback()` (the config file's) when there is no state.
   */
  startupModel(fallback: () => ScreamModel): { model: ScreamModel; source: string } {
    const state = this.readState();
    if (!state) return { model: fallback(), source: 'config' };
    if (state.rollback) this.rollback = state.rollback;
    const current = state.current;
    if (!current) return { model: fallback(), source: 'config' };
    if (state.trial === 'running') {
      const elapsedS = (this.options.clock.now() - Date.parse(state.swappedAt)) / 1000;
      if (elapsedS < this.options.trialS) {
        return this.rollBack(
          state,
          current,
          `restarted ${Math.max(0, Math.round(elapsedS))} s after the swap, within control.modelTrialS (${this.options.trialS} s)`,
          fallback,
        );
      }
      // stopped and started again later than the trial: it ran its trial without a crash loop
      state.trial = 'passed';
      this.saveState(state, false);
    }
    try {
      const model = this.loadSlot(current);
      this.current = current;
      return { model, source: current.file };
    } catch (err) {
      return this.rollBack(
        state,
        current,
        `model ${current.version} does not load: ${(err as Error).message}`,
        fallback,
      );
    }
  }

  /**
   * Downloads and checks `ref`; resolves with the loaded, self-tested model and the file's bytes.
   * Throws a coded error (MODEL_FEATURES_MISMATCH, MODEL_DOWNLOAD_FAILED, MODEL_TOO_LARGE,
   * MODEL_HASH_MISMATCH, MODEL_INVALID, MODEL_SELF_TEST_FAILED); nothing is written.
   */
  async fetchAndVerify(ref: ModelRef): Promise<{ model: ScreamModel; bytes: Buffer }> {
    if (ref.featureSet !== FEATURE_SET) {
      throw new DaemonError(
        'MODEL_FEATURES_MISMATCH',
        `model ${ref.version} needs features "${ref.featureSet}"; this daemon computes "${FEATURE_SET}"`,
      );
    }
    const bytes = await this.download(ref);
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== ref.sha256) {
      throw new DaemonError(
        'MODEL_HASH_MISMATCH',
        `the downloaded model has sha256 ${actual}, not ${ref.sha256}; nothing changed`,
        { expected: ref.sha256, actual },
      );
    }
    let model: ScreamModel;
    try {
      model = ScreamModel.fromJSON(JSON.parse(bytes.toString('utf8')), `model ${ref.version}`);
    } catch (err) {
      const code = err instanceof ScreamwatchError ? err.code : 'MODEL_INVALID';
      throw new DaemonError(
        code === 'MODEL_FEATURES_MISMATCH' ? code : 'MODEL_INVALID',
        (err as Error).message,
      );
    }
    if (model.version !== ref.version) {
      throw new DaemonError(
        'MODEL_INVALID',
        `the file is model ${model.version}, the command announced ${ref.version}`,
      );
    }
    selfTest(model);
    return { model, bytes };
  }

  private async download(ref: ModelRef): Promise<Buffer> {
    const fetchFn = this.options.fetch ?? fetch;
    // our own timer, cleared at the end (AbortSignal.timeout's would outlive the download)
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.options.downloadTimeoutMs);
    try {
      return await this.fetchBody(ref, fetchFn, AbortSignal.any([this.abort.signal, timeout.signal]));
    } finally {
      clearTimeout(timer);
    }
  }

  private async fetchBody(ref: ModelRef, fetchFn: typeof fetch, signal: AbortSignal): Promise<Buffer> {
    const failed = (problem: string) =>
      new DaemonError('MODEL_DOWNLOAD_FAILED', `cannot download model ${ref.version}: ${problem}`, {
        problem,
      });
    const tooLarge = () =>
      new DaemonError(
        'MODEL_TOO_LARGE',
        `the download of model ${ref.version} is longer than the announced ${ref.size} bytes; stopped`,
        { size: ref.size },
      );
    let res: Response;
    try {
      res = await fetchFn(ref.url, { signal, redirect: 'error' });
    } catch (err) {
      throw failed(
        signal.aborted
          ? 'timed out or stopped'
          : (((err as Error).cause as Error)?.message ?? (err as Error).message),
      );
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => {});
      throw failed(`HTTP ${res.status}`);
    }
    const length = Number(res.headers.get('content-length'));
    if (Number.isFinite(length) && length > ref.size) {
      await res.body.cancel().catch(() => {});
      throw tooLarge();
    }
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      // bounded: at most ref.size bytes are kept, and the signal ends a stalled body
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        if (total > ref.size) {
          await reader.cancel().catch(() => {});
          throw tooLarge();
        }
        chunks.push(value);
      }
    } catch (err) {
      if (err instanceof DaemonError) throw err;
      throw failed(signal.aborted ? 'timed out or stopped while reading' : (err as Error).message);
    }
    return Buffer.concat(chunks);
  }

  /**
   * Writes the checked model and the new state (atomically), keeping `running` as the previous
   * model; starts the trial. Throws MODEL_STATE_WRITE_FAILED with the old state in place.
   */
  install(ref: ModelRef, bytes: Buffer, running: ScreamModel): ModelState {
    const now = new Date(this.options.clock.now()).toISOString();
    let state: ModelState;
    try {
      mkdirSync(this.modelsDir, { recursive: true });
      const file = join(this.modelsDir, `${safeName(ref.version)}.json`);
      writeFileAtomic(file, bytes);
      let previous = this.current;
      if (!previous || previous.version !== running.version) {
        // the model the config file named: a copy, so a rollback does not depend on that path
        const prevFile = join(this.modelsDir, `${safeName(running.version)}.json`);
        if (!existsSync(prevFile)) writeJsonFileAtomic(prevFile, running.toJSON());
        previous = { version: running.version, file: prevFile, sha256: null };
      }
      state = {
        current: { version: ref.version, file, sha256: ref.sha256 },
        previous,
        swappedAt: now,
        trial: this.options.trialS > 0 ? 'running' : 'passed',
      };
      writeJsonFileAtomic(this.stateFile, state);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new DaemonError(
        'MODEL_STATE_WRITE_FAILED',
        `cannot write the model to ${this.options.stateDir} (${reason}); nothing changed`,
        { file: this.stateFile },
      );
    }
    this.current = state.current;
    this.rollback = null;
    this.startTrial(state);
    return state;
  }

  /** The trial ends after control.modelTrialS of running: a restart after that keeps the model. */
  private startTrial(state: ModelState): void {
    if (this.trialTimer) clearTimeout(this.trialTimer);
    this.trialTimer = null;
    if (state.trial !== 'running') return;
    this.trialTimer = setTimeout(() => {
      this.trialTimer = null;
      state.trial = 'passed';
      this.saveState(state, true);
      this.options.logger.info(
        { modelVersion: state.current?.version, trialS: this.options.trialS },
        'model trial over: the new model stays after a restart',
      );
    }, this.options.trialS * 1000);
    this.trialTimer.unref();
  }

  /** The trial state as it is on disk (tests, diagnostics). */
  readState(): ModelState | null {
    let raw: unknown;
    try {
      raw = readJsonFile(this.stateFile);
    } catch (err) {
      this.options.logger.error(
        { code: 'SETTINGS_CORRUPT', file: this.stateFile, err: (err as Error).message },
        'the model state file is unreadable; the config file names the model',
      );
      return null;
    }
    if (raw === undefined) return null;
    const s = raw as Partial<ModelState>;
    const slot = (x: unknown): x is ModelSlot =>
      !!x && typeof (x as ModelSlot).version === 'string' && typeof (x as ModelSlot).file === 'string';
    if (
      (s.current !== null && !slot(s.current)) ||
      (s.previous !== null && !slot(s.previous)) ||
      typeof s.swappedAt !== 'string'
    ) {
      this.options.logger.error(
        { code: 'SETTINGS_CORRUPT', file: this.stateFile },
        'the model state file is not what this daemon writes; the config file names the model',
      );
      return null;
    }
    return {
      current: s.current ?? null,
      previous: s.previous ?? null,
      swappedAt: s.swappedAt,
      trial: s.trial === 'running' ? 'running' : 'passed',
      ...(s.rollback && { rollback: s.rollback }),
    };
  }

  private loadSlot(slot: ModelSlot): ScreamModel {
    const bytes = readFileSync(slot.file);
    if (slot.sha256) {
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== slot.sha256) throw new Error(`${slot.file} has changed (sha256 ${actual})`);
    }
    const model = ScreamModel.fromJSON(JSON.parse(bytes.toString('utf8')), slot.file);
    if (model.version !== slot.version) throw new Error(`${slot.file} is model ${model.version}`);
    return model;
  }

  private rollBack(
    state: ModelState,
    failed: ModelSlot,
    reason: string,
    fallback: () => ScreamModel,
  ): { model: ScreamModel; source: string } {
    const { logger } = this.options;
    const at = new Date(this.options.clock.now()).toISOString();
    let model: ScreamModel | null = null;
    let source = 'config';
    if (state.previous) {
      try {
        model = this.loadSlot(state.previous);
        source = state.previous.file;
      } catch (err) {
        logger.error(
          { code: 'MODEL_INVALID', file: state.previous.file, err: (err as Error).message },
          'the previous model does not load either; the config file names the model',
        );
      }
    }
    model ??= fallback();
    const rollback: ModelRollback = {
      from: failed.version.slice(0, 100),
      to: model.version.slice(0, 100),
      at,
      reason: reason.slice(0, 500),
    };
    this.rollback = rollback;
    this.rolledBackAtStart = true;
    this.current = source === 'config' ? null : state.previous;
    logger.error(
      { code: 'MODEL_ROLLED_BACK', from: rollback.from, to: rollback.to, reason },
      `model ${rollback.from} rolled back to ${rollback.to}: ${reason}`,
    );
    // the failed model is not run again at the next start (its file stays, for a look)
    this.saveState(
      { current: this.current, previous: null, swappedAt: state.swappedAt, trial: 'passed', rollback },
      true,
    );
    return { model, source };
  }

  private saveState(state: ModelState, log: boolean): void {
    try {
      writeJsonFileAtomic(this.stateFile, state);
    } catch (err) {
      if (!log) return;
      this.options.logger.error(
        { code: 'MODEL_STATE_WRITE_FAILED', file: this.stateFile, err: (err as Error).message },
        'cannot write the model state; the next start decides again from the old one',
      );
    }
  }

  /** Ends a download in progress and the trial timer (the state on disk stays as it is). */
  stop(): void {
    this.abort.abort();
    this.abort = new AbortController();
    if (this.trialTimer) clearTimeout(this.trialTimer);
    this.trialTimer = null;
  }
}
