import { join } from 'node:path';
import type { Logger } from 'pino';
import { decodeCommand } from '../../protocol/codec.ts';
import { ScreamwatchError } from '../../protocol/errors.ts';
import {
  type CommandMessage,
  type CommandName,
  type CommandResultMessage,
  PROTOCOL_VERSION,
} from '../../protocol/messages.ts';
import { readJsonFile, writeJsonFileAtomic } from '../../runtime/json-file.ts';
import type { Clock } from '../clock.ts';
import { DaemonError } from '../errors.ts';
import { DAEMON_VERSION } from '../version.ts';

/** What a handler reports back: the result's optional facts (settings in force, model, a note). */
export type CommandOutcome = Pick<CommandResultMessage, 'detection' | 'modelVersion' | 'message'>;

/** One function per command; each throws a coded error to refuse (nothing changed then). */
export type CommandHandlers = {
  [C in CommandName]?: (command: CommandMessage) => CommandOutcome | Promise<CommandOutcome>;
};

export interface CommandServiceOptions {
  sensorId: string;
  topicRoot: string;
  stateDir: string;
  /** Commands issued longer ago than this are refused (COMMAND_EXPIRED). */
  maxCommandAgeS: number;
  handlers: CommandHandlers;
  /** Commits the result durably (the outbox); the publisher sends it. */
  commitResult: (result: CommandResultMessage) => void;
  clock: Clock;
  logger: Logger;
}

/** Command ids remembered, so a redelivered or replayed command is applied once. */
const SEEN_LIMIT = 500;

/**
 * The sensor's end of the control plane. Commands arrive on the persistent session's
 * subscription (mqtt-publisher.ts 'command'), are validated against protocol/messages.ts,
 * applied one at a time in arrival order, and answered on `command-results` through the outbox
 * (so an answer survives a dropped connection). A commandId seen before is ignored: MQTT QoS 1
 * may deliver twice, and a captured command replayed later must not apply again. The ids seen
 * are kept in `<stateDir>/commands-seen.json` across restarts.
 */
export class CommandService {
  private readonly seen: string[] = [];
  private readonly seenSet = new Set<string>();
  private readonly seenFile: string;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Commands applied, refused, and ignored as duplicates since start. */
  readonly counts = { applied: 0, refused: 0, duplicate: 0, invalid: 0 };

  constructor(private readonly options: CommandServiceOptions) {
    this.seenFile = join(options.stateDir, 'commands-seen.json');
  }

  async start(): Promise<void> {
    this.stopped = false;
    let raw: unknown;
    try {
      raw = readJsonFile(this.seenFile);
    } catch (err) {
      this.options.logger.error(
        { code: 'SETTINGS_CORRUPT', file: this.seenFile, err: (err as Error).message },
        'the list of applied command ids is unreadable; starting a new one (a command queued before may apply again)',
      );
    }
    if (Array.isArray(raw)) for (const id of raw) if (typeof id === 'string') this.remember(id);
  }

  /** Waits for the command being applied, then takes no more. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.chain;
  }

  /** A message on the commands subscription; answered (or ignored) in arrival order. */
  receive(topic: string, payload: Buffer): void {
    if (this.stopped) return;
    this.chain = this.chain
      .then(() => this.handle(topic, payload))
      .catch((err: unknown) => {
        this.options.logger.error({ err, topic }, 'command handling failed');
      });
  }

  /** Resolves once every command received so far is handled (tests). */
  idle(): Promise<void> {
    return this.chain;
  }

  private async handle(topic: string, payload: Buffer): Promise<void> {
    const { sensorId, topicRoot, logger } = this.options;
    const prefix = `${topicRoot}/sensors/${sensorId}/commands/`;
    const name = topic.startsWith(prefix) ? topic.slice(prefix.length) : '';
    let command: CommandMessage;
    try {
      command = decodeCommand(sensorId, name, payload);
    } catch (err) {
      this.counts.invalid++;
      // without a valid commandId there is nobody to answer: log it with the code
      logger.warn(
        {
          code: (err as ScreamwatchError).code ?? 'MQTT_PAYLOAD_INVALID',
          topic,
          err: (err as Error).message,
        },
        'command refused: not a valid command message',
      );
      return;
    }
    if (this.seenSet.has(command.commandId)) {
      this.counts.duplicate++;
      logger.info(
        { commandId: command.commandId, command: command.command },
        'command already applied; ignored',
      );
      return;
    }
    const ageS = (this.options.clock.now() - Date.parse(command.issuedAt)) / 1000;
    let outcome: CommandOutcome;
    try {
      if (ageS > this.options.maxCommandAgeS) {
        throw new DaemonError(
          'COMMAND_EXPIRED',
          `issued ${Math.round(ageS)} s ago, more than control.maxCommandAgeS (${this.options.maxCommandAgeS} s)`,
        );
      }
      const handler = this.options.handlers[command.command];
      if (!handler) {
        throw new DaemonError('COMMAND_INVALID', `this sensor does not handle ${command.command}`);
      }
      outcome = await handler(command);
    } catch (err) {
      this.remember(command.commandId);
      this.saveSeen();
      this.counts.refused++;
      const code = err instanceof ScreamwatchError ? err.code : 'COMMAND_FAILED';
      const message = (err as Error).message;
      logger.warn(
        { code, commandId: command.commandId, command: command.command, issuedBy: command.issuedBy },
        `command ${command.command} refused: ${message}`,
      );
      this.answer(command, false, { message: message.slice(0, 1000) }, code);
      return;
    }
    this.remember(command.commandId);
    this.saveSeen();
    this.counts.applied++;
    logger.info(
      { commandId: command.commandId, command: command.command, issuedBy: command.issuedBy },
      `command ${command.command} applied`,
    );
    this.answer(command, true, outcome);
  }

  private answer(command: CommandMessage, ok: boolean, outcome: CommandOutcome, code?: string): void {
    const result: CommandResultMessage = {
      v: PROTOCOL_VERSION,
      commandId: command.commandId,
      sensorId: this.options.sensorId,
      command: command.command,
      timestamp: new Date(this.options.clock.now()).toISOString(),
      ok,
      ...(code && { code: code.slice(0, 64) }),
      ...(outcome.message && { message: outcome.message.slice(0, 1000) }),
      ...(outcome.detection && { detection: outcome.detection }),
      ...(outcome.modelVersion && { modelVersion: outcome.modelVersion.slice(0, 100) }),
      daemonVersion: DAEMON_VERSION,
    };
    this.options.commitResult(result);
  }

  private remember(id: string): void {
    if (this.seenSet.has(id)) return;
    this.seen.push(id);
    this.seenSet.add(id);
    while (this.seen.length > SEEN_LIMIT) this.seenSet.delete(this.seen.shift()!);
  }

  private saveSeen(): void {
    try {
      writeJsonFileAtomic(this.seenFile, this.seen);
    } catch (err) {
      // remembered in memory until the next restart; the log says a replay could apply again
      this.options.logger.error(
        { code: 'SETTINGS_WRITE_FAILED', file: this.seenFile, err: (err as Error).message },
        'cannot save the applied command ids; after a restart a redelivered command may apply again',
      );
    }
  }
}
