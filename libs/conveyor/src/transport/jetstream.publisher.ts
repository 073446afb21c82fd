import { ErrorCode, Msg, NatsConnection, NatsError, Subscription, createInbox, headers } from 'nats';
import { FrameWriter, frameWriterFor } from './nats-frames';

/** What JetStream answers a stored publish with. */
export interface StoredAck {
  stream: string;
  seq: number;
  duplicate?: boolean;
}

/** Called once with the PubAck (of a batch: its last line's), or with the error. */
export type StoredCallback = (err: Error | undefined, ack?: StoredAck) => void;

/**
 * Messages stored together, one write: the publisher names the replies and reads the PubAcks, the
 * batch writes its own frames (it may keep its lines in any form until they are stored).
 */
export interface StoredBatch {
  /** Messages in the batch (at least 1). */
  readonly count: number;
  /**
   * Writes every message in order, each a publish with its `Nats-Msg-Id`: the first with
   * `firstReply`, the last with `lastReply` (a single message: `firstReply`), none between.
   * `firstSend` is false for a resend (core copies, if any, go with the first send only).
   */
  writeFrames(writer: FrameWriter, firstReply: string, lastReply: string, firstSend: boolean): void;
}

/**
 * Sends a waiting publish (again, on a resend) with the reply subjects of its first and last
 * message (one message: `firstReply`); returns the bytes handed to the connection. Throws as
 * `nc.publish` does.
 */
type Send = (firstReply: string, lastReply: string, firstSend: boolean) => number;

interface Waiting {
  /** Messages it sends: a batch's lines, or 1. */
  count: number;
  send: Send;
  done: StoredCallback;
  deadline: number;
  timeoutMs: number;
  /** When to send it again if still unanswered (with `resendAfterMs`). */
  resendAt: number;
  /** PubAcks of the first and the last line (one line: only the first). */
  acks: (StoredAck | undefined)[];
  sends: number;
}

const decoder = new TextDecoder();

/** How often unanswered publishes are checked against their deadline (only while any wait). */
const SWEEP_MS = 250;

/**
 * JetStream publishes that wait for their PubAck on one long-lived inbox. nats.js's `js.publish`
 * makes a request per message (a timer, a deferred, and a `Cancelled` error built for every answered
 * request: 5-9 % of a no-op run's CPU); here a publish is one plain publish with a reply subject,
 * and a single sweep times out what was not answered. Errors carry the codes nats.js uses, so
 * the publish-error classification reads them the same way.
 *
 * A single message (a result: `publish`) goes through nats.js's public API, `nc.publish` with its
 * reply subject and `Nats-Msg-Id` header. Only batches (log lines: `sendBatch`) are written as
 * protocol frames by the {@link FrameWriter}, where per-line cost matters.
 *
 * A batch asks for two PubAcks only, its first line's and its last line's. A stream handles the
 * publishes of one connection in order, so the last line's answer comes after every line before
 * it was handled; and the stream sequence grows by one per stored message, so fewer numbers
 * between the two answers than lines between them means a line was lost on the way (a leader
 * change on a cluster drops publishes silently): the batch is sent again, and `Nats-Msg-Id` makes
 * what was stored the first time a duplicate the stream drops. (Another client's messages fill
 * the gap too, so this catches a loss in the common case of one writer, not in every case.)
 */
export class JetStreamPublisher {
  private readonly prefix = createInbox();
  private readonly sub: Subscription;
  private readonly waiting = new Map<number, Waiting>();
  /** Runs while publishes wait for their answer; an idle driver's process is not woken for it. */
  private sweeper?: NodeJS.Timeout;
  private readonly writer: FrameWriter;
  private token = 0;
  private closed = false;
  /** False between a disconnect and the reconnect: a resend then would only fill nats.js's reconnect buffer. */
  private connected = true;
  private readonly resendAfterMs: number;
  /** Batches sent again because lines were missing between their two PubAcks. */
  gapsResent = 0;
  /** The newest publish that got an answer, and when the last answer came. */
  private answeredToken = 0;
  private answeredAt = Date.now();

  /**
   * @param options.resendAfterMs send a publish again while it is unanswered this long (same
   *   `Nats-Msg-Id`, so it is stored once). A stream without a leader (an election on a cluster)
   *   drops publishes without an answer; resending finds the new leader within this time instead
   *   of after the full timeout. Default: only after a reconnect.
   * @param options.writer writes the frames of batches (`sendBatch`); default: the fastest `nc`
   *   supports. `publish` never uses it.
   */
  constructor(
    private readonly nc: NatsConnection,
    options: { resendAfterMs?: number; writer?: FrameWriter } = {},
  ) {
    this.resendAfterMs = options.resendAfterMs ?? Infinity;
    this.writer = options.writer ?? frameWriterFor(nc);
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (_err, msg) => this.answer(msg) });
    void this.resendAfterReconnects();
  }

  /** Whether the sweep timer runs: only while some publish waits for its answer (and one sweep after). */
  get sweeping(): boolean {
    return this.sweeper !== undefined;
  }

  /** Batch bytes written but still in this process, not yet taken by the socket (see FrameWriter). */
  heldBytes(): number {
    return this.writer.heldBytes();
  }

  /**
   * Publishes `data` with `Nats-Msg-Id: msgId` and resolves with the PubAck once it is stored: one
   * `nc.publish` (nats.js's public API), sent again with the same id while unanswered.
   */
  publish(subject: string, data: Uint8Array, msgId: string, timeoutMs: number): Promise<StoredAck> {
    const send: Send = (reply) => {
      const h = headers();
      h.set('Nats-Msg-Id', msgId);
      this.nc.publish(subject, data, { reply, headers: h });
      return data.length;
    };
    return new Promise<StoredAck>((resolve, reject) =>
      this.track(1, send, timeoutMs, (err, ack) => (err ? reject(err) : resolve(ack!))),
    );
  }

  /**
   * Publishes `batch` in order as one write and calls `done` once all of it is stored, or with the
   * error (the batch as a whole: a caller retrying sends every message again, stored once). With
   * a callback, not a promise: this runs at log-line rates. Returns the bytes handed to the
   * connection (0 when it failed at once: `done` gets the error in a microtask).
   */
  sendBatch(batch: StoredBatch, timeoutMs: number, done: StoredCallback): number {
    return this.track(
      batch.count,
      (firstReply, lastReply, firstSend) => this.writeBatch(batch, firstReply, lastReply, firstSend),
      timeoutMs,
      done,
    );
  }

  /** Sends, and waits for the PubAcks of, `count` messages; see sendBatch for what it returns. */
  private track(count: number, send: Send, timeoutMs: number, done: StoredCallback): number {
    const token = ++this.token;
    const now = Date.now();
    const waiting: Waiting = {
      count,
      send,
      done,
      deadline: now + timeoutMs,
      timeoutMs,
      resendAt: now + this.resendAfterMs,
      acks: [],
      sends: 0,
    };
    this.waiting.set(token, waiting);
    if (!this.sweeper && !this.closed) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweeper.unref();
    }
    try {
      return this.transmit(token, waiting);
    } catch (err) {
      // Closed connection, or a payload over max_payload (checked before anything is sent).
      // Reported once the caller has the return value: a callback run inside this call would see
      // its publish end before the caller's own bookkeeping of the send (the log sink's budget).
      this.waiting.delete(token);
      queueMicrotask(() => done(err as Error));
      return 0;
    }
  }

  private transmit(token: number, w: Waiting): number {
    const firstSend = w.sends === 0;
    w.sends += 1;
    w.acks = [];
    // Reply tokens 2n (first message) and 2n+1 (last message) name the batch and the message.
    return w.send(`${this.prefix}.${token * 2}`, `${this.prefix}.${token * 2 + 1}`, firstSend);
  }

  private writeBatch(batch: StoredBatch, first: string, last: string, firstSend: boolean): number {
    try {
      batch.writeFrames(this.writer, first, last, firstSend);
    } catch (err) {
      this.writer.discard();
      throw err;
    }
    return this.writer.flush();
  }

  /**
   * What was written in the moment before a connection died is lost with it, and its PubAck never
   * comes: waiting for the timeout would stall every run holding such a result (5 s after a node
   * loss on a cluster). On a reconnect, what is still unanswered is sent again with a fresh
   * timeout; the same `Nats-Msg-Id` makes a copy that did arrive a duplicate the stream drops.
   */
  private async resendAfterReconnects(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (this.closed) return;
      if (status.type === 'disconnect') this.connected = false;
      if (status.type !== 'reconnect') continue;
      this.connected = true;
      const now = Date.now();
      for (const [token, w] of this.waiting) {
        w.deadline = now + w.timeoutMs;
        this.resend(token, w, now);
      }
    }
  }

  private resend(token: number, w: Waiting, now: number): void {
    w.resendAt = now + this.resendAfterMs;
    try {
      this.transmit(token, w);
    } catch {
      /* the connection dropped again: the next reconnect, or the sweep, settles it */
    }
  }

  /** Fails what is still waiting (the connection is closing). */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    this.sub.unsubscribe();
    for (const [token, w] of this.waiting) {
      this.waiting.delete(token);
      w.done(NatsError.errorForCode(ErrorCode.ConnectionClosed));
    }
  }

  private answer(msg: Msg): void {
    const reply = Number(msg.subject.slice(this.prefix.length + 1));
    const token = Math.floor(reply / 2);
    const w = this.waiting.get(token);
    if (!w) return; // answered after its timeout: the caller already moved on
    this.answeredAt = Date.now();
    if (token > this.answeredToken) this.answeredToken = token;
    const answer = readAnswer(msg);
    if (answer instanceof Error) {
      this.waiting.delete(token);
      return w.done(answer);
    }
    w.acks[reply % 2] = answer;
    const [first, last] = w.acks;
    const { count } = w;
    if (!first || (count > 1 && !last)) return;
    if (count > 1 && w.sends === 1 && linesMissing(first, last!, count)) {
      this.gapsResent += 1;
      return this.resend(token, w, Date.now());
    }
    this.waiting.delete(token);
    w.done(undefined, last ?? first);
  }

  private sweep(): void {
    // Stopped here rather than at each last answer: a driver publishing one result at a time
    // would otherwise start and stop a timer per result.
    if (this.waiting.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      return;
    }
    const now = Date.now();
    for (const [token, w] of this.waiting) {
      if (w.deadline <= now && this.stillQueued(token, now, w.timeoutMs)) {
        w.deadline = this.answeredAt + w.timeoutMs;
      } else if (w.deadline <= now) {
        this.waiting.delete(token);
        w.done(NatsError.errorForCode(ErrorCode.Timeout));
      } else if (w.resendAt <= now && this.connected && this.looksLost(token, now))
        this.resend(token, w, now);
    }
  }

  private stillQueued(token: number, now: number, timeoutMs: number): boolean {
    // Behind publishes the stream is still answering, in order: late, not lost (a backlog of log
    // batches on a slow cluster would otherwise time out and be sent again, adding to it).
    return this.answeredToken < token && now - this.answeredAt < timeoutMs;
  }

  /**
   * A stream answers one connection's publishes in order: an unanswered publish is lost once a
   * later one was answered, or when nothing was answered for `resendAfterMs`. One that is merely
   * queued behind others on a slow stream (a cluster under load) is not sent again: copies would
   * only add to the queue.
   */
  private looksLost(token: number, now: number): boolean {
    return this.answeredToken > token || now - this.answeredAt >= this.resendAfterMs;
  }
}

/** The PubAck, or why nothing was stored. */
function readAnswer(msg: Msg): StoredAck | Error {
  // The server's no-responders status: nothing stored (no stream, or JetStream not ready).
  if (msg.data.length === 0 && msg.headers?.code === 503)
    return NatsError.errorForCode(ErrorCode.NoResponders);
  try {
    const answer = JSON.parse(decoder.decode(msg.data)) as StoredAck & {
      error?: { code: number; err_code?: number; description: string };
    };
    if (!answer.error) return answer;
    const err = new NatsError(answer.error.description, String(answer.error.code));
    err.api_error = answer.error;
    return err;
  } catch (err) {
    return err as Error;
  }
}

/** A first send whose two PubAcks are fewer sequence numbers apart than the lines between them. */
function linesMissing(first: StoredAck, last: StoredAck, lines: number): boolean {
  if (first.duplicate || last.duplicate || first.stream !== last.stream) return false;
  return last.seq - first.seq < lines - 1;
}
