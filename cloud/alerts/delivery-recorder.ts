import type { Logger } from 'pino';
import type { EventStore } from '../store/types.ts';
import { deliveryOf } from './alert-policy.ts';
import type { AlertJob, AlertStateStore } from './alert-state.ts';

/**
 * Mirrors delivery outcomes onto the stored event (`deliveries[]`, `responseStatus`), off the
 * ingest path: a sensor's PUBACK never waits for it. One event-store write per outcome, in
 * order per event on this bridge; across bridges the store's merge keeps the newer of two
 * writes (more attempts, then later), so a re-sync read before another bridge's send finished
 * cannot put "pending" back over "sent".
 *
 * The alert state is the truth and the event its projection. An outcome for an event that is
 * not stored yet (its insert is still under way, or failed and the sensor will send it again)
 * is written once ingest says the event is stored (`eventStored`).
 */
export class DeliveryRecorder {
  private readonly tails = new Map<string, Promise<void>>();
  private readonly waitingForEvent = new Set<string>();

  constructor(private readonly options: { store: EventStore; state: AlertStateStore; logger: Logger }) {}

  /** A job finished an attempt (or was created outside ingest): show it on its event. */
  record(job: AlertJob): Promise<void> {
    if (!job.recordOnEvent) return Promise.resolve();
    return this.serial(job.eventId, () => this.write(job.eventId, [job]));
  }

  /** Writes every recorded job of the event as the alert state knows it now (after a crash). */
  resync(eventId: string): Promise<void> {
    return this.serial(eventId, () => this.write(eventId, null));
  }

  /** Ingest stored the event: write what finished before it existed, if anything did. */
  eventStored(eventId: string): void {
    if (this.waitingForEvent.delete(eventId)) void this.resync(eventId);
  }

  /** Resolves when every write asked for so far is done (for a clean stop). */
  async flush(): Promise<void> {
    while (this.tails.size > 0) await Promise.allSettled([...this.tails.values()]);
  }

  private serial(eventId: string, fn: () => Promise<void>): Promise<void> {
    const next = (this.tails.get(eventId) ?? Promise.resolve()).then(fn);
    this.tails.set(eventId, next);
    void next.then(() => {
      if (this.tails.get(eventId) === next) this.tails.delete(eventId);
    });
    return next;
  }

  /** `jobs` null: all of the event's recorded jobs. */
  private async write(eventId: string, jobs: AlertJob[] | null): Promise<void> {
    const { store, state, logger } = this.options;
    try {
      const all = (await state.jobsForEvent(eventId)).filter((j) => j.recordOnEvent);
      const current = jobs ? jobs.map((j) => all.find((a) => a.id === j.id) ?? j) : all;
      if (!jobs && !(await store.get(eventId))) {
        this.waitingForEvent.add(eventId);
        return;
      }
      for (const job of current) await store.updateDelivery(eventId, deliveryOf(job));
    } catch (err) {
      if ((await store.get(eventId).catch(() => null)) === null) {
        // not stored yet: ingest calls eventStored once it is
        this.waitingForEvent.add(eventId);
        return;
      }
      logger.error({ err, eventId }, 'cannot record alert status on the event');
    }
  }
}
