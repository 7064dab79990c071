import type { ResponseChange, Review, StoredEvent } from './types.ts';

/**
 * The event after a response change, as both stores write it: the state replaced, the entry
 * appended to the history, and `review` (what retraining reads) set when it is resolved.
 */
export function applyResponseChange(e: StoredEvent, change: ResponseChange): StoredEvent {
  const out: StoredEvent = { ...e, response: change.response, history: [...(e.history ?? []), change.entry] };
  const r = change.response;
  if (r.state === 'resolved' && r.verdict) {
    const review: Review = { verdict: r.verdict, userId: r.userId, at: r.at };
    if (r.note) review.note = r.note;
    out.review = review;
  }
  return out;
}
