import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { CommandRecord } from '../control/command-log.ts';
import type { EventChange, EventChanges } from '../store/observed-store.ts';
import type { EventStore, StoredEvent } from '../store/types.ts';
import type { SensorCommands, SensorRegistryView, SensorView } from './types.ts';

/** What the list and the map draw; the per-window detail stays in GET /api/events/:id. */
export type EventSummary = Omit<StoredEvent, 'windows' | 'features'> & { hasWindows: boolean };

export function summary(e: StoredEvent): EventSummary {
  const { windows, features: _features, ...rest } = e;
  return { ...rest, hasWindows: Array.isArray(windows) && windows.length > 0 };
}

export type FeedMessage =
  | { type: 'event'; created: boolean; event: EventSummary }
  | { type: 'sensor'; sensor: SensorView }
  | { type: 'command'; command: CommandRecord };

export interface FeedEntry {
  /** `<epoch>-<seq>`: the SSE id a browser resumes from. */
  id: string;
  seq: number;
  message: FeedMessage;
}

export interface LiveFeedOptions {
  store: EventStore;
  changes: EventChanges | null;
  registry: SensorRegistryView;
  /** Command records as they change (sent, queued, answered): the sensor page follows them live. */
  commands?: SensorCommands | undefined;
  logger: Logger;
  /** Messages kept for resuming (a reconnect further behind than this gets a reset). */
  capacity?: number;
  /** How often the sensor registry is compared with what was last pushed. */
  sensorCheckMs?: number;
}

/**
 * The dashboard's change feed: stored/changed events (from the observed store) and sensor
 * changes (the in-memory registry, compared every second), numbered within this process
 * (`epoch` changes on restart) and kept in a bounded ring so a browser that reconnects with
 * its last id gets exactly what it missed: no gap, no duplicate. Further behind, or from
 * another process, it is told to reload (`reset`).
 */
export class LiveFeed {
  readonly epoch = randomBytes(4).toString('hex');
  private seq = 0;
  private readonly ring: FeedEntry[] = [];
  private readonly listeners = new Set<(e: FeedEntry) => void>();
  private unsubscribe: (() => void) | null = null;
  private unsubscribeCommands: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly sensorKeys = new Map<string, string>();
  private readonly capacity: number;
  /** Event reads in order, so the pushed order is the order the store reported. */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly options: LiveFeedOptions) {
    this.capacity = options.capacity ?? 2000;
  }

  /** The position a client starts from after loading a snapshot through the REST API. */
  cursor(): string {
    return `${this.epoch}-${this.seq}`;
  }

  start(): void {
    this.unsubscribe = this.options.changes?.subscribe((c) => this.onChange(c)) ?? null;
    this.unsubscribeCommands =
      this.options.commands?.subscribe((command) => this.publish({ type: 'command', command })) ?? null;
    for (const s of this.options.registry.list()) this.sensorKeys.set(s.id, JSON.stringify(s));
    this.timer = setInterval(() => this.checkSensors(), this.options.sensorCheckMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.unsubscribeCommands?.();
    this.unsubscribeCommands = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.chain;
    this.listeners.clear();
  }

  listen(fn: (e: FeedEntry) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /**
   * What a client that last saw `lastId` has missed, or 'reset' when that cannot be known
   * (another process's id, or older than the ring).
   */
  since(lastId: string): FeedEntry[] | 'reset' {
    const m = /^([0-9a-f]+)-(\d+)$/.exec(lastId);
    if (!m || m[1] !== this.epoch) return 'reset';
    const after = Number(m[2]);
    if (after > this.seq) return 'reset';
    if (after === this.seq) return [];
    const oldest = this.ring[0]?.seq ?? this.seq + 1;
    if (after < oldest - 1) return 'reset';
    return this.ring.filter((e) => e.seq > after);
  }

  publish(message: FeedMessage): FeedEntry {
    this.seq += 1;
    const entry: FeedEntry = { id: `${this.epoch}-${this.seq}`, seq: this.seq, message };
    this.ring.push(entry);
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
    for (const l of this.listeners) {
      try {
        l(entry);
      } catch (err) {
        this.options.logger.warn({ err }, 'web: live stream listener failed');
      }
    }
    return entry;
  }

  private onChange(c: EventChange): void {
    this.chain = this.chain.then(async () => {
      try {
        const e = await this.options.store.get(c.eventId);
        if (e) this.publish({ type: 'event', created: c.created, event: summary(e) });
      } catch (err) {
        this.options.logger.warn(
          { err, eventId: c.eventId },
          'web: cannot read a changed event for the live stream',
        );
      }
    });
  }

  /** Pushes each sensor whose view changed (status, heartbeat figures, last seen). */
  checkSensors(): void {
    for (const s of this.options.registry.list()) {
      const key = JSON.stringify(s);
      if (this.sensorKeys.get(s.id) === key) continue;
      this.sensorKeys.set(s.id, key);
      this.publish({ type: 'sensor', sensor: s });
    }
  }
}
