import { createServer, type Server, type Socket } from 'node:net';
import { Aedes, type AedesOptions, type AedesPublishPacket } from 'aedes';
import { eventually } from './eventually.ts';

export interface AedesHarnessOptions {
  /** Listen on this port (to restart a broker where clients expect it); default a free one. */
  port?: number;
  /** Accept only these credentials; anything else gets CONNACK 4 (bad username or password). */
  users?: Record<string, string>;
  /** Passed to the broker as is (authorizePublish, etc.). `authenticate` wins over `users`. */
  aedesOptions?: AedesOptions;
}

export interface ReceivedMessage {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  clientId: string | null;
}

export interface AedesHarness {
  url: string;
  port: number;
  broker: Aedes;
  /** Every PUBLISH the broker accepted from a client (not its own $SYS traffic), in order. */
  messages: ReceivedMessage[];
  /** Resolves once `predicate` holds for the received messages; rejects after `timeoutMs`. */
  waitFor(
    predicate: (messages: ReceivedMessage[]) => boolean,
    timeoutMs?: number,
  ): Promise<ReceivedMessage[]>;
  /** Stops listening and drops every client connection abruptly (like a crashed broker). */
  stop(): Promise<void>;
}

/** An in-process aedes MQTT broker on 127.0.0.1 (port 0 unless `port` is given). */
export async function startAedes(options: AedesHarnessOptions = {}): Promise<AedesHarness> {
  const aedesOptions: AedesOptions = { ...options.aedesOptions };
  const users = options.users;
  if (users && !aedesOptions.authenticate) {
    aedesOptions.authenticate = (_client, username, password, done) => {
      const ok =
        username !== undefined && users[username] !== undefined && users[username] === password?.toString();
      if (ok) return done(null, true);
      const err = Object.assign(new Error('bad username or password'), { returnCode: 4 });
      done(err as never, false);
    };
  }
  const broker = await Aedes.createBroker(aedesOptions);
  const messages: ReceivedMessage[] = [];
  broker.on('publish', (packet: AedesPublishPacket, client) => {
    if (!client) return;
    messages.push({
      topic: packet.topic,
      payload: Buffer.from(packet.payload),
      qos: packet.qos,
      retain: packet.retain,
      clientId: client.id ?? null,
    });
  });

  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;

  let stopped: Promise<void> | null = null;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    broker,
    messages,
    waitFor(predicate, timeoutMs = 10_000) {
      return eventually(
        () => predicate(messages) && messages,
        timeoutMs,
        `aedes harness: condition (${messages.length} so far)`,
      );
    },
    stop() {
      stopped ??= (async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => broker.close(() => resolve()));
      })();
      return stopped;
    },
  };
}
