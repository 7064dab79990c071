import { describe, expect, it } from 'vitest';
import type { ChannelDelivery } from '../../../cloud/store/types.ts';
import { alertToast, describeAlert, describeDelivery } from '../../../cloud/web/client/alert-outcome.ts';

const at = (iso: string) => iso.slice(11, 19);
const d = (over: Partial<ChannelDelivery>): ChannelDelivery => ({
  channel: 'sms',
  to: '+15550100',
  status: 'sent',
  attempts: 1,
  updatedAt: '2026-11-24T10:00:00.000Z',
  ...over,
});

describe('alert outcome wording', () => {
  it('says per channel what happened, with the reason or the time', () => {
    expect(describeDelivery(d({}), at)).toMatchObject({ label: 'Sent', tone: 'ok' });
    expect(describeDelivery(d({ status: 'pending', attempts: 0 }), at)).toMatchObject({ label: 'Queued' });
    const retry = describeDelivery(
      d({ status: 'pending', attempts: 2, lastError: 'HTTP 500', nextAttemptAt: '2026-11-24T10:00:30.000Z' }),
      at,
    );
    expect(retry.label).toBe('Retrying');
    expect(retry.detail).toBe('Try 2 failed: HTTP 500. Next try at 10:00:30.');
    const failed = describeDelivery(d({ status: 'failed', attempts: 1, lastError: 'invalid number' }), at);
    expect(failed).toMatchObject({ label: 'Failed', tone: 'danger' });
    expect(failed.detail).toContain('invalid number');
    expect(
      describeDelivery(d({ channel: 'email', status: 'not-configured', attempts: 0 }), at).detail,
    ).toContain('no e-mail server (alerts.smtp)');
    const limited = describeDelivery(
      d({
        status: 'suppressed',
        attempts: 0,
        lastError: 'rate limit: 1 per hour to this contact',
        limitedUntil: '2026-11-24T11:00:00.000Z',
      }),
      at,
    );
    expect(limited.label).toBe('Rate-limited');
    expect(limited.detail).toContain('alerted again at 11:00:00');
  });

  it('never says sent unless the server recorded a send', () => {
    expect(describeAlert({ responseStatus: 'not-configured', deliveries: [] }).label).toBe('No contacts');
    const notConf = describeAlert({
      responseStatus: 'not-configured',
      deliveries: [
        d({ status: 'not-configured', attempts: 0 }),
        d({ channel: 'email', status: 'not-configured', attempts: 0 }),
      ],
    });
    expect(notConf.label).toBe('Not sent');
    expect(
      alertToast({
        responseStatus: 'not-configured',
        deliveries: [d({ status: 'not-configured', attempts: 0 })],
      }),
    ).toEqual({
      message: 'Alert not sent: 1 not configured.',
      kind: 'error',
    });
    expect(
      alertToast({ responseStatus: 'pending', deliveries: [d({ status: 'pending', attempts: 0 })] }).message,
    ).toBe('Alert queued: 1 queued. Delivery updates below.');
    expect(alertToast({ responseStatus: 'not-configured', deliveries: [] }).message).toContain(
      'has no contacts',
    );
    expect(
      alertToast({ responseStatus: 'alerted', deliveries: [d({}), d({ channel: 'email' })] }).message,
    ).toBe('Alert sent to all 2 contacts.');
  });

  it('names the event that alerted when a cooldown suppressed this one', () => {
    const o = describeAlert(
      {
        responseStatus: 'suppressed',
        deliveries: [],
        suppressedBy: { reason: 'cooldown', eventId: '01JAAA', until: '2026-11-24T10:05:00.000Z' },
      },
      at,
    );
    expect(o).toMatchObject({ label: 'Cooldown', eventId: '01JAAA' });
    expect(o.detail).toContain('cooldown until 10:05:00');
  });
});
