/** `{initialDelayMs, maxDelayMs, multiplier}`: the retry shape of every config here. */
export interface RetryPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
}

/**
 * Delay before retry `attempt` (0-based): initialDelayMs * multiplier^attempt, capped at
 * maxDelayMs, with +-20% jitter so a fleet (or a queue of alerts) does not retry in lockstep.
 * The one backoff of the daemon (microphone, MQTT reconnect) and the bridge (alert retries).
 */
export function backoffDelay(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** attempt);
  return Math.round(base * (0.8 + 0.4 * random()));
}
