import { ErrorCode, NatsConnection, NatsError, headers } from 'nats';

/**
 * Publishes written as NATS protocol frames, many to one socket write. Log lines come by the
 * hundred thousand: `nc.publish` per line builds a header object, encodes the protocol line and
 * the payload separately and copies them into its outbound buffer one by one (a third of a
 * flooded run's CPU). Here a batch is one string, encoded once.
 */
export interface FrameWriter {
  /**
   * A publish with `Nats-Msg-Id: msgId` (and a `reply` subject, or ''). `payloadBytes` is the UTF-8
   * length of a string payload. Throws as `nc.publish` does: closed connection, over `max_payload`.
   */
  stored(subject: string, reply: string, msgId: string, payload: string | Uint8Array, payloadBytes: number): void;
  /** A core publish of `payload` (`payloadBytes` long in UTF-8). */
  core(subject: string, payload: string, payloadBytes: number): void;
  /** Hands everything written since the last flush to the connection, in order; returns its bytes. */
  flush(): number;
  /** Forgets what was written since the last flush (a batch that failed half way is not sent). */
  discard(): void;
}

/** The part of nats.js's (2.x) protocol handler the raw writer needs. */
interface ProtocolHandler {
  sendCommand(cmd: string | Uint8Array, ...payloads: Uint8Array[]): void;
  flushPending?(): void;
  noMorePublishing?: boolean;
}

/**
 * A write this large goes to the socket at once: left for nats.js's end-of-task flush, the next
 * one would be copied together with it (and a handler logging in a synchronous loop would keep
 * the server waiting until it yields).
 */
const WRITE_NOW_BYTES = 32 * 1024;

const CRLF = Buffer.from('\r\n');

/**
 * Frames into nats.js's own outbound buffer (its `sendCommand`, as `nc.publish` does), so the
 * connection keeps one order and flushes as usual. The checks `nc.publish` makes come first:
 * a frame over `max_payload` would make the server close the connection.
 */
class ProtocolFrameWriter implements FrameWriter {
  private text = '';
  /** UTF-8 length of `text`: equal to its length when it is all ASCII. */
  private bytes = 0;
  private direct = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly protocol: ProtocolHandler,
  ) {}

  stored(subject: string, reply: string, msgId: string, payload: string | Uint8Array, payloadBytes: number): void {
    // Subjects, run ids, driver names and message ids are validated ASCII: length is bytes.
    const header = `NATS/1.0\r\nNats-Msg-Id: ${msgId}\r\n\r\n`;
    const total = header.length + payloadBytes;
    this.check(total);
    const head = reply
      ? `HPUB ${subject} ${reply} ${header.length} ${total}\r\n`
      : `HPUB ${subject} ${header.length} ${total}\r\n`;
    if (typeof payload === 'string') {
      this.text += head + header + payload + '\r\n';
      this.bytes += head.length + total + 2;
      return;
    }
    this.direct += this.flush() + head.length + total + 2;
    this.protocol.sendCommand(Buffer.from(head + header), payload, CRLF);
  }

  core(subject: string, payload: string, payloadBytes: number): void {
    this.check(payloadBytes);
    const head = `PUB ${subject} ${payloadBytes}\r\n`;
    this.text += head + payload + '\r\n';
    this.bytes += head.length + payloadBytes + 2;
  }

  flush(): number {
    const { text, bytes } = this;
    if (!text) return this.sentBytes();
    this.discard();
    // All ASCII (the usual log line): latin1 is a plain copy, UTF-8 would scan every character.
    this.protocol.sendCommand(Buffer.from(text, bytes === text.length ? 'latin1' : 'utf8'));
    if (bytes >= WRITE_NOW_BYTES) this.protocol.flushPending?.();
    return this.sentBytes(bytes);
  }

  /** Bytes handed over since the last flush (frames with a binary payload go out at once). */
  private sentBytes(more = 0): number {
    const n = this.direct + more;
    this.direct = 0;
    return n;
  }

  private check(bytes: number): void {
    if (this.nc.isClosed()) throw NatsError.errorForCode(ErrorCode.ConnectionClosed);
    if (this.protocol.noMorePublishing) throw NatsError.errorForCode(ErrorCode.ConnectionDraining);
    const max = this.nc.info?.max_payload;
    if (max !== undefined && bytes > max) throw NatsError.errorForCode(ErrorCode.MaxPayloadExceeded);
  }

  discard(): void {
    this.text = '';
    this.bytes = 0;
  }
}

/** `nc.publish` per frame: the same frames, for a nats.js without the protocol handler above. */
class PublishFrameWriter implements FrameWriter {
  private readonly encoder = new TextEncoder();
  private bytes = 0;

  constructor(private readonly nc: NatsConnection) {}

  stored(subject: string, reply: string, msgId: string, payload: string | Uint8Array): void {
    const h = headers();
    h.set('Nats-Msg-Id', msgId);
    const data = typeof payload === 'string' ? this.encoder.encode(payload) : payload;
    this.nc.publish(subject, data, reply ? { reply, headers: h } : { headers: h });
    this.bytes += data.length;
  }

  core(subject: string, payload: string): void {
    const data = this.encoder.encode(payload);
    this.nc.publish(subject, data);
    this.bytes += data.length;
  }

  flush(): number {
    const n = this.bytes;
    this.bytes = 0;
    return n;
  }

  discard(): void {
    this.bytes = 0;
  }
}

/** The fastest writer `nc` supports. */
export function frameWriterFor(nc: NatsConnection): FrameWriter {
  const protocol = (nc as unknown as { protocol?: Partial<ProtocolHandler> }).protocol;
  return typeof protocol?.sendCommand === 'function'
    ? new ProtocolFrameWriter(nc, protocol as ProtocolHandler)
    : new PublishFrameWriter(nc);
}

/** The per-frame writer, whatever `nc` supports (tests compare the two). */
export function publishFrameWriter(nc: NatsConnection): FrameWriter {
  return new PublishFrameWriter(nc);
}
