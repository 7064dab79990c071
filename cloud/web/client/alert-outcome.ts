// What the dashboard says about an alert, from what the server recorded, never from what a
// button asked for. Pure (no DOM), so the wording is unit-tested and shared by every page.
import type { ChannelDelivery, StoredEvent } from '../../store/types.ts';

export type Tone = 'ok' | 'info' | 'warn' | 'danger' | 'muted';

export interface Outcome {
  /** Short badge text. */
  label: string;
  tone: Tone;
  /** One sentence with the reason, the time or the next step; '' when the label says it all. */
  detail: string;
  /** Another event this outcome refers to (the one that alerted, for a cooldown). */
  eventId?: string;
}

type Clock = (iso: string) => string;
const defaultTime: Clock = (iso) =>
  new Date(iso).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });

export function channelName(channel: ChannelDelivery['channel']): string {
  return channel === 'sms' ? 'SMS' : 'E-mail';
}

const tries = (n: number) => (n === 1 ? '1 try' : `${n} tries`);

/** One channel to one recipient. */
export function describeDelivery(d: ChannelDelivery, time: Clock = defaultTime): Outcome {
  const ch = channelName(d.channel);
  switch (d.status) {
    case 'delivered':
      return { label: 'Delivered', tone: 'ok', detail: `${ch} delivered to ${d.to}.` };
    case 'sent':
      return {
        label: 'Sent',
        tone: 'ok',
        detail: `${ch} accepted by the provider for ${d.to}${d.attempts > 1 ? ` after ${tries(d.attempts)}` : ''}.`,
      };
    case 'pending':
      if (d.attempts > 0 || d.nextAttemptAt) {
        return {
          label: 'Retrying',
          tone: 'warn',
          detail: `Try ${d.attempts} failed${d.lastError ? `: ${d.lastError}` : ''}.${d.nextAttemptAt ? ` Next try at ${time(d.nextAttemptAt)}.` : ''}`,
        };
      }
      return { label: 'Queued', tone: 'warn', detail: `${ch} to ${d.to} is queued; not sent yet.` };
    case 'failed':
      return {
        label: 'Failed',
        tone: 'danger',
        detail: `Not delivered after ${tries(d.attempts)}${d.lastError ? `: ${d.lastError}` : ''}.`,
      };
    case 'not-configured':
      return {
        label: 'Not configured',
        tone: 'muted',
        detail: `Not sent: no ${ch === 'SMS' ? 'SMS provider (alerts.twilio)' : 'e-mail server (alerts.smtp)'} is configured on the bridge.`,
      };
    case 'suppressed':
      if (d.limitedUntil || d.lastError?.startsWith('rate limit')) {
        return {
          label: 'Rate-limited',
          tone: 'warn',
          detail: `Not sent: ${d.lastError ?? 'rate limit reached for this contact'}.${d.limitedUntil ? ` This contact can be alerted again at ${time(d.limitedUntil)}.` : ''}`,
        };
      }
      return {
        label: 'Suppressed',
        tone: 'muted',
        detail: d.lastError ? `Not sent: ${d.lastError}.` : 'Not sent.',
      };
  }
  return { label: String(d.status), tone: 'muted', detail: d.lastError ?? '' };
}

type AlertFields = Pick<StoredEvent, 'responseStatus' | 'deliveries'> &
  Partial<Pick<StoredEvent, 'suppressedBy' | 'alertType'>>;

/** The event's alert as a whole, for the list badge and the event page's heading. */
export function describeAlert(e: AlertFields, time: Clock = defaultTime): Outcome {
  const ds = e.deliveries ?? [];
  const ok = ds.filter((d) => d.status === 'sent' || d.status === 'delivered').length;
  switch (e.responseStatus) {
    case 'pending': {
      const retrying = ds.filter((d) => d.status === 'pending' && (d.attempts > 0 || d.nextAttemptAt));
      if (retrying.length)
        return {
          label: 'Alert retrying',
          tone: 'warn',
          detail: `${retrying.length} of ${ds.length} ${ds.length === 1 ? 'message' : 'messages'} failed and will be tried again.`,
        };
      return {
        label: 'Alert queued',
        tone: 'warn',
        detail: ds.length
          ? `${ds.length} ${ds.length === 1 ? 'message is' : 'messages are'} queued; none sent yet.`
          : 'Deciding whether to alert.',
      };
    }
    case 'alerted':
      return {
        label: 'Alert sent',
        tone: 'ok',
        detail: `Sent to ${ok} of ${ds.length} ${ds.length === 1 ? 'contact' : 'contacts'}.`,
      };
    case 'partial':
      return {
        label: 'Partly sent',
        tone: 'warn',
        detail: `Sent to ${ok} of ${ds.length} contacts; the others failed or were not sent (see each channel).`,
      };
    case 'failed':
      return {
        label: 'Alert failed',
        tone: 'danger',
        detail: 'No message was delivered; see each channel for the reason.',
      };
    case 'not-configured':
      if (ds.length === 0)
        return {
          label: 'No contacts',
          tone: 'muted',
          detail: "Not sent: this sensor's alert policy has no contacts (alerts.policies[].contacts).",
        };
      return {
        label: 'Not sent',
        tone: 'danger',
        detail:
          'Not sent: no SMS provider or e-mail server is configured on the bridge (alerts.twilio, alerts.smtp).',
      };
    case 'suppressed':
      if (e.suppressedBy?.reason === 'cooldown')
        return {
          label: 'Cooldown',
          tone: 'muted',
          detail: `Not sent: another event of this sensor alerted; cooldown until ${time(e.suppressedBy.until)}, then one follow-up summary.`,
          eventId: e.suppressedBy.eventId,
        };
      if (
        ds.length &&
        ds.every(
          (d) => d.status === 'suppressed' && (d.limitedUntil || d.lastError?.startsWith('rate limit')),
        )
      ) {
        const until = ds
          .map((d) => d.limitedUntil)
          .filter((u): u is string => !!u)
          .sort()
          .at(-1);
        return {
          label: 'Rate-limited',
          tone: 'warn',
          detail: `Not sent: every contact reached its hourly alert limit${until ? ` (until ${time(until)})` : ''}.`,
        };
      }
      return {
        label: 'Suppressed',
        tone: 'muted',
        detail: 'Not sent (suppressed); see each channel for the reason.',
      };
    case 'none':
      if (e.alertType === 'upload')
        return { label: 'No alert', tone: 'muted', detail: 'File analyses never alert by themselves.' };
      return {
        label: 'No alert',
        tone: 'muted',
        detail: "Below the alert policy's threshold, or not a scream.",
      };
  }
  return { label: e.responseStatus, tone: 'muted', detail: '' };
}

/**
 * The toast after someone pressed "Send alert": what the server has recorded so far. Before
 * every message settled it says queued, never sent.
 */
export function alertToast(
  e: AlertFields,
  time: Clock = defaultTime,
): { message: string; kind: 'ok' | 'error' } {
  const ds = e.deliveries ?? [];
  if (ds.length === 0) {
    return { message: describeAlert({ ...e, responseStatus: 'not-configured' }, time).detail, kind: 'error' };
  }
  const count = (f: (d: ChannelDelivery) => boolean) => ds.filter(f).length;
  const sent = count((d) => d.status === 'sent' || d.status === 'delivered');
  const pending = count((d) => d.status === 'pending');
  const failed = count((d) => d.status === 'failed');
  const notConf = count((d) => d.status === 'not-configured');
  const limited = count((d) => d.status === 'suppressed');
  const parts: string[] = [];
  if (sent) parts.push(`sent to ${sent}`);
  if (pending) parts.push(`${pending} queued`);
  if (failed) parts.push(`${failed} failed`);
  if (notConf) parts.push(`${notConf} not configured`);
  if (limited) parts.push(`${limited} rate-limited`);
  const text = parts.join(', ');
  if (sent === ds.length)
    return { message: `Alert sent to ${sent === 1 ? 'the contact' : `all ${sent} contacts`}.`, kind: 'ok' };
  if (pending) return { message: `Alert queued: ${text}. Delivery updates below.`, kind: 'ok' };
  if (sent) return { message: `Alert partly sent: ${text}.`, kind: 'error' };
  return { message: `Alert not sent: ${text}.`, kind: 'error' };
}
