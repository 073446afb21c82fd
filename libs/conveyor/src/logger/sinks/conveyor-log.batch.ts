import { createHash } from 'node:crypto';
import {
  LOG_LINE_MIDDLE,
  LOG_LINE_TAIL,
  liveLogSubject,
  logLineHead,
  logMessageText,
  logSubject,
} from '../../protocol';
import type { StoredBatch } from '../../transport/jetstream.publisher';
import { FramePayload, FrameTarget, FrameWriter } from '../../transport/nats-frames';
import type { LogEntry } from '../log-entry';
import { copyBytes, putBytes, putPadded, writeText } from '../../transport/ascii-bytes';
import { RunBinding, STAMP_FRACTION_DIGITS, nanosWithinSecond, secondStamp } from '../run-scope';

/**
 * Lines per stored batch: one socket write and two PubAcks for this many lines (see
 * JetStreamPublisher), instead of a round trip and a PubAck each. 512, not 128: each batch wakes
 * the server to read it and the driver to read its PubAcks, and on two cores those wake-ups cost
 * both processes; 128 -> 512 took a fifth to a quarter off the driver's CPU in a 100,000-line
 * burst (1,024 gained nothing more). A batch is sealed when its task yields, so a slow logger's
 * lines still go at once.
 */
export const BATCH_LINES = 512;
/** …or fewer, when their messages reach this many bytes. */
const BATCH_BYTES = 64 * 1024;

/** What a queued line costs beyond its message bytes: its share of the columns below. */
export const QUEUED_LINE_BYTES = 64;

/** The Log JSON beyond its prefix and message: timestamp, keys, quotes (escapes add more). */
const LOG_JSON_BYTES = 48;
/** A line's two frames beyond subjects, payloads and message id: protocol lines, header, sizes. */
const FRAMES_BYTES = 96;

/**
 * Room in a frame beyond the run's head and the message: the widest stamp (RFC 3339 with
 * nanoseconds), the JSON around the message, the id's own part (`drops-` and a sequence) and the
 * header block's end. An upper bound: a line within a few dozen bytes of the limit is refused
 * although it might just fit.
 */
const FRAME_ROOM_BYTES = 40 + LOG_LINE_MIDDLE.length + LOG_LINE_TAIL.length + 30 + 4;

/** What `add` returns for a line whose frame would exceed the server's `max_payload`. */
export const TOO_BIG = -1;

/** The most message text (escaped) one line of `run` can carry within `maxPayload`. */
export function textRoomOf(run: RunSubjects, maxPayload: number): number {
  return maxPayload - run.head.length - run.stored.header.length - FRAME_ROOM_BYTES;
}

const LIVE = 1;
const MARKER = 2;

type TimestampFormat = 'rfc3339' | 'unix';

/** What every line of one delivery shares: made once, not per line (a backlog holds many lines). */
export interface RunSubjects {
  runId: string;
  /** The delivery's binding, for the drop notice of lines its batch lost. */
  binding: RunBinding;
  /**
   * `logs.{runId}`, its lines' `Nats-Msg-Id` prefix: stored once even when a publish is retried
   * after a lost PubAck, yet unique per delivery. A retried run, a shutdown rerun or a driver used
   * twice in one pipeline (each its own message) restarts `seq`, and a bare `{run}:{driver}:{seq}`
   * would make JetStream drop its lines.
   */
  stored: FrameTarget;
  /** `live.logs.{runId}.{driver}`. */
  live: FrameTarget;
  /** The Log JSON up to the timestamp's value: the run's fields, encoded once. */
  head: Buffer;
  /**
   * `head` and the part of the stamp fixed within `leadSecond` (see secondStamp): one copy per
   * line instead of two, encoded again once a second.
   */
  lead: Buffer;
  leadSecond: number;
  leadFormat?: TimestampFormat;
}

/** What the batch keeps of a line (a LogEntry is one). */
export type QueuedLine = Pick<LogEntry, 'message' | 'bytes' | 'timeUs' | 'timeSubNs' | 'seq'>;

const subjectsByRun = new WeakMap<RunBinding, RunSubjects>();

/**
 * `{digest}:` of the run, driver, message and delivery: 16 base64url characters (96 bits) instead
 * of the 90-odd of the names themselves. The server reads, hashes and keeps every id for its
 * duplicate window, and the header is a fifth of a stored line's bytes.
 */
function deliveryIdPrefix(binding: RunBinding): string {
  const digest = createHash('sha256')
    .update(`${binding.runId}\n${binding.driver}\n${binding.messageId}\n${binding.delivery}`)
    .digest('base64url');
  return `${digest.slice(0, 16)}:`;
}

export function subjectsOf(binding: RunBinding): RunSubjects {
  let subjects = subjectsByRun.get(binding);
  if (!subjects) {
    const head = logLineHead({ runid: binding.runId, driver: binding.driver, pipeline: binding.pipeline });
    subjects = {
      runId: binding.runId,
      binding,
      stored: new FrameTarget(logSubject(binding.runId), deliveryIdPrefix(binding)),
      live: new FrameTarget(liveLogSubject(binding.runId, binding.driver)),
      head: Buffer.from(head, 'utf8'),
      lead: Buffer.alloc(0),
      leadSecond: Number.NaN,
      leadFormat: undefined,
    };
    subjectsByRun.set(binding, subjects);
  }
  return subjects;
}

const MIDDLE = Buffer.from(LOG_LINE_MIDDLE, 'latin1');
/** The RFC 3339 stamp's `Z`, then what follows the stamp. */
const Z_MIDDLE = Buffer.from(`Z${LOG_LINE_MIDDLE}`, 'latin1');
const TAIL = Buffer.from(LOG_LINE_TAIL, 'latin1');

/** `run.lead` for `second` (the run's first line of each second makes it). */
function leadOf(run: RunSubjects, second: number, format: TimestampFormat): Buffer {
  if (run.leadSecond !== second || run.leadFormat !== format) {
    run.lead = Buffer.concat([run.head, Buffer.from(secondStamp(second, format), 'latin1')]);
    run.leadSecond = second;
    run.leadFormat = format;
  }
  return run.lead;
}

/**
 * One line's Log JSON, written from its parts into the frame (reused for every line of a batch):
 * no JSON string is made per line, and the message is a copy of bytes encoded when it was queued.
 */
class LogLinePayload implements FramePayload {
  private lead: Buffer = TAIL;
  private source: Buffer = TAIL;
  private start = 0;
  private end = 0;
  private nanos = 0;
  private readonly rfc3339: boolean;

  constructor(private readonly format: TimestampFormat) {
    this.rfc3339 = format === 'rfc3339';
  }

  /** Sets the line (its message text at `start`, `bytes` long, in `source`) and returns its payload's bytes. */
  set(run: RunSubjects, source: Buffer, start: number, bytes: number, us: number, subNs: number): number {
    const second = Math.floor(us / 1_000_000);
    this.lead = leadOf(run, second, this.format);
    this.source = source;
    this.start = start;
    this.end = start + bytes;
    this.nanos = nanosWithinSecond(us, subNs, second);
    const stampEnd = this.rfc3339 ? STAMP_FRACTION_DIGITS + Z_MIDDLE.length : MIDDLE.length;
    return this.lead.length + stampEnd + bytes + TAIL.length;
  }

  writeTo(buf: Buffer, at: number): number {
    at = putBytes(buf, at, this.lead);
    if (this.rfc3339) {
      at = putPadded(buf, at, this.nanos, STAMP_FRACTION_DIGITS);
      at = putBytes(buf, at, Z_MIDDLE);
    } else at = putBytes(buf, at, MIDDLE);
    at = copyBytes(buf, at, this.source, this.start, this.end);
    return putBytes(buf, at, TAIL);
  }
}

/**
 * A batch's room for message text: what the caller expects (the last batch's text), at least
 * MIN_TEXT_BYTES; it doubles when lines need more, and keeps its size for reuse up to
 * REUSED_TEXT_BYTES (a batch of long lines does not pin its buffer). Its whole size counts in the
 * budget: a handler that logs a line per await fills a batch a line, and its batches stay small.
 */
const MIN_TEXT_BYTES = 512;
const REUSED_TEXT_BYTES = 16 * 1024;

/** The columns of a batch, in one allocation (an ArrayBuffer costs more to make than its bytes). */
const COLUMN_BYTES = BATCH_LINES * (8 + 8 + 4 + 4 + 2 + 1);

/**
 * Up to BATCH_LINES lines of the Conveyor sink, kept as columns (message text, time, sequence)
 * until they are stored. A line's message is encoded into the batch's buffer as it is queued, as
 * the Log JSON wants it (escaped where it must be): the string is free at once instead of living
 * through collections until its batch is stored (a flood queues lines by the hundred thousand),
 * and writing the frames is copying bytes. A resend writes the same bytes again (same
 * timestamps, same `Nats-Msg-Id`s).
 */
export class ConveyorLogBatch implements StoredBatch {
  count = 0;
  /** Bytes of message text, against BATCH_BYTES. */
  messageBytes = 0;
  /** Memory held for the batch's lines: its text buffer and their columns (see QUEUED_LINE_BYTES). */
  cost = 0;
  /**
   * What writing the batch hands to the connection, at most (frames of both subjects): held in the
   * send window, and the budget, from its first send until it is stored.
   */
  wireEstimate = 0;
  wireBytes = 0;
  /** Of `wireBytes`, what the budget still counts: frames this process holds, not the kernel. */
  wireHeld = 0;
  attempt = 0;
  firstTry = 0;
  private readonly runs: RunSubjects[] = [];
  private text: Buffer;
  private readonly us: Float64Array;
  private readonly seqs: Float64Array;
  private readonly starts: Uint32Array;
  private readonly sizes: Uint32Array;
  private readonly subNs: Uint16Array;
  private readonly flags: Uint8Array;

  private readonly payload: LogLinePayload;

  /** `textBytes`: the message text its lines are expected to need. */
  constructor(timestampFormat: TimestampFormat, textBytes = MIN_TEXT_BYTES) {
    this.payload = new LogLinePayload(timestampFormat);
    this.text = Buffer.allocUnsafe(Math.max(MIN_TEXT_BYTES, Math.ceil(textBytes)));
    // Widest first, so every view starts aligned to its element size.
    const columns = new ArrayBuffer(COLUMN_BYTES);
    let at = 0;
    const next = <T>(View: new (b: ArrayBuffer, at: number, n: number) => T, size: number): T => {
      const view = new View(columns, at, BATCH_LINES);
      at += size * BATCH_LINES;
      return view;
    };
    this.us = next(Float64Array, 8);
    this.seqs = next(Float64Array, 8);
    this.starts = next(Uint32Array, 4);
    this.sizes = next(Uint32Array, 4);
    this.subNs = next(Uint16Array, 2);
    this.flags = next(Uint8Array, 1);
  }

  /** Empty again, for reuse once stored (buffers are not free to make per batch). */
  reset(): void {
    this.count = 0;
    this.messageBytes = 0;
    this.cost = 0;
    this.wireEstimate = 0;
    this.wireBytes = 0;
    this.wireHeld = 0;
    this.attempt = 0;
    this.firstTry = 0;
    this.runs.length = 0;
    if (this.text.length > REUSED_TEXT_BYTES) this.text = Buffer.allocUnsafe(MIN_TEXT_BYTES);
  }

  get full(): boolean {
    return this.count >= BATCH_LINES || this.messageBytes >= BATCH_BYTES;
  }

  /**
   * Adds a line (`marker`: the runtime's drop notice, with its own id space) and returns the memory
   * it made the batch hold: its text (escapes make it longer than the message), its columns, and
   * the buffer's growth or, for the first line, the buffer. Returns {@link TOO_BIG} and adds nothing
   * when the line's frame would exceed `maxPayload` (the server's): the frame writer would refuse
   * the whole batch for it, every other run's lines in it included.
   */
  add(run: RunSubjects, line: QueuedLine, live: boolean, marker: boolean, maxPayload: number): number {
    const text = logMessageText(line.message);
    const bytes = text === line.message ? line.bytes : Buffer.byteLength(text);
    if (bytes > textRoomOf(run, maxPayload)) return TOO_BIG;
    const i = this.count++;
    const held = this.cost;
    const at = this.roomFor(bytes);
    // A text whose UTF-8 length is its length is ASCII: latin1 is a plain copy, without UTF-8's checks.
    writeText(this.text, at, text, bytes === text.length);
    this.runs.push(run);
    this.starts[i] = at;
    this.sizes[i] = bytes;
    this.us[i] = line.timeUs;
    this.subNs[i] = line.timeSubNs;
    this.seqs[i] = line.seq;
    this.flags[i] = (live ? LIVE : 0) | (marker ? MARKER : 0);
    this.messageBytes += bytes;
    this.cost = this.text.length + this.count * QUEUED_LINE_BYTES;
    // The Log JSON twice (stored and live), both subjects, the message id, protocol lines, header.
    this.wireEstimate +=
      2 * (bytes + run.head.length + LOG_JSON_BYTES) +
      run.stored.storedHead.length +
      run.live.coreHead.length +
      run.stored.header.length +
      FRAMES_BYTES;
    return this.cost - held;
  }

  /** Where `bytes` more of text go, growing the buffer (doubling) when they do not fit. */
  private roomFor(bytes: number): number {
    const at = this.messageBytes;
    if (at + bytes > this.text.length) {
      const next = Buffer.allocUnsafe(Math.max(at + bytes, this.text.length * 2));
      this.text.copy(next, 0, 0, at);
      this.text = next;
    }
    return at;
  }

  /** Lines whose live copy is still to go; clears them (it went, or never will). */
  takeLive(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) {
      if (this.flags[i] & LIVE) n += 1;
      this.flags[i] &= ~LIVE;
    }
    return n;
  }

  /** True when some line of `runId` is in the batch. */
  hasRun(runId: string): boolean {
    for (let i = 0; i < this.count; i++) if (this.runs[i].runId === runId) return true;
    return false;
  }

  /**
   * Calls `fn` once per stretch of one delivery's lines with their number and message bytes (a
   * delivery's lines sit together, unless another's came between them); `skipMarkers` leaves the
   * runtime's drop notices out (a stretch of only notices is not reported).
   */
  forEachRun(fn: (run: RunSubjects, lines: number, bytes: number) => void, skipMarkers = false): void {
    let start = 0;
    let lines = 0;
    let bytes = 0;
    for (let i = 0; i < this.count; i++) {
      if (!(skipMarkers && this.flags[i] & MARKER)) {
        lines += 1;
        bytes += this.sizes[i];
      }
      if (i + 1 === this.count || this.runs[i + 1] !== this.runs[start]) {
        if (lines > 0) fn(this.runs[start], lines, bytes);
        start = i + 1;
        lines = 0;
        bytes = 0;
      }
    }
  }

  writeFrames(writer: FrameWriter, firstReply: string, lastReply: string, firstSend: boolean): void {
    const last = this.count - 1;
    const { payload, text } = this;
    for (let i = 0; i <= last; i++) {
      const run = this.runs[i];
      const bytes = payload.set(run, text, this.starts[i], this.sizes[i], this.us[i], this.subNs[i]);
      const seq = this.flags[i] & MARKER ? `drops-${this.seqs[i]}` : this.seqs[i];
      const reply = i === 0 ? firstReply : i === last ? lastReply : '';
      writer.stored(run.stored, reply, seq, payload, bytes);
      if (firstSend && this.flags[i] & LIVE) writer.coreCopy(run.live);
    }
  }
}
