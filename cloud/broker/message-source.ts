/**
 * Where sensor messages come from: the embedded broker (in-process subscription) or an
 * external broker (an MQTT client with shared subscriptions). The handler's promise
 * settles once the message is stored; only then is it acknowledged to the broker.
 */
export type MessageHandler = (
  topic: string,
  payload: Buffer,
  meta: { ip: string | null },
) => Promise<unknown>;

export interface MessageSource {
  setHandler(handler: MessageHandler): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Readiness: null when accepting/connected, else why not (/healthz). */
  notReadyReason?(): string | null;
  /** MQTT clients connected (embedded broker) or 1/0 for the bridge's own connection. */
  connectionCount?(): number;
  /** Publishes as the bridge (QoS 1), e.g. Home Assistant discovery; rejects when it cannot. */
  publish?(topic: string, payload: string | Buffer, options: { retain: boolean }): Promise<void>;
}
