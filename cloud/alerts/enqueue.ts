import { CHANNELS, type ContactPlan, RATE_LIMITED } from './alert-policy.ts';
import type { AlertJob, AlertStateStore, JobStatus, NewJob } from './alert-state.ts';
import type { Channel } from './senders.ts';

/**
 * A plan's jobs, one per contact, each added once (a repeat returns the stored job): queued, or
 * not-configured where the channel has no carrier, or suppressed when the contact's hourly
 * rate reservation is refused (its next-attempt time then says when the contact frees up).
 */
export async function enqueueContacts(
  state: AlertStateStore,
  configured: ReadonlySet<Channel>,
  eventId: string,
  plan: ContactPlan,
  nowMs: number,
): Promise<AlertJob[]> {
  const jobs: AlertJob[] = [];
  for (const channel of CHANNELS) {
    for (const recipient of plan.contacts[channel]) {
      let status: JobStatus = 'queued';
      let lastError: string | null = null;
      let limitedUntilMs: number | null = null;
      if (!configured.has(channel)) {
        status = 'not-configured';
        lastError = `${channel} is not configured (alerts.${channel === 'sms' ? 'twilio' : 'smtp'})`;
      } else if (
        plan.ratePerHour !== null &&
        !(await state.reserveRate(recipient, `${eventId}|${channel}|${plan.kind}`, plan.ratePerHour, nowMs))
      ) {
        status = 'suppressed';
        lastError = `${RATE_LIMITED}: ${plan.ratePerHour} per hour to this contact`;
        // a suppressed job is final and never claimed, so its next-attempt time is free to
        // carry when the contact's hour frees up (shown as "rate-limited until")
        limitedUntilMs = (await state.rateFreeAt(recipient, nowMs)) ?? nowMs + 3_600_000;
      }
      const job: NewJob = {
        eventId,
        channel,
        recipient,
        kind: plan.kind,
        ...plan.message,
        status,
        nextAtMs: limitedUntilMs ?? plan.nextAtMs,
        recordOnEvent: plan.recordOnEvent,
        lastError,
      };
      jobs.push(await state.addJob(job, nowMs));
    }
  }
  return jobs;
}
