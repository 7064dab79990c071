import { Duplex } from 'node:stream';

/** Why a connection was cut before aedes saw the bytes. */
export class PacketGuardError extends Error {
  constructor(
    readonly reason: 'packet-too-large' | 'not-connect-first',
    message: string,
  ) {
    super(message);
  }
}

const CONNECT = 1;

/**
 * Sits between a socket and aedes and reads only MQTT fixed headers: the packet type and
 * the remaining length (a varint of up to 4 bytes, [MQTT-2.2.3]). mqtt-packet's parser has no
 * size limit and buffers a whole packet before it is parsed, so a client that declares a
 * 256 MB PUBLISH and streams bytes made the bridge hold all of them, before authentication.
 * Here a packet that declares more than `maxPacketBytes` ends the connection at its header,
 * before its body is read, and the first packet must be a CONNECT [MQTT-3.1.0-1].
 * Body bytes are passed through without copying.
 */
export class MqttPacketGuard extends Duplex {
  private state: 'header' | 'length' | 'body' = 'header';
  private type = 0;
  private length = 0;
  private multiplier = 1;
  private remaining = 0;
  private packets = 0;
  /** Set once the broker accepted the CONNECT (the per-IP cap counts only pending ones). */
  authenticated = false;

  constructor(
    private readonly inner: Duplex,
    private readonly maxPacketBytes: number,
    readonly remoteAddress: string | null,
  ) {
    super();
    inner.on('data', (chunk: Buffer) => {
      const err = this.scan(chunk);
      if (err) {
        this.emit('violation', err);
        this.destroy(err);
        return;
      }
      if (!this.push(chunk)) inner.pause();
    });
    inner.once('end', () => this.push(null));
    inner.once('close', () => this.destroy());
    inner.on('error', (err) => this.destroy(err));
  }

  override _read(): void {
    this.inner.resume();
  }

  override _write(chunk: Buffer, enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.inner.write(chunk, enc, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.inner.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }

  private scan(chunk: Buffer): PacketGuardError | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'body') {
        const n = Math.min(this.remaining, chunk.length - i);
        this.remaining -= n;
        i += n;
        if (this.remaining === 0) this.state = 'header';
        continue;
      }
      const byte = chunk[i++]!;
      if (this.state === 'header') {
        this.type = byte >> 4;
        if (this.packets === 0 && this.type !== CONNECT) {
          return new PacketGuardError(
            'not-connect-first',
            `first MQTT packet is type ${this.type}, not CONNECT`,
          );
        }
        this.packets++;
        this.state = 'length';
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      // remaining length: 7 bits per byte, least significant first
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      if (this.length > this.maxPacketBytes) {
        return new PacketGuardError(
          'packet-too-large',
          `MQTT packet (type ${this.type}) declares more than ${this.maxPacketBytes} bytes`,
        );
      }
      if (byte & 0x80) {
        if (this.multiplier > 128 ** 3)
          return new PacketGuardError('packet-too-large', 'malformed remaining length');
        continue;
      }
      this.remaining = this.length;
      this.state = this.remaining > 0 ? 'body' : 'header';
    }
    return null;
  }
}
