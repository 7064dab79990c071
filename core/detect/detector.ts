import { type FeatureWindow, WindowFeatureStream } from '../features/window-stream.ts';
import type { ScreamModel } from '../model/scream-model.ts';
import {
  type ConfirmedEvent,
  type ConfirmerOptions,
  type ConfirmerUpdate,
  ScreamConfirmer,
} from './confirmer.ts';

export interface DetectorOptions extends Partial<ConfirmerOptions> {
  /** Windows quieter than this (dBFS) score 0; defaults to the model's gate. */
  levelGateDbfs?: number;
}

export interface DetectedWindow {
  index: number;
  startS: number;
  endS: number;
  probability: number;
  levelDbfs: number;
  features: Float64Array;
}

/** A confirmed event whose windows carry their level and features (for the event message). */
export type DetectedEvent = ConfirmedEvent<DetectedWindow>;
export type DetectorUpdate = NonNullable<ConfirmerUpdate<DetectedWindow>>;

export interface DetectorOutput {
  windows: DetectedWindow[];
  updates: DetectorUpdate[];
}

/**
 * The whole detection path for one audio stream: 16 kHz samples in, scored windows and
 * confirmed/ended events out. Pure computation: the daemon, the CLI, the dashboard's
 * upload analysis and the browser's live mode all run this same class.
 */
export class StreamDetector {
  private current: ConfirmerOptions & { levelGateDbfs: number };
  private readonly stream = new WindowFeatureStream();
  private confirmer: ScreamConfirmer<DetectedWindow>;
  /** Settings (and a model) waiting for the open event to end (see reconfigure, setModel). */
  private pending: (ConfirmerOptions & { levelGateDbfs: number }) | null = null;
  private pendingModel: ScreamModel | null = null;
  private scoring: ScreamModel;

  constructor(model: ScreamModel, options: DetectorOptions = {}) {
    this.scoring = model;
    this.current = resolveOptions(model, options);
    this.confirmer = new ScreamConfirmer<DetectedWindow>(this.current);
  }

  /** The model scoring the windows now. */
  get model(): ScreamModel {
    return this.scoring;
  }

  /**
   * Another model (same feature set: the window stream goes on) with the settings to use with
   * it, while the stream runs (a remote set-model). Like reconfigure: validated now, applied
   * from the next window, or once an open event has ended under the model that confirmed it.
   */
  setModel(model: ScreamModel, options: DetectorOptions = {}): void {
    const next = resolveOptions(model, options);
    const confirmer = new ScreamConfirmer<DetectedWindow>(next);
    if (this.confirmer.isOpen) {
      this.pending = next;
      this.pendingModel = model;
      return;
    }
    this.pending = null;
    this.pendingModel = null;
    this.scoring = model;
    this.current = next;
    this.confirmer = confirmer;
  }

  /** The settings in force (the model's defaults with the caller's overrides). */
  get options(): Readonly<ConfirmerOptions & { levelGateDbfs: number }> {
    return this.current;
  }

  /**
   * New settings while the stream runs (a remote set-detection): validated now (a RangeError
   * leaves everything as it was). They apply from the next window; while an event is open it
   * finishes under the rule that confirmed it, so a threshold change cannot end it early or
   * confirm the same scream a second time.
   */
  reconfigure(options: DetectorOptions): void {
    const next = resolveOptions(this.pendingModel ?? this.scoring, options);
    const confirmer = new ScreamConfirmer<DetectedWindow>(next);
    if (this.confirmer.isOpen) {
      this.pending = next;
      return;
    }
    this.pending = null;
    this.current = next;
    this.confirmer = confirmer;
    if (this.pendingModel) this.scoring = this.pendingModel;
    this.pendingModel = null;
  }

  push(samples16k: Float32Array): DetectorOutput {
    return this.score(this.stream.push(samples16k));
  }

  /** Closes an event still open at the end of the stream. */
  finish(): DetectorUpdate[] {
    const u = this.confirmer.finish();
    return u ? [u] : [];
  }

  private score(windows: FeatureWindow[]): DetectorOutput {
    const out: DetectorOutput = { windows: [], updates: [] };
    if (windows.length === 0) return out;
    const probs = this.scoring.predict(windows.map((w) => w.values));
    windows.forEach((w, i) => {
      const gated = w.levelDbfs < this.options.levelGateDbfs;
      const probability = gated ? 0 : probs[i]!;
      const scored: DetectedWindow = {
        index: w.index,
        startS: w.startS,
        endS: w.endS,
        probability,
        levelDbfs: w.levelDbfs,
        features: w.values,
      };
      out.windows.push(scored);
      const u = this.confirmer.push(scored);
      if (u) out.updates.push(u);
      if (this.pending && !this.confirmer.isOpen) {
        this.current = this.pending;
        this.confirmer = new ScreamConfirmer<DetectedWindow>(this.current);
        this.pending = null;
        // the rest of this batch was scored by the old model; the next push uses the new one
        if (this.pendingModel) this.scoring = this.pendingModel;
        this.pendingModel = null;
      }
    });
    return out;
  }
}

function resolveOptions(
  model: ScreamModel,
  options: DetectorOptions,
): ConfirmerOptions & { levelGateDbfs: number } {
  const { levelGateDbfs, ...confirm } = options;
  return {
    ...model.confirmerOptions(stripUndefined(confirm)),
    levelGateDbfs: levelGateDbfs ?? model.meta.levelGateDbfs,
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export type { ConfirmedEvent };
