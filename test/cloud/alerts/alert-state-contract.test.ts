import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AlertQueue } from '../../../cloud/alerts/alert-queue.ts';
import type { AlertStateStore, NewJob } from '../../../cloud/alerts/alert-state.ts';
import { MongoAlertState } from '../../../cloud/alerts/mongo-alert-state.ts';
import { type MongoWireServer, startMongoWireServer } from '../../support/mongo-wire-server.ts';
import { tempDir } from '../bridge-harness.ts';

/**
 * One contract suite for the alert state, run against every backend: SQLite (one bridge), MongoDB
 * through the official driver on the wire-protocol test server, and a real MongoDB when
 * MONGODB_TEST_URI is set. Two handles on the same state stand for two bridges.
 */
interface StateFactory {
  name: string;
  skip?: boolean;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** Two handles on one fresh, empty state ("two bridges"); SQLite: the same file twice. */
  create(): Promise<[AlertStateStore, AlertStateStore]>;
}

export function alertStateContract(factory: StateFactory): void {
  describe.skipIf(factory.skip ?? false)(`AlertStateStore contract: ${factory.name}`, () => {
    let a: AlertStateStore;
    let b: AlertStateStore;
    const t0 = Date.parse('2026-12-02T10:00:00.000Z');
    const LEASE_A = { owner: 'bridge-a', ms: 60_000 };
    const LEASE_B = { owner: 'bridge-b', ms: 60_000 };
    const job = (over: Partial<NewJob> = {}): NewJob => ({
      eventId: 'E1',
      channel: 'sms',
      recipient: '+15550001',
      kind: 'alert',
      subject: 's',
      text: 't',
      html: 'h',
      status: 'queued',
      nextAtMs: t0,
      recordOnEvent: true,
      ...over,
    });

    beforeAll(() => factory.setup());
    afterAll(() => factory.teardown());
    beforeEach(async () => {
      [a, b] = await factory.create();
      await a.open();
      await b.open();
    });
    afterEach(async () => {
      await a.close();
      await b.close();
    });

    it('one job per (eventId, channel, recipient, kind): adding it again, from either bridge, returns the first', async () => {
      const first = await a.addJob(job({ text: 'first' }), t0);
      const again = await b.addJob(job({ text: 'second' }), t0 + 5);
      expect(again.id).toBe(first.id);
      expect(again.text).toBe('first');
      const [x, y] = await Promise.all([
        a.addJob(job({ kind: 'escalation' }), t0),
        b.addJob(job({ kind: 'escalation' }), t0),
      ]);
      expect(x.id).toBe(y.id);
      const other = await a.addJob(job({ channel: 'email', recipient: 'a@example.org' }), t0);
      expect(other.id).not.toBe(first.id);
      expect((await a.jobsForEvent('E1')).map((j) => [j.channel, j.kind])).toEqual([
        ['sms', 'alert'],
        ['sms', 'escalation'],
        ['email', 'alert'],
      ]);
      expect(first).toMatchObject({
        status: 'queued',
        attempts: 0,
        owner: null,
        leaseUntilMs: null,
        createdAtMs: t0,
      });
    });

    it('one decision per event: the first outcome stays', async () => {
      expect(await a.decided('E1')).toBeNull();
      const [x, y] = await Promise.all([
        a.recordDecision('E1', 'alert', t0),
        b.recordDecision('E1', 'suppressed', t0),
      ]);
      expect([x, y].filter(Boolean)).toHaveLength(1);
      const outcome = await b.decided('E1');
      expect(x ? 'alert' : 'suppressed').toBe(outcome);
      expect(await a.recordDecision('E1', 'none', t0)).toBe(false);
      expect(await a.decided('E1')).toBe(outcome);
    });

    it('claims a due job once: the other bridge gets nothing while the lease holds', async () => {
      await a.addJob(job(), t0);
      await a.addJob(job({ eventId: 'E2', nextAtMs: t0 + 100_000 }), t0);
      const [ca, cb] = await Promise.all([a.claimDue(t0, 10, LEASE_A), b.claimDue(t0, 10, LEASE_B)]);
      const claimed = [...ca, ...cb];
      expect(claimed).toHaveLength(1);
      expect(claimed[0]).toMatchObject({ eventId: 'E1', status: 'in-flight', attempts: 1 });
      expect(claimed[0]!.leaseUntilMs).toBe(t0 + 60_000);
      // Still held a second before the lease ends; E2 is not due yet either.
      expect(await b.claimDue(t0 + 59_000, 10, LEASE_B)).toEqual([]);
      // Next: E1's lease running out, before E2 is due.
      expect((await b.claimDue(t0 + 60_000, 10, LEASE_B)).map((j) => j.eventId)).toEqual(['E1']);
    });

    it('a bridge that dies mid-send: its job goes to another bridge after the lease, and the dead one cannot finish it', async () => {
      const added = await a.addJob(job(), t0);
      const [mine] = await a.claimDue(t0, 1, LEASE_A);
      expect(mine?.owner).toBe('bridge-a');
      expect(await b.claimDue(t0 + 59_999, 1, LEASE_B)).toEqual([]);
      const [taken] = await b.claimDue(t0 + 60_000, 1, LEASE_B);
      expect(taken).toMatchObject({ id: added.id, owner: 'bridge-b', attempts: 2 });
      // The stale holder's outcome is refused; the new holder's is kept.
      expect(await a.finish(added.id, 'bridge-a', 'sent', t0 + 60_001, { providerId: 'late' })).toBeNull();
      const done = await b.finish(added.id, 'bridge-b', 'sent', t0 + 60_002, { providerId: 'SM1' });
      expect(done).toMatchObject({
        status: 'sent',
        providerId: 'SM1',
        owner: null,
        leaseUntilMs: null,
        lastError: null,
      });
      expect(await a.claimDue(t0 + 999_999, 10, LEASE_A)).toEqual([]);
    });

    it('finish: retry later keeps the error, sent clears it; recoverInFlight takes back only the own jobs', async () => {
      const j1 = await a.addJob(job(), t0);
      const j2 = await a.addJob(job({ eventId: 'E2' }), t0);
      await a.claimDue(t0, 1, LEASE_A);
      await b.claimDue(t0, 1, LEASE_B);
      const retry = await a.finish(j1.id, 'bridge-a', 'queued', t0 + 1, {
        lastError: '503',
        nextAtMs: t0 + 5000,
      });
      expect(retry).toMatchObject({ status: 'queued', lastError: '503', nextAtMs: t0 + 5000, attempts: 1 });
      // bridge-a restarts: nothing of its own in flight; bridge-b's job stays leased to b.
      expect(await a.recoverInFlight('bridge-a', t0 + 2)).toBe(0);
      expect(await a.recoverInFlight('bridge-b', t0 + 2)).toBe(1);
      expect((await a.job(j2.id))?.status).toBe('queued');
      // Due order: j2 (queued again at t0 + 2), then j1 (retry at t0 + 5000).
      const claimed = await a.claimDue(t0 + 5000, 5, LEASE_A);
      expect(claimed.map((j) => j.id)).toEqual([j2.id, j1.id]);
      const sent = await a.finish(j1.id, 'bridge-a', 'sent', t0 + 5001, { providerId: 'SM2' });
      expect(sent).toMatchObject({ status: 'sent', lastError: null, attempts: 2, providerId: 'SM2' });
      expect([...(await a.jobsForEvent('E1')), ...(await a.jobsForEvent('E2'))].map((j) => j.id)).toEqual([
        j1.id,
        j2.id,
      ]);
    });

    it('rate limit: at most N reservations per recipient per hour, the same job key gets the same answer', async () => {
      const r = (s: AlertStateStore, key: string, at: number) => s.reserveRate('+1', key, 3, at);
      const results = await Promise.all([
        r(a, 'k1', t0),
        r(b, 'k2', t0),
        r(a, 'k3', t0),
        r(b, 'k4', t0),
        r(a, 'k5', t0),
      ]);
      expect(results.filter(Boolean)).toHaveLength(3);
      const granted = ['k1', 'k2', 'k3', 'k4', 'k5'].filter((_, i) => results[i]);
      // Asking again: the same answers.
      for (const k of ['k1', 'k2', 'k3', 'k4', 'k5'])
        expect(await r(b, k, t0 + 10)).toBe(granted.includes(k));
      // Another recipient has its own budget.
      expect(await a.reserveRate('+2', 'k1', 3, t0)).toBe(true);
      // An hour later the old reservations no longer count.
      expect(await r(a, 'k6', t0 + 3_600_001)).toBe(true);
      expect(await a.reserveRate('+1', 'k7', 0, t0)).toBe(false);
    });

    it('one cooldown owner per sensor window; suppressed events counted once; ended windows closed once', async () => {
      const row = (eventId: string, untilMs: number) => ({
        key: 'hall-1|0',
        sensorId: 'hall-1',
        policyIndex: 0,
        firstEventId: eventId,
        untilMs,
      });
      const [x, y] = await Promise.all([
        a.claimCooldown(row('E1', t0 + 300_000), t0),
        b.claimCooldown(row('E2', t0 + 300_000), t0),
      ]);
      expect([x, y].sort()).toEqual(['held', 'owner']);
      const owner = x === 'owner' ? 'E1' : 'E2';
      const other = owner === 'E1' ? 'E2' : 'E1';
      // The owner again (a redelivery): still the owner, the window unchanged.
      expect(await b.claimCooldown(row(owner, t0 + 999_000), t0 + 1000)).toBe('owner');
      await a.noteSuppressed('hall-1|0', other, 0.91, '2026-12-02T10:00:01.000Z');
      await b.noteSuppressed('hall-1|0', other, 0.91, '2026-12-02T10:00:01.000Z');
      await b.noteSuppressed('hall-1|0', 'E3', 0.97, '2026-12-02T10:00:02.000Z');
      await a.noteSuppressed('hall-1|0', 'E4', 0.5, '2026-12-02T10:00:03.000Z');
      expect(await a.claimExpiredCooldown(t0 + 299_999, LEASE_A)).toBeNull();
      const [ca, cb] = await Promise.all([
        a.claimExpiredCooldown(t0 + 300_000, LEASE_A),
        b.claimExpiredCooldown(t0 + 300_000, LEASE_B),
      ]);
      const closing = ca ?? cb;
      expect([ca, cb].filter(Boolean)).toHaveLength(1);
      expect(closing).toMatchObject({
        key: 'hall-1|0',
        firstEventId: owner,
        untilMs: t0 + 300_000,
        suppressed: 3,
        peak: 0.97,
        lastAt: '2026-12-02T10:00:03.000Z',
      });
      // A closer that dies: another bridge gets the window after the lease.
      expect(await b.claimExpiredCooldown(t0 + 300_001, LEASE_B)).toBeNull();
      expect(await b.claimExpiredCooldown(t0 + 360_000, LEASE_B)).toMatchObject({ firstEventId: owner });
      await b.deleteCooldown('hall-1|0', owner);
      expect(await a.claimExpiredCooldown(t0 + 999_999, LEASE_A)).toBeNull();
      // A new window after the old one ended and was closed.
      expect(await a.claimCooldown(row('E5', t0 + 700_000), t0 + 400_000)).toBe('owner');
      expect(await b.claimCooldown(row('E6', t0 + 700_000), t0 + 400_001)).toBe('held');
    });

    it('an ended window that was not closed yet is taken over by the next event', async () => {
      const row = (eventId: string, untilMs: number) => ({
        key: 'yard|1',
        sensorId: 'yard',
        policyIndex: 1,
        firstEventId: eventId,
        untilMs,
      });
      expect(await a.claimCooldown(row('E1', t0 + 1000), t0)).toBe('owner');
      expect(await b.claimCooldown(row('E2', t0 + 5000), t0 + 1000)).toBe('owner');
      // deleteCooldown of the old owner leaves the new window alone.
      await a.deleteCooldown('yard|1', 'E1');
      expect(await a.claimCooldown(row('E3', t0 + 9000), t0 + 2000)).toBe('held');
    });

    it('purgeEvents deletes the jobs and decisions of those events only, from either bridge', async () => {
      await a.addJob(job({ eventId: 'OLD1' }), t0);
      await a.addJob(job({ eventId: 'OLD1', kind: 'follow-up' }), t0);
      await a.addJob(job({ eventId: 'OLD2', channel: 'email', recipient: 'a@example.org' }), t0);
      await a.addJob(job({ eventId: 'KEEP' }), t0);
      await a.recordDecision('OLD1', 'alerted', t0);
      await a.recordDecision('OLD2', 'none', t0);
      await a.recordDecision('KEEP', 'alerted', t0);
      expect(await b.purgeEvents(['OLD1', 'OLD2', 'NEVER-SEEN'])).toBe(5);
      expect(await a.jobsForEvent('OLD1')).toEqual([]);
      expect(await a.jobsForEvent('OLD2')).toEqual([]);
      expect(await a.decided('OLD1')).toBeNull();
      expect(await a.jobsForEvent('KEEP')).toHaveLength(1);
      expect(await a.decided('KEEP')).toBe('alerted');
      // repeating it (a purge cut short and run again) is harmless
      expect(await a.purgeEvents(['OLD1', 'OLD2'])).toBe(0);
      expect(await a.purgeEvents([])).toBe(0);
    });
  });
}

let wire: MongoWireServer | null = null;
let dirs: Awaited<ReturnType<typeof tempDir>>[] = [];

alertStateContract({
  name: 'SQLite (alerts.sqlite)',
  setup: async () => {},
  teardown: async () => {
    for (const d of dirs) await d.remove();
    dirs = [];
  },
  create: async () => {
    const d = await tempDir('sw-alert-state-');
    dirs.push(d);
    const path = `${d.path}/alerts.sqlite`;
    return [new AlertQueue(path), new AlertQueue(path)];
  },
});

alertStateContract({
  name: 'MongoDB wire-protocol test server',
  setup: async () => {
    wire = await startMongoWireServer();
  },
  teardown: async () => {
    await wire?.stop();
  },
  create: async () => {
    const uri = `${wire!.uri}/alerts_${randomBytes(4).toString('hex')}`;
    return [
      new MongoAlertState({ uri, serverSelectionTimeoutMs: 3000 }),
      new MongoAlertState({ uri, serverSelectionTimeoutMs: 3000 }),
    ];
  },
});

const realUri = process.env.MONGODB_TEST_URI;
alertStateContract({
  name: 'MongoDB at MONGODB_TEST_URI',
  skip: !realUri,
  setup: async () => {},
  teardown: async () => {},
  create: async () => {
    // A fresh database per test (dropped by whoever runs the real server; names are random).
    const dbName = `sw_alert_contract_${randomBytes(4).toString('hex')}`;
    return [
      new MongoAlertState({ uri: realUri!, dbName, serverSelectionTimeoutMs: 5000 }),
      new MongoAlertState({ uri: realUri!, dbName, serverSelectionTimeoutMs: 5000 }),
    ];
  },
});
