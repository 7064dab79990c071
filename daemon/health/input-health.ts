import type { InputHealth } from '../../protocol/messages.ts';

/**
 * Classifies the microphone's input from the samples themselves, so a sensor whose mic died
 * says so instead of heartbeating "online" with -200 dBFS (issue 12). Pure: samples and the
 * caller's clock in, a state out; no timers, no I/O (the app feeds it and publishes changes).
 *
 *   silent     RMS below `silentFloorDbfs` (digital silence included) for `silentAfterS`
 *   stuck      every sample identical (a non-zero constant: DC, a wedged ADC) for `stuckAfterS`
 *   clipping   at least `clipShare` of the samples at full scale for `clipAfterS`
 *   no-device  the device cannot be opened for `noDeviceAfterS` (reported by the capture)
 *
 * A degraded state clears once no condition has been seen for `recoverAfterS`, so a
 * marginal room does not flap between states (each change is a retained status and maybe
 * an alert).
 */
export interface InputHealthThresholds {
  silentAfterS: number;
  silentFloorDbfs: number;
  stuckAfterS: number;
  clipAfterS: number;
  /** Share (0..1) of samples at full scale in a block for the block to count as clipping. */
  clipShare: number;
  noDeviceAfterS: number;
  recoverAfterS: number;
}

export const DEFAULT_INPUT_HEALTH: InputHealthThresholds = {
  silentAfterS: 300,
  silentFloorDbfs: -90,
  stuckAfterS: 30,
  clipAfterS: 10,
  clipShare: 0.05,
  noDeviceAfterS: 5,
  recoverAfterS: 10,
};

export interface InputHealthChange {
  health: InputHealth;
  /** When the condition began (ms, caller's clock): the retained status's `since`. */
  sinceMs: number;
  previous: InputHealth;
}

type AudioCondition = 'stuck' | 'silent' | 'clipping';
/** Most specific first: a constant zero is silence, a constant non-zero is stuck. */
const PRIORITY: AudioCondition[] = ['stuck', 'silent', 'clipping'];

/** Samples per judged block (0.5 s at 16 kHz): short enough to react, long enough for a share. */
const BLOCK = 8000;
/** |x| at or above this is full scale for 16-bit input (32767 / 32768). */
const FULL_SCALE = 32767 / 32768;
/** Identical within this (one 16-bit step) counts as the same sample value. */
const SAME = 1.5 / 32768;

export class InputHealthClassifier {
  private state: InputHealth = 'ok';
  private sinceMs: number;
  /** Start of the current run of flagged blocks per condition (null: last block was clean). */
  private readonly runStart: Record<AudioCondition, number | null> = {
    stuck: null,
    silent: null,
    clipping: null,
  };
  /** Last time the current degraded state's condition was seen (for recovery). */
  private lastSeenMs = 0;
  private deviceFailingSince: number | null = null;
  // the block being accumulated
  private n = 0;
  private sumSq = 0;
  private min = Number.POSITIVE_INFINITY;
  private max = Number.NEGATIVE_INFINITY;
  private clipped = 0;
  private blockStartMs: number | null = null;

  constructor(
    private readonly t: InputHealthThresholds = DEFAULT_INPUT_HEALTH,
    startMs = 0,
  ) {
    this.sinceMs = startMs;
  }

  get health(): InputHealth {
    return this.state;
  }

  get since(): number {
    return this.sinceMs;
  }

  /** Audio arrived (nowMs: when this chunk was received). Returns a change or null. */
  push(samples: Float32Array, nowMs: number): InputHealthChange | null {
    let change: InputHealthChange | null = null;
    if (this.deviceFailingSince !== null || this.state === 'no-device') {
      this.deviceFailingSince = null;
      if (this.state === 'no-device') change = this.set('ok', nowMs);
    }
    let i = 0;
    while (i < samples.length) {
      // nowMs is when the chunk arrived, i.e. the time of its last sample (16 samples per ms)
      this.blockStartMs ??= nowMs - (samples.length - i) / 16;
      const take = Math.min(BLOCK - this.n, samples.length - i);
      for (let j = i; j < i + take; j++) {
        const x = samples[j]!;
        this.sumSq += x * x;
        if (x < this.min) this.min = x;
        if (x > this.max) this.max = x;
        if (x >= FULL_SCALE || x <= -FULL_SCALE) this.clipped++;
      }
      this.n += take;
      i += take;
      if (this.n === BLOCK) change = this.judgeBlock(nowMs) ?? change;
    }
    return change;
  }

  /** The capture could not open the device (or lost it); `no-device` after noDeviceAfterS. */
  deviceFailed(nowMs: number): InputHealthChange | null {
    this.deviceFailingSince ??= nowMs;
    this.resetBlock();
    return this.tick(nowMs);
  }

  /** Time passes without audio (a timer in the app): only no-device depends on it. */
  tick(nowMs: number): InputHealthChange | null {
    const since = this.deviceFailingSince;
    if (since === null || this.state === 'no-device') return null;
    if (nowMs - since < this.t.noDeviceAfterS * 1000) return null;
    for (const c of PRIORITY) this.runStart[c] = null;
    return this.set('no-device', since);
  }

  private resetBlock(): void {
    this.n = 0;
    this.sumSq = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = Number.NEGATIVE_INFINITY;
    this.clipped = 0;
    this.blockStartMs = null;
  }

  private judgeBlock(nowMs: number): InputHealthChange | null {
    const t = this.t;
    const startMs = this.blockStartMs ?? nowMs;
    const rmsDbfs = 10 * Math.log10(this.sumSq / this.n + 1e-30);
    const flags: Record<AudioCondition, boolean> = {
      silent: rmsDbfs < t.silentFloorDbfs,
      stuck: rmsDbfs >= t.silentFloorDbfs && this.max - this.min <= SAME,
      clipping: this.clipped / this.n >= t.clipShare,
    };
    if (flags.stuck) flags.clipping = false; // a constant at full scale is stuck, not clipping
    this.resetBlock();
    const afterMs: Record<AudioCondition, number> = {
      stuck: t.stuckAfterS * 1000,
      silent: t.silentAfterS * 1000,
      clipping: t.clipAfterS * 1000,
    };
    // A block counts from its start: a run of k blocks has lasted until this block's end.
    for (const c of PRIORITY) this.runStart[c] = flags[c] ? (this.runStart[c] ?? startMs) : null;
    const due = PRIORITY.find((c) => {
      const s = this.runStart[c];
      return s !== null && nowMs - s >= afterMs[c];
    });
    // Any sign of a deaf input holds a degraded state (stuck turning into silence must not
    // pass through ok on the way).
    if (this.state !== 'ok' && PRIORITY.some((c) => flags[c])) this.lastSeenMs = nowMs;
    if (due && due !== this.state) {
      this.lastSeenMs = nowMs;
      return this.set(due, this.runStart[due]!);
    }
    if (!due && this.state !== 'ok' && nowMs - this.lastSeenMs >= t.recoverAfterS * 1000) {
      return this.set('ok', nowMs);
    }
    return null;
  }

  private set(health: InputHealth, sinceMs: number): InputHealthChange {
    const previous = this.state;
    this.state = health;
    this.sinceMs = sinceMs;
    return { health, sinceMs, previous };
  }
}
