import { describe, expect, it } from 'vitest';
import { AlertPolicy, deliveriesOf } from '../../../cloud/alerts/alert-policy.ts';
import type { AlertJob } from '../../../cloud/alerts/alert-state.ts';
import { type CloudConfigInput, parseCloudConfig } from '../../../cloud/config/schema.ts';
import { summarise } from '../../../cloud/store/deliveries.ts';
import { sampleStoredEvent } from '../fixtures.ts';

const NOW = Date.parse('2026-11-24T10:00:01.000Z');

function policyOf(
  policies: NonNullable<CloudConfigInput['alerts']>['policies'],
  sensors: CloudConfigInput['sensors'] = [],
): AlertPolicy {
  const config = parseCloudConfig({ alerts: { policies }, sensors });
  return new AlertPolicy({
    policies: config.alerts.policies,
    sensorConfig: (id) => config.sensors.find((s) => s.id === id),
    publicUrl: 'https://sw.example.org',
  });
}

describe('AlertPolicy (pure: config and an event in, a plan out)', () => {
  it('alerts on screams and manual alerts at or over the threshold only', () => {
    const p = policyOf([{ threshold: 0.8, contacts: { sms: ['+15550001111'] } }]);
    const plan = (over: Parameters<typeof sampleStoredEvent>[0]) => p.plan(sampleStoredEvent(over), NOW);
    expect(plan({ screamProbability: 0.8 })).not.toBeNull();
    expect(plan({ screamProbability: 0.79 })).toBeNull();
    expect(plan({ alertType: 'manual', screamProbability: 0.9 })).not.toBeNull();
    expect(plan({ alertType: 'near-miss', isScream: false })).toBeNull();
    expect(plan({ alertType: 'upload', screamProbability: 1 })).toBeNull();
    expect(plan({ isScream: false })).toBeNull();
    expect(policyOf([]).plan(sampleStoredEvent(), NOW)).toBeNull();
  });

  it("chooses the sensor's own policy, else its group's, else the default group's", () => {
    const p = policyOf(
      [
        { group: 'default', contacts: { sms: ['+15550001000'] } },
        { group: 'yard', contacts: { sms: ['+15550002000'] } },
        { group: 'default', sensorIds: ['lab-3'], contacts: { sms: ['+15550003000'] } },
      ],
      [
        { id: 'yard-2', group: 'yard' },
        { id: 'lab-3', group: 'yard' },
      ],
    );
    expect(p.choose('hall-1')?.index).toBe(0);
    expect(p.choose('yard-2')?.index).toBe(1);
    expect(p.choose('lab-3')?.index).toBe(2);
  });

  it('plans the alert, its cooldown window and the escalation', () => {
    const p = policyOf([
      {
        cooldownS: 60,
        ratePerContactPerHour: 3,
        contacts: { sms: ['+15550001111'], email: ['ops@example.org'] },
        escalateAfterS: 300,
        escalateTo: { sms: ['+15550003333'] },
      },
    ]);
    const event = sampleStoredEvent();
    const plan = p.plan(event, NOW)!;
    expect(plan.cooldown).toEqual({ key: 'hall-1|0', untilMs: NOW + 60_000 });
    expect(plan.alert).toMatchObject({
      contacts: { sms: ['+15550001111'], email: ['ops@example.org'] },
      kind: 'alert',
      ratePerHour: 3,
      nextAtMs: NOW,
      recordOnEvent: true,
    });
    expect(plan.alert.message.text).toContain(`https://sw.example.org/events/${event.eventId}`);
    expect(plan.escalation).toMatchObject({
      contacts: { sms: ['+15550003333'] },
      kind: 'escalation',
      ratePerHour: null,
      nextAtMs: NOW + 300_000,
      recordOnEvent: false,
    });
    expect(plan.escalation!.message.text).toContain('ESCALATION');
    const noCooldown = policyOf([{ cooldownS: 0, contacts: { sms: ['+15550001111'] } }]).plan(event, NOW)!;
    expect(noCooldown.cooldown).toBeNull();
    expect(noCooldown.escalation).toBeNull();
  });

  it('manual alerts: every contact, no rate limit, one kind per request', () => {
    const p = policyOf([{ ratePerContactPerHour: 1, contacts: { sms: ['+15550001111'] } }]);
    expect(p.manual(sampleStoredEvent({ alertType: 'near-miss', isScream: false }), NOW)).toMatchObject({
      kind: `manual-${NOW}`,
      ratePerHour: null,
      recordOnEvent: true,
    });
  });

  it('the event shows the latest recorded job per channel and contact', () => {
    const job = (id: number, to: string, status: AlertJob['status'], recordOnEvent = true): AlertJob => ({
      id,
      eventId: 'E',
      channel: 'sms',
      recipient: to,
      kind: 'alert',
      subject: '',
      text: '',
      html: '',
      status,
      attempts: 1,
      nextAtMs: NOW,
      lastError: null,
      providerId: null,
      createdAtMs: NOW,
      updatedAtMs: NOW,
      recordOnEvent,
      owner: null,
      leaseUntilMs: null,
    });
    const d = deliveriesOf([
      job(1, 'a', 'failed'),
      job(2, 'b', 'sent'),
      job(3, 'a', 'sent'),
      job(4, 'c', 'queued', false),
    ]);
    expect(d.map((x) => [x.to, x.status])).toEqual([
      ['a', 'sent'],
      ['b', 'sent'],
    ]);
    expect(summarise(d)).toBe('alerted');
  });

  it('summarises deliveries into responseStatus', () => {
    const d = (status: 'sent' | 'failed' | 'pending' | 'not-configured' | 'suppressed') => ({
      channel: 'sms' as const,
      to: 'x',
      status,
      attempts: 1,
      updatedAt: '',
    });
    expect(summarise([])).toBe('none');
    expect(summarise([d('sent'), d('sent')])).toBe('alerted');
    expect(summarise([d('sent'), d('failed')])).toBe('partial');
    expect(summarise([d('sent'), d('pending')])).toBe('pending');
    expect(summarise([d('failed'), d('not-configured')])).toBe('failed');
    expect(summarise([d('not-configured')])).toBe('not-configured');
    expect(summarise([d('suppressed')])).toBe('suppressed');
  });
});
