import { ErrorCode, NatsConnection, NatsError, headers } from 'nats';
import { decimalLength, putBytes, putCrlf, putDecimal } from './ascii-bytes';

/**
 * A subject that many frames go to and, for stored ones, the `Nats-Msg-Id` they start with, both
 * encoded once: a run's log lines share them by the thousand. UTF-8, as nats.js writes them: a
 * subject token may be any non-ASCII name (a driver's), and its spelling must be the one the
 * subscribers use.
 */
export class FrameTarget {
  /** `HPUB {subject} ` */
  readonly storedHead: Buffer;
  /** `PUB {subject} ` */
  readonly coreHead: Buffer;
  /** `NATS/1.0\r\nNats-Msg-Id: {msgIdPrefix}`: the header block up to the id's own part. */
  readonly header: Buffer;

  constructor(
    readonly subject: string,
    readonly msgIdPrefix = '',
  ) {
    this.storedHead = Buffer.from(`HPUB ${subject} `, 'utf8');
    this.coreHead = Buffer.from(`PUB ${subject} `, 'utf8');
    this.header = Buffer.from(`NATS/1.0\r\nNats-Msg-Id: ${msgIdPrefix}`, 'utf8');
  }
}

/** A payload that writes its own bytes into a frame: exactly as many as the caller announced. */
export interface FramePayload {
  /** Writes at `at` and returns the offset after the payload. */
  writeTo(buf: Buffer, at: number): number;
}

/**
 * Publishes written as NATS protocol frames, many to one socket write. Log lines come by the
 * hundred thousand: `nc.publish` per line builds a header object, encodes the protocol line and
 * the payload separately and copies them into its outbound buffer one by one (a third of a
 * flooded run's CPU). Here the frames of a batch go into one buffer, their parts written as bytes.
 * Log lines only: a result is one message and goes through `nc.publish` (JetStreamPublisher.publish).
 */
export interface FrameWriter {
  /**
   * A publish to `target` with `Nats-Msg-Id: {target.msgIdPrefix}{idSuffix}` (and a `reply`
   * subject, or ''), `payloadBytes` long. Throws as `nc.publish` does: closed or draining
   * connection, over `max_payload`.
   */
  stored(
    target: FrameTarget,
    reply: string,
    idSuffix: string | number,
    payload: Uint8Array | FramePayload,
    payloadBytes: number,
  ): void;
  /** A core publish to `target` of the payload the last `stored` call wrote (a log line's live copy). */
  coreCopy(target: FrameTarget): void;
  /** Hands everything written since the last flush to the connection, in order; returns its bytes. */
  flush(): number;
  /** Forgets what was written since the last flush (a batch that failed half way is not sent). */
  discard(): void;
  /**
   * Bytes flushed but still in this process (nats.js's outbound buffer, the socket's queue), not
   * yet taken by the kernel; `Infinity` when the writer cannot tell.
   */
  heldBytes(): number;
}

/** The part of nats.js's (2.x) protocol handler the raw writer needs. */
interface ProtocolHandler {
  sendCommand(cmd: string | Uint8Array, ...payloads: Uint8Array[]): void;
  flushPending?(): void;
  noMorePublishing?: boolean;
  outbound?: { size?(): number };
  transport?: { socket?: { writableLength?: number } };
}

/**
 * A write this large goes to the socket at once: left for nats.js's end-of-task flush, the next
 * one would be copied together with it (and a handler logging in a synchronous loop would keep
 * the server waiting until it yields).
 */
const WRITE_NOW_BYTES = 32 * 1024;

/** The smallest buffer a write starts with; it doubles as frames come. */
const MIN_BUFFER_BYTES = 1024;

/** Room for a protocol line's two sizes, the spaces and CR LFs around them. */
const SIZES_ROOM = 2 * 10 + 8;
/** The header block's end after the message id: CR LF, and the empty line. */
const HEADER_END_BYTES = 4;

const SPACE = 0x20;

/**
 * Frames into nats.js's own outbound buffer (its `sendCommand`, as `nc.publish` does), so the
 * connection keeps one order and flushes as usual. The checks `nc.publish` makes come first:
 * a frame over `max_payload` would make the server close the connection.
 */
class ProtocolFrameWriter implements FrameWriter {
  private buf?: Buffer;
  private at = 0;
  /**
   * The next write's likely size: the last one's (a result, or a batch of log lines) and an eighth.
   * Batches differ by a few bytes, and one byte over the buffer would copy all of it once more.
   */
  private expected = MIN_BUFFER_BYTES;
  /** Where the last stored payload is in `buf` (-1: none since the last flush). */
  private lastAt = -1;
  private lastBytes = 0;
  /** The server's `max_payload`, read with the connection checks at the start of a write. */
  private maxPayload = Infinity;

  constructor(
    private readonly nc: NatsConnection,
    private readonly protocol: ProtocolHandler,
  ) {}

  stored(
    target: FrameTarget,
    reply: string,
    idSuffix: string | number,
    payload: Uint8Array | FramePayload,
    payloadBytes: number,
  ): void {
    const suffix = typeof idSuffix === 'number' ? decimalLength(idSuffix) : Buffer.byteLength(idSuffix);
    const headerBytes = target.header.length + suffix + HEADER_END_BYTES;
    const total = headerBytes + payloadBytes;
    this.check(total);
    const replyBytes = reply ? Buffer.byteLength(reply) : 0;
    const buf = this.room(target.storedHead.length + replyBytes + SIZES_ROOM + total);
    let at = putBytes(buf, this.at, target.storedHead);
    if (reply) {
      at += buf.write(reply, at, 'utf8');
      buf[at++] = SPACE;
    }
    at = putDecimal(buf, at, headerBytes);
    buf[at++] = SPACE;
    at = putCrlf(buf, putDecimal(buf, at, total));
    at = putBytes(buf, at, target.header);
    at = typeof idSuffix === 'number' ? putDecimal(buf, at, idSuffix) : at + buf.write(idSuffix, at, 'utf8');
    at = putCrlf(buf, putCrlf(buf, at));
    const start = at;
    if (payload instanceof Uint8Array) {
      buf.set(payload, at);
      at += payload.length;
    } else at = payload.writeTo(buf, at);
    // A size that does not match its bytes would desynchronise the connection: the server
    // would read the rest of the stream as garbage and close it.
    if (at - start !== payloadBytes) {
      this.discard();
      throw new Error(`a payload of ${at - start} bytes was announced as ${payloadBytes}`);
    }
    this.at = putCrlf(buf, at);
    this.lastAt = start;
    this.lastBytes = payloadBytes;
  }

  coreCopy(target: FrameTarget): void {
    if (this.lastAt < 0) throw new Error('coreCopy() needs a stored() payload written before it');
    // No check: the payload is the one the stored frame just wrote (checked, and within max_payload).
    const bytes = this.lastBytes;
    const buf = this.room(target.coreHead.length + SIZES_ROOM + bytes);
    const at = putCrlf(buf, putDecimal(buf, putBytes(buf, this.at, target.coreHead), bytes));
    // The same bytes as the stored frame just written: copied, not encoded again.
    buf.copyWithin(at, this.lastAt, this.lastAt + bytes);
    this.at = putCrlf(buf, at + bytes);
  }

  flush(): number {
    const { buf, at } = this;
    if (!buf || at === 0) return 0;
    this.at = 0;
    this.lastAt = -1;
    this.expected = Math.max(MIN_BUFFER_BYTES, at + (at >> 3));
    this.protocol.sendCommand(buf.subarray(0, at));
    if (at >= WRITE_NOW_BYTES) this.protocol.flushPending?.();
    // Reused only when the socket took every byte at once: nothing in nats.js or Node refers to it
    // then (a write left pending keeps its buffer). A flood otherwise leaves a frame buffer of
    // garbage per batch, tens of MB between collections.
    if (this.heldBytes() !== 0) this.buf = undefined;
    return at;
  }

  discard(): void {
    this.at = 0;
    this.lastAt = -1;
  }

  heldBytes(): number {
    const outbound = this.protocol.outbound?.size?.();
    const socket = this.protocol.transport?.socket?.writableLength;
    return typeof outbound === 'number' && typeof socket === 'number' ? outbound + socket : Infinity;
  }

  private room(bytes: number): Buffer {
    const needed = this.at + bytes;
    if (this.buf && needed <= this.buf.length) return this.buf;
    const next = Buffer.allocUnsafe(Math.max(this.expected, needed, (this.buf?.length ?? 0) * 2));
    this.buf?.copy(next, 0, 0, this.at);
    return (this.buf = next);
  }

  /**
   * The checks `nc.publish` makes, the connection's once per write: frames written together are
   * written in one synchronous stretch, and the connection cannot close or drain within it.
   */
  private check(bytes: number): void {
    if (this.at === 0) {
      if (this.nc.isClosed()) throw NatsError.errorForCode(ErrorCode.ConnectionClosed);
      if (this.protocol.noMorePublishing) throw NatsError.errorForCode(ErrorCode.ConnectionDraining);
      this.maxPayload = this.nc.info?.max_payload ?? Infinity;
    }
    if (bytes > this.maxPayload) throw NatsError.errorForCode(ErrorCode.MaxPayloadExceeded);
  }
}

/** `nc.publish` per frame: the same frames, for a nats.js without the protocol handler above. */
class PublishFrameWriter implements FrameWriter {
  private bytes = 0;
  private last?: Uint8Array;

  constructor(private readonly nc: NatsConnection) {}

  stored(
    target: FrameTarget,
    reply: string,
    idSuffix: string | number,
    payload: Uint8Array | FramePayload,
    payloadBytes: number,
  ): void {
    const h = headers();
    h.set('Nats-Msg-Id', `${target.msgIdPrefix}${idSuffix}`);
    let data: Uint8Array;
    if (payload instanceof Uint8Array) data = payload;
    else {
      const buf = Buffer.allocUnsafe(payloadBytes);
      if (payload.writeTo(buf, 0) !== payloadBytes)
        throw new Error(`a payload was not the ${payloadBytes} bytes announced`);
      data = buf;
    }
    this.nc.publish(target.subject, data, reply ? { reply, headers: h } : { headers: h });
    this.last = data;
    this.bytes += data.length;
  }

  coreCopy(target: FrameTarget): void {
    if (!this.last) throw new Error('coreCopy() needs a stored() payload written before it');
    this.nc.publish(target.subject, this.last);
    this.bytes += this.last.length;
  }

  flush(): number {
    const n = this.bytes;
    this.bytes = 0;
    this.last = undefined;
    return n;
  }

  discard(): void {
    this.bytes = 0;
    this.last = undefined;
  }

  heldBytes(): number {
    return Infinity;
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
