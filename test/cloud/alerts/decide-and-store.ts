import type { AlertService } from '../../../cloud/alerts/alert-service.ts';
import type { EventStore, StoredEvent } from '../../../cloud/store/types.ts';

/** What ingest does with an event (cloud/ingest/event-ingest.ts): decide, store with the decision, tell the alerter. */
export async function decideAndStore(
  service: AlertService,
  store: EventStore,
  incoming: StoredEvent,
): Promise<StoredEvent> {
  const decision = await service.decide(incoming);
  const event: StoredEvent = {
    ...incoming,
    responseStatus: decision.responseStatus,
    deliveries: decision.deliveries,
    ...(decision.suppressedBy ? { suppressedBy: decision.suppressedBy } : {}),
  };
  service.eventStored(event, decision, await store.insertIfNew(event));
  return event;
}
