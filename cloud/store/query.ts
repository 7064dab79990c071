import { CloudError } from '../errors.ts';
import type { StoredEvent } from './types.ts';

/**
 * Helpers both stores share, so SQLite and MongoDB answer the contract identically.
 * Timestamps are normalised to UTC ISO with milliseconds on write: the sort order and the
 * from/to bounds then mean the same instant whatever offset the sensor sent.
 */
export function normaliseTimestamp(iso: string, field: string, eventId: string): string {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) {
    throw new CloudError(
      'CLOUD_STORE_WRITE_FAILED',
      `event ${eventId}: ${field} ${JSON.stringify(iso)} is not a date`,
    );
  }
  return new Date(ms).toISOString();
}

export function normaliseEvent(event: StoredEvent): StoredEvent {
  const out: StoredEvent = {
    ...event,
    timestamp: normaliseTimestamp(event.timestamp, 'timestamp', event.eventId),
  };
  out.deliveries = [...(event.deliveries ?? [])];
  return out;
}

/** Opaque page cursor: the (timestamp, eventId) of the last event of the previous page. */
export function encodeCursor(event: Pick<StoredEvent, 'timestamp' | 'eventId'>): string {
  return Buffer.from(`${Date.parse(event.timestamp)}|${event.eventId}`).toString('base64url');
}

export function decodeCursor(cursor: string): { ms: number; eventId: string } {
  const [ms, eventId] = Buffer.from(cursor, 'base64url').toString().split('|');
  const n = Number(ms);
  if (!Number.isFinite(n) || !eventId)
    throw new CloudError('STORE_CURSOR_INVALID', `invalid page cursor ${JSON.stringify(cursor)}`);
  return { ms: n, eventId };
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

export function clampLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_LIMIT;
  return Math.max(1, Math.min(MAX_LIMIT, Math.floor(limit)));
}

/** Serialises async read-modify-write per key inside one process. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}
