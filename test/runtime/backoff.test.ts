import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../runtime/backoff.ts';

describe('backoffDelay (daemon reconnects, microphone retries, alert retries)', () => {
  const policy = { initialDelayMs: 1000, maxDelayMs: 5000, multiplier: 2 };

  it('grows exponentially from initialDelayMs, capped at maxDelayMs, with +-20 % jitter', () => {
    expect([0, 1, 2, 3, 4].map((n) => backoffDelay(policy, n, () => 0))).toEqual([
      800, 1600, 3200, 4000, 4000,
    ]);
    expect([0, 1, 2, 3, 4].map((n) => backoffDelay(policy, n, () => 1))).toEqual([
      1200, 2400, 4800, 6000, 6000,
    ]);
    expect(backoffDelay(policy, 1, () => 0.5)).toBe(2000);
  });

  it('jitters by Math.random by default, within the band', () => {
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(policy, 2);
      expect(d).toBeGreaterThanOrEqual(3200);
      expect(d).toBeLessThanOrEqual(4800);
    }
  });
});
