import type { Logger } from 'pino';
import { encodeCommand } from '../../protocol/codec.ts';
import { UlidFactory } from '../../protocol/event-id.ts';
import {
  type CommandMessage,
  type CommandName,
  type CommandResultMessage,
  type DetectionOverrides,
  type ModelRef,
  PROTOCOL_VERSION,
} from '../../protocol/messages.ts';
import { commandTopic } from '../../protocol/topics.ts';
import { CloudError } from '../errors.ts';
import type { CommandLog, CommandRecord } from './command-log.ts';

export interface SensorControlOptions {
  log: CommandLog;
  topicRoot: string;
  /** Publishes as the bridge, QoS 1; resolves on the broker's PUBACK. */
  publish: (topic: string, payload: Buffer) => Promise<void>;
  /** Whether the sensor is known (configured or seen). */
  knows: (sensorId: string) => boolean;
  clock: () => Date;
  logger: Logger;
  /** How long to wait for the broker's PUBACK before calling the send failed. */
  sendTimeoutMs?: number;
}

export interface CommandRequest {
  command: CommandName;
  detection?: DetectionOverrides;
  model?: ModelRef;
}

/**
 * The bridge's end of the control plane: records a command (who, when, what) before sending
 * it, publishes it to the sensor's commands topic, and records the sensor's answer. The record
 * is the audit list of the sensor page; its state never claims more than is known (queued at
 * the broker is not applied on the sensor).
 */
export class SensorControl {
  private readonly ulid = new UlidFactory();
  private readonly listeners = new Set<(r: CommandRecord) => void>();

  constructor(private readonly options: SensorControlOptions) {}

  /** Told about every change of a command record (the dashboard's live feed). */
  subscribe(fn: (r: CommandRecord) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(r: CommandRecord | null): void {
    if (!r) return;
    for (const l of this.listeners) {
      try {
        l(r);
      } catch (err) {
        this.options.logger.warn({ err }, 'command listener failed');
      }
    }
  }

  /**
   * Sends one command; resolves with its record once the broker took it (`queued`) or did not
   * (`send-failed`). Throws COMMAND_INVALID for a command the protocol refuses (bounds), before
   * anything is recorded or sent.
   */
  async send(sensorId: string, request: CommandRequest, issuedBy: string): Promise<CommandRecord> {
    const { log, logger } = this.options;
    if (!this.options.knows(sensorId)) throw new CloudError('COMMAND_INVALID', `no sensor ${sensorId}`);
    const now = this.options.clock();
    const message: CommandMessage = {
      v: PROTOCOL_VERSION,
      commandId: this.ulid.next(now.getTime()),
      sensorId,
      command: request.command,
      issuedAt: now.toISOString(),
      issuedBy: issuedBy.slice(0, 100),
      ...(request.detection && { detection: request.detection }),
      ...(request.model && { model: request.model }),
    };
    let payload: Buffer;
    try {
      payload = encodeCommand(message);
    } catch (err) {
      throw new CloudError('COMMAND_INVALID', (err as Error).message, { problem: (err as Error).message });
    }
    const record: CommandRecord = {
      commandId: message.commandId,
      sensorId,
      command: message.command,
      issuedAt: message.issuedAt,
      issuedBy: message.issuedBy,
      ...(message.detection && { detection: message.detection }),
      ...(message.model && { model: message.model }),
      state: 'sending',
      sendError: null,
      result: null,
    };
    await log.insert(record);
    this.changed(record);
    const topic = commandTopic(this.options.topicRoot, sensorId, message.command);
    let error: string | null = null;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.options.publish(topic, payload),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error('the broker did not acknowledge the command in time')),
            this.options.sendTimeoutMs ?? 10_000,
          );
        }),
      ]);
    } catch (err) {
      error = (err as Error).message;
    } finally {
      clearTimeout(timer);
    }
    await log.setSendState(record.commandId, error ? 'send-failed' : 'queued', error ?? undefined);
    const after = await log.get(record.commandId);
    logger[error ? 'error' : 'info'](
      {
        ...(error && { code: 'COMMAND_FAILED', err: error }),
        commandId: record.commandId,
        sensorId,
        command: record.command,
        issuedBy: record.issuedBy,
      },
      error
        ? `command ${record.command} to ${sensorId} not sent: ${error}`
        : `command ${record.command} sent to ${sensorId}`,
    );
    this.changed(after);
    return after ?? record;
  }

  /** A sensor's answer (from ingest): recorded before the broker is acknowledged. */
  async onResult(result: CommandResultMessage): Promise<void> {
    const record = await this.options.log.recordResult(result, this.options.clock().toISOString());
    if (!record) {
      // another bridge's command log (SQLite per bridge), or one purged: nothing to attach it to
      this.options.logger.info(
        { commandId: result.commandId, sensorId: result.sensorId, ok: result.ok },
        'a command result for a command this bridge did not send',
      );
      return;
    }
    this.changed(record);
  }

  /** One command's record (a rollout waits on its answer). */
  get(commandId: string): Promise<CommandRecord | null> {
    return this.options.log.get(commandId);
  }

  list(sensorId: string, limit = 50): Promise<CommandRecord[]> {
    return this.options.log.list(sensorId, limit);
  }
}
