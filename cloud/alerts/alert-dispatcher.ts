import type { Logger } from 'pino';
import { backoffDelay, type RetryPolicy } from '../../runtime/backoff.ts';
import type { EventStore } from '../store/types.ts';
import type { AlertPolicy } from './alert-policy.ts';
import type { AlertJob, AlertStateStore, FinishFields, JobStatus, Lease } from './alert-state.ts';
import type { DeliveryRecorder } from './delivery-recorder.ts';
import { enqueueContacts } from './enqueue.ts';
import { type Channel, type ChannelSender, DeliveryError } from './senders.ts';

export interface AlertDispatcherOptions {
  state: AlertStateStore;
  store: EventStore;
  policy: AlertPolicy;
  recorder: DeliveryRecorder;
  senders: Partial<Record<Channel, ChannelSender>>;
  /** alerts.retry: tries after the first, and the backoff between them. */
  retry: RetryPolicy & { maxRetries: number };
  lease: Lease;
  logger: Logger;
  now: () => number;
  random: () => number;
  /** How often due jobs and ended cooldowns are looked for (also woken by `kick`). */
  pollMs: number;
  /** Parallel sends. */
  concurrency: number;
  /** Every attempt's outcome (metrics): sent, retrying, failed, not-configured, suppressed. */
  onAttempt?: (channel: string, kind: string, outcome: string) => void;
}

/**
 * Sends what the alert state says is due: claims due jobs under this bridge's lease, sends each
 * through its channel, retries transient failures (5xx, timeouts) with the shared backoff up to
 * alerts.retry.maxRetries, never retries permanent ones (4xx), and hands each outcome to the
 * delivery recorder. Also turns ended cooldowns into their follow-up summaries.
 */
export class AlertDispatcher {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly inFlight = new Set<Promise<void>>();
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;

  constructor(private readonly options: AlertDispatcherOptions) {}

  start(): void {
    this.running = true;
    this.timer = setInterval(() => this.kick(), this.options.pollMs);
    this.kick();
  }

  /** Lets sends under way finish (each is bounded by alerts.timeoutMs), so a clean restart
   * neither loses nor repeats them. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.pumping;
    await Promise.allSettled([...this.inFlight]);
  }

  /** Looks for due work now (also called by the poll timer). */
  kick(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = this.pump()
      .catch((err: unknown) => this.options.logger.error({ err }, 'alert queue pump failed'))
      .finally(() => {
        this.pumping = null;
        if (this.pumpAgain && this.running) {
          this.pumpAgain = false;
          this.kick();
        }
      });
  }

  private async pump(): Promise<void> {
    await this.closeCooldowns();
    const limit = this.options.concurrency - this.inFlight.size;
    if (limit <= 0 || !this.running) return;
    for (const job of await this.options.state.claimDue(this.options.now(), limit, this.options.lease)) {
      const p = this.attempt(job).finally(() => {
        this.inFlight.delete(p);
        this.kick();
      });
      this.inFlight.add(p);
    }
  }

  private async closeCooldowns(): Promise<void> {
    const now = this.options.now();
    const configured = new Set((['sms', 'email'] as const).filter((c) => this.options.senders[c]));
    for (;;) {
      // One bridge closes each ended window (claimed for a lease; retried by another if it dies).
      const cd = await this.options.state.claimExpiredCooldown(now, this.options.lease);
      if (!cd) return;
      const first = cd.suppressed === 0 ? null : await this.options.store.get(cd.firstEventId);
      const plan = first ? this.options.policy.followUp(first, cd, now) : null;
      if (first && plan) {
        const jobs = await enqueueContacts(this.options.state, configured, first.eventId, plan, now);
        this.options.logger.info(
          {
            eventId: first.eventId,
            sensorId: cd.sensorId,
            suppressed: cd.suppressed,
            recipients: jobs.length,
          },
          'follow-up summary queued',
        );
      }
      await this.options.state.deleteCooldown(cd.key, cd.firstEventId);
    }
  }

  private report(
    job: AlertJob,
    status: string,
    error: string | null,
    extra: Record<string, unknown> = {},
  ): void {
    logAttempt(this.options.logger, job, status, error, extra, this.options.onAttempt);
  }

  /** Records a claimed job's outcome; null (and logged) when another bridge took the job over. */
  private async finish(job: AlertJob, status: JobStatus, fields: FinishFields): Promise<AlertJob | null> {
    const done = await this.options.state.finish(
      job.id,
      this.options.lease.owner,
      status,
      this.options.now(),
      fields,
    );
    if (!done)
      this.options.logger.error(
        { alert: true, eventId: job.eventId, channel: job.channel, to: job.recipient, status, jobId: job.id },
        'alert job lease lost before its outcome was recorded (the send outlasted alerts.leaseS)',
      );
    return done;
  }

  private async attempt(job: AlertJob): Promise<void> {
    const { retry } = this.options;
    if (job.kind === 'escalation') {
      const event = await this.options.store.get(job.eventId);
      // anyone responding (acknowledged or resolved) or a review stops the escalation
      const by =
        event?.response && event.response.state !== 'new' ? event.response.userId : event?.review?.userId;
      if (by) {
        const done = await this.finish(job, 'suppressed', { lastError: `acknowledged by ${by}` });
        if (done) this.report(done, 'suppressed', done.lastError);
        return;
      }
    }
    const sender = this.options.senders[job.channel];
    if (!sender) {
      const done = await this.finish(job, 'not-configured', {
        lastError: `${job.channel} is not configured`,
      });
      if (!done) return;
      this.report(done, 'not-configured', done.lastError);
      await this.options.recorder.record(done);
      return;
    }
    const startedAt = this.options.now();
    let done: AlertJob | null;
    try {
      const { providerId } = await sender.send(job.recipient, job);
      done = await this.finish(job, 'sent', { providerId, lastError: null });
      if (done) this.report(done, 'sent', null, { ms: this.options.now() - startedAt });
    } catch (err) {
      const e =
        err instanceof DeliveryError ? err : new DeliveryError((err as Error).message ?? String(err), true);
      if (e.transient && job.attempts <= retry.maxRetries && this.running) {
        // attempts counts this try: the first retry waits about initialDelayMs
        const delay = backoffDelay(retry, job.attempts - 1, this.options.random);
        done = await this.finish(job, 'queued', {
          lastError: e.message,
          nextAtMs: this.options.now() + delay,
        });
        if (done) this.report(done, 'retrying', e.message, { retryInMs: delay });
      } else if (e.transient && job.attempts <= retry.maxRetries) {
        // Stopping: put it back as it was, to be retried after the restart.
        done = await this.finish(job, 'queued', { lastError: e.message, nextAtMs: this.options.now() });
        if (done) this.report(done, 'retrying', e.message);
      } else {
        done = await this.finish(job, 'failed', { lastError: e.message });
        if (done) this.report(done, 'failed', e.message, { permanent: !e.transient });
      }
    }
    if (done) await this.options.recorder.record(done);
  }
}

/** One `alert attempt` log line per attempt, and per job created already final. */
export function logAttempt(
  logger: Logger,
  job: AlertJob,
  status: string,
  error: string | null,
  extra: Record<string, unknown> = {},
  onAttempt?: (channel: string, kind: string, outcome: string) => void,
): void {
  logger.info(
    {
      alert: true,
      eventId: job.eventId,
      kind: job.kind,
      channel: job.channel,
      to: job.recipient,
      attempt: job.attempts,
      status,
      error,
      providerId: job.providerId,
      ...extra,
    },
    'alert attempt',
  );
  onAttempt?.(job.channel, job.kind.startsWith('manual-') ? 'manual' : job.kind, status);
}
