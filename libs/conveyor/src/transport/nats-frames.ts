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
  stored(
    subject: string,
    reply: string,
    msgId: string,
    payload: string | Uint8Array,
    payloadBytes: number,
  ): void;
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

/** The smallest buffer a write starts with; it doubles as frames come. */
const MIN_BUFFER_BYTES = 1024;

/**
 * Frames into nats.js's own outbound buffer (its `sendCommand`, as `nc.publish` does), so the
 * connection keeps one order and flushes as usual. The checks `nc.publish` makes come first:
 * a frame over `max_payload` would make the server close the connection. Each piece is written
 * straight into one buffer per flush: joining them as a string first costs more in flattening it
 * than writing them does.
 */
class ProtocolFrameWriter implements FrameWriter {
  private buf?: Buffer;
  private at = 0;
  /** The last write's size: the next one (a result, or a batch of log lines) is likely alike. */
  private expected = MIN_BUFFER_BYTES;
  /** The last string payload written, and where its bytes are: a live copy reuses them. */
  private lastPayload?: string;
  private lastAt = 0;
  private lastBytes = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly protocol: ProtocolHandler,
  ) {}

  stored(
    subject: string,
    reply: string,
    msgId: string,
    payload: string | Uint8Array,
    payloadBytes: number,
  ): void {
    // Subjects, run ids, driver names and message ids are validated ASCII: length is bytes.
    const header = `NATS/1.0\r\nNats-Msg-Id: ${msgId}\r\n\r\n`;
    const total = header.length + payloadBytes;
    this.check(total);
    const head = reply
      ? `HPUB ${subject} ${reply} ${header.length} ${total}\r\n${header}`
      : `HPUB ${subject} ${header.length} ${total}\r\n${header}`;
    this.frame(head, payload, payloadBytes);
  }

  core(subject: string, payload: string, payloadBytes: number): void {
    this.check(payloadBytes);
    const head = `PUB ${subject} ${payloadBytes}\r\n`;
    if (this.lastPayload !== payload) return this.frame(head, payload, payloadBytes);
    // The same bytes as the stored frame just written (a log line's live copy): copied, not encoded again.
    const buf = this.room(head.length + payloadBytes + 2);
    let at = this.at + buf.write(head, this.at, 'latin1');
    at += buf.copy(buf, at, this.lastAt, this.lastAt + this.lastBytes);
    buf[at++] = 0x0d;
    buf[at++] = 0x0a;
    this.at = at;
  }

  flush(): number {
    const { buf, at } = this;
    if (!buf || at === 0) return 0;
    // Handed over for good (nats.js and the socket may hold it until written): never reused.
    this.buf = undefined;
    this.at = 0;
    this.lastPayload = undefined;
    this.expected = Math.max(MIN_BUFFER_BYTES, at);
    this.protocol.sendCommand(buf.subarray(0, at));
    if (at >= WRITE_NOW_BYTES) this.protocol.flushPending?.();
    return at;
  }

  discard(): void {
    this.at = 0;
    this.lastPayload = undefined;
  }

  /** `head` (ASCII), the payload, CRLF. */
  private frame(head: string, payload: string | Uint8Array, payloadBytes: number): void {
    const buf = this.room(head.length + payloadBytes + 2);
    let at = this.at + buf.write(head, this.at, 'latin1');
    if (typeof payload !== 'string') {
      buf.set(payload, at);
      at += payload.length;
    } else {
      // All ASCII (the usual log line, its byte count equal to its length): latin1 is a plain copy.
      const start = at;
      at += buf.write(payload, at, payloadBytes === payload.length ? 'latin1' : 'utf8');
      this.lastPayload = payload;
      this.lastAt = start;
      this.lastBytes = at - start;
    }
    buf[at++] = 0x0d;
    buf[at++] = 0x0a;
    this.at = at;
  }

  private room(bytes: number): Buffer {
    const needed = this.at + bytes;
    if (this.buf && needed <= this.buf.length) return this.buf;
    const next = Buffer.allocUnsafe(Math.max(this.expected, needed, (this.buf?.length ?? 0) * 2));
    this.buf?.copy(next, 0, 0, this.at);
    return (this.buf = next);
  }

  private check(bytes: number): void {
    if (this.nc.isClosed()) throw NatsError.errorForCode(ErrorCode.ConnectionClosed);
    if (this.protocol.noMorePublishing) throw NatsError.errorForCode(ErrorCode.ConnectionDraining);
    const max = this.nc.info?.max_payload;
    if (max !== undefined && bytes > max) throw NatsError.errorForCode(ErrorCode.MaxPayloadExceeded);
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
