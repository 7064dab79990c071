import type { Channel } from './senders.ts';

export type JobStatus = 'queued' | 'in-flight' | 'sent' | 'failed' | 'not-configured' | 'suppressed';
/**
 * alert: the first alert of a cooldown; follow-up: its summary; offline / degraded: a sensor's
 * health; escalation: nobody responded in time; manual-<ms>: an operator's "send now" (one
 * kind per request, so pressing it again sends again).
 */
export type JobKind = 'alert' | 'follow-up' | 'offline' | 'degraded' | 'escalation' | `manual-${number}`;

export interface AlertJob {
  id: number;
  eventId: string;
  channel: Channel;
  recipient: string;
  kind: JobKind;
  subject: string;
  text: string;
  html: string;
  status: JobStatus;
  attempts: number;
  nextAtMs: number;
  lastError: string | null;
  providerId: string | null;
  createdAtMs: number;
  updatedAtMs: number;
  /** Whether this job's status is mirrored on the event's deliveries[]. */
  recordOnEvent: boolean;
  /** While in flight: the bridge sending it and until when its lease holds. */
  owner: string | null;
  leaseUntilMs: number | null;
}

export type NewJob = Pick<
  AlertJob,
  | 'eventId'
  | 'channel'
  | 'recipient'
  | 'kind'
  | 'subject'
  | 'text'
  | 'html'
  | 'status'
  | 'nextAtMs'
  | 'recordOnEvent'
> & {
  lastError?: string | null;
};

export interface CooldownRow {
  key: string;
  sensorId: string;
  policyIndex: number;
  firstEventId: string;
  untilMs: number;
  suppressed: number;
  peak: number;
  lastAt: string | null;
}

export interface Lease {
  /** The bridge id (mqtt.clientId, else screamwatch-bridge-<hostname>). */
  owner: string;
  /** How long a claim holds; longer than one send (alerts.timeoutMs), so no one else sends it meanwhile. */
  ms: number;
}

export type FinishFields = { lastError?: string | null; providerId?: string | null; nextAtMs?: number };

/**
 * Where the alert queue keeps its state: decisions, jobs with leases, cooldowns and per-contact
 * rate reservations. SQLite (one bridge, `<dataDir>/alerts.sqlite`) or MongoDB (MONGODB_URI,
 * shared by every bridge). Every method is one atomic step and safe to repeat, so several
 * bridges (and a bridge re-running an event after a crash) never decide or send twice:
 * - a job is unique per (eventId, channel, recipient, kind): adding it again returns the first;
 * - a cooldown window has one owner (the first event); a second event finds it held;
 * - a rate reservation is per job key: asking again gives the same answer;
 * - a job is sent only by the holder of its lease; a lease that ran out (its bridge died) can
 *   be claimed by another bridge, and a stale holder's finish() is refused.
 * One contract suite (test/cloud/alerts/alert-state-contract.test.ts) runs against every backend.
 */
export interface AlertStateStore {
  /** For logs: the file or the database (without credentials). */
  readonly where: string;
  open(): Promise<void>;
  close(): Promise<void>;

  /** This bridge's own in-flight jobs from before a crash: queued again (sent again; a
   * duplicate is better than a loss). Others' jobs come back when their lease runs out. */
  recoverInFlight(owner: string, nowMs: number): Promise<number>;

  decided(eventId: string): Promise<string | null>;
  /** Records the event's outcome; false if it had one already (the first one stays). */
  recordDecision(eventId: string, outcome: string, nowMs: number): Promise<boolean>;

  /** Inserts the job unless its (eventId, channel, recipient, kind) exists; returns the stored one. */
  addJob(job: NewJob, nowMs: number): Promise<AlertJob>;
  /** Claims up to `limit` due jobs: queued and due, or in flight with an expired lease. */
  claimDue(nowMs: number, limit: number, lease: Lease): Promise<AlertJob[]>;
  /** Sets the outcome of a claimed job; null if `owner` no longer holds its lease. */
  finish(
    id: number,
    owner: string,
    status: JobStatus,
    nowMs: number,
    fields: FinishFields,
  ): Promise<AlertJob | null>;
  job(id: number): Promise<AlertJob | null>;
  jobsForEvent(eventId: string): Promise<AlertJob[]>;

  /**
   * Reserves one message to `recipient` for `jobKey` if fewer than `limit` were reserved in the
   * hour before `nowMs`. The same jobKey gets the same answer again (while in that hour).
   */
  reserveRate(recipient: string, jobKey: string, limit: number, nowMs: number): Promise<boolean>;

  /**
   * Opens the sensor's cooldown window for `row.firstEventId`, unless a window that has not ended
   * is owned by another event: 'held' (then the event is suppressed). Re-opening by the owner
   * itself returns 'owner' and leaves the window as it was.
   */
  claimCooldown(
    row: Omit<CooldownRow, 'suppressed' | 'peak' | 'lastAt'>,
    nowMs: number,
  ): Promise<'owner' | 'held'>;
  /** When the recipient's oldest reservation of the hour before `nowMs` expires (the dashboard's
   * "rate-limited until"); null when none is held. */
  rateFreeAt(recipient: string, nowMs: number): Promise<number | null>;
  /** The cooldown window under `key` (which event opened it, until when), or null. */
  cooldownOf(key: string): Promise<Pick<CooldownRow, 'firstEventId' | 'untilMs'> | null>;
  /** Counts a suppressed event in the window once per eventId (peak and last time kept). */
  noteSuppressed(key: string, eventId: string, probability: number, at: string): Promise<void>;
  /** Takes one ended window to close (follow-up summary): claimed for `lease.ms`, so one bridge
   * closes it; call deleteCooldown when done. */
  claimExpiredCooldown(nowMs: number, lease: Lease): Promise<CooldownRow | null>;
  /** Deletes the window if it is still the one that `firstEventId` opened. */
  deleteCooldown(key: string, firstEventId: string): Promise<void>;

  /**
   * Deletes the jobs and the decisions of these events (the retention purge, before it deletes
   * the events themselves: a purge cut short leaves events that the next run finds again, never
   * alert rows without their event). Returns how many rows went.
   */
  purgeEvents(eventIds: readonly string[]): Promise<number>;

  /** Readiness probe (/healthz): resolves when a write can be taken now, throws with the reason. */
  checkWritable(): Promise<void>;
  /** Jobs by channel and status (metrics: queue depth, outcomes so far). */
  jobCounts(): Promise<{ channel: string; status: string; n: number }[]>;
}
