import type { Logger } from 'pino';
import type { AlertStateStore } from '../alerts/alert-state.ts';
import type { CloudConfig } from '../config/schema.ts';
import type { EventStore, RetentionCutoffs } from './types.ts';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

export interface RetentionOptions {
  config: CloudConfig['store'];
  store: EventStore;
  alerts: AlertStateStore;
  logger: Logger;
  /** The bridge's clock (the cutoffs are computed from it; the timers run on real time). */
  clock: () => Date;
  /** The first purge after start (default 60 s: out of the way of the start itself). */
  firstRunMs?: number;
  /** Between purges (default one day); after a failed one, an hour. */
  everyMs?: number;
  /** Events per batch (default 500): one batch is one short write, ingest goes on between them. */
  batch?: number;
}

export interface RetentionRun {
  events: number;
  alertRows: number;
  cutoffs: RetentionCutoffs | null;
}

/**
 * The data lifecycle of the event store and the alert state (issue 12 §5): events older than
 * `store.retentionDays` go, daily, with their alert jobs and decisions; events reviewed as false
 * alarms stay until `store.keepReviewedDays` (retraining reads them). Both backends alike; with
 * several bridges on one MongoDB each purges (the deletes are idempotent, so that costs only a
 * few empty queries). Per batch, the alert rows go before their events, so a purge cut short
 * (a crash, a stop) leaves events the next run finds again, never alert rows without an event.
 */
export class RetentionService {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<RetentionRun> | null = null;
  private stopped = false;

  constructor(private readonly options: RetentionOptions) {}

  /** The cutoffs at `nowMs`; null when nothing is ever purged (retentionDays null). */
  cutoffs(nowMs: number): RetentionCutoffs | null {
    const { retentionDays, keepReviewedDays } = this.options.config;
    if (retentionDays === null) return null;
    const before = nowMs - retentionDays * DAY_MS;
    // kept longer, never shorter: a keepReviewedDays below retentionDays counts as retentionDays
    const keep = keepReviewedDays === null ? null : Math.min(before, nowMs - keepReviewedDays * DAY_MS);
    return {
      before: new Date(before).toISOString(),
      keepReviewedBefore: keep === null ? null : new Date(keep).toISOString(),
    };
  }

  async start(): Promise<void> {
    this.stopped = false;
    if (this.options.config.retentionDays === null) {
      this.options.logger.info('retention: store.retentionDays is null, events are kept for good');
      return;
    }
    this.schedule(this.options.firstRunMs ?? 60_000);
  }

  /** Clears the timer and waits for a purge under way (it stops after its current batch). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => {});
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.runOnce().then(
        () => this.schedule(this.options.everyMs ?? DAY_MS),
        (err: unknown) => {
          this.options.logger.error(
            { err, code: 'CLOUD_RETENTION_FAILED' },
            'retention: purging old events failed; trying again in an hour',
          );
          this.schedule(HOUR_MS);
        },
      );
    }, ms);
    // a pending purge is no reason to keep the process alive
    this.timer.unref();
  }

  /** One purge now (also what the timer runs); a second call while one runs joins it. */
  runOnce(): Promise<RetentionRun> {
    this.running ??= this.purge().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async purge(): Promise<RetentionRun> {
    const { store, alerts, logger } = this.options;
    const cutoffs = this.cutoffs(this.options.clock().getTime());
    if (!cutoffs) return { events: 0, alertRows: 0, cutoffs: null };
    const batch = this.options.batch ?? 500;
    const started = Date.now();
    let events = 0;
    let alertRows = 0;
    while (!this.stopped) {
      const ids = await store.findExpired(cutoffs, batch);
      if (ids.length === 0) break;
      alertRows += await alerts.purgeEvents(ids);
      const deleted = await store.deleteExpired(ids, cutoffs);
      events += deleted;
      // fewer than asked for: the rest were reviewed meanwhile (kept); the next query is empty
      if (ids.length < batch) break;
      // ingest gets the event loop between batches
      await new Promise((r) => setImmediate(r));
    }
    logger.info(
      {
        purged: events,
        alertRows,
        before: cutoffs.before,
        keepReviewedBefore: cutoffs.keepReviewedBefore,
        ms: Date.now() - started,
      },
      `retention: purged ${events} event(s) older than ${this.options.config.retentionDays} days`,
    );
    return { events, alertRows, cutoffs };
  }
}
