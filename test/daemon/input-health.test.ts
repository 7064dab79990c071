import { describe, expect, it } from 'vitest';
import { DaemonConfigSchema } from '../../daemon/config/schema.ts';
import {
  DEFAULT_INPUT_HEALTH,
  type InputHealthChange,
  InputHealthClassifier,
  type InputHealthThresholds,
} from '../../daemon/health/input-health.ts';

const RATE = 16_000;
const T: InputHealthThresholds = {
  ...DEFAULT_INPUT_HEALTH,
  silentAfterS: 5,
  stuckAfterS: 3,
  clipAfterS: 2,
  noDeviceAfterS: 2,
  recoverAfterS: 1,
};

/** Feeds `seconds` of audio from `gen(sampleIndex)` in 100 ms chunks, the clock following the audio. */
function feed(
  c: InputHealthClassifier,
  clock: { ms: number },
  seconds: number,
  gen: (i: number) => number,
): InputHealthChange[] {
  const changes: InputHealthChange[] = [];
  const chunk = RATE / 10;
  for (let k = 0; k < seconds * 10; k++) {
    const s = new Float32Array(chunk);
    for (let i = 0; i < chunk; i++) s[i] = gen(k * chunk + i);
    clock.ms += 100;
    const ch = c.push(s, clock.ms);
    if (ch) changes.push(ch);
  }
  return changes;
}

/** Room-like noise at about -40 dBFS (deterministic). */
function room(): () => number {
  let x = 12345;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return (x / 0x7fffffff - 0.5) * 0.03;
  };
}
const zero = () => 0;
const constant = () => 0.25;
const square = (i: number) => (Math.floor(i / 40) % 2 === 0 ? 1 : -1);

describe('InputHealthClassifier', () => {
  it('a room stays ok', () => {
    const clock = { ms: 0 };
    const c = new InputHealthClassifier(T, 0);
    expect(feed(c, clock, 20, room())).toEqual([]);
    expect(c.health).toBe('ok');
  });

  it('digital silence is silent after silentAfterS, with since = when it began; sound brings ok back after recoverAfterS', () => {
    const clock = { ms: 0 };
    const c = new InputHealthClassifier(T, 0);
    feed(c, clock, 2, room());
    const changes = feed(c, clock, 4.9, zero);
    expect(changes).toEqual([]); // not yet: 4.9 s < 5 s
    const more = feed(c, clock, 1, zero);
    expect(more).toEqual([{ health: 'silent', sinceMs: 2000, previous: 'ok' }]);
    const back = feed(c, clock, 2, room());
    expect(back).toHaveLength(1);
    expect(back[0]).toMatchObject({ health: 'ok', previous: 'silent' });
    // recovery waits recoverAfterS of clean audio (1 s), judged in 0.5 s blocks
    expect(back[0]!.sinceMs).toBeGreaterThanOrEqual(6900 + 1000);
    expect(back[0]!.sinceMs).toBeLessThanOrEqual(6900 + 1600);
  });

  it('a quiet room above the floor is not silent; below the floor it is', () => {
    const clock = { ms: 0 };
    const c = new InputHealthClassifier({ ...T, silentFloorDbfs: -30 }, 0);
    expect(feed(c, clock, 6, room()).map((x) => x.health)).toEqual(['silent']);
  });

  it('a non-zero constant is stuck (not silent, not clipping), even at full scale', () => {
    const clock = { ms: 0 };
    const c = new InputHealthClassifier(T, 0);
    expect(feed(c, clock, 4, constant).map((x) => x.health)).toEqual(['stuck']);
    const c2 = new InputHealthClassifier(T, 0);
    expect(feed(c2, { ms: 0 }, 4, () => 1).map((x) => x.health)).toEqual(['stuck']);
  });

  it('a clipped square wave is clipping after clipAfterS; occasional peaks are not', () => {
    const clock = { ms: 0 };
    const c = new InputHealthClassifier(T, 0);
    expect(feed(c, clock, 1.5, square)).toEqual([]);
    expect(feed(c, clock, 1, square).map((x) => x.health)).toEqual(['clipping']);
    const peaks = new InputHealthClassifier(T, 0);
    const r = room();
    // one full-scale sample in 1000: 0.1% < clipShare 5%
    expect(feed(peaks, { ms: 0 }, 10, (i) => (i % 1000 === 0 ? 1 : r()))).toEqual([]);
  });

  it('a silent stretch interrupted by sound starts over', () => {
    const clock = { ms: 0 };
    const c = new InputHealthClassifier(T, 0);
    feed(c, clock, 4, zero);
    feed(c, clock, 0.5, room());
    expect(feed(c, clock, 4, zero)).toEqual([]);
    expect(c.health).toBe('ok');
  });

  it('one state gives way to another without passing through ok', () => {
    const clock = { ms: 0 };
    const c = new InputHealthClassifier(T, 0);
    feed(c, clock, 4, constant);
    expect(c.health).toBe('stuck');
    const ch = feed(c, clock, 6, zero);
    expect(ch.map((x) => [x.previous, x.health])).toEqual([['stuck', 'silent']]);
  });

  it('no-device after noDeviceAfterS of failed opens (ticks without audio); audio makes it ok at once', () => {
    const c = new InputHealthClassifier(T, 0);
    expect(c.deviceFailed(1000)).toBeNull();
    expect(c.tick(2500)).toBeNull();
    expect(c.tick(3000)).toEqual({ health: 'no-device', sinceMs: 1000, previous: 'ok' });
    expect(c.deviceFailed(4000)).toBeNull(); // still no-device, no new change
    const s = new Float32Array(1600).fill(0.01);
    expect(c.push(s, 5000)).toEqual({ health: 'ok', sinceMs: 5000, previous: 'no-device' });
  });

  it('a short dropout that reopens within noDeviceAfterS is not reported', () => {
    const c = new InputHealthClassifier(T, 0);
    c.deviceFailed(1000);
    c.push(new Float32Array(1600).fill(0.01), 1500);
    expect(c.tick(10_000)).toBeNull();
    expect(c.health).toBe('ok');
  });

  it('the config defaults are the documented ones', () => {
    const d = DaemonConfigSchema.parse({ sensorId: 'x' }).health;
    expect(d).toEqual(DEFAULT_INPUT_HEALTH);
    expect(d.silentAfterS).toBe(300);
  });
});
