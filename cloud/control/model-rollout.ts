import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { UlidFactory } from '../../protocol/event-id.ts';
import { CloudError, type CloudErrorCode } from '../errors.ts';
import type { CommandRecord } from './command-log.ts';
import type { ModelLibrary } from './model-library.ts';
import type { CommandRequest } from './sensor-control.ts';

/**
 * `pending`: its batch has not come; `sent`: set-model is out, waiting for the answer and a
 * status with the new version; `upgraded`: both arrived; `failed`: refused, offline or timed
 * out; `skipped`: an earlier batch failed, nothing was sent.
 */
export type RolloutSensorState = 'pending' | 'sent' | 'upgraded' | 'failed' | 'skipped';

export interface RolloutSensor {
  sensorId: string;
  state: RolloutSensorState;
  commandId: string | null;
  code: string | null;
  message: string | null;
  at: string | null;
}

export interface Rollout {
  rolloutId: string;
  sha256: string;
  version: string;
  startedBy: string;
  startedAt: string;
  finishedAt: string | null;
  batchSize: number;
  /** `failed`: stopped at the first sensor that did not upgrade; `stopped`: the bridge shut down. */
  state: 'running' | 'done' | 'failed' | 'stopped';
  sensors: RolloutSensor[];
}

export interface ModelRolloutsOptions {
  library: Pick<ModelLibrary, 'get' | 'ref'>;
  control: {
    send(sensorId: string, request: CommandRequest, issuedBy: string): Promise<CommandRecord>;
    get(commandId: string): Promise<CommandRecord | null>;
  };
  registry: { get(id: string): { status: string; modelVersion: string | null } | undefined };
  /** Where sensors reach this bridge: web.publicUrl, or the dashboard's own address. */
  baseUrl: () => string;
  /** Default per-batch wait (models.rolloutTimeoutS). */
  timeoutMs: number;
  clock: () => Date;
  logger: Logger;
  /** How often a waiting batch looks at the answers and statuses (default 250 ms). */
  pollMs?: number;
}

/** Rollouts kept for the dashboard (in memory: the audit list keeps every command for good). */
const KEEP = 20;

/**
 * Rolls a model out one batch at a time, server-side: set-model to every sensor of a batch,
 * wait until each has answered ok **and** its status reports the new version (or refused,
 * or the wait ran out), stop at the first failure, else the next batch. One rollout at a time:
 * two at once could each think the fleet is on "their" model.
 */
export class ModelRollouts {
  private readonly ulid = new UlidFactory();
  private readonly rollouts: Rollout[] = [];
  private running: Promise<void> | null = null;
  private abort = new AbortController();

  constructor(private readonly options: ModelRolloutsOptions) {}

  list(): Rollout[] {
    return this.rollouts.map(copy).reverse();
  }

  get(rolloutId: string): Rollout | undefined {
    const r = this.rollouts.find((x) => x.rolloutId === rolloutId);
    return r && copy(r);
  }

  /** Starts a rollout; returns its first state. Throws ROLLOUT_BUSY, MODEL_UNKNOWN, ROLLOUT_INVALID. */
  start(request: {
    sha256: string;
    sensorIds: string[];
    batchSize: number;
    startedBy: string;
    timeoutS?: number | undefined;
  }): Rollout {
    if (this.running)
      throw new CloudError('ROLLOUT_BUSY', 'a rollout is already running; wait for it to end');
    const entry = this.options.library.get(request.sha256);
    if (!entry) throw new CloudError('MODEL_UNKNOWN', `no model ${request.sha256} on this bridge`);
    const ids = [...new Set(request.sensorIds)];
    if (ids.length === 0) throw new CloudError('ROLLOUT_INVALID', 'no sensor to roll out to');
    const unknown = ids.filter((id) => !this.options.registry.get(id));
    if (unknown.length) throw new CloudError('ROLLOUT_INVALID', `unknown sensors: ${unknown.join(', ')}`);
    const now = this.options.clock();
    const rollout: Rollout = {
      rolloutId: this.ulid.next(now.getTime()),
      sha256: entry.sha256,
      version: entry.version,
      startedBy: request.startedBy,
      startedAt: now.toISOString(),
      finishedAt: null,
      batchSize: Math.max(1, Math.floor(request.batchSize)),
      state: 'running',
      sensors: ids.map((sensorId) => ({
        sensorId,
        state: 'pending',
        commandId: null,
        code: null,
        message: null,
        at: null,
      })),
    };
    this.rollouts.push(rollout);
    while (this.rollouts.length > KEEP) this.rollouts.shift();
    const timeoutMs = request.timeoutS ? request.timeoutS * 1000 : this.options.timeoutMs;
    this.options.logger.info(
      { rolloutId: rollout.rolloutId, version: rollout.version, sensors: ids, batchSize: rollout.batchSize },
      `model rollout of ${rollout.version} started by ${request.startedBy}`,
    );
    this.running = this.run(rollout, timeoutMs)
      .catch((err: unknown) => {
        this.options.logger.error({ err, rolloutId: rollout.rolloutId }, 'model rollout failed');
        rollout.state = 'failed';
      })
      .finally(() => {
        rollout.finishedAt ??= this.options.clock().toISOString();
        this.running = null;
      });
    return copy(rollout);
  }

  /** Resolves when the running rollout (if any) has ended (tests). */
  async idle(): Promise<void> {
    await this.running;
  }

  private async run(rollout: Rollout, timeoutMs: number): Promise<void> {
    const { logger } = this.options;
    for (let i = 0; i < rollout.sensors.length; i += rollout.batchSize) {
      const batch = rollout.sensors.slice(i, i + rollout.batchSize);
      await Promise.all(batch.map((s) => this.upgrade(rollout, s, timeoutMs)));
      if (this.abort.signal.aborted) {
        rollout.state = 'stopped';
        break;
      }
      const failed = batch.filter((s) => s.state === 'failed');
      if (failed.length) {
        for (const s of rollout.sensors) if (s.state === 'pending') s.state = 'skipped';
        rollout.state = 'failed';
        logger.warn(
          { rolloutId: rollout.rolloutId, failed: failed.map((s) => `${s.sensorId}: ${s.code}`) },
          `model rollout of ${rollout.version} stopped: ${failed.map((s) => s.sensorId).join(', ')} did not upgrade`,
        );
        break;
      }
    }
    if (rollout.state === 'running') rollout.state = 'done';
    rollout.finishedAt = this.options.clock().toISOString();
    logger.info(
      {
        rolloutId: rollout.rolloutId,
        state: rollout.state,
        upgraded: rollout.sensors.filter((s) => s.state === 'upgraded').length,
      },
      `model rollout of ${rollout.version} ${rollout.state}`,
    );
  }

  private async upgrade(rollout: Rollout, s: RolloutSensor, timeoutMs: number): Promise<void> {
    const { registry, control, clock } = this.options;
    const end = (state: RolloutSensorState, code: string | null, message: string | null) => {
      s.state = state;
      s.code = code;
      s.message = message;
      s.at = clock().toISOString();
    };
    const fail = (code: CloudErrorCode | string, message: string) => end('failed', code, message);
    const view = registry.get(s.sensorId);
    if (view?.status === 'online' && view.modelVersion === rollout.version) {
      end('upgraded', null, `already runs ${rollout.version}`);
      return;
    }
    if (view?.status !== 'online') {
      fail('ROLLOUT_SENSOR_OFFLINE', `${s.sensorId} is ${view?.status ?? 'unknown'}; nothing sent`);
      return;
    }
    let record: CommandRecord;
    try {
      const model = this.options.library.ref(rollout.sha256, this.options.baseUrl());
      record = await control.send(s.sensorId, { command: 'set-model', model }, rollout.startedBy);
    } catch (err) {
      fail((err as CloudError).code ?? 'COMMAND_FAILED', (err as Error).message);
      return;
    }
    s.commandId = record.commandId;
    if (record.state === 'send-failed') {
      fail('COMMAND_FAILED', record.sendError ?? 'the broker did not take the command');
      return;
    }
    end('sent', null, null);
    const pollMs = this.options.pollMs ?? 250;
    const deadline = Date.now() + timeoutMs;
    // bounded: one look per pollMs until the deadline (or the bridge stops)
    while (Date.now() < deadline && !this.abort.signal.aborted) {
      const r = await control.get(record.commandId);
      if (r?.result && !r.result.ok) {
        fail(r.result.code ?? 'COMMAND_FAILED', r.result.message ?? 'refused by the sensor');
        return;
      }
      const now = registry.get(s.sensorId);
      if (r?.result?.ok && now?.modelVersion === rollout.version) {
        end('upgraded', null, r.result.message ?? null);
        return;
      }
      try {
        await delay(pollMs, undefined, { signal: this.abort.signal });
      } catch {
        break;
      }
    }
    if (this.abort.signal.aborted) {
      end('failed', 'CLOUD_START_ABORTED', 'the bridge stopped during the rollout');
      return;
    }
    fail(
      'ROLLOUT_TIMEOUT',
      `no answer with ${rollout.version} in the status within ${Math.round(timeoutMs / 1000)} s`,
    );
  }

  /** Ends a running rollout's waiting (the commands already sent stay sent). */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
    this.abort = new AbortController();
  }
}

function copy(r: Rollout): Rollout {
  return { ...r, sensors: r.sensors.map((s) => ({ ...s })) };
}
