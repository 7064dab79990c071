import type { ChannelDelivery, ResponseStatus } from './types.ts';

/**
 * An event's `deliveries[]` is a projection of the alert state (one entry per channel and
 * recipient), written by whichever bridge finished an attempt. Writes can arrive out of order
 * (two bridges sharing a MongoDB store: one re-syncs an event from a read taken before the
 * other's send finished), so the merge is monotonic: an entry is replaced only by a newer one.
 */

/**
 * Newer = more attempts (each claim of a job adds one, whichever bridge claims it); at the same
 * attempt count (one bridge's claim and its finish, one clock) the later `updatedAt`.
 */
export function isNewerDelivery(candidate: ChannelDelivery, current: ChannelDelivery): boolean {
  if (candidate.attempts !== current.attempts) return candidate.attempts > current.attempts;
  return Date.parse(candidate.updatedAt) >= Date.parse(current.updatedAt);
}

/**
 * Replaces the delivery for the same channel + recipient when the new one is newer, or appends
 * it. Returns the same array when nothing changed (a stale write).
 */
export function mergeDelivery(deliveries: ChannelDelivery[], delivery: ChannelDelivery): ChannelDelivery[] {
  const i = deliveries.findIndex((d) => d.channel === delivery.channel && d.to === delivery.to);
  if (i === -1) return [...deliveries, delivery];
  if (!isNewerDelivery(delivery, deliveries[i]!)) return deliveries;
  const out = [...deliveries];
  out[i] = delivery;
  return out;
}

/** The event's responseStatus from its recorded deliveries. */
export function summarise(deliveries: readonly ChannelDelivery[]): ResponseStatus {
  if (deliveries.length === 0) return 'none';
  const s = new Set(deliveries.map((d) => d.status));
  if (s.has('pending')) return 'pending';
  const sent = deliveries.filter((d) => d.status === 'sent' || d.status === 'delivered').length;
  if (sent === deliveries.length) return 'alerted';
  if (sent > 0) return 'partial';
  if (s.has('failed')) return 'failed';
  if (s.has('not-configured')) return 'not-configured';
  return 'suppressed';
}
