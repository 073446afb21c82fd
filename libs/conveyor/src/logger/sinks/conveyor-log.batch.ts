import {
  LOG_LINE_MIDDLE,
  LOG_LINE_TAIL,
  liveLogSubject,
  logLineHead,
  logMessageText,
  logSubject,
} from '../../protocol';
import { putBytes } from '../../transport/ascii-bytes';
import type { StoredBatch } from '../../transport/jetstream.publisher';
import { FramePayload, FrameTarget, FrameWriter } from '../../transport/nats-frames';
import {
  RunBinding,
  rfc3339NanoBytes,
  unixSecondsBytes,
  writeRfc3339Nano,
  writeUnixSeconds,
} from '../run-scope';

/**
 * Lines per stored batch: one socket write and two PubAcks for this many lines (see
 * JetStreamPublisher), instead of a round trip and a PubAck each.
 */
export const BATCH_LINES = 128;
/** …or fewer, when their messages reach this many bytes. */
const BATCH_BYTES = 64 * 1024;

/** What a queued line costs beyond its message bytes: its share of the columns below. */
export const QUEUED_LINE_BYTES = 64;

/** The Log JSON beyond its prefix and message: timestamp, keys, quotes (escapes add more). */
const LOG_JSON_BYTES = 48;
/** A line's two frames beyond subjects, payloads and message id: protocol lines, header, sizes. */
const FRAMES_BYTES = 96;

const LIVE = 1;
const MARKER = 2;

/** What every line of one delivery shares: made once, not per line (a backlog holds many lines). */
export interface RunSubjects {
  runId: string;
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
}

const subjectsByRun = new WeakMap<RunBinding, RunSubjects>();

export function subjectsOf(binding: RunBinding): RunSubjects {
  let subjects = subjectsByRun.get(binding);
  if (!subjects) {
    const head = logLineHead({ runid: binding.runId, driver: binding.driver, pipeline: binding.pipeline });
    subjects = {
      runId: binding.runId,
      stored: new FrameTarget(
        logSubject(binding.runId),
        `${binding.runId}:${binding.driver}:${binding.messageId}:${binding.delivery}:`,
      ),
      live: new FrameTarget(liveLogSubject(binding.runId, binding.driver)),
      head: Buffer.from(head, 'utf8'),
    };
    subjectsByRun.set(binding, subjects);
  }
  return subjects;
}

const MIDDLE = Buffer.from(LOG_LINE_MIDDLE, 'latin1');
const TAIL = Buffer.from(LOG_LINE_TAIL, 'latin1');

/**
 * One line's Log JSON, written from its parts into the frame (reused for every line of a batch):
 * no JSON string is made per line, and an ASCII message needing no escapes is its own bytes.
 */
class LogLinePayload implements FramePayload {
  private head: Buffer = TAIL;
  private text = '';
  private ascii = true;
  private us = 0;
  private subNs = 0;

  constructor(private readonly unix: boolean) {}

  /** Sets the line and returns its payload's bytes. */
  set(run: RunSubjects, message: string, messageBytes: number, us: number, subNs: number): number {
    this.head = run.head;
    this.us = us;
    this.subNs = subNs;
    const text = logMessageText(message);
    // A message whose UTF-8 length is its length is ASCII, and so is its escaped text.
    this.ascii = messageBytes === message.length;
    this.text = text;
    const textBytes = text === message ? messageBytes : Buffer.byteLength(text);
    const stampBytes = this.unix ? unixSecondsBytes(us) : rfc3339NanoBytes(us);
    return run.head.length + stampBytes + MIDDLE.length + textBytes + TAIL.length;
  }

  writeTo(buf: Buffer, at: number): number {
    at = putBytes(buf, at, this.head);
    at = this.unix ? writeUnixSeconds(buf, at, this.us) : writeRfc3339Nano(buf, at, this.us, this.subNs);
    at = putBytes(buf, at, MIDDLE);
    // latin1 of ASCII is a plain copy, without UTF-8's checks.
    at += buf.write(this.text, at, this.ascii ? 'latin1' : 'utf8');
    return putBytes(buf, at, TAIL);
  }
}

/**
 * Up to BATCH_LINES lines of the Conveyor sink, kept as columns (message, time, sequence) until
 * they are stored: the Log JSON is made as the batch is written, so a queued line costs its
 * message and a few numbers instead of an object, a JSON string and a message id each. A resend
 * writes the same bytes again (same timestamps, same `Nats-Msg-Id`s).
 */
export class ConveyorLogBatch implements StoredBatch {
  count = 0;
  messageBytes = 0;
  /** Budget bytes held by the batch's lines. */
  cost = 0;
  /**
   * What writing the batch hands to the connection, at most (frames of both subjects): held in the
   * send window, and the budget, from its first send until it is stored.
   */
  wireEstimate = 0;
  wireBytes = 0;
  attempt = 0;
  firstTry = 0;
  private readonly runs: RunSubjects[] = [];
  private readonly messages: string[] = [];
  private readonly sizes = new Uint32Array(BATCH_LINES);
  private readonly us = new Float64Array(BATCH_LINES);
  private readonly subNs = new Uint16Array(BATCH_LINES);
  private readonly seqs = new Float64Array(BATCH_LINES);
  private readonly flags = new Uint8Array(BATCH_LINES);

  private readonly payload: LogLinePayload;

  constructor(timestampFormat: 'rfc3339' | 'unix') {
    this.payload = new LogLinePayload(timestampFormat === 'unix');
  }

  /** Empty again, for reuse once stored (five typed arrays are not free to make per 128 lines). */
  reset(): void {
    this.count = 0;
    this.messageBytes = 0;
    this.cost = 0;
    this.wireEstimate = 0;
    this.wireBytes = 0;
    this.attempt = 0;
    this.firstTry = 0;
    this.runs.length = 0;
    this.messages.length = 0;
  }

  get full(): boolean {
    return this.count >= BATCH_LINES || this.messageBytes >= BATCH_BYTES;
  }

  /** Adds a line (`marker`: the runtime's drop notice, with its own id space). */
  add(
    run: RunSubjects,
    line: { message: string; bytes: number; us: number; subNs: number; seq: number },
    live: boolean,
    marker: boolean,
    cost: number,
  ): void {
    const i = this.count++;
    this.runs.push(run);
    this.messages.push(line.message);
    this.sizes[i] = line.bytes;
    this.us[i] = line.us;
    this.subNs[i] = line.subNs;
    this.seqs[i] = line.seq;
    this.flags[i] = (live ? LIVE : 0) | (marker ? MARKER : 0);
    this.messageBytes += line.bytes;
    this.cost += cost;
    // The Log JSON twice (stored and live), both subjects, the message id, protocol lines, header.
    this.wireEstimate +=
      2 * (line.bytes + run.head.length + LOG_JSON_BYTES) +
      run.stored.storedHead.length +
      run.live.coreHead.length +
      run.stored.header.length +
      FRAMES_BYTES;
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

  /** Calls `fn` once per run with the number of its lines here (lines of one run sit together). */
  forEachRun(fn: (runId: string, lines: number) => void): void {
    let start = 0;
    for (let i = 1; i <= this.count; i++) {
      if (i === this.count || this.runs[i] !== this.runs[start]) {
        fn(this.runs[start].runId, i - start);
        start = i;
      }
    }
  }

  writeFrames(writer: FrameWriter, firstReply: string, lastReply: string, firstSend: boolean): void {
    const last = this.count - 1;
    const payload = this.payload;
    for (let i = 0; i <= last; i++) {
      const run = this.runs[i];
      const bytes = payload.set(run, this.messages[i], this.sizes[i], this.us[i], this.subNs[i]);
      const seq = this.flags[i] & MARKER ? `drops-${this.seqs[i]}` : this.seqs[i];
      const reply = i === 0 ? firstReply : i === last ? lastReply : '';
      writer.stored(run.stored, reply, seq, payload, bytes);
      if (firstSend && this.flags[i] & LIVE) writer.coreCopy(run.live);
    }
  }
}
